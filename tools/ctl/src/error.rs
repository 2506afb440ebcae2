//! What can go wrong, and the exit code each tells a script.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    /// The service refused: the action does not apply now, or the input is invalid.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unauthorized(String),
    /// `status` found something that needs attention (already printed).
    #[error("{0}")]
    NeedsAttention(String),
    /// A service or the broker could not be reached, or failed.
    #[error("{0}")]
    Failed(String),
}

impl CtlError {
    pub fn failed(what: impl std::fmt::Display, error: impl std::fmt::Display) -> Self {
        Self::Failed(format!("{what}: {error}"))
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Failed(_) => 1,
            Self::Usage(_) => 2,
            Self::NotFound(_) => 3,
            Self::Refused(_) => 4,
            Self::Unauthorized(_) => 5,
            Self::NeedsAttention(_) => 6,
        })
    }
}

impl From<checkout_kafka::ReplayError> for CtlError {
    fn from(error: checkout_kafka::ReplayError) -> Self {
        Self::failed("reading from Kafka", error)
    }
}

impl From<checkout_kafka::PublishError> for CtlError {
    fn from(error: checkout_kafka::PublishError) -> Self {
        Self::failed("publishing to Kafka", error)
    }
}

impl From<checkout_kafka::admin::AdminError> for CtlError {
    fn from(error: checkout_kafka::admin::AdminError) -> Self {
        Self::failed("Kafka", error)
    }
}
