//! A scriptable handler and helpers shared by the runtime tests.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkout_domain::OrderId;
use checkout_kafka::{
    ConsumerRuntime, ConsumerSettings, ConsumerStatus, Dependency, Handler, HandlerError, Incoming, RetryPolicy,
};
use checkout_messages::payloads::saga::{SagaStepName, SagaStepRecorded, StepOutcome};
use checkout_messages::{Envelope, Message, MessageId, Source, Topic};
use checkout_testkit::{TestKafka, eventually};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The test messages travel on this topic.
pub const TOPIC: Topic = Topic::OrchestratorEvents;

/// A message whose `attempt` field carries a sequence number, so tests can check order.
pub fn numbered(order: OrderId, seq: u32) -> Envelope {
    let payload = SagaStepRecorded {
        earlier: Vec::new(),
        at: None,
        finished: false,
        step: SagaStepName::ConfirmOrder,
        outcome: StepOutcome::Started,
        attempt: seq,
        detail: None,
    };
    Envelope::first(
        MessageId::from_uuid(Uuid::now_v7()),
        Source::service("test"),
        order,
        time::OffsetDateTime::now_utc(),
        Message::from(payload),
    )
}

pub fn sequence_number(message: &Incoming) -> u32 {
    match &message.envelope.payload {
        Message::SagaStepRecorded(step) => step.attempt,
        other => panic!("unexpected {other:?}"),
    }
}

/// Publishes records numbered 1..=`records` on [`TOPIC`], spread round-robin
/// over `orders` new orders, and waits until the broker has them all.
pub async fn publish_numbered(kafka: &TestKafka, orders: usize, records: u32) {
    let orders: Vec<_> = (0..orders).map(|_| new_order()).collect();
    let publisher = kafka.publisher();
    let mut pending = Vec::new();
    for seq in 1..=records {
        let order = orders[seq as usize % orders.len()];
        let record = checkout_kafka::OutgoingRecord::for_envelope(&numbered(order, seq), &kafka.names()).unwrap();
        pending.push(publisher.enqueue(&record).await.unwrap());
    }
    for delivery in pending {
        delivery.await.unwrap();
    }
}

pub fn new_order() -> OrderId {
    OrderId::from_uuid(Uuid::now_v7())
}

/// What the handler does with a message, decided per message and attempt.
pub enum Behaviour {
    Succeed,
    SucceedAfter(Duration),
    FailTransiently,
    FailPermanently,
    Panic,
}

#[derive(Clone, Debug)]
pub struct Handled {
    pub member: &'static str,
    pub order: OrderId,
    pub seq: u32,
    pub attempt: u32,
    pub message_id: MessageId,
    pub traceparent: Option<String>,
}

type Script = dyn Fn(&Incoming) -> Behaviour + Send + Sync;

/// Records every message it handles successfully; behaves as `script` says.
#[derive(Clone)]
pub struct ScriptedHandler {
    pub member: &'static str,
    pub handled: Arc<Mutex<Vec<Handled>>>,
    pub started: Arc<Mutex<usize>>,
    script: Arc<Script>,
}

impl ScriptedHandler {
    pub fn new(member: &'static str, script: impl Fn(&Incoming) -> Behaviour + Send + Sync + 'static) -> Self {
        Self { member, handled: Arc::default(), started: Arc::default(), script: Arc::new(script) }
    }

    pub fn always_succeeding(member: &'static str) -> Self {
        Self::new(member, |_| Behaviour::Succeed)
    }

    /// A handler of another group member that shares this one's log.
    pub fn sibling(&self, member: &'static str) -> Self {
        Self { member, ..self.clone() }
    }

    pub fn handled(&self) -> Vec<Handled> {
        self.handled.lock().unwrap().clone()
    }
}

impl Handler for ScriptedHandler {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        *self.started.lock().unwrap() += 1;
        match (self.script)(message) {
            Behaviour::Succeed => {}
            Behaviour::SucceedAfter(delay) => tokio::time::sleep(delay).await,
            Behaviour::FailTransiently => {
                return Err(HandlerError::transient(Dependency::Database, "database is restarting"));
            }
            Behaviour::FailPermanently => {
                return Err(HandlerError::permanent("order is not in a state to accept this"));
            }
            Behaviour::Panic => panic!("handler bug"),
        }
        self.handled.lock().unwrap().push(Handled {
            member: self.member,
            order: message.envelope.subject,
            seq: sequence_number(message),
            attempt: message.attempt,
            message_id: message.envelope.id,
            traceparent: message.headers.get_str("traceparent").map(str::to_owned),
        });
        Ok(())
    }
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy { initial_backoff: Duration::from_millis(20), max_backoff: Duration::from_millis(100) }
}

pub struct Running {
    pub status: ConsumerStatus,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), checkout_kafka::ConsumerError>>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Starts a group member and waits until it owns partitions.
pub async fn start_member(kafka: &TestKafka, settings: ConsumerSettings, handler: ScriptedHandler) -> Running {
    let member = start_member_without_waiting(kafka, settings, handler);
    let status = member.status.clone();
    eventually(Duration::from_secs(30), "consumer to be assigned partitions", || {
        let status = status.clone();
        async move { (status.assigned_partitions() > 0).then_some(()) }
    })
    .await;
    member
}

pub fn start_member_without_waiting(
    kafka: &TestKafka,
    settings: ConsumerSettings,
    handler: ScriptedHandler,
) -> Running {
    let runtime = ConsumerRuntime::new(&kafka.settings, settings, kafka.publisher(), handler).unwrap();
    let status = runtime.status();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runtime.run(shutdown.clone()));
    Running { status, shutdown, task }
}

pub fn settings(group: &str, retry: RetryPolicy) -> ConsumerSettings {
    ConsumerSettings { retry, ..ConsumerSettings::new(group, [TOPIC]) }
}
