use checkout_platform::config::{ConfigError, Env, ServiceSettings};

/// Most records the read model folds in one transaction, by default.
const READ_MODEL_MAX_BATCH: u32 = 64;

#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    /// `READ_MODEL_MAX_BATCH`: most records the projection folds in one
    /// transaction (1: one transaction per record).
    pub read_model_max_batch: usize,
}

impl Settings {
    /// The shared variables; the API listens on 8080 by default.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let batch = env.count("READ_MODEL_MAX_BATCH", READ_MODEL_MAX_BATCH)?;
        Ok(Self {
            service: ServiceSettings::from_env(env, "order", 8080)?,
            read_model_max_batch: usize::try_from(batch).unwrap_or(usize::MAX),
        })
    }
}
