//! Fixtures for the order service's tests against a real database: the API
//! over HTTP (routes, the status listener and a database of its own), and
//! the documents its answers are checked against.

#![allow(dead_code, reason = "each test file uses a different part")]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use checkout_domain::{Currency, Money, OrderId, PricedLine, Pricing, Quantity, Sku};
use checkout_kafka::Handler;
use checkout_messages::payloads::saga::{SagaStepName, SagaStepRecorded, StepOutcome};
use checkout_messages::{Message, Source};
use checkout_order::read_model::Staleness;
use checkout_order::{MIGRATOR, OrderHandler, http};
use checkout_outbox::first_message;
use checkout_platform::Applied;
use checkout_platform::http::{Readiness, service_router};
use checkout_platform::metrics::Collectors;
use checkout_testkit::{TestDatabase, incoming};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::{CancellationToken, DropGuard};
use tower::ServiceExt;

pub struct Api {
    pub db: TestDatabase,
    pub outcomes: http::Outcomes,
    _listening: DropGuard,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Api {
    pub async fn new() -> Self {
        let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
        let (outcomes, stop) = (http::Outcomes::default(), CancellationToken::new());
        tokio::spawn(outcomes.clone().listen(db.pool.clone(), stop.clone()));
        Self { db, outcomes, _listening: stop.drop_guard() }
    }

    pub fn router(&self) -> Router {
        let routes = http::routes(self.db.pool.clone(), Staleness::default(), self.outcomes.clone());
        service_router(routes, Readiness::new(), Collectors::new())
    }

    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.router().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    pub async fn post(&self, body: &Value, key: Option<&str>) -> Reply {
        let mut request = Request::post("/orders").header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.call(request.body(Body::from(body.to_string())).unwrap()).await
    }

    /// Places the usual checkout; its order's id.
    pub async fn place(&self) -> OrderId {
        let accepted = self.post(&checkout(), None).await;
        accepted.body["order_id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Request::get(path).body(Body::empty()).unwrap()).await
    }

    pub async fn count(&self, table: &str) -> i64 {
        // Table names come from the tests themselves.
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        sqlx::query_scalar(sql).fetch_one(&self.db.pool).await.unwrap()
    }

    pub async fn deliver(&self, order: OrderId, payload: impl Into<Message>) {
        let envelope = first_message(&Source::service("orchestrator"), order, checkout_platform::clock::now(), payload);
        Applied(OrderHandler::new(self.db.pool.clone())).handle(&incoming(envelope)).await.unwrap();
    }
}

pub fn checkout() -> Value {
    json!({
        "customer_id": "cust-42",
        "email": "ada@example.com",
        "items": [{"sku": "MUG-BLACK", "quantity": 2}, {"sku": "TEE-M", "quantity": 1}],
        "payment": {"card_token": "tok_visa"}
    })
}

/// Validates `value` against a schema of the committed OpenAPI document.
pub fn assert_matches_schema(value: &Value, schema: &str) {
    let document: Value = serde_json::from_str(http::OPENAPI).unwrap();
    let root = json!({ "$ref": format!("#/components/schemas/{schema}"), "components": document["components"] });
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{schema}: {errors:?}\n{value:#}");
}

/// The orchestrator's first-attempt report that `step` reached `outcome`.
pub fn step_report(step: SagaStepName, outcome: StepOutcome) -> SagaStepRecorded {
    SagaStepRecorded { earlier: Vec::new(), step, outcome, attempt: 1, detail: None, at: None, finished: false }
}

pub fn pricing() -> Pricing {
    let line = |sku: &str, quantity, unit| PricedLine {
        sku: Sku::parse(sku).unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        unit_price: Money::new(unit, Currency::EUR).unwrap(),
    };
    Pricing::new(vec![line("MUG-BLACK", 2, 1250), line("TEE-M", 1, 1999)]).unwrap()
}
