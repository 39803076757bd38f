//! Stalled tokio workers (feature `tokio`, opt-in with
//! [`Builder::tokio_stall_threshold`](crate::Builder::tokio_stall_threshold)).
//!
//! A worker of a `multi_thread` runtime publishes its metrics (park count,
//! park/unpark count, busy time; with `--cfg tokio_unstable` also its poll
//! count) when it is back in its scheduler loop: every `event_interval`
//! (61) scheduler ticks and whenever it parks. A worker whose figures stop
//! moving while it is not parked (its park/unpark count is even) is inside
//! one poll: a task blocking its worker — "blocking in a poll", the most
//! common tokio production bug. When that lasts longer than the threshold,
//! guru makes one automatic report (rate-limited with the heartbeats: see
//! [the watchdog](crate::watchdog)); it names the worker and its thread,
//! which comes first in the Threads section, and the Green Threads section
//! says which worker is stalled and for how long.
//!
//! # How the worker's thread is known
//!
//! tokio does not say which OS thread runs worker N. While the watch is on,
//! guru spawns a tiny probe task (at most one a second) on a runtime whose
//! workers are not all known yet; a probe notes `tokio::runtime::worker_index()` and its thread
//! id. A worker no probe ran on is found, when it stalls, by elimination:
//! the one thread with a known worker's name that is not waiting in
//! `futex`/`epoll_wait` and not another worker's; otherwise the report says
//! "thread not known".
//!
//! # Costs and limits
//!
//! - The watch needs sampling: while a runtime is registered and the
//!   threshold is set, the reporter thread wakes every quarter of the
//!   threshold (at least every 10 ms: 8 wake-ups a second for 500 ms) and
//!   reads each worker's metrics (atomic loads); a stall is seen between 1
//!   and 1.25 thresholds after the worker's last figures. Measured in
//!   BENCHMARKS.md. With the option off (the default) nothing is sampled.
//! - Only `multi_thread` runtimes are watched (a `current_thread` runtime's
//!   thread is often not inside `block_on` at all).
//! - A healthy worker publishes its figures only every 61 ticks: a threshold
//!   shorter than 61 × the longest legitimate poll can see a busy worker as
//!   stalled. Keep the threshold well above that (hundreds of ms).
//! - A runtime dropped while still registered: its workers' figures stop;
//!   a known worker thread that no longer exists is not a stall, an unknown
//!   one may be reported. Call [`unregister`](crate::tokio::unregister)
//!   when dropping a runtime.
//! - `block_in_place` hands a worker to another thread: the thread noted by
//!   the probe may then be the old one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::tokio::runtime::{Handle, RuntimeFlavor, RuntimeMetrics};

use crate::model::{Stall, Stalled, StalledWorker};
use crate::watchdog::{EXTERNAL_KEYS, Now, State};

/// The threshold in ns (0: off).
static THRESHOLD_NS: AtomicU64 = AtomicU64::new(0);
/// Monotonic time of the last sample.
static LAST_SAMPLE_NS: AtomicU64 = AtomicU64::new(0);
static WATCH: Mutex<Vec<RuntimeWatch>> = Mutex::new(Vec::new());
static NEXT_RUNTIME_ID: AtomicU64 = AtomicU64::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl crate::Builder {
    /// Makes an automatic report when a worker of a registered
    /// `multi_thread` tokio runtime has not come back to its scheduler for
    /// longer than `threshold` (off by default; clamped to 10 ms ..= 1 h;
    /// `Duration::ZERO` turns it off). Takes effect now, for every
    /// registered runtime (like [`Builder::task_dump_timeout`](crate::Builder::task_dump_timeout)).
    /// See `guru::tokio` and the crate docs (*Tokio stall detection*) for
    /// how it works and what it costs.
    pub fn tokio_stall_threshold(self, threshold: Duration) -> Self {
        let ns = if threshold.is_zero() {
            0
        } else {
            nanos(threshold.clamp(Duration::from_millis(10), Duration::from_secs(3600)))
        };
        THRESHOLD_NS.store(ns, Ordering::Relaxed);
        self
    }
}

/// One worker as the watch sees it.
#[derive(Debug, Clone, Copy, Default)]
struct WorkerWatch {
    figures: (u64, u64, u64, u64),
    /// When its figures last moved or it was parked (monotonic ns).
    moved_ns: u64,
    stalled: bool,
}

#[derive(Debug)]
struct RuntimeWatch {
    id: u64,
    name: String,
    handle: Handle,
    workers: Vec<WorkerWatch>,
    /// Worker index → thread id, noted by probe tasks.
    tids: Arc<Mutex<Vec<Option<i32>>>>,
    probe_pending: Arc<AtomicBool>,
    /// When the last probe was spawned (monotonic ns).
    probed_ns: u64,
}

/// At most one probe task per runtime in this time.
const PROBE_EVERY_NS: u64 = 1_000_000_000;

fn figures(m: &RuntimeMetrics, w: usize) -> (u64, u64, u64, u64) {
    #[cfg(tokio_unstable)]
    let polls = m.worker_poll_count(w);
    #[cfg(not(tokio_unstable))]
    let polls = 0;
    (
        m.worker_park_unpark_count(w),
        m.worker_park_count(w),
        nanos(m.worker_total_busy_duration(w)),
        polls,
    )
}

fn sample_interval(threshold_ns: u64) -> u64 {
    (threshold_ns / 4).max(10_000_000)
}

/// When the watch wants the next sample (None: nothing to watch).
pub(crate) fn next_sample(_now: Now) -> Option<u64> {
    let threshold = THRESHOLD_NS.load(Ordering::Relaxed);
    if threshold == 0 || super::registered().is_empty() {
        return None;
    }
    Some(LAST_SAMPLE_NS.load(Ordering::Relaxed) + sample_interval(threshold))
}

/// Spawns one probe on `rw`'s runtime if workers are still unknown (at
/// most one a second).
fn probe(rw: &mut RuntimeWatch, now_ns: u64) {
    let known = lock(&rw.tids).iter().all(Option::is_some);
    if known
        || (rw.probed_ns != 0 && now_ns < rw.probed_ns.saturating_add(PROBE_EVERY_NS))
        || rw.probe_pending.swap(true, Ordering::AcqRel)
    {
        return;
    }
    rw.probed_ns = now_ns;
    let tids = rw.tids.clone();
    let pending = rw.probe_pending.clone();
    drop(rw.handle.spawn(async move {
        if let Some(i) = ::tokio::runtime::worker_index()
            && let Some(slot) = lock(&tids).get_mut(i)
        {
            *slot = Some(guru_core::sys::gettid());
        }
        pending.store(false, Ordering::Release);
    }));
}

fn comm(tid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

/// Whether a thread waits in futex/epoll (a parked worker, an idle thread).
fn waiting_idle(tid: i32) -> bool {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).unwrap_or_default();
    let nr: libc::c_long = s
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1);
    nr == libc::SYS_futex || nr == libc::SYS_epoll_pwait || {
        #[cfg(target_arch = "x86_64")]
        {
            nr == libc::SYS_epoll_wait
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// The thread of stalled worker `w`: noted by a probe, or by elimination.
fn worker_tid(rw: &RuntimeWatch, w: usize) -> Option<i32> {
    let tids = lock(&rw.tids).clone();
    if let Some(Some(t)) = tids.get(w) {
        return Some(*t);
    }
    let known: Vec<i32> = tids.iter().flatten().copied().collect();
    let names: Vec<String> = known.iter().filter_map(|&t| comm(t)).collect();
    if names.is_empty() {
        return None;
    }
    let candidates: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|t| !known.contains(t))
        .filter(|&t| comm(t).is_some_and(|n| names.contains(&n)))
        .filter(|&t| !waiting_idle(t))
        .collect();
    match candidates.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Samples every watched runtime's workers; starts and ends stall episodes
/// in the watchdog's state. Runs in the reporter thread (and before each
/// report: `force`, so the report sees recoveries).
pub(crate) fn sample(st: &mut State, now: Now, force: bool) {
    let threshold = THRESHOLD_NS.load(Ordering::Relaxed);
    if threshold == 0 {
        return;
    }
    let last = LAST_SAMPLE_NS.load(Ordering::Relaxed);
    if !force && now.mono_ns < last.saturating_add(sample_interval(threshold) / 2) {
        return;
    }
    LAST_SAMPLE_NS.store(now.mono_ns, Ordering::Relaxed);
    let registered = super::registered();
    let mut watch = lock(&WATCH);
    // Follow the registry: drop runtimes unregistered, add new ones.
    watch.retain(|rw| {
        let keep = registered.iter().any(|(n, _)| *n == rw.name);
        if !keep {
            for (w, ww) in rw.workers.iter().enumerate().filter(|(_, ww)| ww.stalled) {
                let silent = now.mono_ns.saturating_sub(ww.moved_ns);
                st.end_external(key(rw.id, w), silent, true);
            }
        }
        keep
    });
    for (name, handle) in registered {
        if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
            continue;
        }
        if !watch.iter().any(|rw| rw.name == name) {
            let n = handle.metrics().num_workers();
            watch.push(RuntimeWatch {
                id: NEXT_RUNTIME_ID.fetch_add(1, Ordering::Relaxed),
                name,
                handle,
                workers: vec![
                    WorkerWatch {
                        moved_ns: now.mono_ns,
                        ..WorkerWatch::default()
                    };
                    n
                ],
                tids: Arc::new(Mutex::new(vec![None; n])),
                probe_pending: Arc::new(AtomicBool::new(false)),
                probed_ns: 0,
            });
        }
    }
    for rw in watch.iter_mut() {
        probe(rw, now.mono_ns);
        let m = rw.handle.metrics();
        for w in 0..rw.workers.len().min(m.num_workers()) {
            let fig = figures(&m, w);
            let parked = fig.0 % 2 == 1;
            let ww = rw.workers[w];
            if fig != ww.figures || parked {
                if ww.stalled {
                    st.end_external(
                        key(rw.id, w),
                        now.mono_ns.saturating_sub(ww.moved_ns),
                        false,
                    );
                }
                rw.workers[w] = WorkerWatch {
                    figures: fig,
                    moved_ns: now.mono_ns,
                    stalled: false,
                };
                continue;
            }
            let silent = now.mono_ns.saturating_sub(ww.moved_ns);
            if ww.stalled || silent <= threshold {
                continue;
            }
            let tid = worker_tid(rw, w);
            // A noted worker thread that is gone: the runtime was dropped.
            let gone = tid.is_some_and(|t| comm(t).is_none());
            if gone {
                continue;
            }
            rw.workers[w].stalled = true;
            st.start_external(
                key(rw.id, w),
                Stall {
                    what: Stalled::TokioWorker {
                        runtime: rw.name.clone(),
                        worker: w,
                    },
                    deadline_ns: threshold,
                    silent_ns: silent,
                    tid,
                    thread_name: tid.and_then(crate::watchdog::thread_name),
                },
                now,
            );
        }
    }
}

fn key(runtime: u64, worker: usize) -> u64 {
    EXTERNAL_KEYS + (runtime << 16) + worker as u64
}

/// The workers of runtime `name` stalled now, for its Green Threads data.
pub(crate) fn stalled_workers(name: &str) -> Vec<StalledWorker> {
    let now = crate::sys::coarse_monotonic_ns();
    let watch = lock(&WATCH);
    let Some(rw) = watch.iter().find(|rw| rw.name == name) else {
        return Vec::new();
    };
    rw.workers
        .iter()
        .enumerate()
        .filter(|(_, ww)| ww.stalled)
        .map(|(w, ww)| StalledWorker {
            worker: w,
            silent_ns: now.saturating_sub(ww.moved_ns),
            tid: worker_tid(rw, w),
        })
        .collect()
}
