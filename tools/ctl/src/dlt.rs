//! `checkoutctl dlt …`: the dead-letter topics, read and redriven over Kafka.
//!
//! A redrive republishes a dead letter to the topic it came from, with its
//! key, value and headers (trace context included) as they were, the
//! `dlt-*` headers removed and `redrive-count` counting the redrives. Each
//! redrive is then recorded on the ledger topic `checkoutctl.redrives`
//! (keyed by the dead letter's topic, partition and offset), and a record
//! the ledger names is not redriven again unless `--force` says so. A
//! redrive is an operator's action: the orchestrator checks the token
//! (`GET /operator`) and names the operator, who is recorded on the ledger
//! and in the `redriven-by` header. A crash
//! between the republish and the ledger record redrives that one record
//! twice; consumers' inboxes make the second copy harmless.

use std::collections::BTreeMap;

use checkout_kafka::{DeadLetterHeader, KafkaSettings, OutgoingRecord, RecordHeaders, Replay, TopicNames};
use checkout_messages::Topic;
use clap::Subcommand;
use rdkafka::Message as _;
use rdkafka::message::OwnedMessage;
use serde_json::{Value, json};

mod redrive;

use redrive::{ledger, operator, redrive, redrive_table};

use crate::error::CtlError;
use crate::output::{cell, table, truncate};
use crate::{Global, usage};

/// The header that counts how often a record was redriven.
pub const REDRIVE_COUNT: &str = "redrive-count";

/// The header that names the operator who redrove a record last.
pub const REDRIVEN_BY: &str = "redriven-by";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dead letters per topic and error class, and how many wait for a redrive.
    List {
        /// One dead-letter topic (`order.events.dlt`, or the topic it serves: `order.events`).
        topic: Option<String>,
    },
    /// The dead letters of a topic, or one of them in full: key, headers, failure, value.
    Show {
        topic: String,
        /// One record: `OFFSET`, or `PARTITION:OFFSET` when the offset is in several partitions.
        #[arg(long)]
        offset: Option<String>,
    },
    /// Republishes dead letters to the topic they came from, once each
    /// (operator: needs the token).
    Redrive {
        topic: String,
        /// One record: `OFFSET` or `PARTITION:OFFSET`.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        offset: Option<String>,
        /// Every dead letter of the topic not redriven yet.
        #[arg(long)]
        all: bool,
        /// Only dead letters of this error class (`rejected`, `invalid-payload`, …).
        #[arg(long)]
        class: Option<String>,
        /// Redrive even what the ledger says was redriven before.
        #[arg(long)]
        force: bool,
    },
}

/// A dead-lettered record, as read from its dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: RecordHeaders,
}

impl DeadLetter {
    fn from_record(record: &OwnedMessage) -> Self {
        Self {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            key: record.key().map(<[u8]>::to_vec),
            payload: record.payload().unwrap_or_default().to_vec(),
            headers: RecordHeaders::from_kafka(record.headers()),
        }
    }

    /// Its name on the ledger.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }

    fn header(&self, name: &str) -> String {
        self.headers.get_str(name).unwrap_or_default().to_owned()
    }

    pub fn class(&self) -> String {
        self.header(DeadLetterHeader::ERROR_CLASS)
    }

    fn redrive_count(&self) -> u32 {
        self.headers.get_str(REDRIVE_COUNT).and_then(|count| count.parse().ok()).unwrap_or(0)
    }

    /// The record to publish: where it came from, as it was, counted.
    fn redriven(&self, operator: &str) -> Result<OutgoingRecord, String> {
        let topic = self.headers.get_str(DeadLetterHeader::ORIGINAL_TOPIC).filter(|t| !t.is_empty());
        let topic = topic.ok_or_else(|| format!("{} has no {} header", self.id(), DeadLetterHeader::ORIGINAL_TOPIC))?;
        let kept = self
            .headers
            .iter()
            .filter(|(name, _)| !name.starts_with("dlt-") && *name != REDRIVE_COUNT && *name != REDRIVEN_BY)
            .map(|(name, value)| (name.to_owned(), value.to_vec()));
        let mut headers = RecordHeaders::from_pairs(kept);
        headers.insert(REDRIVE_COUNT, (self.redrive_count() + 1).to_string());
        headers.insert(REDRIVEN_BY, operator.to_owned());
        Ok(OutgoingRecord { topic: topic.to_owned(), key: self.key.clone(), payload: self.payload.clone(), headers })
    }

    fn summary(&self, redrive: Option<&Value>) -> Value {
        json!({
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.as_deref().map(String::from_utf8_lossy),
            "original": {
                "topic": self.header(DeadLetterHeader::ORIGINAL_TOPIC),
                "partition": self.header(DeadLetterHeader::ORIGINAL_PARTITION).parse::<i64>().ok(),
                "offset": self.header(DeadLetterHeader::ORIGINAL_OFFSET).parse::<i64>().ok(),
            },
            "failure": {
                "class": self.class(),
                "message": self.header(DeadLetterHeader::ERROR_MESSAGE),
                "consumer_group": self.header(DeadLetterHeader::CONSUMER_GROUP),
                "attempts": self.header(DeadLetterHeader::ATTEMPTS).parse::<u64>().ok(),
                "first_failed_at": self.header(DeadLetterHeader::FIRST_FAILURE_TIME),
                "dead_lettered_at": self.header(DeadLetterHeader::DEAD_LETTERED_TIME),
            },
            "redrive_count": self.redrive_count(),
            "redriven": redrive,
        })
    }

    fn full(&self, redrive: Option<&Value>) -> Value {
        let mut value = self.summary(redrive);
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(name, bytes)| (name.to_owned(), Value::String(String::from_utf8_lossy(bytes).into_owned())))
            .collect();
        value["headers"] = Value::Object(headers);
        value["value"] = serde_json::from_slice(&self.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.payload).into_owned()));
        value
    }
}

/// The dead-letter topics of the system, by physical name.
fn dead_letter_topics(names: &TopicNames) -> Vec<String> {
    names.all_with_dead_letters().into_iter().filter(|name| name.ends_with(Topic::DEAD_LETTER_SUFFIX)).collect()
}

/// The dead-letter topic `given` names: itself, or the dead-letter topic of
/// the topic it names, with or without the prefix.
fn resolve(names: &TopicNames, prefix: &str, given: &str) -> Result<String, CtlError> {
    let known = dead_letter_topics(names);
    let candidates = [
        given.to_owned(),
        format!("{prefix}{given}"),
        TopicNames::dead_letter_of(given),
        TopicNames::dead_letter_of(&format!("{prefix}{given}")),
    ];
    candidates.into_iter().find(|candidate| known.contains(candidate)).ok_or_else(|| {
        CtlError::NotFound(format!(
            "{given:?} is not a dead-letter topic of the checkout; they are: {}",
            known.join(", ")
        ))
    })
}

/// Every record of `topics`, from offset 0 to where they end now.
pub async fn read(settings: &KafkaSettings, topics: &[String]) -> Result<Vec<DeadLetter>, CtlError> {
    let mut replay = Replay::start(settings, topics).await?;
    let mut letters = Vec::new();
    while let Some(record) = replay.next_record().await? {
        letters.push(DeadLetter::from_record(&record));
    }
    Ok(letters)
}

/// Dead letters not redriven yet, per dead-letter topic (for `status`).
pub async fn waiting(settings: &KafkaSettings) -> Result<BTreeMap<String, usize>, CtlError> {
    let topics = dead_letter_topics(&settings.topic_names());
    let (letters, redriven) = (read(settings, &topics).await?, ledger(settings).await?);
    let mut waiting = BTreeMap::new();
    for letter in letters.iter().filter(|letter| !redriven.contains_key(&letter.id())) {
        *waiting.entry(letter.topic.clone()).or_insert(0) += 1;
    }
    Ok(waiting)
}

/// `OFFSET` or `PARTITION:OFFSET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    partition: Option<i32>,
    offset: i64,
}

fn position(text: &str) -> Result<Position, CtlError> {
    let invalid = || usage(format!("--offset must be OFFSET or PARTITION:OFFSET, got {text:?}"));
    match text.split_once(':') {
        Some((partition, offset)) => Ok(Position {
            partition: Some(partition.parse().map_err(|_| invalid())?),
            offset: offset.parse().map_err(|_| invalid())?,
        }),
        None => Ok(Position { partition: None, offset: text.parse().map_err(|_| invalid())? }),
    }
}

/// The one dead letter at `at`.
fn pick<'a>(letters: &'a [DeadLetter], topic: &str, at: Position) -> Result<&'a DeadLetter, CtlError> {
    let matching: Vec<&DeadLetter> = letters
        .iter()
        .filter(|letter| letter.offset == at.offset && at.partition.is_none_or(|p| p == letter.partition))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(CtlError::NotFound(format!("no dead letter at offset {} of {topic}", at.offset))),
        several => {
            let partitions: Vec<String> = several.iter().map(|letter| letter.partition.to_string()).collect();
            Err(usage(format!(
                "offset {} is in partitions {} of {topic}: say which, as PARTITION:OFFSET",
                at.offset,
                partitions.join(", ")
            )))
        }
    }
}

pub async fn run(global: &Global, command: Command) -> Result<(), CtlError> {
    let settings = global.kafka();
    let names = settings.topic_names();
    match command {
        Command::List { topic } => {
            let topics = match topic {
                Some(given) => vec![resolve(&names, &settings.topic_prefix, &given)?],
                None => dead_letter_topics(&names),
            };
            list(global, &settings, &topics).await
        }
        Command::Show { topic, offset } => {
            let topic = resolve(&names, &settings.topic_prefix, &topic)?;
            let (letters, redriven) = (read(&settings, std::slice::from_ref(&topic)).await?, ledger(&settings).await?);
            if let Some(at) = offset {
                let letter = pick(&letters, &topic, position(&at)?)?;
                global.output.print(&letter.full(redriven.get(&letter.id())), record_text);
            } else {
                let rows: Vec<Value> =
                    letters.iter().map(|letter| letter.summary(redriven.get(&letter.id()))).collect();
                global.output.print(&Value::Array(rows), records_table);
            }
            Ok(())
        }
        Command::Redrive { topic, offset, all, class, force } => {
            let topic = resolve(&names, &settings.topic_prefix, &topic)?;
            let letters = read(&settings, std::slice::from_ref(&topic)).await?;
            let selected: Vec<&DeadLetter> = match (offset, all) {
                (Some(at), _) => vec![pick(&letters, &topic, position(&at)?)?],
                (None, true) => letters.iter().collect(),
                (None, false) => return Err(usage("say which: --offset OFFSET or --all")),
            };
            let selected: Vec<&DeadLetter> = selected
                .into_iter()
                .filter(|letter| class.as_deref().is_none_or(|class| letter.class() == class))
                .collect();
            let operator = operator(global).await?;
            let report = redrive(&settings, &selected, force, &operator).await?;
            global.output.print(&report, redrive_table);
            Ok(())
        }
    }
}

/// Counts per topic and class: records, redriven, waiting.
async fn list(global: &Global, settings: &KafkaSettings, topics: &[String]) -> Result<(), CtlError> {
    let (letters, redriven) = (read(settings, topics).await?, ledger(settings).await?);
    let mut counts: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for letter in &letters {
        let count = counts.entry((letter.topic.clone(), letter.class())).or_default();
        count.0 += 1;
        if redriven.contains_key(&letter.id()) {
            count.1 += 1;
        }
    }
    let rows: Vec<Value> = counts
        .into_iter()
        .map(|((topic, class), (records, redriven))| {
            json!({ "topic": topic, "class": class, "records": records, "redriven": redriven,
                    "waiting": records - redriven })
        })
        .collect();
    global.output.print(&Value::Array(rows), |rows| {
        let mut out = table(&["TOPIC", "CLASS", "RECORDS", "REDRIVEN", "WAITING"]);
        for row in rows.as_array().into_iter().flatten() {
            out.add_row(["topic", "class", "records", "redriven", "waiting"].map(|field| cell(&row[field])));
        }
        let waiting: u64 = rows.as_array().into_iter().flatten().filter_map(|r| r["waiting"].as_u64()).sum();
        format!("{out}\n{waiting} dead letter(s) waiting for a redrive")
    });
    Ok(())
}

/// One dead letter in full.
fn record_text(full: &Value) -> String {
    let mut out = table(&["", ""]);
    let place = |place: &Value| {
        format!("{} partition {} offset {}", cell(&place["topic"]), cell(&place["partition"]), cell(&place["offset"]))
    };
    let redriven = if full["redriven"].is_null() { "no".to_owned() } else { full["redriven"].to_string() };
    for (name, value) in [
        ("record", place(full)),
        ("key", cell(&full["key"])),
        ("from", place(&full["original"])),
        ("class", cell(&full["failure"]["class"])),
        ("error", cell(&full["failure"]["message"])),
        ("consumer group", cell(&full["failure"]["consumer_group"])),
        ("attempts", cell(&full["failure"]["attempts"])),
        ("dead-lettered", cell(&full["failure"]["dead_lettered_at"])),
        ("redrives before", cell(&full["redrive_count"])),
        ("redriven", redriven),
    ] {
        out.add_row([name.to_owned(), value]);
    }
    let headers: Vec<String> = full["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| format!("  {name}: {}", cell(value)))
        .collect();
    let value = serde_json::to_string_pretty(&full["value"]).unwrap_or_default();
    format!("{out}\nheaders:\n{}\nvalue:\n{value}", headers.join("\n"))
}

/// Dead letters, one line each.
fn records_table(rows: &Value) -> String {
    let mut out = table(&["PARTITION:OFFSET", "KEY", "CLASS", "DEAD-LETTERED", "REDRIVEN", "ERROR"]);
    for row in rows.as_array().into_iter().flatten() {
        out.add_row([
            format!("{}:{}", cell(&row["partition"]), cell(&row["offset"])),
            cell(&row["key"]),
            cell(&row["failure"]["class"]),
            cell(&row["failure"]["dead_lettered_at"]),
            if row["redriven"].is_null() { "no".to_owned() } else { "yes".to_owned() },
            truncate(&cell(&row["failure"]["message"]), 60),
        ]);
    }
    out.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(headers: &[(&str, &str)]) -> DeadLetter {
        DeadLetter {
            topic: "order.events.dlt".into(),
            partition: 2,
            offset: 7,
            key: Some(b"order-1".to_vec()),
            payload: b"{}".to_vec(),
            headers: RecordHeaders::from_pairs(headers.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))),
        }
    }

    #[test]
    fn a_redriven_record_goes_back_where_it_came_from_as_it_was_and_counted() {
        let letter = letter(&[
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            (DeadLetterHeader::ORIGINAL_TOPIC, "order.events"),
            (DeadLetterHeader::ERROR_CLASS, "rejected"),
            (REDRIVE_COUNT, "1"),
        ]);
        let record = letter.redriven("ops").unwrap();
        assert_eq!(record.topic, "order.events");
        assert_eq!(record.key.as_deref(), Some(&b"order-1"[..]));
        assert_eq!(record.payload, b"{}");
        assert_eq!(record.headers.get_str("traceparent"), letter.headers.get_str("traceparent"));
        assert_eq!(record.headers.get_str(REDRIVE_COUNT), Some("2"));
        assert_eq!(record.headers.get_str(REDRIVEN_BY), Some("ops"));
        assert!(record.headers.iter().all(|(name, _)| !name.starts_with("dlt-")), "{:?}", record.headers);
    }

    #[test]
    fn a_record_without_its_origin_is_not_redriven() {
        assert!(letter(&[(DeadLetterHeader::ERROR_CLASS, "rejected")]).redriven("ops").is_err());
    }

    #[test]
    fn a_position_is_an_offset_or_a_partition_and_an_offset() {
        assert_eq!(position("17").unwrap(), Position { partition: None, offset: 17 });
        assert_eq!(position("3:17").unwrap(), Position { partition: Some(3), offset: 17 });
        assert!(position("x").is_err());
        assert!(position("3:").is_err());
    }

    #[test]
    fn an_offset_in_several_partitions_must_name_its_partition() {
        let mut other = letter(&[]);
        other.partition = 4;
        let letters = [letter(&[]), other];
        assert!(matches!(pick(&letters, "t", position("7").unwrap()), Err(CtlError::Usage(_))));
        assert_eq!(pick(&letters, "t", position("4:7").unwrap()).unwrap().partition, 4);
        assert!(matches!(pick(&letters, "t", position("8").unwrap()), Err(CtlError::NotFound(_))));
    }

    #[test]
    fn a_topic_is_named_by_its_dead_letter_topic_or_by_itself() {
        let names = TopicNames::new("t1-");
        assert_eq!(resolve(&names, "t1-", "order.events").unwrap(), "t1-order.events.dlt");
        assert_eq!(resolve(&names, "t1-", "t1-order.events.dlt").unwrap(), "t1-order.events.dlt");
        assert!(matches!(resolve(&names, "t1-", "nope"), Err(CtlError::NotFound(_))));
    }
}
