//! The checkout saga end to end: the five service binaries run as separate
//! processes against a real broker, real Postgres and a real SMTP server.
//! One stack serves every scenario; each scenario uses products and
//! customers of its own, and ends by checking the invariants.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod scenarios;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Trial};
use support::stack::Stack;

type Scenario = fn(Arc<Stack>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let scenarios = scenarios::all();
    if args.list {
        let trials = scenarios.iter().map(|(name, _)| Trial::test(*name, || Ok(()))).collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stack = Arc::new(runtime.block_on(Stack::start(&[])));
    println!("service logs: {}", stack.logs.display());
    let trials = scenarios
        .into_iter()
        .map(|(name, scenario)| {
            let (stack, runtime) = (Arc::clone(&stack), runtime.handle().clone());
            Trial::test(name, move || {
                runtime.block_on(scenario(stack));
                Ok(())
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);

    // Every service must stop cleanly on SIGTERM.
    let mut stack = Arc::try_unwrap(stack).unwrap_or_else(|_| panic!("a scenario kept the stack"));
    let mut clean = true;
    for (service, status) in stack.stop() {
        if !status.success() {
            eprintln!("{service} did not stop cleanly on SIGTERM: {status}");
            clean = false;
        }
    }
    runtime.block_on(async move { drop(stack) });
    if clean { conclusion.exit_code() } else { ExitCode::FAILURE }
}
