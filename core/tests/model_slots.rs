//! Model checks of the slot protocol (claim / publish / abandon / reuse) in
//! `guru_core::slots`.
//!
//! * Under `RUSTFLAGS="--cfg loom"` (run by `.ci/run`, see `docs/fuzzing.md`)
//!   the real `SlotTable` code runs on loom's atomics and loom explores every
//!   interleaving of the scenarios below (bounded preemptions), including the
//!   weak-memory outcomes of each Relaxed load; each scenario prints how many
//!   executions it explored.
//! * In an ordinary `cargo test` the same scenarios run as a randomized stress
//!   test on real threads (many rounds, random yields), so every CI run also
//!   exercises the protocol concurrently.
//!
//! The invariants, checked in every execution:
//! 1. exactly one of {the thread's claim, the initiator's abandon} wins;
//! 2. a published slot reads back whole: its tid, and frames all tagged with
//!    the reading round's generation and the claiming thread, count intact;
//! 3. a late writer of an old round never writes into a newer round: if the
//!    newer round armed the slot, the slot ends in that round's generation;
//! 4. a slot being written is never re-armed.
#![allow(clippy::unwrap_used)]

mod common;

use guru_core::arch::SyscallState;
use guru_core::slots::{CaptureSummary, Phase, SlotTable, StackEnd};

#[cfg(loom)]
use loom::{sync::Arc, thread};
#[cfg(not(loom))]
use std::{sync::Arc, thread};

const FRAMES: usize = 2;

fn tag(generation: u32, tid: i32, k: usize) -> u64 {
    (u64::from(generation) << 40) | ((tid as u64) << 8) | k as u64
}

fn summary(generation: u32) -> CaptureSummary {
    CaptureSummary {
        name: [b'w'; 16],
        end: StackEnd::Root,
        end_detail: 0,
        syscall: SyscallState::Running,
        pause_ns: u64::from(generation),
        cpu_ns: u64::from(generation),
        scanned_from: 0,
    }
}

/// What a capture handler does with a signal carrying `(generation, index)`.
fn handler(table: &SlotTable, generation: u32, index: usize, tid: i32) -> bool {
    let Some(mut w) = table.claim(index, generation, tid) else {
        return false;
    };
    for k in 0..FRAMES {
        assert!(w.push_frame(tag(generation, tid, k)));
    }
    w.publish(summary(generation));
    true
}

/// Invariant 2: whatever `read` returns is one whole capture of `generation`.
fn check_read(table: &SlotTable, index: usize, generation: u32) -> Option<i32> {
    let v = table.read(index, generation)?;
    let frames: Vec<u64> = v.frames().collect();
    let expected: Vec<u64> = (0..FRAMES).map(|k| tag(generation, v.tid, k)).collect();
    assert_eq!(frames, expected, "torn or stale frames");
    assert_eq!(v.summary.pause_ns, u64::from(generation), "torn summary");
    assert_eq!(v.summary.name, [b'w'; 16]);
    Some(v.tid)
}

fn yield_now() {
    thread::yield_now();
}

/// Scenario A: one thread's capture races the initiator's deadline.
fn claim_vs_abandon() {
    let table = Arc::new(SlotTable::new(1, FRAMES));
    assert!(table.arm(0, 1, 10));
    let t = table.clone();
    let h = thread::spawn(move || handler(&t, 1, 0, 10));
    let phase = table.abandon(0, 1);
    // Read before joining: only the slot's own Release/Acquire may order it.
    match phase {
        Phase::Done => assert_eq!(check_read(&table, 0, 1), Some(10)),
        Phase::Writing => {
            // The initiator reports "capture in progress"; a later look may
            // find it published, and then it must be whole.
            yield_now();
            if table.phase(0, 1) == Phase::Done {
                assert_eq!(check_read(&table, 0, 1), Some(10));
            }
        }
        _ => assert!(table.read(0, 1).is_none()),
    }
    let claimed = h.join().unwrap();
    // Invariant 1.
    assert_eq!(claimed, phase != Phase::Abandoned, "phase {phase:?}");
    if claimed {
        assert_eq!(check_read(&table, 0, 1), Some(10));
    } else {
        assert!(table.read(0, 1).is_none());
    }
}

/// Scenario B: a late writer of round 1 against round 2 reusing its slot.
/// Round 1 armed slot 0 for thread 10 and gave up on it; the thread's signal
/// arrives while the initiator re-arms slot 0 (for thread 20) in round 2,
/// signals it, and reads it at its deadline.
fn late_writer_vs_reuse() {
    let table = Arc::new(SlotTable::new(1, FRAMES));
    assert!(table.arm(0, 1, 10));
    let t1 = table.clone();
    let late = thread::spawn(move || handler(&t1, 1, 0, 10));
    // Round 1's deadline, then round 2.
    let p1 = table.abandon(0, 1);
    let armed2 = table.arm(0, 2, 20);
    let t2 = table.clone();
    let fresh = thread::spawn(move || armed2 && handler(&t2, 2, 0, 20));
    let p2 = table.abandon(0, 2);
    let late_claimed = late.join().unwrap();
    let fresh_claimed = fresh.join().unwrap();
    if armed2 {
        // Invariant 3: round 2 owns the slot from its arm on.
        assert_ne!(
            table.phase(0, 2),
            Phase::Free,
            "a late writer overwrote round 2"
        );
        assert_eq!(fresh_claimed, p2 != Phase::Abandoned);
        if fresh_claimed {
            assert_eq!(check_read(&table, 0, 2), Some(20));
        }
    } else {
        // Invariant 4: arm refused only because round 1's writer was busy.
        assert!(late_claimed, "arm refused a slot nobody was writing");
        assert!(!fresh_claimed);
    }
    if late_claimed && !armed2 {
        assert_eq!(check_read(&table, 0, 1), Some(10));
    }
    assert_eq!(late_claimed, p1 != Phase::Abandoned);
}

/// Scenario C: two threads hold signals for the same slot (tid reuse, or a
/// forged value): only the armed thread can claim it, exactly once.
fn two_claimers() {
    let table = Arc::new(SlotTable::new(1, FRAMES));
    assert!(table.arm(0, 3, 30));
    let (a, b) = (table.clone(), table.clone());
    let ha = thread::spawn(move || handler(&a, 3, 0, 30));
    let hb = thread::spawn(move || handler(&b, 3, 0, 31) || handler(&b, 2, 0, 30));
    let (ca, cb) = (ha.join().unwrap(), hb.join().unwrap());
    assert!(ca && !cb);
    assert_eq!(check_read(&table, 0, 3), Some(30));
}

/// Scenario D: a full round with two threads and a bounded gather loop, then
/// a second round on the same slots while round 1's stragglers may still run.
fn two_rounds() {
    let table = Arc::new(SlotTable::new(2, FRAMES));
    let mut handles = Vec::new();
    for (index, tid) in [(0usize, 40), (1usize, 41)] {
        assert!(table.arm(index, 1, tid));
        let t = table.clone();
        handles.push(thread::spawn(move || handler(&t, 1, index, tid)));
    }
    // Gather: a couple of polls, then the deadline.
    for _ in 0..2 {
        if (0..2).all(|i| table.phase(i, 1) == Phase::Done) {
            break;
        }
        yield_now();
    }
    let mut ended = [Phase::Free; 2];
    for (i, e) in ended.iter_mut().enumerate() {
        *e = table.abandon(i, 1);
        if *e == Phase::Done {
            assert!(check_read(&table, i, 1).is_some());
        }
    }
    // Round 2 re-arms both slots for new threads where it may.
    let armed: Vec<bool> = (0..2).map(|i| table.arm(i, 2, 50 + i as i32)).collect();
    for (i, &a) in armed.iter().enumerate() {
        if !a {
            assert_eq!(
                ended[i],
                Phase::Writing,
                "refused a slot that was not being written"
            );
        }
    }
    let claimed: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for i in 0..2 {
        assert_eq!(claimed[i], ended[i] != Phase::Abandoned);
        if armed[i] {
            assert_eq!(
                table.phase(i, 2),
                Phase::Armed,
                "round 2's slot {i} was overwritten"
            );
        } else {
            assert_eq!(check_read(&table, i, 1), Some(40 + i as i32));
        }
    }
}

#[cfg(loom)]
mod loom_models {
    use crate::common::explore;

    #[test]
    fn loom_claim_vs_abandon() {
        explore("claim_vs_abandon", super::claim_vs_abandon);
    }

    #[test]
    fn loom_late_writer_vs_reuse() {
        explore("late_writer_vs_reuse", super::late_writer_vs_reuse);
    }

    #[test]
    fn loom_two_claimers() {
        explore("two_claimers", super::two_claimers);
    }

    #[test]
    fn loom_two_rounds() {
        explore("two_rounds", super::two_rounds);
    }
}

#[cfg(not(loom))]
mod randomized {
    /// Each scenario many times on real threads: the OS scheduler (helped by
    /// the yields in the gather loop) supplies varied interleavings.
    fn repeat(f: fn()) {
        for _ in 0..2_000 {
            f();
        }
    }

    #[test]
    fn randomized_claim_vs_abandon() {
        repeat(super::claim_vs_abandon);
    }

    #[test]
    fn randomized_late_writer_vs_reuse() {
        repeat(super::late_writer_vs_reuse);
    }

    #[test]
    fn randomized_two_claimers() {
        repeat(super::two_claimers);
    }

    #[test]
    fn randomized_two_rounds() {
        repeat(super::two_rounds);
    }
}
