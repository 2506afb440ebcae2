//! Errors that stop a service from starting, and the messaging checks made then.

use checkout_kafka::admin::{AdminError, missing_topics};
use checkout_kafka::{KafkaSettings, PublishError, Publisher};
use checkout_messages::Topic;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    DatabaseUrl(String),
    #[error("cannot connect to database {database}: {source}")]
    Database {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cannot reach Kafka: {0}")]
    Kafka(#[from] AdminError),
    #[error("Kafka producer: {0}")]
    Producer(#[from] PublishError),
    #[error(
        "topics missing on the broker: {}; create them first (deploy/native/stack.sh up, or the compose topics job)",
        .0.join(", ")
    )]
    MissingTopics(Vec<String>),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Consumer(#[from] checkout_kafka::ConsumerError),
    #[error(transparent)]
    Replay(#[from] checkout_kafka::ReplayError),
}

/// The producer a service publishes with, after checking that the topics it
/// reads and writes (and their dead-letter topics) exist.
pub async fn connect_messaging(settings: &KafkaSettings, topics: &[Topic]) -> Result<Publisher, StartupError> {
    let names = settings.topic_names();
    let needed: Vec<String> = topics.iter().flat_map(|&t| [names.physical(t), names.dead_letter(t)]).collect();
    let missing = missing_topics(settings, &needed).await?;
    if !missing.is_empty() {
        return Err(StartupError::MissingTopics(missing));
    }
    Ok(Publisher::new(settings)?)
}
