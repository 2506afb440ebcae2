//! Group commit across partitions. A partition's worker hands the records it
//! has ready (a job) to the consumer's coalescer instead of to the handler.
//! At most `concurrent_batches` handler calls run at once; a job that comes
//! while they are all taken waits, and when one ends, the jobs waiting,
//! from any partitions, go to the handler together in one call (up to
//! `max_batch` records). At a low rate every job starts at once, alone; under
//! load the calls grow with the backlog, so the fixed cost of a call (a
//! transaction, its commit, its outbox write) is paid once for many records.
//!
//! Records of one key never meet in a call: a key's next record is made
//! ready only after its previous one finished. If a call fails, each job
//! falls back on its own, concurrently, to one record at a time, so a bad
//! record is dead-lettered alone and a key that waits out a transient
//! failure holds only its own partition's job.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rdkafka::message::OwnedMessage;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::process::{Checked, Outcome, check_all, handle_together, one_by_one, process_records};
use super::{Handler, Shared};

/// The outcomes of a job's records; an error if they were lost (a bug: the
/// partition then waits for a restart, as after a task that panicked).
pub(crate) type JobOutcomes = Result<Vec<(OwnedMessage, Outcome)>, String>;

/// One partition's ready records, waiting for a handler call.
struct Job {
    records: Vec<OwnedMessage>,
    stop: CancellationToken,
    reply: oneshot::Sender<Vec<(OwnedMessage, Outcome)>>,
}

#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Job>,
    /// Tasks draining `jobs`, each running one handler call at a time.
    drainers: usize,
}

pub(crate) struct Coalescer {
    waiting: Mutex<Waiting>,
    concurrency: usize,
    max_records: usize,
}

impl Coalescer {
    pub(crate) fn new(concurrency: usize, max_records: usize) -> Self {
        Self { waiting: Mutex::default(), concurrency: concurrency.max(1), max_records: max_records.max(1) }
    }

    /// The jobs for the next call: the oldest, and those after it while
    /// the call stays within `max_records`. None left: the drainer stops.
    fn next_call(&self) -> Option<Vec<Job>> {
        let mut waiting = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(first) = waiting.jobs.pop_front() else {
            waiting.drainers -= 1;
            return None;
        };
        let mut records = first.records.len();
        let mut call = vec![first];
        while let Some(next) = waiting.jobs.front()
            && records + next.records.len() <= self.max_records
            && let Some(next) = waiting.jobs.pop_front()
        {
            records += next.records.len();
            call.push(next);
        }
        Some(call)
    }
}

/// Processes one partition's ready records through the consumer's
/// coalescer, alone or together with other partitions' (see the module).
pub(crate) async fn process_job<H: Handler>(
    shared: &Arc<Shared<H>>,
    coalescer: &Arc<Coalescer>,
    records: Vec<OwnedMessage>,
    stop: CancellationToken,
) -> JobOutcomes {
    let (reply, outcomes) = oneshot::channel();
    let start_drainer = {
        let mut waiting = coalescer.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        waiting.jobs.push_back(Job { records, stop, reply });
        let room = waiting.drainers < coalescer.concurrency;
        waiting.drainers += usize::from(room);
        room
    };
    if start_drainer {
        tokio::spawn(drain(Arc::clone(shared), Arc::clone(coalescer)));
    }
    outcomes.await.map_err(|_| "a coalesced batch was lost".to_owned())
}

/// Runs handler calls one after another while jobs are waiting.
async fn drain<H: Handler>(shared: Arc<Shared<H>>, coalescer: Arc<Coalescer>) {
    while let Some(call) = coalescer.next_call() {
        run_call(&shared, call).await;
    }
}

async fn run_call<H: Handler>(shared: &Shared<H>, mut call: Vec<Job>) {
    if call.len() == 1
        && let Some(Job { records, stop, reply }) = call.pop()
    {
        let _ = reply.send(process_records(shared, records, &stop).await);
        return;
    }
    // Several partitions' records: dead-letter what does not decode, then one call for the rest.
    let mut jobs = Vec::with_capacity(call.len());
    let mut together: Vec<(usize, Checked)> = Vec::new();
    for (index, Job { records, stop, reply }) in call.into_iter().enumerate() {
        let (done, checked) = check_all(shared, records, &stop).await;
        together.extend(checked.into_iter().map(|entry| (index, entry)));
        jobs.push((done, stop, reply));
    }
    let (owners, checked): (Vec<usize>, Vec<Checked>) = together.into_iter().unzip();
    match handle_together(shared, checked).await {
        Ok(handled) => {
            for (owner, outcome) in owners.into_iter().zip(handled) {
                jobs[owner].0.push(outcome);
            }
        }
        Err(checked) => {
            // Each job on its own, at the same time: a key that waits out a
            // transient failure holds back only the records of its partition.
            let mut per_job: Vec<Vec<Checked>> = jobs.iter().map(|_| Vec::new()).collect();
            for (owner, entry) in owners.into_iter().zip(checked) {
                per_job[owner].push(entry);
            }
            let fallbacks =
                per_job.into_iter().zip(&jobs).map(|(checked, (_, stop, _))| one_by_one(shared, checked, stop));
            for (owner, outcomes) in futures::future::join_all(fallbacks).await.into_iter().enumerate() {
                jobs[owner].0.extend(outcomes);
            }
        }
    }
    for (done, _, reply) in jobs {
        let _ = reply.send(done);
    }
}
