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

#[path = "../support/metrics_table.rs"]
mod metrics_table;

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

fn yaml_file(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap()
}

/// Where `service` mounts the repository's `source` (a file or directory).
fn mount_target(compose: &Value, name: &str, source: &str) -> String {
    let volumes = service(compose, name)["volumes"].as_sequence().unwrap_or_else(|| panic!("{name} mounts nothing"));
    volumes
        .iter()
        .map(text)
        .find_map(|volume| {
            let mut parts = volume.split(':');
            (parts.next() == Some(source)).then(|| parts.next().unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("{name} does not mount {source}: {volumes:?}"))
}

#[test]
fn prometheus_scrapes_every_service_where_it_listens() {
    let compose = compose();
    assert_eq!(
        mount_target(&compose, "prometheus", "./deploy/prometheus/prometheus.yml"),
        "/etc/prometheus/prometheus.yml"
    );
    let config = yaml_file("deploy/prometheus/prometheus.yml");
    let jobs: BTreeMap<String, Vec<String>> = config["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|job| {
            let targets = job["static_configs"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(|group| group["targets"].as_sequence().unwrap().iter().map(text))
                .collect();
            (text(&job["job_name"]), targets)
        })
        .collect();
    for (name, port) in SERVICES {
        let targets = jobs.get(name).unwrap_or_else(|| panic!("Prometheus does not scrape {name}: {jobs:?}"));
        assert_eq!(targets, &vec![format!("{name}:{port}")], "{name} listens on {port}");
        // The default metrics path is the one every service serves.
        assert!(config["scrape_configs"].as_sequence().unwrap().iter().all(|job| job.get("metrics_path").is_none()));
    }
    assert_eq!(jobs.len(), SERVICES.len(), "scrapes something that is not a service: {jobs:?}");
}

#[test]
fn grafana_is_provisioned_with_prometheus_and_the_committed_dashboard() {
    let compose = compose();
    assert_eq!(mount_target(&compose, "grafana", "./deploy/grafana/provisioning"), "/etc/grafana/provisioning");
    let dashboards_dir = mount_target(&compose, "grafana", "./deploy/grafana/dashboards");
    let sources = yaml_file("deploy/grafana/provisioning/datasources/prometheus.yml");
    let source = &sources["datasources"][0];
    assert_eq!(text(&source["type"]), "prometheus");
    assert_eq!(text(&source["url"]), "http://prometheus:9090", "Prometheus's compose name and port");
    let providers = yaml_file("deploy/grafana/provisioning/dashboards/checkout.yml");
    assert_eq!(text(&providers["providers"][0]["options"]["path"]), dashboards_dir);
    let uid = text(&source["uid"]);
    for panel in dashboard_panels() {
        assert_eq!(panel["datasource"]["uid"], uid.as_str(), "panel {} uses another data source", panel["title"]);
    }
    let published = |name: &str| -> Vec<String> {
        service(&compose, name)["ports"].as_sequence().unwrap().iter().map(text).collect()
    };
    assert_eq!(published("grafana"), ["127.0.0.1:3000:3000"]);
    assert_eq!(published("prometheus"), ["127.0.0.1:9090:9090"]);
}

fn dashboard_panels() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(root().join("deploy/grafana/dashboards/checkout.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    dashboard["panels"].as_array().unwrap().clone()
}

/// The metric names a PromQL expression uses: identifiers of this system's
/// metrics, a histogram's `_bucket` series under its own name.
fn metrics_in(expr: &str, histograms: &[&str]) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("checkout_") || word.starts_with("http_"))
        .map(|word| {
            let base = word.strip_suffix("_bucket").filter(|base| histograms.contains(base));
            base.unwrap_or(word).to_owned()
        })
        .collect()
}

#[test]
fn every_dashboard_query_names_a_metric_the_services_export() {
    let rows = metrics_table::documented();
    let exported: BTreeMap<&str, &str> =
        rows.iter().flat_map(|row| row.names.iter().map(|name| (name.as_str(), row.kind))).collect();
    let histograms: Vec<&str> = exported.iter().filter(|(_, kind)| **kind == "histogram").map(|(n, _)| *n).collect();
    let mut used = Vec::new();
    for panel in dashboard_panels() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = metrics_in(expr, &histograms);
            assert!(!names.is_empty(), "panel {} queries no metric: {expr}", panel["title"]);
            for name in names {
                let kind = exported.get(name.as_str()).unwrap_or_else(|| {
                    panic!("panel {} queries {name}, which no service exports (README table)", panel["title"])
                });
                if *kind == "histogram" {
                    assert!(expr.contains(&format!("{name}_bucket")), "{name} is a histogram: query its buckets");
                }
                used.push(name);
            }
        }
    }
    // What an on-call engineer opens the dashboard for.
    for wanted in [
        "checkout_sagas_completed_total",
        "checkout_saga_duration_seconds",
        "checkout_consumer_lag_records",
        "checkout_outbox_backlog_rows",
        "checkout_consumer_dead_lettered_total",
        "checkout_sagas_stuck",
    ] {
        assert!(used.iter().any(|name| name == wanted), "the dashboard does not show {wanted}");
    }
}
