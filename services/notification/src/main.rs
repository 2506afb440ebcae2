use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    checkout_platform::run("notification", env!("CARGO_PKG_VERSION"), 8084, |env| async move {
        checkout_notification::start(checkout_notification::Settings::from_env(&env)?).await
    })
    .await
}
