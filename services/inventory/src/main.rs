use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    checkout_platform::run("inventory", env!("CARGO_PKG_VERSION"), 8082, |env| async move {
        checkout_inventory::start(checkout_inventory::Settings::from_env(&env)?).await
    })
    .await
}
