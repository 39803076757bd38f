//! Model check of the readable-range table (`guru_core::ranges`) while the
//! next round's initiator rewrites it and a late capture handler of the
//! previous round still looks up its stack in it.
//!
//! A late writer (a thread still capturing when its round's deadline passed)
//! keeps reading the table while the next round refreshes it from
//! `/proc/self/maps`. Whatever `find` returns must be a range of the old
//! table, of the new one, or nothing — never a range stitched together from
//! both, which could make a stack read fault.
//!
//! Under `RUSTFLAGS="--cfg loom"` loom explores every interleaving (see
//! `docs/fuzzing.md`); in an ordinary `cargo test` the scenario runs many
//! times on real threads.
#![allow(clippy::unwrap_used)]

mod common;

use guru_core::procfs::Mapping;
use guru_core::ranges::{Range, RangeTable};

#[cfg(loom)]
use loom::{sync::Arc, thread};
#[cfg(not(loom))]
use std::{sync::Arc, thread};

fn mapping(start: u64, end: u64) -> Mapping<'static> {
    Mapping {
        start,
        end,
        readable: true,
        executable: false,
        name: b"",
    }
}

fn fill(table: &RangeTable, ranges: &[(u64, u64)]) {
    let mut w = table.writer();
    for &(s, e) in ranges {
        w.add(&mapping(s, e));
    }
    w.finish();
}

/// Round 1's table, round 2's table, and the address a late writer of round
/// 1 looks up (its stack, still mapped in both).
const OLD: &[(u64, u64)] = &[(0x10_000, 0x20_000)];
const NEW: &[(u64, u64)] = &[(0x4_000, 0x5_000), (0x18_000, 0x19_000)];
const PROBE: u64 = 0x18_800;

fn allowed(found: Option<Range>) -> bool {
    match found {
        None => true,
        Some(r) => OLD
            .iter()
            .chain(NEW)
            .any(|&(s, e)| (r.start, r.end) == (s, e) && s <= PROBE && PROBE < e),
    }
}

fn rewrite_while_reading() {
    let table = Arc::new(RangeTable::new(4));
    fill(&table, OLD);
    let t = table.clone();
    let late = thread::spawn(move || t.find(PROBE));
    fill(&table, NEW);
    let found = late.join().unwrap();
    assert!(allowed(found), "a stitched range: {found:?}");
    // After the rewrite the table answers from the new mappings only.
    assert_eq!(
        table.find(PROBE).map(|r| (r.start, r.end)),
        Some((0x18_000, 0x19_000))
    );
}

#[cfg(loom)]
#[test]
fn loom_rewrite_while_reading() {
    common::explore("rewrite_while_reading", rewrite_while_reading);
}

#[cfg(not(loom))]
#[test]
fn randomized_rewrite_while_reading() {
    for _ in 0..2_000 {
        rewrite_while_reading();
    }
}
