//! Assembling and running a service: every service connects, migrates, checks
//! its topics and runs its consumers, relay and HTTP server the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use checkout_kafka::{ConsumerRuntime, ConsumerSettings, ConsumerStatus, Handler, Publisher};
use checkout_messages::Topic;
use checkout_outbox::{Apply, Backlog, OutboxRelay};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Env, ServiceSettings};
use crate::http::{Readiness, ReadinessCheck, service_router};
use crate::metrics::Collectors;
use crate::startup::connect_messaging;
use crate::{Applied, HostError, ServiceHost, StartupError, database};

/// A service being assembled: connected, migrated, its topics checked.
#[derive(Debug)]
pub struct ServiceBuilder {
    settings: ServiceSettings,
    pool: PgPool,
    publisher: Publisher,
    listener: TcpListener,
    host: ServiceHost,
    readiness: Readiness,
    collectors: Collectors,
}

impl ServiceBuilder {
    /// Connects to the database and migrates it, checks that `topics` exist,
    /// and binds the HTTP port.
    pub async fn connect(
        settings: ServiceSettings,
        migrator: &Migrator,
        topics: &[Topic],
    ) -> Result<Self, StartupError> {
        // The recorder first: what consumers, relay and collectors register
        // from here on (counters at zero included) is then exported.
        crate::metrics::handle();
        let pool = database::connect(&settings.database).await?;
        database::migrate(&pool, migrator).await?;
        let publisher = connect_messaging(&settings.kafka, topics).await?;
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .map_err(|source| StartupError::Bind { addr: settings.http_addr, source })?;
        let host = ServiceHost::new(settings.shutdown_grace);
        let readiness = Readiness::new().with(ReadinessCheck::Database(pool.clone()));
        let outbox = pool.clone();
        let collectors = Collectors::new().with_pool(pool.clone()).with("outbox", move || {
            let pool = outbox.clone();
            async move { Backlog::read(&pool).await.map(Backlog::export) }
        });
        Ok(Self { settings, pool, publisher, listener, host, readiness, collectors })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn settings(&self) -> &ServiceSettings {
        &self.settings
    }

    /// Runs `handler` as this service's member of the consumer group named
    /// after the service, over `topics`; returns what can be seen of it.
    pub fn consume<H: Handler>(&mut self, topics: &[Topic], handler: H) -> Result<ConsumerStatus, StartupError> {
        let group = self.settings.service.clone();
        self.consume_in("consumer", &group, topics, handler)
    }

    /// Like [`consume`](Self::consume), for a handler that applies each
    /// message in a transaction ([`Applied`]): up to `CONSUMER_MAX_BATCH`
    /// ready records are applied in one.
    pub fn consume_batched<A: Apply>(&mut self, topics: &[Topic], handler: A) -> Result<ConsumerStatus, StartupError> {
        let settings = self.settings.batched_consumer(topics.iter().copied());
        self.consume_with("consumer", settings, Applied(handler))
    }

    /// Runs `handler` as a member of another consumer group of this service
    /// (e.g. a projection that reads at its own pace), named `task` in logs.
    pub fn consume_in<H: Handler>(
        &mut self,
        task: &'static str,
        group: &str,
        topics: &[Topic],
        handler: H,
    ) -> Result<ConsumerStatus, StartupError> {
        let settings = self.settings.consumer(group, topics.iter().copied());
        self.consume_with(task, settings, handler)
    }

    /// Runs `handler` as a member of `settings.group_id` with settings of its
    /// own (start from [`ServiceSettings::consumer`]).
    pub fn consume_with<H: Handler>(
        &mut self,
        task: &'static str,
        settings: ConsumerSettings,
        handler: H,
    ) -> Result<ConsumerStatus, StartupError> {
        let group = settings.group_id.clone();
        let runtime = ConsumerRuntime::new(&self.settings.kafka, settings, self.publisher.clone(), handler)?;
        let status = runtime.status();
        self.readiness = std::mem::take(&mut self.readiness).with(ReadinessCheck::Consumer(group, status.clone()));
        self.host.consume(task, runtime);
        Ok(status)
    }

    /// The broker settings the service runs with.
    pub fn kafka_settings(&self) -> &checkout_kafka::KafkaSettings {
        &self.settings.kafka
    }

    /// Adds gauges read at each scrape of `/metrics` (what the service's
    /// database holds); `name` labels the collector's failures.
    pub fn collect<F, Fut, E>(&mut self, name: &'static str, collect: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        self.collectors = std::mem::take(&mut self.collectors).with(name, collect);
    }

    /// Runs a background loop (a timer, a sweeper) until shutdown.
    pub fn spawn<F, E>(&mut self, name: &'static str, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.host.spawn(name, task);
    }

    /// Starts the outbox relay and serves `routes` with the health endpoints.
    pub fn serve(mut self, routes: Router) -> RunningService {
        let relay =
            OutboxRelay::new(self.pool.clone(), self.publisher, self.settings.kafka.topic_names(), self.settings.relay);
        self.host.relay(relay);
        let readiness = self.readiness.with(ReadinessCheck::Outbox(self.pool.clone(), OUTBOX_MAX_AGE));
        let addr = self.listener.local_addr().unwrap_or(self.settings.http_addr);
        self.host.serve(self.listener, service_router(routes, readiness, self.collectors));
        RunningService { addr, host: self.host }
    }
}

/// A service whose outbox holds a message this much older than it should
/// is not ready: its relay is not publishing (broker away, relay stuck).
const OUTBOX_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// A started service.
#[derive(Debug)]
pub struct RunningService {
    addr: SocketAddr,
    host: ServiceHost,
}

impl RunningService {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) -> Result<(), HostError> {
        self.host.run_until_stopped(stop).await
    }
}

/// The whole life of a service process: telemetry, settings, start, run
/// until SIGTERM. Problems are reported on stderr or in the logs, and turn
/// into a failing exit code. `<binary> healthcheck` instead probes a running
/// instance's `/readyz` (for container health checks).
pub async fn run<F, Fut>(service: &str, version: &str, default_port: u16, build: F) -> ExitCode
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = Result<RunningService, StartupError>>,
{
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return crate::healthcheck::probe(&Env::process(), default_port);
    }
    let telemetry = match checkout_telemetry::TelemetrySettings::from_env(service, version)
        .and_then(|settings| checkout_telemetry::init(&settings))
    {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("{service}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let running = match build(Env::process()).await {
        Ok(running) => running,
        Err(error) => {
            tracing::error!(%error, "{service} failed to start");
            drop(telemetry);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(http.port = running.port(), version, "{service} started");
    let result = running.run_until_stopped(crate::shutdown_on_signal()).await;
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{service} stopped with an error");
            ExitCode::FAILURE
        }
    };
    drop(telemetry);
    code
}
