//! Topic administration through the Kafka admin API.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::KafkaSettings;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("kafka admin client could not be created: {0}")]
    Create(#[source] KafkaError),
    #[error("could not read cluster metadata from {servers}: {source}")]
    Metadata {
        servers: String,
        #[source]
        source: KafkaError,
    },
    #[error("could not create topic {topic}: {code}")]
    CreateTopic { topic: String, code: RDKafkaErrorCode },
    #[error("topic request failed: {0}")]
    Request(#[source] KafkaError),
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn admin(settings: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, AdminError> {
    settings.base_config().create().map_err(AdminError::Create)
}

/// Creates each topic that does not exist yet with `partitions` partitions;
/// returns the names it created.
pub async fn create_topics(
    settings: &KafkaSettings,
    names: &[String],
    partitions: i32,
    replication: i32,
) -> Result<Vec<String>, AdminError> {
    let missing = missing_topics(settings, names).await?;
    if missing.is_empty() {
        return Ok(missing);
    }
    let client = admin(settings)?;
    let new_topics: Vec<NewTopic<'_>> =
        missing.iter().map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(replication))).collect();
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = client.create_topics(&new_topics, &options).await.map_err(AdminError::Request)?;
    for result in results {
        match result {
            // Someone else created it between our check and our request: fine.
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::CreateTopic { topic, code }),
        }
    }
    Ok(missing)
}

/// Every topic on the cluster.
pub async fn list_topics(settings: &KafkaSettings) -> Result<Vec<String>, AdminError> {
    let client = admin(settings)?;
    let servers = settings.bootstrap_servers.clone();
    tokio::task::spawn_blocking(move || {
        client.inner().fetch_metadata(None, TIMEOUT).map(|m| m.topics().iter().map(|t| t.name().to_owned()).collect())
    })
    .await
    .map_err(|_| AdminError::Request(KafkaError::Canceled))?
    .map_err(|source| AdminError::Metadata { servers, source })
}

/// The names in `names` that the cluster does not have. Asks about those
/// topics only, so the answer costs the same however many topics exist.
pub async fn missing_topics(settings: &KafkaSettings, names: &[String]) -> Result<Vec<String>, AdminError> {
    let client = admin(settings)?;
    let servers = settings.bootstrap_servers.clone();
    let names = names.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut missing = Vec::new();
        for name in names {
            let metadata = client.inner().fetch_metadata(Some(&name), TIMEOUT)?;
            let exists =
                metadata.topics().iter().any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty());
            if !exists {
                missing.push(name);
            }
        }
        Ok(missing)
    })
    .await
    .map_err(|_| AdminError::Request(KafkaError::Canceled))?
    .map_err(|source| AdminError::Metadata { servers, source })
}
