use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    checkout_platform::run("payment", env!("CARGO_PKG_VERSION"), |env| async move {
        checkout_payment::start(checkout_payment::Settings::from_env(&env)?).await
    })
    .await
}
