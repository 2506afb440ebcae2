//! The order service: the REST checkout API. It owns orders, each kept as
//! the stream of its events: a checkout starts the stream with `OrderPlaced`
//! (and publishes it) in one transaction; the orchestrator then confirms or
//! cancels the order and reports the saga's progress, each appended to the
//! stream. A read model, fed by its own consumer group, answers queries
//! across orders.

mod config;
pub mod domain;
mod handler;
pub mod http;
pub mod read_model;
mod store;

use std::time::Duration;

use checkout_kafka::{ConsumerSettings, RecordOrdering};
use checkout_messages::Topic;
use checkout_platform::{Applied, RunningService, ServiceBuilder, StartupError};

pub use config::Settings;
pub use handler::OrderHandler;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// How often the read model's staleness is measured.
const STALENESS_INTERVAL: Duration = Duration::from_millis(500);

pub async fn start(settings: Settings) -> Result<RunningService, StartupError> {
    let topics = [Topic::OrderCommands, Topic::OrderEvents, Topic::OrchestratorEvents];
    let mut builder = ServiceBuilder::connect(settings.service.clone(), &MIGRATOR, &topics).await?;
    let pool = builder.pool().clone();
    // Both consumers fold into the read model: each handles a partition's
    // records in order whatever the service's ordering, one transaction for
    // those it has queued (up to its batch). The position stored with them
    // then means that everything before it is applied, which the staleness
    // the read model states relies on.
    let service = builder.settings();
    let handler = ConsumerSettings {
        ordering: RecordOrdering::Partition,
        ..service.batched_consumer([Topic::OrderCommands, Topic::OrchestratorEvents])
    };
    let projection = ConsumerSettings {
        max_batch: settings.read_model_max_batch,
        concurrent_batches: service.concurrent_batches,
        ordering: RecordOrdering::Partition,
        ..service.consumer(read_model::GROUP, read_model::OWN_TOPICS)
    };
    builder.consume_with("consumer", handler, Applied(OrderHandler::new(pool.clone())))?;
    builder.consume_with("read model", projection, read_model::Projection::new(pool.clone()))?;
    let staleness = read_model::Staleness::default();
    let names = builder.kafka_settings().topic_names();
    let monitor = read_model::StalenessMonitor {
        staleness: staleness.clone(),
        watermarks: checkout_kafka::Watermarks::new(builder.kafka_settings())?,
        pool: pool.clone(),
        topics: read_model::TOPICS.iter().map(|t| names.physical(*t)).collect(),
        interval: STALENESS_INTERVAL,
    };
    builder.spawn("read model staleness", |stop| monitor.run(stop));
    let outcomes = http::Outcomes::default();
    builder.spawn("order status listener", {
        let (pool, outcomes) = (pool.clone(), outcomes.clone());
        move |stop| outcomes.listen(pool, stop)
    });
    Ok(builder.serve(http::routes(pool, staleness, outcomes)))
}
