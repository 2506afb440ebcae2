use std::future::Future;
use std::time::Duration;

use axum::Router;
use checkout_kafka::{ConsumerRuntime, Handler};
use checkout_outbox::OutboxRelay;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{task} failed: {message}")]
    TaskFailed { task: &'static str, message: String },
    #[error("{0} did not stop within the shutdown grace period")]
    ShutdownTimedOut(&'static str),
}

/// Runs the long-lived parts of a service (HTTP server, consumers, relay,
/// timers) under one shutdown token. When any part fails, or the token is
/// cancelled, every part is asked to stop and given `grace` to finish.
pub struct ServiceHost {
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, Result<(), String>)>,
    grace: Duration,
}

impl std::fmt::Debug for ServiceHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHost").field("tasks", &self.tasks.len()).finish_non_exhaustive()
    }
}

impl ServiceHost {
    pub fn new(grace: Duration) -> Self {
        Self { shutdown: CancellationToken::new(), tasks: JoinSet::new(), grace }
    }

    /// The token every part watches; cancelled when the service stops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs `task` until it returns; it must return soon after the token is cancelled.
    pub fn spawn<F, E>(&mut self, name: &'static str, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let future = task(self.shutdown.clone());
        self.tasks.spawn(async move { (name, future.await.map_err(|e| e.to_string())) });
    }

    pub fn serve(&mut self, listener: TcpListener, router: Router) {
        self.spawn("http server", |shutdown| async move {
            axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
        });
    }

    pub fn consume<H: Handler>(&mut self, name: &'static str, runtime: ConsumerRuntime<H>) {
        self.spawn(name, |shutdown| runtime.run(shutdown));
    }

    pub fn relay(&mut self, relay: OutboxRelay) {
        self.spawn("outbox relay", |shutdown| async move {
            relay.run(shutdown).await;
            Ok::<(), std::convert::Infallible>(())
        });
    }

    /// Runs until `stop` is cancelled or a part ends on its own (which is a
    /// failure: parts only end when asked to), then stops everything.
    pub async fn run_until_stopped(mut self, stop: CancellationToken) -> Result<(), HostError> {
        let mut failure = None;
        tokio::select! {
            () = stop.cancelled() => {}
            Some(joined) = self.tasks.join_next() => {
                failure = Some(match joined {
                    Ok((task, Ok(()))) => HostError::TaskFailed { task, message: "stopped unexpectedly".into() },
                    Ok((task, Err(message))) => HostError::TaskFailed { task, message },
                    Err(error) => HostError::TaskFailed { task: "task", message: error.to_string() },
                });
            }
        }
        if let Some(error) = &failure {
            tracing::error!(%error, "stopping the service");
        }
        self.shutdown.cancel();
        let deadline = tokio::time::sleep(self.grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = self.tasks.join_next() => match joined {
                    None => break,
                    Some(Ok((task, Err(message)))) => {
                        tracing::warn!(task, message, "error while stopping");
                    }
                    Some(_) => {}
                },
                () = &mut deadline => {
                    self.tasks.abort_all();
                    return Err(failure.unwrap_or(HostError::ShutdownTimedOut("the service")));
                }
            }
        }
        tracing::info!("stopped");
        failure.map_or(Ok(()), Err)
    }
}
