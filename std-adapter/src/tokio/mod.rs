//! Green Threads: the async tasks of registered tokio runtimes (feature
//! `tokio`).
//!
//! In Rust, green threads are async tasks. A service stuck on an `.await`
//! shows nothing useful in its OS thread stacks — its workers sit parked in
//! `epoll_wait` — so the report shows each registered runtime:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! guru::tokio::register("api", rt.handle().clone());
//! // or, while building the reporter:
//! let _guard = guru::Builder::new(guru::package!())
//!     .tokio_runtime("api", rt.handle().clone())
//!     .install()?;
//! # Ok(()) }
//! ```
//!
//! # What the "Green Threads" section shows
//!
//! For each runtime, in registration order: its flavor, workers, alive tasks
//! and global (injection) queue depth, and per worker the figures tokio's
//! *stable* metrics give — whether it is parked, total busy time, park count
//! and park/unpark count. Built with `--cfg tokio_unstable`, the unstable
//! metrics are added (per worker: polls, local queue depth, steals, mean poll
//! time; per runtime: blocking threads, spawned tasks, remote schedules,
//! budget-forced yields).
//!
//! # What is safe on which tokio version
//!
//! guru needs tokio 1.54 or newer; everything below was checked with tokio
//! 1.54.1 (the newest release when this was written), and holds for every
//! 1.x release with the same dump code (`runtime/scheduler/multi_thread/
//! worker/taskdump.rs`, `loom/std/barrier.rs`):
//!
//! | | feature `tokio` (metrics) | feature `taskdump` + `--cfg tokio_unstable` (task dumps) |
//! |---|---|---|
//! | `multi_thread`, 1 worker | safe | safe; **on** by default |
//! | `multi_thread`, 2+ workers | safe | can lose a worker for good (tokio's dump barrier, tokio#8370); **off** by default, [`TaskDumps::Always`] opts in |
//! | `current_thread` | safe | can panic or abort the process (tokio#8391); **off** by default, [`TaskDumps::Always`] opts in |
//!
//! A tokio release that fixes the barrier (tokio#8370) does not turn dumps
//! of 2+-worker runtimes on by itself: guru cannot tell the fixed code from
//! the old one at run time; opt in with [`TaskDumps::Always`] there.
//!
//! # Task traces
//!
//! With guru's feature `taskdump` and the application built with
//! `RUSTFLAGS="--cfg tokio_unstable"` (Linux x86_64/aarch64), the section
//! also shows each task's trace from tokio's [`Handle::dump`](https://docs.rs/tokio/latest/tokio/runtime/struct.Handle.html#method.dump): the chain of
//! `async fn`s the task is suspended in, one stack per leaf future it waits
//! on, symbolized by guru's own DWARF symbolizer exactly like thread stacks
//! (function, inlined calls, `file:line`, `module+0xoffset`). Tasks with the
//! same trace are listed once with all their ids. At most
//! [`MAX_TRACED_TASKS`] tasks are shown.
//!
//! A task dump is not free and not harmless — tokio pauses every worker and
//! re-polls every task in a tracing mode — so guru takes it with these
//! rules:
//!
//! - **Never from a signal handler.** The dump is requested by guru's
//!   reporter (on its section worker thread), after the signal handler has
//!   long returned.
//! - **Always under a timeout** ([`set_task_dump_timeout`], default 1 s). A
//!   dump cannot finish while the runtime cannot get to it (every worker of a
//!   `multi_thread` runtime blocked, the thread of a `current_thread` runtime
//!   busy); the section then says `task dump timed out after … ms` and the
//!   rest of the report comes out as usual. A dump still pending from an
//!   earlier report is not requested again until it ends.
//! - **Not for a `multi_thread` runtime with two or more workers, by
//!   default.** tokio's multi-thread dump (every version with task dumps,
//!   up to at least 1.54.1, the newest when this was written) can leave a
//!   worker waiting forever in its dump barrier: a worker that times out at
//!   the barrier's first half (250 ms) leaves its arrival counted, the next
//!   arrival becomes the dump's leader alone and then waits forever at the
//!   second half. This happens on healthy, even idle, runtimes — right
//!   after a successful dump, workers re-enter the barrier until the
//!   requester ends the request, and one of them waits it out — measured
//!   with tokio alone: the runtime stalls 250 ms, and after a few dumps one
//!   worker is lost and the runtime never shuts down (guru's
//!   `docs/tokio-taskdump-wedge.md`; the fix is tokio PR #8370, open when
//!   this was written). guru cannot repair or detect the barrier's state
//!   from outside, so such a runtime shows its metrics and says why there
//!   is no dump. A `multi_thread` runtime with **one** worker is dumped: its
//!   barrier has one party and never waits. [`TaskDumps::Always`] dumps
//!   the others anyway, at that risk; guru then first watches each worker
//!   for up to 250 ms and requests no dump while one has not been back in
//!   its scheduler loop (a worker blocked in a poll makes the wedge
//!   likely).
//! - **Not while a worker is inside tokio's dump machinery.** When a thread
//!   of the same report's Threads section is in tokio's
//!   `Handle::trace_core` (left in the dump barrier by an earlier dump,
//!   guru's with `TaskDumps::Always` or the application's own), no dump of
//!   a runtime with two or more workers is requested, and the report names
//!   that thread and says it is tokio's dump machinery, not the
//!   application.
//! - **A dump is not free.** tokio pauses the runtime's worker and re-polls
//!   every task in a tracing mode: on the 2-core test machine a 1-worker
//!   runtime's dump took 0.3–10 ms (`the dump took …` in the section).
//!   Turn dumps off ([`TaskDumps::Never`]) where that pause matters more
//!   than the traces.
//! - **`current_thread` runtimes are not dumped unless asked**
//!   ([`TaskDumps::Always`]). tokio's `current_thread` dump (as of 1.54)
//!   re-polls the tasks while holding its scheduler core: a task that wakes a
//!   waker during that poll panics with "RefCell already borrowed", and a
//!   second panic while unwinding aborts the process (tokio#8391;
//!   restate#5235, where a SIGUSR2 dump aborted a server). With
//!   `TaskDumps::Always` the dump runs in a task guru spawns on that runtime
//!   (tokio only dumps a `current_thread` runtime from inside it); when the
//!   runtime's thread is busy and the timeout expires, that task is aborted
//!   before it can run, so a late dump never happens behind the report's
//!   back.
//!
//! tokio's trace of a task ends below the task's root future
//! (`Root<T>::poll`), and an optimized build inlines the task's `async fn`s
//! into that very function — tokio's release trace of `async fn ticker() {
//! loop { sleep(..).await } }` is `Sleep::poll` alone. guru finds the
//! missing frame in the code (the call in `Root<T>::poll` to the trace's
//! outermost function; x86_64 direct and GOT calls, aarch64 direct calls)
//! and adds it, marked `(#n: the call in the task's root future, found in
//! its code …)`, with its inlined frames: `axum_fixture::storm_ticker::
//! {{closure}} at …/axum_fixture.rs:52 (inlined)`. Limits: when the
//! function is called from several places that symbolize differently
//! (two task types awaiting the same leaf future directly, or one awaiting
//! it at two places), no frame is added; with `debug = "line-tables-only"`
//! rustc's DWARF names inlined functions unqualified (`{async_fn#0} at
//! …/axum_fixture.rs:52`): the `file:line` tells which one. A future whose
//! leaf is inlined into `Root<T>::poll` itself has an empty trace.
//! Frames that *are* in the trace show their inlined calls, like thread
//! stacks.
//!
//! The future given to `block_on` is not a task: it is not in the dump.
//!
//! Resolving a dump's backtraces goes through tokio's own API
//! (`Trace::resolve_backtraces`, which symbolizes with `backtrace-rs` first:
//! the only public way to get the frames' addresses); guru then symbolizes
//! the addresses itself. That first resolution parses the binary's DWARF
//! once more, in the reporter thread, outside the dump's timeout.
//!
//! # Stalled workers
//!
//! [`Builder::tokio_stall_threshold`](crate::Builder::tokio_stall_threshold)
//! (opt-in) makes an automatic report when a worker of a registered
//! `multi_thread` runtime has not come back to its scheduler for longer
//! than the threshold — a task blocking its worker inside one poll. guru
//! sees it in the metrics above: the worker's park count, park/unpark count
//! and busy time (with `--cfg tokio_unstable` also its poll count) stop
//! moving while it is not parked. The report's begin line names the runtime,
//! the worker and its thread (first in Threads, marked `stalled`), and Green
//! Threads says `worker <n> stalled: has not come back to its scheduler for
//! <x.xx> s (thread <tid>)`; the next report after it came back says it
//! recovered. Automatic reports share the heartbeats' rate limit
//! ([`crate::watchdog`]).
//!
//! Costs: while on, guru's reporter thread samples every quarter of the
//! threshold (at least every 10 ms; atomic loads only), and spawns a small
//! probe task (at most one a second per runtime, only until every worker's
//! thread is known) that notes `tokio::runtime::worker_index()` and its
//! thread id; off (the default), nothing is sampled. Limits: only
//! `multi_thread` runtimes are watched; a busy worker publishes its
//! figures only every 61 scheduler ticks, so a threshold below 61 × the
//! longest legitimate poll can see a busy worker as stalled (keep it in the
//! hundreds of ms); a worker no probe ran on is found by elimination (the
//! one thread with a worker's name not waiting in `futex`/`epoll_wait`),
//! else the report says `thread not known`; a runtime dropped while still
//! registered can look stalled (call [`unregister`] first); after
//! `block_in_place` the noted thread may be the worker's old one.

// Used by task dumps only; compiled (and unit-tested) in every build.
#[cfg(not(all(
    feature = "taskdump",
    tokio_unstable,
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "x86",
        target_arch = "s390x"
    )
)))]
#[path = "dump_off.rs"]
mod dump;
#[cfg(all(
    feature = "taskdump",
    tokio_unstable,
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "x86",
        target_arch = "s390x"
    )
))]
mod dump;
mod metrics;
#[cfg_attr(not(all(feature = "taskdump", tokio_unstable)), allow(dead_code))]
mod root_call;
#[cfg_attr(not(all(feature = "taskdump", tokio_unstable)), allow(dead_code))]
mod traces;
pub(crate) mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::tokio::runtime::Handle;
use guru_core::ModuleSet;

use crate::model::{self, Data, GreenThreads, Kind, Runtime, Threads};
use crate::state::ReporterState;
use crate::symbols::Stats;

/// Default time a task dump may take ([`set_task_dump_timeout`]).
pub const DEFAULT_TASK_DUMP_TIMEOUT: Duration = Duration::from_secs(1);

/// Tasks shown with their traces per runtime, at most (the rest are counted).
pub const MAX_TRACED_TASKS: usize = 1000;

/// Whether a registered runtime's tasks are dumped (with feature `taskdump`
/// and `--cfg tokio_unstable`; otherwise only metrics are shown anyway).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskDumps {
    /// Only where tokio's dump is known not to harm the runtime: a
    /// `multi_thread` runtime with **one** worker. Not a `multi_thread`
    /// runtime with two or more workers (tokio's dump barrier can keep a
    /// worker forever: `docs/tokio-taskdump-wedge.md`), not a
    /// `current_thread` runtime (tokio#8391 can abort the process). See the
    /// module docs.
    #[default]
    Auto,
    /// Every runtime, accepting tokio's hazards: a `multi_thread` runtime
    /// with two or more workers can lose a worker for good (and then never
    /// shut down), a `current_thread` runtime whose futures wake a waker
    /// while being polled can abort the process. For debugging sessions,
    /// not for production.
    Always,
    /// Metrics only, never a dump.
    Never,
}

// `dumps` and `dump` are read only when built with task dumps.
#[cfg_attr(not(all(feature = "taskdump", tokio_unstable)), allow(dead_code))]
struct Registered {
    name: String,
    handle: Handle,
    dumps: TaskDumps,
    dump: dump::DumpJob,
}

static RUNTIMES: Mutex<Vec<Arc<Registered>>> = Mutex::new(Vec::new());
static TIMEOUT_NS: AtomicU64 = AtomicU64::new(1_000_000_000);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shows the runtime of `handle` in every report's Green Threads section
/// under `name` ([`TaskDumps::Auto`]). Registering a name again replaces the
/// earlier runtime. Call [`unregister`] when the runtime is dropped.
pub fn register(name: impl Into<String>, handle: Handle) {
    register_with(name, handle, TaskDumps::Auto);
}

/// Like [`register`], choosing whether its tasks are dumped.
pub fn register_with(name: impl Into<String>, handle: Handle, dumps: TaskDumps) {
    let name = name.into();
    let entry = Arc::new(Registered {
        dump: dump::DumpJob::new(&name, &handle),
        name,
        handle,
        dumps,
    });
    let mut list = lock(&RUNTIMES);
    match list.iter_mut().find(|r| r.name == entry.name) {
        Some(slot) => *slot = entry,
        None => list.push(entry),
    }
}

/// [`register_current`] was called outside a tokio runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotInRuntime;

impl std::fmt::Display for NotInRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "guru::tokio::register_current was called outside a tokio runtime: call it inside the runtime (e.g. in #[tokio::main]'s async main), or pass a Handle to guru::tokio::register",
        )
    }
}

impl std::error::Error for NotInRuntime {}

/// Registers the runtime this is called in ([`Handle::try_current`]) under
/// `name`, like [`register`]: for `#[tokio::main]`, which gives no runtime
/// value to pass.
///
/// ```no_run
/// // With tokio's `macros` feature this is `#[tokio::main] async fn main()`.
/// async fn async_main() -> Result<(), Box<dyn std::error::Error>> {
///     let _guard = guru::setup_autorun(guru::package!())?;
///     guru::tokio::register_current("main")?;
///     // ... serve (axum::serve(listener, app).await?) ...
///     Ok(())
/// }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// #     let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// #     rt.block_on(async_main())
/// # }
/// ```
///
/// `#[tokio::main]` builds a `multi_thread` runtime with one worker per
/// CPU: with two or more, guru shows its metrics but takes no task dump by
/// default (see the module docs); `#[tokio::main(worker_threads = 1)]` gets
/// task traces.
pub fn register_current(name: impl Into<String>) -> Result<(), NotInRuntime> {
    let handle = Handle::try_current().map_err(|_| NotInRuntime)?;
    register(name, handle);
    Ok(())
}

/// Removes the runtime registered as `name`; false if there was none.
pub fn unregister(name: &str) -> bool {
    let mut list = lock(&RUNTIMES);
    let before = list.len();
    list.retain(|r| r.name != name);
    list.len() != before
}

/// The registered runtimes, in registration order: (name, handle), for the
/// stall watch ([`watch`]).
pub(crate) fn registered() -> Vec<(String, Handle)> {
    lock(&RUNTIMES)
        .iter()
        .map(|r| (r.name.clone(), r.handle.clone()))
        .collect()
}

/// How long a task dump may take before the report says it timed out and
/// goes on (default [`DEFAULT_TASK_DUMP_TIMEOUT`]; clamped to 1 ms ..= 1 h).
pub fn set_task_dump_timeout(timeout: Duration) {
    let t = timeout.clamp(Duration::from_millis(1), Duration::from_secs(3600));
    TIMEOUT_NS.store(
        u64::try_from(t.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// The current task dump timeout.
pub fn task_dump_timeout() -> Duration {
    Duration::from_nanos(TIMEOUT_NS.load(Ordering::Relaxed))
}

impl crate::Builder {
    /// Registers a tokio runtime for the Green Threads section (the same as
    /// [`guru::tokio::register`](register), done now).
    pub fn tokio_runtime(self, name: impl Into<String>, handle: Handle) -> Self {
        register(name, handle);
        self
    }

    /// Sets the task dump timeout (the same as [`set_task_dump_timeout`],
    /// done now).
    pub fn task_dump_timeout(self, timeout: Duration) -> Self {
        set_task_dump_timeout(timeout);
        self
    }
}

// ---------------------------------------------------------------------------
// The section

/// Runs `f`, turning a panic into a failed section.
fn guarded(f: impl FnOnce() -> Result<Data, String>) -> Result<Data, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panicked: {}",
            crate::sections::panic_message(p.as_ref())
        )),
    }
}

/// The Green Threads section, or `None` when no runtime is registered.
/// Runs in the reporter thread.
///
/// `threads` is this report's Threads section (to tell when a worker is
/// stuck in tokio's own dump machinery), `captured_unix_ns` when it was
/// captured (the figures say how much later they were read).
pub(crate) fn section(
    state: &mut ReporterState,
    modules: Option<&ModuleSet>,
    stats: &mut Stats,
    threads: Option<&Threads>,
    captured_unix_ns: Option<u64>,
) -> Option<model::Section> {
    let list: Vec<Arc<Registered>> = lock(&RUNTIMES).clone();
    if list.is_empty() {
        return None;
    }
    let data = guarded(|| {
        let runtimes = list
            .iter()
            .map(|r| {
                let m = r.handle.metrics();
                let workers = m.num_workers();
                let read_after_capture_ns =
                    captured_unix_ns.map(|c| guru_core::sys::realtime_ns().saturating_sub(c));
                Runtime {
                    name: r.name.clone(),
                    flavor: metrics::flavor_name(r.handle.runtime_flavor()),
                    workers,
                    alive_tasks: m.num_alive_tasks(),
                    global_queue_depth: m.global_queue_depth(),
                    worker_figures: (0..workers)
                        .map(|w| metrics::worker_figures(&m, w))
                        .collect(),
                    unstable: metrics::unstable_figures(&m),
                    read_after_capture_ns,
                    task_dump: dump::take(state, r, modules, stats, threads),
                    stalled_workers: watch::stalled_workers(&r.name),
                }
            })
            .collect();
        Ok(Data::GreenThreads(GreenThreads { runtimes }))
    });
    Some(model::Section::new(
        "Green Threads",
        Kind::GreenThreads,
        data,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_is_clamped() {
        set_task_dump_timeout(Duration::ZERO);
        assert_eq!(task_dump_timeout(), Duration::from_millis(1));
        set_task_dump_timeout(DEFAULT_TASK_DUMP_TIMEOUT);
        assert_eq!(task_dump_timeout(), DEFAULT_TASK_DUMP_TIMEOUT);
    }

    #[test]
    fn metrics_of_a_current_thread_runtime() {
        let rt = ::tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let m = rt.handle().metrics();
        let f = metrics::worker_figures(&m, 0);
        assert_eq!(f.index, 0);
        #[cfg(target_has_atomic = "64")]
        assert!(f.park_unpark_count.is_some());
        assert_eq!(
            metrics::flavor_name(rt.handle().runtime_flavor()),
            "current_thread"
        );
    }

    #[test]
    fn a_worker_in_the_dump_barrier_is_named() {
        let frame = |index: usize, name: &str, file: &str| model::Frame {
            index,
            address: model::Hex(0x10),
            module: None,
            module_offset: None,
            symbol: None,
            symbol_offset: None,
            functions: vec![model::Function {
                name: Some(name.into()),
                file: Some(file.into()),
                line: Some(51),
                inlined: false,
            }]
            .into(),
        };
        let thread = |tid: i32, frames: Vec<model::Frame>| model::Thread {
            tid,
            name: format!("w{tid}"),
            captured: true,
            state: String::new(),
            pause_ns: 0,
            writing_report: false,
            frames,
            stack_end: None,
            frames_scanned_from: None,
            unresponsive: None,
            elided: Vec::new(),
            cpu_ns: None,
            stack_hash: None,
            same_stack: None,
            stalled: false,
            mark: None,
            context: None,
        };
        let threads = Threads {
            threads: vec![
                thread(
                    7,
                    vec![
                        frame(
                            0,
                            "tokio::loom::std::barrier::Barrier::wait",
                            "src/loom/std/barrier.rs",
                        ),
                        frame(
                            1,
                            "tokio::runtime::scheduler::multi_thread::handle::Handle::trace_core",
                            "/x/tokio-1.54.1/src/runtime/scheduler/multi_thread/worker/taskdump.rs",
                        ),
                    ],
                ),
                thread(8, vec![frame(0, "app::ticker", "src/main.rs")]),
            ],
            left_out: 0,
            capacity: 8,
        };
        let stuck = traces::in_dump_machinery(Some(&threads));
        assert_eq!(stuck, [(7, "w7".to_string())]);
        assert!(traces::in_dump_machinery(None).is_empty());
        let why = traces::stuck_in_dump_reason(&stuck);
        assert!(
            why.contains("thread 7 \"w7\" is inside tokio's own task-dump machinery"),
            "{why}"
        );
    }

    #[test]
    fn identical_traces_are_grouped() {
        let mut state = ReporterState::default();
        let mut stats = Stats::default();
        let t = |frames: Vec<u64>, root_call| traces::RawTrace { frames, root_call };
        let raw = vec![
            ("1".to_string(), vec![t(vec![0x10, 0x20], true)]),
            ("2".to_string(), vec![t(vec![0x30], false)]),
            ("3".to_string(), vec![t(vec![0x10, 0x20], true)]),
        ];
        let groups = traces::group_and_symbolize(&mut state, raw, None, &mut stats);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].task_ids, ["1", "3"]);
        assert_eq!(groups[1].task_ids, ["2"]);
        assert_eq!(groups[0].traces[0].len(), 2);
        assert_eq!(groups[0].root_call_found, [true]);
        let green = GreenThreads {
            runtimes: vec![Runtime {
                name: "r\n1".into(),
                flavor: "multi_thread".into(),
                workers: 0,
                alive_tasks: 3,
                global_queue_depth: 0,
                worker_figures: Vec::new(),
                unstable: None,
                read_after_capture_ns: Some(1500),
                task_dump: model::TaskDump::Taken {
                    tasks: 3,
                    groups,
                    left_out: 0,
                    dump_ns: 1000,
                    resolve_ns: 1000,
                },
                stalled_workers: Vec::new(),
            }],
        };
        let report = model::Report {
            schema: model::SCHEMA.into(),
            pid: 1,
            sequence: 1,
            time: "2026-01-01T00:00:00.000Z".into(),
            time_unix_ns: 1_767_225_600_000_000_000,
            trigger: model::Trigger::Call,
            sections: vec![model::Section::new(
                "Green Threads",
                Kind::GreenThreads,
                Ok(Data::GreenThreads(green)),
            )],
            read_from_text: false,
        };
        let text = report.to_text();
        assert!(
            text.contains("------ Tasks 1, 3 (2 tasks) of runtime \"r\\x0a1\" ------"),
            "{text}"
        );
        assert!(text.contains("------ Task 2 of runtime"), "{text}");
        assert!(
            text.contains("  (#1: the call in the task's root future, found in its code; tokio's trace ends below it)"),
            "{text}"
        );
        assert_eq!(
            text.matches("the call in the task's root future").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("  #1 0x0000000000000020 ?? (no module)"),
            "{text}"
        );
        assert!(
            text.contains("  task traces: 3 tasks, 2 distinct traces;"),
            "{text}"
        );
        // And it reads back.
        let back = model::Report::from_text(&text).expect("parse");
        assert_eq!(back.to_text(), text);
    }
}
