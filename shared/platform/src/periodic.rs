//! Background passes over a table: a timer, an expiry sweep.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `pass` every `interval` until `shutdown`. A pass returns how many rows
/// it handled; one that handled a full `batch` runs again at once, so a
/// backlog drains without waiting an interval per batch. A failed pass is
/// logged and tried again at the next interval.
pub async fn drain_every<F, Fut, E>(
    interval: Duration,
    batch: i64,
    what: &'static str,
    shutdown: &CancellationToken,
    mut pass: F,
) -> Result<(), std::convert::Infallible>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, E>>,
    E: Display,
{
    let full = usize::try_from(batch).unwrap_or(usize::MAX);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(interval) => {}
        }
        loop {
            match pass().await {
                Ok(handled) if handled >= full => {}
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "{what} failed; retrying");
                    break;
                }
            }
        }
    }
}
