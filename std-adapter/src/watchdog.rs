//! Heartbeats and the stall watchdog.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! let _guard = guru::setup_autorun(guru::package!())?;
//! let hb = guru::heartbeat("event-loop", Duration::from_millis(500));
//! loop {
//!     hb.beat(); // one atomic store
//!     // ... one turn of the event loop ...
//! #   break;
//! }
//! # Ok::<(), guru::Error>(())
//! ```
//!
//! A [`Heartbeat`] is a name, a deadline and one atomic word. [`Heartbeat::beat`]
//! stores the time (`CLOCK_MONOTONIC_COARSE`, about 1 ms granularity) and the
//! beating thread's id into that word: one store, no lock, no system call
//! (the thread id is cached in a thread-local the first time a thread beats).
//! The thread that beat last is the heartbeat's thread.
//!
//! The `guru-reporter` thread sleeps until the earliest deadline of the
//! registered heartbeats (no fixed-rate polling; with no heartbeat it sleeps
//! without a timeout: 0 wake-ups). Creating a heartbeat wakes it once so it
//! recomputes its timeout. When a heartbeat has not beaten for longer than
//! its deadline, guru makes **one automatic report** for that stall; its
//! begin line and Report section say
//! `watchdog: heartbeat "event-loop" missed its 500 ms deadline (last beat 0.73 s ago, thread 1234 "event-loop")`,
//! and the heartbeat's thread comes first in the Threads section, marked
//! `stalled`. No further report comes for the same heartbeat until it beats
//! again. While a heartbeat is stalled the reporter looks at it once per
//! deadline (to see when it recovers); the next report after it beat again
//! says it recovered and after how long (to within its deadline).
//!
//! # Rate limit
//!
//! Automatic reports (missed heartbeats, stalled tokio workers) share one
//! limit: at most one per [`Builder::watchdog_min_interval`](crate::Builder::watchdog_min_interval)
//! (default [`DEFAULT_WATCHDOG_MIN_INTERVAL`], 30 s), and never sooner than
//! [`Builder::min_interval`](crate::Builder::min_interval) after any
//! triggered report. A stall that comes sooner waits; if it is still going
//! on when the limit allows, its report comes then, otherwise it is counted
//! as suppressed and the next report says how many were.
//!
//! # Suspend
//!
//! A machine suspend is not a stall. Heartbeat time is `CLOCK_MONOTONIC`
//! (coarse), which Linux stops while suspended; the watchdog also compares
//! `CLOCK_BOOTTIME` (which counts the suspend) with it at every check, and
//! when the difference grew (the machine slept in between) every heartbeat
//! gets a full deadline from the resume before it counts as stalled, so
//! threads still thawing are not reported either.
//!
//! # Costs and limits
//!
//! - `beat()`: one coarse clock read (vDSO, no system call), one
//!   thread-local read, one relaxed store: measured in BENCHMARKS.md.
//! - Deadlines are clamped to 10 ms ..= 1 day (the clock's granularity is one
//!   jiffy, 1–4 ms). Creating a heartbeat counts as its first beat, by the
//!   creating thread.
//! - The watchdog runs on guru's reporter thread, so it fires whatever the
//!   application's threads are doing (blocked in a system call, spinning,
//!   holding a lock others wait for, a whole tokio runtime blocked) — unless
//!   the reporter itself is busy with a report; a stall is then seen when
//!   that report is done.
//! - Thread ids are stored in 22 bits (Linux's `PID_MAX_LIMIT`); the time in
//!   units of 2^20 ns, so "last beat … ago" is exact to about 1 ms.
//! - Not in a forked child: the reporter thread does not exist there.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::model::{HeartbeatState, Recovery, Stall, Stalled, WatchdogNotes};
use crate::sys;

/// The default of [`Builder::watchdog_min_interval`](crate::Builder::watchdog_min_interval).
pub const DEFAULT_WATCHDOG_MIN_INTERVAL: Duration = Duration::from_secs(30);

const MIN_DEADLINE: Duration = Duration::from_millis(10);
const MAX_DEADLINE: Duration = Duration::from_secs(24 * 3600);
/// A growth of `CLOCK_BOOTTIME - CLOCK_MONOTONIC` above this is a suspend.
const SUSPEND_NS: u64 = 50_000_000;

const TID_BITS: u32 = 22;
const TID_MASK: u64 = (1 << TID_BITS) - 1;
const TIME_SHIFT: u32 = 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Packs a beat: time in units of 2^20 ns above, thread id below.
#[inline]
fn pack(mono_ns: u64, tid: i32) -> u64 {
    ((mono_ns >> TIME_SHIFT) << TID_BITS) | (tid as u64 & TID_MASK)
}

/// (time in ns, thread id) of a packed beat.
fn unpack(v: u64) -> (u64, i32) {
    ((v >> TID_BITS) << TIME_SHIFT, (v & TID_MASK) as i32)
}

thread_local! {
    /// This thread's id, once it has beaten (0: not yet).
    static TID: Cell<i32> = const { Cell::new(0) };
}

#[inline]
fn my_tid() -> i32 {
    TID.with(|t| {
        let tid = t.get();
        if tid != 0 {
            return tid;
        }
        let tid = guru_core::sys::gettid();
        t.set(tid);
        tid
    })
}

/// One registered heartbeat.
#[derive(Debug)]
pub(crate) struct Entry {
    id: u64,
    name: String,
    deadline: Duration,
    last: AtomicU64,
}

#[derive(Debug)]
struct Registry {
    entries: Vec<Arc<Entry>>,
    next_id: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    entries: Vec::new(),
    next_id: 1,
});
/// The reporter's wake-up pipe (write end), -1 when no reporter runs. Read
/// and written under [`REGISTRY`]'s lock, so a wake-up never goes to a
/// descriptor closed meanwhile.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// A heartbeat: see [the module docs](crate::watchdog). Made by
/// [`heartbeat`]; dropping it unregisters it (a stall it was in is then
/// forgotten, and no report comes for it).
#[derive(Debug)]
pub struct Heartbeat {
    entry: Arc<Entry>,
}

/// Registers a heartbeat named `name` that must [`beat`](Heartbeat::beat)
/// at least once per `deadline` (clamped to 10 ms ..= 1 day). Creating it
/// counts as its first beat. While guru is installed, a heartbeat that
/// misses its deadline makes an automatic report (see the
/// [module docs](crate::watchdog)); before install it is watched from
/// install on.
pub fn heartbeat(name: impl Into<String>, deadline: Duration) -> Heartbeat {
    let deadline = deadline.clamp(MIN_DEADLINE, MAX_DEADLINE);
    let mut reg = lock(&REGISTRY);
    let id = reg.next_id;
    reg.next_id += 1;
    let entry = Arc::new(Entry {
        id,
        name: name.into(),
        deadline,
        last: AtomicU64::new(pack(sys::coarse_monotonic_ns(), my_tid())),
    });
    reg.entries.push(entry.clone());
    wake_reporter_locked();
    Heartbeat { entry }
}

impl Heartbeat {
    /// Records a beat: now, by this thread. One atomic store (after the
    /// first beat of a thread, which caches its id).
    #[inline]
    pub fn beat(&self) {
        let v = pack(sys::coarse_monotonic_ns(), my_tid());
        self.entry.last.store(v, Ordering::Relaxed);
    }

    /// The heartbeat's name.
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// Its deadline (after clamping).
    pub fn deadline(&self) -> Duration {
        self.entry.deadline
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        lock(&REGISTRY)
            .entries
            .retain(|e| !Arc::ptr_eq(e, &self.entry));
    }
}

/// Writes an empty record into the reporter's pipe (it decodes to nothing:
/// the reporter only recomputes its timeout). Caller holds `REGISTRY`.
fn wake_reporter_locked() {
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd >= 0 {
        let _ = sys::write_raw(fd, &[0u8; sys::RECORD_LEN]);
    }
}

/// The reporter's pipe, for wake-ups (install).
pub(crate) fn set_wake_fd(fd: i32) {
    let _reg = lock(&REGISTRY);
    WAKE_FD.store(fd, Ordering::Release);
}

/// No reporter any more (before its pipe is closed).
pub(crate) fn clear_wake_fd() {
    let _reg = lock(&REGISTRY);
    WAKE_FD.store(-1, Ordering::Release);
}

fn entries() -> Vec<Arc<Entry>> {
    lock(&REGISTRY).entries.clone()
}

// ---------------------------------------------------------------------------
// Stalls

/// The watchdog's notes for the next report, kept until it takes them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending {
    /// Stalls that ended.
    pub(crate) recovered: Vec<Recovery>,
    /// Stalls that got no report (the rate limit held them back until they
    /// ended).
    pub(crate) suppressed: u64,
}

/// One ongoing stall episode.
#[derive(Debug, Clone)]
pub(crate) struct Episode {
    pub(crate) stall: Stall,
    /// When it was seen (monotonic ns).
    pub(crate) seen_ns: u64,
    /// The silence started here (last beat, monotonic ns).
    pub(crate) since_ns: u64,
    /// The packed beat when it was seen (heartbeats).
    pub(crate) packed: u64,
    pub(crate) reported: bool,
}

/// The watchdog's decisions, with the clock given: unit-testable.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Heartbeat id → its ongoing stall.
    pub(crate) episodes: Vec<(u64, Episode)>,
    /// `boottime - monotonic` at the last check.
    last_offset: Option<u64>,
    /// Monotonic time of the last resume seen (0: none).
    resumed_ns: u64,
    /// Monotonic time of the last automatic report.
    last_auto_ns: Option<u64>,
    pub(crate) notes: Pending,
}

/// Clock readings for one check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) mono_ns: u64,
    pub(crate) boot_ns: u64,
}

impl Now {
    fn read() -> Now {
        Now {
            mono_ns: sys::coarse_monotonic_ns(),
            boot_ns: sys::boottime_ns(),
        }
    }
}

/// A thread's name (`comm`), escaped like the Threads section's names.
pub(crate) fn thread_name(tid: i32) -> Option<String> {
    let comm = std::fs::read(format!("/proc/self/task/{tid}/comm")).ok()?;
    let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
    let mut name = String::new();
    let _ = guru_core::format::write_escaped(&mut name, comm);
    Some(name)
}

impl State {
    /// Notes a suspend (the boot clock ran ahead of the monotonic one).
    fn see_suspend(&mut self, now: Now) {
        let offset = now.boot_ns.saturating_sub(now.mono_ns);
        if let Some(last) = self.last_offset
            && offset.saturating_sub(last) > SUSPEND_NS
        {
            self.resumed_ns = now.mono_ns;
        }
        self.last_offset = Some(offset);
    }

    /// Checks every heartbeat: starts stall episodes, ends those that beat
    /// again (with a recovery note). `name_of` gives a thread's name.
    pub(crate) fn check(
        &mut self,
        entries: &[Arc<Entry>],
        now: Now,
        name_of: &dyn Fn(i32) -> Option<String>,
    ) {
        self.see_suspend(now);
        // Dropped heartbeats: forgotten (external stalls are their
        // watchers' business).
        self.episodes
            .retain(|(id, _)| *id >= EXTERNAL_KEYS || entries.iter().any(|e| e.id == *id));
        for e in entries {
            let packed = e.last.load(Ordering::Relaxed);
            let (beat_ns, tid) = unpack(packed);
            let deadline = nanos(e.deadline);
            let pos = self.episodes.iter().position(|(id, _)| *id == e.id);
            if let Some(i) = pos {
                if packed != self.episodes[i].1.packed {
                    let (_, ep) = self.episodes.remove(i);
                    self.notes.recovered.push(Recovery {
                        what: ep.stall.what.clone(),
                        silent_ns: beat_ns.saturating_sub(ep.since_ns),
                        deadline_ns: deadline,
                        reported: ep.reported,
                        runtime_unregistered: false,
                    });
                    if !ep.reported {
                        self.notes.suppressed += 1;
                    }
                }
                continue;
            }
            let from = beat_ns.max(self.resumed_ns);
            let silent = now.mono_ns.saturating_sub(beat_ns);
            if now.mono_ns.saturating_sub(from) > deadline {
                self.episodes.push((
                    e.id,
                    Episode {
                        stall: Stall {
                            what: Stalled::Heartbeat {
                                heartbeat: e.name.clone(),
                            },
                            deadline_ns: deadline,
                            silent_ns: silent,
                            tid: (tid != 0).then_some(tid),
                            thread_name: (tid != 0).then(|| name_of(tid)).flatten(),
                        },
                        seen_ns: now.mono_ns,
                        since_ns: beat_ns,
                        packed,
                        reported: false,
                    },
                ));
            }
        }
    }

    /// The first stall not reported yet, if the rate limit lets a report
    /// start now (`since_report_ns`: time since the last report of any
    /// kind). Marks it reported.
    pub(crate) fn take_due(
        &mut self,
        now: Now,
        interval: Duration,
        since_report_ns: Option<u64>,
        min_interval: Duration,
    ) -> Option<Stall> {
        let allowed = self.allowed_at(interval, since_report_ns, min_interval, now)?;
        if allowed > now.mono_ns {
            return None;
        }
        let ep = self.episodes.iter_mut().find(|(_, ep)| !ep.reported)?;
        ep.1.reported = true;
        self.last_auto_ns = Some(now.mono_ns);
        Some(ep.1.stall.clone())
    }

    /// When a pending stall may be reported (None: none pending).
    fn allowed_at(
        &self,
        interval: Duration,
        since_report_ns: Option<u64>,
        min_interval: Duration,
        now: Now,
    ) -> Option<u64> {
        self.episodes.iter().find(|(_, ep)| !ep.reported)?;
        let by_auto = self
            .last_auto_ns
            .map_or(0, |t| t.saturating_add(nanos(interval)));
        let by_any = since_report_ns.map_or(0, |ago| {
            now.mono_ns
                .saturating_sub(ago)
                .saturating_add(nanos(min_interval))
        });
        Some(by_auto.max(by_any))
    }

    /// The monotonic time the reporter must wake at next (None: never):
    /// the earliest deadline of a heartbeat not stalled, once per deadline
    /// for a stalled one (to see its recovery), and when the rate limit lets
    /// a pending stall be reported.
    pub(crate) fn next_wake(
        &self,
        entries: &[Arc<Entry>],
        now: Now,
        interval: Duration,
        since_report_ns: Option<u64>,
        min_interval: Duration,
    ) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut at = |t: u64| next = Some(next.map_or(t, |n: u64| n.min(t)));
        for e in entries {
            let deadline = nanos(e.deadline);
            match self.episodes.iter().find(|(id, _)| *id == e.id) {
                Some((_, ep)) => at(ep.seen_ns.max(now.mono_ns).saturating_add(deadline)),
                None => {
                    let (beat_ns, _) = unpack(e.last.load(Ordering::Relaxed));
                    // One time unit of packing lost: wake just after.
                    let from = beat_ns.max(self.resumed_ns);
                    at(from
                        .saturating_add(deadline)
                        .saturating_add(1 << TIME_SHIFT));
                }
            }
        }
        if let Some(t) = self.allowed_at(interval, since_report_ns, min_interval, now) {
            at(t);
        }
        next
    }

    /// Adds a stall found elsewhere (a tokio worker) under `key` (unique,
    /// not a heartbeat id); false if one is going on under that key.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn start_external(&mut self, key: u64, stall: Stall, now: Now) -> bool {
        if self.episodes.iter().any(|(k, _)| *k == key) {
            return false;
        }
        self.episodes.push((
            key,
            Episode {
                since_ns: now.mono_ns.saturating_sub(stall.silent_ns),
                stall,
                seen_ns: now.mono_ns,
                packed: 0,
                reported: false,
            },
        ));
        true
    }

    /// Ends the stall under `key`: it recovered after `silent_ns`, or
    /// (`unregistered`) its tokio runtime is no longer registered.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn end_external(&mut self, key: u64, silent_ns: u64, unregistered: bool) {
        if let Some(i) = self.episodes.iter().position(|(k, _)| *k == key) {
            let (_, ep) = self.episodes.remove(i);
            self.notes.recovered.push(Recovery {
                what: ep.stall.what.clone(),
                silent_ns,
                deadline_ns: ep.stall.deadline_ns,
                reported: ep.reported,
                runtime_unregistered: unregistered,
            });
            if !ep.reported {
                self.notes.suppressed += 1;
            }
        }
    }
}

/// Keys of external stalls start here (heartbeat ids are small).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) const EXTERNAL_KEYS: u64 = 1 << 62;

static STATE: Mutex<State> = Mutex::new(State {
    episodes: Vec::new(),
    last_offset: None,
    resumed_ns: 0,
    last_auto_ns: None,
    notes: Pending {
        recovered: Vec::new(),
        suppressed: 0,
    },
});
/// The automatic-report limit of the installed reporter (ns; `u64::MAX`:
/// none installed).
static AUTO_INTERVAL_NS: AtomicU64 = AtomicU64::new(u64::MAX);

/// The reporter's hook: what the watchdog needs from its loop.
#[derive(Debug)]
pub(crate) struct Hook {
    pub(crate) interval: Duration,
    pub(crate) min_interval: Duration,
}

impl Hook {
    pub(crate) fn new(interval: Duration, min_interval: Duration) -> Hook {
        AUTO_INTERVAL_NS.store(nanos(interval), Ordering::Relaxed);
        Hook {
            interval,
            min_interval,
        }
    }

    /// Checks now; returns a stall to report now, if any is due.
    pub(crate) fn due(&self, last_report: Option<Instant>) -> Option<Stall> {
        let now = Now::read();
        let entries = entries();
        let mut st = lock(&STATE);
        st.check(&entries, now, &thread_name);
        #[cfg(feature = "tokio")]
        crate::tokio::watch::sample(&mut st, now, false);
        let since = last_report.map(|t| nanos(t.elapsed()));
        st.take_due(now, self.interval, since, self.min_interval)
    }

    /// Milliseconds until the watchdog needs the reporter again (-1: never).
    pub(crate) fn timeout_ms(&self, last_report: Option<Instant>) -> i32 {
        let now = Now::read();
        let entries = entries();
        let st = lock(&STATE);
        let since = last_report.map(|t| nanos(t.elapsed()));
        #[allow(unused_mut)]
        let mut next = st.next_wake(&entries, now, self.interval, since, self.min_interval);
        #[cfg(feature = "tokio")]
        if let Some(t) = crate::tokio::watch::next_sample(now) {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        let Some(at) = next else { return -1 };
        // The coarse clock lags by up to a tick: wait one more, so the
        // check after waking sees the deadline passed.
        let left = at
            .saturating_sub(now.mono_ns)
            .saturating_add(sys::coarse_resolution_ns());
        i32::try_from(left.div_ceil(1_000_000)).unwrap_or(i32::MAX)
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        AUTO_INTERVAL_NS.store(u64::MAX, Ordering::Relaxed);
    }
}

/// For a report: checks for recoveries, and takes the notes. `None` when
/// there is nothing to say: no heartbeat, no stall ended, nothing
/// suppressed, and the report is not an automatic one (`automatic`).
pub(crate) fn take_notes(automatic: bool) -> Option<WatchdogNotes> {
    let now = Now::read();
    let entries = entries();
    let mut st = lock(&STATE);
    st.check(&entries, now, &thread_name);
    #[cfg(feature = "tokio")]
    crate::tokio::watch::sample(&mut st, now, true);
    let pending = std::mem::take(&mut st.notes);
    let heartbeats: Vec<HeartbeatState> = entries
        .iter()
        .map(|e| {
            let (beat_ns, tid) = unpack(e.last.load(Ordering::Relaxed));
            HeartbeatState {
                name: e.name.clone(),
                deadline_ns: nanos(e.deadline),
                since_last_beat_ns: now.mono_ns.saturating_sub(beat_ns),
                tid,
                stalled: st.episodes.iter().any(|(id, _)| *id == e.id),
            }
        })
        .collect();
    if !automatic
        && heartbeats.is_empty()
        && pending.recovered.is_empty()
        && pending.suppressed == 0
    {
        return None;
    }
    let interval = AUTO_INTERVAL_NS.load(Ordering::Relaxed);
    Some(WatchdogNotes {
        recovered: pending.recovered,
        suppressed_reports: pending.suppressed,
        min_interval_ns: (interval != u64::MAX).then_some(interval),
        heartbeats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn entry(id: u64, deadline_ms: u64, beat_ns: u64, tid: i32) -> Arc<Entry> {
        Arc::new(Entry {
            id,
            name: format!("hb{id}"),
            deadline: Duration::from_millis(deadline_ms),
            last: AtomicU64::new(pack(beat_ns, tid)),
        })
    }

    fn at(mono_ms: u64, boot_ms: u64) -> Now {
        Now {
            mono_ns: mono_ms * MS,
            boot_ns: boot_ms * MS,
        }
    }

    fn no_name(_: i32) -> Option<String> {
        None
    }

    #[test]
    fn packing_keeps_tid_and_time_to_a_millisecond() {
        let (t, tid) = unpack(pack(123_456_789_000, 4_194_303));
        assert_eq!(tid, 4_194_303);
        assert!(t <= 123_456_789_000 && 123_456_789_000 - t < 1 << TIME_SHIFT);
    }

    #[test]
    fn a_missed_deadline_is_one_stall_until_it_beats_again() {
        let e = entry(1, 500, 1000 * MS, 77);
        let mut st = State::default();
        st.check(std::slice::from_ref(&e), at(1400, 1400), &no_name);
        assert!(st.episodes.is_empty());
        st.check(std::slice::from_ref(&e), at(1600, 1600), &no_name);
        assert_eq!(st.episodes.len(), 1);
        let s = st
            .take_due(
                at(1600, 1600),
                Duration::from_secs(30),
                None,
                Duration::ZERO,
            )
            .expect("due");
        assert_eq!(s.tid, Some(77));
        assert_eq!(
            s.what,
            Stalled::Heartbeat {
                heartbeat: "hb1".into()
            }
        );
        assert_eq!(s.deadline_ns, 500 * MS);
        // Last beat at 1 s, seen at 1.6 s (the beat's time is kept in units
        // of 2^20 ns: up to 1 ms more).
        assert!((600 * MS..602 * MS).contains(&s.silent_ns), "{s:?}");
        // Still silent: no second report.
        st.check(std::slice::from_ref(&e), at(5000, 5000), &no_name);
        assert!(
            st.take_due(at(5000, 5000), Duration::ZERO, None, Duration::ZERO)
                .is_none()
        );
        e.last.store(pack(5100 * MS, 77), Ordering::Relaxed);
        st.check(std::slice::from_ref(&e), at(5200, 5200), &no_name);
        assert!(st.episodes.is_empty());
        assert_eq!(st.notes.recovered.len(), 1, "{:?}", st.notes.recovered);
        let r = &st.notes.recovered[0];
        assert!(r.reported && !r.runtime_unregistered, "{r:?}");
        // Silent from the beat at 1 s to the beat at 5.1 s.
        assert!((4099 * MS..4101 * MS).contains(&r.silent_ns), "{r:?}");
        assert_eq!(st.notes.suppressed, 0);
    }

    #[test]
    fn a_suspend_is_not_a_stall() {
        // Beat at 1 s; the machine sleeps 30 s right after the check at
        // 1.2 s: CLOCK_MONOTONIC stands still, CLOCK_BOOTTIME runs on.
        let e = entry(1, 500, 1000 * MS, 5);
        let mut st = State::default();
        st.check(std::slice::from_ref(&e), at(1200, 1200), &no_name);
        st.check(std::slice::from_ref(&e), at(1300, 31_300), &no_name);
        assert!(st.episodes.is_empty());
        // Past the deadline counted from the beat, not from the resume.
        st.check(std::slice::from_ref(&e), at(1700, 31_700), &no_name);
        assert!(st.episodes.is_empty(), "a stall right after a resume");
        // The next wake-up is a deadline after the resume.
        let wake = st
            .next_wake(
                std::slice::from_ref(&e),
                at(1700, 31_700),
                Duration::ZERO,
                None,
                Duration::ZERO,
            )
            .unwrap();
        assert!(wake > 1800 * MS && wake < 1810 * MS, "{wake}");
        // A real stall after the resume is still seen.
        st.check(std::slice::from_ref(&e), at(1850, 31_850), &no_name);
        assert_eq!(st.episodes.len(), 1);
    }

    #[test]
    fn a_clock_that_counts_the_suspend_in_monotonic_time_does_not_fire_either() {
        // Some systems (VM pauses, some kernels) advance both clocks by the
        // suspend but the boot clock more; the resume still gives grace.
        let e = entry(1, 500, 1000 * MS, 5);
        let mut st = State::default();
        st.check(std::slice::from_ref(&e), at(1100, 1100), &no_name);
        st.check(std::slice::from_ref(&e), at(31_100, 61_100), &no_name);
        assert!(st.episodes.is_empty());
    }

    #[test]
    fn the_rate_limit_holds_stalls_and_counts_those_it_suppressed() {
        let a = entry(1, 100, 0, 5);
        let mut st = State::default();
        let limit = Duration::from_secs(10);
        st.check(std::slice::from_ref(&a), at(200, 200), &no_name);
        assert!(
            st.take_due(at(200, 200), limit, None, Duration::ZERO)
                .is_some()
        );
        // Recovers, stalls again 1 s later: within the limit.
        a.last.store(pack(300 * MS, 5), Ordering::Relaxed);
        st.check(std::slice::from_ref(&a), at(350, 350), &no_name);
        st.check(std::slice::from_ref(&a), at(1300, 1300), &no_name);
        assert!(
            st.take_due(at(1300, 1300), limit, None, Duration::ZERO)
                .is_none()
        );
        let wake = st
            .next_wake(
                std::slice::from_ref(&a),
                at(1300, 1300),
                limit,
                None,
                Duration::ZERO,
            )
            .unwrap();
        assert!(wake <= 1400 * MS, "checks for recovery once per deadline");
        // It recovers before the limit lets it be reported: suppressed.
        a.last.store(pack(1400 * MS, 5), Ordering::Relaxed);
        st.check(std::slice::from_ref(&a), at(1450, 1450), &no_name);
        assert_eq!(st.notes.suppressed, 1);
        // A stall still going on when the limit allows is reported then.
        st.check(std::slice::from_ref(&a), at(2000, 2000), &no_name);
        assert!(
            st.take_due(at(2000, 2000), limit, None, Duration::ZERO)
                .is_none()
        );
        assert!(
            st.take_due(at(10_300, 10_300), limit, None, Duration::ZERO)
                .is_some()
        );
    }

    #[test]
    fn external_stalls_survive_heartbeat_checks_and_recover() {
        let mut st = State::default();
        let stall = Stall {
            what: Stalled::TokioWorker {
                runtime: "rt".into(),
                worker: 1,
            },
            deadline_ns: 300 * MS,
            silent_ns: 400 * MS,
            tid: Some(9),
            thread_name: None,
        };
        assert!(st.start_external(EXTERNAL_KEYS + 1, stall.clone(), at(1000, 1000)));
        assert!(!st.start_external(EXTERNAL_KEYS + 1, stall, at(1000, 1000)));
        st.check(&[], at(1100, 1100), &no_name);
        assert!(
            st.take_due(at(1100, 1100), Duration::ZERO, None, Duration::ZERO)
                .is_some()
        );
        st.check(&[], at(1200, 1200), &no_name);
        st.end_external(EXTERNAL_KEYS + 1, 2_000 * MS, false);
        assert_eq!(
            st.notes.recovered,
            [Recovery {
                what: Stalled::TokioWorker {
                    runtime: "rt".into(),
                    worker: 1
                },
                silent_ns: 2_000 * MS,
                deadline_ns: 300 * MS,
                reported: true,
                runtime_unregistered: false,
            }]
        );
    }

    #[test]
    fn no_heartbeat_no_wakeup() {
        let st = State::default();
        assert_eq!(
            st.next_wake(&[], at(1, 1), Duration::ZERO, None, Duration::ZERO),
            None
        );
    }

    #[test]
    fn heartbeats_are_send_sync_and_unregister_on_drop() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Heartbeat>();
        let hb = heartbeat("unit-test", Duration::from_millis(1));
        assert_eq!(hb.deadline(), MIN_DEADLINE);
        hb.beat();
        let (_, tid) = unpack(hb.entry.last.load(Ordering::Relaxed));
        assert_eq!(tid, guru_core::sys::gettid());
        assert!(entries().iter().any(|e| e.name == "unit-test"));
        drop(hb);
        assert!(!entries().iter().any(|e| e.name == "unit-test"));
    }
}
