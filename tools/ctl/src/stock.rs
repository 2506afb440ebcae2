//! `checkoutctl stock …`: the inventory's catalog API.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Global;
use crate::error::CtlError;
use crate::output::{cell, table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every product's stock, or one product's.
    Show { sku: Option<String> },
    /// Sets how many units of SKU are on hand (operator); the change is
    /// recorded with who made it and why. Fewer than are reserved is refused.
    Set {
        sku: String,
        quantity: u32,
        /// Why; kept with the change.
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(global: &Global, command: Command) -> Result<(), CtlError> {
    let http = global.http();
    let base = &global.inventory_url;
    match command {
        Command::Show { sku: None } => {
            let products = http.get(&format!("{base}/products")).await?;
            global.output.print(&products, products_table);
        }
        Command::Show { sku: Some(sku) } => {
            let product = http.get(&format!("{base}/products/{sku}")).await?;
            global.output.print(&Value::Array(vec![product.clone()]), products_table);
        }
        Command::Set { sku, quantity, reason } => {
            let url = format!("{base}/products/{sku}");
            // The endpoint sets the whole product: keep its name and price.
            let product = http.get(&url).await?;
            let body = json!({
                "name": product["name"],
                "unit_price": product["unit_price"],
                "on_hand": quantity,
                "reason": reason,
            });
            let product = http.operate(Method::PUT, &url, &body).await?;
            global.output.print(&Value::Array(vec![product]), products_table);
        }
    }
    Ok(())
}

fn products_table(products: &Value) -> String {
    let mut rows = table(&["SKU", "NAME", "PRICE", "ON HAND", "RESERVED", "AVAILABLE"]);
    for product in products.as_array().into_iter().flatten() {
        let price = serde_json::from_value::<checkout_domain::Money>(product["unit_price"].clone())
            .map_or_else(|_| cell(&product["unit_price"]), |money| money.to_string());
        rows.add_row([
            cell(&product["sku"]),
            cell(&product["name"]),
            price,
            cell(&product["on_hand"]),
            cell(&product["reserved"]),
            cell(&product["available"]),
        ]);
    }
    rows.to_string()
}
