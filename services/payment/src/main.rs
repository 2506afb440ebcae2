use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    checkout_platform::run("payment", env!("CARGO_PKG_VERSION"), 8083, |env| async move {
        checkout_payment::start(checkout_payment::Settings::from_env(&env)?).await
    })
    .await
}
