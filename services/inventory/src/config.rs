use std::time::Duration;

use checkout_platform::config::{ConfigError, Env, ServiceSettings};
use checkout_platform::http::OperatorTokens;

#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    /// How long stock stays reserved for an order that is neither committed nor released.
    pub reservation_ttl: Duration,
    /// How often held reservations are checked for expiry.
    pub expiry_sweep_interval: Duration,
    /// Who may set stock (`OPERATOR_TOKENS`).
    pub operators: OperatorTokens,
}

impl Settings {
    /// `INVENTORY_RESERVATION_TTL_SECS` (default 900) and
    /// `INVENTORY_EXPIRY_SWEEP_INTERVAL_MS` (default 1000), `OPERATOR_TOKENS`, plus the shared variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let settings = Self {
            service: ServiceSettings::from_env(env, "inventory", 8082)?,
            reservation_ttl: env.secs("INVENTORY_RESERVATION_TTL_SECS", Duration::from_secs(900))?,
            expiry_sweep_interval: env.millis("INVENTORY_EXPIRY_SWEEP_INTERVAL_MS", Duration::from_secs(1))?,
            operators: OperatorTokens::from_env(env)?,
        };
        if settings.reservation_ttl.is_zero() {
            return Err(ConfigError::new("INVENTORY_RESERVATION_TTL_SECS", "must be at least 1"));
        }
        Ok(settings)
    }
}
