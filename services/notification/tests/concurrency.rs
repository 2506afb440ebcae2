//! A slow mail provider does not make a slow notification service: records
//! of different orders are sent concurrently, not one partition at a time.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use checkout_domain::{Currency, EmailAddress, Money, OrderId, PricedLine, Pricing, Quantity, Sku};
use checkout_kafka::{ConsumerRuntime, ConsumerSettings, OutgoingRecord};
use checkout_messages::payloads::notification::NotifyOrderConfirmed;
use checkout_messages::{Source, Topic};
use checkout_notification::{MIGRATOR, Mailer, NotificationHandler};
use checkout_outbox::first_message;
use checkout_testkit::{SmtpSink, TestDatabase, TestKafka, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const EMAILS: usize = 200;
const SMTP_DELAY: Duration = Duration::from_millis(500);
const IN_FLIGHT: usize = 64;

fn confirmation(order: OrderId) -> checkout_messages::Envelope {
    let pricing = Pricing::new(vec![PricedLine {
        sku: Sku::parse("MUG-BLACK").unwrap(),
        quantity: Quantity::new(1).unwrap(),
        unit_price: Money::new(1250, Currency::EUR).unwrap(),
    }])
    .unwrap();
    let email = EmailAddress::parse("ada@example.com").unwrap();
    first_message(
        &Source::service("orchestrator"),
        order,
        checkout_platform::clock::now(),
        NotifyOrderConfirmed { email, pricing },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_emails_at_half_a_second_each_are_sent_in_under_five_seconds() {
    let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
    let kafka = TestKafka::with_topics(&[Topic::NotificationCommands], 6).await;
    let smtp = SmtpSink::start();
    smtp.delay_replies(SMTP_DELAY);
    let mailer = Mailer::new("127.0.0.1", smtp.port(), "Shop <orders@shop.test>", Duration::from_secs(10)).unwrap();
    let settings = ConsumerSettings {
        max_in_flight: IN_FLIGHT,
        ..ConsumerSettings::new("notification-concurrency", [Topic::NotificationCommands])
    };
    let runtime = ConsumerRuntime::new(
        &kafka.settings,
        settings,
        kafka.publisher(),
        NotificationHandler::new(db.pool.clone(), mailer),
    )
    .unwrap();
    let status = runtime.status();
    let shutdown = CancellationToken::new();
    let consuming = tokio::spawn(runtime.run(shutdown.clone()));
    eventually(Duration::from_secs(30), "the consumer to own its partitions", || {
        let owned = status.assigned_partitions();
        async move { (owned == 6).then_some(()) }
    })
    .await;

    let publisher = kafka.publisher();
    let mut deliveries = Vec::new();
    for _ in 0..EMAILS {
        let envelope = confirmation(OrderId::from_uuid(Uuid::now_v7()));
        let record = OutgoingRecord::for_envelope(&envelope, &kafka.names()).unwrap();
        deliveries.push(publisher.enqueue(&record).await.unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    let started = Instant::now();
    eventually(Duration::from_secs(60), "every email to be sent", || {
        let sent = smtp.mail().len();
        async move { (sent >= EMAILS).then_some(()) }
    })
    .await;
    let took = started.elapsed();
    eprintln!(
        "{EMAILS} emails at {SMTP_DELAY:?} each: {took:?}, {} SMTP sessions at most at once",
        smtp.peak_sessions()
    );

    assert_eq!(smtp.mail().len(), EMAILS, "one email per command");
    // One at a time per partition would be 6 at once and 200 × 0.5 s / 6 ≈ 17 s.
    assert!(smtp.peak_sessions() > 6 * 4, "only {} SMTP sessions at once", smtp.peak_sessions());
    assert!(smtp.peak_sessions() <= IN_FLIGHT, "{} sessions at once, over the bound", smtp.peak_sessions());
    assert!(took < Duration::from_secs(5), "{EMAILS} emails took {took:?}");
    shutdown.cancel();
    consuming.await.unwrap().unwrap();
}
