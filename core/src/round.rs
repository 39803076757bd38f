//! A report round, driven by the initiator: fan-out (list threads, arm their
//! slots, refresh the readable-range table, signal every thread) and gather
//! (wait for answers until the deadline, then give up on the rest).
//!
//! Only one round runs at a time: [`begin`] wins a compare-exchange on the
//! engine's `round_active` flag; the returned [`RoundGuard`] owns the scratch
//! buffers and releases the flag when dropped.
//!
//! # Under pressure
//!
//! - **No descriptor free, `/proc` unmounted after install**: the round
//!   lists threads and reads mappings through descriptors kept open since
//!   install (`/proc/self/task`, `/proc/self/maps`), rewound each round. The
//!   per-thread `/proc` files of *unresponsive* threads (`stat`, `syscall`,
//!   `status`) still need a free descriptor: without one such a thread says
//!   "state unknown: cannot read its /proc stat: EMFILE …".
//! - **No `/proc` at install either, or no descriptor free since before
//!   install**: the threads cannot be listed; the report shows the thread
//!   that wrote it (captured, unwound: its stack is probed, see below) and
//!   says why the rest is missing (`thread list incomplete: cannot list
//!   /proc/self/task: ENOENT …`). Without `/proc/self/maps` no code range is
//!   known either: that thread's system call is not recognised (it shows
//!   "running") and stack scanning has no code to check candidates against.
//!   Install itself then loads no symbols from files (no descriptor) or finds
//!   the main program through `AT_EXECFN` (no `/proc/self/exe`).
//! - **More readable mappings than the range table holds**: the table is
//!   refilled by priority (code, thread stacks, named mappings, the rest;
//!   see [`crate::ranges::CLASSES`]); a captured thread whose stack still is
//!   not in it probes its own stack with `process_vm_readv` (at most
//!   [`crate::capture::PROBE_MAX_BYTES`] above its stack pointer). Where a
//!   seccomp filter forbids `process_vm_readv` such a thread is listed "not
//!   unwound: stack pointer outside any readable mapping", as before. The
//!   refill reads `/proc/self/maps` twice, which makes the fan-out of a round
//!   longer in such a process (thousands of mappings: milliseconds).
//!   All of this is the text path: where the kernel answers `PROCMAP_QUERY`
//!   (Linux 6.11 and later, [`crate::Options::maps_query`]) the table holds
//!   only the modules' code and each thread asks the kernel for its own
//!   stack, so no mapping is ever left out and the table cannot overflow
//!   short of thousands of code mappings.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::Registers;
use crate::capture::{self, CaptureContext};
use crate::procfs;
use crate::slots::Phase;
use crate::symbolize::ModuleSet;
use crate::trigger::Trigger;
use crate::{Engine, Scratch, sys};

/// How many answers the initiator waits for before it wants to be woken:
/// `u32::MAX` while it is still signalling (it is not asleep then), the number
/// of signals sent once it starts to gather. A capture handler wakes it only
/// with the answer that completes the round (see [`note_answer`]), not with
/// each one: with hundreds of threads, a wake-up per answer made the initiator
/// preempt the capturing threads and rescan the slots once per answer.
static AWAITED: AtomicU32 = AtomicU32::new(u32::MAX);

/// How often the gathering initiator looks for signalled threads that exited
/// without answering (and how long it sleeps at most between checks of the
/// slots).
const EXIT_CHECK_NS: u64 = 5_000_000;

/// Counts one answer of the current round and wakes the initiator if it was
/// the last one it waits for.
///
/// # Async-signal safety
/// Atomics and one `futex(FUTEX_WAKE)`.
pub(crate) fn note_answer(engine: &Engine) {
    // SeqCst pairs with `gather`: it stores AWAITED, then loads `answered`;
    // this adds to `answered`, then loads AWAITED. One of the two sees the other.
    let answered = engine
        .answered
        .fetch_add(1, Ordering::SeqCst)
        .wrapping_add(1);
    let awaited = AWAITED.load(Ordering::SeqCst);
    if answered >= awaited {
        sys::futex_wake_all(&engine.answered);
    }
}

/// Figures about one round.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundSummary {
    /// The round's generation.
    pub generation: u32,
    /// Report sequence number (1 for the first report of the process).
    pub sequence: u64,
    /// Process id at the time of the round.
    pub pid: i32,
    /// Thread id of the initiator.
    pub initiator_tid: i32,
    /// Threads found in `/proc/self/task`.
    pub threads_listed: usize,
    /// Threads given a slot.
    pub threads_armed: usize,
    /// Threads that captured themselves in time.
    pub threads_captured: usize,
    /// Threads that did not answer by the deadline (signal blocked, stuck, exiting).
    pub threads_unresponsive: usize,
    /// Threads that could not be signalled (exited before the signal, queue full).
    pub threads_not_signalled: usize,
    /// Threads left out for lack of slots.
    pub threads_left_out: usize,
    /// Readable mappings that did not fit in the range table.
    pub mappings_dropped: usize,
    /// Why `/proc/self/task` could not be listed (whole or in part): the
    /// errno, 0 if it was. Only the initiator is captured then.
    pub task_list_errno: i32,
    /// Why `/proc/self/maps` could not be read, 0 if it was (stacks are
    /// then probed; see [`crate::capture::capture_self`]).
    pub maps_errno: i32,
    /// The initiator was not in the listing (it failed) and was added.
    pub initiator_added: bool,
    /// Wall-clock start, ns since the Unix epoch.
    pub started_unix_ns: u64,
    /// Monotonic duration of fan-out (listing + signalling), ns.
    pub fanout_ns: u64,
    /// Monotonic duration of the whole capture (fan-out + gather), ns.
    pub capture_ns: u64,
    /// Wall and initiator thread-CPU time of each phase of the round.
    pub phases: Phases,
    /// Longest thread-CPU time a thread spent in its capture handler, ns.
    pub max_pause_ns: u64,
    /// The thread that paused longest.
    pub max_pause_tid: i32,
    /// Triggers coalesced into this report.
    pub coalesced_triggers: u64,
    /// The trigger that started this round, if it was a signal.
    pub trigger: Option<Trigger>,
    /// Output dropped by bounded writes since the last report written whole
    /// (taken from [`crate::write::DROPS`] when the round began).
    pub output_dropped: crate::write::Dropped,
}

/// The `/proc` descriptors a round needs, opened at install and kept, so
/// that a process out of descriptors (`EMFILE`, a descriptor leak: exactly
/// when a report is wanted) or one whose `/proc` was unmounted after install
/// still gets whole reports. Each round checks that a kept descriptor still
/// is the file it opened (`fstat`: the application may have closed the
/// number and reused it; that one is never touched) and that the process is
/// still the one that opened it (a forked child must list its own threads),
/// rewinds it with `lseek`, and reopens it by path otherwise.
///
/// Owned by the holder of the round flag (it lives in the round's scratch).
#[derive(Debug)]
pub(crate) struct ProcFds {
    pid: i32,
    task: KeptFd,
    maps: KeptFd,
    /// `/proc/self/maps` for `PROCMAP_QUERY`: capture handlers use it
    /// while a round runs (and a late one after), so it is never closed,
    /// except in a forked child, whose first round reopens it before any
    /// handler of that process can have seen it.
    query: KeptFd,
    /// The kernel (or the emulator serving `/proc`) answered `ENOTTY` or
    /// `EINVAL`: no `PROCMAP_QUERY` here; the text is read every round.
    query_unsupported: bool,
    /// The module set (its address) whose code mappings the table holds
    /// from the last query walk; 0: none.
    code_of_modules: usize,
}

#[derive(Debug, Clone, Copy)]
struct KeptFd {
    fd: i32,
    identity: (u64, u64),
}

impl KeptFd {
    const NONE: KeptFd = KeptFd {
        fd: -1,
        identity: (0, 0),
    };

    /// Opens `path` and remembers what it is.
    ///
    /// # Async-signal safety
    /// `open` and `fstat`.
    fn open(path: &[u8], directory: bool) -> Result<KeptFd, i32> {
        let fd = sys::open_readonly(path, directory)?;
        let identity = sys::identity(fd.raw()).ok_or(libc::EBADF)?;
        let kept = KeptFd {
            fd: fd.raw(),
            identity,
        };
        core::mem::forget(fd);
        Ok(kept)
    }

    /// Whether the descriptor still refers to the file it was opened on.
    ///
    /// # Async-signal safety
    /// One `fstat`.
    fn still_ours(&self) -> bool {
        self.fd >= 0 && sys::identity(self.fd) == Some(self.identity)
    }

    /// The descriptor rewound to its start, reopened by `path` if it is no
    /// longer ours or cannot be rewound; the errno of the reopen otherwise.
    ///
    /// # Async-signal safety
    /// `fstat`, `lseek`, and on a reopen `open`/`fstat`/`close`.
    fn get(&mut self, path: &[u8], directory: bool) -> Result<i32, i32> {
        if self.still_ours() {
            if sys::rewind(self.fd).is_ok() {
                return Ok(self.fd);
            }
            sys::close_kept(self.fd);
        }
        // A number that is no longer ours is forgotten, never closed.
        *self = KeptFd::NONE;
        *self = KeptFd::open(path, directory)?;
        Ok(self.fd)
    }

    /// A descriptor opened now, kept in place of the old one; the kept one,
    /// rewound, only when opening fails (no descriptor left, no `/proc`).
    /// For files whose content some kernels' emulators fix at `open`
    /// (qemu-user serves `/proc/self/maps` as a snapshot taken when it is
    /// opened, so a rewound descriptor would show only the mappings of
    /// install time and miss every later thread's stack).
    ///
    /// # Async-signal safety
    /// `open`/`fstat`/`close`, or as [`KeptFd::get`].
    fn fresh(&mut self, path: &[u8], directory: bool) -> Result<i32, i32> {
        match KeptFd::open(path, directory) {
            Ok(new) => {
                self.drop_if_ours();
                *self = new;
                Ok(self.fd)
            }
            Err(_) => self.get(path, directory),
        }
    }

    /// Closes the descriptor if it is still ours.
    ///
    /// # Async-signal safety
    /// `fstat`, `close`.
    fn drop_if_ours(&mut self) {
        if self.still_ours() {
            sys::close_kept(self.fd);
        }
        *self = KeptFd::NONE;
    }
}

const TASK_DIR: &[u8] = b"/proc/self/task\0";
const MAPS_FILE: &[u8] = b"/proc/self/maps\0";

impl ProcFds {
    /// Opens what it can now (at install); what fails is retried each round.
    pub(crate) fn open() -> ProcFds {
        ProcFds {
            pid: sys::getpid(),
            task: KeptFd::open(TASK_DIR, true).unwrap_or(KeptFd::NONE),
            maps: KeptFd::open(MAPS_FILE, false).unwrap_or(KeptFd::NONE),
            query: KeptFd::open(MAPS_FILE, false).unwrap_or(KeptFd::NONE),
            query_unsupported: false,
            code_of_modules: 0,
        }
    }

    /// In a forked child the kept descriptors are the parent's `/proc`
    /// entries: they are closed and reopened for this process.
    ///
    /// # Async-signal safety
    /// `getpid`, and after a fork `fstat`/`close`.
    fn check_process(&mut self) {
        let pid = sys::getpid();
        if pid != self.pid {
            self.task.drop_if_ours();
            self.maps.drop_if_ours();
            self.query.drop_if_ours();
            self.pid = pid;
        }
    }

    /// The descriptor for `PROCMAP_QUERY`, if the kernel may answer it:
    /// opened at install (or, in a forked child, reopened), never rewound or
    /// replaced while it is ours.
    ///
    /// # Async-signal safety
    /// `getpid`, `fstat`, and when it must be reopened `open`/`fstat`.
    fn query_fd(&mut self) -> Option<i32> {
        self.check_process();
        if self.query_unsupported {
            return None;
        }
        if !self.query.still_ours() {
            self.query = KeptFd::NONE;
            self.query = KeptFd::open(MAPS_FILE, false).ok()?;
        }
        Some(self.query.fd)
    }

    /// `/proc/self/task`, rewound.
    ///
    /// # Async-signal safety
    /// As [`KeptFd::get`].
    fn task_dir(&mut self) -> Result<i32, i32> {
        self.check_process();
        self.task.get(TASK_DIR, true)
    }

    /// `/proc/self/maps`, opened afresh (the kept descriptor, rewound, when
    /// that fails): see [`KeptFd::fresh`].
    ///
    /// # Async-signal safety
    /// As [`KeptFd::fresh`].
    fn maps(&mut self) -> Result<i32, i32> {
        self.check_process();
        self.maps.fresh(MAPS_FILE, false)
    }
}

/// Feeds every line of the maps file open on `fd` (from its current
/// position) to `sink`, reading through `buf`.
///
/// # Async-signal safety
/// `read` into the caller's buffer; parsing only.
fn for_each_mapping(
    fd: i32,
    buf: &mut [u8],
    mut sink: impl FnMut(&procfs::Mapping<'_>),
) -> Result<(), i32> {
    let mut kept = 0usize;
    // A line longer than the buffer (impossible for real paths, which are
    // at most PATH_MAX) is skipped whole, up to its newline, so the tail
    // of a hostile file name is never parsed as a line of its own.
    let mut skipping = false;
    while let Some(free) = buf.get_mut(kept..) {
        if free.is_empty() {
            kept = 0;
            skipping = true;
            continue;
        }
        let n = match sys::read(fd, free) {
            Ok(0) => break,
            Ok(n) => n,
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        };
        let mut filled = kept + n;
        if skipping {
            let Some(newline) = buf
                .get(..filled)
                .and_then(|b| b.iter().position(|&c| c == b'\n'))
            else {
                kept = 0;
                continue;
            };
            buf.copy_within(newline + 1..filled, 0);
            filled -= newline + 1;
            skipping = false;
        }
        let chunk = buf.get(..filled).unwrap_or(&[]);
        let consumed = procfs::parse_maps_chunk(chunk, |m| sink(&m));
        buf.copy_within(consumed..filled, 0);
        kept = filled - consumed;
    }
    Ok(())
}

/// Exclusive ownership of the engine for one round.
#[derive(Debug)]
pub struct RoundGuard<'e> {
    pub(crate) engine: &'e Engine,
    pub(crate) scratch: &'e mut Scratch,
    pub(crate) summary: RoundSummary,
    pub(crate) modules: &'e ModuleSet,
}

impl Drop for RoundGuard<'_> {
    fn drop(&mut self) {
        self.engine.initiator_tid.store(0, Ordering::Relaxed);
        self.engine.round_active.store(false, Ordering::Release);
    }
}

/// Starts a round, or returns `None` if one is already running.
///
/// # Async-signal safety
/// One compare-exchange; no waiting.
pub fn begin(engine: &Engine, trigger: Option<Trigger>) -> Option<RoundGuard<'_>> {
    start(engine, trigger, true)
}

/// Starts a round that is not a report (a floor round, the std adapter's
/// symbol warm-up): it takes no report sequence number (its summary says 0),
/// so the process's first report is still report #1. `None` if a round is
/// already running.
///
/// # Async-signal safety
/// As [`begin`].
pub fn begin_unnumbered(engine: &Engine) -> Option<RoundGuard<'_>> {
    start(engine, None, false)
}

/// [`begin`], numbered as a report or not.
///
/// # Async-signal safety
/// One compare-exchange; no waiting.
fn start(engine: &Engine, trigger: Option<Trigger>, numbered: bool) -> Option<RoundGuard<'_>> {
    engine
        .round_active
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .ok()?;
    // SAFETY: `round_active` was just won by this caller, and the scratch is only
    // accessed by the holder of that flag (it is released when the guard drops),
    // so this is the only reference to it.
    let scratch = unsafe { &mut *engine.scratch.get() };
    let modules = engine.module_set();
    let summary = RoundSummary {
        generation: engine
            .generation
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1),
        sequence: if numbered {
            engine.report_seq.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            0
        },
        pid: sys::getpid(),
        initiator_tid: sys::gettid(),
        started_unix_ns: sys::realtime_ns(),
        trigger,
        output_dropped: crate::write::DROPS.snapshot(),
        ..RoundSummary::default()
    };
    engine
        .initiator_tid
        .store(summary.initiator_tid, Ordering::Relaxed);
    Some(RoundGuard {
        engine,
        scratch,
        summary,
        modules,
    })
}

/// Wall-clock and initiator thread-CPU time of one phase of a round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTime {
    /// Monotonic wall-clock nanoseconds.
    pub wall_ns: u64,
    /// Thread-CPU nanoseconds of the initiator.
    pub cpu_ns: u64,
}

/// The phases of a round, in order .
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Listing `/proc/self/task` and arming a slot per thread.
    pub list: PhaseTime,
    /// Refreshing the readable-range table: the modules' code mappings by
    /// `PROCMAP_QUERY`, or the whole text of `/proc/self/maps` where the
    /// kernel has no such ioctl (0 in a floor round, which does not need it).
    pub maps: PhaseTime,
    /// Sending the capture signal to every thread.
    pub signal: PhaseTime,
    /// Waiting for the answers.
    pub gather: PhaseTime,
}

/// Times consecutive phases.
#[derive(Debug)]
pub(crate) struct PhaseClock {
    wall: u64,
    cpu: u64,
}

impl PhaseClock {
    /// Starts at `wall_ns` (monotonic, taken by the caller) and now.
    ///
    /// # Async-signal safety
    /// One `clock_gettime`.
    pub(crate) fn start(wall_ns: u64) -> PhaseClock {
        PhaseClock {
            wall: wall_ns,
            cpu: sys::thread_cpu_ns(),
        }
    }

    /// Ends the phase that ran since the last lap, into `phase`.
    ///
    /// # Async-signal safety
    /// Two `clock_gettime`.
    pub(crate) fn lap(&mut self, phase: &mut PhaseTime) {
        let (wall, cpu) = (sys::monotonic_ns(), sys::thread_cpu_ns());
        *phase = PhaseTime {
            wall_ns: wall.saturating_sub(self.wall),
            cpu_ns: cpu.saturating_sub(self.cpu),
        };
        (self.wall, self.cpu) = (wall, cpu);
    }
}

impl RoundGuard<'_> {
    /// The figures so far.
    ///
    /// # Async-signal safety
    /// Reads a field.
    pub fn summary(&self) -> &RoundSummary {
        &self.summary
    }

    /// Runs fan-out and gather. `own_registers` are the initiator's interrupted
    /// registers when it runs inside a signal handler (it then captures itself
    /// directly from them); otherwise it signals itself like any other thread.
    ///
    /// # Async-signal safety
    /// `open`/`getdents64`/`read`/`close` on `/proc`, `rt_tgsigqueueinfo`,
    /// `futex`, `clock_gettime`; memory prepared at setup; no allocation.
    pub fn capture(&mut self, own_registers: Option<&Registers>) {
        self.capture_flagged(own_registers, 0);
    }

    /// [`RoundGuard::capture`] with `flags` or-ed into every capture
    /// signal's value (0, or [`crate::floor`]'s no-walk bit).
    ///
    /// # Async-signal safety
    /// As [`RoundGuard::capture`].
    pub(crate) fn capture_flagged(&mut self, own_registers: Option<&Registers>, flags: u64) {
        let t0 = sys::monotonic_ns();
        let mut clock = PhaseClock::start(t0);
        self.reset_answers();
        self.list_and_arm();
        clock.lap(&mut self.summary.phases.list);
        self.refresh_ranges();
        clock.lap(&mut self.summary.phases.maps);
        let sent = self.signal_all(own_registers, flags);
        clock.lap(&mut self.summary.phases.signal);
        self.summary.fanout_ns = sys::monotonic_ns().saturating_sub(t0);
        self.gather(t0, sent, true);
        clock.lap(&mut self.summary.phases.gather);
        self.summary.capture_ns = sys::monotonic_ns().saturating_sub(t0);
        self.tally();
    }

    /// Starts counting answers afresh (before any thread is signalled).
    ///
    /// # Async-signal safety
    /// Atomic stores.
    pub(crate) fn reset_answers(&self) {
        AWAITED.store(u32::MAX, Ordering::SeqCst);
        self.engine.answered.store(0, Ordering::Release);
    }

    /// Sends the capture signal to every armed thread (the initiator, when
    /// it runs in a signal handler with `own_registers`, captures itself
    /// instead); `flags` are or-ed into the signal's value (0 for a capture,
    /// [`crate::floor`]'s bits for a floor round). Returns how many signals
    /// were sent.
    ///
    /// # Async-signal safety
    /// `rt_tgsigqueueinfo` per thread, a `/proc` read for a thread that did
    /// not answer last round; atomics on the slot table.
    pub(crate) fn signal_all(&mut self, own_registers: Option<&Registers>, flags: u64) -> u32 {
        let engine = self.engine;
        let generation = self.summary.generation;
        let ctx = CaptureContext {
            ranges: &engine.ranges,
            caches: &engine.caches,
            modules: self.modules,
            walk_stack: crate::floor::walks_stack(flags as usize),
        };
        let signal = engine.capture_signal;
        let mut sent = 0u32;
        for k in 0..self.scratch.used_len {
            let Some(&index) = self.scratch.used.get(k) else {
                break;
            };
            let index = index as usize;
            let tid = engine.slots.tid(index);
            // A crashed thread is unwound from its saved registers, not signalled.
            if crate::crash::capture_crashed_thread(ctx, engine, index, generation, tid) {
                continue;
            }
            if let (true, Some(regs)) = (tid == self.summary.initiator_tid, own_registers) {
                let cpu = sys::thread_cpu_ns();
                if let Some(writer) = engine.slots.claim(index, generation, tid) {
                    capture::capture_self(ctx, regs, writer, cpu, sys::AltStack::query());
                }
                continue;
            }
            let value = (u64::from(generation) << 32 | index as u64 | flags) as usize;
            if self.capture_signal_still_pending(tid, signal) {
                engine
                    .slots
                    .mark_not_signalled(index, generation, Phase::StillPending);
                continue;
            }
            match sys::send_signal_with_value(self.summary.pid, tid, signal, value) {
                Ok(()) => sent += 1,
                Err(_) => engine
                    .slots
                    .mark_not_signalled(index, generation, Phase::NotSignalled),
            }
        }
        sent
    }

    /// For a thread that did not answer last round: whether its capture signal
    /// from then is still pending (it blocks the signal). Such a thread is not
    /// sent another one.
    ///
    /// # Async-signal safety
    /// Reads one small `/proc` file into the preallocated buffer.
    fn capture_signal_still_pending(&mut self, tid: i32, signal: i32) -> bool {
        let scratch = &mut *self.scratch;
        let stale = scratch
            .unresponsive
            .get(..scratch.unresponsive_len)
            .unwrap_or(&[]);
        if !stale.contains(&tid) {
            return false;
        }
        let mut path = [0u8; 64];
        let mut w = crate::format::SliceWriter::new(&mut path);
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!("/proc/self/task/{tid}/status\0"));
        let len = w.as_str().len();
        let Ok(n) = sys::read_file(path.get(..len).unwrap_or(&[]), &mut scratch.maps) else {
            return false;
        };
        let pending =
            procfs::parse_status_pending(scratch.maps.get(..n).unwrap_or(&[])).unwrap_or(0);
        let bit = u32::try_from(signal - 1)
            .ok()
            .and_then(|b| 1u64.checked_shl(b))
            .unwrap_or(0);
        pending & bit != 0
    }

    /// Bytes of stack left to the calling thread (see
    /// [`capture::stack_left`]), re-reading the range table first if its
    /// stack is not in it yet (a thread created since the last round).
    ///
    /// # Async-signal safety
    /// As [`capture::stack_left`], plus `refresh_ranges` when needed.
    pub(crate) fn own_stack_left(&mut self) -> Option<u64> {
        capture::stack_left(&self.engine.ranges).or_else(|| {
            self.refresh_ranges();
            capture::stack_left(&self.engine.ranges)
        })
    }

    /// Ends a round that captured nothing and will write no report: its
    /// report number is given back, so reports stay numbered without gaps.
    ///
    /// # Async-signal safety
    /// One atomic; the guard's drop releases the round.
    pub(crate) fn cancel(self) {
        self.engine.report_seq.fetch_sub(1, Ordering::Relaxed);
    }

    /// Lists `/proc/self/task` and arms a slot per thread. If the listing
    /// fails (no descriptor free and none kept, no `/proc`), the reason is
    /// kept for the report and the initiator is armed alone: a report always
    /// shows at least the thread that wrote it.
    ///
    /// # Async-signal safety
    /// `fstat`/`lseek`/`getdents64` on the kept `/proc/self/task` descriptor
    /// (or `open`/`close` to reopen it), atomics on the slot table.
    pub(crate) fn list_and_arm(&mut self) {
        let engine = self.engine;
        let generation = self.summary.generation;
        let initiator = self.summary.initiator_tid;
        let scratch = &mut *self.scratch;
        scratch.used_len = 0;
        let mut cursor = 0usize;
        let mut listed = 0usize;
        let mut left_out = 0usize;
        let mut initiator_seen = false;
        let mut errno = 0;
        let (dents, used, used_len) =
            (&mut scratch.dents, &mut scratch.used, &mut scratch.used_len);
        let mut arm = |tid: i32, listed: &mut usize| {
            *listed += 1;
            // Find the next slot that may be armed (slots still being written
            // by a late writer of an earlier round are skipped).
            while cursor < engine.slots.capacity() {
                let index = cursor;
                cursor += 1;
                if engine.slots.arm(index, generation, tid) {
                    if let Some(u) = used.get_mut(*used_len) {
                        *u = index as u32;
                        *used_len += 1;
                    }
                    return;
                }
            }
            left_out += 1;
        };
        match scratch.proc.task_dir() {
            Err(e) => errno = e,
            Ok(dir) => loop {
                let n = match sys::getdents64_raw(dir, dents) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(libc::EINTR) => continue,
                    Err(e) => {
                        errno = e;
                        break;
                    }
                };
                procfs::for_each_dirent_number(dents.get(..n).unwrap_or(&[]), |tid| {
                    let Ok(tid) = i32::try_from(tid) else {
                        listed += 1;
                        return;
                    };
                    initiator_seen |= tid == initiator;
                    arm(tid, &mut listed);
                });
            },
        }
        let added = !initiator_seen && errno != 0;
        if added {
            arm(initiator, &mut listed);
        }
        self.summary.threads_listed = listed;
        self.summary.threads_armed = scratch.used_len;
        self.summary.threads_left_out = left_out;
        self.summary.task_list_errno = errno;
        self.summary.initiator_added = added;
    }

    /// Re-reads `/proc/self/maps` into the readable-range table. When the
    /// process has more readable mappings than the table holds, the file is
    /// read a second time and the table refilled by priority (code, then
    /// thread stacks, then named mappings, then the rest: see
    /// [`crate::ranges::CLASSES`]), so the stacks of the threads being
    /// captured are tracked whatever else the process maps.
    ///
    /// # Async-signal safety
    /// `fstat`/`lseek`/`read` on the kept `/proc/self/maps` descriptor (or
    /// `open`/`close` to reopen it) into the preallocated buffer; atomic stores.
    fn refresh_ranges(&mut self) {
        if self.engine.options.maps_query && self.refresh_code_ranges() {
            return;
        }
        self.refresh_ranges_from_text();
    }

    /// Where the kernel answers `PROCMAP_QUERY`: fills the table with the
    /// readable code mappings of the loaded modules only, found by walking
    /// each module's extent mapping by mapping (one ioctl each, a few per
    /// module: the thousands of thread stacks that lie between modules are
    /// never looked at; asking the kernel for the next *executable* mapping
    /// instead made it step over all of them, 50–70 µs at 64 threads), and
    /// turns on [`RangeTable::lookup`]'s queries for
    /// everything else (each capturing thread asks for its own stack once).
    /// Against reading the whole text of `/proc/self/maps`: at 64 threads
    /// 114 µs became a few µs; at 4096 threads (8192 mappings) 6 ms became
    /// well under one. Code outside every module (a JIT's) is then not
    /// taken for code by the stack scan and the frame-pointer walk (its
    /// frames were not unwindable by tables either). `false` (the table
    /// untouched) when the kernel refuses
    /// the first query, so the caller reads the text instead.
    ///
    /// [`RangeTable::lookup`]: crate::ranges::RangeTable::lookup
    ///
    /// # Async-signal safety
    /// `ioctl` calls on the kept descriptor; atomic stores.
    fn refresh_code_ranges(&mut self) -> bool {
        use crate::procfs::Mapping;
        let engine = self.engine;
        let Some(fd) = self.scratch.proc.query_fd() else {
            return false;
        };
        // Same modules as the last walk: the table's code ranges are kept if
        // the kernel still has each one, exactly, as readable code (one
        // query per range instead of a walk of every module's mappings).
        let set = core::ptr::from_ref(engine.module_set()) as usize;
        if self.scratch.proc.code_of_modules == set
            && engine.ranges.queries_kernel()
            && engine.ranges.dropped() == 0
        {
            let still = engine.ranges.each_range(|r| {
                let q = sys::procmap_query(fd, r.start, sys::MappingQuery::ReadableCovering);
                matches!(q, Ok(m) if m.start == r.start && m.end == r.end && m.executable)
            });
            if still {
                // The descriptor may be a new one (reopened in a forked child).
                engine.ranges.set_query_fd(fd, sys::main_stack_marker());
                self.summary.maps_errno = 0;
                self.summary.mappings_dropped = 0;
                return true;
            }
        }
        self.scratch.proc.code_of_modules = 0;
        let modules = &engine.module_set().modules;
        // Whether the kernel answers at all (else the text is read).
        let first_start = modules.first().map_or(0, |m| m.start);
        match sys::procmap_query(fd, first_start, sys::MappingQuery::AnyFromHere) {
            Ok(_) | Err(libc::ENOENT) => {}
            Err(e) => {
                if e == libc::ENOTTY || e == libc::EINVAL {
                    self.scratch.proc.query_unsupported = true;
                }
                return false;
            }
        }
        let mut writer = engine.ranges.writer();
        let mut errno = 0;
        // Bounded: a signal storm could make every call return EINTR.
        let mut calls_left = engine
            .ranges
            .capacity()
            .saturating_mul(2)
            .saturating_add(64);
        // Above this everything found is in the table (mappings come in
        // ascending order, and so do the modules).
        let mut from = 0u64;
        'modules: for module in modules.iter() {
            from = from.max(module.start);
            while from < module.end {
                let Some(left) = calls_left.checked_sub(1) else {
                    break 'modules;
                };
                calls_left = left;
                match sys::procmap_query(fd, from, sys::MappingQuery::AnyFromHere) {
                    // Only code inside this module; one that does not end
                    // above where the search began would loop forever.
                    Ok(m) if m.start >= module.end || m.end <= from => break,
                    Ok(m) => {
                        if m.readable && m.executable {
                            writer.add(&Mapping {
                                start: m.start.max(from),
                                end: m.end,
                                readable: true,
                                executable: true,
                                name: b"",
                            });
                        }
                        from = m.end;
                    }
                    Err(libc::ENOENT) => break 'modules,
                    Err(libc::EINTR) => {}
                    Err(e) => {
                        errno = e;
                        break 'modules;
                    }
                }
            }
        }
        writer.finish();
        if errno == 0 {
            self.scratch.proc.code_of_modules = set;
        }
        engine.ranges.set_query_fd(fd, sys::main_stack_marker());
        self.summary.maps_errno = errno;
        self.summary.mappings_dropped = engine.ranges.dropped();
        true
    }

    /// Reads the whole text of `/proc/self/maps` into the table (every
    /// readable mapping): where `PROCMAP_QUERY` is not available.
    ///
    /// # Async-signal safety
    /// As [`RoundGuard::refresh_ranges`].
    fn refresh_ranges_from_text(&mut self) {
        use crate::ranges::{CLASSES, Classifier, Priority};
        let engine = self.engine;
        engine.ranges.set_query_fd(-1, 0);
        let pinned = sys::approximate_stack_pointer();
        let scratch = &mut *self.scratch;
        let mut counts = [0usize; CLASSES];
        let mut errno = 0;
        {
            let mut writer = engine.ranges.writer();
            match scratch.proc.maps() {
                Err(e) => errno = e,
                Ok(fd) => {
                    let mut classes = Classifier::new(pinned);
                    let read = for_each_mapping(fd, &mut scratch.maps, |m| {
                        let class = classes.class(m);
                        if m.readable
                            && let Some(c) = counts.get_mut(class)
                        {
                            *c += 1;
                        }
                        writer.add(m);
                    });
                    if let Err(e) = read {
                        errno = e;
                    }
                }
            }
            writer.finish();
        }
        if errno == 0 && engine.ranges.dropped() > 0 {
            let mut plan = Priority::new(engine.ranges.capacity(), &counts);
            let mut writer = engine.ranges.writer();
            match scratch.proc.maps() {
                Err(e) => errno = e,
                Ok(fd) => {
                    let mut classes = Classifier::new(pinned);
                    let read = for_each_mapping(fd, &mut scratch.maps, |m| {
                        let class = classes.class(m);
                        if m.readable && plan.keep(class) {
                            writer.add(m);
                        } else {
                            writer.skip(m);
                        }
                    });
                    if let Err(e) = read {
                        errno = e;
                    }
                }
            }
            writer.finish();
        }
        self.summary.maps_errno = errno;
        self.summary.mappings_dropped = engine.ranges.dropped();
    }

    /// Waits for the signalled threads until all answered or the deadline.
    /// Every [`EXIT_CHECK_NS`] it looks for signalled threads that exited
    /// before handling the signal (they never answer) and gives up on them
    /// at once, so a thread exiting mid-round costs milliseconds, not the
    /// whole deadline.
    ///
    /// With `slots_answer` false (a floor round, whose handlers write no
    /// slot) only the count of answers is waited for.
    ///
    /// # Async-signal safety
    /// `futex` waits with a timeout, atomics, and `tgkill(tid, 0)` per
    /// thread still armed at each check.
    pub(crate) fn gather(&mut self, t0: u64, sent: u32, slots_answer: bool) {
        let engine = self.engine;
        let deadline = t0.saturating_add(engine.deadline_ns);
        let mut exited = 0u32;
        let mut next_exit_check = t0.saturating_add(EXIT_CHECK_NS);
        AWAITED.store(sent, Ordering::SeqCst);
        loop {
            let answered = engine.answered.load(Ordering::SeqCst);
            let now = sys::monotonic_ns();
            if answered.saturating_add(exited) >= sent && (!slots_answer || self.pending() == 0) {
                return;
            }
            if now >= deadline {
                return;
            }
            if now >= next_exit_check {
                next_exit_check = now.saturating_add(EXIT_CHECK_NS);
                let newly = self.give_up_on_exited_threads();
                if newly > 0 {
                    exited = exited.saturating_add(newly);
                    // Fewer answers to wait for; SeqCst pairs with
                    // `note_answer` as the first store does.
                    AWAITED.store(sent.saturating_sub(exited), Ordering::SeqCst);
                    continue;
                }
            }
            // Wake at least every 5 ms to re-check slots even if a wake-up was lost
            // to a stale writer's counter update.
            let wait = (deadline - now).min(EXIT_CHECK_NS);
            sys::futex_wait(&engine.answered, answered, wait);
        }
    }

    /// Abandons the slots of signalled threads that no longer exist; returns
    /// how many. A slot claimed meanwhile (its thread answered just before
    /// exiting) is left alone.
    ///
    /// # Async-signal safety
    /// Atomics and one `tgkill(tid, 0)` per slot still armed.
    fn give_up_on_exited_threads(&self) -> u32 {
        let generation = self.summary.generation;
        let mut gone = 0u32;
        for index in self.used_indices() {
            let slots = &self.engine.slots;
            if slots.phase(index, generation) == Phase::Armed
                && !sys::thread_exists(self.summary.pid, slots.tid(index))
                && slots.abandon(index, generation) == Phase::Abandoned
            {
                gone += 1;
            }
        }
        gone
    }

    /// Slots of this round still armed or being written.
    ///
    /// # Async-signal safety
    /// Atomic loads.
    fn pending(&self) -> usize {
        let generation = self.summary.generation;
        self.used_indices()
            .filter(|&i| {
                matches!(
                    self.engine.slots.phase(i, generation),
                    Phase::Armed | Phase::Writing
                )
            })
            .count()
    }

    /// Slot indices used this round, in thread-listing order.
    ///
    /// # Async-signal safety
    /// Reads the scratch list.
    pub fn used_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.scratch
            .used
            .iter()
            .take(self.scratch.used_len)
            .map(|&i| i as usize)
    }

    /// Gives up on threads that did not answer and computes the figures.
    ///
    /// # Async-signal safety
    /// Atomics, plus reading figures already gathered.
    fn tally(&mut self) {
        let generation = self.summary.generation;
        let (mut captured, mut unresponsive, mut not_signalled) = (0, 0, 0);
        let (mut max_pause, mut max_tid) = (0u64, 0i32);
        self.scratch.unresponsive_len = 0;
        for k in 0..self.scratch.used_len {
            let Some(&index) = self.scratch.used.get(k) else {
                break;
            };
            let index = index as usize;
            let phase = match self.engine.slots.phase(index, generation) {
                Phase::Armed => self.engine.slots.abandon(index, generation),
                p => p,
            };
            match phase {
                Phase::Done => {
                    captured += 1;
                    if let Some(v) = self.engine.slots.read(index, generation)
                        && v.summary.pause_ns > max_pause
                    {
                        max_pause = v.summary.pause_ns;
                        max_tid = v.tid;
                    }
                }
                Phase::NotSignalled => not_signalled += 1,
                _ => {
                    unresponsive += 1;
                    let tid = self.engine.slots.tid(index);
                    let scratch = &mut *self.scratch;
                    if let Some(entry) = scratch.unresponsive.get_mut(scratch.unresponsive_len) {
                        *entry = tid;
                        scratch.unresponsive_len += 1;
                    }
                }
            }
        }
        self.summary.threads_captured = captured;
        self.summary.threads_unresponsive = unresponsive;
        self.summary.threads_not_signalled = not_signalled;
        self.summary.max_pause_ns = max_pause;
        self.summary.max_pause_tid = max_tid;
        self.summary.coalesced_triggers = self.engine.triggers.take_coalesced();
    }
}
