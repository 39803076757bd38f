//! Self-capture: what each thread does in its capture-signal handler.
//!
//! The thread reads its interrupted registers from the ucontext (never from the
//! handler's own frame), claims its slot, unwinds itself with framehop over its
//! own stack (every read bounds-checked against the readable range containing
//! the interrupted stack pointer) and publishes the result.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use framehop::Unwinder;

use crate::arch::{self, NativeCache, Registers, SYSCALL_INSN_LEN, SyscallState};
use crate::ranges::{Range, RangeTable};
use crate::slots::{CaptureSummary, SlotWriter, StackEnd};
use crate::symbolize::ModuleSet;
use crate::sys;

/// Stack the capture path needs below the handler's entry: framehop's DWARF
/// evaluation keeps its fixed-size rule tables on the stack. Measured on
/// x86_64 (a thread painting its stack, then reporting): ~18 KiB in release
/// and ~45 KiB in debug builds for a whole report including the kernel's
/// signal frame; the capture path alone needs less. A thread with less left
/// below the handler's stack pointer is listed "not unwound".
pub const MIN_STACK_FOR_UNWIND: u64 = if cfg!(debug_assertions) {
    96 * 1024
} else {
    32 * 1024
};

/// How many times a handler retries (with `sched_yield`) to get an unwinder
/// cache before giving up.
const CACHE_ATTEMPTS: usize = 256;

struct CacheCell {
    busy: AtomicBool,
    cache: UnsafeCell<NativeCache>,
}

/// A pool of framehop caches, each taken with a try-lock. A handler that finds
/// all of them busy yields and retries, then gives up (never blocks).
pub struct CachePool {
    cells: Box<[CacheCell]>,
}

// SAFETY: each `cache` is only accessed through a `CacheLease`, which exists only
// while its `busy` flag was won by a compare-exchange; so at most one thread
// touches a given cache at a time.
unsafe impl Sync for CachePool {}
// SAFETY: the caches hold no thread-affine state (plain data and boxes).
unsafe impl Send for CachePool {}

impl core::fmt::Debug for CachePool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CachePool")
            .field("caches", &self.cells.len())
            .finish()
    }
}

/// Exclusive use of one cache; released on drop.
struct CacheLease<'p> {
    cell: &'p CacheCell,
}

impl CacheLease<'_> {
    /// # Async-signal safety
    /// Hands out the leased cache.
    fn cache(&mut self) -> &mut NativeCache {
        // SAFETY: this lease won `busy` (see `CachePool::acquire`) and releases it
        // only on drop, so no other reference to this cache exists meanwhile.
        unsafe { &mut *self.cell.cache.get() }
    }
}

impl Drop for CacheLease<'_> {
    fn drop(&mut self) {
        self.cell.busy.store(false, Ordering::Release);
    }
}

impl CachePool {
    /// Allocates `count` caches (setup only).
    pub fn new(count: usize) -> CachePool {
        let cells: Vec<CacheCell> = (0..count.max(1))
            .map(|_| CacheCell {
                busy: AtomicBool::new(false),
                cache: UnsafeCell::new(NativeCache::new_in()),
            })
            .collect();
        CachePool {
            cells: cells.into_boxed_slice(),
        }
    }

    /// A pool without caches: threads unwind with frame pointers only
    /// ([`crate::Options::frame_pointers_only`]). Allocates nothing.
    pub fn none() -> CachePool {
        CachePool {
            cells: Vec::new().into_boxed_slice(),
        }
    }

    /// Number of caches.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the pool is empty (only after [`CachePool::none`]: frame
    /// pointers only).
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Approximate bytes per cache (the struct; framehop's boxed rule cache is
    /// counted by `memory_bytes`).
    pub fn memory_bytes(&self) -> usize {
        self.cells.len() * (core::mem::size_of::<CacheCell>() + framehop_rule_cache_bytes())
    }

    /// # Async-signal safety
    /// Compare-exchanges on the pool's flags and at most a bounded number of `sched_yield` calls; never blocks.
    fn acquire(&self, hint: usize) -> Option<CacheLease<'_>> {
        let n = self.cells.len();
        for attempt in 0..CACHE_ATTEMPTS {
            for k in 0..n {
                let Some(cell) = self.cells.get((hint + k) % n) else {
                    continue;
                };
                if cell
                    .busy
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(CacheLease { cell });
                }
            }
            if attempt + 1 < CACHE_ATTEMPTS {
                sys::sched_yield();
            }
        }
        None
    }
}

/// framehop's rule cache is a boxed array of 509 entries of (address, modules
/// generation, rule) — 16 bytes each — in version 0.16.
const fn framehop_rule_cache_bytes() -> usize {
    509 * 16
}

/// Reads a u64 from `range`, or fails without touching memory outside it.
///
/// # Async-signal safety
/// A bounds check and one volatile load from memory listed readable.
fn read_u64_in(range: &Range, address: u64) -> Result<u64, ()> {
    if !range.contains(address, 8) {
        return Err(());
    }
    // SAFETY: `[address, address+8)` lies inside a mapping that /proc/self/maps
    // listed readable at the start of this round, and it is the stack this very
    // thread is running on (or its code), which cannot be unmapped while the
    // thread executes this handler. Unaligned reads are allowed on x86_64 and
    // aarch64 for normal memory; `read_unaligned` makes no alignment assumption.
    let bytes = unsafe { core::ptr::read_volatile(address as *const [u8; 8]) };
    Ok(u64::from_le_bytes(bytes))
}

/// Reads the instruction bytes at `address` if they lie in readable memory.
///
/// # Async-signal safety
/// A table lookup and bounds-checked volatile byte reads.
fn code_bytes(ranges: &RangeTable, address: u64) -> Option<[u8; SYSCALL_INSN_LEN]> {
    let range = ranges.find(address)?;
    if !range.contains(address, SYSCALL_INSN_LEN as u64) {
        return None;
    }
    let mut out = [0u8; SYSCALL_INSN_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        let at = address.checked_add(i as u64)?;
        // SAFETY: the byte lies in a mapping listed readable this round that holds
        // code this thread was just executing (checked with `contains` above).
        *b = unsafe { core::ptr::read_volatile(at as *const u8) };
    }
    Some(out)
}

/// Bytes of stack left below the caller's stack pointer, where known.
///
/// On an alternate signal stack (the thread was interrupted inside an
/// `SA_ONSTACK` handler, and handlers without `SA_ONSTACK` then run there too)
/// only `sigaltstack` knows its low end: such a stack is often a small buffer
/// inside a large heap mapping, whose bounds would promise room that is not
/// there (unwinding then overran the buffer and wrote over the heap below it).
/// Elsewhere it is the low end of the readable range containing the stack
/// pointer; `u64::MAX` for the main thread's `[stack]`, which the kernel
/// grows on demand; `None` for a stack not in the table.
///
/// # Async-signal safety
/// `sigaltstack` (query) and atomic loads.
#[inline(always)]
pub fn stack_left(ranges: &RangeTable) -> Option<u64> {
    let sp = sys::approximate_stack_pointer();
    if let Some(low) = sys::alternate_stack_low(sp) {
        return Some(sp.saturating_sub(low));
    }
    let own = ranges.find(sp)?;
    if own.grows_down {
        return Some(u64::MAX);
    }
    Some(sp.saturating_sub(own.start))
}

/// The parts of the engine a capture needs.
#[derive(Debug, Clone, Copy)]
pub struct CaptureContext<'e> {
    /// Readable ranges of this round.
    pub ranges: &'e RangeTable,
    /// Unwinder caches.
    pub caches: &'e CachePool,
    /// Modules and the unwinder.
    pub modules: &'e ModuleSet,
}

/// Captures the calling thread, interrupted at `regs`, into `slot`, and
/// publishes it. `cpu_start_ns` is the thread-CPU clock at handler entry.
///
/// # Async-signal safety
/// No allocation, no locks (the cache pool is a try-lock with a bounded retry),
/// only bounds-checked reads of this thread's own stack and code; system calls:
/// `sigaltstack` (query), `prctl(PR_GET_NAME)`, `clock_gettime`, `sched_yield`.
#[inline(never)]
pub fn capture_self(
    ctx: CaptureContext<'_>,
    regs: &Registers,
    mut slot: SlotWriter<'_>,
    cpu_start_ns: u64,
) {
    let end: StackEnd;
    let mut end_detail = 0u64;

    let stack = ctx.ranges.find(regs.sp);
    let left = stack_left(ctx.ranges);
    let _ = slot.push_frame(regs.pc);
    match (stack, left) {
        (None, _) => end = StackEnd::UnknownStack,
        (Some(_), Some(left)) if left < MIN_STACK_FOR_UNWIND => {
            end = StackEnd::StackNearlyExhausted;
            end_detail = left;
        }
        (Some(stack), _) if ctx.caches.is_empty() => {
            (end, end_detail) = unwind_frame_pointers(ctx.ranges, regs, &stack, &mut slot);
        }
        (Some(stack), _) => match ctx.caches.acquire(sys::gettid() as usize) {
            None => end = StackEnd::NoUnwinderFree,
            Some(mut lease) => {
                (end, end_detail) =
                    unwind_into(ctx.modules, regs, &stack, lease.cache(), &mut slot);
            }
        },
    }

    let before = regs
        .pc
        .checked_sub(SYSCALL_INSN_LEN as u64)
        .and_then(|a| code_bytes(ctx.ranges, a));
    let syscall = arch::interrupted_syscall(regs, code_bytes(ctx.ranges, regs.pc), before);
    let name = sys::thread_name();
    let pause_ns = sys::thread_cpu_ns().saturating_sub(cpu_start_ns);
    slot.publish(CaptureSummary {
        name,
        end,
        end_detail,
        syscall,
        pause_ns,
    });
}

/// Unwinds from `regs` by walking frame records (see [`crate::fp`]); the
/// first frame is already recorded.
///
/// # Async-signal safety
/// Pure walk; stack reads bounded by `stack`, code checks against `ranges`.
fn unwind_frame_pointers(
    ranges: &RangeTable,
    regs: &Registers,
    stack: &Range,
    slot: &mut SlotWriter<'_>,
) -> (StackEnd, u64) {
    let (lr, mask) = if cfg!(target_arch = "aarch64") {
        (Some(regs.lr), crate::fp::AARCH64_ADDRESS_MASK)
    } else {
        (None, u64::MAX)
    };
    let start = crate::fp::Start {
        pc: regs.pc,
        fp: regs.fp,
        lr,
    };
    crate::fp::unwind(
        start,
        mask,
        |address| read_u64_in(stack, address),
        |address| ranges.find(address).is_some_and(|r| r.executable),
        |address| slot.push_frame(address),
    )
}

/// Unwinds from `regs` (the first frame is already recorded) and appends
/// return addresses to `slot`. Kept out of line so its large stack frame
/// (framehop's DWARF evaluation) is only entered after the stack check.
///
/// # Async-signal safety
/// framehop with `MustNotAllocateDuringUnwind`; stack reads bounded by `stack`.
#[inline(never)]
fn unwind_into(
    modules: &ModuleSet,
    regs: &Registers,
    stack: &Range,
    cache: &mut NativeCache,
    slot: &mut SlotWriter<'_>,
) -> (StackEnd, u64) {
    let mut read_stack = |address: u64| read_u64_in(stack, address);
    let mut frames =
        modules
            .unwinder
            .iter_frames(regs.pc, arch::unwind_regs(regs), cache, &mut read_stack);
    // The first frame (the pc) was recorded by the caller.
    let _ = frames.next();
    loop {
        match frames.next() {
            Ok(Some(frame)) => {
                if !slot.push_frame(frame.address()) {
                    return (StackEnd::Truncated, 0);
                }
            }
            Ok(None) => return (StackEnd::Root, 0),
            Err(framehop::Error::CouldNotReadStack(at)) => return (StackEnd::UnreadableStack, at),
            Err(framehop::Error::DidNotAdvance) => return (StackEnd::DidNotAdvance, 0),
            Err(framehop::Error::ReturnAddressIsNull) => return (StackEnd::NullReturnAddress, 0),
            Err(_) => return (StackEnd::UnwindFailed, 0),
        }
    }
}

/// Reads a capture's `SyscallState` for display.
///
/// # Async-signal safety
/// Formats only.
pub fn describe_syscall(s: SyscallState, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    match s {
        SyscallState::Running => write!(out, "running"),
        SyscallState::Interrupted => write!(out, "in a system call (interrupted, returns EINTR)"),
        SyscallState::InSyscall(nr) => match arch::syscall_name(nr) {
            Some(name) => write!(out, "in syscall {name}"),
            None => write!(out, "in syscall #{nr}"),
        },
    }
}
