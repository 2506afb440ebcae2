//! The error of every service's store, so that `?` in a handler turns it
//! into a retry or a dead letter the same way everywhere.

use checkout_kafka::HandlerError;

use crate::handler_error;

/// A store's failure: the database's (retried while transient, see
/// [`crate::is_transient`]), or data the service refuses, `E` (dead-lettered
/// by a handler, never retried: it will not change by waiting).
#[derive(Debug, thiserror::Error)]
pub enum StoreError<E = Corrupt> {
    // Not `transparent`: that would hide the sqlx error from the source
    // chain, and a request would answer 500 instead of 503 while the
    // database is away.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Refused(E),
}

/// A stored value the service's domain refuses: a bug or a hand-edited row.
#[derive(Debug, thiserror::Error)]
#[error("stored data is invalid: {0}")]
pub struct Corrupt(pub String);

impl<E> StoreError<E> {
    /// The data is refused for `reason`.
    pub fn refused(reason: impl Into<E>) -> Self {
        Self::Refused(reason.into())
    }
}

impl StoreError<Corrupt> {
    /// A stored value that does not decode, described by `detail`.
    pub fn corrupt(detail: impl std::fmt::Display) -> Self {
        Self::Refused(Corrupt(detail.to_string()))
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<StoreError<E>> for HandlerError {
    fn from(error: StoreError<E>) -> Self {
        match error {
            StoreError::Database(error) => handler_error(error),
            StoreError::Refused(refused) => Self::permanent(refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_away_is_retried_and_refused_data_is_not() {
        let away: StoreError = StoreError::Database(sqlx::Error::PoolTimedOut);
        assert!(matches!(HandlerError::from(away), HandlerError::Transient { .. }));
        let missing: StoreError = StoreError::Database(sqlx::Error::RowNotFound);
        assert!(matches!(HandlerError::from(missing), HandlerError::Permanent(_)));
        assert!(matches!(HandlerError::from(StoreError::corrupt("status \"x\"")), HandlerError::Permanent(_)));
    }
}
