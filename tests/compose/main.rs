//! `docker-compose.yml` agrees with the code: every topic and dead-letter
//! topic is created, every service gets its own database and role, listens
//! where its port is published and checked, reaches Kafka, Jaeger and
//! Mailpit where they listen, and is given only variables it reads, with
//! values it accepts.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use checkout_kafka::Retention;
use checkout_messages::{Topic, TopicKind};
use checkout_platform::config::{ConfigError, Env};
use serde_norway::Value;

const SERVICES: [(&str, u16); 5] =
    [("order", 8080), ("orchestrator", 8081), ("inventory", 8082), ("payment", 8083), ("notification", 8084)];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut value: Value = serde_norway::from_str(&text).unwrap();
    value.apply_merge().unwrap();
    value
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"].get(name).unwrap_or_else(|| panic!("compose has no service {name}"))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A service's environment (anchors merged) as name → value.
fn environment(compose: &Value, name: &str) -> BTreeMap<String, String> {
    let mut env = service(compose, name)["environment"].clone();
    env.apply_merge().unwrap();
    env.as_mapping().unwrap().iter().map(|(k, v)| (text(k), text(v))).collect()
}

fn settings_accept(name: &str, env: &Env) -> Result<(), ConfigError> {
    match name {
        "order" => checkout_order::Settings::from_env(env).map(drop),
        "orchestrator" => checkout_orchestrator::Settings::from_env(env).map(drop),
        "inventory" => checkout_inventory::Settings::from_env(env).map(drop),
        "payment" => checkout_payment::Settings::from_env(env).map(drop),
        "notification" => checkout_notification::Settings::from_env(env).map(drop),
        other => panic!("unknown service {other}"),
    }
}

/// `NAME=value` pairs as they are written in a YAML string or list.
fn shell_words(value: &str) -> Vec<&str> {
    value.split_whitespace().collect()
}

#[test]
fn every_topic_and_its_dead_letter_topic_is_created_with_the_retention_the_code_gives_it() {
    let compose = compose();
    let job = service(&compose, "kafka-topics");
    let env = environment(&compose, "kafka-topics");
    let retention_of_kind = |kind: TopicKind| match kind {
        TopicKind::Events => &env["EVENT_RETENTION_MS"],
        TopicKind::Commands => &env["COMMAND_RETENTION_MS"],
    };
    let mut created = Vec::new();
    for (variable, kind) in [("EVENT_TOPICS", TopicKind::Events), ("COMMAND_TOPICS", TopicKind::Commands)] {
        for name in shell_words(&env[variable]) {
            let topic = Topic::from_name(name).unwrap_or_else(|| panic!("{variable} names an unknown topic {name}"));
            assert_eq!(topic.kind(), kind, "{name} is listed among the wrong kind");
            assert_eq!(retention_of_kind(kind), &Retention::of(topic).millis().to_string(), "{name}");
            created.push(name);
        }
    }
    assert_eq!(env["DEAD_LETTER_RETENTION_MS"], Retention::DeadLetters.millis().to_string());
    created.sort_unstable();
    let mut expected: Vec<&str> = Topic::ALL.iter().map(|t| t.name()).collect();
    expected.sort_unstable();
    assert_eq!(created, expected);

    let script = text(&job["command"][0]);
    assert!(script.contains("\"$$topic.dlt $$DEAD_LETTER_RETENTION_MS\""), "each dead-letter topic: {script}");
    assert!(script.contains("--config \"retention.ms=$$2\""), "each topic gets its retention: {script}");
    assert!(script.contains("--if-not-exists"), "the job must be safe to run again");
    assert!(script.contains("create $$job &") && script.contains("wait -n"), "topics are created in parallel");
    assert!(script.contains("set -euo pipefail"), "a failed creation fails the job");
    assert!(env["PARTITIONS"].parse::<u32>().unwrap() >= 3, "several partitions, so orders spread");
}

#[test]
fn kafka_is_the_version_of_the_native_stack_and_keeps_its_data() {
    let compose = compose();
    let pom = std::fs::read_to_string(root().join("deploy/kafka/pom.xml")).unwrap();
    let version = pom.split("<kafka.version>").nth(1).and_then(|rest| rest.split('<').next()).unwrap();
    for name in ["kafka", "kafka-topics"] {
        assert_eq!(text(&service(&compose, name)["image"]), format!("apache/kafka:{version}"), "{name}");
    }
    let env = environment(&compose, "kafka");
    let stack = std::fs::read_to_string(root().join("deploy/native/stack.sh")).unwrap();
    assert!(stack.contains(&format!("KAFKA_CLUSTER_ID={}\n", env["CLUSTER_ID"])), "one cluster id, set explicitly");
    assert_eq!(env["KAFKA_LOG_DIRS"], "/var/lib/kafka/data");
    let volumes: Vec<String> = service(&compose, "kafka")["volumes"].as_sequence().unwrap().iter().map(text).collect();
    let volume = volumes.iter().find_map(|v| v.strip_suffix(":/var/lib/kafka/data")).expect("the log is on a volume");
    assert!(compose["volumes"].get(volume).is_some(), "{volume} must be a named volume");
}

#[test]
fn postgres_is_healthy_only_when_it_answers_over_tcp() {
    let compose = compose();
    let test: Vec<String> =
        service(&compose, "postgres")["healthcheck"]["test"].as_sequence().unwrap().iter().map(text).collect();
    let host = test.iter().position(|arg| arg == "-h").map(|i| test[i + 1].as_str());
    assert_eq!(host, Some("127.0.0.1"), "the socket answers while the init scripts run: {test:?}");
}

#[test]
fn compose_waits_for_a_service_to_drain_before_killing_it() {
    let compose = compose();
    let grace_of = |value: &Value| -> u64 { text(value).strip_suffix('s').unwrap().parse().unwrap() };
    for (name, port) in SERVICES {
        let env = environment(&compose, name);
        let settings = checkout_platform::config::ServiceSettings::from_env(
            &Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            name,
            port,
        )
        .unwrap();
        let stop = grace_of(&service(&compose, name)["stop_grace_period"]);
        assert!(stop > settings.shutdown_grace.as_secs(), "{name}: stop_grace_period {stop}s is not longer");
    }
}

#[test]
fn every_service_has_its_own_database_and_role() {
    let compose = compose();
    let init = std::fs::read_to_string(root().join("deploy/postgres/init.sql")).unwrap();
    for (name, _) in SERVICES {
        let url = &environment(&compose, name)["DATABASE_URL"];
        let expected_user = format!("checkout_{name}");
        let rest = url.strip_prefix("postgres://").unwrap();
        let (credentials, location) = rest.split_once('@').unwrap();
        let (user, password) = credentials.split_once(':').unwrap();
        assert_eq!(user, expected_user, "{name} must connect as its own role");
        assert_eq!(location, format!("postgres:5432/checkout_{name}"), "{name} must use its own database");
        assert!(
            init.contains(&format!("CREATE ROLE {user} LOGIN PASSWORD '{password}';")),
            "{user} is not created with that password"
        );
        assert!(
            init.contains(&format!("CREATE DATABASE checkout_{name} OWNER {user};")),
            "checkout_{name} is not created"
        );
    }
    let volumes = &service(&compose, "postgres")["volumes"];
    assert!(
        volumes
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| text(v).starts_with("./deploy/postgres/init.sql:/docker-entrypoint-initdb.d/"))
    );
}

#[test]
fn every_service_listens_where_it_is_published_and_built() {
    let compose = compose();
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    for (name, port) in SERVICES {
        let env = environment(&compose, name);
        assert_eq!(env["HTTP_ADDR"], format!("0.0.0.0:{port}"), "{name}");
        for mapping in service(&compose, name).get("ports").and_then(Value::as_sequence).into_iter().flatten() {
            let container_port = text(mapping).rsplit(':').next().unwrap().to_owned();
            assert_eq!(container_port, port.to_string(), "{name} publishes the wrong port");
        }
        let target = dockerfile.split(&format!("FROM runtime AS {name}\n")).nth(1).unwrap();
        assert!(target.lines().take(3).any(|l| l == format!("EXPOSE {port}")), "{name}'s image exposes another port");
        assert_eq!(text(&service(&compose, name)["build"]["target"]), name);
    }
    let published: Vec<String> = compose["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .flat_map(|(_, s)| s.get("ports").and_then(Value::as_sequence).cloned().unwrap_or_default())
        .map(|p| text(&p))
        .collect();
    assert!(
        published.iter().all(|p| !p.ends_with(":9092") && !p.ends_with(":5432")),
        "infrastructure is not for users: {published:?}"
    );
}

#[test]
fn services_reach_kafka_jaeger_and_mailpit_where_they_listen() {
    let compose = compose();
    let kafka = environment(&compose, "kafka");
    assert!(kafka["KAFKA_ADVERTISED_LISTENERS"].contains("kafka:9092"));
    for (name, _) in SERVICES {
        let env = environment(&compose, name);
        assert_eq!(env["KAFKA_BOOTSTRAP_SERVERS"], "kafka:9092", "{name}");
        assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://jaeger:4318", "{name}");
    }
    let jaeger: Vec<String> = service(&compose, "jaeger")["command"].as_sequence().unwrap().iter().map(text).collect();
    assert!(jaeger.iter().any(|arg| arg.ends_with("http.endpoint=0.0.0.0:4318")), "Jaeger must take OTLP/HTTP on 4318");
    let notification = environment(&compose, "notification");
    assert_eq!((notification["SMTP_HOST"].as_str(), notification["SMTP_PORT"].as_str()), ("mailpit", "1025"));
}

#[test]
fn every_service_is_given_only_variables_it_reads_with_values_it_accepts() {
    let compose = compose();
    for (name, _) in SERVICES {
        let variables = environment(&compose, name);
        let env = Env::from_pairs(variables.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        settings_accept(name, &env).unwrap_or_else(|e| panic!("{name} refuses its compose settings: {e}"));
        let unread: Vec<String> = env
            .never_asked()
            .into_iter()
            .filter(|variable| !checkout_telemetry::TelemetrySettings::VARIABLES.contains(&variable.as_str()))
            .collect();
        assert!(unread.is_empty(), "{name} is given variables it never reads: {unread:?}");
    }
}

#[test]
fn the_services_start_only_after_their_infrastructure() {
    let compose = compose();
    for (name, _) in SERVICES {
        let depends = &service(&compose, name)["depends_on"];
        assert_eq!(text(&depends["postgres"]["condition"]), "service_healthy", "{name}");
        assert_eq!(text(&depends["kafka-topics"]["condition"]), "service_completed_successfully", "{name}");
        assert_eq!(text(&service(&compose, name)["restart"]), "unless-stopped", "{name}");
    }
    let notification = &service(&compose, "notification")["depends_on"];
    assert_eq!(text(&notification["mailpit"]["condition"]), "service_healthy");
    assert!(service(&compose, "mailpit").get("healthcheck").is_some(), "mailpit must report its health");
}
