//! One checkout is one trace: the five services export their spans over
//! OTLP to a receiver in this test, which then checks the traces of a
//! confirmed, a declined and a timed-out checkout (whose compensation the
//! orchestrator's timer starts, not a message).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use checkout_testkit::{CollectedSpan, OtlpReceiver, eventually};
use libtest_mimic::{Arguments, Failed, Trial};
use support::checkout::{add_product, checkout_body, post_order, wait_until_saga_finished};
use support::stack::{SERVICES, Stack};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;
/// The span of a service's database transaction, which writes the outbox.
const TRANSACTION: &str = "postgresql transaction";

/// The spans of one checkout's trace.
struct CheckoutTrace {
    trace_id: String,
    traceparent_header: String,
    spans: Vec<CollectedSpan>,
}

impl CheckoutTrace {
    fn by_id(&self) -> BTreeMap<&str, &CollectedSpan> {
        self.spans.iter().map(|s| (s.span_id.as_str(), s)).collect()
    }

    fn ancestors<'a>(&'a self, span: &'a CollectedSpan) -> Vec<&'a CollectedSpan> {
        let by_id = self.by_id();
        let mut chain = Vec::new();
        let mut current = span;
        while let Some(parent) = by_id.get(current.parent_span_id.as_str()) {
            chain.push(*parent);
            current = parent;
        }
        chain
    }

    fn depth(&self) -> usize {
        self.spans.iter().map(|s| self.ancestors(s).len() + 1).max().unwrap_or(0)
    }

    fn consumers_of<'a>(&'a self, message_type: &'a str) -> impl Iterator<Item = &'a CollectedSpan> {
        self.spans.iter().filter(move |s| s.kind == CONSUMER && s.attribute("message.type") == Some(message_type))
    }
}

async fn checkout(stack: &Stack, receiver: &OtlpReceiver, card: &str, last_message: &str) -> CheckoutTrace {
    let sku = add_product(stack, "TRACED", 1500, 5).await;
    let reply = post_order(stack, &checkout_body("traced@example.com", &[(&sku, 1)], card), None).await;
    let trace_id = reply.body["trace_id"].as_str().unwrap().to_owned();
    let traceparent_header = reply.headers["traceparent"].to_str().unwrap().to_owned();
    let order = reply.body["order_id"].as_str().unwrap().parse().unwrap();
    wait_until_saga_finished(stack, order).await;
    // Spans are exported in batches; wait for the last message's processing to arrive.
    eventually(Duration::from_secs(30), &format!("{last_message} to be traced"), || {
        let arrived = receiver
            .trace(&trace_id)
            .iter()
            .any(|s| s.kind == CONSUMER && s.attribute("message.type") == Some(last_message));
        async move { arrived.then_some(()) }
    })
    .await;
    // Let any straggling batch land before checking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    CheckoutTrace { spans: receiver.trace(&trace_id), trace_id, traceparent_header }
}

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition { Ok(()) } else { Err(message().into()) }
}

fn one_trace_across_all_five_services(trace: &CheckoutTrace, receiver: &OtlpReceiver) -> Result<(), Failed> {
    check(trace.traceparent_header.split('-').nth(1) == Some(trace.trace_id.as_str()), || {
        format!("traceparent header {} does not carry trace {}", trace.traceparent_header, trace.trace_id)
    })?;
    let services: BTreeSet<&str> = trace.spans.iter().map(|s| s.service.as_str()).collect();
    let expected: BTreeSet<&str> = SERVICES.into_iter().collect();
    check(services == expected, || format!("spans came from {services:?}"))?;
    let order = trace.spans.iter().find_map(|s| s.attribute("order.id")).unwrap().to_owned();
    let elsewhere: Vec<String> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.attribute("order.id") == Some(order.as_str()) && s.trace_id != trace.trace_id)
        .map(|s| format!("{} ({})", s.name, s.service))
        .collect();
    check(elsewhere.is_empty(), || format!("spans of order {order} outside its trace: {elsewhere:?}"))
}

fn parents_follow_causation(trace: &CheckoutTrace) -> Result<(), Failed> {
    let by_id = trace.by_id();
    for producer in trace.spans.iter().filter(|s| s.kind == PRODUCER) {
        let parent = by_id.get(producer.parent_span_id.as_str());
        // A message is published from the transaction that wrote it; the
        // timer's transaction spans many sagas, so its messages continue the
        // decision (or the step report) of their own saga instead.
        let continues_its_writer = parent.is_some_and(|p| {
            p.service == producer.service
                && (p.name == TRANSACTION || matches!(p.attribute("saga.input"), Some("DeadlinePassed" | "ReportDue")))
        });
        check(continues_its_writer, || {
            format!("{} ({}) does not continue the transaction that wrote it", producer.name, producer.service)
        })?;
    }
    for consumer in trace.spans.iter().filter(|s| s.kind == CONSUMER) {
        let message = consumer.attribute("messaging.message.id").unwrap_or_default();
        let cause = consumer.attribute("causation.id").unwrap_or_default();
        let parent = by_id.get(consumer.parent_span_id.as_str());
        check(
            parent.is_some_and(|p| p.kind == PRODUCER && p.attribute("messaging.message.id") == Some(message)),
            || format!("{} is not a child of the span that sent {message}", consumer.name),
        )?;
        let ancestors = trace.ancestors(consumer);
        let follows = if cause == message {
            ancestors.iter().any(|a| a.kind == SERVER)
        } else {
            ancestors.iter().any(|a| a.kind == CONSUMER && a.attribute("messaging.message.id") == Some(cause))
        };
        check(follows, || {
            let path: Vec<String> = ancestors.iter().map(|a| a.name.clone()).collect();
            format!("{} of {message} (caused by {cause}) descends from {path:?}, not from its cause", consumer.name)
        })?;
    }
    Ok(())
}

fn message_spans_carry_lineage(trace: &CheckoutTrace) -> Result<(), Failed> {
    let common = [
        "order.id",
        "correlation.id",
        "causation.id",
        "messaging.message.id",
        "message.type",
        "message.schema_version",
    ];
    let messaging = [
        "messaging.system",
        "messaging.destination.name",
        "messaging.destination.partition.id",
        "messaging.kafka.offset",
    ];
    for span in trace.spans.iter().filter(|s| s.kind == CONSUMER || s.kind == PRODUCER) {
        let mut required: Vec<&str> = common.iter().chain(&messaging).copied().collect();
        if span.kind == CONSUMER {
            required.push("messaging.consumer.group.name");
        }
        let missing: Vec<&&str> = required.iter().filter(|key| span.attribute(key).is_none_or(str::is_empty)).collect();
        check(missing.is_empty(), || format!("{} ({}) lacks {missing:?}", span.name, span.service))?;
        check(span.attribute("messaging.system") == Some("kafka"), || format!("{}: messaging.system", span.name))?;
    }
    let smtp = trace.spans.iter().find(|s| s.kind == CLIENT && s.service == "notification");
    check(smtp.is_some(), || "the SMTP send is not in the trace".into())
}

fn compensations_link_to_the_failure(trace: &CheckoutTrace) -> Result<(), Failed> {
    for compensation in ["ReleaseInventory", "CancelOrder", "NotifyOrderCancelled"] {
        check(trace.consumers_of(compensation).next().is_some(), || {
            format!("no {compensation} in the declined trace")
        })?;
    }
    let failure = trace
        .spans
        .iter()
        .find(|s| s.kind == PRODUCER && s.attribute("message.type") == Some("PaymentDeclined"))
        .ok_or("the decline was not traced")?;
    links_to(trace, failure)
}

/// The timer, not a message, starts this compensation: its decisions and
/// commands still belong to the checkout's trace, and link to the span of the
/// step that was left waiting.
fn compensations_started_by_the_timer_stay_in_the_trace(trace: &CheckoutTrace) -> Result<(), Failed> {
    for compensation in ["VoidPayment", "ReleaseInventory", "CancelOrder", "NotifyOrderCancelled"] {
        check(trace.consumers_of(compensation).next().is_some(), || {
            format!("no {compensation} in the timed-out trace")
        })?;
    }
    let timeouts = trace.spans.iter().filter(|s| s.attribute("saga.input") == Some("DeadlinePassed")).count();
    check(timeouts >= 2, || format!("{timeouts} deadline decisions traced, expected one per authorize attempt"))?;
    let by_id = trace.by_id();
    for span in trace.spans.iter().filter(|s| s.attribute("saga.compensating") == Some("true")) {
        let linked = span.links.iter().filter_map(|(trace_id, span_id)| {
            (*trace_id == trace.trace_id).then(|| by_id.get(span_id.as_str())).flatten()
        });
        check(linked.into_iter().any(|l| l.name.starts_with("saga ")), || {
            format!("{} does not link to the decision that was left waiting", span.name)
        })?;
    }
    Ok(())
}

fn links_to(trace: &CheckoutTrace, failure: &CollectedSpan) -> Result<(), Failed> {
    let deciding: Vec<&CollectedSpan> = trace
        .spans
        .iter()
        .filter(|s| s.name.starts_with("saga ") && s.attribute("saga.compensating") == Some("true"))
        .collect();
    check(deciding.len() >= 3, || format!("{} compensation decisions traced, expected at least 3", deciding.len()))?;
    for span in deciding {
        check(span.links.contains(&(trace.trace_id.clone(), failure.span_id.clone())), || {
            format!("{} does not link to the failure span {}", span.name, failure.span_id)
        })?;
    }
    Ok(())
}

fn summary(label: &str, trace: &CheckoutTrace) {
    let per_service: BTreeMap<&str, usize> = trace.spans.iter().fold(BTreeMap::new(), |mut counts, s| {
        *counts.entry(s.service.as_str()).or_default() += 1;
        counts
    });
    println!("{label}: {} spans, depth {}, per service {per_service:?}", trace.spans.len(), trace.depth());
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let names = [
        "a_checkout_is_one_trace_across_all_five_services",
        "the_parent_chain_follows_the_causation_chain",
        "message_spans_carry_lineage_and_messaging_attributes",
        "a_declined_payment_links_its_compensations_to_the_failure",
        "a_payment_timeout_is_compensated_within_the_same_trace",
    ];
    if args.list {
        return libtest_mimic::run(&args, names.iter().map(|n| Trial::test(*n, || Ok(()))).collect()).exit_code();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let receiver = OtlpReceiver::start();
    let (mut stack, happy, declined, timed_out) = runtime.block_on(async {
        let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()), ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned())];
        let stack = Stack::start(&env).await;
        let happy = checkout(&stack, &receiver, "tok_visa", "NotifyOrderConfirmed").await;
        let declined = checkout(&stack, &receiver, "tok_insufficient_funds", "NotifyOrderCancelled").await;
        let timed_out = checkout(&stack, &receiver, "tok_timeout", "NotifyOrderCancelled").await;
        (stack, happy, declined, timed_out)
    });
    summary("confirmed checkout", &happy);
    summary("declined checkout", &declined);
    summary("timed-out checkout", &timed_out);
    let timed_out = Arc::new(timed_out);
    let (happy, declined, receiver) = (Arc::new(happy), Arc::new(declined), Arc::new(receiver));
    let trials = vec![
        {
            let (happy, declined, receiver) = (happy.clone(), declined.clone(), receiver.clone());
            Trial::test(names[0], move || {
                one_trace_across_all_five_services(&happy, &receiver)?;
                one_trace_across_all_five_services(&declined, &receiver)
            })
        },
        {
            let (happy, declined) = (happy.clone(), declined.clone());
            Trial::test(names[1], move || {
                parents_follow_causation(&happy)?;
                parents_follow_causation(&declined)
            })
        },
        {
            let (happy, declined) = (happy.clone(), declined.clone());
            Trial::test(names[2], move || {
                message_spans_carry_lineage(&happy)?;
                message_spans_carry_lineage(&declined)
            })
        },
        Trial::test(names[3], move || compensations_link_to_the_failure(&declined)),
        {
            let receiver = receiver.clone();
            Trial::test(names[4], move || {
                one_trace_across_all_five_services(&timed_out, &receiver)?;
                parents_follow_causation(&timed_out)?;
                compensations_started_by_the_timer_stay_in_the_trace(&timed_out)
            })
        },
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    stack.stop();
    runtime.block_on(async move { drop(stack) });
    conclusion.exit_code()
}
