use checkout_platform::config::{ConfigError, Env, ServiceSettings};

#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
}

impl Settings {
    /// The shared variables; the API listens on 8080 by default.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self { service: ServiceSettings::from_env(env, "order", 8080)? })
    }
}
