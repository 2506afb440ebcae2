//! Faults injected into the local infrastructure for real: the broker that
//! `deploy/native/stack.sh` started is killed with SIGKILL and started again
//! by the same script; the PostgreSQL cluster is stopped (every database of
//! every service at once) and started again. Only this module and `deploy/`
//! know how they are run; tests say what happens to them.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The project's root (where `deploy/` is).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where `stack.sh` keeps its state: `CHECKOUT_STACK_DIR` or `.stack/`.
fn state_dir() -> PathBuf {
    std::env::var_os("CHECKOUT_STACK_DIR").map_or_else(|| root().join(".stack"), PathBuf::from)
}

/// Whether any thread of `pid` still runs. A process whose main thread has
/// exited shows as a zombie while its other threads (a JVM has dozens) are
/// still exiting and still hold its sockets: only a zombie with one thread
/// left, or a process gone from /proc, is over.
fn alive(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let field = |name: &str| {
        status.lines().find_map(|line| line.strip_prefix(name)).map(str::trim).unwrap_or_default().to_owned()
    };
    !(field("State:").starts_with('Z') && field("Threads:") == "1")
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Waits until `pid` has exited; panics after `timeout`.
fn wait_for_exit(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The local Apache Kafka broker.
#[derive(Debug)]
pub struct LocalBroker;

impl LocalBroker {
    fn pid() -> u32 {
        let file = state_dir().join("broker.pid");
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e} (is the broker started by deploy/native/stack.sh?)", file.display()));
        text.trim().parse().unwrap()
    }

    /// SIGKILL: no controlled shutdown, no flush; the next start recovers the log.
    pub fn kill() {
        let pid = Self::pid();
        signal(pid, "KILL");
        wait_for_exit(pid, Duration::from_secs(10));
    }

    /// Starts the broker again (and anything else of the stack that is down);
    /// returns once it answers metadata requests.
    pub fn start() -> Duration {
        let started = Instant::now();
        let output = Command::new(root().join("deploy/native/stack.sh")).arg("up").output().unwrap();
        assert!(
            output.status.success(),
            "stack.sh up failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        started.elapsed()
    }
}

/// The local PostgreSQL cluster (Debian's `pg_ctlcluster`, as `stack.sh` runs it).
#[derive(Debug)]
pub struct LocalPostgres;

impl LocalPostgres {
    fn ctl(action: &str) {
        let version = std::fs::read_dir("/etc/postgresql")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .max_by_key(|name| name.parse::<u32>().unwrap_or(0))
            .expect("no PostgreSQL cluster under /etc/postgresql");
        let mut command = Command::new("pg_ctlcluster");
        command.args(["--skip-systemctl-redirect", &version, "main", action]);
        if action == "stop" {
            // Fast: sessions are ended at once, as when a server goes away.
            command.args(["-m", "fast"]);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "pg_ctlcluster {action}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Stops the server; every connection of every service breaks.
    pub fn stop() {
        Self::ctl("stop");
    }

    /// Starts the server again; returns once it accepts connections.
    pub fn start() {
        Self::ctl("start");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not come back within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
