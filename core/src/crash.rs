//! Crash reports: a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
//! SIGSYS) produces a whole report, then the process dies exactly as it
//! would have without guru.
//!
//! # How
//!
//! The crashing thread may be on Rust's small alternate signal stack (8–16
//! KiB; a round needs more) or have no stack left at all, so it does almost
//! nothing itself: its handler saves the fault's registers and siginfo into
//! static memory, wakes the *crash helper* — a thread started at
//! [`install`](crate::install) (`pthread_create`, named `guru-crash`,
//! sleeping on a futex: no wake-up, no CPU while idle) — and waits for it,
//! at most [`Options::crash_deadline_ms`](crate::Options::crash_deadline_ms)
//! (default 3 s). The helper runs the normal round: every other thread
//! captures itself; the crashed thread, whose stack is frozen while it
//! waits, is unwound by the helper from the saved registers, every read
//! bounds-checked against the readable mapping of its stack. Its first frame
//! is the faulting instruction (not adjusted); its thread context (labels,
//! spans, breadcrumbs) is copied for it by the helper
//! ([`crate::context::ContextTable::snapshot_stopped`]). Then the helper writes the
//! report (core-only: the core's text report to `Options::output_fd`; with
//! the std adapter: handed to its reporter thread, see below), and the
//! crashed thread puts back the disposition guru replaced and lets the fault
//! take its normal course: a fault re-executes and the kernel's default
//! action runs (same terminating signal, same core dump); a signal sent by
//! the process itself (`abort`, `raise`) is sent again.
//!
//! A dedicated helper rather than the std reporter thread: the helper never
//! allocates, so a crash while another thread holds the allocator's lock
//! still gets a report; the std adapter's richer report is an upgrade on
//! top, with the core's report as the fallback when the std adapter does
//! not finish in its share of the deadline (the fallback then lists the
//! std adapter's Package, Configuration and Process as failed sections,
//! saying why, so the report says what it lacks).
//!
//! # Chaining
//!
//! A handler installed before guru (Rust's stack-overflow handler, a JIT's
//! or a GC's fault handler) runs first. If it returns and its signal still
//! has guru's handler, it recovered the fault: no report, the program goes
//! on. If it reset the disposition (Rust's handler does so for a fault
//! outside a guard page) or never returns because it aborts, the report is
//! made — for the abort, from the registers of the original fault, saved
//! before the previous handler ran.
//!
//! A stack overflow is the exception: Rust's handler prints `thread '…' has
//! overflowed its stack` and aborts inside guru's handler, on what is left
//! of its 8 KiB alternate signal stack, where a SIGABRT handler finds no
//! room for its own signal frame (about 3 KiB with the CPU's extended
//! state). A SIGSEGV at most 64 KiB below the stack pointer is therefore
//! reported first; then SIGABRT gets back the disposition guru replaced and
//! the previous handler runs (its message follows the report; the process
//! aborts as without guru). Likewise, whenever the alternate stack has no
//! room for a nested signal frame plus guru's handler, SIGABRT has its
//! previous disposition while the previous handler runs.
//!
//! # Not a crash
//!
//! A fatal signal sent by another process (`kill -SEGV`, si_code
//! `SI_USER`/`SI_QUEUE`/`SI_TKILL` with a foreign pid) is not a crash: it
//! is passed to the previous disposition as if guru were not there.
//!
//! # Once
//!
//! One crash report per process: a second fatal signal while it runs (another
//! thread crashing, the abort after a panic or an overflow message) makes no
//! report; a second crashing thread waits until the report is written (or
//! the deadline) and then dies by its own signal. The crash handlers block
//! the capture signal while they run (a capture handler nested in one would
//! overflow the alternate stack), so such a waiting thread is listed as not
//! answering the round.
//!
//! # Limits
//!
//! - A thread without an alternate signal stack (threads created outside
//!   Rust: C libraries' pthreads) that overflows its stack cannot run any
//!   handler: the kernel kills the process with SIGSEGV, no report.
//! - A stack overflow in `main` or a spawned thread is recognised by its
//!   fault address (a SIGSEGV at most 64 KiB below the stack pointer), so a
//!   handler installed before guru that recovers such a fault still gets a
//!   report made (the process then lives on, guru's SIGABRT handler
//!   removed). A previous handler that aborts for another fault while the
//!   alternate stack has no room for a nested signal frame makes no report:
//!   the process dies by SIGABRT as without guru.
//! - When the deadline passes, the crashed thread stops waiting and the
//!   process dies with what was written so far (the report's missing end
//!   line says it is incomplete).
//! - The helper is a thread of the process like guru's others: every report
//!   lists it (`guru-crash`, waiting in a futex for a crash).
//! - In a forked child the helper does not exist: the crashed thread runs the
//!   round itself if it has enough stack, else writes one line and dies.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::fmt::{self, Write};
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

use crate::arch::Registers;
use crate::capture::{self, CaptureContext};
use crate::format::{SliceWriter, signal_name, write_banner, write_escaped, write_utc};
use crate::render::{
    write_captured_thread, write_end_line, write_frame, write_modules, write_round_figures,
    write_scan_note, write_stack_end, write_thread_context, write_unresponsive_thread,
};
use crate::round::{self, RoundGuard};
use crate::slots::SlotView;
use crate::trigger::Trigger;
use crate::write::FdSink;
use crate::{CapturedRound, Engine, sys};

/// The fatal signals guru reports.
pub const SIGNALS: [i32; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGSYS,
];

/// The default of [`Options::crash_deadline_ms`](crate::Options::crash_deadline_ms).
pub const DEFAULT_DEADLINE_MS: u32 = 3000;

/// Stack of the helper thread (the round's unwinding needs ~45 KiB in debug
/// builds).
const HELPER_STACK_BYTES: usize = 512 * 1024;

/// Size of the core crash report's output buffer (flushed when full).
const OUT_BYTES: usize = 16 * 1024;

/// What is known of the crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashInfo {
    /// The signal that started the report.
    pub signal: i32,
    /// Its `si_code`.
    pub code: i32,
    /// `si_addr` (the fault address; for SIGSYS the system call's address).
    pub address: u64,
    /// Sender pid for signals sent by a process (`abort`, `raise`), else 0.
    pub sender_pid: i32,
    /// Sender uid for such signals.
    pub sender_uid: u32,
    /// The crashing thread.
    pub tid: i32,
    /// Its name (`PR_GET_NAME`), NUL-padded.
    pub name: [u8; 16],
    /// Wall-clock time of the fault, ns since the epoch.
    pub unix_ns: u64,
    /// A later signal of the same thread that this report covers (the
    /// SIGABRT after Rust's overflow message), 0 if none.
    pub then_signal: i32,
    /// The crashed thread's registers at the fault.
    pub registers: Registers,
}

impl CrashInfo {
    /// The trigger this crash records in the report.
    ///
    /// # Async-signal safety
    /// Copies fields.
    pub fn trigger(&self) -> Trigger {
        Trigger {
            unix_ns: self.unix_ns,
            signal: self.signal,
            code: self.code,
            sender_pid: self.sender_pid,
            sender_uid: self.sender_uid,
            started_report: true,
        }
    }
}

/// Static memory written by exactly one thread at a time (see each use).
struct Cell<T>(UnsafeCell<T>);
// SAFETY: every access is ordered by the atomics documented where it happens.
unsafe impl<T> Sync for Cell<T> {}

const NO_ACTION: Option<sys::SavedAction> = None;
#[allow(clippy::declare_interior_mutable_const)] // one fresh cell per signal
const PREVIOUS_CELL: Cell<Option<sys::SavedAction>> = Cell(UnsafeCell::new(NO_ACTION));
/// Dispositions replaced by guru, by index in [`SIGNALS`]: written at
/// install before the handlers go in, read-only afterwards.
static PREVIOUS: [Cell<Option<sys::SavedAction>>; 6] = [PREVIOUS_CELL; 6];
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The capture signal, blocked while a crash handler runs (set at install).
static CAPTURE_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The kernel's smallest signal frame (`AT_MINSIGSTKSZ`), read at install.
static SIGNAL_FRAME_BYTES: AtomicUsize = AtomicUsize::new(2048);
static DEADLINE_NS: AtomicU64 = AtomicU64::new(DEFAULT_DEADLINE_MS as u64 * 1_000_000);

/// The thread whose crash is reported (0: none yet). Claimed once.
static OWNER: AtomicI32 = AtomicI32::new(0);
/// Written by the owner before `PHASE` becomes `REQUESTED`.
static INFO: Cell<CrashInfo> = Cell(UnsafeCell::new(ZERO_INFO));
/// A thread calling the previous handler first saves its fault here (the
/// previous handler may abort, and the SIGABRT handler then reports the
/// original fault).
static PENDING_TID: AtomicI32 = AtomicI32::new(0);
static PENDING: Cell<CrashInfo> = Cell(UnsafeCell::new(ZERO_INFO));

const ZERO_INFO: CrashInfo = CrashInfo {
    signal: 0,
    code: 0,
    address: 0,
    sender_pid: 0,
    sender_uid: 0,
    tid: 0,
    name: [0; 16],
    unix_ns: 0,
    then_signal: 0,
    registers: Registers {
        pc: 0,
        sp: 0,
        fp: 0,
        lr: 0,
        syscall_reg: 0,
        ret_reg: 0,
    },
};

const IDLE: u32 = 0;
const REQUESTED: u32 = 1;
const CAPTURING: u32 = 2;
const DONE: u32 = 3;
/// Futex word: the crashed thread waits on it, the helper waits for
/// `REQUESTED`.
static PHASE: AtomicU32 = AtomicU32::new(IDLE);
/// The helper's tid (0: no helper, e.g. in a forked child).
static HELPER_TID: AtomicI32 = AtomicI32::new(0);
/// The pid the helper belongs to.
static HELPER_PID: AtomicI32 = AtomicI32::new(0);
/// Output buffer of the core crash report (only the helper, or the crashed
/// thread when there is no helper, writes it: they never both do).
static OUT: Cell<[u8; OUT_BYTES]> = Cell(UnsafeCell::new([0; OUT_BYTES]));

/// The std adapter's hand-off (see [`set_handoff`]).
static HANDOFF: AtomicUsize = AtomicUsize::new(0);
const HANDOFF_NONE: u32 = 0;
const HANDOFF_OFFERED: u32 = 1;
const HANDOFF_DONE: u32 = 2;
const HANDOFF_ABANDONED: u32 = 3;
const HANDOFF_WRITING: u32 = 4;
/// Futex word for the hand-off.
static HANDOFF_STATE: AtomicU32 = AtomicU32::new(HANDOFF_NONE);
/// The helper's round while it is offered to the std adapter.
static OFFERED: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
/// A thread whose panic was just reported (panic = "abort": the abort that
/// follows makes no second report).
static SUPPRESS_ABORT_TID: AtomicI32 = AtomicI32::new(0);

/// `si_code` in words: `SEGV_MAPERR`, `BUS_ADRERR`, `ILL_ILLOPN`,
/// `FPE_INTDIV`, `SI_USER`, … (`None` for an unknown code).
///
/// # Async-signal safety
/// A table lookup.
pub fn code_name(signal: i32, code: i32) -> Option<&'static str> {
    let generic = match code {
        0 => Some("SI_USER"),
        0x80 => Some("SI_KERNEL"),
        -1 => Some("SI_QUEUE"),
        -2 => Some("SI_TIMER"),
        -3 => Some("SI_MESGQ"),
        -4 => Some("SI_ASYNCIO"),
        -5 => Some("SI_SIGIO"),
        -6 => Some("SI_TKILL"),
        _ => None,
    };
    if code <= 0 || code == 0x80 {
        return generic;
    }
    let names: &[&str] = match signal {
        libc::SIGSEGV => &["SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR"],
        libc::SIGBUS => &[
            "BUS_ADRALN",
            "BUS_ADRERR",
            "BUS_OBJERR",
            "BUS_MCEERR_AR",
            "BUS_MCEERR_AO",
        ],
        libc::SIGILL => &[
            "ILL_ILLOPC",
            "ILL_ILLOPN",
            "ILL_ILLADR",
            "ILL_ILLTRP",
            "ILL_PRVOPC",
            "ILL_PRVREG",
            "ILL_COPROC",
            "ILL_BADSTK",
        ],
        libc::SIGFPE => &[
            "FPE_INTDIV",
            "FPE_INTOVF",
            "FPE_FLTDIV",
            "FPE_FLTOVF",
            "FPE_FLTUND",
            "FPE_FLTRES",
            "FPE_FLTINV",
            "FPE_FLTSUB",
        ],
        libc::SIGSYS => &["SYS_SECCOMP"],
        _ => &[],
    };
    names.get((code - 1) as usize).copied()
}

/// Whether `signal` is one guru reports crashes of.
///
/// # Async-signal safety
/// A comparison.
pub fn is_crash_signal(signal: i32) -> bool {
    SIGNALS.contains(&signal)
}

/// `si_code` in words for a fault of a crash signal (`SEGV_MAPERR`, …):
/// `None` for the generic codes (`SI_USER`, `SI_KERNEL`, …), another
/// signal, or an unknown code.
///
/// # Async-signal safety
/// A table lookup.
pub fn fault_code_name(signal: i32, code: i32) -> Option<&'static str> {
    if !is_crash_signal(signal) || code <= 0 || code == libc::SI_KERNEL {
        return None;
    }
    code_name(signal, code)
}

/// What a report says of a crash: the parts of [`CrashInfo`] its words
/// show, so that a report read back (the std adapter's model) words it the
/// same as the crash handler did.
#[derive(Debug, Clone, Copy)]
pub struct CrashWords<'a> {
    /// The signal.
    pub signal: i32,
    /// Its `si_code`.
    pub code: i32,
    /// The fault address (a fault: `si_code` > 0), else `None`.
    pub address: Option<u64>,
    /// The sender of a signal the process sent itself.
    pub sender_pid: i32,
    /// The crashing thread.
    pub tid: i32,
    /// Its name (control characters are escaped when written).
    pub name: &'a [u8],
    /// A later signal of the same thread the report covers, 0 if none.
    pub then_signal: i32,
}

impl CrashInfo {
    /// The parts of this crash that its report's words show.
    ///
    /// # Async-signal safety
    /// Copies fields.
    pub fn words(&self) -> CrashWords<'_> {
        let len = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        CrashWords {
            signal: self.signal,
            code: self.code,
            address: (self.code > 0).then_some(self.address),
            sender_pid: self.sender_pid,
            tid: self.tid,
            name: self.name.get(..len).unwrap_or(&[]),
            then_signal: self.then_signal,
        }
    }
}

/// Writes "SIGSEGV (SEGV_MAPERR) at address 0x0 in thread 123 "name"".
///
/// # Async-signal safety
/// Formats only.
pub fn write_crash(w: &mut impl Write, c: &CrashInfo) -> fmt::Result {
    write_crash_words(w, &c.words())
}

/// Writes "SIGSEGV (SEGV_MAPERR) at address 0x0 in thread 123 "name"": the
/// signal, its `si_code` in words (or `si_code <n>`), the fault address (or
/// `from pid <p>` for a signal the process sent itself: `abort`, `raise`),
/// the thread, and `, then SIGABRT` when the report covers a later signal.
///
/// # Async-signal safety
/// Formats only.
pub fn write_crash_words(w: &mut impl Write, c: &CrashWords<'_>) -> fmt::Result {
    match signal_name(c.signal) {
        Some(n) => write!(w, "{n}")?,
        None => write!(w, "signal {}", c.signal)?,
    }
    match code_name(c.signal, c.code) {
        Some(n) => write!(w, " ({n})")?,
        None => write!(w, " (si_code {})", c.code)?,
    }
    match c.address {
        Some(a) => write!(w, " at address 0x{a:x}")?,
        None => write!(w, " from pid {}", c.sender_pid)?,
    }
    write!(w, " in thread {} \"", c.tid)?;
    write_escaped(w, c.name)?;
    write!(w, "\"")?;
    if c.then_signal != 0 {
        match signal_name(c.then_signal) {
            Some(n) => write!(w, ", then {n}")?,
            None => write!(w, ", then signal {}", c.then_signal)?,
        }
    }
    Ok(())
}

/// The begin line of a crash report: `==== Guru Meditation ==== pid <pid>
/// report #<n> at <time> triggered by a crash: <`write_crash_words`>`.
///
/// # Async-signal safety
/// Formats only.
pub fn write_crash_begin_line(
    w: &mut impl Write,
    s: &round::RoundSummary,
    c: &CrashWords<'_>,
) -> fmt::Result {
    write!(
        w,
        "==== Guru Meditation ==== pid {} report #{} at ",
        s.pid, s.sequence
    )?;
    write_utc(w, s.started_unix_ns)?;
    write!(w, " triggered by a crash: ")?;
    write_crash_words(w, c)?;
    writeln!(w)
}

/// The Report section's line on what follows a crash report.
pub const AFTER_REPORT_NOTE: &str =
    "after this report the process dies by the signal's own action (guru's handler is removed)";

/// The crash being reported (or reported), if any.
///
/// # Async-signal safety
/// Atomic loads and a copy.
pub fn current() -> Option<CrashInfo> {
    if PHASE.load(Ordering::Acquire) < REQUESTED {
        return None;
    }
    // SAFETY: INFO is written by the owner only before PHASE leaves IDLE
    // (Release), and never again.
    Some(unsafe { *INFO.0.get() })
}

/// Installs the crash handlers and starts the helper thread (setup only,
/// called by [`install`](crate::install) when `Options::crash_reports`).
pub(crate) fn install(engine: &'static Engine) -> Result<(), crate::Error> {
    let o = engine.options;
    DEADLINE_NS.store(
        u64::from(o.crash_deadline_ms) * 1_000_000,
        Ordering::Relaxed,
    );
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    SIGNAL_FRAME_BYTES.store(sys::min_signal_frame(), Ordering::Relaxed);
    // A thread in a crash handler runs on what is left of its (alternate)
    // stack: the round's capture signal, whose handler needs far more, must
    // not nest there. A second crashing thread that waits for the report in
    // its handler has the signal pending and is listed as not answering
    // (the crashed thread itself is unwound from its saved registers).
    CAPTURE_SIGNAL.store(engine.capture_signal, Ordering::Relaxed);
    let mut allow = [0i32; 7];
    allow[0] = engine.capture_signal;
    allow[1..].copy_from_slice(&SIGNALS);
    sys::spawn_thread(helper_main, HELPER_STACK_BYTES, &allow).map_err(|errno| {
        crate::Error::Sys {
            operation: "pthread_create (guru-crash helper)",
            errno,
        }
    })?;
    // From now on a crash wakes the helper and waits for it, even if it
    // has not run yet (it then finds the request when it starts).
    HELPER_PID.store(sys::getpid(), Ordering::Release);
    // Let it start (a thread start, ~0.1 ms; at most 1 s on a starved
    // machine), so that install returns with every thread of guru's in
    // place: a report right after install lists it, as later ones do.
    for _ in 0..1000 {
        if HELPER_TID.load(Ordering::Acquire) != 0 {
            break;
        }
        // PHASE is IDLE and stays so: a 1 ms sleep.
        sys::futex_wait(&PHASE, IDLE, 1_000_000);
    }
    for (i, &signal) in SIGNALS.iter().enumerate() {
        let previous = sys::install_crash_handler(signal, crash_handler, engine.capture_signal)
            .map_err(|errno| crate::Error::Sys {
                operation: "sigaction (fatal signal)",
                errno,
            })?;
        if let Some(cell) = PREVIOUS.get(i) {
            // SAFETY: written here, at setup, before this signal's handler
            // can read it... except for a fault racing with install, which
            // then sees None and behaves as with SIG_DFL.
            unsafe { *cell.0.get() = Some(previous) };
        }
    }
    Ok(())
}

/// In a forked child there is no helper thread: forget it (fork handler).
pub(crate) fn after_fork_child() {
    HELPER_PID.store(0, Ordering::Relaxed);
    HELPER_TID.store(0, Ordering::Relaxed);
}

/// The crash helper's thread id, once it runs (`None` without crash
/// reports, before it has started, or in a forked child). Every report lists
/// it, as `guru-crash`, idle in a futex wait: it is one of the process's
/// threads, which the std adapter's Process section counts.
///
/// # Async-signal safety
/// Atomic loads.
pub fn helper_tid() -> Option<i32> {
    let tid = HELPER_TID.load(Ordering::Acquire);
    (tid != 0 && HELPER_PID.load(Ordering::Acquire) == sys::getpid()).then_some(tid)
}

/// The saved previous disposition of `signal`.
///
/// # Async-signal safety
/// A read of setup-time data.
fn previous(signal: i32) -> Option<sys::SavedAction> {
    let i = SIGNALS.iter().position(|&s| s == signal)?;
    // SAFETY: written once at setup (see `install`), read-only afterwards.
    PREVIOUS.get(i).and_then(|c| unsafe { *c.0.get() })
}

/// Marks the calling thread's panic as reported: with `panic = "abort"`,
/// the abort that follows makes no second report (the std adapter's panic
/// hook calls this).
///
/// # Async-signal safety
/// Atomics only.
pub fn panic_reported_in_this_thread() {
    SUPPRESS_ABORT_TID.store(sys::gettid(), Ordering::Release);
}

/// Registers the std adapter's hand-off: after the helper has captured the
/// round, it calls `wake` (which must be async-signal-safe; the std adapter
/// writes to its reporter's pipe) and waits until the std adapter has
/// written its report through [`with_offered_round`], at most until
/// `1 − 1/3` of the crash deadline; then it writes the core's report itself.
pub fn set_handoff(wake: extern "C" fn()) {
    HANDOFF.store(wake as usize, Ordering::Release);
}

/// Removes the hand-off (the std adapter was uninstalled): crashes get the
/// core's report at once.
pub fn clear_handoff() {
    HANDOFF.store(0, Ordering::Release);
}

/// For the std adapter's reporter thread, after its hand-off `wake`: runs
/// `f` with the helper's captured crash round, then tells the helper the
/// report is written. `None` when no round is offered (no crash, or the
/// helper gave up waiting and wrote the core report).
pub fn with_offered_round<R>(f: impl FnOnce(&CapturedRound<'_, '_>, &CrashInfo) -> R) -> Option<R> {
    if HANDOFF_STATE.load(Ordering::Acquire) != HANDOFF_OFFERED {
        return None;
    }
    let p = OFFERED.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: the helper publishes a pointer to its round, which it never
    // drops (it keeps it until the process dies, see `helper_main`), and only
    // reads it from then on; shared references only.
    let round = unsafe { &*p.cast::<RoundGuard<'static>>() };
    let info = current()?;
    let r = f(&CapturedRound { round }, &info);
    let mut state = HANDOFF_STATE.load(Ordering::Acquire);
    while state == HANDOFF_OFFERED || state == HANDOFF_WRITING {
        match HANDOFF_STATE.compare_exchange(
            state,
            HANDOFF_DONE,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                sys::futex_wake_all(&HANDOFF_STATE);
                break;
            }
            Err(now) => state = now,
        }
    }
    Some(r)
}

/// For the std adapter, inside [`with_offered_round`], right before it
/// writes its report: claims the output, so that the core's fallback
/// report does not interleave with it. `false`: the helper gave up waiting
/// and writes (or wrote) the core's report; write nothing. Once claimed,
/// the helper waits for the std adapter until the crash deadline.
///
/// # Async-signal safety
/// One compare-exchange.
pub fn begin_output() -> bool {
    HANDOFF_STATE
        .compare_exchange(
            HANDOFF_OFFERED,
            HANDOFF_WRITING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
}

/// The round hook: captures the crashed thread (when `tid` is it) from its
/// saved registers into slot `index`. Returns whether `tid` is the crashed
/// thread (then the round must not signal it). Its slot's
/// [`CaptureSummary::cpu_ns`](crate::slots::CaptureSummary::cpu_ns) is its
/// thread-CPU clock read through its tid ([`sys::thread_cpu_ns_of`]), 0 when
/// that cannot be read.
///
/// # Async-signal safety
/// As [`capture::capture_thread`], plus one `clock_gettime` system call on
/// the crashed thread's CPU clock.
pub(crate) fn capture_crashed_thread(
    ctx: CaptureContext<'_>,
    engine: &Engine,
    index: usize,
    generation: u32,
    tid: i32,
) -> bool {
    if PHASE.load(Ordering::Acquire) != CAPTURING || OWNER.load(Ordering::Acquire) != tid {
        return false;
    }
    // SAFETY: see `current`; INFO no longer changes.
    let info = unsafe { &*INFO.0.get() };
    if let Some(mut writer) = engine.slots.claim(index, generation, tid) {
        // Its labels, spans and breadcrumbs, copied for it (it cannot run its
        // own capture handler).
        // SAFETY: the crashed thread is parked in `report_once` (or is this
        // very thread, in `report_here`) and runs no code that writes its
        // record; it published INFO and PHASE (Release) after its last
        // write, and this thread saw PHASE leave IDLE with an Acquire load.
        writer.set_context(unsafe { engine.contexts.snapshot_stopped(tid, generation) });
        // Its CPU clock, as a capture handler reads its own on entry: the
        // crashed thread is parked, so the reading is its CPU time at the
        // crash (plus its few instructions of saving state); 0 if unreadable.
        let cpu_ns = sys::thread_cpu_ns_of(tid);
        capture::capture_thread(ctx, &info.registers, writer, info.name, cpu_ns);
    }
    true
}

/// The handler of every fatal signal.
///
/// # Async-signal safety
/// Atomics, `sigaction`, `futex`, `tgkill`, `prctl`, `clock_gettime`; the
/// previous handler (itself a signal handler). No allocation, no lock.
extern "C" fn crash_handler(signal: i32, info: *mut libc::siginfo_t, ucontext: *mut c_void) {
    let errno = sys::ErrnoGuard::save();
    // SAFETY: `info` is the kernel's siginfo for this SA_SIGINFO handler.
    let si = unsafe { sys::read_siginfo(info) };
    let own_pid = sys::getpid();
    let tid = sys::gettid();
    let kernel = si.code > 0 || si.code == libc::SI_KERNEL;
    let is_crash = kernel || si.pid == own_pid;
    let previous = previous(signal);
    let engine = crate::engine();
    let suppressed = signal == libc::SIGABRT && SUPPRESS_ABORT_TID.load(Ordering::Acquire) == tid;
    if !is_crash || engine.is_none() || suppressed {
        pass_on(signal, info, ucontext, previous.as_ref(), si.code);
        drop(errno);
        return;
    }
    // SAFETY: `ucontext` is the kernel's ucontext for this running handler.
    let registers = unsafe { sys::registers_from_ucontext(ucontext) }.unwrap_or_default();
    // SAFETY: `info` is the kernel's siginfo for this running handler.
    let fault_address = unsafe { sys::fault_address(info) };
    let mut crash = CrashInfo {
        signal,
        code: si.code,
        address: if kernel { fault_address } else { 0 },
        sender_pid: if kernel { 0 } else { si.pid },
        sender_uid: if kernel { 0 } else { si.uid },
        tid,
        name: sys::thread_name(),
        unix_ns: sys::realtime_ns(),
        then_signal: 0,
        registers,
    };
    if let Some(prev) = previous.as_ref().filter(|p| is_handler(p))
        && kernel
        && looks_like_stack_overflow(signal, crash.address, crash.registers.sp)
    {
        // A stack overflow: Rust's handler prints its message and aborts
        // inside this handler, on what is left of the alternate signal
        // stack. A SIGABRT handler there would need a second signal frame
        // (as large as the first: the CPU's extended state, about 3 KiB on
        // current x86_64) on top of this one, and an 8 KiB alternate stack
        // has no room left for it (the process died by SIGSEGV without a
        // report). So: report now, put back the SIGABRT disposition guru
        // replaced, and let the previous handler print and abort as it
        // would have.
        report_once(&crash);
        restore_abort_disposition();
        // SAFETY: `info` and `ucontext` are this handler's own arguments.
        unsafe { sys::call_saved_handler(prev, signal, info, ucontext) };
        // It returned: it reset the disposition (not its guard page: the
        // fault recurs under the default action) or recovered the fault.
        drop(errno);
        return;
    }
    if let Some(prev) = previous.as_ref().filter(|p| is_handler(p)) {
        // The previous handler first: it may recover the fault, or abort
        // (then the SIGABRT handler reports this fault from PENDING).
        let stashed = PENDING_TID
            .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if stashed {
            // SAFETY: PENDING is written only by the thread that won
            // PENDING_TID, read only by that same thread (its SIGABRT handler).
            unsafe { *PENDING.0.get() = crash };
        }
        // An abort inside it would run guru's SIGABRT handler in a second
        // signal frame on top of this one: without room for both on the
        // alternate stack, the process would die by SIGSEGV instead of
        // SIGABRT. Then SIGABRT gets its previous disposition meanwhile
        // (such an abort dies as it would have, without a report).
        let abort_restored = signal != libc::SIGABRT && no_room_for_a_nested_handler();
        if abort_restored {
            restore_abort_disposition();
        }
        // SAFETY: `info` and `ucontext` are this handler's own arguments.
        unsafe { sys::call_saved_handler(prev, signal, info, ucontext) };
        // Put guru's handler back at once (before anything else, SIGABRT's
        // included) and look at what the previous handler left: the
        // disposition is process-wide, and another thread faulting while
        // this report runs must still find guru's handler (not the SIG_DFL
        // Rust's handler sets, which would kill the process before the
        // report is written).
        let block = CAPTURE_SIGNAL.load(Ordering::Relaxed);
        let left = sys::install_crash_handler(signal, crash_handler, block);
        if abort_restored {
            let _ = sys::install_crash_handler(libc::SIGABRT, crash_handler, block);
        }
        let recovered = left.as_ref().map_or(true, |a| {
            a.sa_sigaction == crash_handler as *const () as usize
        });
        if recovered {
            // Still ours: the previous handler recovered the fault.
            if stashed {
                PENDING_TID.store(0, Ordering::Release);
            }
            drop(errno);
            return;
        }
        // It gave up (reset the disposition): report, then put back what it
        // chose and return; the fault recurs under that disposition.
        report_once(&crash);
        if let Ok(left) = left.as_ref() {
            sys::restore_action(signal, left);
        }
        if !kernel {
            sys::raise_in_this_thread(signal);
        }
        drop(errno);
        return;
    }
    if signal == libc::SIGABRT && PENDING_TID.load(Ordering::Acquire) == tid {
        // The abort of a previous handler (Rust's overflow message): report
        // the fault it was called for.
        // SAFETY: written by this very thread before it called that handler.
        let original = unsafe { *PENDING.0.get() };
        crash = CrashInfo {
            then_signal: signal,
            ..original
        };
    }
    report_once(&crash);
    pass_on(signal, info, ucontext, previous.as_ref(), si.code);
    drop(errno);
}

/// How far below the stack pointer a fault still counts as the stack's
/// (Rust probes each new page of a frame, so an overflow faults at most a
/// page or so below it; a call or push faults just below it).
const OVERFLOW_REACH: u64 = 64 * 1024;

/// Whether a fault looks like a stack overflow: a SIGSEGV (sent by the
/// kernel; the caller checks) whose address lies at most
/// [`OVERFLOW_REACH`] below the faulting stack pointer, or within a page
/// above it (a probe of a new frame, a push, a call into the guard page).
/// A null pointer or a wild address is nowhere near the stack pointer.
///
/// # Async-signal safety
/// Arithmetic.
fn looks_like_stack_overflow(signal: i32, address: u64, sp: u64) -> bool {
    signal == libc::SIGSEGV
        && sp != 0
        && address <= sp.saturating_add(4096)
        && sp.saturating_sub(address) <= OVERFLOW_REACH
}

/// What guru's SIGABRT handler needs on top of its signal frame to report
/// an abort nested in another handler (its frames in a debug build, and
/// what the previous handler used before it aborted).
const NESTED_HANDLER_BYTES: usize = 6 * 1024;

/// Whether the calling handler runs on an alternate signal stack without
/// room for a nested signal frame and guru's handler in it (Rust's
/// alternate stacks are 8 KiB; a signal frame is about 3 KiB on current
/// x86_64).
///
/// # Async-signal safety
/// One `sigaltstack` query, atomics.
fn no_room_for_a_nested_handler() -> bool {
    let here = 0u8;
    let sp = core::ptr::addr_of!(here) as usize;
    let needed = SIGNAL_FRAME_BYTES
        .load(Ordering::Relaxed)
        .saturating_add(NESTED_HANDLER_BYTES);
    sys::alt_stack_room(sp).is_some_and(|room| room < needed)
}

/// Puts back the SIGABRT disposition guru replaced (`SIG_DFL` if unknown).
///
/// # Async-signal safety
/// One `sigaction` call.
fn restore_abort_disposition() {
    let abort = previous(libc::SIGABRT).unwrap_or_else(default_action);
    sys::restore_action(libc::SIGABRT, &abort);
}

/// The default disposition (`SIG_DFL`, empty mask, no flags).
///
/// # Async-signal safety
/// Returns plain data.
fn default_action() -> sys::SavedAction {
    // SAFETY: plain data; zeroed is SIG_DFL with an empty mask.
    unsafe { core::mem::zeroed() }
}

/// Whether a saved disposition is a handler (not `SIG_DFL` or `SIG_IGN`).
///
/// # Async-signal safety
/// A comparison.
fn is_handler(a: &sys::SavedAction) -> bool {
    a.sa_sigaction != libc::SIG_DFL && a.sa_sigaction != libc::SIG_IGN
}

/// Lets the signal take the course it would have taken without guru: the
/// previous handler is called; or the previous disposition is put back and
/// the signal recurs (a fault re-executes when the handler returns; a sent
/// signal is sent again, delivered when the handler returns).
///
/// # Async-signal safety
/// `sigaction`, `tgkill`, or the previous handler.
fn pass_on(
    signal: i32,
    info: *mut libc::siginfo_t,
    ucontext: *mut c_void,
    previous: Option<&sys::SavedAction>,
    code: i32,
) {
    match previous {
        Some(p) if is_handler(p) => {
            // SAFETY: this handler's own arguments.
            unsafe { sys::call_saved_handler(p, signal, info, ucontext) }
        }
        Some(p) => {
            sys::restore_action(signal, p);
            if p.sa_sigaction == libc::SIG_DFL && code <= 0 {
                sys::raise_in_this_thread(signal);
            }
        }
        None => {
            // Not known (a fault racing with install): the default action.
            sys::restore_action(signal, &default_action());
            if code <= 0 {
                sys::raise_in_this_thread(signal);
            }
        }
    }
}

/// Makes the crash report unless one was made: wakes the helper and waits
/// for it, at most the crash deadline. A second crashing thread waits for
/// the first one's report instead (the helper itself does not wait).
///
/// # Async-signal safety
/// Atomics, `futex`, `clock_gettime`; without a helper, the round and the
/// core report (see [`report_here`]).
fn report_once(crash: &CrashInfo) {
    let deadline_ns = DEADLINE_NS.load(Ordering::Relaxed);
    let start = sys::monotonic_ns();
    let tid = crash.tid;
    if OWNER
        .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        if HELPER_TID.load(Ordering::Relaxed) != tid && OWNER.load(Ordering::Relaxed) != tid {
            wait_for(DONE, start.saturating_add(deadline_ns));
        }
        return;
    }
    // SAFETY: only the owner writes INFO, once, before publishing PHASE.
    unsafe { *INFO.0.get() = *crash };
    let helper_here = HELPER_PID.load(Ordering::Acquire) == sys::getpid()
        && HELPER_TID.load(Ordering::Acquire) != tid;
    PHASE.store(REQUESTED, Ordering::Release);
    if helper_here {
        sys::futex_wake_all(&PHASE);
        wait_for(DONE, start.saturating_add(deadline_ns));
    } else {
        report_here(crash);
    }
}

/// Waits until `PHASE` is `want`, or `until` (monotonic ns).
///
/// # Async-signal safety
/// `futex` and `clock_gettime`.
fn wait_for(want: u32, until: u64) {
    loop {
        let now = sys::monotonic_ns();
        let phase = PHASE.load(Ordering::Acquire);
        if phase >= want || now >= until {
            return;
        }
        sys::futex_wait(&PHASE, phase, (until - now).min(100_000_000));
    }
}

/// No helper (a forked child, or the helper itself crashed): run the round
/// on this thread if it has the stack for it, else say so in one line.
///
/// # Async-signal safety
/// As [`round::RoundGuard::capture`] and the core report.
fn report_here(crash: &CrashInfo) {
    let Some(engine) = crate::engine() else {
        return;
    };
    let fd = engine.options.output_fd;
    let left = capture::stack_left(&engine.ranges);
    if left.is_none_or(|l| l < capture::MIN_STACK_FOR_UNWIND) {
        let mut buf = [0u8; 256];
        let mut w = SliceWriter::new(&mut buf);
        let _ = write!(w, "guru: no crash report for ");
        let _ = write_crash(&mut w, crash);
        let _ = writeln!(
            w,
            ": no helper thread, and this thread has too little stack to make one"
        );
        let _ = crate::write::FdSink::write_all_fd(fd, w.as_str().as_bytes());
        PHASE.store(DONE, Ordering::Release);
        return;
    }
    run_round(engine, crash, fd);
}

/// The helper thread: sleeps until a crash is requested, then makes its
/// report.
extern "C" fn helper_main(_: *mut c_void) -> *mut c_void {
    sys::set_thread_name(c"guru-crash");
    HELPER_TID.store(sys::gettid(), Ordering::Release);
    loop {
        let phase = PHASE.load(Ordering::Acquire);
        if phase == REQUESTED {
            break;
        }
        sys::futex_wait(&PHASE, phase, 3_600_000_000_000);
    }
    if let Some(engine) = crate::engine() {
        // SAFETY: see `current`.
        let crash = unsafe { *INFO.0.get() };
        run_round(engine, &crash, engine.options.output_fd);
    }
    // The process is about to die; never return (the round stays borrowed).
    loop {
        sys::futex_wait(&HANDOFF_STATE, u32::MAX, 3_600_000_000_000);
    }
}

/// Runs the crash round and writes the report (or hands it to the std
/// adapter); then lets the crashed thread go on to die.
///
/// # Async-signal safety
/// No allocation; see [`round::RoundGuard::capture`].
fn run_round(engine: &'static Engine, crash: &CrashInfo, fd: i32) {
    let deadline_ns = DEADLINE_NS.load(Ordering::Relaxed);
    let start = sys::monotonic_ns();
    let end = start.saturating_add(deadline_ns);
    let std_share = start.saturating_add(deadline_ns - deadline_ns / 3);
    let trigger = crash.trigger();
    // A manual report may be holding the round: wait for it, within the
    // deadline.
    let mut round = loop {
        if let Some(r) = round::begin(engine, Some(trigger)) {
            break r;
        }
        if sys::monotonic_ns() >= std_share {
            let mut buf = [0u8; 256];
            let mut w = SliceWriter::new(&mut buf);
            let _ = write!(w, "guru: no crash report for ");
            let _ = write_crash(&mut w, crash);
            let _ = writeln!(w, ": another report held the round until the deadline");
            let _ = FdSink::write_all_fd(fd, w.as_str().as_bytes());
            finish();
            return;
        }
        sys::futex_wait(&HANDOFF_STATE, u32::MAX, 1_000_000);
    };
    engine.triggers.record(&trigger);
    PHASE.store(CAPTURING, Ordering::Release);
    round.capture(None);
    // Set when the std adapter was offered the round and did not write in
    // its share of the deadline.
    let mut missed_ms = None;
    let wake = HANDOFF.load(Ordering::Acquire);
    if wake != 0 && HELPER_TID.load(Ordering::Relaxed) == sys::gettid() {
        OFFERED.store(
            core::ptr::from_mut(&mut round).cast::<c_void>(),
            Ordering::Release,
        );
        HANDOFF_STATE.store(HANDOFF_OFFERED, Ordering::Release);
        // SAFETY: registered by `set_handoff` as an `extern "C" fn()`.
        let wake: extern "C" fn() = unsafe { core::mem::transmute::<usize, extern "C" fn()>(wake) };
        wake();
        loop {
            let state = HANDOFF_STATE.load(Ordering::Acquire);
            let now = sys::monotonic_ns();
            if state == HANDOFF_DONE {
                finish();
                core::mem::forget(round);
                return;
            }
            // The std adapter is writing: it has until the deadline.
            let limit = if state == HANDOFF_WRITING {
                end
            } else {
                std_share
            };
            if now >= limit {
                break;
            }
            sys::futex_wait(&HANDOFF_STATE, state, limit - now);
        }
        if HANDOFF_STATE
            .compare_exchange(
                HANDOFF_OFFERED,
                HANDOFF_ABANDONED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // The std adapter finished just now, or is still writing at the
            // deadline: the process dies with what it wrote.
            finish();
            core::mem::forget(round);
            return;
        }
        let mut buf = [0u8; 200];
        let mut w = SliceWriter::new(&mut buf);
        let _ = writeln!(
            w,
            "guru: the std reporter did not write the crash report within {} ms; the core's report follows",
            (std_share - start) / 1_000_000
        );
        let _ = FdSink::write_all_fd(fd, w.as_str().as_bytes());
        missed_ms = Some((std_share - start) / 1_000_000);
    }
    write_report(&round, crash, fd, end, missed_ms);
    finish();
    // The std adapter may still read the round it was offered: keep it.
    core::mem::forget(round);
}

/// The report is written: let the crashed thread (and any other waiting
/// one) go on.
///
/// # Async-signal safety
/// Atomics and `futex`.
fn finish() {
    PHASE.store(DONE, Ordering::Release);
    sys::futex_wake_all(&PHASE);
}

/// The core's crash report: the text report with the crashed thread first
/// and marked. `missed_ms`: the std adapter was to write it and did not
/// within that many ms (its sections are listed as failed, with why).
///
/// # Async-signal safety
/// Formats into the static crash buffer; `write(2)` and `poll(2)` bounded
/// by `until`; reads small `/proc` files for unresponsive threads.
fn write_report(
    round: &RoundGuard<'_>,
    crash: &CrashInfo,
    fd: i32,
    until: u64,
    missed_ms: Option<u64>,
) {
    // SAFETY: only one thread writes a crash report (OWNER is claimed once;
    // the helper and `report_here` are exclusive).
    let buf = unsafe { &mut *OUT.0.get() };
    let mut sink = FdSink::new(fd, buf, until);
    let _ = render_report(&mut sink, round, crash, missed_ms);
    sink.flush();
}

/// A section the std adapter would have written, listed as failed in the
/// core's fallback crash report: `  !! section failed: missing: …`.
///
/// # Async-signal safety
/// Formats only.
fn write_missing(w: &mut impl Write, title: &str, missed_ms: u64, more: &str) -> fmt::Result {
    write_banner(w, title)?;
    writeln!(
        w,
        "  !! section failed: missing: the std reporter did not write this crash report within {missed_ms} ms, so the core wrote it{more}"
    )
}

fn render_report(
    w: &mut FdSink<'_>,
    round: &RoundGuard<'_>,
    crash: &CrashInfo,
    missed_ms: Option<u64>,
) -> fmt::Result {
    let engine = round.engine;
    let modules = round.modules;
    let summary = round.summary;
    let generation = summary.generation;
    let deadline_ms = engine.deadline_ns / 1_000_000;
    write_crash_begin_line(w, &summary, &crash.words())?;
    if let Some(ms) = missed_ms {
        write_missing(w, "Package", ms, "")?;
    }
    write_banner(w, "Threads")?;
    let crashed = round
        .used_indices()
        .find(|&i| engine.slots.tid(i) == crash.tid);
    match crashed.and_then(|i| engine.slots.read(i, generation)) {
        Some(view) => write_crashed_thread(w, modules, &view, crash)?,
        None => {
            // Not in the round (left out, or the thread list failed): its
            // faulting instruction all the same.
            write_crashed_header(w, crash.tid, &crash.name, crash)?;
            write_frame(w, modules, 0, crash.registers.pc)?;
            writeln!(w, "  -- {NOT_UNWOUND}")?;
        }
    }
    writeln!(w)?;
    for index in round.used_indices() {
        if Some(index) == crashed {
            continue;
        }
        match engine.slots.read(index, generation) {
            Some(view) => {
                write_captured_thread(w, modules, &view, view.tid == summary.initiator_tid)?
            }
            None => write_unresponsive_thread(
                w,
                engine.slots.tid(index),
                engine.slots.phase(index, generation),
                deadline_ms,
            )?,
        }
        writeln!(w)?;
    }
    if let Some(ms) = missed_ms {
        write_missing(
            w,
            "Configuration",
            ms,
            " (the registered sections are missing too)",
        )?;
        write_missing(w, "Process", ms, "")?;
    }
    write_banner(w, "Modules")?;
    write_modules(w, modules)?;
    write_banner(w, "Report")?;
    write!(w, "  crash: ")?;
    write_crash(w, crash)?;
    write!(w, " at ")?;
    write_utc(w, crash.unix_ns)?;
    writeln!(w)?;
    writeln!(w, "  {AFTER_REPORT_NOTE}")?;
    write_round_figures(w, &summary, engine.slots.capacity(), |f| {
        engine.triggers.for_each_recent(f)
    })?;
    write_end_line(w, &summary)
}

/// The crashed thread: its header names the crash; its frames start at
/// the faulting instruction.
///
/// # Async-signal safety
/// Formats a published slot.
fn write_crashed_thread(
    w: &mut impl Write,
    modules: &crate::ModuleSet,
    view: &SlotView<'_>,
    crash: &CrashInfo,
) -> fmt::Result {
    write_crashed_header(w, view.tid, &view.summary.name, crash)?;
    write_thread_context(w, view)?;
    for (n, address) in view.frames().enumerate() {
        write_frame(w, modules, n, address)?;
    }
    write_scan_note(w, view.summary.scanned_from)?;
    write_stack_end(w, view)
}

/// The stack-end note of a crashed thread the round did not capture (only
/// its faulting instruction is shown).
pub const NOT_UNWOUND: &str = "not unwound: the round did not capture the crashed thread";

/// `------ Thread <tid> "<name>" (crashed: SIGSEGV SEGV_MAPERR at address 0x0) ------`.
///
/// # Async-signal safety
/// Formats only.
pub fn write_crashed_header(
    w: &mut impl Write,
    tid: i32,
    name: &[u8; 16],
    crash: &CrashInfo,
) -> fmt::Result {
    write!(w, "------ Thread {tid} \"")?;
    let len = name.iter().position(|&b| b == 0).unwrap_or(16);
    write_escaped(w, name.get(..len).unwrap_or(&[]))?;
    write!(w, "\" (")?;
    let words = crash.words();
    write_crash_mark(w, words.signal, words.code, words.address)?;
    writeln!(w, ") ------")
}

/// The crashed thread's state in its header: `crashed: SIGSEGV SEGV_MAPERR
/// at address 0x0` (`si_code <n>` for a code without a name; no address for
/// a signal the process sent itself).
///
/// # Async-signal safety
/// Formats only.
pub fn write_crash_mark(
    w: &mut impl Write,
    signal: i32,
    code: i32,
    address: Option<u64>,
) -> fmt::Result {
    write!(w, "crashed: ")?;
    match signal_name(signal) {
        Some(n) => write!(w, "{n}")?,
        None => write!(w, "signal {signal}")?,
    }
    match code_name(signal, code) {
        Some(n) => write!(w, " {n}")?,
        None => write!(w, " si_code {code}")?,
    }
    if let Some(a) = address {
        write!(w, " at address 0x{a:x}")?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_at_or_just_below_the_stack_pointer_looks_like_an_overflow() {
        let sp = 0x7f00_0000_1000u64;
        for address in [sp, sp - 8, sp + 16, sp - 4096, sp - OVERFLOW_REACH] {
            assert!(
                looks_like_stack_overflow(libc::SIGSEGV, address, sp),
                "{address:#x}"
            );
        }
        for address in [0, 0x10, sp - OVERFLOW_REACH - 1, sp + 8192, u64::MAX] {
            assert!(
                !looks_like_stack_overflow(libc::SIGSEGV, address, sp),
                "{address:#x}"
            );
        }
        assert!(!looks_like_stack_overflow(libc::SIGBUS, sp, sp));
        assert!(!looks_like_stack_overflow(libc::SIGSEGV, 0, 0));
    }

    #[test]
    fn codes_in_words() {
        assert_eq!(code_name(libc::SIGSEGV, 1), Some("SEGV_MAPERR"));
        assert_eq!(code_name(libc::SIGSEGV, 2), Some("SEGV_ACCERR"));
        assert_eq!(code_name(libc::SIGBUS, 2), Some("BUS_ADRERR"));
        assert_eq!(code_name(libc::SIGILL, 2), Some("ILL_ILLOPN"));
        assert_eq!(code_name(libc::SIGFPE, 1), Some("FPE_INTDIV"));
        assert_eq!(code_name(libc::SIGABRT, -6), Some("SI_TKILL"));
        assert_eq!(code_name(libc::SIGSEGV, 0x80), Some("SI_KERNEL"));
        assert_eq!(code_name(libc::SIGSEGV, 99), None);
    }
}
