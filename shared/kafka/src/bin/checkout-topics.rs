//! Creates or checks the system's topics and their dead-letter topics.
//!
//! ```text
//! checkout-topics create [--partitions N] [--replication R]
//! checkout-topics check
//! ```
//! `create` makes the topics that are missing and gives every topic its
//! configs (event topics keep their records for ever, commands and dead
//! letters expire: see `Retention`), so running it again converges an
//! existing cluster. `check` exits 0 when every topic exists, 3 when some
//! are missing and 1 when the broker cannot be asked. Broker and prefix come from `KAFKA_BOOTSTRAP_SERVERS` (default
//! `127.0.0.1:9092`) and `KAFKA_TOPIC_PREFIX` (default none).

use std::process::ExitCode;

use checkout_kafka::{KafkaSettings, admin};

const USAGE: &str = "usage: checkout-topics create [--partitions N] [--replication R] | checkout-topics check";
/// Exit status of `check` when the broker answers but topics are missing.
const MISSING: u8 = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = KafkaSettings {
        bootstrap_servers: std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        topic_prefix: std::env::var("KAFKA_TOPIC_PREFIX").unwrap_or_default(),
        client_id: "checkout-topics".into(),
        ..KafkaSettings::default()
    };
    let specs = settings.topic_names().specs();
    let names = settings.topic_names().all_with_dead_letters();
    match args.first().map(String::as_str) {
        Some("create") => {
            let (Some(partitions), Some(replication)) =
                (flag(&args, "--partitions", 6), flag(&args, "--replication", 1))
            else {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            };
            match admin::create_topics(&settings, &specs, partitions, replication).await {
                Ok(created) => {
                    println!(
                        "{} topics present, {} created ({partitions} partitions each)",
                        names.len(),
                        created.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("checkout-topics: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("check") => match admin::missing_topics(&settings, &names).await {
            Ok(missing) if missing.is_empty() => {
                println!("all {} topics present", names.len());
                ExitCode::SUCCESS
            }
            Ok(missing) => {
                eprintln!("missing topics: {}", missing.join(", "));
                ExitCode::from(MISSING)
            }
            Err(error) => {
                eprintln!("checkout-topics: {error}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The value after `name`, or `default` when the flag is absent; `None` when malformed.
fn flag(args: &[String], name: &str, default: i32) -> Option<i32> {
    match args.iter().position(|arg| arg == name) {
        None => Some(default),
        Some(index) => args.get(index + 1)?.parse().ok().filter(|&n| n > 0),
    }
}
