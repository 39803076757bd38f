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
//! Where the kernel answers `PROCMAP_QUERY` (Linux 6.11 and later) the
//! table holds only the code mappings (a few per module, found with one
//! ioctl each instead of formatting and parsing every line of the file), and
//! [`RangeTable::lookup`] asks the kernel for any other address on the spot:
//! a capturing thread looks up its own stack once, as it is at that moment
//! (see `RoundGuard::refresh_ranges`).
//!
//! # Async-signal safety
//! Atomic loads and stores only; [`RangeTable::lookup`] adds one `ioctl`.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use crate::storage::{Carver, Store, bytes_for};
use alloc::vec::Vec;
// Under `--cfg loom` the table runs on loom's atomics (core/tests/model_ranges.rs).
#[cfg(not(loom))]
use core::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(loom)]
use loom::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering, fence};

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
    /// A `/proc/self/maps` descriptor that answers `PROCMAP_QUERY` when
    /// the table holds code mappings only; -1 when it holds every readable
    /// mapping (read from the file's text).
    query_fd: AtomicI32,
    /// An address at the top of the main thread's `[stack]`
    /// ([`crate::sys::main_stack_marker`]): a queried mapping containing it
    /// grows down.
    main_stack_marker: AtomicU64,
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
            query_fd: AtomicI32::new(-1),
            main_stack_marker: AtomicU64::new(0),
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
            query_fd: AtomicI32::new(-1),
            main_stack_marker: AtomicU64::new(0),
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

    /// How many ranges the table holds at most.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The ranges the table holds now (a copy, in ascending order), to
    /// check them against the kernel; empty while it is being rewritten.
    ///
    /// # Async-signal safety
    /// Atomic loads.
    pub fn each_range(&self, mut f: impl FnMut(Range) -> bool) -> bool {
        let before = self.version.load(Ordering::Acquire);
        if before & 1 == 1 {
            return false;
        }
        let len = self.len.load(Ordering::Acquire).min(self.entries.len());
        for i in 0..len {
            match self.get(i) {
                Some(r) if f(r) => {}
                _ => return false,
            }
        }
        fence(Ordering::Acquire);
        self.version.load(Ordering::Relaxed) == before
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

    /// Makes [`RangeTable::lookup`] ask the kernel through `fd` (a
    /// `/proc/self/maps` descriptor that stays open while any handler may
    /// use it) for addresses the table does not hold; -1 turns that off (the
    /// table then holds every readable mapping). Set by the initiator before
    /// it signals any thread.
    ///
    /// # Async-signal safety
    /// Atomic stores.
    pub fn set_query_fd(&self, fd: i32, main_stack_marker: u64) {
        self.main_stack_marker
            .store(main_stack_marker, Ordering::Relaxed);
        self.query_fd.store(fd, Ordering::Release);
    }

    /// Whether the table holds code mappings only and other addresses are
    /// asked of the kernel.
    pub fn queries_kernel(&self) -> bool {
        self.query_fd.load(Ordering::Acquire) >= 0
    }

    /// The readable range containing `address`: from the table, or, when
    /// the table holds code mappings only, from the kernel (`PROCMAP_QUERY`:
    /// the mapping as it is now). For code checks use [`RangeTable::find`],
    /// which never makes a system call (code is always in the table).
    ///
    /// # Async-signal safety
    /// Atomic loads and at most one `ioctl`.
    pub fn lookup(&self, address: u64) -> Option<Range> {
        if let Some(found) = self.find(address) {
            return Some(found);
        }
        #[cfg(not(loom))]
        {
            let fd = self.query_fd.load(Ordering::Acquire);
            if fd < 0 {
                return None;
            }
            let m =
                crate::sys::procmap_query(fd, address, crate::sys::MappingQuery::ReadableCovering)
                    .ok()?;
            if m.start & FLAG_MASK != 0 {
                return None;
            }
            let marker = self.main_stack_marker.load(Ordering::Relaxed);
            Some(Range {
                start: m.start,
                end: m.end,
                executable: m.executable,
                grows_down: marker != 0 && m.start <= marker && marker < m.end,
            })
        }
        #[cfg(loom)]
        None
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

    /// Counts a readable mapping left out on purpose (a lower-priority one
    /// while the table is refilled by [`Priority`]): it shows in
    /// [`RangeTable::dropped`] like one that did not fit.
    pub fn skip(&mut self, m: &Mapping<'_>) {
        if m.readable {
            self.dropped += 1;
        }
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

/// Priority classes of readable mappings, most important first: what the
/// table keeps when the process has more mappings than the table has room.
///
/// 0. **code**: executable mappings (syscall detection, stack-scan
///    candidates, PLT stubs); few, and every thread needs them;
/// 1. **stacks**: the main thread's `[stack]`, a mapping that starts right
///    where an anonymous `PROT_NONE` mapping ends (the guard page glibc and
///    musl put below every thread stack, and Rust below each thread's
///    alternate signal stack), and the mapping holding the initiator's own
///    stack pointer;
/// 2. **named** mappings: files (a module's GOT for PLT stubs) and kernel
///    pseudo-mappings;
/// 3. everything else (anonymous data: heaps, arenas, buffers).
///
/// Within a class the lowest addresses win. A stack that still does not fit
/// (more thread stacks than the table holds) or that has no guard page (a
/// stack the application allocated itself) is not lost: its thread probes
/// its own stack bounds with `process_vm_readv` (see
/// [`crate::capture::capture_self`]).
pub const CLASSES: usize = 4;

/// Classifies the mappings of one `/proc/self/maps` pass, in file order.
#[derive(Debug, Clone, Copy)]
pub struct Classifier {
    prev_end: u64,
    prev_guard: bool,
    pinned: u64,
}

impl Classifier {
    /// A classifier for one pass; `pinned` is an address whose mapping is a
    /// stack whatever it looks like (the initiator's stack pointer).
    ///
    /// # Async-signal safety
    /// Constructs a value.
    pub fn new(pinned: u64) -> Classifier {
        Classifier {
            prev_end: 0,
            prev_guard: false,
            pinned,
        }
    }

    /// The class of `m` (see [`CLASSES`]); call it for every mapping, in
    /// order, readable or not.
    ///
    /// # Async-signal safety
    /// Comparisons only.
    pub fn class(&mut self, m: &Mapping<'_>) -> usize {
        let after_guard = self.prev_guard && self.prev_end == m.start;
        self.prev_end = m.end;
        self.prev_guard = !m.readable && !m.executable && m.name.is_empty();
        if m.executable {
            0
        } else if m.name == b"[stack]"
            || (after_guard && m.name.is_empty())
            || (m.start <= self.pinned && self.pinned < m.end)
        {
            1
        } else if !m.name.is_empty() {
            2
        } else {
            3
        }
    }
}

/// Which mappings a refill keeps: every mapping of the classes that fit
/// whole, then the first ones of the class that fits only in part.
#[derive(Debug, Clone, Copy)]
pub struct Priority {
    whole: usize,
    partial_room: usize,
}

impl Priority {
    /// The plan for a table of `capacity` given how many readable mappings
    /// of each class the first pass counted.
    ///
    /// # Async-signal safety
    /// Arithmetic only.
    pub fn new(capacity: usize, counts: &[usize; CLASSES]) -> Priority {
        let mut room = capacity;
        let mut whole = 0;
        for &count in counts {
            if count > room {
                break;
            }
            room -= count;
            whole += 1;
        }
        Priority {
            whole,
            partial_room: room,
        }
    }

    /// Whether a readable mapping of `class` is kept (counts it against the
    /// partial class's room).
    ///
    /// # Async-signal safety
    /// Arithmetic only.
    pub fn keep(&mut self, class: usize) -> bool {
        if class < self.whole {
            return true;
        }
        if class == self.whole && self.partial_room > 0 {
            self.partial_room -= 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    extern crate std;
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

    /// A `/proc/self/maps` descriptor if this kernel answers
    /// `PROCMAP_QUERY` on it; `None` (the caller says SKIPPED) otherwise.
    fn maps_query_fd() -> Option<i32> {
        if !crate::sys::maps_query_available() {
            return None;
        }
        let fd = crate::sys::open_readonly(b"/proc/self/maps\0", false).ok()?;
        let raw = fd.raw();
        core::mem::forget(fd);
        Some(raw)
    }

    #[test]
    fn lookup_asks_the_kernel_for_what_the_table_does_not_hold() {
        let Some(fd) = maps_query_fd() else {
            std::eprintln!("SKIPPED: this kernel has no PROCMAP_QUERY (Linux 6.11 and later)");
            return;
        };
        let t = RangeTable::new(4);
        let on_stack = 0u64;
        let sp = core::ptr::addr_of!(on_stack) as u64;
        // Without a descriptor an empty table knows nothing.
        assert!(t.lookup(sp).is_none());
        t.set_query_fd(fd, crate::sys::main_stack_marker());
        let stack = t.lookup(sp).expect("the test thread's stack");
        assert!(stack.contains(sp, 8) && !stack.executable, "{stack:?}");
        // Code is reported executable; `find` never asks the kernel.
        let code =
            lookup_asks_the_kernel_for_what_the_table_does_not_hold as *const () as usize as u64;
        let text = t.lookup(code).expect("this test's code");
        assert!(text.executable && text.contains(code, 1), "{text:?}");
        assert!(t.find(code).is_none());
        // Unmapped memory is nothing (the zero page is never mapped).
        assert!(t.lookup(16).is_none());
        // The main thread's stack grows down; a spawned thread's does not.
        let main_marker = crate::sys::main_stack_marker();
        assert!(main_marker != 0);
        assert!(t.lookup(main_marker).expect("[stack]").grows_down);
        assert!(!stack.grows_down || std::thread::current().name() == Some("main"));
        t.set_query_fd(-1, 0);
        assert!(t.lookup(sp).is_none());
    }

    #[test]
    fn code_walk_by_queries_matches_the_text() {
        // Every readable executable mapping the text lists is found by
        // walking mapping by mapping with PROCMAP_QUERY.
        let Some(fd) = maps_query_fd() else {
            std::eprintln!("SKIPPED: this kernel has no PROCMAP_QUERY (Linux 6.11 and later)");
            return;
        };
        let text = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut from_text = std::vec::Vec::new();
        for line in text.lines() {
            let m = crate::procfs::parse_maps_line(line.as_bytes()).unwrap();
            if m.readable && m.executable {
                from_text.push((m.start, m.end));
            }
        }
        let mut queried = std::vec::Vec::new();
        let mut from = 0u64;
        while let Ok(m) = crate::sys::procmap_query(fd, from, crate::sys::MappingQuery::AnyFromHere)
        {
            assert!(m.end > from);
            if m.readable && m.executable {
                queried.push((m.start, m.end));
            }
            from = m.end;
        }
        // Mappings may come and go between the two reads (other tests'
        // threads); code of the loaded libraries does not.
        for code in &from_text {
            assert!(
                queried.contains(code),
                "{code:x?} missing from {queried:x?}"
            );
        }
    }

    #[test]
    fn code_then_stacks_after_guards_are_kept_first() {
        let mut c = Classifier::new(0x50_0000);
        let x = |start, end, name| Mapping {
            start,
            end,
            readable: true,
            executable: true,
            name,
        };
        assert_eq!(c.class(&m(0x1000, 0x2000, true, b"")), 3);
        assert_eq!(c.class(&m(0x2000, 0x3000, false, b"")), 3);
        // A thread stack: right after an anonymous PROT_NONE guard.
        assert_eq!(c.class(&m(0x3000, 0x9000, true, b"")), 1);
        // Not adjacent to a guard: plain data.
        assert_eq!(c.class(&m(0xa000, 0xb000, true, b"")), 3);
        assert_eq!(c.class(&x(0xb000, 0xc000, b"/lib/libc.so.6")), 0);
        assert_eq!(c.class(&m(0xc000, 0xd000, true, b"/lib/libc.so.6")), 2);
        assert_eq!(c.class(&m(0x4f_0000, 0x51_0000, true, b"")), 1);
        assert_eq!(c.class(&m(0x60_0000, 0x61_0000, true, b"[stack]")), 1);

        let mut p = Priority::new(5, &[2, 2, 3, 100]);
        let kept: Vec<bool> = [0, 1, 2, 2, 2, 3, 0, 1]
            .iter()
            .map(|&class| p.keep(class))
            .collect();
        assert_eq!(kept, [true, true, true, false, false, false, true, true]);
        let mut everything = Priority::new(10, &[1, 1, 1, 1]);
        assert!((0..CLASSES).all(|class| everything.keep(class)));
    }
}
