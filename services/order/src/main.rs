use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    checkout_platform::run("order", env!("CARGO_PKG_VERSION"), 8080, |env| async move {
        checkout_order::start(checkout_order::Settings::from_env(&env)?).await
    })
    .await
}
