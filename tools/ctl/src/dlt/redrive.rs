//! `checkoutctl dlt redrive`: republishing dead letters, and the ledger
//! that remembers what was redriven (see the parent module).

use std::collections::HashMap;

use checkout_kafka::admin;
use checkout_kafka::{KafkaSettings, OutgoingRecord, Publisher, RecordHeaders, Replay, Retention, TopicSpec};
use rdkafka::Message as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::DeadLetter;
use crate::Global;
use crate::error::CtlError;
use crate::output::{cell, table};

/// The ledger of redrives, on the cluster beside the dead-letter topics.
const LEDGER: &str = "checkoutctl.redrives";

fn ledger_topic(settings: &KafkaSettings) -> String {
    format!("{}{LEDGER}", settings.topic_prefix)
}

/// What the ledger says was redriven: dead letter id → the redrive.
pub(super) async fn ledger(settings: &KafkaSettings) -> Result<HashMap<String, Value>, CtlError> {
    let topic = ledger_topic(settings);
    if !admin::missing_topics(settings, std::slice::from_ref(&topic)).await?.is_empty() {
        return Ok(HashMap::new());
    }
    let mut replay = Replay::start(settings, &[topic]).await?;
    let mut redriven = HashMap::new();
    while let Some(record) = replay.next_record().await? {
        let (Some(key), Some(value)) = (record.key(), record.payload()) else { continue };
        let entry = serde_json::from_slice(value).unwrap_or(Value::Null);
        redriven.insert(String::from_utf8_lossy(key).into_owned(), entry);
    }
    Ok(redriven)
}

pub(super) fn redrive_table(report: &Value) -> String {
    let mut out = table(&["DEAD LETTER", "RESULT", "TO"]);
    for row in report["records"].as_array().into_iter().flatten() {
        out.add_row([cell(&row["dead_letter"]), cell(&row["result"]), cell(&row["to"])]);
    }
    format!(
        "{out}\n{} redriven, {} already redriven before (--force to redrive them again)",
        report["redriven"], report["skipped"]
    )
}

/// The operator the token names, as the orchestrator says.
pub(super) async fn operator(global: &Global) -> Result<String, CtlError> {
    let url = format!("{}/operator", global.orchestrator_url.trim_end_matches('/'));
    let answer = global.http().get_as_operator(&url).await?;
    answer["operator"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| CtlError::Failed(format!("{url} named no operator: {answer}")))
}

/// Republishes `letters` (those not redriven before, unless `force`) and
/// records each on the ledger with the `operator` who did it.
pub(super) async fn redrive(
    settings: &KafkaSettings,
    letters: &[&DeadLetter],
    force: bool,
    operator: &str,
) -> Result<Value, CtlError> {
    let ledger_topic = ledger_topic(settings);
    // The ledger keeps its records for ever; the broker's default replication.
    let spec = TopicSpec { name: ledger_topic.clone(), retention: Retention::Forever };
    admin::create_topics(settings, &[spec], 1, -1).await?;
    let redriven_before = ledger(settings).await?;
    let publisher = Publisher::new(settings)?;
    let (mut records, mut redriven, mut skipped) = (Vec::new(), 0, 0);
    for letter in letters {
        let id = letter.id();
        if !force && redriven_before.contains_key(&id) {
            skipped += 1;
            records.push(json!({ "dead_letter": id, "result": "already redriven", "to": redriven_before[&id]["to"] }));
            continue;
        }
        let record = letter.redriven(operator).map_err(CtlError::Refused)?;
        let delivered = publisher.publish(&record).await?;
        let to = format!("{} partition {} offset {}", record.topic, delivered.partition, delivered.offset);
        let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        let entry = json!({
            "redriven_at": at, "to": to, "redrive_count": letter.redrive_count() + 1, "operator": operator,
        });
        let ledger_record = OutgoingRecord {
            topic: ledger_topic.clone(),
            key: Some(id.clone().into_bytes()),
            payload: entry.to_string().into_bytes(),
            headers: RecordHeaders::new(),
        };
        publisher.publish(&ledger_record).await?;
        redriven += 1;
        records.push(json!({ "dead_letter": id, "result": "redriven", "to": to }));
    }
    Ok(json!({ "redriven": redriven, "skipped": skipped, "records": records }))
}
