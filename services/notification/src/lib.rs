//! The notification service: emails customers the outcome of their orders
//! over SMTP, exactly one email per order outcome, and records each one.

mod config;
pub mod email;
mod handler;
mod http;
mod mailer;
mod store;

use checkout_messages::Topic;
use checkout_platform::{RunningService, ServiceBuilder, StartupError};

pub use config::Settings;
pub use handler::NotificationHandler;
pub use mailer::{MailError, Mailer};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub async fn start(settings: Settings) -> Result<RunningService, StartupError> {
    let topics = [Topic::NotificationCommands, Topic::NotificationEvents];
    let mailer = Mailer::new(&settings.smtp_host, settings.smtp_port, &settings.smtp_from, settings.smtp_timeout)
        .map_err(|error| checkout_platform::config::ConfigError::new("SMTP_FROM", error.to_string()))?;
    let mut builder = ServiceBuilder::connect(settings.service.clone(), &MIGRATOR, &topics).await?;
    let pool = builder.pool().clone();
    handler::export_zeroes();
    builder.consume(&[Topic::NotificationCommands], NotificationHandler::new(pool.clone(), mailer))?;
    Ok(builder.serve(http::routes(pool)))
}
