//! The checkout saga end to end: the five service binaries run as separate
//! processes against a real broker, real Postgres and a real SMTP server.
//! One stack serves every scenario; each scenario uses products and
//! customers of its own, and ends by checking the invariants.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod cancel;
mod metrics;
mod scenarios;

use std::process::ExitCode;

use libtest_mimic::Arguments;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    support::harness::run(&args, scenarios::all(), &[], |stack| {
        // Every service must stop cleanly on SIGTERM.
        let mut clean = true;
        for (service, status) in stack.stop() {
            if !status.success() {
                eprintln!("{service} did not stop cleanly on SIGTERM: {status}");
                clean = false;
            }
        }
        clean
    })
}
