use std::time::Duration;

use checkout_platform::config::{ConfigError, Env, ServiceSettings};

#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    /// How long to wait for the gateway before treating an authorization's
    /// outcome as unknown (and a capture, void or refund as worth retrying).
    pub gateway_timeout: Duration,
    /// Fault injection (tests only): see `PaymentHandler::with_abort_after_capture`.
    pub abort_after_capture: Option<std::path::PathBuf>,
}

impl Settings {
    /// `PAYMENT_GATEWAY` (only `test` for now) and `PAYMENT_GATEWAY_TIMEOUT_MS`
    /// (default 2000), plus the shared variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let gateway = env.string("PAYMENT_GATEWAY", "test");
        if gateway != "test" {
            return Err(ConfigError::new(
                "PAYMENT_GATEWAY",
                format!("unknown gateway {gateway:?}; the only one is \"test\""),
            ));
        }
        Ok(Self {
            service: ServiceSettings::from_env(env, "payment", 8083)?,
            gateway_timeout: env.millis("PAYMENT_GATEWAY_TIMEOUT_MS", Duration::from_secs(2))?,
            abort_after_capture: Some(env.string("PAYMENT_FAULT_ABORT_AFTER_CAPTURE", ""))
                .filter(|path| !path.is_empty())
                .map(Into::into),
        })
    }
}
