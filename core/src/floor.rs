//! The floor: what a round costs when the threads do nothing but answer.
//!
//! A capture round is bounded from below by the machine: one signal to
//! every thread and back (the kernel builds a signal frame, saves and
//! restores the FPU state, schedules the thread, runs the handler, returns
//! through `rt_sigreturn`), and, when threads are busy, the scheduler's
//! rotation. [`round`] measures that bound in the same process, at the same
//! moment as a capture: a round built exactly like one — the same
//! [`RoundGuard`](crate::round::RoundGuard), the same `/proc/self/task`
//! listing and slot arming, the same capture signal sent the same way, the
//! same gather (the last answer wakes the initiator by futex) — whose
//! handler only checks the signal and answers: no unwinding, no slot write,
//! no `/proc/self/maps`. What a capture costs above it is guru's own work.
//!
//! The bench (`examples/src/bin/bench.rs`) runs floor rounds between capture
//! rounds on its fixture processes and prints capture / floor per row.
//!
//! Not part of the API (hidden from the docs): a measuring tool.
//!
//! # Limits
//!
//! - A floor round takes the round flag like a capture round: a report
//!   requested meanwhile is coalesced into the next one, exactly as during a
//!   capture. It writes no report and gives its report number back.
//! - Its handlers write no slot, so the gather waits for the count of
//!   answers alone: a thread that answers and then exits within the same
//!   round is counted twice (answered, and gone at the exit check), which
//!   can end that round before the last answer. Rounds on threads that stay
//!   up (the bench's fixtures) are exact.
//! - A floor round does not learn *which* threads did not answer (only how
//!   many), so it does not add them to the list of threads whose capture
//!   signal is still pending: a thread that blocks the signal gets one more
//!   queued from the next capture round, which then lists it (at most one
//!   extra queued signal per floor round; capture rounds alone queue none).
//! - [`FloorKind::AnswerAndYield`] adds the `sched_yield` a capture handler
//!   makes after answering (see `capture_signal_handler` in the crate root):
//!   the floor of guru's protocol on a machine with more runnable threads
//!   than CPUs. [`FloorKind::Answer`] is the bare floor: the signal and the
//!   answer only.
//!
//! # The handler's floor
//!
//! [`capture_without_walk`] is the floor of one thread's pause: a capture
//! round (slots, range table, everything) whose handlers do all a capture
//! handler does — read the thread-CPU clock, look up their stack (the
//! kernel's `PROCMAP_QUERY` when the table does not hold it), read the
//! instruction bytes around the interrupted pc, read the thread's name,
//! publish the slot, answer, yield if the thread was running — except walk
//! the stack (each thread shows its interrupted pc alone, its stack end
//! [`StackEnd::NotWalked`](crate::StackEnd::NotWalked)). Its pauses are what
//! the machine charges for the rest; a capture's pauses above them are the
//! stack walk's.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use core::sync::atomic::Ordering;

use crate::round::{self, PhaseClock, RoundSummary};
use crate::slots::Phase;
use crate::{Engine, Error, RoundGuard, sys};

/// Set in a capture signal's value (low word, above any slot index: those
/// are below 2^20) when it belongs to a floor round.
const FLOOR_BIT: u64 = 1 << 31;
/// With [`FLOOR_BIT`]: the handler yields after answering.
const YIELD_BIT: u64 = 1 << 30;
/// Without [`FLOOR_BIT`]: a capture whose handler does not walk the stack
/// ([`capture_without_walk`]).
const NO_WALK_BIT: u64 = 1 << 29;

/// What a floor round's handler does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorKind {
    /// Checks the signal (`SI_QUEUE` from this process, this round) and
    /// answers.
    Answer,
    /// As `Answer`, then `sched_yield` (as a capture handler does).
    AnswerAndYield,
}

/// Runs one floor round (see the module docs) from normal context and
/// returns its figures: `threads_captured` counts the answers, `capture_ns`
/// is the whole round, `fanout_ns` its listing and signalling.
///
/// [`Error::RoundInProgress`] when a round is running (nothing is counted
/// as coalesced: no report was asked for).
///
/// # Async-signal safety
/// As [`RoundGuard::capture`] without the `/proc/self/maps` read.
pub fn round(kind: FloorKind) -> Result<RoundSummary, Error> {
    let engine = crate::engine().ok_or(Error::NotInstalled)?;
    // No report comes of it: it takes no report number.
    let mut round = round::begin_unnumbered(engine).ok_or(Error::RoundInProgress)?;
    round.floor(kind);
    Ok(*round.summary())
}

/// Runs a capture round whose handlers do all a capture handler does except
/// walk the stack (see the module docs) and hands it to `f`: every captured
/// thread holds its interrupted pc alone, its pause what the rest of the
/// handler cost. Takes no report number and records no trigger, like
/// [`crate::capture_unnumbered`].
///
/// [`Error::RoundInProgress`] when a round is running.
///
/// Not for signal handlers if `f` allocates.
pub fn capture_without_walk<R>(
    f: impl FnOnce(&crate::CapturedRound<'_, '_>) -> R,
) -> Result<R, Error> {
    crate::capture_unnumbered_flagged(NO_WALK_BIT, f)
}

impl RoundGuard<'_> {
    /// The floor round: list and arm, signal with the floor bits, gather
    /// the answers, then abandon the slots (nothing was written to them).
    ///
    /// # Async-signal safety
    /// As [`RoundGuard::capture`] without the `/proc/self/maps` read.
    fn floor(&mut self, kind: FloorKind) {
        let t0 = sys::monotonic_ns();
        let mut clock = PhaseClock::start(t0);
        self.reset_answers();
        self.list_and_arm();
        clock.lap(&mut self.summary.phases.list);
        let flags = match kind {
            FloorKind::Answer => FLOOR_BIT,
            FloorKind::AnswerAndYield => FLOOR_BIT | YIELD_BIT,
        };
        let sent = self.signal_all(None, flags);
        clock.lap(&mut self.summary.phases.signal);
        self.summary.fanout_ns = sys::monotonic_ns().saturating_sub(t0);
        self.gather(t0, sent, false);
        clock.lap(&mut self.summary.phases.gather);
        self.summary.capture_ns = sys::monotonic_ns().saturating_sub(t0);
        let answered = self.engine.answered.load(Ordering::Acquire) as usize;
        let generation = self.summary.generation;
        let mut not_signalled = 0;
        for index in self.used_indices() {
            match self.engine.slots.phase(index, generation) {
                Phase::Armed => {
                    self.engine.slots.abandon(index, generation);
                }
                Phase::NotSignalled | Phase::StillPending => not_signalled += 1,
                _ => {}
            }
        }
        self.summary.threads_captured = answered.min(sent as usize);
        self.summary.threads_unresponsive = (sent as usize).saturating_sub(answered);
        self.summary.threads_not_signalled = not_signalled;
    }
}

/// Whether a capture signal's value belongs to a floor round.
///
/// # Async-signal safety
/// Arithmetic.
#[inline(always)]
pub(crate) fn is_floor(value: usize) -> bool {
    value as u64 & FLOOR_BIT != 0
}

/// The slot index in a capture signal's value (its low word without
/// [`NO_WALK_BIT`]; slot indices are below 2^20).
///
/// # Async-signal safety
/// Arithmetic.
#[inline(always)]
pub(crate) fn slot_index(value: usize) -> usize {
    (value as u64 & 0xffff_ffff & !NO_WALK_BIT) as usize
}

/// Whether a capture signal's value (or a round's flags) asks the handler
/// to walk the stack: all but [`capture_without_walk`]'s.
///
/// # Async-signal safety
/// Arithmetic.
#[inline(always)]
pub(crate) fn walks_stack(value: usize) -> bool {
    value as u64 & NO_WALK_BIT == 0
}

/// A floor round's handler: checks the signal as a capture handler does
/// (`SI_QUEUE` from this process, the current round) and answers; with
/// [`FloorKind::AnswerAndYield`] it then yields as a capture handler does.
///
/// # Async-signal safety
/// Atomics (`getpid` once per process), one `futex(FUTEX_WAKE)` (the last answer), and with
/// the yield bit `gettid` and `sched_yield`.
pub(crate) fn answer(engine: &Engine, si: &sys::SigInfo) {
    if si.code != libc::SI_QUEUE || !crate::hot::is_own_pid(si.pid) {
        return;
    }
    let generation = (si.value as u64 >> 32) as u32;
    if engine.generation.load(Ordering::Acquire) != generation {
        return;
    }
    round::note_answer(engine);
    if si.value as u64 & YIELD_BIT != 0
        && engine.initiator_tid.load(Ordering::Relaxed) != sys::gettid()
    {
        sys::sched_yield();
    }
}
