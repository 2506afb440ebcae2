//! The order's rules, without I/O. What happened to an order is a stream of
//! [`OrderEvent`]s; the order as it stands (or stood at any moment) is their
//! fold, [`Order::fold`]; each decision returns the events it appends. The
//! read model's rows ([`Summary`]) are a second fold, over the messages the
//! order service and the orchestrator publish.

mod event;
mod new_order;
mod order;
mod summary;

pub use event::{EventDecodeError, OrderEvent, Placed, RecordedEvent, StoredEvent};
pub use new_order::NewOrder;
pub use order::{CancelDecision, CancelRequest, Contradiction, FoldError, Line, Order, Status, TimelineEntry};
pub use summary::{StepMark, Summary};
