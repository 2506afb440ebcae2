//! The payment service: authorizes, captures, voids and refunds, each
//! idempotent per order, through a [`PaymentGateway`]. The only gateway today
//! is the deterministic [`TestGateway`], whose card tokens select each outcome
//! so every path of the saga can be shown on demand.

mod config;
pub mod gateway;
mod handler;
mod http;
pub mod ledger;
mod store;

use checkout_messages::Topic;
use checkout_platform::{RunningService, ServiceBuilder, StartupError};

pub use config::Settings;
pub use gateway::{PaymentGateway, TestGateway};
pub use handler::PaymentHandler;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub async fn start(settings: Settings) -> Result<RunningService, StartupError> {
    let topics = [Topic::PaymentCommands, Topic::PaymentEvents];
    let mut builder = ServiceBuilder::connect(settings.service.clone(), &MIGRATOR, &topics).await?;
    let pool = builder.pool().clone();
    let handler = PaymentHandler::new(pool.clone(), TestGateway::new(pool.clone()), settings.gateway_timeout)
        .with_abort_after_capture(settings.abort_after_capture.clone());
    builder.consume(&[Topic::PaymentCommands], handler)?;
    Ok(builder.serve(http::routes(pool)))
}
