//! The order service: the REST checkout API. It owns orders: a checkout is
//! stored with its `OrderPlaced` event in one transaction; the orchestrator
//! then confirms or cancels the order, and reports the saga's progress,
//! which the order keeps as its timeline.

pub mod api;
mod config;
mod handler;
mod store;

use checkout_messages::Topic;
use checkout_platform::{RunningService, ServiceBuilder, StartupError};

pub use config::Settings;
pub use handler::OrderHandler;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub async fn start(settings: Settings) -> Result<RunningService, StartupError> {
    let topics = [Topic::OrderCommands, Topic::OrderEvents, Topic::OrchestratorEvents];
    let mut builder = ServiceBuilder::connect(settings.service.clone(), &MIGRATOR, &topics).await?;
    let pool = builder.pool().clone();
    builder.consume(&[Topic::OrderCommands, Topic::OrchestratorEvents], OrderHandler::new(pool.clone()))?;
    Ok(builder.serve(api::routes(pool)))
}
