//! After a checkout, every service exports every metric the README's table
//! gives it, with the type and the label names the table says, read with a
//! real Prometheus text parser; and the numbers agree with what happened.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};

use crate::support::checkout::{add_product, place, unique, wait_until_finished, wait_until_saga_finished};
use crate::support::metrics_table::{SERVICES, documented};
use crate::support::stack::Stack;

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Counter(_) => "counter",
        Value::Gauge(_) => "gauge",
        Value::Histogram(_) => "histogram",
        Value::Summary(_) => "summary",
        Value::Untyped(_) => "untyped",
    }
}

async fn scrape(stack: &Stack, service: &str) -> Scrape {
    let text = stack.http.get(format!("{}/metrics", stack.url(service))).send().await.unwrap().text().await.unwrap();
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap()
}

/// The first sample of `metric` whose labels include `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .find(|sample| labels.iter().all(|(name, want)| sample.labels.get(name) == Some(*want)))
        .and_then(|sample| match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            Value::Histogram(_) | Value::Summary(_) => None,
        })
}

pub async fn every_service_exports_the_metrics_the_readme_lists(stack: Arc<Stack>) {
    let rows = documented();
    let sku = add_product(&stack, "GAUGE", 700, 10).await;
    let customer = format!("{}@example.com", unique("metrics").to_lowercase());
    let order = place(&stack, &customer, &[(&sku, 3)], "tok_visa").await;
    assert_eq!(wait_until_finished(&stack, order).await["status"], "CONFIRMED");
    wait_until_saga_finished(&stack, order).await;

    for service in SERVICES {
        let expected: BTreeMap<&str, (&str, BTreeSet<&str>)> = rows
            .iter()
            .filter(|row| row.services.contains(&service))
            .flat_map(|row| {
                let labels: BTreeSet<&str> = row.labels.iter().map(String::as_str).collect();
                row.names.iter().map(move |name| (name.as_str(), (row.kind, labels.clone())))
            })
            .collect();
        // Lag gauges come with the client's statistics, every second.
        let deadline = Instant::now() + Duration::from_secs(30);
        let problems = loop {
            let scrape = scrape(&stack, service).await;
            let exported: BTreeMap<&str, &str> =
                scrape.samples.iter().map(|sample| (sample.metric.as_str(), kind_of(&sample.value))).collect();
            let mut problems: Vec<String> = expected
                .iter()
                .filter_map(|(name, (kind, _))| match exported.get(name) {
                    None => Some(format!("{name} is missing")),
                    Some(got) if got != kind => Some(format!("{name} is a {got}, not a {kind}")),
                    Some(_) => None,
                })
                .collect();
            // Every series carries exactly the labels the table names
            // (a histogram's bucket bound is the parser's, not ours).
            for sample in &scrape.samples {
                let Some((_, documented)) = expected.get(sample.metric.as_str()) else { continue };
                let labels: BTreeSet<&str> =
                    sample.labels.keys().map(String::as_str).filter(|name| *name != "le").collect();
                if &labels != documented {
                    problems.push(format!("{} has labels {labels:?}, the table says {documented:?}", sample.metric));
                }
            }
            problems.dedup();
            if problems.is_empty() || Instant::now() > deadline {
                break problems;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(problems.is_empty(), "{service} /metrics: {problems:#?}");
    }

    // The numbers say what happened.
    let orchestrator = scrape(&stack, "orchestrator").await;
    for counter in ["checkout_sagas_started_total", "checkout_sagas_completed_total"] {
        assert!(value(&orchestrator, counter, &[]) >= Some(1.0), "{counter}");
    }
    let notification = scrape(&stack, "notification").await;
    let sent = value(&notification, "checkout_emails_sent_total", &[("kind", "order_confirmed")]);
    assert!(sent >= Some(1.0), "emails sent: {sent:?}");
    let inventory = scrape(&stack, "inventory").await;
    let available = value(&inventory, "checkout_inventory_available_units", &[("sku", &sku)]);
    assert_eq!(available, Some(7.0), "10 on hand, 3 sold");
    let order_service = scrape(&stack, "order").await;
    let handled = value(&order_service, "checkout_consumer_records_total", &[("outcome", "handled")]);
    assert!(handled >= Some(1.0), "records handled by the order service: {handled:?}");
}
