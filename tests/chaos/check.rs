//! After the run: every order settled, then what must hold, and the figures.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use checkout_domain::OrderId;
use checkout_messages::Topic;
use checkout_testkit::eventually;
use reqwest::StatusCode;
use serde_json::Value;
use time::OffsetDateTime;

use crate::faults::Fault;
use crate::support::checkout::mail_to;
use crate::support::stack::Stack;
use crate::{Checkout, DUPLICATE_WINDOW_PER_INTERRUPTION, Form, INSTANCES, Kind, LEAD, RECOVERY, Run};

/// What the services say about one order, once it has settled.
#[derive(Debug)]
pub(crate) struct Outcome {
    status: String,
    cancellation: Option<String>,
    total_minor: Option<i64>,
    saga_status: String,
    saga_cause: Value,
    finished_at: OffsetDateTime,
    /// Replies the saga received again or late and absorbed.
    absorbed: usize,
    payment_status: Option<String>,
    captured_minor: Vec<i64>,
}

pub(crate) async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let response = http.get(url).send().await.ok()?;
    if response.status() == StatusCode::NOT_FOUND {
        return Some(Value::Null);
    }
    response.status().is_success().then_some(())?;
    response.json().await.ok()
}

/// Waits until the order and its saga have finished, then reads its payment.
pub(crate) async fn settle(stack: &Stack, order: OrderId, within: Duration) -> Outcome {
    let http = &stack.http;
    let (view, saga) = eventually(within, &format!("order {order} and its saga to finish"), || async {
        let view = get_json(http, &format!("{}/orders/{order}", stack.url("order"))).await?;
        let saga = get_json(http, &format!("{}/sagas/{order}", stack.url("orchestrator"))).await?;
        let finished = matches!(saga["status"].as_str(), Some("completed" | "cancelled" | "needs_attention"));
        (finished && view["status"] != "PENDING").then_some((view, saga))
    })
    .await;
    // A 503 (the service's pool busy with the backlog after an outage) is
    // not an answer: ask again. A 404 (nothing was ever charged) is one.
    let payment_url = format!("{}/payments/{order}", stack.url("payment"));
    let payment =
        eventually(within, &format!("the payment of {order} to be readable"), || get_json(http, &payment_url)).await;
    let operations = payment["operations"].as_array().cloned().unwrap_or_default();
    let transitions = saga["transitions"].as_array().cloned().unwrap_or_default();
    Outcome {
        status: view["status"].as_str().unwrap_or_default().to_owned(),
        cancellation: view["cancellation"]["code"].as_str().map(str::to_owned),
        total_minor: view["total"]["amount_minor"].as_i64(),
        saga_status: saga["status"].as_str().unwrap_or_default().to_owned(),
        saga_cause: saga["outcome"].clone(),
        finished_at: OffsetDateTime::parse(
            saga["updated_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap(),
        absorbed: transitions.iter().filter(|t| t["ignored"] == "not awaited").count(),
        payment_status: payment["status"].as_str().map(str::to_owned),
        captured_minor: operations
            .iter()
            .filter(|op| op["operation"] == "capture" && op["outcome"] == "captured")
            .filter_map(|op| op["amount_minor"].as_i64())
            .collect(),
    }
}

/// The `percent`th percentile (nearest rank, rounded down) of sorted values.
pub(crate) fn percentile(sorted: &[f64], percent: usize) -> f64 {
    sorted.get(sorted.len().saturating_sub(1) * percent / 100).copied().unwrap_or(0.0)
}

pub(crate) async fn on_hand_and_reserved(stack: &Stack, sku: &str) -> (i64, i64) {
    let product = get_json(&stack.http, &format!("{}/products/{sku}", stack.url("inventory"))).await.unwrap();
    (product["on_hand"].as_i64().unwrap(), product["reserved"].as_i64().unwrap())
}

pub(crate) fn dead_letters(stack: &Stack) -> i64 {
    let names = stack.kafka.names();
    Topic::ALL.iter().map(|&topic| stack.kafka.record_count(&names.dead_letter(topic))).sum()
}

/// What the checks found, for the report.
#[derive(Default)]
pub(crate) struct Figures {
    pub(crate) accepted: usize,
    pub(crate) client_retries: u32,
    pub(crate) replays: usize,
    pub(crate) by_status: BTreeMap<(Kind, String), usize>,
    /// Seconds from placing to the saga's end, sorted; and for the quiet ones.
    pub(crate) settle_secs: Vec<f64>,
    pub(crate) quiet_secs: Vec<f64>,
    pub(crate) quiet: usize,
    pub(crate) quiet_confirmed: usize,
    pub(crate) last_settled_after_load: f64,
    pub(crate) absorbed: usize,
    pub(crate) duplicate_emails: usize,
    pub(crate) needs_attention: Vec<String>,
}

/// Waits for every accepted order to settle and checks what must hold.
pub(crate) async fn check(run: &Run) -> Figures {
    let stack = &run.stack;
    let mut outcomes: BTreeMap<OrderId, (Outcome, &Checkout)> = BTreeMap::new();
    let settle_by = Instant::now() + Duration::from_secs(300);
    for checkout in &run.checkouts {
        let order = checkout.order.unwrap_or_else(|| panic!("checkout {} never accepted in 120 s", checkout.key));
        let outcome = settle(stack, order, settle_by.saturating_duration_since(Instant::now())).await;
        outcomes.insert(order, (outcome, checkout));
    }
    // One order per idempotency key, and one key per order.
    assert_eq!(outcomes.len(), run.checkouts.len(), "two keys were given the same order");
    let mut figures = Figures { accepted: outcomes.len(), ..Figures::default() };
    for checkout in &run.checkouts {
        figures.client_retries += checkout.retries;
        if checkout.replayed_as.is_some() {
            assert_eq!(checkout.replayed_as, checkout.order, "key {} named two orders", checkout.key);
            figures.replays += 1;
        }
    }
    let mut confirmed_per_sku: HashMap<&str, i64> = HashMap::new();
    for (order, (outcome, checkout)) in &outcomes {
        let status = match &outcome.cancellation {
            Some(code) => format!("{} ({code})", outcome.status),
            None => outcome.status.clone(),
        };
        *figures.by_status.entry((checkout.kind, status)).or_default() += 1;
        figures.absorbed += outcome.absorbed;
        if outcome.status == "CONFIRMED" {
            *confirmed_per_sku.entry(checkout.sku.as_str()).or_default() += 1;
        }
        if outcome.saga_status == "needs_attention" {
            figures.needs_attention.push(format!("{order}: {}", outcome.saga_cause));
            continue;
        }
        check_money(*order, outcome);
        figures.duplicate_emails += emails_sent(stack, *order, outcome, checkout).await - 1;
    }
    // Stock: what left the shelf is what was confirmed, and nothing stays held.
    let products = &run.products;
    for (sku, initial) in [(&products.plenty, products.plenty_stock), (&products.scarce, products.scarce_stock)] {
        let (on_hand, reserved) = on_hand_and_reserved(stack, sku).await;
        let confirmed = confirmed_per_sku.get(sku.as_str()).copied().unwrap_or(0);
        assert_eq!(i64::from(initial) - on_hand, confirmed, "{sku}: stock not conserved");
        assert_eq!(reserved, 0, "{sku}: stock left reserved");
    }
    assert_eq!(dead_letters(stack), 0, "nothing here is unprocessable: a dead letter is a transient failure lost");
    let notification_kills =
        run.windows.iter().filter(|w| matches!(w.fault, Fault::Kill { service: "notification", .. })).count();
    let database_outages = run.windows.iter().filter(|w| matches!(w.fault, Fault::Database)).count();
    let interruptions = notification_kills + INSTANCES * database_outages;
    assert!(
        figures.duplicate_emails <= DUPLICATE_WINDOW_PER_INTERRUPTION * interruptions,
        "{} duplicate emails after {notification_kills} notification kills and {database_outages} database outages",
        figures.duplicate_emails
    );

    // Liveness: away from the faults, good checkouts confirm.
    let away = |c: &Checkout| run.windows.iter().all(|w| c.placed + LEAD < w.start || c.placed > w.end + RECOVERY);
    let settle_secs = |(o, c): &(Outcome, &Checkout)| (o.finished_at - c.placed_at).as_seconds_f64();
    let quiet: Vec<&(Outcome, &Checkout)> =
        outcomes.values().filter(|(_, c)| c.kind == Kind::Good && away(c)).collect();
    figures.quiet = quiet.len();
    figures.quiet_confirmed = quiet.iter().filter(|(o, _)| o.status == "CONFIRMED").count();
    figures.quiet_secs = quiet.iter().map(|entry| settle_secs(entry)).collect();
    figures.quiet_secs.sort_by(f64::total_cmp);
    figures.settle_secs = outcomes.values().map(settle_secs).collect();
    figures.settle_secs.sort_by(f64::total_cmp);
    let last_settled = outcomes.values().map(|(o, _)| o.finished_at).max().unwrap_or(run.load_ended);
    figures.last_settled_after_load = (last_settled - run.load_ended).as_seconds_f64().max(0.0);
    figures
}

/// A confirmed order was captured once, for its total; a cancelled one not at all.
pub(crate) fn check_money(order: OrderId, outcome: &Outcome) {
    match outcome.status.as_str() {
        "CONFIRMED" => {
            assert_eq!(outcome.saga_status, "completed", "order {order}");
            let total = outcome.total_minor.unwrap();
            assert_eq!(outcome.captured_minor, vec![total], "order {order}: captured once, its total");
            assert_eq!(outcome.payment_status.as_deref(), Some("captured"), "order {order}");
        }
        "CANCELLED" => {
            assert_eq!(outcome.saga_status, "cancelled", "order {order}");
            assert!(outcome.captured_minor.is_empty(), "order {order} cancelled but captured");
            assert_ne!(outcome.payment_status.as_deref(), Some("captured"), "order {order}");
        }
        other => panic!("order {order} is {other}"),
    }
}

/// How many emails the customer got about the order's outcome (at least one).
pub(crate) async fn emails_sent(stack: &Stack, order: OrderId, outcome: &Outcome, checkout: &Checkout) -> usize {
    let kind_of_mail = if outcome.status == "CONFIRMED" { "is confirmed" } else { "cancelled" };
    let mails = eventually(Duration::from_secs(60), &format!("the email about {order}"), || async {
        let mails = mail_to(stack, &checkout.email);
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    assert!(
        mails.iter().all(|m| m.header("Subject").is_some_and(|s| s.contains(kind_of_mail))),
        "order {order} is {} but was emailed otherwise",
        outcome.status
    );
    mails.len()
}

pub(crate) fn report(form: &Form, run: &Run, figures: &Figures) {
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    for window in &run.windows {
        *faults.entry(window.fault.kind()).or_default() += 1;
    }
    println!("chaos, seed {}:", form.seed);
    println!("  checkouts            {} accepted, {} client retries", figures.accepted, figures.client_retries);
    for ((kind, status), count) in &figures.by_status {
        println!("    {kind:?} → {status}: {count}");
    }
    for (kind, count) in &faults {
        println!("  fault                {count} × {kind}");
    }
    println!("  last order settled   {:.1} s after the load ended", figures.last_settled_after_load);
    let secs = &figures.settle_secs;
    println!(
        "  settle time          p50 {:.2} s, p99 {:.2} s, max {:.2} s (placed → saga finished)",
        percentile(secs, 50),
        percentile(secs, 99),
        percentile(secs, 100)
    );
    println!(
        "  away from faults     {} of {} good checkouts confirmed, settled p50 {:.2} s, p99 {:.2} s",
        figures.quiet_confirmed,
        figures.quiet,
        percentile(&figures.quiet_secs, 50),
        percentile(&figures.quiet_secs, 99)
    );
    println!(
        "  duplicates           {} repeated POSTs answered with their order; {} replies absorbed by sagas; {} emails sent twice",
        figures.replays, figures.absorbed, figures.duplicate_emails
    );
    println!("  needs attention      {}", figures.needs_attention.len());
    for line in &figures.needs_attention {
        println!("    {line}");
    }
}
