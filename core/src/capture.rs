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

use framehop::{FrameAddress, Unwinder};

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
    coverage: UnsafeCell<CoverageCache>,
}

/// Entries in a [`CoverageCache`] (8 bytes each). A server's threads sit
/// under 75 and more frames of distinct functions (issue 17); with 64
/// entries most of them missed and cost an `.eh_frame_hdr` search each, on
/// top of framehop's own.
const COVERAGE_ENTRIES: usize = 512;

/// Remembers which code addresses have unwind information, so a thread's
/// frames do not each cost an `.eh_frame_hdr` search (threads of a daemon
/// share most of their return addresses). Direct-mapped; an entry is the
/// address shifted left by one with the answer in bit 0, 0 when empty.
struct CoverageCache {
    /// The module set the entries were computed for (sets are never freed,
    /// so an address identifies one).
    set: usize,
    entries: [u64; COVERAGE_ENTRIES],
}

impl CoverageCache {
    const fn new() -> CoverageCache {
        CoverageCache {
            set: 0,
            entries: [0; COVERAGE_ENTRIES],
        }
    }

    /// Whether `lookup` is code in a module whose unwind tables do not cover
    /// it (the case where framehop would only guess).
    ///
    /// # Async-signal safety
    /// Array accesses, and [`ModuleSet::has_unwind_info`] on a miss.
    fn lacks_unwind_info(&mut self, modules: &ModuleSet, lookup: u64) -> bool {
        let set = core::ptr::from_ref(modules) as usize;
        if self.set != set {
            self.set = set;
            self.entries = [0; COVERAGE_ENTRIES];
        }
        let key = lookup << 1;
        let index = (lookup.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 55) as usize % COVERAGE_ENTRIES;
        let Some(entry) = self.entries.get_mut(index) else {
            return false;
        };
        if *entry & !1 == key && *entry != 0 {
            return *entry & 1 == 1;
        }
        let lacks = modules.has_unwind_info(lookup) == Some(false);
        *entry = key | u64::from(lacks);
        lacks
    }
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
    /// Hands out the leased caches.
    fn caches(&mut self) -> (&mut NativeCache, &mut CoverageCache) {
        // SAFETY: this lease won `busy` (see `CachePool::acquire`) and releases it
        // only on drop, so no other reference to these caches exists meanwhile.
        unsafe { (&mut *self.cell.cache.get(), &mut *self.cell.coverage.get()) }
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
                coverage: UnsafeCell::new(CoverageCache::new()),
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
    // listed readable at the start of this round: the stack this very thread
    // is running on, which cannot be unmapped while the thread executes this
    // handler, or (for a PLT stub's GOT slot, see `Walk::through_plt`) a
    // mapping of a module in the current module set, which stays mapped while
    // the module is in the set (framehop reads its unwind tables under the
    // same assumption). Unaligned reads are allowed on x86_64 and aarch64 for
    // normal memory; the volatile read of a byte array makes no alignment
    // assumption.
    let bytes = unsafe { core::ptr::read_volatile(address as *const [u8; 8]) };
    Ok(u64::from_le_bytes(bytes))
}

/// Reads the instruction bytes at `address` if they lie in readable memory.
///
/// # Async-signal safety
/// A table lookup (and, for an address not in a table of code mappings,
/// one `ioctl`) and bounds-checked volatile byte reads.
fn code_bytes<const N: usize>(ranges: &RangeTable, address: u64) -> Option<[u8; N]> {
    let range = ranges.lookup(address)?;
    if !range.contains(address, N as u64) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        let at = address.checked_add(i as u64)?;
        // SAFETY: the byte lies in a mapping listed readable this round (checked
        // with `contains` above) that holds code this thread was just executing,
        // or, for a stack-scan candidate, code of a module in the current module
        // set (whose unwind tables framehop reads under the same assumption:
        // the module stays mapped while it is in the set).
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
/// grows on demand. For a stack not in the table (it was full, or
/// `/proc/self/maps` could not be read) the readable pages below the stack
/// pointer are probed with `process_vm_readv` (up to
/// [`MIN_STACK_FOR_UNWIND`]); `None` if the kernel refuses that probe.
///
/// # Async-signal safety
/// `sigaltstack` (query) and atomic loads.
#[inline(always)]
pub fn stack_left(ranges: &RangeTable) -> Option<u64> {
    stack_left_beside(ranges, sys::AltStack::query(), None)
}

/// As [`stack_left`], with the thread's alternate signal stack already
/// known (a capture handler reads it from its `ucontext_t`, which saves the
/// `sigaltstack` call), and the readable range of the interrupted stack
/// pointer if already looked up (`near`: a handler not on an alternate
/// stack runs on that same stack, so no second lookup is needed).
///
/// # Async-signal safety
/// Atomic loads, at most one `ioctl` ([`RangeTable::lookup`]), and
/// `process_vm_readv` for a stack found nowhere else.
#[inline(always)]
pub fn stack_left_beside(
    ranges: &RangeTable,
    alternate: Option<sys::AltStack>,
    near: Option<Range>,
) -> Option<u64> {
    let sp = sys::approximate_stack_pointer();
    if let Some(low) = alternate.and_then(|a| a.low_if_on(sp)) {
        return Some(sp.saturating_sub(low));
    }
    let own = near
        .filter(|r| r.contains(sp, 8))
        .or_else(|| ranges.lookup(sp));
    match own {
        Some(own) if own.grows_down => Some(u64::MAX),
        Some(own) => Some(sp.saturating_sub(own.start)),
        None => probe_stack_left(sp),
    }
}

/// Granularity of the stack probes: one page of the smallest page size.
const PROBE_PAGE: u64 = 4096;

/// Most bytes `probe_stack` looks at above the interrupted stack pointer
/// (deeper stacks end "unreadable stack" there).
pub const PROBE_MAX_BYTES: u64 = 4 << 20;

/// For a stack pointer not in the readable-range table (the table was full,
/// or `/proc/self/maps` could not be read): how many bytes below `sp` are
/// readable, page by page downwards, up to [`MIN_STACK_FOR_UNWIND`] (the
/// thread's guard page, or the end of its stack mapping, stops the count).
/// `None` if the kernel refuses the probe.
///
/// # Async-signal safety
/// At most `MIN_STACK_FOR_UNWIND / 4096 + 1` `process_vm_readv` calls of 8
/// bytes each ([`sys::readable_word`]: a frame of a few dozen bytes, as it
/// runs where little stack may be left).
fn probe_stack_left(sp: u64) -> Option<u64> {
    let mut page = sp & !(PROBE_PAGE - 1);
    let mut left = sp.saturating_sub(page);
    while left < MIN_STACK_FOR_UNWIND {
        page = page.checked_sub(PROBE_PAGE)?;
        if !sys::readable_word(page).ok()? {
            break;
        }
        left += PROBE_PAGE;
    }
    Some(left)
}

/// For a stack pointer not in the readable-range table: the readable range
/// from `sp`'s page upwards, as far as the kernel can copy it (at most
/// [`PROBE_MAX_BYTES`]), found with `process_vm_readv` on this process
/// (which stops at an unreadable page instead of faulting). Thread stacks
/// then unwind whatever else the process maps. `None` if `sp` is not
/// readable or the kernel refuses the probe (a seccomp filter).
///
/// Limit: the probe cannot see mapping boundaries, so where a readable
/// mapping directly follows the stack's top the range runs on into it. Its
/// reads are the unwinder's and the stack scan's, which stay inside the
/// stack unless frames are garbage; a read there would fault only if
/// another thread unmapped that neighbour in the microseconds of the
/// unwind. (A stack found in the table is exact: its own mapping.)
///
/// # Async-signal safety
/// `process_vm_readv` calls (64 pages each) into a page-sized stack buffer.
#[inline(never)]
fn probe_stack(sp: u64) -> Option<Range> {
    let start = sp & !(PROBE_PAGE - 1);
    let mut scratch = [0u8; PROBE_PAGE as usize];
    let readable = sys::readable_bytes(start, PROBE_MAX_BYTES, &mut scratch).ok()?;
    let range = Range {
        start,
        end: start.checked_add(readable)?,
        executable: false,
        grows_down: false,
    };
    range.contains(sp, 8).then_some(range)
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
    /// Whether the handler walks the stack: false only in the measuring
    /// rounds of [`crate::floor::capture_without_walk`], whose handlers do
    /// everything else a capture handler does (the thread-CPU clock, the
    /// stack's lookup, the interrupted system call, the name, the slot).
    pub walk_stack: bool,
}

/// Captures the calling thread, interrupted at `regs`, into `slot`, and
/// publishes it. `cpu_start_ns` is the thread-CPU clock at handler entry;
/// `alternate` the thread's alternate signal stack (from the handler's
/// `ucontext_t`, or [`sys::AltStack::query`] outside a capture handler).
/// Returns what the thread was doing when interrupted (the handler yields
/// the CPU only after capturing a thread that was running user code).
///
/// # Async-signal safety
/// No allocation, no locks (the cache pool is a try-lock with a bounded retry),
/// only bounds-checked reads of this thread's own stack and code; system calls:
/// `prctl(PR_GET_NAME)`, `clock_gettime`, `sched_yield`.
#[inline(never)]
pub fn capture_self(
    ctx: CaptureContext<'_>,
    regs: &Registers,
    mut slot: SlotWriter<'_>,
    cpu_start_ns: u64,
    alternate: Option<sys::AltStack>,
) -> arch::SyscallState {
    let end: StackEnd;
    let mut end_detail = 0u64;
    let mut scanned_from = 0u16;

    let interrupted_stack = ctx.ranges.lookup(regs.sp);
    let left = stack_left_beside(ctx.ranges, alternate, interrupted_stack);
    let roomy = left.is_none_or(|l| l >= MIN_STACK_FOR_UNWIND);
    // A stack missing from the table (full table, no /proc) is probed with
    // the kernel's help; only when there is room for the probe's buffer.
    let stack = interrupted_stack.or_else(|| if roomy { probe_stack(regs.sp) } else { None });
    let _ = slot.push_frame(regs.pc);
    match (stack, left) {
        _ if !ctx.walk_stack => end = StackEnd::NotWalked,
        (_, Some(left)) if left < MIN_STACK_FOR_UNWIND => {
            end = StackEnd::StackNearlyExhausted;
            end_detail = left;
        }
        (None, _) => end = StackEnd::UnknownStack,
        (Some(stack), _) if ctx.caches.is_empty() => {
            (end, end_detail) = unwind_frame_pointers(ctx.ranges, regs, &stack, &mut slot);
        }
        // Threads start at different caches of the pool: their stacks lie at
        // least 64 KiB apart (no `gettid` needed for the hint).
        (Some(stack), _) => match ctx.caches.acquire((regs.sp >> 16) as usize) {
            None => end = StackEnd::NoUnwinderFree,
            Some(mut lease) => {
                let (cache, coverage) = lease.caches();
                let walk = Walk {
                    modules: ctx.modules,
                    ranges: ctx.ranges,
                    stack: &stack,
                    cache,
                    coverage,
                };
                (end, end_detail, scanned_from) = walk.unwind(regs, &mut slot);
            }
        },
    }

    let before = regs
        .pc
        .checked_sub(SYSCALL_INSN_LEN as u64)
        .and_then(|a| code_bytes::<SYSCALL_INSN_LEN>(ctx.ranges, a));
    let syscall = arch::interrupted_syscall(regs, code_bytes(ctx.ranges, regs.pc), before);
    let name = sys::thread_name();
    let pause_ns = sys::thread_cpu_ns().saturating_sub(cpu_start_ns);
    slot.publish(CaptureSummary {
        name,
        end,
        end_detail,
        syscall,
        pause_ns,
        cpu_ns: cpu_start_ns,
        scanned_from,
    });
    syscall
}

/// Captures another thread, stopped at `regs` with its stack frozen (the
/// crashed thread waiting in its fault handler), into `slot`, and publishes
/// it; `name` is the thread's name as it read it, `cpu_ns` its thread-CPU
/// clock (0: unknown), read for it by the caller since it runs no capture
/// handler of its own. The first frame is the
/// faulting instruction. A stack pointer in an unreadable page (a stack
/// overflow's guard page) is bounded by the readable mapping just above it.
/// Runs on the calling thread's stack, which must have
/// [`MIN_STACK_FOR_UNWIND`] left (the crash helper's has).
///
/// # Async-signal safety
/// As [`capture_self`]: bounds-checked reads of the frozen stack, no
/// allocation, no lock (the cache pool is a try-lock).
#[inline(never)]
pub fn capture_thread(
    ctx: CaptureContext<'_>,
    regs: &Registers,
    mut slot: SlotWriter<'_>,
    name: [u8; 16],
    cpu_ns: u64,
) {
    let mut end_detail = 0u64;
    let mut scanned_from = 0u16;
    let stack = ctx.ranges.lookup(regs.sp).or_else(|| {
        (1..=16u64).find_map(|pages| {
            let above = regs.sp.checked_add(pages * 4096)?;
            ctx.ranges.lookup(above)
        })
    });
    let _ = slot.push_frame(regs.pc);
    let end = match stack {
        None => StackEnd::UnknownStack,
        Some(stack) if ctx.caches.is_empty() => {
            let (end, detail) = unwind_frame_pointers(ctx.ranges, regs, &stack, &mut slot);
            end_detail = detail;
            end
        }
        Some(stack) => match ctx.caches.acquire(sys::gettid() as usize) {
            None => StackEnd::NoUnwinderFree,
            Some(mut lease) => {
                let (cache, coverage) = lease.caches();
                let walk = Walk {
                    modules: ctx.modules,
                    ranges: ctx.ranges,
                    stack: &stack,
                    cache,
                    coverage,
                };
                let (end, detail, scanned) = walk.unwind(regs, &mut slot);
                end_detail = detail;
                scanned_from = scanned;
                end
            }
        },
    };
    slot.publish(CaptureSummary {
        name,
        end,
        end_detail,
        syscall: SyscallState::Running,
        pause_ns: 0,
        cpu_ns,
        scanned_from,
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

/// How far above the stack pointer a scan looks for a return address.
const SCAN_WORDS: u64 = 512;

/// One thread's unwind: framehop with the leased cache, plus stack scanning
/// where the code has no unwind information.
struct Walk<'a> {
    modules: &'a ModuleSet,
    ranges: &'a RangeTable,
    stack: &'a Range,
    cache: &'a mut NativeCache,
    coverage: &'a mut CoverageCache,
}

impl Walk<'_> {
    /// Unwinds from `regs` (the first frame is already recorded) and appends
    /// return addresses to `slot`. Returns how the stack ends, its detail,
    /// and the index of the first frame found by scanning (0: none).
    ///
    /// framehop is exact where there is unwind information. Where there is
    /// none (hand-written assembly, C built without unwind tables: all of
    /// static musl) it only guesses (the leaf's return address at the stack
    /// pointer, then frame pointers), and in such code those guesses skip
    /// callers or end the stack. There the stack is scanned instead, as
    /// crash reporters do: the first word above the stack pointer that is a
    /// return address right after a call instruction, in a module, is taken
    /// as the caller, and framehop goes on from it.
    ///
    /// Kept out of line so its large stack frame (framehop's DWARF
    /// evaluation) is only entered after the stack check.
    ///
    /// # Async-signal safety
    /// framehop with `MustNotAllocateDuringUnwind`, gimli's zero-copy FDE
    /// search; stack reads bounded by `stack`, code reads by the range table.
    #[inline(never)]
    fn unwind(mut self, regs: &Registers, slot: &mut SlotWriter<'_>) -> (StackEnd, u64, u16) {
        let stack = self.stack;
        let mut read_stack = |address: u64| read_u64_in(stack, address);
        let mut unwind_regs = arch::unwind_regs(regs);
        let mut address = FrameAddress::from_instruction_pointer(regs.pc);
        let mut scanned_from = 0u16;
        loop {
            let lookup = address.address_for_lookup();
            let scanned = if self.coverage.lacks_unwind_info(self.modules, lookup) {
                self.scan_for_caller(lookup, &unwind_regs, &mut read_stack)
            } else {
                None
            };
            let step = match scanned {
                Some((return_address, caller)) => {
                    unwind_regs = caller;
                    if scanned_from == 0 {
                        scanned_from = u16::try_from(slot.frame_count()).unwrap_or(u16::MAX);
                    }
                    Ok(Some(return_address))
                }
                None => self.modules.unwinder.unwind_frame(
                    address,
                    &mut unwind_regs,
                    self.cache,
                    &mut read_stack,
                ),
            };
            match step {
                Ok(Some(return_address)) => {
                    if !slot.push_frame(return_address) {
                        return (StackEnd::Truncated, 0, scanned_from);
                    }
                    match FrameAddress::from_return_address(return_address) {
                        Some(next) => address = next,
                        None => return (StackEnd::NullReturnAddress, 0, scanned_from),
                    }
                }
                Ok(None) => return (StackEnd::Root, 0, scanned_from),
                Err(framehop::Error::CouldNotReadStack(at)) => {
                    return (StackEnd::UnreadableStack, at, scanned_from);
                }
                Err(framehop::Error::DidNotAdvance) => {
                    return (StackEnd::DidNotAdvance, 0, scanned_from);
                }
                Err(framehop::Error::ReturnAddressIsNull) => {
                    return (StackEnd::NullReturnAddress, 0, scanned_from);
                }
                Err(_) => return (StackEnd::UnwindFailed, 0, scanned_from),
            }
        }
    }

    /// Looks for the caller of a frame without unwind information (`callee`
    /// is its lookup address): the first word at or above its stack pointer
    /// that points into a module's code right after a call instruction. A
    /// stale return address left in an unused slot passes those checks too,
    /// so a direct call must lead to the callee's function (or to code that
    /// may have tail-called it), and a candidate in code with unwind
    /// information must also unwind one frame further to code (or to the
    /// root). Returns the return address and the caller's registers.
    ///
    /// # Async-signal safety
    /// Bounded reads of the stack and of code bytes; framehop for the check.
    fn scan_for_caller(
        &mut self,
        callee: u64,
        callee_regs: &arch::UnwindRegs,
        read_stack: &mut impl FnMut(u64) -> Result<u64, ()>,
    ) -> Option<(u64, arch::UnwindRegs)> {
        let sp = callee_regs.sp();
        for word in 0..SCAN_WORDS {
            let at = sp.checked_add(word * 8)?;
            let value = read_stack(at).ok()?;
            let lookup = value.wrapping_sub(1);
            if self.modules.module_for(lookup).is_none()
                || !self.ranges.find(lookup).is_some_and(|r| r.executable)
            {
                continue;
            }
            let Some(before) = value
                .checked_sub(8)
                .and_then(|a| code_bytes::<8>(self.ranges, a))
            else {
                continue;
            };
            if !arch::follows_call(before) {
                continue;
            }
            if let Some(target) = arch::direct_call_target(before, value)
                && !self.call_may_lead_to(target, callee)
            {
                continue;
            }
            let caller = arch::caller_regs_from_scan(value, at, callee_regs)?;
            if self.modules.has_unwind_info(lookup) == Some(true) {
                let mut trial = caller;
                let next = FrameAddress::from_return_address(value).map(|address| {
                    self.modules
                        .unwinder
                        .unwind_frame(address, &mut trial, self.cache, read_stack)
                });
                let plausible = match next {
                    Some(Ok(Some(next))) => self
                        .ranges
                        .find(next.wrapping_sub(1))
                        .is_some_and(|r| r.executable),
                    Some(Ok(None)) => true,
                    _ => false,
                };
                if !plausible {
                    continue;
                }
            }
            return Some((value, caller));
        }
        None
    }

    /// Whether a direct call to `target` can have led to the function that
    /// contains `callee`: it is that function, or code that may have
    /// tail-called it (code without unwind information, like the callee
    /// itself; code without a symbol, like a PLT stub). True when the
    /// callee's function is unknown.
    ///
    /// # Async-signal safety
    /// Binary searches of setup-time tables, and the coverage cache.
    fn call_may_lead_to(&mut self, target: u64, callee: u64) -> bool {
        // A call into another module goes through a PLT stub: compare the
        // function the stub jumps to (its GOT slot is bound by now: the call
        // has happened).
        let target = self.through_plt(target).unwrap_or(target);
        let function_start = |address: u64| {
            let hit = self.modules.resolve(address, false)?.symbol?;
            address.checked_sub(hit.offset)
        };
        let Some(callee_function) = function_start(callee) else {
            return true;
        };
        match function_start(target) {
            Some(f) if f == callee_function => true,
            None => true,
            Some(_) => self.coverage.lacks_unwind_info(self.modules, target),
        }
    }

    /// Where the PLT stub at `stub` jumps, if it is one and its GOT slot
    /// holds an address in a module.
    ///
    /// # Async-signal safety
    /// Bounded reads of code and of the GOT slot, both in listed mappings.
    fn through_plt(&self, stub: u64) -> Option<u64> {
        // Both reads stay inside modules of the set (see `read_u64_in`).
        self.modules.module_for(stub)?;
        let slot = arch::plt_slot(code_bytes::<16>(self.ranges, stub)?, stub)?;
        self.modules.module_for(slot)?;
        let range = self.ranges.lookup(slot)?;
        let target = read_u64_in(&range, slot).ok()?;
        self.modules.module_for(target).map(|_| target)
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
