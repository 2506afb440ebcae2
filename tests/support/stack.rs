//! Starts the five services as separate processes, each with its own fresh
//! database, all on one fresh set of topics and one SMTP sink.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use checkout_testkit::{SmtpSink, TestDatabase, TestKafka, eventually};
use sqlx::PgPool;

pub use super::metrics_table::SERVICES;

/// Shorter timeouts than production, so compensation paths finish in seconds.
const TEST_ENV: [(&str, &str); 12] = [
    ("LOG_FORMAT", "json"),
    ("RUST_LOG", "info"),
    ("SAGA_AUTHORIZE_TIMEOUT_MS", "1500"),
    ("SAGA_AUTHORIZE_MAX_ATTEMPTS", "2"),
    ("SAGA_RESERVE_TIMEOUT_MS", "5000"),
    ("SAGA_AFTER_PIVOT_TIMEOUT_MS", "5000"),
    ("SAGA_COMPENSATION_TIMEOUT_MS", "5000"),
    ("PAYMENT_GATEWAY_TIMEOUT_MS", "300"),
    ("ORCHESTRATOR_TIMER_INTERVAL_MS", "100"),
    ("INVENTORY_EXPIRY_SWEEP_INTERVAL_MS", "500"),
    ("SHUTDOWN_GRACE_SECS", "10"),
    ("OPERATOR_TOKENS", "ops=test-operator-token-0001"),
];

/// The bearer token of operator `ops` (see `OPERATOR_TOKENS` above).
pub const OPERATOR_TOKEN: &str = "test-operator-token-0001";

/// One service process; it can be killed and started again on the same port,
/// database and topics.
pub struct Service {
    pub name: &'static str,
    /// From 0: which of the service's instances this is.
    pub instance: usize,
    pub port: u16,
    command: Mutex<Command>,
    log: PathBuf,
    child: Mutex<Child>,
}

/// Starts `command` with its output appended to `log`.
fn spawn(command: &mut Command, log: &Path) -> Child {
    let log = OpenOptions::new().create(true).append(true).open(log).unwrap();
    command.stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log));
    command.spawn().unwrap()
}

impl Service {
    fn start(name: &'static str, instance: usize, port: u16, mut command: Command, log: PathBuf) -> Self {
        let child = Mutex::new(spawn(&mut command, &log));
        Self { name, instance, port, command: Mutex::new(command), log, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no drain, no final commit, no leaving the group.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the service again (after [`kill`](Self::kill)); does not wait for it to be ready.
    pub fn restart(&self) {
        let fresh = spawn(&mut self.command.lock().unwrap(), &self.log);
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        *child = fresh;
    }

    /// Whether the process has exited (crashed, or aborted by an injected fault).
    pub fn has_exited(&self) -> bool {
        self.child.lock().unwrap().try_wait().unwrap().is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// SIGSTOP until the guard drops (then SIGCONT): the process holds its
    /// connections and its group membership but handles nothing, like a
    /// service stalled in a long GC pause or a frozen VM.
    pub fn pause(&self) -> Paused<'_> {
        let status = Command::new("kill").arg("-STOP").arg(self.pid().to_string()).status().unwrap();
        assert!(status.success(), "could not pause {}", self.name);
        Paused(self)
    }
}

/// A paused service; resumed on drop, also when a scenario fails.
pub struct Paused<'a>(&'a Service);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").arg(self.0.pid().to_string()).status();
    }
}

/// Fields drop in order: the services stop before their topics and databases go.
pub struct Stack {
    pub services: Vec<Service>,
    pub kafka: TestKafka,
    pub databases: BTreeMap<&'static str, TestDatabase>,
    pub smtp: SmtpSink,
    pub logs: PathBuf,
    pub http: reqwest::Client,
}

/// Where cargo put the service binaries: next to the directory of this test binary.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the services first (cargo build --bins, with --release for the bench)",
        path.display()
    );
    path
}

/// `count` free ports, all different: each is held until all are found, so
/// the system cannot hand one out twice (two services of a stack on one port
/// would each pass the other's readiness check).
fn free_ports(count: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..count).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|listener| listener.local_addr().unwrap().port()).collect()
}

impl Stack {
    /// Starts everything and waits until every service is ready (its
    /// consumer has joined its group). `extra_env` goes to every service.
    pub async fn start(extra_env: &[(&str, String)]) -> Self {
        Self::scaled(extra_env, 1).await
    }

    /// Like [`start`](Self::start), with `instances` processes of every
    /// service: each service's instances share its database and consumer
    /// group, as when a service is scaled out.
    pub async fn scaled(extra_env: &[(&str, String)], instances: usize) -> Self {
        let kafka = TestKafka::with_all_topics(3).await;
        let smtp = SmtpSink::start();
        let mut databases = BTreeMap::new();
        for name in SERVICES {
            databases.insert(name, TestDatabase::create(&[]).await);
        }
        let logs = std::env::temp_dir().join(format!("checkout-e2e-{}", checkout_testkit::unique_suffix()));
        std::fs::create_dir_all(&logs).unwrap();
        let mut services = Vec::new();
        let mut ports = free_ports(SERVICES.len() * instances).into_iter();
        for (name, instance) in SERVICES.into_iter().flat_map(|name| (0..instances).map(move |i| (name, i))) {
            let port = ports.next().unwrap();
            let mut command = Command::new(binary(name));
            command
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
                .env("DATABASE_URL", &databases[name].url)
                .env("KAFKA_BOOTSTRAP_SERVERS", &kafka.settings.bootstrap_servers)
                .env("KAFKA_TOPIC_PREFIX", &kafka.settings.topic_prefix)
                .env("SMTP_PORT", smtp.port().to_string())
                .envs(TEST_ENV)
                .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())));
            let log = if instances == 1 { format!("{name}.log") } else { format!("{name}-{instance}.log") };
            services.push(Service::start(name, instance, port, command, logs.join(log)));
        }
        let stack = Self { kafka, databases, smtp, services, logs, http: reqwest::Client::new() };
        for service in &stack.services {
            stack.wait_instance_ready(service).await;
        }
        stack
    }

    /// The first instance of `name`.
    pub fn service(&self, name: &str) -> &Service {
        self.services.iter().find(|s| s.name == name).unwrap()
    }

    /// Every instance of `name`.
    pub fn instances<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.services.iter().filter(move |s| s.name == name)
    }

    /// Waits until the first instance of `name` is ready.
    pub async fn wait_ready(&self, name: &str) {
        self.wait_instance_ready(self.service(name)).await;
    }

    /// Waits until `service` answers `/readyz` with success (its consumer joined its group).
    pub async fn wait_instance_ready(&self, service: &Service) {
        let url = format!("{}/readyz", service.url());
        let what = format!("{} #{} to be ready (logs in {})", service.name, service.instance, self.logs.display());
        eventually(Duration::from_secs(90), &what, || {
            let (http, url) = (self.http.clone(), url.clone());
            assert!(
                !service.has_exited(),
                "{} #{} exited (logs in {})",
                service.name,
                service.instance,
                self.logs.display()
            );
            async move { http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(drop) }
        })
        .await;
    }

    /// The first instance's base URL.
    pub fn url(&self, service: &str) -> String {
        self.service(service).url()
    }

    pub fn db(&self, service: &str) -> &PgPool {
        &self.databases[service].pool
    }

    /// Sends SIGTERM to every service and waits for each to exit; returns
    /// their exit statuses by name.
    pub fn stop(&mut self) -> Vec<(&'static str, std::process::ExitStatus)> {
        for service in &self.services {
            let _ = Command::new("kill").arg("-TERM").arg(service.pid().to_string()).status();
        }
        let mut statuses = Vec::new();
        for service in &self.services {
            let mut child = service.child.lock().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    break child.wait().unwrap();
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            statuses.push((service.name, status));
        }
        statuses
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
