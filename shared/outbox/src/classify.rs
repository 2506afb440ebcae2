use checkout_kafka::{Dependency, HandlerError};

use crate::OutboxError;

/// Whether retrying may help: lost connections, an exhausted pool, a server
/// shutting down, and conflicts between concurrent transactions.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception, 40: transaction rollback (serialization
            // failure, deadlock), 53: insufficient resources, 57P0x: shutdown.
            code.starts_with("08")
                || code.starts_with("40")
                || code.starts_with("53")
                || code.starts_with("57P0")
                // A read-only node (a replica, or a primary being demoted).
                || code == "25006"
        }),
        _ => false,
    }
}

/// Whether a handler failed on a serialization failure (`40001`): a
/// concurrent writer changed what an optimistic write read, and reading
/// again may well succeed at once.
pub fn is_conflict(error: &HandlerError) -> bool {
    let HandlerError::Transient { error, .. } = error else {
        return false;
    };
    error
        .downcast_ref::<sqlx::Error>()
        .and_then(sqlx::Error::as_database_error)
        .and_then(|db| db.code().map(|code| code == "40001"))
        .unwrap_or(false)
}

/// Counts a conflict of `consumer`'s optimistic write in
/// `checkout_write_conflicts_total`.
pub fn count_conflict(consumer: &'static str) {
    metrics::counter!("checkout_write_conflicts_total", "consumer" => consumer).increment(1);
}

/// Maps a database error in a handler to a retry or a dead letter.
pub fn handler_error(error: impl Into<OutboxError>) -> HandlerError {
    match error.into() {
        OutboxError::Database(error) if is_transient(&error) => HandlerError::transient(Dependency::Database, error),
        other => HandlerError::permanent(other),
    }
}

impl From<OutboxError> for HandlerError {
    fn from(error: OutboxError) -> Self {
        handler_error(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_trouble_is_transient_and_bad_data_is_not() {
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::Io(std::io::Error::other("reset"))));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        assert!(matches!(handler_error(sqlx::Error::RowNotFound), HandlerError::Permanent(_)));
        assert!(matches!(handler_error(sqlx::Error::PoolTimedOut), HandlerError::Transient { .. }));
    }
}
