//! The inventory service: owns the catalog and its stock.
//!
//! It reserves every line of an order or none (rejecting unknown SKUs and
//! short stock with the reason), releases a reservation, and commits it when
//! the payment is captured. Row locks on the products make concurrent orders
//! unable to oversell. A reservation neither committed nor released within
//! its time to live is released by a sweeper, so stock is never held forever
//! by an orchestrator that went away.

mod config;
mod expiry;
mod handler;
mod http;
mod pricing;
mod store;

use checkout_messages::Topic;
use checkout_platform::{RunningService, ServiceBuilder, StartupError};

pub use config::Settings;
pub use expiry::{SweepError, Sweeper};
pub use handler::InventoryHandler;
pub use pricing::{Rejection, StockLevel, price};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Starts the service: consumer, expiry sweeper, relay and HTTP server.
pub async fn start(settings: Settings) -> Result<RunningService, StartupError> {
    let topics = [Topic::InventoryCommands, Topic::InventoryEvents];
    let mut builder = ServiceBuilder::connect(settings.service.clone(), &MIGRATOR, &topics).await?;
    let pool = builder.pool().clone();
    builder.consume(&[Topic::InventoryCommands], InventoryHandler::new(pool.clone(), settings.reservation_ttl))?;
    let sweeper = Sweeper::new(pool.clone(), settings.expiry_sweep_interval);
    builder.spawn("reservation expiry", |shutdown| sweeper.run(shutdown));
    let stock = pool.clone();
    builder.collect("stock", move || {
        let pool = stock.clone();
        async move {
            for (sku, available) in store::available_units(&pool).await? {
                // Unit counts are far below 2^52.
                #[allow(clippy::cast_precision_loss)]
                metrics::gauge!("checkout_inventory_available_units", "sku" => sku).set(available as f64);
            }
            Ok::<(), store::StoreError>(())
        }
    });
    Ok(builder.serve(http::routes(http::Api { pool, operators: settings.operators })))
}
