use std::process::ExitCode;

use checkout_platform::config::Env;
use clap::{Parser, Subcommand};

/// The order service: the REST checkout API (run without a command).
#[derive(Debug, Parser)]
#[command(name = "order", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rebuild the read model by replaying its topics from offset 0 into
    /// fresh tables, then swap them in (configured like the service).
    RebuildReadModel {
        /// Compare with the live read model, report, and leave it in place.
        #[arg(long)]
        check: bool,
    },
    /// Probe a running instance's /readyz (for container health checks).
    Healthcheck,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Some(Command::RebuildReadModel { check }) => rebuild(check).await,
        None | Some(Command::Healthcheck) => {
            checkout_platform::run("order", env!("CARGO_PKG_VERSION"), 8080, |env| async move {
                checkout_order::start(checkout_order::Settings::from_env(&env)?).await
            })
            .await
        }
    }
}

async fn rebuild(check: bool) -> ExitCode {
    let settings = match checkout_order::Settings::from_env(&Env::process()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("order rebuild-read-model: {error}");
            return ExitCode::FAILURE;
        }
    };
    let service = settings.service;
    match checkout_order::read_model::rebuild(&service.database.url, &service.kafka, check).await {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            if check && report.live_caught_up && report.differences > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS }
        }
        Err(error) => {
            eprintln!("order rebuild-read-model: {error}");
            ExitCode::FAILURE
        }
    }
}
