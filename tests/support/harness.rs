//! Runs scenarios as libtest trials on one stack of the five services.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Trial};

use super::stack::Stack;

pub type Scenario = fn(Arc<Stack>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Starts a stack with `env`, runs every scenario `args` selects on it, then
/// hands the stack to `after` (which says whether it ended well) and drops it.
pub fn run(
    args: &Arguments,
    scenarios: Vec<(&'static str, Scenario)>,
    env: &[(&str, String)],
    after: impl FnOnce(&mut Stack) -> bool,
) -> ExitCode {
    if args.list {
        let trials = scenarios.iter().map(|(name, _)| Trial::test(*name, || Ok(()))).collect();
        return libtest_mimic::run(args, trials).exit_code();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stack = Arc::new(runtime.block_on(Stack::start(env)));
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
    let conclusion = libtest_mimic::run(args, trials);
    let mut stack = Arc::try_unwrap(stack).unwrap_or_else(|_| panic!("a scenario kept the stack"));
    let ended_well = after(&mut stack);
    runtime.block_on(async move { drop(stack) });
    if ended_well { conclusion.exit_code() } else { ExitCode::FAILURE }
}
