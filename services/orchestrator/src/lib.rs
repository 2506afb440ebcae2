//! The orchestrator: runs one checkout saga per order.
//!
//! Decisions come from the pure saga core (`checkout-saga`); this service
//! persists each saga and every transition it makes, sends its commands
//! through the outbox in the same transaction, and wakes sagas whose step
//! timed out — only once the step's reply partition has been processed
//! through the deadline, so replies that queued up are applied first. `GET /sagas/{order_id}` shows a saga's history and
//! `GET /sagas?state=…&older_than=…` finds stuck ones; an operator (with the
//! bearer token of `OPERATOR_TOKENS`) may `POST /sagas/{order_id}/retry` the
//! step a saga waits on or gave up on, or `…/abort` it before the pivot.

mod config;
mod engine;
mod handler;
mod held;
mod http;
mod store;
mod timer;

use checkout_messages::Topic;
use checkout_platform::{RunningService, ServiceBuilder, StartupError};

pub use config::Settings;
pub use handler::SagaHandler;
pub use timer::{DeadlineGate, Timer, TimerError};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The event topics the orchestrator listens to.
pub const SUBSCRIPTIONS: [Topic; 4] =
    [Topic::OrderEvents, Topic::InventoryEvents, Topic::PaymentEvents, Topic::NotificationEvents];

pub async fn start(settings: Settings) -> Result<RunningService, StartupError> {
    let topics = [
        Topic::OrderEvents,
        Topic::InventoryEvents,
        Topic::PaymentEvents,
        Topic::NotificationEvents,
        Topic::OrderCommands,
        Topic::InventoryCommands,
        Topic::PaymentCommands,
        Topic::NotificationCommands,
        Topic::OrchestratorEvents,
    ];
    let mut builder = ServiceBuilder::connect(settings.service.clone(), &MIGRATOR, &topics).await?;
    let pool = builder.pool().clone();
    engine::export_zeroes();
    let consumer = builder.consume_batched(&SUBSCRIPTIONS, SagaHandler::new(pool.clone(), settings.policy))?;
    let gate = DeadlineGate::new(consumer, builder.kafka_settings().clone());
    let timer = Timer::new(pool.clone(), settings.policy, settings.timer_interval).gated_by(gate);
    builder.spawn("saga timer", |shutdown| timer.run(shutdown));
    let (census_pool, stuck_after) = (pool.clone(), settings.stuck_after);
    builder.collect("sagas", move || {
        let pool = census_pool.clone();
        async move { store::census(&pool, stuck_after).await.map(|census| engine::export(&census)) }
    });
    let api = http::Api { pool, policy: settings.policy, operators: settings.operators };
    Ok(builder.serve(http::routes(api)))
}
