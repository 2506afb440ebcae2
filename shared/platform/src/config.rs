//! Settings from environment variables, validated at start: a bad value stops
//! the service with a message naming the variable.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkout_kafka::{ConsumerSettings, KafkaSettings, RecordOrdering, RetryPolicy};
use checkout_messages::Topic;
use checkout_outbox::RelaySettings;
use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
#[error("configuration variable {variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self { variable: variable.to_owned(), problem: problem.into() }
    }
}

/// Where settings come from: the process environment, or a map in tests.
/// It remembers which variables were asked for, so a deployment can be
/// checked for variables no service reads (typos, leftovers).
#[derive(Debug, Clone, Default)]
pub struct Env {
    overrides: Option<HashMap<String, String>>,
    asked: Arc<Mutex<BTreeSet<String>>>,
}

impl Env {
    pub fn process() -> Self {
        Self::default()
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let overrides = pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        Self { overrides: Some(overrides), asked: Arc::default() }
    }

    /// Variables of a map-backed `Env` that nothing has asked for.
    pub fn never_asked(&self) -> Vec<String> {
        let asked = self.asked.lock().map(|asked| asked.clone()).unwrap_or_default();
        let mut unasked: Vec<String> =
            self.overrides.iter().flat_map(HashMap::keys).filter(|name| !asked.contains(*name)).cloned().collect();
        unasked.sort();
        unasked
    }

    /// The variable's value, unless unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.insert(name.to_owned());
        }
        let value = match &self.overrides {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e| ConfigError::new(name, format!("cannot parse {raw:?}: {e}"))),
        }
    }

    /// A whole number of milliseconds (the variable's name should end in `_MS`).
    pub fn millis(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.parse(name, default).map(Duration::from_millis)
    }

    /// A whole number of seconds (the variable's name should end in `_SECS`).
    pub fn secs(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        self.parse(name, default.as_secs()).map(Duration::from_secs)
    }

    /// A positive count.
    pub fn count(&self, name: &str, default: u32) -> Result<u32, ConfigError> {
        let value: u32 = self.parse(name, default)?;
        if value == 0 { Err(ConfigError::new(name, "must be at least 1")) } else { Ok(value) }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// How long to keep trying to reach the database at start.
    pub connect_timeout: Duration,
    /// How long a request or handler waits for a connection before failing
    /// (transiently: a request gets `503`, a record is retried).
    pub acquire_timeout: Duration,
}

/// What every service is configured with.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub service: String,
    pub http_addr: SocketAddr,
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    /// Per key, or per partition (the default for services that keep state
    /// in PostgreSQL: see the README).
    pub ordering: RecordOrdering,
    pub max_in_flight: usize,
    pub partition_buffer: usize,
    /// Most records handed to one `handle_batch` call by consumers whose
    /// handlers apply a batch in one transaction (see
    /// [`ServiceBuilder::consume_batched`](crate::ServiceBuilder::consume_batched)).
    pub max_batch: usize,
    /// How many of those batches a consumer runs at once, records of all its
    /// partitions together (group commit): `ConsumerSettings::concurrent_batches`.
    pub concurrent_batches: usize,
    pub retry: RetryPolicy,
    pub relay: RelaySettings,
    /// How long in-flight work may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
}

/// Records handled at once per consumer unless configured: a handler that
/// needs the database holds a connection, so more in flight than the pool has
/// connections only queues on the pool (and handlers that time out waiting
/// retry, which under a backlog takes the consumer to a crawl). Two
/// connections are left for the relay and HTTP requests.
fn default_in_flight(max_connections: u32) -> u32 {
    max_connections.saturating_sub(2).max(1)
}

impl ServiceSettings {
    /// Reads the shared variables (see the README's configuration table).
    pub fn from_env(env: &Env, service: &str, default_port: u16) -> Result<Self, ConfigError> {
        let kafka_defaults = KafkaSettings::default();
        let retry_defaults = RetryPolicy::default();
        let relay_defaults = RelaySettings::default();
        let bootstrap_servers = env.string("KAFKA_BOOTSTRAP_SERVERS", &kafka_defaults.bootstrap_servers);
        let retry = RetryPolicy {
            initial_backoff: env.millis("CONSUMER_RETRY_INITIAL_BACKOFF_MS", retry_defaults.initial_backoff)?,
            max_backoff: env.millis("CONSUMER_RETRY_MAX_BACKOFF_MS", retry_defaults.max_backoff)?,
        };
        let max_connections = env.count("DATABASE_MAX_CONNECTIONS", 10)?;
        let settings = Self {
            service: service.to_owned(),
            http_addr: env.parse("HTTP_ADDR", SocketAddr::from(([0, 0, 0, 0], default_port)))?,
            database: DatabaseSettings {
                url: SecretString::from(
                    env.string("DATABASE_URL", &format!("postgres://postgres@127.0.0.1:5432/checkout_{service}")),
                ),
                max_connections,
                connect_timeout: env.secs("DATABASE_CONNECT_TIMEOUT_SECS", Duration::from_secs(30))?,
                acquire_timeout: env.millis("DATABASE_ACQUIRE_TIMEOUT_MS", Duration::from_secs(2))?,
            },
            kafka: KafkaSettings {
                bootstrap_servers,
                topic_prefix: env.string("KAFKA_TOPIC_PREFIX", ""),
                client_id: service.to_owned(),
                fetch_wait_max: env.millis("KAFKA_FETCH_WAIT_MAX_MS", kafka_defaults.fetch_wait_max)?,
                session_timeout: env.millis("KAFKA_SESSION_TIMEOUT_MS", kafka_defaults.session_timeout)?,
                assignment_strategy: env
                    .string("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", &kafka_defaults.assignment_strategy),
                linger: env.millis("KAFKA_LINGER_MS", kafka_defaults.linger)?,
                delivery_timeout: env.millis("KAFKA_DELIVERY_TIMEOUT_MS", kafka_defaults.delivery_timeout)?,
            },
            ordering: env.parse("CONSUMER_ORDERING", RecordOrdering::Key)?,
            max_in_flight: usize::try_from(env.count("CONSUMER_MAX_IN_FLIGHT", default_in_flight(max_connections))?)
                .unwrap_or(1),
            partition_buffer: usize::try_from(env.count("CONSUMER_PARTITION_BUFFER", 64)?).unwrap_or(64),
            max_batch: usize::try_from(env.count("CONSUMER_MAX_BATCH", 32)?).unwrap_or(32),
            concurrent_batches: usize::try_from(env.count("CONSUMER_CONCURRENT_BATCHES", 2)?).unwrap_or(2),
            retry,
            relay: RelaySettings {
                batch_size: i64::from(env.count("OUTBOX_BATCH_SIZE", 500)?),
                poll_interval: env.millis("OUTBOX_POLL_INTERVAL_MS", relay_defaults.poll_interval)?,
                mark_interval: env.millis("OUTBOX_MARK_INTERVAL_MS", relay_defaults.mark_interval)?,
                ..relay_defaults
            },
            shutdown_grace: env.secs("SHUTDOWN_GRACE_SECS", Duration::from_secs(20))?,
        };
        if settings.kafka.bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::new("KAFKA_BOOTSTRAP_SERVERS", "must name at least one broker"));
        }
        if settings.retry.initial_backoff > settings.retry.max_backoff {
            return Err(ConfigError::new(
                "CONSUMER_RETRY_INITIAL_BACKOFF_MS",
                "must not exceed CONSUMER_RETRY_MAX_BACKOFF_MS",
            ));
        }
        Ok(settings)
    }

    /// Consumer settings for one group of this service.
    pub fn consumer(&self, group_id: &str, topics: impl IntoIterator<Item = Topic>) -> ConsumerSettings {
        ConsumerSettings {
            ordering: self.ordering,
            max_in_flight: self.max_in_flight,
            partition_buffer: self.partition_buffer,
            retry: self.retry,
            ..ConsumerSettings::new(group_id, topics)
        }
    }

    /// The settings of the service's own group for a handler that applies
    /// the records a partition has ready in one transaction: up to
    /// `CONSUMER_MAX_BATCH` of them.
    pub fn batched_consumer(&self, topics: impl IntoIterator<Item = Topic>) -> ConsumerSettings {
        ConsumerSettings {
            max_batch: self.max_batch,
            concurrent_batches: self.concurrent_batches,
            ..self.consumer(&self.service, topics)
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn defaults_need_no_environment() {
        let settings = ServiceSettings::from_env(&Env::from_pairs([]), "order", 8080).unwrap();
        assert_eq!(settings.http_addr.port(), 8080);
        assert_eq!(settings.database.url.expose_secret(), "postgres://postgres@127.0.0.1:5432/checkout_order");
        assert_eq!(settings.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(settings.kafka.client_id, "order");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("KAFKA_FETCH_WAIT_MAX_MS", "soon")]);
        let error = ServiceSettings::from_env(&env, "order", 8080).unwrap_err();
        assert_eq!(error.variable, "KAFKA_FETCH_WAIT_MAX_MS");
        assert!(error.to_string().contains("\"soon\""), "{error}");
        let env = Env::from_pairs([("CONSUMER_RETRY_MAX_BACKOFF_MS", "-1")]);
        assert_eq!(
            ServiceSettings::from_env(&env, "order", 8080).unwrap_err().variable,
            "CONSUMER_RETRY_MAX_BACKOFF_MS"
        );
        let env = Env::from_pairs([("HTTP_ADDR", "localhost")]);
        assert_eq!(ServiceSettings::from_env(&env, "order", 8080).unwrap_err().variable, "HTTP_ADDR");
    }

    #[test]
    fn the_database_url_is_not_printed() {
        let env = Env::from_pairs([("DATABASE_URL", "postgres://app:hunter2@db/orders")]);
        let settings = ServiceSettings::from_env(&env, "order", 8080).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
