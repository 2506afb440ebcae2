use std::time::Instant;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::StartupError;
use crate::config::DatabaseSettings;

/// Connects to the service's database, retrying until `connect_timeout` (the
/// database may still be starting when the service does).
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, StartupError> {
    let options: PgConnectOptions =
        settings.url.expose_secret().parse().map_err(|e: sqlx::Error| StartupError::DatabaseUrl(e.to_string()))?;
    // The service runs its outbox relay, which its transactions hand their
    // rows to: the outbox's trigger sends no `NOTIFY` for them.
    let options = options.options([checkout_outbox::IN_PROCESS]);
    let database = options.get_database().unwrap_or("postgres").to_owned();
    let started = Instant::now();
    loop {
        let attempt = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // An event per acquire, which telemetry turns into
            // `checkout_db_pool_acquire_seconds` (and no log line).
            .acquire_time_level(log::LevelFilter::Trace)
            .connect_with(options.clone())
            .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(error) if started.elapsed() < settings.connect_timeout => {
                tracing::warn!(%error, database, "database not reachable yet; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(error) => return Err(StartupError::Database { database, source: error }),
        }
    }
}

/// Creates the outbox and inbox tables, then runs the service's own migrations.
pub async fn migrate(pool: &PgPool, service: &Migrator) -> Result<(), StartupError> {
    checkout_outbox::MIGRATOR.run(pool).await?;
    service.run(pool).await?;
    Ok(())
}
