use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    checkout_platform::run("orchestrator", env!("CARGO_PKG_VERSION"), 8081, |env| async move {
        checkout_orchestrator::start(checkout_orchestrator::Settings::from_env(&env)?).await
    })
    .await
}
