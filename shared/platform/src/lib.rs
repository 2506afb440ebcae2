//! What every checkout service runs on.
//!
//! A service's `main` reads its settings ([`config`]), connects to its own
//! database and migrates it ([`database`]), checks that its topics exist
//! ([`startup`]), and runs its HTTP server, consumers, outbox relay and timers
//! under one [`ServiceHost`], which stops them all gracefully on SIGTERM.
//! HTTP errors are RFC 9457 problem documents ([`http::Problem`]); every
//! service serves `/healthz`, `/readyz` and `/metrics`.

mod applied;
pub mod clock;
pub mod config;
pub mod database;
mod healthcheck;
mod host;
pub mod http;
pub mod metrics;
pub mod periodic;
mod service;
mod shutdown;
pub mod startup;

/// Every service allocates per record and per request (envelopes, JSON,
/// spans, SQL arguments). Under load glibc's `malloc` and `free` were about
/// a third of the services' own CPU (perf), and mimalloc's thread-local free
/// lists serve the same pattern for less; a binary that links this crate
/// (every service, the tools and the tests) allocates through it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use applied::Applied;
pub use host::{HostError, ServiceHost};
pub use service::{RunningService, ServiceBuilder, run};
pub use shutdown::shutdown_on_signal;
pub use startup::StartupError;
