//! Logs and traces, set up once per process.
//!
//! - Logs: `tracing` events as JSON lines (`LOG_FORMAT=json`, the default) or
//!   readable text (`LOG_FORMAT=text`), filtered by `RUST_LOG`. Every line
//!   carries the fields of the spans it is in, so a line about a message shows
//!   its `order.id`, `correlation.id` and `causation.id`.
//! - Traces: every span is an OpenTelemetry span. With
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` set (e.g. `http://jaeger:4318`) they are
//!   exported over OTLP/HTTP in batches; without it, trace ids are still
//!   created and propagated, nothing is exported. `OTEL_TRACES_EXPORTER=none`
//!   turns export off explicitly.
//!
//! - Metrics: sqlx's event for each connection acquire becomes
//!   `checkout_db_pool_acquire_seconds` (see `pool_acquires`).
//!
//! The returned guard flushes pending spans when dropped.

mod pool_acquires;

use std::io::IsTerminal as _;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Quiet defaults for chatty dependencies; `RUST_LOG` overrides them.
const DEFAULT_LOG_FILTER: &str = "info,librdkafka=warn,rdkafka=warn,sqlx=warn,hyper=warn";
/// Spans become traces independently of `RUST_LOG`, so turning logs down never
/// breaks trace propagation; the exporter's own HTTP client is left out, or
/// exporting would trace itself.
const TRACE_FILTER: &str =
    "info,h2=off,hyper=off,hyper_util=off,reqwest=off,tower=off,sqlx=off,librdkafka=off,rdkafka=off";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    pub service_name: String,
    pub service_version: String,
    /// Distinguishes replicas of one service in traces.
    pub instance_id: String,
    pub log_format: LogFormat,
    pub export_spans: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("LOG_FORMAT must be \"json\" or \"text\", got {0:?}")]
    LogFormat(String),
    #[error("OTLP exporter could not be created: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global subscriber is already installed: {0}")]
    AlreadyInitialised(#[from] tracing_subscriber::util::TryInitError),
}

impl TelemetrySettings {
    /// Every variable `from_env` reads (plus `RUST_LOG`, read by the log filter).
    pub const VARIABLES: [&'static str; 6] = [
        "LOG_FORMAT",
        "RUST_LOG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SERVICE_INSTANCE_ID",
    ];

    /// Reads `LOG_FORMAT`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_TRACES_EXPORTER` and
    /// `OTEL_SERVICE_INSTANCE_ID` (default: a fresh id).
    pub fn from_env(service_name: &str, service_version: &str) -> Result<Self, TelemetryError> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
        let log_format = match var("LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => return Err(TelemetryError::LogFormat(other.to_owned())),
        };
        let endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
        let disabled = var("OTEL_TRACES_EXPORTER").is_some_and(|value| value == "none");
        Ok(Self {
            service_name: service_name.to_owned(),
            service_version: service_version.to_owned(),
            instance_id: var("OTEL_SERVICE_INSTANCE_ID").unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            log_format,
            export_spans: endpoint.is_some() && !disabled,
        })
    }
}

/// Flushes and shuts down span export when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let provider = self.provider.clone();
        // Shutdown blocks on the exporter; keep it off the async worker threads.
        let _ = std::thread::spawn(move || provider.shutdown_with_timeout(Duration::from_secs(5))).join();
    }
}

/// Installs the global subscriber, tracer provider and W3C propagator.
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", settings.service_version.clone()),
            KeyValue::new("service.instance.id", settings.instance_id.clone()),
        ])
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if settings.export_spans {
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());

    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let logs = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .boxed(),
        // Colour codes only help a person at a terminal; in a file or a log
        // collector they are noise.
        LogFormat::Text => {
            tracing_subscriber::fmt::layer().compact().with_ansi(std::io::stdout().is_terminal()).boxed()
        }
    };
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(settings.service_name.clone()))
        .with_filter(EnvFilter::new(TRACE_FILTER));
    // sqlx's acquire events, at every level, to this layer only.
    let acquires = pool_acquires::PoolAcquires.with_filter(
        tracing_subscriber::filter::Targets::new().with_target(pool_acquires::TARGET, tracing::Level::TRACE),
    );
    tracing_subscriber::registry().with(logs.with_filter(log_filter)).with(traces).with(acquires).try_init()?;
    Ok(TelemetryGuard { provider })
}

/// The trace id of the current span, as 32 hex digits, if it has one.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}
