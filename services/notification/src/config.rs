use std::time::Duration;

use checkout_platform::config::{ConfigError, Env, ServiceSettings};

#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_from: String,
    pub smtp_timeout: Duration,
}

impl Settings {
    /// `SMTP_HOST` (default 127.0.0.1), `SMTP_PORT` (1025, Mailpit's),
    /// `SMTP_FROM` and `SMTP_TIMEOUT_MS`, plus the shared variables
    /// (`CONSUMER_MAX_IN_FLIGHT` defaults to 64 here). An SMTP
    /// server that is down is a transient failure, waited out like any other.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut service = ServiceSettings::from_env(env, "notification", 8084)?;
        // Sending an email holds no database connection: many at once,
        // unless configured, so a slow mail provider is not a slow service.
        if env.get("CONSUMER_MAX_IN_FLIGHT").is_none() {
            service.max_in_flight = 64;
        }
        let settings = Self {
            service,
            smtp_host: env.string("SMTP_HOST", "127.0.0.1"),
            smtp_port: env.parse("SMTP_PORT", 1025)?,
            smtp_from: env.string("SMTP_FROM", "Checkout Saga <orders@checkout-saga.local>"),
            smtp_timeout: env.millis("SMTP_TIMEOUT_MS", Duration::from_secs(5))?,
        };
        if settings.smtp_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::new("SMTP_FROM", "must be an address like \"Shop <orders@example.com>\""));
        }
        Ok(settings)
    }
}
