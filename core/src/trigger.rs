//! Trigger bookkeeping: a preallocated ring of the most recent triggers (who
//! sent which signal, when) and the count of triggers that arrived while a
//! round was already running ("coalesced").
//!
//! # Async-signal safety
//! Atomics only. Each ring entry carries a sequence stamp written last
//! (Release) and checked before and after reading, so a reader never reports a
//! half-written entry. A writer first claims its entry (compare-exchange to
//! `BUSY` from a stamp older than its own), so two handlers recording at
//! once (sequences `n` and `n + RECENT_TRIGGERS`) never mix their fields in
//! one entry: the loser leaves the entry alone (its trigger is still counted).
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

// Under `--cfg loom` the log runs on loom's atomics (core/tests/model_triggers.rs).
#[cfg(not(loom))]
use core::sync::atomic::{AtomicU64, Ordering, fence};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering, fence};

/// Stamp of an entry a writer is filling in (no sequence reaches it).
const BUSY: u64 = (1 << 63) - 1;

/// How many recent triggers are kept.
pub const RECENT_TRIGGERS: usize = if cfg!(loom) { 2 } else { 8 };

/// [`Trigger::code`] of a trigger without a signal that the std adapter's
/// file trigger recorded (reports word it "file trigger").
pub const CODE_FILE_TRIGGER: i32 = 1;
/// [`Trigger::code`] of a trigger without a signal that a call to
/// `guru::report` recorded (reports word it "a call to guru::report").
pub const CODE_CALL: i32 = 2;
/// [`Trigger::code`] of a trigger without a signal that the std adapter's
/// watchdog recorded for an automatic report (a missed heartbeat, a stalled
/// tokio worker; reports word it "the watchdog").
pub const CODE_WATCHDOG: i32 = 3;
/// [`Trigger::code`] of a trigger without a signal that a `guru dump`
/// client's request on the std adapter's dump socket recorded, with the
/// client's pid and uid as sender (reports word it
/// `guru dump from pid 12 (uid 1000)`).
pub const CODE_DUMP: i32 = 4;
/// [`Trigger::code`] of a trigger without a signal that the std adapter's
/// panic hook recorded (reports word it "a panic"). Codes are never reused.
/// Any other code of a trigger without a signal is "a request without a
/// signal".
pub const CODE_PANIC: i32 = 5;

/// One trigger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trigger {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub unix_ns: u64,
    /// Signal number (0 when triggered by a call, not a signal).
    pub signal: i32,
    /// `si_code` of the signal; without a signal, what asked
    /// ([`CODE_FILE_TRIGGER`], [`CODE_CALL`], [`CODE_WATCHDOG`],
    /// [`CODE_DUMP`], [`CODE_PANIC`], or 0).
    pub code: i32,
    /// Sender pid, from siginfo (0 if unknown).
    pub sender_pid: i32,
    /// Sender real uid, from siginfo.
    pub sender_uid: u32,
    /// Whether it started a report (false: coalesced into a running one).
    pub started_report: bool,
}

#[derive(Debug)]
struct Entry {
    stamp: AtomicU64,
    unix_ns: AtomicU64,
    signal_code: AtomicU64,
    sender: AtomicU64,
}

/// The trigger ring and counters. Hand-written rather than a
/// `heapless::HistoryBuf`: concurrent signal handlers write it through
/// `&self` with atomics, where `HistoryBuf` needs `&mut` (one writer).
#[derive(Debug)]
pub struct TriggerLog {
    next: AtomicU64,
    coalesced: AtomicU64,
    entries: [Entry; RECENT_TRIGGERS],
}

impl Default for TriggerLog {
    fn default() -> Self {
        Self::new()
    }
}

impl TriggerLog {
    /// An empty log.
    #[cfg(not(loom))]
    pub const fn new() -> TriggerLog {
        #[allow(clippy::declare_interior_mutable_const)] // a fresh copy per entry is the intent
        const E: Entry = Entry {
            stamp: AtomicU64::new(0),
            unix_ns: AtomicU64::new(0),
            signal_code: AtomicU64::new(0),
            sender: AtomicU64::new(0),
        };
        TriggerLog {
            next: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            entries: [E; RECENT_TRIGGERS],
        }
    }

    /// An empty log (loom's atomics cannot be made in a const context).
    #[cfg(loom)]
    pub fn new() -> TriggerLog {
        TriggerLog {
            next: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            entries: core::array::from_fn(|_| Entry {
                stamp: AtomicU64::new(0),
                unix_ns: AtomicU64::new(0),
                signal_code: AtomicU64::new(0),
                sender: AtomicU64::new(0),
            }),
        }
    }

    /// Records a trigger; counts it as coalesced if it did not start a report.
    pub fn record(&self, t: &Trigger) {
        if !t.started_report {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(e) = self.entries.get((n % RECENT_TRIGGERS as u64) as usize) else {
            return;
        };
        // Claim the entry unless another writer is filling it in or a newer
        // trigger already owns it. Acquire: the previous owner's field stores
        // happen before ours, so ours are the ones that stay.
        let current = e.stamp.load(Ordering::Relaxed);
        if current & !(1 << 63) > n
            || e.stamp
                .compare_exchange(current, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Readers that see any field below also see BUSY (or later) on their
        // second stamp load.
        fence(Ordering::Release);
        e.unix_ns.store(t.unix_ns, Ordering::Relaxed);
        let flags = u64::from(t.started_report);
        e.signal_code.store(
            ((t.signal as u32 as u64) << 32) | u64::from(t.code as u32),
            Ordering::Relaxed,
        );
        e.sender.store(
            ((t.sender_pid as u32 as u64) << 32) | u64::from(t.sender_uid),
            Ordering::Relaxed,
        );
        // The started flag rides in the stamp's top bit.
        e.stamp.store((n + 1) | (flags << 63), Ordering::Release);
    }

    /// Counts `n` triggers as coalesced without recording them in the ring
    /// (the std adapter's triggers that found its wake-up pipe full, or that
    /// its rate limit held back, are only counted).
    ///
    /// # Async-signal safety
    /// One atomic add.
    pub fn add_coalesced(&self, n: u64) {
        if n > 0 {
            self.coalesced.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Takes (and resets) the number of coalesced triggers.
    pub fn take_coalesced(&self) -> u64 {
        self.coalesced.swap(0, Ordering::Relaxed)
    }

    /// Total triggers recorded.
    pub fn total(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Calls `f` with the recent triggers, oldest first.
    pub fn for_each_recent(&self, mut f: impl FnMut(&Trigger)) {
        let end = self.next.load(Ordering::Acquire);
        let start = end.saturating_sub(RECENT_TRIGGERS as u64);
        for n in start..end {
            let Some(e) = self.entries.get((n % RECENT_TRIGGERS as u64) as usize) else {
                continue;
            };
            let before = e.stamp.load(Ordering::Acquire);
            if before & !(1 << 63) != n + 1 {
                continue;
            }
            let sc = e.signal_code.load(Ordering::Relaxed);
            let sender = e.sender.load(Ordering::Relaxed);
            let t = Trigger {
                unix_ns: e.unix_ns.load(Ordering::Relaxed),
                signal: (sc >> 32) as u32 as i32,
                code: sc as u32 as i32,
                sender_pid: (sender >> 32) as u32 as i32,
                sender_uid: sender as u32,
                started_report: before >> 63 == 1,
            };
            // The field loads above may not move past the re-check.
            fence(Ordering::Acquire);
            if e.stamp.load(Ordering::Relaxed) == before {
                f(&t);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn keeps_the_most_recent_and_counts_coalesced() {
        let log = TriggerLog::new();
        for i in 0..20 {
            log.record(&Trigger {
                unix_ns: i,
                signal: 12,
                code: 0,
                sender_pid: i as i32,
                sender_uid: 1000,
                started_report: i % 2 == 0,
            });
        }
        let mut seen = Vec::new();
        log.for_each_recent(|t| seen.push((t.sender_pid, t.started_report, t.sender_uid)));
        assert_eq!(seen.len(), RECENT_TRIGGERS);
        assert_eq!(seen.first(), Some(&(12, true, 1000)));
        assert_eq!(seen.last(), Some(&(19, false, 1000)));
        assert_eq!(log.take_coalesced(), 10);
        assert_eq!(log.take_coalesced(), 0);
    }
}
