//! `checkoutctl`: what an operator needs at 3 a.m. — stuck sagas, dead
//! letters, stock, and one screen of the whole system. It talks to the
//! services' HTTP APIs and to Kafka, never to a service's database.

mod api;
mod dlt;
mod error;
mod output;
mod sagas;
mod status;
mod stock;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::CtlError;
use crate::output::Output;

const EXIT_CODES: &str = "\
Exit codes:
  0  done (status: nothing needs attention)
  1  a service or the broker could not be reached, or failed
  2  the command line is wrong
  3  no such saga, product, topic or record
  4  refused: the action does not apply now, or its input is invalid
  5  the operator token is missing or not accepted
  6  status: something needs attention (a service not ready, stuck sagas,
     sagas waiting for an operator, dead letters not redriven)";

#[derive(Debug, Parser)]
#[command(
    name = "checkoutctl",
    version,
    about = "Operate the checkout: sagas, dead letters, stock, status.",
    long_about = "Operate the checkout: find and fix stuck sagas, inspect and redrive dead letters, \
                  read and set stock, and see the whole system on one screen. Talks to the services' \
                  HTTP APIs and to Kafka only.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where the system is, and how to answer.
#[derive(Debug, Args)]
pub struct Global {
    /// How to print answers.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// The order service.
    #[arg(long, global = true, env = "CHECKOUT_ORDER_URL", default_value = "http://127.0.0.1:8080")]
    order_url: String,
    /// The orchestrator (sagas).
    #[arg(long, global = true, env = "CHECKOUT_ORCHESTRATOR_URL", default_value = "http://127.0.0.1:8081")]
    orchestrator_url: String,
    /// The inventory service (stock).
    #[arg(long, global = true, env = "CHECKOUT_INVENTORY_URL", default_value = "http://127.0.0.1:8082")]
    inventory_url: String,
    /// The payment service.
    #[arg(long, global = true, env = "CHECKOUT_PAYMENT_URL", default_value = "http://127.0.0.1:8083")]
    payment_url: String,
    /// The notification service.
    #[arg(long, global = true, env = "CHECKOUT_NOTIFICATION_URL", default_value = "http://127.0.0.1:8084")]
    notification_url: String,
    /// Kafka brokers, `host:port[,host:port…]`.
    #[arg(long, global = true, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// Prefix of every topic name, as the services are given it.
    #[arg(long, global = true, env = "KAFKA_TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// The operator's bearer token (one of the services' `OPERATOR_TOKENS`),
    /// needed to retry or abort a saga, to set stock and to redrive dead letters.
    #[arg(long, global = true, env = "CHECKOUT_OPERATOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sagas: find stuck ones, read one's history, retry or abort it.
    #[command(subcommand)]
    Sagas(sagas::Command),
    /// Dead-letter topics: count, inspect and redrive what consumers could not process.
    #[command(subcommand)]
    Dlt(dlt::Command),
    /// Stock: read it, set it (recorded with who and why).
    #[command(subcommand)]
    Stock(stock::Command),
    /// One screen: readiness, consumer lag, outbox backlog, dead letters and stuck sagas.
    Status,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sagas(command) => sagas::run(&cli.global, command).await,
        Command::Dlt(command) => dlt::run(&cli.global, command).await,
        Command::Stock(command) => stock::run(&cli.global, command).await,
        Command::Status => status::run(&cli.global).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("checkoutctl: {error}");
            error.exit_code()
        }
    }
}

impl Global {
    fn http(&self) -> api::Client {
        api::Client::new(self.token.clone())
    }

    fn kafka(&self) -> checkout_kafka::KafkaSettings {
        checkout_kafka::KafkaSettings {
            bootstrap_servers: self.kafka.clone(),
            topic_prefix: self.topic_prefix.clone(),
            client_id: "checkoutctl".into(),
            ..checkout_kafka::KafkaSettings::default()
        }
    }

    /// Each service's name and base URL.
    fn services(&self) -> [(&'static str, &str); 5] {
        [
            ("order", self.order_url.as_str()),
            ("orchestrator", self.orchestrator_url.as_str()),
            ("inventory", self.inventory_url.as_str()),
            ("payment", self.payment_url.as_str()),
            ("notification", self.notification_url.as_str()),
        ]
    }
}

/// Fails with a usage error (exit 2) for arguments clap cannot check alone.
fn usage(message: impl Into<String>) -> CtlError {
    CtlError::Usage(message.into())
}
