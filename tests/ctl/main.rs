//! `checkoutctl` driven as a process against the real stack (the five
//! services, the broker, Postgres, an SMTP server), the way an operator or
//! a script runs it: its output read as JSON, its exit codes checked.
//!
//! Steps after the pivot wait ten minutes here before they are sent again,
//! so a dead-lettered notification is only ever delivered by a redrive.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use checkout_testkit::eventually;
use libtest_mimic::Arguments;
use serde_json::Value;
use support::checkout::{
    add_product, get, mail_to, place, stock, unique, wait_until_finished, wait_until_saga_finished,
};
use support::harness::Scenario;
use support::stack::{OPERATOR_TOKEN, Stack, binary};

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // `status` reads the whole system: one scenario's stuck saga or dead
    // letter would answer another's question. One scenario at a time.
    args.test_threads = Some(1);
    let env = [
        ("SAGA_AFTER_PIVOT_TIMEOUT_MS", "600000".to_owned()),
        ("SAGA_MAX_STEP_TIMEOUT_MS", "600000".to_owned()),
        ("SAGA_STUCK_AFTER_MS", "3000".to_owned()),
    ];
    let scenarios: Vec<(&'static str, Scenario)> = vec![
        ("a_poison_message_is_dead_lettered_inspected_and_redriven_once_the_cause_is_fixed", |stack| {
            Box::pin(a_poison_message_is_dead_lettered_inspected_and_redriven_once_the_cause_is_fixed(stack))
        }),
        ("sagas_are_listed_shown_and_operated_with_exit_codes_scripts_can_use", |stack| {
            Box::pin(sagas_are_listed_shown_and_operated_with_exit_codes_scripts_can_use(stack))
        }),
        ("stock_is_shown_and_set_only_by_an_operator", |stack| {
            Box::pin(stock_is_shown_and_set_only_by_an_operator(stack))
        }),
    ];
    support::harness::run(&args, scenarios, &env, |_| true)
}

/// What one run of `checkoutctl` did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

/// Runs `checkoutctl` against `stack`, with the operator token when `operator`.
async fn ctl(stack: &Stack, operator: bool, args: &[&str]) -> Run {
    ctl_with(stack, operator, &[], args).await
}

/// [`ctl`] with some of its environment replaced.
async fn ctl_with(stack: &Stack, operator: bool, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(binary("checkoutctl"));
    command
        .env_clear()
        .env("CHECKOUT_ORDER_URL", stack.url("order"))
        .env("CHECKOUT_ORCHESTRATOR_URL", stack.url("orchestrator"))
        .env("CHECKOUT_INVENTORY_URL", stack.url("inventory"))
        .env("CHECKOUT_PAYMENT_URL", stack.url("payment"))
        .env("CHECKOUT_NOTIFICATION_URL", stack.url("notification"))
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.kafka.settings.bootstrap_servers)
        .env("KAFKA_TOPIC_PREFIX", &stack.kafka.settings.topic_prefix)
        .args(args);
    if operator {
        command.env("CHECKOUT_OPERATOR_TOKEN", OPERATOR_TOKEN);
    }
    command.envs(env.iter().copied());
    let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await.unwrap().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn email(label: &str) -> String {
    format!("{}@example.com", unique(label).to_lowercase())
}

async fn a_poison_message_is_dead_lettered_inspected_and_redriven_once_the_cause_is_fixed(stack: Arc<Stack>) {
    // The mail server refuses the customer's mailbox for good (550): the
    // notification command is dead-lettered, the order stays confirmed and
    // the saga waits on its last step.
    let customer = email("poison");
    stack.smtp.reject_mailbox(&customer);
    let sku = add_product(&stack, "POISON", 990, 5).await;
    let order = place(&stack, &customer, &[(&sku, 1)], "tok_visa").await;
    assert_eq!(wait_until_finished(&stack, order).await["status"], "CONFIRMED");
    let dlt = format!("{}notification.commands.dlt", stack.kafka.settings.topic_prefix);
    let listed = eventually(Duration::from_secs(30), "the notification to be dead-lettered", || {
        let stack = Arc::clone(&stack);
        async move {
            let run = ctl(&stack, false, &["dlt", "list", "notification.commands", "--output", "json"]).await;
            assert_eq!(run.code, 0, "{run:#?}");
            let rows = run.json();
            rows.as_array().unwrap().iter().any(|row| row["waiting"].as_u64() >= Some(1)).then_some(rows)
        }
    })
    .await;
    assert_eq!(listed[0]["topic"], dlt.as_str());
    assert_eq!(listed[0]["class"], "rejected", "{listed:#}");
    let everywhere = ctl(&stack, false, &["dlt", "list", "--output", "json"]).await;
    assert_eq!(everywhere.code, 0, "{everywhere:#?}");
    let rows = everywhere.json();
    assert!(rows.as_array().unwrap().iter().any(|row| row["topic"] == dlt.as_str()), "every DLT is listed: {rows:#}");

    // Inspected: which record, its key, its failure and its value.
    let shown = ctl(&stack, false, &["dlt", "show", &dlt, "--output", "json"]).await.json();
    let ours: Vec<&Value> =
        shown.as_array().unwrap().iter().filter(|letter| letter["key"] == order.to_string().as_str()).collect();
    assert_eq!(ours.len(), 1, "{shown:#}");
    let at = format!("{}:{}", ours[0]["partition"], ours[0]["offset"]);
    let record = ctl(&stack, false, &["dlt", "show", &dlt, "--offset", &at, "--output", "json"]).await.json();
    assert_eq!(record["original"]["topic"], format!("{}notification.commands", stack.kafka.settings.topic_prefix));
    assert!(record["failure"]["message"].as_str().unwrap().contains("550"), "{record:#}");
    assert_eq!(record["value"]["type"], "NotifyOrderConfirmed", "{record:#}");
    assert!(record["headers"]["traceparent"].is_string(), "the trace context is kept: {record:#}");
    let table = ctl(&stack, false, &["dlt", "show", &dlt, "--offset", &at]).await;
    assert!(table.stdout.contains("rejected") && table.stdout.contains(&order.to_string()), "{table:#?}");

    // While it waits, status says what needs attention, and exits 6.
    let status = eventually(Duration::from_secs(30), "status to name the dead letter and the stuck saga", || {
        let stack = Arc::clone(&stack);
        async move {
            let run = ctl(&stack, false, &["status", "--output", "json"]).await;
            let report = run.json();
            let says =
                |what: &str| report["attention"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains(what));
            (run.code == 6 && says("dead letter") && says("stuck saga")).then_some(report)
        }
    })
    .await;
    assert!(status["services"].as_array().unwrap().iter().all(|s| s["ready"] == true), "{status:#}");
    assert_eq!(status["dead_letters"]["by_topic"][&dlt], 1, "{status:#}");
    let services = status["services"].as_array().unwrap();
    let orchestrator = services.iter().find(|s| s["service"] == "orchestrator").unwrap();
    assert_eq!(orchestrator["stuck_sagas"], 1.0, "{status:#}");
    assert!(services.iter().all(|s| s["consumer_lag_records"].is_number() && s["outbox_backlog_rows"].is_number()));
    let screen = ctl(&stack, false, &["status"]).await;
    assert_eq!(screen.code, 6, "{screen:#?}");
    for line in ["sagas: 1 stuck", &format!("dead letters waiting: {dlt} 1")] {
        assert!(screen.stdout.contains(line), "the screen lacks {line:?}:\n{}", screen.stdout);
    }

    // The cause is fixed; the redrive delivers the email and ends the saga.
    // A redrive is an operator's: refused without the token.
    stack.smtp.accept_mailbox(&customer);
    let anonymous = ctl(&stack, false, &["dlt", "redrive", &dlt, "--offset", &at]).await;
    assert_eq!(anonymous.code, 5, "{anonymous:#?}");
    let redrive = ctl(&stack, true, &["dlt", "redrive", &dlt, "--offset", &at, "--output", "json"]).await;
    assert_eq!(redrive.code, 0, "{redrive:#?}");
    assert_eq!(redrive.json()["redriven"], 1);
    let saga = wait_until_saga_finished(&stack, order).await;
    assert_eq!(saga["status"], "completed", "{saga:#}");
    assert_eq!(mail_to(&stack, &customer).len(), 1);
    let record = ctl(&stack, false, &["dlt", "show", &dlt, "--offset", &at, "--output", "json"]).await.json();
    assert_eq!(record["redriven"]["operator"], "ops", "the ledger names who redrove it: {record:#}");

    // Running it again redrives nothing; forcing it republishes a duplicate
    // that the notification service's inbox absorbs.
    let again = ctl(&stack, true, &["dlt", "redrive", &dlt, "--all", "--class", "rejected", "--output", "json"]).await;
    assert_eq!(again.code, 0, "{again:#?}");
    let again = again.json();
    assert_eq!((again["redriven"].as_u64(), again["skipped"].as_u64()), (Some(0), Some(1)), "{again:#}");
    let duplicates = "checkout_inbox_duplicates_total";
    let before = scrape_sum(&stack, "notification", duplicates).await.unwrap();
    let forced = ctl(&stack, true, &["dlt", "redrive", &dlt, "--offset", &at, "--force", "--output", "json"]).await;
    assert_eq!(forced.json()["redriven"], 1, "{forced:#?}");
    eventually(Duration::from_secs(30), "the notification service to absorb the duplicate", || {
        let stack = Arc::clone(&stack);
        async move { (scrape_sum(&stack, "notification", duplicates).await? > before).then_some(()) }
    })
    .await;
    assert_eq!(mail_to(&stack, &customer).len(), 1, "the duplicate sent no second email");
    let sent = get(&stack, "notification", &format!("/notifications/{order}")).await.body;
    assert_eq!(sent.as_array().map(Vec::len), Some(1), "{sent:#}");
    let listed = ctl(&stack, false, &["dlt", "list", &dlt, "--output", "json"]).await.json();
    assert_eq!(listed[0]["waiting"], 0, "{listed:#}");

    // Nothing is left to attend to, and the order is confirmed.
    eventually(Duration::from_secs(30), "status to exit 0", || {
        let stack = Arc::clone(&stack);
        async move { (ctl(&stack, false, &["status"]).await.code == 0).then_some(()) }
    })
    .await;
    assert_eq!(get(&stack, "order", &format!("/orders/{order}")).await.body["status"], "CONFIRMED");
}

/// The sum of every series of `metric` on `service`'s `/metrics`.
async fn scrape_sum(stack: &Stack, service: &str, metric: &str) -> Option<f64> {
    let text = stack.http.get(format!("{}/metrics", stack.url(service))).send().await.ok()?.text().await.ok()?;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).ok()?;
    let values =
        scrape.samples.iter().filter(|sample| sample.metric == metric).filter_map(|sample| match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => Some(v),
            _ => None,
        });
    Some(values.sum())
}

async fn sagas_are_listed_shown_and_operated_with_exit_codes_scripts_can_use(stack: Arc<Stack>) {
    let sku = add_product(&stack, "CTLSAGA", 500, 5).await;
    let order = place(&stack, &email("ctl-saga"), &[(&sku, 1)], "tok_visa").await;
    wait_until_saga_finished(&stack, order).await;
    let id = order.to_string();

    let listed = ctl(&stack, false, &["sagas", "list", "--state", "completed", "--output", "json"]).await;
    assert_eq!(listed.code, 0, "{listed:#?}");
    assert!(listed.json().as_array().unwrap().iter().any(|saga| saga["order_id"] == id.as_str()), "{listed:#?}");
    let shown = ctl(&stack, false, &["sagas", "show", &id]).await;
    assert_eq!(shown.code, 0, "{shown:#?}");
    for expected in ["COMPLETED", "OrderPlaced", "CustomerNotified", "running → completed"] {
        assert!(shown.stdout.contains(expected), "the timeline lacks {expected:?}:\n{}", shown.stdout);
    }
    let refused = ctl(&stack, false, &["sagas", "list", "--state", "sleeping"]).await;
    assert_eq!(refused.code, 4, "an unknown state is refused: {refused:#?}");

    // Operator actions: without the token, on no saga, on a finished saga.
    let reason = ["--reason", "customer called"];
    let no_token = ctl(&stack, false, &[&["sagas", "abort", &id][..], &reason].concat()).await;
    assert_eq!(no_token.code, 5, "{no_token:#?}");
    let unknown = uuid::Uuid::now_v7().to_string();
    let missing = ctl(&stack, true, &[&["sagas", "abort", &unknown][..], &reason].concat()).await;
    assert_eq!(missing.code, 3, "{missing:#?}");
    let finished = ctl(&stack, true, &[&["sagas", "abort", &id][..], &reason].concat()).await;
    assert_eq!(finished.code, 4, "{finished:#?}");
    assert!(finished.stderr.contains("finished"), "the reason is printed: {finished:#?}");
    let usage = ctl(&stack, false, &["sagas", "show", "not-an-order-id"]).await;
    assert_eq!(usage.code, 2, "{usage:#?}");
    let help = ctl(&stack, false, &["--help"]).await;
    assert!(help.code == 0 && help.stdout.contains("Exit codes"), "{help:#?}");
    let closed = "http://127.0.0.1:9"; // the discard port: nothing listens on it here
    let unreachable = ctl_with(&stack, false, &[("CHECKOUT_ORCHESTRATOR_URL", closed)], &["sagas", "list"]).await;
    assert_eq!(unreachable.code, 1, "{unreachable:#?}");

    // A saga whose payment never answers: found by its age, retried with a
    // fresh budget, then aborted, which cancels the order saying so.
    let stuck = place(&stack, &email("ctl-stuck"), &[(&sku, 1)], "tok_timeout").await;
    let stuck_id = stuck.to_string();
    let older = ["sagas", "list", "--state", "running", "--older-than", "1s", "--output", "json"];
    eventually(Duration::from_secs(30), "the waiting saga to be listed as not moved for 1 s", || {
        let stack = Arc::clone(&stack);
        let (stuck_id, id) = (stuck_id.clone(), id.clone());
        async move {
            let run = ctl(&stack, false, &older).await;
            assert_eq!(run.code, 0, "{run:#?}");
            let sagas = run.json();
            assert!(sagas.as_array().unwrap().iter().all(|saga| saga["order_id"] != id.as_str()), "{sagas:#}");
            sagas.as_array().unwrap().iter().any(|saga| saga["order_id"] == stuck_id.as_str()).then_some(())
        }
    })
    .await;
    let retried =
        ctl(&stack, true, &["sagas", "retry", &stuck_id, "--reason", "gateway restarted", "--output", "json"]).await;
    assert_eq!(retried.code, 0, "{retried:#?}");
    let saga = retried.json();
    assert_eq!(
        (saga["current_step"]["step"].as_str(), saga["current_step"]["attempt"].as_u64()),
        (Some("authorize_payment"), Some(1)),
        "{saga:#}"
    );
    let by_operator = |saga: &Value, input: &str| {
        saga["transitions"].as_array().unwrap().iter().any(|t| t["input"] == input && t["operator"] == "ops")
    };
    assert!(by_operator(&saga, "OperatorRetry"), "{saga:#}");
    let aborted =
        ctl(&stack, true, &["sagas", "abort", &stuck_id, "--reason", "customer called", "--output", "json"]).await;
    assert_eq!(aborted.code, 0, "{aborted:#?}");
    let saga = aborted.json();
    assert_eq!(saga["status"], "compensating", "{saga:#}");
    assert!(by_operator(&saga, "OperatorAbort"), "{saga:#}");
    let view = wait_until_finished(&stack, stuck).await;
    assert_eq!(
        (view["status"].as_str(), view["cancellation"]["code"].as_str()),
        (Some("CANCELLED"), Some("aborted_by_operator"))
    );
    wait_until_saga_finished(&stack, stuck).await;
}

async fn stock_is_shown_and_set_only_by_an_operator(stack: Arc<Stack>) {
    let sku = add_product(&stack, "CTLSTOCK", 1250, 4).await;
    let shown = ctl(&stack, false, &["stock", "show", &sku, "--output", "json"]).await.json();
    assert_eq!((shown[0]["on_hand"].as_i64(), shown[0]["available"].as_i64()), (Some(4), Some(4)), "{shown:#}");

    let no_token = ctl(&stack, false, &["stock", "set", &sku, "9", "--reason", "recount"]).await;
    assert_eq!(no_token.code, 5, "{no_token:#?}");
    assert_eq!(stock(&stack, &sku).await, (4, 0), "nothing changed");
    let set = ctl(&stack, true, &["stock", "set", &sku, "9", "--reason", "recount"]).await;
    assert_eq!(set.code, 0, "{set:#?}");
    assert!(set.stdout.contains("12.50"), "the table shows the price: {}", set.stdout);
    assert_eq!(stock(&stack, &sku).await, (9, 0));
    let recorded = get(&stack, "inventory", &format!("/products/{sku}")).await.body;
    assert_eq!(recorded["on_hand"], 9, "{recorded:#}");
    let unknown = ctl(&stack, true, &["stock", "set", "NO-SUCH-SKU-1", "3", "--reason", "recount"]).await;
    assert_eq!(unknown.code, 3, "{unknown:#?}");
    let all = ctl(&stack, false, &["stock", "show", "--output", "json"]).await.json();
    assert!(all.as_array().unwrap().iter().any(|product| product["sku"] == sku.as_str()), "{all:#}");
}
