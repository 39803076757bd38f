//! Thread context: what each thread is working on — labels, the tracing
//! spans it has entered and its most recent breadcrumbs — shown under the
//! thread's header in every report.
//!
//! ```text
//! ------ Thread 4242 "worker-3" (in syscall read; paused 3.1 µs) ------
//!   labels: request="GET /users/42" tenant="acme"
//!   spans: http_request{method=GET path=/users/42} > db_query{table=users}
//!   breadcrumbs (oldest first, 3 older dropped): -1.204 s accepted conn 17 | -0.002 s query sent
//! ```
//!
//! # The record
//!
//! A thread that sets a label, enters a span or leaves a breadcrumb gets a
//! fixed-size [`Record`] on its first use ([`ThreadContext::current`]): taken
//! from the engine's pool of free records, or — after [`crate::install`] —
//! allocated then (normal context; never in a handler). Threads that never
//! use it have none. The pool holds [`ContextOptions::records`] records
//! (default 1024); a thread that finds it full records nothing (every call
//! is then a no-op) and the report says nothing for it. After
//! [`crate::install_static`] all records are carved from the arena at
//! install ([`Options::static_bytes`](crate::Options::static_bytes) counts
//! them; [`crate::Options::SMALLEST`] has none).
//!
//! A record is ~7 KiB: the live part (labels, spans, breadcrumbs) and the
//! snapshot its capture handler copies it into. Capacities are the
//! constants below; [`ContextOptions`] lowers them at install (shorter
//! reports; memory stays that of the constants). Text longer than its
//! capacity is cut at a character boundary and ends with
//! [`TRUNCATION_MARKER`] (`…`); nothing is rejected. Labels or spans beyond
//! their count are not kept but counted (the report says how many).
//! Breadcrumbs beyond their count push out the oldest, which are counted as
//! dropped.
//!
//! # Protocol (sequence counter)
//!
//! Only its own thread writes the live part, through [`ThreadContext`]
//! (which checks on every call that its thread still owns the record). Each
//! write makes the record's sequence counter odd, changes the data, and
//! makes it even again, with compiler fences between (the reader is the
//! same thread's signal handler, which interrupts the writer: a compiler
//! fence is the ordering it needs). User code (`Display`) runs before the
//! counter turns odd: the text is formatted into a stack buffer first, so
//! the odd window is a copy of at most a few hundred bytes.
//!
//! The thread's capture handler finds the record by its tid in an
//! open-addressed table (no thread-local storage in `no_std`), and copies the
//! live part into the record's snapshot if the counter is even; if it is odd
//! (the handler interrupted a write) the snapshot says "being updated"
//! instead: a torn value is never shown. The snapshot is taken at most once
//! per round (its state word holds the round's generation), so nobody
//! writes it while the reporter reads it; the thread's slot names the
//! record ([`crate::SlotView::context`]), and the reader checks generation
//! and tid before using it.
//!
//! # Async-signal safety
//! The handler path ([`ContextTable::snapshot_own`]) is atomics, bounded
//! loops and copies of fixed-size data; the write path (normal context)
//! never allocates after the thread's first use.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use arrayvec::ArrayVec;
use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::marker::PhantomData;
use core::sync::atomic::{
    AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, compiler_fence,
};
use heapless::{HistoryBuf, String};

use crate::storage::{Carver, Store, bytes_for};
use crate::sys;

/// Labels a thread can have set at once.
pub const MAX_LABELS: usize = 8;
/// Bytes of a label's value.
pub const MAX_VALUE_BYTES: usize = 64;
/// Spans a thread can have entered at once (innermost ones beyond are counted).
pub const MAX_SPANS: usize = 8;
/// Bytes of a span's name and fields together.
pub const MAX_SPAN_BYTES: usize = 128;
/// Breadcrumbs kept per thread (older ones are counted as dropped).
pub const MAX_BREADCRUMBS: usize = 16;
/// Bytes of one breadcrumb's text.
pub const MAX_BREADCRUMB_BYTES: usize = 96;
/// Ends text cut at its capacity.
pub const TRUNCATION_MARKER: &str = "…";
/// In a span's text: before each field (`name FIELD fname VALUE fvalue ...`).
pub const FIELD_SEPARATOR: char = '\u{1f}';
/// In a span's text: between a field's name and its value.
pub const VALUE_SEPARATOR: char = '\u{1e}';

/// Capacities of thread context, fixed at install (part of
/// [`crate::Options`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextOptions {
    /// Threads that can hold a record at once (default 1024; 0 turns thread
    /// context off). Records are made on each thread's first use (after
    /// [`crate::install_static`]: all at install, in the arena).
    pub records: usize,
    /// Labels kept per thread (≤ [`MAX_LABELS`], default 8).
    pub labels: usize,
    /// Bytes of a label value (8..= [`MAX_VALUE_BYTES`], default 64).
    pub value_bytes: usize,
    /// Spans kept per thread (≤ [`MAX_SPANS`], default 8).
    pub spans: usize,
    /// Bytes of a span's text (8..= [`MAX_SPAN_BYTES`], default 128).
    pub span_bytes: usize,
    /// Breadcrumbs shown per thread (≤ [`MAX_BREADCRUMBS`], default 16).
    pub breadcrumbs: usize,
    /// Bytes of a breadcrumb (8..= [`MAX_BREADCRUMB_BYTES`], default 96).
    pub breadcrumb_bytes: usize,
}

impl ContextOptions {
    /// The defaults: 1024 records, every capacity at its maximum.
    pub const DEFAULT: ContextOptions = ContextOptions {
        records: 1024,
        labels: MAX_LABELS,
        value_bytes: MAX_VALUE_BYTES,
        spans: MAX_SPANS,
        span_bytes: MAX_SPAN_BYTES,
        breadcrumbs: MAX_BREADCRUMBS,
        breadcrumb_bytes: MAX_BREADCRUMB_BYTES,
    };

    /// No thread context (no records, no table).
    pub const OFF: ContextOptions = ContextOptions {
        records: 0,
        ..ContextOptions::DEFAULT
    };

    /// These options with room for `records` threads.
    pub const fn with_records(self, records: usize) -> ContextOptions {
        ContextOptions { records, ..self }
    }

    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.records > 1 << 20 {
            return Err("context.records must be 0..=1048576");
        }
        if self.labels > MAX_LABELS || self.spans > MAX_SPANS || self.breadcrumbs > MAX_BREADCRUMBS
        {
            return Err(
                "context.labels, spans and breadcrumbs must not exceed MAX_LABELS, MAX_SPANS, MAX_BREADCRUMBS",
            );
        }
        let bytes = |n: usize, max: usize| (8..=max).contains(&n);
        if !bytes(self.value_bytes, MAX_VALUE_BYTES)
            || !bytes(self.span_bytes, MAX_SPAN_BYTES)
            || !bytes(self.breadcrumb_bytes, MAX_BREADCRUMB_BYTES)
        {
            return Err(
                "context.value_bytes, span_bytes and breadcrumb_bytes must be 8..= their MAX_ constant",
            );
        }
        Ok(())
    }

    /// Slots of the tid table (a power of two, at least twice `records`).
    const fn index_len(&self) -> usize {
        if self.records == 0 {
            0
        } else {
            (self.records.saturating_mul(2)).next_power_of_two()
        }
    }

    /// Static bytes the context part of the engine takes after
    /// [`crate::install_static`].
    pub(crate) const fn static_bytes(&self) -> usize {
        bytes_for::<Entry>(self.index_len())
            .saturating_add(bytes_for::<AtomicPtr<Record>>(self.records))
            .saturating_add(bytes_for::<Record>(self.records))
    }
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions::DEFAULT
    }
}

/// A `core::fmt::Write` into a fixed string that cuts what does not fit at
/// `limit` bytes (at a character boundary) and ends it with
/// [`TRUNCATION_MARKER`]; it never fails. With `strip_separators`, the
/// span-text separators in the written text become `?`.
///
/// # Async-signal safety
/// Copies bytes; no allocation.
#[derive(Debug)]
pub struct Truncating<'a, const N: usize> {
    buf: &'a mut String<N>,
    limit: usize,
    truncated: bool,
    strip_separators: bool,
}

impl<'a, const N: usize> Truncating<'a, N> {
    /// A writer appending to `buf`, at most `limit` (and `N`) bytes in all.
    pub fn new(buf: &'a mut String<N>, limit: usize) -> Self {
        Truncating {
            buf,
            limit: limit.min(N),
            truncated: false,
            strip_separators: false,
        }
    }

    /// Replaces [`FIELD_SEPARATOR`] and [`VALUE_SEPARATOR`] by `?` in what is
    /// written from now on (while `on`).
    pub fn set_strip_separators(&mut self, on: bool) {
        self.strip_separators = on;
    }

    /// Whether something was cut.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    #[inline]
    fn push(&mut self, s: &str) {
        if self.truncated {
            return;
        }
        if self.buf.len().saturating_add(s.len()) <= self.limit {
            let _ = self.buf.push_str(s);
            return;
        }
        let room = self
            .limit
            .saturating_sub(self.buf.len())
            .saturating_sub(TRUNCATION_MARKER.len());
        let mut cut = room.min(s.len());
        while cut > 0 && !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let _ = self.buf.push_str(s.get(..cut).unwrap_or(""));
        while self.buf.len().saturating_add(TRUNCATION_MARKER.len()) > self.limit {
            if self.buf.pop().is_none() {
                break;
            }
        }
        let _ = self.buf.push_str(TRUNCATION_MARKER);
        self.truncated = true;
    }
}

impl<const N: usize> Write for Truncating<'_, N> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.strip_separators {
            self.push(s);
            return Ok(());
        }
        let mut first = true;
        for part in s.split([FIELD_SEPARATOR, VALUE_SEPARATOR]) {
            if !first {
                self.push("?");
            }
            first = false;
            self.push(part);
        }
        Ok(())
    }
}

/// A label: a static key and its value.
#[derive(Debug, Clone)]
pub struct Label {
    /// The key.
    pub key: &'static str,
    /// The value (cut at its capacity, ending in [`TRUNCATION_MARKER`]).
    pub value: String<MAX_VALUE_BYTES>,
    id: u32,
}

/// An entered span: its name and fields as written by the tracing layer
/// (`name`, then [`FIELD_SEPARATOR`] `field` [`VALUE_SEPARATOR`] `value`
/// for each field).
#[derive(Debug, Clone)]
struct SpanEntry {
    text: String<MAX_SPAN_BYTES>,
    id: u64,
}

/// A breadcrumb and when it was left.
#[derive(Debug, Clone)]
struct Crumb {
    monotonic_ns: u64,
    text: String<MAX_BREADCRUMB_BYTES>,
}

/// The data of a record (live part and snapshot have one each).
#[derive(Debug)]
struct Data {
    labels: ArrayVec<Label, MAX_LABELS>,
    labels_not_kept: u32,
    spans: ArrayVec<SpanEntry, MAX_SPANS>,
    spans_not_kept: u32,
    crumbs: HistoryBuf<Crumb, MAX_BREADCRUMBS>,
    crumbs_total: u64,
    next_label: u32,
}

impl Data {
    const fn new() -> Data {
        Data {
            labels: ArrayVec::new_const(),
            labels_not_kept: 0,
            spans: ArrayVec::new_const(),
            spans_not_kept: 0,
            crumbs: HistoryBuf::new(),
            crumbs_total: 0,
            next_label: 0,
        }
    }

    /// # Async-signal safety
    /// Copies fixed-size data (element by element: no large stack temporary).
    fn copy_from(&mut self, other: &Data) {
        self.labels.clear();
        for l in other.labels.iter() {
            let _ = self.labels.try_push(l.clone());
        }
        self.labels_not_kept = other.labels_not_kept;
        self.spans.clear();
        for s in other.spans.iter() {
            let _ = self.spans.try_push(s.clone());
        }
        self.spans_not_kept = other.spans_not_kept;
        self.crumbs.clear();
        for c in other.crumbs.oldest_ordered() {
            self.crumbs.write(c.clone());
        }
        self.crumbs_total = other.crumbs_total;
        self.next_label = other.next_label;
    }

    fn clear(&mut self) {
        self.labels.clear();
        self.labels_not_kept = 0;
        self.spans.clear();
        self.spans_not_kept = 0;
        self.crumbs.clear();
        self.crumbs_total = 0;
    }
}

const SNAP_EMPTY: u64 = 0;
const SNAP_WRITING: u64 = 1;
const SNAP_DONE: u64 = 2;

fn snap_pack(generation: u32, phase: u64) -> u64 {
    (u64::from(generation) << 8) | phase
}

/// One thread's context record (see the module docs).
#[derive(Debug)]
pub struct Record {
    /// The tid of the thread that owns it (0: free).
    owner: AtomicI32,
    /// Odd while the owner writes `live`.
    seq: AtomicU32,
    live: UnsafeCell<Data>,
    /// `generation << 8 | SNAP_*` of `snap`.
    snap_state: AtomicU64,
    snap_tid: AtomicI32,
    snap_being_updated: AtomicU32,
    snap_at_ns: AtomicU64,
    snap: UnsafeCell<Data>,
}

// SAFETY: `live` is written only by the owner thread (checked on every
// write) and read by that thread's own signal handler or, through the
// `unsafe` [`ContextTable::snapshot_stopped`], while the owner is stopped;
// `snap` is written at most once per round generation, before the slot that
// names it is published (Release), and read only after that publication is
// seen (Acquire) while the round is held. Everything else is atomic.
unsafe impl Sync for Record {}
// SAFETY: as above; nothing in a record is tied to the thread that made it.
unsafe impl Send for Record {}

impl Record {
    const fn new() -> Record {
        Record {
            owner: AtomicI32::new(0),
            seq: AtomicU32::new(0),
            live: UnsafeCell::new(Data::new()),
            snap_state: AtomicU64::new(SNAP_EMPTY),
            snap_tid: AtomicI32::new(0),
            snap_being_updated: AtomicU32::new(0),
            snap_at_ns: AtomicU64::new(0),
            snap: UnsafeCell::new(Data::new()),
        }
    }

    /// Changes the live data under the sequence counter. The caller is the
    /// owner thread; `f` runs no user code.
    #[inline]
    fn write<R>(&self, f: impl FnOnce(&mut Data) -> R) -> R {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1) | 1, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        // SAFETY: only the owner thread writes `live` (the caller checked
        // ownership) and `f` runs no user code, so no other reference to it
        // exists during `f`; the owner's signal handler, which may interrupt
        // here, sees the odd counter and does not read it.
        let r = f(unsafe { &mut *self.live.get() });
        compiler_fence(Ordering::SeqCst);
        self.seq.store((s | 1).wrapping_add(1), Ordering::Release);
        r
    }

    /// Copies `live` into `snap` for round `generation`, once per round.
    ///
    /// # Async-signal safety
    /// Atomics and a bounded copy.
    ///
    /// # Safety
    /// The owner of the record is the calling thread (in its signal handler),
    /// or it is stopped and its writes happen-before this call.
    unsafe fn snapshot(&self, tid: i32, generation: u32) -> bool {
        let current = self.snap_state.load(Ordering::Acquire);
        if current >> 8 == u64::from(generation) && current & 0xff != SNAP_EMPTY {
            return false;
        }
        if self
            .snap_state
            .compare_exchange(
                current,
                snap_pack(generation, SNAP_WRITING),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        let before = self.seq.load(Ordering::Acquire);
        compiler_fence(Ordering::SeqCst);
        // SAFETY: `snap` is written only by the holder of its WRITING state,
        // which the CAS above gave us for this round.
        let snap = unsafe { &mut *self.snap.get() };
        let mut being_updated = before & 1 == 1;
        if being_updated {
            snap.clear();
        } else {
            // SAFETY: the counter is even, so no write is in progress: the
            // owner is this thread, interrupted outside a write, or stopped
            // (the caller's contract).
            let live = unsafe { &*self.live.get() };
            snap.copy_from(live);
            compiler_fence(Ordering::SeqCst);
            if self.seq.load(Ordering::Acquire) != before {
                being_updated = true;
                snap.clear();
            }
        }
        self.snap_tid.store(tid, Ordering::Relaxed);
        self.snap_being_updated
            .store(u32::from(being_updated), Ordering::Relaxed);
        // The clock breadcrumbs are stamped with (ages are exact to a tick).
        self.snap_at_ns
            .store(sys::monotonic_coarse_ns_syscall(), Ordering::Relaxed);
        self.snap_state
            .store(snap_pack(generation, SNAP_DONE), Ordering::Release);
        true
    }
}

const EMPTY: i32 = 0;
const TOMBSTONE: i32 = -1;

/// An entry of the tid table.
#[derive(Debug)]
struct Entry {
    tid: AtomicI32,
    /// Index of the record + 1 (0: none yet).
    record: AtomicU32,
}

impl Entry {
    const fn new() -> Entry {
        Entry {
            tid: AtomicI32::new(EMPTY),
            record: AtomicU32::new(0),
        }
    }
}

/// The engine's thread-context records and the table that finds a thread's
/// record by its tid.
#[derive(Debug)]
pub struct ContextTable {
    index: Store<Entry>,
    records: Store<AtomicPtr<Record>>,
    /// Heap records made so far (grows on first uses up to the capacity).
    made: AtomicUsize,
    heap: bool,
    limits: ContextOptions,
}

impl ContextTable {
    /// A table whose records are allocated on each thread's first use
    /// (setup only).
    pub(crate) fn new(limits: ContextOptions) -> ContextTable {
        let index: Vec<Entry> = (0..limits.index_len()).map(|_| Entry::new()).collect();
        let records: Vec<AtomicPtr<Record>> = (0..limits.records)
            .map(|_| AtomicPtr::new(core::ptr::null_mut()))
            .collect();
        ContextTable {
            index: index.into(),
            records: records.into(),
            made: AtomicUsize::new(0),
            heap: true,
            limits,
        }
    }

    /// A table with every record in static memory (setup only).
    pub(crate) fn new_in(carver: &mut Carver, limits: ContextOptions) -> Option<ContextTable> {
        let index = carver.slice(limits.index_len(), |_| Entry::new())?;
        let made = carver.slice(limits.records, |_| Record::new())?;
        let records = carver.slice(limits.records, |_| AtomicPtr::new(core::ptr::null_mut()))?;
        for (p, r) in records.iter().zip(made.iter_mut()) {
            p.store(r, Ordering::Relaxed);
        }
        Some(ContextTable {
            index: Store::Static(index),
            records: Store::Static(records),
            made: AtomicUsize::new(limits.records),
            heap: false,
            limits,
        })
    }

    /// The capacities it was made with.
    pub fn limits(&self) -> &ContextOptions {
        &self.limits
    }

    /// Records made so far and the bytes they and the table take.
    pub fn memory_bytes(&self) -> usize {
        let made = self.made.load(Ordering::Relaxed).min(self.records.len());
        core::mem::size_of_val(&*self.index)
            + core::mem::size_of_val(&*self.records)
            + made * core::mem::size_of::<Record>()
    }

    fn start(&self, tid: i32) -> usize {
        let bits = self.index.len().trailing_zeros();
        if bits == 0 {
            return 0;
        }
        ((tid as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    fn record(&self, index: u32) -> Option<&Record> {
        let p = self
            .records
            .get((index as usize).checked_sub(1)?)?
            .load(Ordering::Acquire);
        // SAFETY: a record pointer is set once, to a leaked box or to a record
        // in the static arena, and never freed.
        unsafe { p.as_ref() }
    }

    /// The record index (+1) of `tid`, if it has one.
    ///
    /// # Async-signal safety
    /// Atomic loads, at most one pass over the table.
    fn lookup(&self, tid: i32) -> Option<(u32, &Record)> {
        let len = self.index.len();
        let start = self.start(tid);
        for i in 0..len {
            let e = self.index.get((start + i) & (len - 1))?;
            match e.tid.load(Ordering::Acquire) {
                EMPTY => return None,
                t if t == tid => {
                    let index = e.record.load(Ordering::Acquire);
                    let record = self.record(index)?;
                    return (record.owner.load(Ordering::Acquire) == tid)
                        .then_some((index, record));
                }
                _ => {}
            }
        }
        None
    }

    /// The calling thread `tid`'s record, made or taken from the free ones on
    /// its first use. Normal context only (it may allocate, once).
    fn acquire(&'static self, tid: i32) -> Option<&'static Record> {
        if let Some((_, r)) = self.lookup(tid) {
            return Some(r);
        }
        let index = self.claim_record(tid)?;
        let len = self.index.len();
        let start = self.start(tid);
        for i in 0..len {
            let Some(e) = self.index.get((start + i) & (len - 1)) else {
                break;
            };
            loop {
                let t = e.tid.load(Ordering::Acquire);
                if t != EMPTY && t != TOMBSTONE {
                    break;
                }
                if e.tid
                    .compare_exchange(t, tid, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    e.record.store(index, Ordering::Release);
                    return self.record(index);
                }
            }
        }
        // No free entry (cannot happen: the table has twice as many entries
        // as records); give the record back.
        if let Some(r) = self.record(index) {
            r.owner.store(0, Ordering::Release);
        }
        None
    }

    /// A free record for `tid`: a released one, or a new one while the pool
    /// is not full. Returns its index + 1.
    fn claim_record(&self, tid: i32) -> Option<u32> {
        let made = self.made.load(Ordering::Acquire).min(self.records.len());
        for (i, p) in self.records.iter().take(made).enumerate() {
            // SAFETY: as in `record`.
            let Some(r) = (unsafe { p.load(Ordering::Acquire).as_ref() }) else {
                continue;
            };
            if r.owner
                .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return u32::try_from(i + 1).ok();
            }
        }
        if !self.heap {
            return None;
        }
        let i = self.made.fetch_add(1, Ordering::AcqRel);
        let Some(p) = self.records.get(i) else {
            self.made.fetch_sub(1, Ordering::AcqRel);
            return None;
        };
        let record = Box::leak(Box::new(Record::new()));
        record.owner.store(tid, Ordering::Relaxed);
        p.store(record, Ordering::Release);
        u32::try_from(i + 1).ok()
    }

    /// Gives back `tid`'s record (the thread is about to exit): its table
    /// entry goes, its live data is cleared, the record is free for another
    /// thread. Its snapshot stays until the next round.
    fn release(&self, tid: i32) {
        let len = self.index.len();
        let start = self.start(tid);
        for i in 0..len {
            let Some(e) = self.index.get((start + i) & (len - 1)) else {
                return;
            };
            match e.tid.load(Ordering::Acquire) {
                EMPTY => return,
                t if t == tid => {
                    let record = self.record(e.record.load(Ordering::Acquire));
                    e.record.store(0, Ordering::Release);
                    // A tombstone keeps other tids' probe chains intact; when
                    // the next entry is empty, no chain runs through this one.
                    let next_empty = self
                        .index
                        .get((start + i + 1) & (len - 1))
                        .is_some_and(|n| n.tid.load(Ordering::Acquire) == EMPTY);
                    e.tid.store(
                        if next_empty { EMPTY } else { TOMBSTONE },
                        Ordering::Release,
                    );
                    if let Some(r) = record
                        && r.owner.load(Ordering::Relaxed) == tid
                    {
                        r.write(Data::clear);
                        r.owner.store(0, Ordering::Release);
                    }
                    return;
                }
                _ => {}
            }
        }
    }

    /// In the capture handler of thread `tid`: copies its record (if it has
    /// one) into the record's snapshot for round `generation`. Returns what
    /// the thread's slot should hold ([`crate::slots::SlotWriter::set_context`]):
    /// the record's index + 1, or 0 for none.
    ///
    /// # Async-signal safety
    /// Atomics, one pass over the tid table at most, a bounded copy.
    pub fn snapshot_own(&self, tid: i32, generation: u32) -> u32 {
        let Some((index, record)) = self.lookup(tid) else {
            return 0;
        };
        // SAFETY: `tid` is the calling thread (the capture handler's own tid)
        // and owns the record (checked by `lookup`).
        if unsafe { record.snapshot(tid, generation) } {
            index
        } else {
            0
        }
    }

    /// Like [`snapshot_own`](Self::snapshot_own), for another thread: for
    /// the crash path, whose helper thread captures a crashed thread that is
    /// parked in its signal handler. Store the result in that thread's slot
    /// with [`crate::slots::SlotWriter::set_context`].
    ///
    /// # Safety
    /// Thread `tid` must not run while this is called: it is stopped (e.g.
    /// waiting in a crash handler), and everything it wrote happened-before
    /// this call (the caller synchronised with it, e.g. an Acquire load of a
    /// flag the thread set with Release before stopping). A write it was in
    /// the middle of is reported as "being updated".
    ///
    /// # Async-signal safety
    /// As `snapshot_own`.
    pub unsafe fn snapshot_stopped(&self, tid: i32, generation: u32) -> u32 {
        let Some((index, record)) = self.lookup(tid) else {
            return 0;
        };
        // SAFETY: the caller guarantees the owner is stopped and its writes
        // are visible.
        if unsafe { record.snapshot(tid, generation) } {
            index
        } else {
            0
        }
    }

    /// The snapshot named by a slot's `context` for thread `tid` in round
    /// `generation`, if it is that one.
    ///
    /// # Async-signal safety
    /// Atomic loads.
    pub fn read(&self, context: u32, tid: i32, generation: u32) -> Option<ContextView<'_>> {
        let record = self.record(context)?;
        if record.snap_state.load(Ordering::Acquire) != snap_pack(generation, SNAP_DONE)
            || record.snap_tid.load(Ordering::Relaxed) != tid
        {
            return None;
        }
        // SAFETY: the snapshot is DONE for this generation: its one writer of
        // this round has finished (Release, seen by the Acquire above) and no
        // other writes it until a later round, which cannot begin while the
        // caller holds this one.
        let data = unsafe { &*record.snap.get() };
        Some(ContextView {
            data,
            being_updated: record.snap_being_updated.load(Ordering::Relaxed) != 0,
            at_ns: record.snap_at_ns.load(Ordering::Relaxed),
            limits: self.limits,
        })
    }
}

/// A thread's context as its capture handler copied it.
#[derive(Debug, Clone, Copy)]
pub struct ContextView<'r> {
    data: &'r Data,
    being_updated: bool,
    at_ns: u64,
    limits: ContextOptions,
}

/// One entered span, read back.
#[derive(Debug, Clone, Copy)]
pub struct SpanView<'r> {
    text: &'r str,
}

impl<'r> SpanView<'r> {
    /// The span's name.
    pub fn name(&self) -> &'r str {
        self.text.split(FIELD_SEPARATOR).next().unwrap_or("")
    }

    /// Its fields, (name, value), in the order recorded (a field cut by
    /// truncation has what fitted, ending in [`TRUNCATION_MARKER`]).
    pub fn fields(&self) -> impl Iterator<Item = (&'r str, &'r str)> + use<'r> {
        let text: &'r str = self.text;
        text.split(FIELD_SEPARATOR)
            .skip(1)
            .map(|f| f.split_once(VALUE_SEPARATOR).unwrap_or((f, "")))
    }
}

impl<'r> ContextView<'r> {
    /// The handler interrupted a write to the record: nothing is shown (a
    /// value being written is never shown torn).
    pub fn being_updated(&self) -> bool {
        self.being_updated
    }

    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        !self.being_updated
            && self.data.labels.is_empty()
            && self.data.labels_not_kept == 0
            && self.data.spans.is_empty()
            && self.data.spans_not_kept == 0
            && self.data.crumbs.is_empty()
    }

    /// The labels in effect, oldest first: a label shadowed by a later one
    /// with the same key is left out.
    pub fn labels(&self) -> impl Iterator<Item = (&'static str, &'r str)> + use<'r> {
        let data: &'r Data = self.data;
        let labels = &data.labels;
        labels.iter().enumerate().filter_map(move |(i, l)| {
            let shadowed = labels
                .get(i + 1..)
                .is_some_and(|later| later.iter().any(|m| m.key == l.key));
            (!shadowed).then_some((l.key, l.value.as_str()))
        })
    }

    /// Labels set but not kept (the thread had [`ContextOptions::labels`]).
    pub fn labels_not_kept(&self) -> u32 {
        self.data.labels_not_kept
    }

    /// The spans entered, outermost first.
    pub fn spans(&self) -> impl Iterator<Item = SpanView<'r>> + use<'r> {
        let data: &'r Data = self.data;
        data.spans.iter().map(|s| SpanView {
            text: s.text.as_str(),
        })
    }

    /// Spans entered but not kept (deeper than [`ContextOptions::spans`]).
    pub fn spans_not_kept(&self) -> u32 {
        self.data.spans_not_kept
    }

    /// The most recent breadcrumbs, oldest first: (nanoseconds before the
    /// capture, text).
    pub fn breadcrumbs(&self) -> impl Iterator<Item = (u64, &'r str)> + use<'r> {
        let data: &'r Data = self.data;
        let skip = self
            .data
            .crumbs
            .len()
            .saturating_sub(self.limits.breadcrumbs);
        let at = self.at_ns;
        data.crumbs
            .oldest_ordered()
            .skip(skip)
            .map(move |c| (at.saturating_sub(c.monotonic_ns), c.text.as_str()))
    }

    /// Breadcrumbs left before the ones shown, not kept.
    pub fn breadcrumbs_dropped(&self) -> u64 {
        let shown = self.data.crumbs.len().min(self.limits.breadcrumbs) as u64;
        self.data.crumbs_total.saturating_sub(shown)
    }
}

/// A label set through [`ThreadContext::set_label`], to remove it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelId {
    id: u32,
    kept: bool,
}

/// The calling thread's context record, for setting labels, spans and
/// breadcrumbs (the std adapter's `guru::label`, `guru::breadcrumb` and
/// tracing layer are built on it; core-only programs use it directly).
///
/// ```no_run
/// use guru_core::context::ThreadContext;
/// guru_core::install(guru_core::Options::default()).expect("install guru");
/// if let Some(ctx) = ThreadContext::current() {
///     let job = ctx.set_label("job", format_args!("{}", 42));
///     ctx.breadcrumb(format_args!("fetched {} rows", 17));
///     // ... the reports taken now show `labels: job="42"` ...
///     ctx.remove_label(job);
///     ctx.release(); // before the thread exits: the record goes back to the pool
/// }
/// ```
///
/// It is not `Send`: every call writes the record of the thread it was made
/// on, and checks first that the thread still owns it (after
/// [`release`](Self::release) every call does nothing).
#[derive(Debug, Clone, Copy)]
pub struct ThreadContext {
    record: &'static Record,
    table: &'static ContextTable,
    tid: i32,
    _not_send: PhantomData<*const ()>,
}

impl ThreadContext {
    /// The calling thread's record, made on its first use. `None` when guru
    /// is not installed, thread context is off
    /// ([`ContextOptions::records`] = 0) or every record is in use.
    ///
    /// Normal context only: on a thread's first use it may allocate (after
    /// [`crate::install`]) and it scans the pool.
    pub fn current() -> Option<ThreadContext> {
        let engine = crate::engine()?;
        let table = &engine.contexts;
        let tid = sys::gettid();
        let record = table.acquire(tid)?;
        Some(ThreadContext {
            record,
            table,
            tid,
            _not_send: PhantomData,
        })
    }

    #[inline]
    fn owned(&self) -> bool {
        self.record.owner.load(Ordering::Relaxed) == self.tid
    }

    /// Sets label `key` to `value` (formatted now, cut at
    /// [`ContextOptions::value_bytes`]) until [`remove_label`](Self::remove_label).
    /// A later label with the same key shadows it until removed.
    pub fn set_label(&self, key: &'static str, value: impl fmt::Display) -> LabelId {
        let mut text = String::<MAX_VALUE_BYTES>::new();
        let _ = write!(
            Truncating::new(&mut text, self.table.limits.value_bytes),
            "{value}"
        );
        self.set_label_text(key, text)
    }

    #[inline]
    fn set_label_text(&self, key: &'static str, value: String<MAX_VALUE_BYTES>) -> LabelId {
        if !self.owned() {
            return LabelId { id: 0, kept: false };
        }
        let limit = self.table.limits.labels;
        self.record.write(|d| {
            let id = d.next_label;
            d.next_label = d.next_label.wrapping_add(1);
            if d.labels.len() < limit && d.labels.try_push(Label { key, value, id }).is_ok() {
                LabelId { id, kept: true }
            } else {
                d.labels_not_kept = d.labels_not_kept.saturating_add(1);
                LabelId { id, kept: false }
            }
        })
    }

    /// Removes a label set by [`set_label`](Self::set_label) (in any order).
    #[inline]
    pub fn remove_label(&self, label: LabelId) {
        if !self.owned() {
            return;
        }
        self.record.write(|d| {
            if !label.kept {
                d.labels_not_kept = d.labels_not_kept.saturating_sub(1);
            } else if let Some(i) = d.labels.iter().rposition(|l| l.id == label.id) {
                d.labels.remove(i);
            }
        });
    }

    /// Appends a breadcrumb (formatted now, cut at
    /// [`ContextOptions::breadcrumb_bytes`]) with the coarse monotonic time
    /// (`CLOCK_MONOTONIC_COARSE`: one kernel tick of resolution, 1–10 ms, for
    /// a few nanoseconds instead of ~40); the oldest beyond
    /// [`ContextOptions::breadcrumbs`] are counted as dropped.
    pub fn breadcrumb(&self, text: impl fmt::Display) {
        let mut crumb = Crumb {
            monotonic_ns: sys::monotonic_coarse_ns(),
            text: String::new(),
        };
        let _ = write!(
            Truncating::new(&mut crumb.text, self.table.limits.breadcrumb_bytes),
            "{text}"
        );
        if !self.owned() {
            return;
        }
        self.record.write(|d| {
            d.crumbs.write(crumb);
            d.crumbs_total = d.crumbs_total.saturating_add(1);
        });
    }

    /// Records that the thread entered span `id` (any number unique among
    /// the spans entered at once, e.g. tracing's span id), with `text`: its
    /// name, then [`FIELD_SEPARATOR`] `field` [`VALUE_SEPARATOR`] `value` per
    /// field (cut at [`ContextOptions::span_bytes`]).
    #[inline]
    pub fn enter_span(&self, id: u64, text: &str) {
        if !self.owned() {
            return;
        }
        let limit = self.table.limits.spans;
        let span_bytes = self.table.limits.span_bytes;
        self.record.write(|d| {
            if d.spans.len() >= limit || d.spans.is_full() {
                d.spans_not_kept = d.spans_not_kept.saturating_add(1);
                return;
            }
            let mut entry = SpanEntry {
                text: String::new(),
                id,
            };
            let _ = Truncating::new(&mut entry.text, span_bytes).write_str(text);
            let _ = d.spans.try_push(entry);
        });
    }

    /// Records that the thread left span `id` (the innermost entry with
    /// that id goes; if none is kept, one not-kept span is uncounted).
    #[inline]
    pub fn exit_span(&self, id: u64) {
        if !self.owned() {
            return;
        }
        self.record.write(|d| {
            if let Some(i) = d.spans.iter().rposition(|s| s.id == id) {
                d.spans.remove(i);
            } else {
                d.spans_not_kept = d.spans_not_kept.saturating_sub(1);
            }
        });
    }

    /// Gives the record back (call it before the thread exits; the std
    /// adapter does so from a thread-local destructor). A record never given
    /// back stays with the tid: a later thread that gets the same tid would
    /// inherit its content.
    pub fn release(self) {
        if self.owned() {
            self.table.release(self.tid);
        }
    }
}

/// `"text"`: `"` and `\` escaped with a backslash, control characters as
/// `\xNN` (their code point), U+2028 and U+2029 (line breaks to some
/// readers) as `\u{2028}` and `\u{2029}`: reversible, one line.
///
/// # Async-signal safety
/// Formats only.
pub fn write_quoted(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    let mut rest = s;
    while let Some(i) = rest.find(['"', '\\', '\u{2028}', '\u{2029}']) {
        crate::format::write_escaped(w, rest.get(..i).unwrap_or("").as_bytes())?;
        let c = rest.get(i..).and_then(|r| r.chars().next()).unwrap_or('"');
        match c {
            '"' | '\\' => {
                w.write_char('\\')?;
                w.write_char(c)?;
            }
            _ => write!(w, "\\u{{{:x}}}", u32::from(c))?,
        }
        rest = rest.get(i + c.len_utf8()..).unwrap_or("");
    }
    crate::format::write_escaped(w, rest.as_bytes())?;
    w.write_char('"')
}

/// Where a piece of text stands in a context line; it decides whether the
/// text can be written as it is (bare) or is quoted ([`write_quoted`]), so
/// that every line reads back unambiguously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A label's key or a span field's name (`key=`).
    Key,
    /// A span's name (`name{…}`).
    SpanName,
    /// A span field's value (`=value`).
    FieldValue,
    /// A breadcrumb's text (`-0.311 s text | …`).
    Breadcrumb,
}

/// Whether `s` is written bare at `place`: not empty, no control character,
/// U+2028 or U+2029, not starting with `"`, and none of the place's
/// delimiters — keys and span names: whitespace, `=` (keys), `{`, `}`, `"`;
/// field values: whitespace, `}`; breadcrumbs: `|`, leading or trailing
/// whitespace. Anything else is quoted.
///
/// # Async-signal safety
/// Scans `s`.
pub fn is_bare(s: &str, place: Place) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if first == '"' {
        return false;
    }
    let plain = |c: char| !c.is_control() && c != '\u{2028}' && c != '\u{2029}';
    match place {
        Place::Key => s
            .chars()
            .all(|c| plain(c) && !c.is_whitespace() && !matches!(c, '=' | '{' | '}' | '"')),
        Place::SpanName => s
            .chars()
            .all(|c| plain(c) && !c.is_whitespace() && !matches!(c, '{' | '}' | '"')),
        Place::FieldValue => s
            .chars()
            .all(|c| plain(c) && !c.is_whitespace() && c != '}'),
        Place::Breadcrumb => {
            s.chars().all(|c| plain(c) && c != '|')
                && !first.is_whitespace()
                && !s.ends_with(char::is_whitespace)
        }
    }
}

/// `s` bare if [`is_bare`] at `place`, else quoted.
///
/// # Async-signal safety
/// Formats only.
pub fn write_text(w: &mut impl Write, s: &str, place: Place) -> fmt::Result {
    if is_bare(s, place) {
        w.write_str(s)
    } else {
        write_quoted(w, s)
    }
}

/// `-1.204 s` for an age in nanoseconds (milliseconds, rounded down).
///
/// # Async-signal safety
/// Formats only.
pub fn write_age(w: &mut impl Write, age_ns: u64) -> fmt::Result {
    let ms = age_ns / 1_000_000;
    write!(w, "-{}.{:03} s", ms / 1000, ms % 1000)
}

/// The line of a thread whose record was being written when its handler
/// ran (nothing else of its context is shown).
pub const BEING_UPDATED_LINE: &str =
    "  context: being updated when captured (not shown: a torn value is never shown)";

/// The context lines of a thread, from its parts: `labels` (key, value) in
/// effect, `spans` (name, fields) outermost first, `crumbs` (age in ns,
/// text) oldest first, and what was not kept of each. Each line is written
/// only when it has something:
///
/// ```text
///   labels: request="GET /users/42" tenant="acme" (+1 not kept)
///   spans: http_request{method=GET path=/users/42} > db_query{table=users} > (+2 not kept)
///   breadcrumbs (oldest first, 3 older dropped): -1.204 s accepted conn 17 | -0.002 s "query | sent"
/// ```
///
/// Label values are always quoted; keys, span names, field values and
/// breadcrumbs are bare unless [`is_bare`] says otherwise. The std
/// adapter's text renderer writes its (masked) model through this function
/// too, so both read back the same way.
///
/// # Async-signal safety
/// Formats only; the iterators are the caller's (the core's walk a snapshot).
pub fn write_context_parts<'a, L, S, F, B>(
    w: &mut impl Write,
    labels: L,
    labels_not_kept: u64,
    spans: S,
    spans_not_kept: u64,
    crumbs: B,
    crumbs_dropped: u64,
) -> fmt::Result
where
    L: Iterator<Item = (&'a str, &'a str)>,
    S: Iterator<Item = (&'a str, F)>,
    F: Iterator<Item = (&'a str, &'a str)>,
    B: Iterator<Item = (u64, &'a str)>,
{
    let mut labels = labels.peekable();
    if labels.peek().is_some() || labels_not_kept > 0 {
        w.write_str("  labels:")?;
        for (k, v) in labels {
            w.write_char(' ')?;
            write_text(w, k, Place::Key)?;
            w.write_char('=')?;
            write_quoted(w, v)?;
        }
        if labels_not_kept > 0 {
            write!(w, " (+{labels_not_kept} not kept)")?;
        }
        writeln!(w)?;
    }
    let mut spans = spans.peekable();
    if spans.peek().is_some() || spans_not_kept > 0 {
        w.write_str("  spans: ")?;
        let mut any = false;
        for (name, fields) in spans {
            if any {
                w.write_str(" > ")?;
            }
            any = true;
            write_text(w, name, Place::SpanName)?;
            let mut fields = fields.peekable();
            if fields.peek().is_some() {
                w.write_char('{')?;
                for (i, (k, v)) in fields.enumerate() {
                    if i > 0 {
                        w.write_char(' ')?;
                    }
                    write_text(w, k, Place::Key)?;
                    w.write_char('=')?;
                    write_text(w, v, Place::FieldValue)?;
                }
                w.write_char('}')?;
            }
        }
        if spans_not_kept > 0 {
            if any {
                w.write_str(" > ")?;
            }
            write!(w, "(+{spans_not_kept} not kept)")?;
        }
        writeln!(w)?;
    }
    let mut crumbs = crumbs.peekable();
    if crumbs.peek().is_some() || crumbs_dropped > 0 {
        w.write_str("  breadcrumbs (oldest first")?;
        if crumbs_dropped > 0 {
            write!(w, ", {crumbs_dropped} older dropped")?;
        }
        w.write_str("):")?;
        for (n, (age, text)) in crumbs.enumerate() {
            w.write_str(if n > 0 { " | " } else { " " })?;
            write_age(w, age)?;
            w.write_char(' ')?;
            write_text(w, text, Place::Breadcrumb)?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// Writes a thread's context lines ([`write_context_parts`], or
/// [`BEING_UPDATED_LINE`]), unmasked (the core has no masking rules; the
/// std adapter masks its model before rendering).
///
/// # Async-signal safety
/// Formats a snapshot; no allocation.
pub fn write_context_lines(w: &mut impl Write, view: &ContextView<'_>) -> fmt::Result {
    if view.being_updated() {
        return writeln!(w, "{BEING_UPDATED_LINE}");
    }
    let labels = view.labels();
    write_context_parts(
        w,
        labels.map(|(k, v)| -> (&str, &str) { (k, v) }),
        u64::from(view.labels_not_kept()),
        view.spans().map(|s| (s.name(), s.fields())),
        u64::from(view.spans_not_kept()),
        view.breadcrumbs(),
        view.breadcrumbs_dropped(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use alloc::string::String as StdString;

    fn table() -> &'static ContextTable {
        Box::leak(Box::new(ContextTable::new(ContextOptions::DEFAULT)))
    }

    fn handle(table: &'static ContextTable, tid: i32) -> ThreadContext {
        ThreadContext {
            record: table.acquire(tid).unwrap(),
            table,
            tid,
            _not_send: PhantomData,
        }
    }

    fn render(table: &ContextTable, tid: i32, generation: u32) -> StdString {
        let index = table.snapshot_own(tid, generation);
        let mut s = StdString::new();
        if let Some(v) = table.read(index, tid, generation) {
            write_context_lines(&mut s, &v).unwrap();
        }
        s
    }

    #[test]
    fn truncates_at_char_boundary_with_marker() {
        let mut s = String::<16>::new();
        let mut w = Truncating::new(&mut s, 10);
        w.write_str("ééééééé").unwrap();
        assert!(w.truncated());
        assert_eq!(s.as_str(), "ééé…");
        assert!(s.len() <= 10);
        let mut s = String::<16>::new();
        write!(Truncating::new(&mut s, 16), "short").unwrap();
        assert_eq!(s.as_str(), "short");
    }

    #[test]
    fn labels_nest_shadow_and_drop() {
        let t = table();
        let c = handle(t, 100);
        let a = c.set_label("request", "GET /");
        let b = c.set_label("tenant", "acme");
        let shadow = c.set_label("request", "inner \"q\"");
        assert_eq!(
            render(t, 100, 1),
            "  labels: tenant=\"acme\" request=\"inner \\\"q\\\"\"\n"
        );
        c.remove_label(shadow);
        c.remove_label(b);
        assert_eq!(render(t, 100, 2), "  labels: request=\"GET /\"\n");
        c.remove_label(a);
        assert_eq!(render(t, 100, 3), "");
    }

    #[test]
    fn breadcrumbs_keep_the_newest_and_count_the_rest() {
        let t = table();
        let c = handle(t, 7);
        for i in 0..20 {
            c.breadcrumb(format_args!("step {i}"));
        }
        let out = render(t, 7, 1);
        assert!(out.starts_with("  breadcrumbs (oldest first, 4 older dropped): -0."));
        assert!(out.contains("step 4 |"), "{out}");
        assert!(out.trim_end().ends_with("step 19"), "{out}");
        assert!(!out.contains("step 3 "), "{out}");
    }

    #[test]
    fn spans_render_and_exit_out_of_order() {
        let t = table();
        let c = handle(t, 9);
        c.enter_span(1, "http\u{1f}method\u{1e}GET\u{1f}path\u{1e}/x");
        c.enter_span(2, "db");
        assert_eq!(render(t, 9, 1), "  spans: http{method=GET path=/x} > db\n");
        c.exit_span(1);
        assert_eq!(render(t, 9, 2), "  spans: db\n");
    }

    #[test]
    fn snapshot_once_per_round_and_being_updated() {
        let t = table();
        let c = handle(t, 5);
        let _l = c.set_label("k", "v");
        let first = t.snapshot_own(5, 4);
        assert_ne!(first, 0);
        assert_eq!(t.snapshot_own(5, 4), 0, "one snapshot per round");
        // A handler interrupting a write: the counter is odd.
        c.record.seq.fetch_add(1, Ordering::Relaxed);
        let i = t.snapshot_own(5, 5);
        assert!(t.read(i, 5, 5).unwrap().being_updated());
        assert!(t.read(i, 6, 5).is_none(), "wrong tid");
        assert!(t.read(i, 5, 4).is_none(), "wrong round");
    }

    #[test]
    fn released_records_are_reused_and_lose_their_content() {
        let t = table();
        let c = handle(t, 11);
        let _l = c.set_label("k", "v");
        c.release();
        assert_eq!(t.snapshot_own(11, 1), 0);
        // Writes through the old handle do nothing.
        let _ = c.set_label("k", "after");
        let d = handle(t, 12);
        assert!(core::ptr::eq(d.record, c.record), "the record is reused");
        assert_eq!(render(t, 12, 2), "");
        assert_eq!(t.made.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn many_threads_and_churn_keep_lookups_exact() {
        let t = table();
        for round in 0..4 {
            for tid in 1..=1000 {
                let c = handle(t, tid + round * 1000);
                let _ = c.set_label("tid", tid + round * 1000);
            }
            for tid in 1..=1000 {
                let tid = tid + round * 1000;
                let out = render(t, tid, (round * 2000 + tid) as u32);
                assert_eq!(out, alloc::format!("  labels: tid=\"{tid}\"\n"));
            }
            for tid in 1..=1000 {
                handle(t, tid + round * 1000).release();
            }
        }
        assert_eq!(t.made.load(Ordering::Relaxed), 1000);
    }
}
