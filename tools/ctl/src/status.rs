//! `checkoutctl status`: each service's readiness, consumer lag and outbox
//! backlog (from its `/readyz` and `/metrics`), dead letters waiting for a
//! redrive (from Kafka), and stuck sagas (from the orchestrator's metrics).

use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

use crate::Global;
use crate::error::CtlError;
use crate::output::{cell, count, table};

/// The sum of every series of `metric`; `None` when it is not exported.
fn sum(scrape: &Scrape, metric: &str) -> Option<f64> {
    let values: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .filter_map(|sample| match sample.value {
            Sample::Gauge(value) | Sample::Counter(value) | Sample::Untyped(value) => Some(value),
            Sample::Histogram(_) | Sample::Summary(_) => None,
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn max(scrape: &Scrape, metric: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .filter_map(|sample| match sample.value {
            Sample::Gauge(value) => Some(value),
            _ => None,
        })
        .reduce(f64::max)
}

fn labelled(scrape: &Scrape, metric: &str, label: &str, value: &str) -> Option<f64> {
    scrape.samples.iter().find(|s| s.metric == metric && s.labels.get(label) == Some(value)).and_then(|sample| {
        match sample.value {
            Sample::Gauge(value) => Some(value),
            _ => None,
        }
    })
}

/// One service as its endpoints describe it.
async fn service(global: &Global, name: &str, base: &str) -> Value {
    let http = global.http();
    let readiness = match http.text(&format!("{base}/readyz")).await {
        Ok((status, body)) => {
            let report: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let failing: Vec<String> = report["checks"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, result)| result.as_str() != Some("ok"))
                .map(|(check, result)| format!("{check}: {}", cell(result)))
                .collect();
            json!({ "ready": status.is_success(), "problems": failing })
        }
        Err(error) => json!({ "ready": false, "problems": [format!("unreachable: {error}")] }),
    };
    let metrics = match http.text(&format!("{base}/metrics")).await {
        Ok((status, body)) if status.is_success() => Scrape::parse(body.lines().map(|line| Ok(line.to_owned()))).ok(),
        _ => None,
    };
    let mut report = json!({ "service": name, "ready": readiness["ready"], "problems": readiness["problems"] });
    if let Some(scrape) = metrics {
        report["consumer_lag_records"] = json!(sum(&scrape, "checkout_consumer_lag_records"));
        report["oldest_unprocessed_seconds"] = json!(max(&scrape, "checkout_consumer_oldest_unprocessed_age_seconds"));
        report["outbox_backlog_rows"] = json!(sum(&scrape, "checkout_outbox_backlog_rows"));
        report["oldest_unsent_seconds"] = json!(max(&scrape, "checkout_outbox_oldest_unsent_age_seconds"));
        report["paused_partitions"] = json!(sum(&scrape, "checkout_consumer_paused_partitions"));
        if name == "orchestrator" {
            report["stuck_sagas"] = json!(sum(&scrape, "checkout_sagas_stuck"));
            report["sagas_needing_attention"] = json!(labelled(&scrape, "checkout_sagas", "state", "needs_attention"));
        }
    }
    report
}

pub async fn run(global: &Global) -> Result<(), CtlError> {
    let services = futures::future::join_all(global.services().map(|(name, base)| service(global, name, base))).await;
    let settings = global.kafka();
    let dead_letters = match crate::dlt::waiting(&settings).await {
        Ok(waiting) => json!({ "waiting": waiting.values().sum::<usize>(), "by_topic": waiting }),
        Err(error) => json!({ "error": error.to_string() }),
    };
    let orchestrator = services.iter().find(|s| s["service"] == "orchestrator");
    let saga_count = |field: &str| orchestrator.and_then(|s| s[field].as_f64()).unwrap_or(0.0);
    let mut attention = Vec::new();
    for service in &services {
        if service["ready"] != true {
            attention.push(format!("{} is not ready", cell(&service["service"])));
        }
    }
    if saga_count("stuck_sagas") > 0.0 {
        attention.push(format!(
            "{} stuck saga(s): checkoutctl sagas list --state running --older-than 5m",
            saga_count("stuck_sagas")
        ));
    }
    if saga_count("sagas_needing_attention") > 0.0 {
        attention.push(format!(
            "{} saga(s) wait for an operator: checkoutctl sagas list --state needs_attention",
            saga_count("sagas_needing_attention")
        ));
    }
    if let Some(error) = dead_letters["error"].as_str() {
        attention.push(format!("dead letters unknown: {error}"));
    } else if dead_letters["waiting"].as_u64() > Some(0) {
        attention.push(format!("{} dead letter(s) waiting: checkoutctl dlt list", dead_letters["waiting"]));
    }
    let report = json!({ "services": services, "dead_letters": dead_letters, "attention": attention });
    global.output.print(&report, |report| {
        let mut out = table(&["SERVICE", "READY", "LAG", "OLDEST UNPROCESSED", "OUTBOX", "OLDEST UNSENT", "PROBLEMS"]);
        for service in report["services"].as_array().into_iter().flatten() {
            let seconds = |field: &str| service[field].as_f64().map_or_else(String::new, |s| format!("{s:.1} s"));
            let problems: Vec<String> = service["problems"].as_array().into_iter().flatten().map(cell).collect();
            out.add_row([
                cell(&service["service"]),
                if service["ready"] == true { "yes".to_owned() } else { "NO".to_owned() },
                count(&service["consumer_lag_records"]),
                seconds("oldest_unprocessed_seconds"),
                count(&service["outbox_backlog_rows"]),
                seconds("oldest_unsent_seconds"),
                problems.join("; "),
            ]);
        }
        let orchestrator = report["services"].as_array().into_iter().flatten().find(|s| s["service"] == "orchestrator");
        let sagas = orchestrator.map_or_else(
            || "sagas: unknown (the orchestrator's metrics did not answer)".to_owned(),
            |o| {
                format!(
                    "sagas: {} stuck, {} waiting for an operator",
                    count(&o["stuck_sagas"]),
                    count(&o["sagas_needing_attention"])
                )
            },
        );
        let letters = &report["dead_letters"];
        let by_topic: Vec<String> = letters["by_topic"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(topic, waiting)| format!("{topic} {}", count(waiting)))
            .collect();
        let letters = match letters["error"].as_str() {
            Some(error) => format!("dead letters waiting: unknown ({error})"),
            None if by_topic.is_empty() => "dead letters waiting: none".to_owned(),
            None => format!("dead letters waiting: {}", by_topic.join(", ")),
        };
        let summary = if attention.is_empty() {
            "nothing needs attention".to_owned()
        } else {
            attention.iter().map(|line| format!("! {line}")).collect::<Vec<_>>().join("\n")
        };
        format!("{out}\n{sagas}\n{letters}\n{summary}")
    });
    if attention.is_empty() {
        Ok(())
    } else {
        // The items are in the report above; the exit code tells a script.
        Err(CtlError::NeedsAttention(format!("{} thing(s) need attention", attention.len())))
    }
}
