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

// Used by task dumps only; compiled (and unit-tested) in every build.
#[cfg_attr(not(all(feature = "taskdump", tokio_unstable)), allow(dead_code))]
mod root_call;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::tokio::runtime::{Handle, RuntimeFlavor, RuntimeMetrics};
use guru_core::ModuleSet;
use guru_core::format::write_escaped;
use serde::Serialize;
use serde_json::{Value, json};

use crate::report::{Body, FrameData, ReporterState, Section, ThreadsData};
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
// What a report holds

/// One worker's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct WorkerFigures {
    index: usize,
    /// Parked (idle) at the time of the report; from the park/unpark count.
    parked: Option<bool>,
    busy_ns: Option<u64>,
    park_count: Option<u64>,
    park_unpark_count: Option<u64>,
    // tokio_unstable
    poll_count: Option<u64>,
    local_queue_depth: Option<usize>,
    steal_count: Option<u64>,
    mean_poll_ns: Option<u64>,
}

/// Runtime-wide figures tokio gives only with `--cfg tokio_unstable`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct UnstableFigures {
    blocking_threads: usize,
    idle_blocking_threads: usize,
    blocking_queue_depth: usize,
    spawned_tasks: Option<u64>,
    remote_schedules: Option<u64>,
    budget_forced_yields: Option<u64>,
}

/// One trace group: tasks whose traces are the same.
#[derive(Debug, Clone)]
pub(crate) struct TaskGroup {
    ids: Vec<String>,
    /// One stack per leaf future the tasks wait on, innermost frame first.
    traces: Vec<Vec<FrameData>>,
    /// Per trace: its last frame is the call in the task's root future,
    /// found in the code (`root_call`), not taken by tokio.
    root_calls: Vec<bool>,
}

/// One trace as taken: return addresses, innermost first, and whether the
/// last one was added from the root future's code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RawTrace {
    frames: Vec<u64>,
    root_call: bool,
}

/// The outcome of a task dump.
#[derive(Debug, Clone)]
#[cfg_attr(not(all(feature = "taskdump", tokio_unstable)), allow(dead_code))]
pub(crate) enum Tasks {
    /// Not built in, or not for this runtime: why.
    NotTaken(String),
    /// Not requested now: a worker looks blocked.
    Blocked(String),
    /// Requested; it did not finish in time.
    TimedOut { timeout_ms: u128, detail: String },
    /// Requested; it failed (panicked, still pending from earlier, …).
    Failed(String),
    Taken {
        tasks: usize,
        groups: Vec<TaskGroup>,
        left_out: usize,
        /// The dump itself (tokio pausing the runtime, re-polling tasks).
        dump_ns: u64,
        /// tokio's `resolve_backtraces` (backtrace-rs), before guru's own
        /// symbolization (counted in the Report section).
        resolve_ns: u64,
    },
}

/// One runtime of the Green Threads section.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeData {
    name: String,
    flavor: String,
    workers: usize,
    alive_tasks: usize,
    global_queue_depth: usize,
    worker_figures: Vec<WorkerFigures>,
    unstable: Option<UnstableFigures>,
    /// How long after the Threads section's capture the figures were read.
    read_after_ns: Option<u64>,
    tasks: Tasks,
}

/// The Green Threads section.
#[derive(Debug, Clone)]
pub(crate) struct GreenThreads {
    runtimes: Vec<RuntimeData>,
}

fn flavor_name(f: RuntimeFlavor) -> String {
    match f {
        RuntimeFlavor::CurrentThread => "current_thread".into(),
        RuntimeFlavor::MultiThread => "multi_thread".into(),
        other => format!("{other:?}"),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn worker_figures(m: &RuntimeMetrics, w: usize) -> WorkerFigures {
    #[allow(unused_mut)]
    let mut f = WorkerFigures {
        index: w,
        ..WorkerFigures::default()
    };
    #[cfg(target_has_atomic = "64")]
    {
        let pu = m.worker_park_unpark_count(w);
        f.parked = Some(!pu.is_multiple_of(2));
        f.park_unpark_count = Some(pu);
        f.park_count = Some(m.worker_park_count(w));
        f.busy_ns = Some(nanos(m.worker_total_busy_duration(w)));
    }
    #[cfg(tokio_unstable)]
    {
        f.local_queue_depth = Some(m.worker_local_queue_depth(w));
        #[cfg(target_has_atomic = "64")]
        {
            f.poll_count = Some(m.worker_poll_count(w));
            f.steal_count = Some(m.worker_steal_count(w));
            f.mean_poll_ns = Some(nanos(m.worker_mean_poll_time(w)));
        }
    }
    let _ = m;
    f
}

#[cfg(tokio_unstable)]
fn unstable_figures(m: &RuntimeMetrics) -> Option<UnstableFigures> {
    #[allow(unused_mut)]
    let mut u = UnstableFigures {
        blocking_threads: m.num_blocking_threads(),
        idle_blocking_threads: m.num_idle_blocking_threads(),
        blocking_queue_depth: m.blocking_queue_depth(),
        ..UnstableFigures::default()
    };
    #[cfg(target_has_atomic = "64")]
    {
        u.spawned_tasks = Some(m.spawned_tasks_count());
        u.remote_schedules = Some(m.remote_schedule_count());
        u.budget_forced_yields = Some(m.budget_forced_yield_count());
    }
    Some(u)
}

#[cfg(not(tokio_unstable))]
fn unstable_figures(_: &RuntimeMetrics) -> Option<UnstableFigures> {
    None
}

/// Runs `f`, turning a panic into a failed section.
fn guarded(f: impl FnOnce() -> Result<Body, String>) -> Result<Body, String> {
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
    threads: Option<&ThreadsData>,
    captured_unix_ns: Option<u64>,
) -> Option<Section> {
    let list: Vec<Arc<Registered>> = lock(&RUNTIMES).clone();
    if list.is_empty() {
        return None;
    }
    let body = guarded(|| {
        let runtimes = list
            .iter()
            .map(|r| {
                let m = r.handle.metrics();
                let workers = m.num_workers();
                let read_after_ns =
                    captured_unix_ns.map(|c| guru_core::sys::realtime_ns().saturating_sub(c));
                RuntimeData {
                    name: r.name.clone(),
                    flavor: flavor_name(r.handle.runtime_flavor()),
                    workers,
                    alive_tasks: m.num_alive_tasks(),
                    global_queue_depth: m.global_queue_depth(),
                    worker_figures: (0..workers).map(|w| worker_figures(&m, w)).collect(),
                    unstable: unstable_figures(&m),
                    read_after_ns,
                    tasks: dump::take(state, r, modules, stats, threads),
                }
            })
            .collect();
        Ok(Body::GreenThreads(Box::new(GreenThreads { runtimes })))
    });
    Some(Section {
        title: "Green Threads".into(),
        kind: "green_threads",
        body,
    })
}

/// Threads of this report whose stack is inside tokio's multi-thread dump
/// machinery (`Handle::trace_core`, `worker/taskdump.rs`): `(tid, name)`.
/// A worker waiting there longer than tokio's 250 ms barrier timeout has
/// been left there by an earlier dump (see `docs/tokio-taskdump-wedge.md`).
#[cfg_attr(not(all(feature = "taskdump", tokio_unstable)), allow(dead_code))]
fn in_dump_machinery(threads: Option<&ThreadsData>) -> Vec<(i32, String)> {
    let Some(threads) = threads else {
        return Vec::new();
    };
    threads
        .threads
        .iter()
        .filter(|t| {
            t.frames.iter().any(|f| {
                f.symbolized.functions.iter().any(|func| {
                    func.name
                        .as_deref()
                        .is_some_and(|n| n.contains("multi_thread") && n.ends_with("trace_core"))
                        || func
                            .file
                            .as_deref()
                            .is_some_and(|p| p.ends_with("multi_thread/worker/taskdump.rs"))
                }) || f
                    .symbolized
                    .symbol
                    .as_ref()
                    .is_some_and(|(n, _)| n.contains("multi_thread") && n.contains("trace_core"))
            })
        })
        .map(|t| (t.tid, t.name.clone()))
        .collect()
}

/// The reason given when threads are in tokio's dump machinery.
#[cfg_attr(not(all(feature = "taskdump", tokio_unstable)), allow(dead_code))]
fn stuck_in_dump_reason(stuck: &[(i32, String)]) -> String {
    let list: Vec<String> = stuck
        .iter()
        .map(|(tid, name)| format!("{tid} \"{name}\""))
        .collect();
    format!(
        "no task dump requested: thread{} {} {} inside tokio's own task-dump machinery (Handle::trace_core, waiting on its dump barrier; see the Threads section): an earlier task dump left {} there (tokio's barrier bug, tokio#8370), not the application; another dump could make it worse",
        if list.len() == 1 { "" } else { "s" },
        list.join(", "),
        if list.len() == 1 { "is" } else { "are" },
        if list.len() == 1 { "it" } else { "them" },
    )
}

/// Groups tasks with identical traces (in first-seen order) and symbolizes
/// each distinct trace once.
// Used by the real `dump` module (and the tests) only.
#[allow(dead_code)]
fn group_and_symbolize(
    state: &mut ReporterState,
    raw: Vec<(String, Vec<RawTrace>)>,
    modules: Option<&ModuleSet>,
    stats: &mut Stats,
) -> Vec<TaskGroup> {
    let mut index: HashMap<Vec<RawTrace>, usize> = HashMap::new();
    let mut groups: Vec<(Vec<String>, Vec<RawTrace>)> = Vec::new();
    for (id, traces) in raw {
        match index.get(&traces) {
            Some(&i) => groups[i].0.push(id),
            None => {
                index.insert(traces.clone(), groups.len());
                groups.push((vec![id], traces));
            }
        }
    }
    groups
        .into_iter()
        .map(|(mut ids, traces)| TaskGroup {
            ids: {
                ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.clone()));
                ids
            },
            root_calls: traces.iter().map(|t| t.root_call).collect(),
            traces: traces
                .iter()
                .map(|t| symbolize(state, &t.frames, modules, stats))
                .collect(),
        })
        .collect()
}

fn symbolize(
    state: &mut ReporterState,
    frames: &[u64],
    modules: Option<&ModuleSet>,
    stats: &mut Stats,
) -> Vec<FrameData> {
    let Some(modules) = modules else {
        return frames
            .iter()
            .map(|&address| FrameData {
                address,
                module: None,
                symbolized: crate::symbols::Symbolized {
                    functions: Vec::new(),
                    symbol: None,
                },
            })
            .collect();
    };
    let symbolized = state
        .symbolizer
        .symbolize_return_addresses(modules, frames, stats);
    frames
        .iter()
        .zip(symbolized)
        .map(|(&address, symbolized)| FrameData {
            address,
            module: modules.resolve(address, true).map(|res| {
                let mut name = String::new();
                let _ = write_escaped(&mut name, res.module.short_name());
                (name, res.module_offset)
            }),
            symbolized,
        })
        .collect()
}

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
mod dump {
    //! Built without task dumps: metrics only, and why.

    use ::tokio::runtime::Handle;
    use guru_core::ModuleSet;

    use super::{Registered, Tasks};
    use crate::report::{ReporterState, ThreadsData};
    use crate::symbols::Stats;

    #[derive(Debug)]
    pub(super) struct DumpJob;

    impl DumpJob {
        pub(super) fn new(_: &str, _: &Handle) -> DumpJob {
            DumpJob
        }
    }

    pub(super) fn take(
        _: &mut ReporterState,
        _: &Registered,
        _: Option<&ModuleSet>,
        _: &mut Stats,
        _: Option<&ThreadsData>,
    ) -> Tasks {
        let how = if cfg!(not(feature = "taskdump")) {
            "build guru with feature `taskdump` and the application with RUSTFLAGS=\"--cfg tokio_unstable\""
        } else if cfg!(not(tokio_unstable)) {
            "build the application with RUSTFLAGS=\"--cfg tokio_unstable\" (guru's feature `taskdump` is on)"
        } else {
            "tokio's task dumps need Linux on x86_64 or aarch64"
        };
        Tasks::NotTaken(format!("task traces not built in: {how}"))
    }
}

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
mod dump {
    //! Taking a dump: on the section worker, under the timeout.

    use std::future::Future;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use ::tokio::runtime::{Dump, Handle, RuntimeFlavor, RuntimeMetrics};
    use ::tokio::task::AbortHandle;
    use guru_core::ModuleSet;

    use super::{Registered, TaskDumps, Tasks, lock};
    use crate::report::{ReporterState, ThreadsData};
    use crate::sections::{Job, Outcome};
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
        threads: Option<&ThreadsData>,
    ) -> Tasks {
        let flavor = r.handle.runtime_flavor();
        let current = flavor == RuntimeFlavor::CurrentThread;
        match r.dumps {
            TaskDumps::Never => {
                return Tasks::NotTaken(
                    "task dumps are turned off for this runtime (TaskDumps::Never)".into(),
                );
            }
            TaskDumps::Auto if current => {
                return Tasks::NotTaken(
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
            let stuck = super::in_dump_machinery(threads);
            if !stuck.is_empty() {
                return Tasks::Blocked(super::stuck_in_dump_reason(&stuck));
            }
        }
        if !current && m.num_workers() >= 2 && r.dumps == TaskDumps::Auto {
            return Tasks::NotTaken(format!(
                "not taken for a multi_thread runtime with {} workers: tokio's multi-thread task dump (as of tokio 1.54.1) can leave a worker waiting forever in its dump barrier, and the runtime then never shuts down (tokio#8370; guru's docs/tokio-taskdump-wedge.md); guru dumps multi_thread runtimes with 1 worker only, opt in with guru::tokio::register_with(.., TaskDumps::Always) at that risk",
                m.num_workers()
            ));
        }
        if !current && m.num_workers() >= 2 {
            let blocked = blocked_workers(&m, PROBE_WINDOW);
            if !blocked.is_empty() {
                let list: Vec<String> = blocked.iter().map(usize::to_string).collect();
                return Tasks::Blocked(format!(
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
                return Tasks::TimedOut {
                    timeout_ms: timeout.as_millis(),
                    detail,
                };
            }
            Outcome::Failed(why) if why.starts_with("still running") => {
                return Tasks::Failed(
                    "the dump requested by an earlier report has not ended (it timed out then); no new dump is requested until it does".into(),
                );
            }
            Outcome::Failed(why) => return Tasks::Failed(why),
        }
        let Some(dump) = lock(&d.slot).take() else {
            return Tasks::Failed("the dump left no result".into());
        };
        let resolving = Instant::now();
        let all = dump.tasks().iter().count();
        let raw: Vec<(String, Vec<super::RawTrace>)> = dump
            .tasks()
            .iter()
            .take(super::MAX_TRACED_TASKS)
            .map(|t| {
                let traces = t
                    .trace()
                    .resolve_backtraces()
                    .iter()
                    .map(|bt| {
                        let mut frames: Vec<u64> =
                            bt.frames().map(|f| f.ip().addr() as u64).collect();
                        // tokio drops the root future's frame, where an
                        // optimized build inlines the task's async fns:
                        // find that call in the code (root_call).
                        let root = bt.frames().last().and_then(|f| {
                            root_call_frame(
                                state,
                                modules?,
                                f.symbol_address().addr() as u64,
                                stats,
                            )
                        });
                        frames.extend(root);
                        super::RawTrace {
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
        Tasks::Taken {
            tasks: all,
            groups: super::group_and_symbolize(state, raw, modules, stats),
            left_out: all - shown,
            dump_ns,
            resolve_ns,
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn secs(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".into(), |ns| format!("{:.3} s", ns as f64 / 1e9))
}

fn micros(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".into(), |ns| format!("{:.1} us", ns as f64 / 1e3))
}

fn escaped(s: &str) -> String {
    let mut out = String::new();
    let _ = write_escaped(&mut out, s.as_bytes());
    out
}

/// The text of the Green Threads section.
pub(crate) fn write_text(w: &mut String, g: &GreenThreads) {
    for (i, r) in g.runtimes.iter().enumerate() {
        if i > 0 {
            w.push('\n');
        }
        let name = escaped(&r.name);
        let _ = writeln!(
            w,
            "Runtime \"{name}\" ({}): {} worker{}, {} alive task{}, global queue depth {}",
            r.flavor,
            r.workers,
            if r.workers == 1 { "" } else { "s" },
            r.alive_tasks,
            if r.alive_tasks == 1 { "" } else { "s" },
            r.global_queue_depth
        );
        if let Some(ns) = r.read_after_ns {
            // Threads and these figures are two snapshots: say how far apart.
            w.push_str("  figures read ");
            let _ = guru_core::format::write_duration(w, ns);
            w.push_str(" after the Threads section's capture\n");
        }
        let unstable = r.worker_figures.iter().any(|f| f.poll_count.is_some());
        let _ = write!(
            w,
            "  {:>6}  {:<6}  {:>12}  {:>8}  {:>11}",
            "worker", "state", "busy", "parks", "park/unpark"
        );
        if unstable {
            let _ = write!(
                w,
                "  {:>10}  {:>11}  {:>8}  {:>10}",
                "polls", "local queue", "steals", "mean poll"
            );
        }
        w.push('\n');
        for f in &r.worker_figures {
            let state = match f.parked {
                Some(true) => "parked",
                Some(false) => "active",
                None => "-",
            };
            let _ = write!(
                w,
                "  {:>6}  {:<6}  {:>12}  {:>8}  {:>11}",
                f.index,
                state,
                secs(f.busy_ns),
                opt(f.park_count),
                opt(f.park_unpark_count)
            );
            if unstable {
                let _ = write!(
                    w,
                    "  {:>10}  {:>11}  {:>8}  {:>10}",
                    opt(f.poll_count),
                    opt(f.local_queue_depth),
                    opt(f.steal_count),
                    micros(f.mean_poll_ns)
                );
            }
            w.push('\n');
        }
        if let Some(u) = &r.unstable {
            let _ = writeln!(
                w,
                "  blocking threads: {} ({} idle), blocking queue depth {}; spawned tasks {}, remote schedules {}, budget-forced yields {}",
                u.blocking_threads,
                u.idle_blocking_threads,
                u.blocking_queue_depth,
                opt(u.spawned_tasks),
                opt(u.remote_schedules),
                opt(u.budget_forced_yields)
            );
        }
        match &r.tasks {
            Tasks::NotTaken(why) | Tasks::Blocked(why) | Tasks::Failed(why) => {
                let _ = writeln!(w, "  task traces: {}", escaped(why));
            }
            Tasks::TimedOut { timeout_ms, detail } => {
                let _ = writeln!(
                    w,
                    "  task traces: task dump timed out after {timeout_ms} ms: {}",
                    escaped(detail)
                );
            }
            Tasks::Taken {
                tasks,
                groups,
                left_out,
                dump_ns,
                resolve_ns,
            } => {
                let _ = write!(
                    w,
                    "  task traces: {tasks} tasks, {} distinct traces; the dump took ",
                    groups.len()
                );
                let _ = guru_core::format::write_duration(w, *dump_ns);
                w.push_str(", tokio's backtrace resolution ");
                let _ = guru_core::format::write_duration(w, *resolve_ns);
                w.push('\n');
                if *left_out > 0 {
                    let _ = writeln!(
                        w,
                        "  ({left_out} more tasks left out: at most {MAX_TRACED_TASKS} are traced)"
                    );
                }
                for g in groups {
                    w.push('\n');
                    write_group(w, &name, g);
                }
            }
        }
    }
}

fn write_group(w: &mut String, runtime: &str, g: &TaskGroup) {
    let ids: Vec<String> = g.ids.iter().map(|i| escaped(i)).collect();
    if ids.len() == 1 {
        let _ = write!(w, "------ Task {}", ids[0]);
    } else {
        let _ = write!(w, "------ Tasks {} ({} tasks)", ids.join(", "), ids.len());
    }
    let _ = writeln!(w, " of runtime \"{runtime}\" ------");
    if g.traces.is_empty() {
        w.push_str("  (no trace: the task did not reach a tokio leaf future when traced)\n");
    }
    for (n, trace) in g.traces.iter().enumerate() {
        if g.traces.len() > 1 {
            let _ = writeln!(w, "  -- waiting on leaf {} of {}:", n + 1, g.traces.len());
        }
        for (i, f) in trace.iter().enumerate() {
            crate::text::write_frame(w, i, f);
        }
        if g.root_calls.get(n).copied().unwrap_or(false) {
            let _ = writeln!(
                w,
                "  (#{}: the call in the task's root future, found in its code; tokio's trace ends below it)",
                trace.len().saturating_sub(1)
            );
        }
    }
}

/// The JSON of the Green Threads section (`kind` `green_threads`).
pub(crate) fn to_json(g: &GreenThreads) -> Value {
    let runtimes: Vec<Value> = g
        .runtimes
        .iter()
        .map(|r| {
            let task_dump = match &r.tasks {
                Tasks::NotTaken(why) => json!({ "status": "not_taken", "reason": why }),
                Tasks::Blocked(why) => json!({ "status": "blocked", "reason": why }),
                Tasks::Failed(why) => json!({ "status": "failed", "reason": why }),
                Tasks::TimedOut { timeout_ms, detail } => json!({
                    "status": "timed_out",
                    "timeout_ms": u64::try_from(*timeout_ms).unwrap_or(u64::MAX),
                    "reason": detail,
                }),
                Tasks::Taken {
                    tasks,
                    groups,
                    left_out,
                    dump_ns,
                    resolve_ns,
                } => {
                    let groups: Vec<Value> = groups
                        .iter()
                        .map(|g| {
                            let traces: Vec<Value> = g
                                .traces
                                .iter()
                                .map(|t| {
                                    Value::Array(
                                        t.iter()
                                            .enumerate()
                                            .map(|(n, f)| crate::json::frame_json(n, f))
                                            .collect(),
                                    )
                                })
                                .collect();
                            json!({
                                "task_ids": g.ids,
                                "traces": traces,
                                "root_call_found": g.root_calls,
                            })
                        })
                        .collect();
                    json!({
                        "status": "taken", "tasks": tasks, "left_out": left_out,
                        "dump_ns": dump_ns, "resolve_ns": resolve_ns, "groups": groups,
                    })
                }
            };
            json!({
                "name": r.name,
                "flavor": r.flavor,
                "workers": r.workers,
                "alive_tasks": r.alive_tasks,
                "global_queue_depth": r.global_queue_depth,
                "worker_figures": r.worker_figures,
                "unstable": r.unstable,
                "read_after_capture_ns": r.read_after_ns,
                "task_dump": task_dump,
            })
        })
        .collect();
    json!({ "runtimes": runtimes })
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
        let f = worker_figures(&m, 0);
        assert_eq!(f.index, 0);
        #[cfg(target_has_atomic = "64")]
        assert!(f.park_unpark_count.is_some());
        assert_eq!(flavor_name(rt.handle().runtime_flavor()), "current_thread");
    }

    #[test]
    fn a_worker_in_the_dump_barrier_is_named() {
        use crate::report::ThreadData;
        use crate::symbols::{Func, Symbolized};
        let frame = |name: &str, file: &str| FrameData {
            address: 0x10,
            module: None,
            symbolized: Symbolized {
                functions: vec![Func {
                    name: Some(name.into()),
                    file: Some(file.into()),
                    line: Some(51),
                    inlined: false,
                }],
                symbol: None,
            },
        };
        let thread = |tid: i32, frames: Vec<FrameData>| ThreadData {
            tid,
            name: format!("w{tid}"),
            header: String::new(),
            state: String::new(),
            pause_ns: 0,
            writing_report: false,
            frames,
            end: None,
            scanned_from: 0,
            unresponsive: None,
        };
        let threads = ThreadsData {
            threads: vec![
                thread(
                    7,
                    vec![
                        frame(
                            "tokio::loom::std::barrier::Barrier::wait",
                            "src/loom/std/barrier.rs",
                        ),
                        frame(
                            "tokio::runtime::scheduler::multi_thread::handle::Handle::trace_core",
                            "/x/tokio-1.54.1/src/runtime/scheduler/multi_thread/worker/taskdump.rs",
                        ),
                    ],
                ),
                thread(8, vec![frame("app::ticker", "src/main.rs")]),
            ],
            left_out: 0,
            capacity: 8,
        };
        let stuck = in_dump_machinery(Some(&threads));
        assert_eq!(stuck, [(7, "w7".to_string())]);
        assert!(in_dump_machinery(None).is_empty());
        let why = stuck_in_dump_reason(&stuck);
        assert!(
            why.contains("thread 7 \"w7\" is inside tokio's own task-dump machinery"),
            "{why}"
        );
    }

    #[test]
    fn identical_traces_are_grouped() {
        let mut state = ReporterState::default();
        let mut stats = Stats::default();
        let t = |frames: Vec<u64>, root_call| RawTrace { frames, root_call };
        let raw = vec![
            ("1".to_string(), vec![t(vec![0x10, 0x20], true)]),
            ("2".to_string(), vec![t(vec![0x30], false)]),
            ("3".to_string(), vec![t(vec![0x10, 0x20], true)]),
        ];
        let groups = group_and_symbolize(&mut state, raw, None, &mut stats);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].ids, ["1", "3"]);
        assert_eq!(groups[1].ids, ["2"]);
        assert_eq!(groups[0].traces[0].len(), 2);
        let mut text = String::new();
        write_text(
            &mut text,
            &GreenThreads {
                runtimes: vec![RuntimeData {
                    name: "r\n1".into(),
                    flavor: "multi_thread".into(),
                    workers: 0,
                    alive_tasks: 3,
                    global_queue_depth: 0,
                    worker_figures: Vec::new(),
                    unstable: None,
                    read_after_ns: Some(1500),
                    tasks: Tasks::Taken {
                        tasks: 3,
                        groups,
                        left_out: 0,
                        dump_ns: 1000,
                        resolve_ns: 1000,
                    },
                }],
            },
        );
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
    }
}
