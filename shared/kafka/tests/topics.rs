//! Topic administration against the broker: every topic is created with the
//! retention of its kind, running `create` again converges a topic whose
//! configs drifted, and deleted topics are gone.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use checkout_kafka::{KafkaSettings, Retention, admin};
use checkout_messages::Topic;
use std::time::Duration;

use checkout_testkit::{TestKafka, eventually};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

fn settings() -> KafkaSettings {
    KafkaSettings {
        bootstrap_servers: TestKafka::bootstrap_servers(),
        topic_prefix: format!("t{}-", checkout_testkit::unique_suffix()),
        client_id: "topics-test".into(),
        ..KafkaSettings::default()
    }
}

async fn retention(settings: &KafkaSettings, name: &str) -> Option<String> {
    admin::topic_configs(settings, name).await.unwrap().get("retention.ms").cloned()
}

#[tokio::test]
async fn events_are_kept_for_ever_commands_and_dead_letters_expire_and_drift_is_repaired() {
    let settings = settings();
    let names = settings.topic_names();
    let specs = names.specs();
    let all: Vec<String> = specs.iter().map(|spec| spec.name.clone()).collect();

    let created = admin::create_topics(&settings, &specs, 2, 1).await.unwrap();
    assert_eq!(created.len(), 2 * Topic::ALL.len());
    for spec in &specs {
        // A new topic's configuration can reach the broker that answers a
        // moment after its creation returned (seen once with the broker busy).
        let expected = Some(spec.retention.millis().to_string());
        eventually(Duration::from_secs(10), &format!("{}'s retention", spec.name), || async {
            (retention(&settings, &spec.name).await == expected).then_some(())
        })
        .await;
    }
    let events = names.physical(Topic::OrderEvents);
    assert_eq!(retention(&settings, &events).await.as_deref(), Some("-1"));

    // Someone sets a time limit on an event topic by hand; `create` puts it back.
    let client: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &settings.bootstrap_servers).create().unwrap();
    let drift = AlterConfig::new(ResourceSpecifier::Topic(&events)).set("retention.ms", "60000");
    client.alter_configs([&drift], &AdminOptions::new()).await.unwrap().remove(0).unwrap();
    assert_eq!(retention(&settings, &events).await.as_deref(), Some("60000"));
    let created_again = admin::create_topics(&settings, &specs, 2, 1).await.unwrap();
    assert!(created_again.is_empty(), "nothing new to create: {created_again:?}");
    assert_eq!(retention(&settings, &events).await, Some(Retention::Forever.millis().to_string()));

    admin::delete_topics(&settings, &all).await.unwrap();
    eventually(Duration::from_secs(10), "the deleted topics to be gone", || async {
        (admin::missing_topics(&settings, &all).await.unwrap().len() == all.len()).then_some(())
    })
    .await;
    // Deleting what is already gone is not an error.
    admin::delete_topics(&settings, &all).await.unwrap();
}
