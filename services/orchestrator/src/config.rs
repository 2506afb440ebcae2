use std::time::Duration;

use checkout_platform::config::{ConfigError, Env, ServiceSettings};
use checkout_platform::http::OperatorTokens;
use checkout_saga::{SagaPolicy, StepPolicy};

#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    pub policy: SagaPolicy,
    /// How often the timer looks for sagas whose step timed out.
    pub timer_interval: Duration,
    /// Who may retry or abort a saga (`OPERATOR_TOKENS`).
    pub operators: OperatorTokens,
    /// A saga running or compensating for longer than this counts as stuck
    /// (`checkout_sagas_stuck`).
    pub stuck_after: Duration,
}

impl Settings {
    /// Per step group (`RESERVE`, `AUTHORIZE`, `AFTER_PIVOT`, `COMPENSATION`):
    /// `SAGA_<GROUP>_TIMEOUT_MS` and `SAGA_<GROUP>_MAX_ATTEMPTS`; also
    /// `SAGA_MAX_STEP_TIMEOUT_MS` (the backoff cap), `SAGA_STEP_REPORT_DELAY_MS`
    /// (how long timeline entries may wait to be reported together; 0
    /// reports every transition's at once) and
    /// `ORCHESTRATOR_TIMER_INTERVAL_MS`, `SAGA_STUCK_AFTER_MS`, `OPERATOR_TOKENS`,
    /// plus the shared variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = SagaPolicy::default();
        let max_timeout = env.millis("SAGA_MAX_STEP_TIMEOUT_MS", Duration::from_secs(60))?;
        let step = |group: &str, default: StepPolicy| -> Result<StepPolicy, ConfigError> {
            Ok(StepPolicy {
                timeout: env.millis(&format!("SAGA_{group}_TIMEOUT_MS"), default.timeout)?,
                max_timeout,
                max_attempts: env.count(&format!("SAGA_{group}_MAX_ATTEMPTS"), default.max_attempts)?,
            })
        };
        Ok(Self {
            service: ServiceSettings::from_env(env, "orchestrator", 8081)?,
            policy: SagaPolicy {
                reserve_inventory: step("RESERVE", defaults.reserve_inventory)?,
                authorize_payment: step("AUTHORIZE", defaults.authorize_payment)?,
                after_pivot: step("AFTER_PIVOT", defaults.after_pivot)?,
                compensation: step("COMPENSATION", defaults.compensation)?,
                report_delay: env.millis("SAGA_STEP_REPORT_DELAY_MS", defaults.report_delay)?,
            },
            timer_interval: env.millis("ORCHESTRATOR_TIMER_INTERVAL_MS", Duration::from_millis(250))?,
            operators: OperatorTokens::from_env(env)?,
            stuck_after: env.millis("SAGA_STUCK_AFTER_MS", Duration::from_mins(5))?,
        })
    }
}
