//! Faults injected into the local infrastructure for real: the broker that
//! `deploy/native/stack.sh` started is killed with SIGKILL and started again
//! by the same script. Only this module and `deploy/` know how the broker is
//! run; tests say what happens to it.

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

/// Whether `pid` runs (an exited process not yet reaped, a zombie, does not).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name.
    stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'))
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
