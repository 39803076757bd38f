//! Crash and panic reports in the std adapter.
//!
//! **Crashes.** The core's crash helper (see [`guru_core::crash`]) captures
//! the round when a fatal signal arrives, then wakes the reporter thread
//! through its pipe (a record with signal [`MARKER`]). The reporter
//! symbolizes the round it was offered, adds Package, Configuration
//! (masked), the registered sections (each bounded by
//! [`CRASH_SECTION_BUDGET`] or the section timeout, whichever is less),
//! Process and Modules, and writes the report where reports go (stderr, or a
//! new file in `log_dir`, `fsync`ed) before the process dies. If it does not
//! finish within two thirds of the crash deadline (it is blocked: the
//! allocator's lock held by a thread that will never release it, a stuck
//! stderr), the core writes its own report (no allocation) to stderr, and
//! the process dies on time.
//!
//! **Panics.** A panic hook, chained after the previous one (whose message
//! still appears first), makes a report in the panicking thread: the panic's
//! message and location, the panicking thread first and marked. At most one
//! panic report per [`Builder::min_interval`](crate::Builder::min_interval)
//! (default 1 s, the rate limit every trigger shares; at least
//! [`MIN_PANIC_INTERVAL`] even when the rate limit is off); the next panic
//! report counts the panics that were not reported. Panics in guru's own
//! threads make no report. With `panic = "abort"`, the abort that follows
//! makes no second (crash) report.
use std::os::fd::RawFd;
use std::panic::PanicHookInfo;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::report::{PanicInfo, Source};

/// The signal number of the pipe record that means "a crash round is
/// offered" (no real signal is negative).
pub(crate) const MARKER: i32 = -1;

/// The most a registered section (and the configuration) may take in a
/// crash report.
pub const CRASH_SECTION_BUDGET: Duration = Duration::from_millis(500);

/// The most the crash report's output may wait for its descriptor.
pub(crate) const CRASH_OUTPUT_TIMEOUT: Duration = Duration::from_millis(500);

/// The least time between two panic reports, whatever the rate limit.
pub const MIN_PANIC_INTERVAL: Duration = Duration::from_millis(100);

static PIPE: AtomicI32 = AtomicI32::new(-1);
static PANICS_ON: AtomicBool = AtomicBool::new(false);
static UNREPORTED_PANICS: AtomicU64 = AtomicU64::new(0);
static LAST_PANIC_REPORT: Mutex<Option<Instant>> = Mutex::new(None);

/// Wires crash and panic reports to the reporter whose wake-up pipe is
/// `pipe_write` (called by `Builder::install`).
pub(crate) fn install(pipe_write: RawFd, crash_reports: bool, panic_reports: bool) {
    PIPE.store(pipe_write, Ordering::Release);
    if crash_reports {
        guru_core::crash::set_handoff(wake_reporter);
    }
    PANICS_ON.store(panic_reports, Ordering::Release);
    static HOOK: std::sync::Once = std::sync::Once::new();
    if panic_reports {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                previous(info);
                on_panic(info);
            }));
        });
    }
}

/// Stops panic reports and the crash hand-off (the guard was dropped; the
/// core's crash report stays).
pub(crate) fn uninstall() {
    PANICS_ON.store(false, Ordering::Release);
    guru_core::crash::clear_handoff();
    PIPE.store(-1, Ordering::Release);
}

std::thread_local! {
    /// Set while this thread produces a report (its locks are held): a panic
    /// inside it (a built-in section's, caught by its guard) makes no panic
    /// report, which would wait for those locks.
    static REPORTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as producing a report until dropped.
pub(crate) struct Reporting(bool);

impl Reporting {
    pub(crate) fn begin() -> Reporting {
        Reporting(REPORTING.with(|r| r.replace(true)))
    }
}

impl Drop for Reporting {
    fn drop(&mut self) {
        let previous = self.0;
        REPORTING.with(|r| r.set(previous));
    }
}

/// The core's hand-off: one record on the reporter's pipe.
///
/// # Async-signal safety
/// One `write(2)` of a stack buffer (called from the crash helper thread,
/// which must not allocate).
extern "C" fn wake_reporter() {
    let fd = PIPE.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    let record = crate::sys::TriggerRecord {
        unix_ns: guru_core::sys::realtime_ns(),
        signal: MARKER,
        code: 0,
        sender_pid: 0,
        sender_uid: 0,
        receiver_pid: guru_core::sys::getpid(),
    };
    let _ = crate::sys::write_raw(fd, &record.encode());
}

/// The reporter thread's part of a crash report: the round the core offers,
/// symbolized and completed, written out.
pub(crate) fn serve_crash() {
    let Some(engine) = guru_core::engine() else {
        return;
    };
    let _ = guru_core::crash::with_offered_round(|round, info| {
        let mut copied = crate::report::copy_round(engine, round, "the crash helper");
        copied.mark_crashed(info);
        crate::reporter::produce_and_emit_with(Source::Crash(*info), Some(copied));
    });
}

/// The panic hook's part (after the previous hook ran).
fn on_panic(info: &PanicHookInfo<'_>) {
    if !PANICS_ON.load(Ordering::Acquire)
        || guru_core::crash::current().is_some()
        || REPORTING.with(std::cell::Cell::get)
    {
        return;
    }
    let name = std::thread::current().name().map(str::to_owned);
    if name.as_deref().is_some_and(|n| n.starts_with("guru-")) {
        return;
    }
    let interval = crate::reporter::min_interval().max(MIN_PANIC_INTERVAL);
    {
        let mut last = LAST_PANIC_REPORT.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < interval) {
            UNREPORTED_PANICS.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
    }
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any> (a panic payload that is not a string)".into());
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let panic = PanicInfo {
        message,
        location,
        tid: guru_core::sys::gettid(),
        thread: name.unwrap_or_else(|| "<unnamed>".into()),
        unreported_before: UNREPORTED_PANICS.swap(0, Ordering::Relaxed),
        interval,
    };
    crate::reporter::produce_and_emit_with(Source::Panic(Box::new(panic)), None);
    // With panic = "abort" the abort that follows is this panic: no second
    // report (harmless with unwind: it only concerns this thread's aborts).
    guru_core::crash::panic_reported_in_this_thread();
}
