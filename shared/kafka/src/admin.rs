//! Topic administration through the Kafka admin API.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::{KafkaSettings, TopicSpec};

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
    #[error("could not delete topic {topic}: {code}")]
    DeleteTopic { topic: String, code: RDKafkaErrorCode },
    #[error("could not configure topic {topic}: {code}")]
    Configure { topic: String, code: RDKafkaErrorCode },
    #[error("topic request failed: {0}")]
    Request(#[source] KafkaError),
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn admin(settings: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, AdminError> {
    settings.base_config().create().map_err(AdminError::Create)
}

/// Creates each topic that does not exist yet with `partitions` partitions
/// and its configs, and gives the topics that exist the configs of their
/// spec (so a changed retention reaches existing clusters); returns the
/// names it created.
pub async fn create_topics(
    settings: &KafkaSettings,
    specs: &[TopicSpec],
    partitions: i32,
    replication: i32,
) -> Result<Vec<String>, AdminError> {
    let names: Vec<String> = specs.iter().map(|spec| spec.name.clone()).collect();
    let missing = missing_topics(settings, &names).await?;
    let client = admin(settings)?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let configs: Vec<Vec<(&str, String)>> = specs.iter().map(TopicSpec::configs).collect();

    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&configs)
        .filter(|(spec, _)| missing.contains(&spec.name))
        .map(|(spec, configs)| {
            configs.iter().fold(
                NewTopic::new(&spec.name, partitions, TopicReplication::Fixed(replication)),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    if !new_topics.is_empty() {
        for result in client.create_topics(&new_topics, &options).await.map_err(AdminError::Request)? {
            match result {
                // Someone else created it between our check and our request: fine.
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(AdminError::CreateTopic { topic, code }),
            }
        }
    }

    let existing: Vec<AlterConfig<'_>> = specs
        .iter()
        .zip(&configs)
        .filter(|(spec, _)| !missing.contains(&spec.name))
        .map(|(spec, configs)| {
            configs.iter().fold(AlterConfig::new(ResourceSpecifier::Topic(&spec.name)), |alter, (key, value)| {
                alter.set(key, value)
            })
        })
        .collect();
    if !existing.is_empty() {
        for result in client.alter_configs(&existing, &options).await.map_err(AdminError::Request)? {
            if let Err((resource, code)) = result {
                return Err(AdminError::Configure { topic: format!("{resource:?}"), code });
            }
        }
    }
    Ok(missing)
}

/// Deletes the named topics; a topic that does not exist is not an error.
pub async fn delete_topics(settings: &KafkaSettings, names: &[String]) -> Result<(), AdminError> {
    if names.is_empty() {
        return Ok(());
    }
    let client = admin(settings)?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for result in client.delete_topics(&names, &options).await.map_err(AdminError::Request)? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => return Err(AdminError::DeleteTopic { topic, code }),
        }
    }
    Ok(())
}

/// The configs set on a topic itself (not inherited from the broker).
pub async fn topic_configs(settings: &KafkaSettings, name: &str) -> Result<BTreeMap<String, String>, AdminError> {
    let client = admin(settings)?;
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let resource = ResourceSpecifier::Topic(name);
    let results = client.describe_configs([&resource], &options).await.map_err(AdminError::Request)?;
    let mut configs = BTreeMap::new();
    for result in results {
        let resource = result.map_err(|code| AdminError::Configure { topic: name.to_owned(), code })?;
        for entry in resource.entries {
            if entry.source == ConfigSource::DynamicTopic
                && let Some(value) = entry.value
            {
                configs.insert(entry.name, value);
            }
        }
    }
    Ok(configs)
}

/// How many partitions `name` has.
pub async fn partition_count(settings: &KafkaSettings, name: &str) -> Result<i32, AdminError> {
    let client = admin(settings)?;
    let servers = settings.bootstrap_servers.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = client.inner().fetch_metadata(Some(&name), TIMEOUT)?;
        let count = metadata.topics().iter().find(|t| t.name() == name).map_or(0, |t| t.partitions().len());
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    })
    .await
    .map_err(|_| AdminError::Request(KafkaError::Canceled))?
    .map_err(|source| AdminError::Metadata { servers, source })
    .and_then(|count| if count > 0 { Ok(count) } else { Err(AdminError::Request(KafkaError::NoMessageReceived)) })
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
