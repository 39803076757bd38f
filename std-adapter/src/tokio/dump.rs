//! Taking a dump: on the section worker, under the timeout.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use ::tokio::runtime::{Dump, Handle, RuntimeFlavor, RuntimeMetrics};
use ::tokio::task::AbortHandle;
use guru_core::ModuleSet;

use super::traces::{RawTrace, group_and_symbolize, in_dump_machinery, stuck_in_dump_reason};
use super::{Registered, TaskDumps, lock};
use crate::model::{TaskDump, Threads};
use crate::sections::{Job, Outcome};
use crate::state::ReporterState;
use crate::symbols::Stats;

/// How long a worker may stay away from its scheduler loop before it is
/// taken as blocked: tokio's own barrier timeout in a dump (1.54).
pub(super) const PROBE_WINDOW: Duration = Duration::from_millis(250);

/// A `current_thread` dump's task, so that a timed-out one never runs.
#[derive(Debug, Default)]
struct Cancel {
    expired: AtomicBool,
    abort: Mutex<Option<AbortHandle>>,
}

/// The job that takes one runtime's dump, and where it leaves it.
pub(super) struct DumpJob {
    job: Arc<Job>,
    slot: Arc<Mutex<Option<Dump>>>,
    cancel: Arc<Cancel>,
}

impl DumpJob {
    pub(super) fn new(name: &str, handle: &Handle) -> DumpJob {
        let slot: Arc<Mutex<Option<Dump>>> = Arc::default();
        let cancel: Arc<Cancel> = Arc::default();
        let (h, s, c) = (handle.clone(), slot.clone(), cancel.clone());
        let job = Job::new(format!("task dump of runtime {name}"), move || {
            let dump = match h.runtime_flavor() {
                RuntimeFlavor::CurrentThread => from_inside(&h, &c)?,
                _ => block_on(h.dump()),
            };
            *lock(&s) = Some(dump);
            Ok(String::new())
        });
        DumpJob { job, slot, cancel }
    }
}

/// A `current_thread` runtime is only dumped from inside it: a task on it
/// takes the dump (when the runtime's thread gets to it).
fn from_inside(handle: &Handle, cancel: &Arc<Cancel>) -> Result<Dump, String> {
    cancel.expired.store(false, Ordering::Release);
    let (tx, rx) = std::sync::mpsc::channel();
    let c = cancel.clone();
    let task = handle.spawn(async move {
        if c.expired.load(Ordering::Acquire) {
            return;
        }
        let dump = Handle::current().dump().await;
        let _ = tx.send(dump);
    });
    *lock(&cancel.abort) = Some(task.abort_handle());
    drop(task);
    // Waits no longer than the reporter does, so that this job ends (and
    // the next report may try again) even while the runtime's thread
    // stays busy; the reporter then cancels the task.
    match rx.recv_timeout(super::task_dump_timeout()) {
        Ok(dump) => Ok(dump),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err("timed out: the dump task was not run in time".into())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("the dump task ended without a dump (is the runtime shut down?)".into())
        }
    }
}

/// Polls `f` to completion on this thread (tokio's multi-thread dump
/// future only waits on a channel: no runtime is needed to drive it).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// The return address of the call in the task's root future to
/// `function` (see `root_call`): the first call site, when every site
/// symbolizes to the same inlined functions and lines.
fn root_call_frame(
    state: &mut ReporterState,
    modules: &ModuleSet,
    function: u64,
    stats: &mut Stats,
) -> Option<u64> {
    let sites = super::root_call::candidates(modules, function);
    let first = *sites.first()?;
    let symbolized = state
        .symbolizer
        .symbolize_return_addresses(modules, &sites, stats);
    let lines = &symbolized.first()?.functions;
    (!lines.is_empty() && symbolized.iter().all(|s| &s.functions == lines)).then_some(first)
}

/// One worker's published figures: they change only when the worker is
/// back in its scheduler loop (maintenance, parking).
fn published(m: &RuntimeMetrics, w: usize) -> (u64, u64, u64, Duration) {
    (
        m.worker_park_unpark_count(w),
        m.worker_park_count(w),
        m.worker_poll_count(w),
        m.worker_total_busy_duration(w),
    )
}

/// Workers that neither are parked nor publish new figures within
/// `window`: they have not been back in their scheduler loop, so tokio's
/// dump would not get them to its barrier in time.
pub(super) fn blocked_workers(m: &RuntimeMetrics, window: Duration) -> Vec<usize> {
    let n = m.num_workers();
    let first: Vec<_> = (0..n).map(|w| published(m, w)).collect();
    let mut pending: Vec<usize> = (0..n).filter(|&w| first[w].0.is_multiple_of(2)).collect();
    let start = Instant::now();
    while !pending.is_empty() && start.elapsed() < window {
        std::thread::sleep(Duration::from_millis(5));
        pending.retain(|&w| {
            let now = published(m, w);
            now == first[w] && now.0.is_multiple_of(2)
        });
    }
    pending
}

pub(super) fn take(
    state: &mut ReporterState,
    r: &Registered,
    modules: Option<&ModuleSet>,
    stats: &mut Stats,
    threads: Option<&Threads>,
) -> TaskDump {
    let flavor = r.handle.runtime_flavor();
    let current = flavor == RuntimeFlavor::CurrentThread;
    match r.dumps {
        TaskDumps::Never => {
            return not_taken(
                "task dumps are turned off for this runtime (TaskDumps::Never)".into(),
            );
        }
        TaskDumps::Auto if current => {
            return not_taken(
                "not taken for a current_thread runtime: tokio's current_thread dump panics, and can abort the process, when a task wakes a waker while it is traced (tokio#8391); opt in with guru::tokio::register_with(.., TaskDumps::Always)".into(),
            );
        }
        _ => {}
    }
    let m = r.handle.metrics();
    // A worker left in the dump barrier can only be one of a runtime
    // with two or more workers (a 1-worker barrier never waits); which
    // runtime a thread belongs to is not known, so every such runtime
    // names it.
    if !current && m.num_workers() >= 2 {
        let stuck = in_dump_machinery(threads);
        if !stuck.is_empty() {
            return blocked(stuck_in_dump_reason(&stuck));
        }
    }
    if !current && m.num_workers() >= 2 && r.dumps == TaskDumps::Auto {
        return not_taken(format!(
            "not taken for a multi_thread runtime with {} workers: tokio's multi-thread task dump (as of tokio 1.54.1) can leave a worker waiting forever in its dump barrier, and the runtime then never shuts down (tokio#8370; guru's docs/tokio-taskdump-wedge.md); guru dumps multi_thread runtimes with 1 worker only, opt in with guru::tokio::register_with(.., TaskDumps::Always) at that risk",
            m.num_workers()
        ));
    }
    if !current && m.num_workers() >= 2 {
        let blocked_now = blocked_workers(&m, PROBE_WINDOW);
        if !blocked_now.is_empty() {
            let list: Vec<String> = blocked_now.iter().map(usize::to_string).collect();
            return blocked(format!(
                "no task dump requested: worker {} has not been back in its scheduler for {} ms (blocked in a poll?); tokio's dump would not wait for it and could leave the runtime stuck",
                list.join(", "),
                PROBE_WINDOW.as_millis()
            ));
        }
    }
    let timeout = super::task_dump_timeout();
    let d = &r.dump;
    *lock(&d.slot) = None;
    let start = Instant::now();
    let outcome = state.runner.run(&d.job, timeout);
    let dump_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    match outcome {
        Outcome::Ok(_) => {}
        Outcome::Failed(why) if why.starts_with("timed out") => {
            let detail = if current {
                d.cancel.expired.store(true, Ordering::Release);
                if let Some(a) = lock(&d.cancel.abort).take() {
                    a.abort();
                }
                "the runtime's thread did not run the dump task (busy, blocked, or not driving the runtime); the dump was cancelled".to_string()
            } else {
                "no worker took the dump (all blocked?); it stays pending in tokio until they do, and no new dump is requested until it ends".to_string()
            };
            return TaskDump::TimedOut {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                reason: detail,
            };
        }
        Outcome::Failed(why) if why.starts_with("still running") => {
            return failed(
                "the dump requested by an earlier report has not ended (it timed out then); no new dump is requested until it does".into(),
            );
        }
        Outcome::Failed(why) => return failed(why),
    }
    let Some(dump) = lock(&d.slot).take() else {
        return failed("the dump left no result".into());
    };
    let resolving = Instant::now();
    let all = dump.tasks().iter().count();
    let raw: Vec<(String, Vec<RawTrace>)> = dump
        .tasks()
        .iter()
        .take(super::MAX_TRACED_TASKS)
        .map(|t| {
            let traces = t
                .trace()
                .resolve_backtraces()
                .iter()
                .map(|bt| {
                    let mut frames: Vec<u64> = bt.frames().map(|f| f.ip().addr() as u64).collect();
                    // tokio drops the root future's frame, where an
                    // optimized build inlines the task's async fns:
                    // find that call in the code (root_call).
                    let root = bt.frames().last().and_then(|f| {
                        root_call_frame(state, modules?, f.symbol_address().addr() as u64, stats)
                    });
                    frames.extend(root);
                    RawTrace {
                        frames,
                        root_call: root.is_some(),
                    }
                })
                .collect();
            (t.id().to_string(), traces)
        })
        .collect();
    let resolve_ns = u64::try_from(resolving.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let shown = raw.len();
    TaskDump::Taken {
        tasks: all,
        groups: group_and_symbolize(state, raw, modules, stats),
        left_out: all - shown,
        dump_ns,
        resolve_ns,
    }
}

fn not_taken(reason: String) -> TaskDump {
    TaskDump::NotTaken { reason }
}

fn blocked(reason: String) -> TaskDump {
    TaskDump::Blocked { reason }
}

fn failed(reason: String) -> TaskDump {
    TaskDump::Failed { reason }
}
