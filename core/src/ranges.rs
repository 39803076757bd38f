//! The readable-memory table: which address ranges may be read without
//! faulting, refreshed from `/proc/self/maps` by the initiator at the start of
//! every round and consulted by every capturing thread.
//!
//! Entries are pairs of atomics (start with flag bits, end), so concurrent
//! readers need no lock; the initiator writes them before it signals any
//! thread, and the Release/Acquire on each slot's state orders the two.
//!
//! A late capture handler of the previous round (still unwinding when that
//! round's deadline passed) may look ranges up while the next round rewrites
//! the table, so the table is also a sequence lock: `version` is odd during a
//! rewrite, and a lookup that overlapped one answers nothing rather than a
//! range stitched from two tables (say the start of a new mapping with the end
//! of an old one), which could make a stack read fault. The loom model in
//! `core/tests/model_ranges.rs` found such stitched ranges before.
//!
//! # Async-signal safety
//! Atomic loads and stores only.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use crate::storage::{Carver, Store, bytes_for};
use alloc::vec::Vec;
// Under `--cfg loom` the table runs on loom's atomics (core/tests/model_ranges.rs).
#[cfg(not(loom))]
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};

use crate::procfs::Mapping;

const FLAG_EXECUTABLE: u64 = 1;
/// The main thread's `[stack]`: the kernel grows it on demand.
const FLAG_GROWS: u64 = 2;
const FLAG_MASK: u64 = 0xfff;

/// A readable range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First readable address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// Executable too.
    pub executable: bool,
    /// A stack the kernel extends downwards on demand (`[stack]`).
    pub grows_down: bool,
}

impl Range {
    /// Whether `[address, address + len)` lies inside.
    ///
    /// # Async-signal safety
    /// Pure comparison.
    pub fn contains(&self, address: u64, len: u64) -> bool {
        address >= self.start && address.checked_add(len).is_some_and(|e| e <= self.end)
    }
}

/// Fixed-capacity sorted table of readable ranges.
#[derive(Debug)]
pub struct RangeTable {
    entries: Store<[AtomicU64; 2]>,
    len: AtomicUsize,
    dropped: AtomicUsize,
    /// Sequence lock: odd while a writer rewrites the table.
    version: AtomicU64,
}

/// Writes a fresh table; entries must come in ascending order (as in
/// `/proc/self/maps`).
#[derive(Debug)]
pub struct RangeTableWriter<'t> {
    table: &'t RangeTable,
    len: usize,
    dropped: usize,
}

impl RangeTable {
    /// Allocates room for `capacity` ranges (setup only).
    pub fn new(capacity: usize) -> RangeTable {
        let entries: Vec<[AtomicU64; 2]> = (0..capacity)
            .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
            .collect();
        RangeTable {
            entries: entries.into(),
            len: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            version: AtomicU64::new(0),
        }
    }

    /// A table in static memory (setup only); `None` if `carver` is too small.
    pub(crate) fn new_in(carver: &mut Carver, capacity: usize) -> Option<RangeTable> {
        Some(RangeTable {
            entries: Store::Static(
                carver.slice(capacity, |_| [AtomicU64::new(0), AtomicU64::new(0)])?,
            ),
            len: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            version: AtomicU64::new(0),
        })
    }

    /// Static bytes [`RangeTable::new_in`] takes.
    pub(crate) const fn static_bytes(capacity: usize) -> usize {
        bytes_for::<[AtomicU64; 2]>(capacity)
    }

    /// Bytes used.
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.entries)
    }

    /// Starts rewriting the table (initiator only, before any thread is signalled).
    pub fn writer(&self) -> RangeTableWriter<'_> {
        // Begin the rewrite (odd version) before touching any entry.
        self.version.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        RangeTableWriter {
            table: self,
            len: 0,
            dropped: 0,
        }
    }

    /// Ranges that did not fit in the last refresh.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }

    /// # Async-signal safety
    /// Atomic loads.
    fn get(&self, i: usize) -> Option<Range> {
        let [s, e] = self.entries.get(i)?;
        let s = s.load(Ordering::Relaxed);
        Some(Range {
            start: s & !FLAG_MASK,
            end: e.load(Ordering::Relaxed),
            executable: s & FLAG_EXECUTABLE != 0,
            grows_down: s & FLAG_GROWS != 0,
        })
    }

    /// The readable range containing `address`; `None` also while (or if,
    /// during the search) the table is being rewritten.
    ///
    /// # Async-signal safety
    /// Binary search over atomics.
    pub fn find(&self, address: u64) -> Option<Range> {
        let before = self.version.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let found = self.search(address);
        fence(Ordering::Acquire);
        if self.version.load(Ordering::Relaxed) != before {
            return None;
        }
        found
    }

    fn search(&self, address: u64) -> Option<Range> {
        let len = self.len.load(Ordering::Acquire).min(self.entries.len());
        let (mut lo, mut hi) = (0usize, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let r = self.get(mid)?;
            if address < r.start {
                hi = mid;
            } else if address >= r.end {
                lo = mid + 1;
            } else {
                return Some(r);
            }
        }
        None
    }
}

impl RangeTableWriter<'_> {
    /// Adds a mapping if it is readable.
    pub fn add(&mut self, m: &Mapping<'_>) {
        if !m.readable || m.start & FLAG_MASK != 0 {
            return;
        }
        let Some([s, e]) = self.table.entries.get(self.len) else {
            self.dropped += 1;
            return;
        };
        let mut flags = 0;
        if m.executable {
            flags |= FLAG_EXECUTABLE;
        }
        if m.name == b"[stack]" {
            flags |= FLAG_GROWS;
        }
        s.store(m.start | flags, Ordering::Relaxed);
        e.store(m.end, Ordering::Relaxed);
        self.len += 1;
    }

    /// Publishes the new table.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for RangeTableWriter<'_> {
    /// Publishes what was written and ends the rewrite (even version), also
    /// if the writer is dropped without [`RangeTableWriter::finish`].
    fn drop(&mut self) {
        self.table.dropped.store(self.dropped, Ordering::Relaxed);
        self.table.len.store(self.len, Ordering::Relaxed);
        self.table.version.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn m(start: u64, end: u64, r: bool, name: &'static [u8]) -> Mapping<'static> {
        Mapping {
            start,
            end,
            readable: r,
            executable: false,
            name,
        }
    }

    #[test]
    fn find_and_capacity() {
        let t = RangeTable::new(2);
        let mut w = t.writer();
        w.add(&m(0x1000, 0x2000, true, b""));
        w.add(&m(0x2000, 0x3000, false, b""));
        w.add(&m(0x5000, 0x8000, true, b"[stack]"));
        w.add(&m(0x9000, 0xa000, true, b""));
        w.finish();
        assert_eq!(t.dropped(), 1);
        assert_eq!(t.find(0x1800).map(|r| r.start), Some(0x1000));
        assert!(t.find(0x2800).is_none());
        let s = t.find(0x7ff8).expect("stack");
        assert!(s.grows_down && s.contains(0x7ff8, 8) && !s.contains(0x7ffc, 8));
        assert!(t.find(0x9000).is_none());
    }
}
