//! The thread slot table: the preallocated ring of per-thread capture records,
//! reused round after round and tagged with each round's generation.
//!
//! # Protocol
//!
//! Each slot has one `state` word: `generation << 8 | phase`.
//!
//! 1. **Arm** (initiator): a slot whose phase is not `WRITING` gets the thread id
//!    (Relaxed) and then `state = (g, ARMED)` (Release). The initiator then
//!    signals the thread with `(g, index)` as the signal's value.
//! 2. **Claim** (the thread's handler): `CAS (g, ARMED) → (g, WRITING)`. Only a
//!    handler whose signal carries the current generation can succeed, so a late
//!    signal from an earlier round writes nothing.
//! 3. **Publish** (handler): fields are stored (Relaxed), then
//!    `state = (g, DONE)` (Release).
//! 4. **Abandon** (initiator, at the deadline): `CAS (g, ARMED) → (g, ABANDONED)`.
//!    If that fails because the slot is `WRITING`, its writer is still busy: the
//!    slot is reported as "capture still in progress" and is not re-armed by a
//!    later round until the writer has published.
//! 5. **Read** (initiator): `state == (g, DONE)` loaded with Acquire makes the
//!    fields visible.
//!
//! All data fields are atomics used with Relaxed ordering, ordered by the state
//! word; there is no `unsafe` in this module.
//!
//! # Async-signal safety
//! Every method is lock-free: atomic loads, stores and compare-exchanges only.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use crate::storage::{Carver, Store, bytes_for};
use alloc::vec::Vec;
// Under `--cfg loom` the slot protocol runs on loom's model-checked atomics
// (core/tests/model_slots.rs explores its interleavings exhaustively).
#[cfg(not(loom))]
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Phase of a slot (low 8 bits of its state word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Never used.
    Free = 0,
    /// Waiting for its thread to capture itself.
    Armed = 1,
    /// Its thread is writing.
    Writing = 2,
    /// Written and published.
    Done = 3,
    /// Given up at the deadline before its thread answered.
    Abandoned = 4,
    /// The thread could not be signalled (it had exited, or the queue was full).
    NotSignalled = 5,
    /// Not signalled again: an earlier round's capture signal is still pending
    /// for this thread (it blocks the signal), and queueing one per round would
    /// pile up real-time signals against the user's `RLIMIT_SIGPENDING`.
    StillPending = 6,
}

impl Phase {
    fn from_bits(bits: u64) -> Phase {
        match bits & 0xff {
            1 => Phase::Armed,
            2 => Phase::Writing,
            3 => Phase::Done,
            4 => Phase::Abandoned,
            5 => Phase::NotSignalled,
            6 => Phase::StillPending,
            _ => Phase::Free,
        }
    }
}

fn pack(generation: u32, phase: Phase) -> u64 {
    (u64::from(generation) << 8) | phase as u64
}

/// Splits a state word into (generation, phase).
pub fn unpack(state: u64) -> (u32, Phase) {
    ((state >> 8) as u32, Phase::from_bits(state))
}

/// Why a stack ends where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StackEnd {
    /// The unwinder reached the outermost frame.
    Root = 0,
    /// More frames than the slot holds.
    Truncated = 1,
    /// The stack could not be read further (address given in `end_detail`).
    UnreadableStack = 2,
    /// The unwinder found no way to continue (corrupt or unknown frame).
    UnwindFailed = 3,
    /// Not unwound: too little stack left below the interrupted stack pointer.
    StackNearlyExhausted = 4,
    /// Not unwound: the stack pointer is in no readable mapping.
    UnknownStack = 5,
    /// Not unwound: every unwinder cache stayed busy.
    NoUnwinderFree = 6,
    /// Unwinding would loop (neither pc nor sp advanced).
    DidNotAdvance = 7,
    /// A return address of zero ended the stack.
    NullReturnAddress = 8,
    /// Not unwound on purpose: a measuring round
    /// ([`crate::floor::capture_without_walk`]) whose handlers do all a
    /// capture handler does except walk the stack. Never in a report.
    NotWalked = 9,
}

impl StackEnd {
    fn from_u8(v: u8) -> StackEnd {
        match v {
            0 => StackEnd::Root,
            1 => StackEnd::Truncated,
            2 => StackEnd::UnreadableStack,
            4 => StackEnd::StackNearlyExhausted,
            5 => StackEnd::UnknownStack,
            6 => StackEnd::NoUnwinderFree,
            7 => StackEnd::DidNotAdvance,
            8 => StackEnd::NullReturnAddress,
            9 => StackEnd::NotWalked,
            _ => StackEnd::UnwindFailed,
        }
    }

    /// A short human description.
    pub fn describe(self) -> &'static str {
        match self {
            StackEnd::Root => "end of stack",
            StackEnd::Truncated => "stack truncated: more frames than the frame capacity",
            StackEnd::UnreadableStack => "stack ends: could not read stack memory",
            StackEnd::UnwindFailed => "stack ends: no unwind information for this frame",
            StackEnd::StackNearlyExhausted => "not unwound: stack nearly exhausted",
            StackEnd::UnknownStack => "not unwound: stack pointer outside any readable mapping",
            StackEnd::NoUnwinderFree => "not unwound: every unwinder cache was busy",
            StackEnd::DidNotAdvance => "stack ends: unwinding did not advance",
            StackEnd::NullReturnAddress => "end of stack (null return address)",
            StackEnd::NotWalked => "not unwound: a measuring round that skips the stack walk",
        }
    }
}

/// What the registers said about the thread when it was interrupted
/// (see [`crate::arch::SyscallState`]), packed for storage.
fn pack_syscall(s: crate::arch::SyscallState) -> u64 {
    match s {
        crate::arch::SyscallState::Running => 0,
        crate::arch::SyscallState::Interrupted => 1,
        crate::arch::SyscallState::InSyscall(nr) => 2 | (nr << 8),
    }
}

fn unpack_syscall(v: u64) -> crate::arch::SyscallState {
    match v & 0xff {
        1 => crate::arch::SyscallState::Interrupted,
        2 => crate::arch::SyscallState::InSyscall(v >> 8),
        _ => crate::arch::SyscallState::Running,
    }
}

/// One thread's record.
#[derive(Debug)]
pub struct Slot {
    state: AtomicU64,
    tid: AtomicI32,
    name: [AtomicU64; 2],
    frame_count: AtomicU32,
    end: AtomicU32,
    end_detail: AtomicU64,
    syscall: AtomicU64,
    pause_ns: AtomicU64,
    cpu_ns: AtomicU64,
    /// The thread's context record's snapshot (index + 1; 0: none).
    context: AtomicU32,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: AtomicU64::new(0),
            tid: AtomicI32::new(0),
            name: [AtomicU64::new(0), AtomicU64::new(0)],
            frame_count: AtomicU32::new(0),
            end: AtomicU32::new(0),
            end_detail: AtomicU64::new(0),
            syscall: AtomicU64::new(0),
            pause_ns: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
            context: AtomicU32::new(0),
        }
    }
}

/// The fixed-capacity table of slots and their frame storage. Hand-written
/// rather than heapless/arrayvec containers: its capacity is an install-time
/// option, and every thread's handler writes its own slot through `&self`
/// (atomics), which those `&mut` containers cannot offer.
#[derive(Debug)]
pub struct SlotTable {
    slots: Store<Slot>,
    frames: Store<AtomicU64>,
    frames_per_slot: usize,
}

/// Exclusive write access to a claimed slot, handed to the capturing handler.
#[derive(Debug)]
pub struct SlotWriter<'t> {
    table: &'t SlotTable,
    index: usize,
    generation: u32,
    frames: usize,
}

/// What a finished capture stores besides its frames.
#[derive(Debug, Clone, Copy)]
pub struct CaptureSummary {
    /// Thread name bytes (NUL-padded).
    pub name: [u8; 16],
    /// Why the stack ends.
    pub end: StackEnd,
    /// Extra detail for `end` (e.g. the unreadable address).
    pub end_detail: u64,
    /// System call state from the registers.
    pub syscall: crate::arch::SyscallState,
    /// Thread-CPU nanoseconds spent in the handler.
    pub pause_ns: u64,
    /// The thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) when its handler
    /// began: the CPU time it had used before this report; 0 if unknown. A
    /// crashed thread, which runs no capture handler, has its clock read
    /// for it by the crash helper through its tid
    /// ([`crate::sys::thread_cpu_ns_of`]) while it waits in its fault
    /// handler.
    pub cpu_ns: u64,
    /// Index of the first frame found by scanning the stack for a return
    /// address (its callee had no unwind information); 0 if none was.
    pub scanned_from: u16,
}

impl SlotTable {
    /// Allocates a table (setup only).
    pub fn new(slots: usize, frames_per_slot: usize) -> SlotTable {
        let slots: Vec<Slot> = (0..slots).map(|_| Slot::new()).collect();
        let total = slots.len().saturating_mul(frames_per_slot);
        let frames: Vec<AtomicU64> = (0..total).map(|_| AtomicU64::new(0)).collect();
        SlotTable {
            slots: slots.into(),
            frames: frames.into(),
            frames_per_slot,
        }
    }

    /// A table in static memory (setup only); `None` if `carver` is too small.
    pub(crate) fn new_in(
        carver: &mut Carver,
        slots: usize,
        frames_per_slot: usize,
    ) -> Option<SlotTable> {
        let total = slots.checked_mul(frames_per_slot)?;
        Some(SlotTable {
            slots: Store::Static(carver.slice(slots, |_| Slot::new())?),
            frames: Store::Static(carver.slice(total, |_| AtomicU64::new(0))?),
            frames_per_slot,
        })
    }

    /// Static bytes [`SlotTable::new_in`] takes.
    pub(crate) const fn static_bytes(slots: usize, frames_per_slot: usize) -> usize {
        bytes_for::<Slot>(slots).saturating_add(bytes_for::<AtomicU64>(
            slots.saturating_mul(frames_per_slot),
        ))
    }

    /// Number of slots.
    ///
    /// # Async-signal safety
    /// Reads a field.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Frames each slot can hold.
    ///
    /// # Async-signal safety
    /// Reads a field.
    pub fn frames_per_slot(&self) -> usize {
        self.frames_per_slot
    }

    /// Bytes this table occupies.
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.slots) + core::mem::size_of_val(&*self.frames)
    }

    /// Arms slot `index` for `tid` in round `generation`. Returns false when the
    /// slot is still being written by an earlier round's late writer.
    ///
    /// # Async-signal safety
    /// Atomics only.
    pub fn arm(&self, index: usize, generation: u32, tid: i32) -> bool {
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let current = slot.state.load(Ordering::Acquire);
        if unpack(current).1 == Phase::Writing {
            return false;
        }
        slot.tid.store(tid, Ordering::Relaxed);
        slot.frame_count.store(0, Ordering::Relaxed);
        slot.context.store(0, Ordering::Relaxed);
        // The CAS (not a plain store) keeps a writer that claimed the slot between
        // our load and now from being overwritten.
        slot.state
            .compare_exchange(
                current,
                pack(generation, Phase::Armed),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Marks an armed slot as not signalled (the thread was gone or the signal
    /// queue full).
    ///
    /// # Async-signal safety
    /// Atomics only.
    pub fn mark_not_signalled(&self, index: usize, generation: u32, why: Phase) {
        if let Some(slot) = self.slots.get(index) {
            let _ = slot.state.compare_exchange(
                pack(generation, Phase::Armed),
                pack(generation, why),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// Claims slot `index` for the calling thread `tid` in round `generation`.
    ///
    /// # Async-signal safety
    /// Atomics only.
    pub fn claim(&self, index: usize, generation: u32, tid: i32) -> Option<SlotWriter<'_>> {
        let slot = self.slots.get(index)?;
        if slot.state.load(Ordering::Acquire) != pack(generation, Phase::Armed)
            || slot.tid.load(Ordering::Relaxed) != tid
        {
            return None;
        }
        slot.state
            .compare_exchange(
                pack(generation, Phase::Armed),
                pack(generation, Phase::Writing),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .ok()?;
        Some(SlotWriter {
            table: self,
            index,
            generation,
            frames: 0,
        })
    }

    /// Gives up on an armed slot at the deadline. Returns the phase the slot is
    /// in afterwards (`Abandoned`, or `Writing`/`Done` if its thread got there
    /// first).
    ///
    /// # Async-signal safety
    /// Atomics only.
    pub fn abandon(&self, index: usize, generation: u32) -> Phase {
        let Some(slot) = self.slots.get(index) else {
            return Phase::Free;
        };
        match slot.state.compare_exchange(
            pack(generation, Phase::Armed),
            pack(generation, Phase::Abandoned),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Phase::Abandoned,
            Err(now) => {
                let (g, phase) = unpack(now);
                if g == generation { phase } else { Phase::Free }
            }
        }
    }

    /// The phase of slot `index` in round `generation` (`Free` if the slot
    /// belongs to another round).
    ///
    /// # Async-signal safety
    /// One atomic load.
    pub fn phase(&self, index: usize, generation: u32) -> Phase {
        let Some(slot) = self.slots.get(index) else {
            return Phase::Free;
        };
        let (g, phase) = unpack(slot.state.load(Ordering::Acquire));
        if g == generation { phase } else { Phase::Free }
    }

    /// The thread id slot `index` was armed for.
    ///
    /// # Async-signal safety
    /// One atomic load.
    pub fn tid(&self, index: usize) -> i32 {
        self.slots
            .get(index)
            .map_or(0, |s| s.tid.load(Ordering::Relaxed))
    }

    /// Whether some slot is being written by thread `tid` right now.
    ///
    /// # Async-signal safety
    /// Atomic loads (O(slots)).
    pub fn is_writing(&self, tid: i32) -> bool {
        self.slots.iter().any(|s| {
            unpack(s.state.load(Ordering::Acquire)).1 == Phase::Writing
                && s.tid.load(Ordering::Relaxed) == tid
        })
    }

    /// Marks every slot free. Only for a freshly forked child, where the
    /// threads that were writing no longer exist.
    ///
    /// # Async-signal safety
    /// Atomic stores only.
    pub fn reset_all(&self) {
        for s in self.slots.iter() {
            s.state.store(0, Ordering::Release);
        }
    }

    /// Reads a published slot. `None` unless the slot is `Done` in `generation`.
    ///
    /// # Async-signal safety
    /// Atomic loads only.
    pub fn read(&self, index: usize, generation: u32) -> Option<SlotView<'_>> {
        if self.phase(index, generation) != Phase::Done {
            return None;
        }
        let slot = self.slots.get(index)?;
        let mut name = [0u8; 16];
        let (a, b) = name.split_at_mut(8);
        a.copy_from_slice(&slot.name[0].load(Ordering::Relaxed).to_le_bytes());
        b.copy_from_slice(&slot.name[1].load(Ordering::Relaxed).to_le_bytes());
        let count = (slot.frame_count.load(Ordering::Relaxed) as usize).min(self.frames_per_slot);
        // The end reason in the low byte, the first scanned frame above it.
        let end = slot.end.load(Ordering::Relaxed);
        let start = index.checked_mul(self.frames_per_slot)?;
        let frames = self.frames.get(start..start.checked_add(count)?)?;
        Some(SlotView {
            tid: slot.tid.load(Ordering::Relaxed),
            context: slot.context.load(Ordering::Relaxed),
            generation,
            summary: CaptureSummary {
                name,
                end: StackEnd::from_u8(end as u8),
                scanned_from: (end >> 8) as u16,
                end_detail: slot.end_detail.load(Ordering::Relaxed),
                syscall: unpack_syscall(slot.syscall.load(Ordering::Relaxed)),
                pause_ns: slot.pause_ns.load(Ordering::Relaxed),
                cpu_ns: slot.cpu_ns.load(Ordering::Relaxed),
            },
            frames,
        })
    }
}

impl SlotWriter<'_> {
    /// Appends a frame address; returns false when the slot is full.
    ///
    /// # Async-signal safety
    /// One relaxed atomic store.
    pub fn push_frame(&mut self, address: u64) -> bool {
        if self.frames >= self.table.frames_per_slot {
            return false;
        }
        let Some(at) = self
            .index
            .checked_mul(self.table.frames_per_slot)
            .and_then(|b| b.checked_add(self.frames))
        else {
            return false;
        };
        let Some(cell) = self.table.frames.get(at) else {
            return false;
        };
        cell.store(address, Ordering::Relaxed);
        self.frames += 1;
        true
    }

    /// Frames written so far.
    ///
    /// # Async-signal safety
    /// Reads a field.
    pub fn frame_count(&self) -> usize {
        self.frames
    }

    /// The round this slot is written for.
    ///
    /// # Async-signal safety
    /// Reads a field.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Names the thread's context snapshot (what
    /// [`ContextTable::snapshot_own`](crate::context::ContextTable::snapshot_own)
    /// or `snapshot_stopped` returned), published with the slot.
    ///
    /// # Async-signal safety
    /// One relaxed atomic store.
    pub fn set_context(&mut self, context: u32) {
        if let Some(slot) = self.table.slots.get(self.index) {
            slot.context.store(context, Ordering::Relaxed);
        }
    }

    /// Stores the summary and publishes the slot (Release).
    ///
    /// # Async-signal safety
    /// Atomic stores only.
    pub fn publish(self, summary: CaptureSummary) {
        let Some(slot) = self.table.slots.get(self.index) else {
            return;
        };
        let (a, b) = summary.name.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        slot.name[0].store(word(a), Ordering::Relaxed);
        slot.name[1].store(word(b), Ordering::Relaxed);
        slot.frame_count
            .store(self.frames as u32, Ordering::Relaxed);
        slot.end.store(
            u32::from(summary.scanned_from) << 8 | summary.end as u32,
            Ordering::Relaxed,
        );
        slot.end_detail.store(summary.end_detail, Ordering::Relaxed);
        slot.syscall
            .store(pack_syscall(summary.syscall), Ordering::Relaxed);
        slot.pause_ns.store(summary.pause_ns, Ordering::Relaxed);
        slot.cpu_ns.store(summary.cpu_ns, Ordering::Relaxed);
        slot.state
            .store(pack(self.generation, Phase::Done), Ordering::Release);
    }
}

/// A published slot, read back.
#[derive(Debug)]
pub struct SlotView<'t> {
    /// Thread id.
    pub tid: i32,
    /// The thread's context snapshot, for
    /// [`ContextTable::read`](crate::context::ContextTable::read) (0: none).
    pub context: u32,
    /// The round it was captured in.
    pub generation: u32,
    /// Name, end reason, state, pause.
    pub summary: CaptureSummary,
    frames: &'t [AtomicU64],
}

impl SlotView<'_> {
    /// The captured frame addresses, innermost first. The first is the
    /// interrupted pc; the others are return addresses.
    ///
    /// # Async-signal safety
    /// Relaxed atomic loads.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.frames.iter().map(|f| f.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::arch::SyscallState;

    fn summary() -> CaptureSummary {
        CaptureSummary {
            name: *b"worker\0\0\0\0\0\0\0\0\0\0",
            end: StackEnd::Root,
            end_detail: 0,
            syscall: SyscallState::InSyscall(202),
            pause_ns: 1234,
            cpu_ns: 5678,
            scanned_from: 3,
        }
    }

    #[test]
    fn arm_claim_publish_read() {
        let t = SlotTable::new(2, 4);
        assert!(t.arm(0, 7, 100));
        let mut w = t.claim(0, 7, 100).expect("claim");
        for a in 1..=5 {
            let _ = w.push_frame(a);
        }
        assert_eq!(w.frame_count(), 4);
        w.publish(summary());
        let v = t.read(0, 7).expect("done");
        assert_eq!(v.tid, 100);
        assert_eq!(v.frames().collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(v.summary.syscall, SyscallState::InSyscall(202));
        assert_eq!(&v.summary.name[..6], b"worker");
        assert_eq!(v.summary.scanned_from, 3);
        assert_eq!(v.summary.end, StackEnd::Root);
        assert_eq!((v.summary.pause_ns, v.summary.cpu_ns), (1234, 5678));
    }

    #[test]
    fn stale_round_writes_nothing() {
        let t = SlotTable::new(1, 4);
        assert!(t.arm(0, 1, 100));
        assert_eq!(t.abandon(0, 1), Phase::Abandoned);
        assert!(t.arm(0, 2, 100));
        // A late signal from round 1 arrives now.
        assert!(t.claim(0, 1, 100).is_none());
        // Wrong thread for the right round.
        assert!(t.claim(0, 2, 101).is_none());
        assert!(t.claim(0, 2, 100).is_some());
    }

    #[test]
    fn writing_slot_is_not_reused() {
        let t = SlotTable::new(1, 4);
        assert!(t.arm(0, 1, 100));
        let w = t.claim(0, 1, 100).expect("claim");
        assert_eq!(t.abandon(0, 1), Phase::Writing);
        assert!(
            !t.arm(0, 2, 200),
            "a slot being written must not be re-armed"
        );
        w.publish(summary());
        assert!(t.read(0, 1).is_some());
        assert!(t.arm(0, 2, 200));
    }
}
