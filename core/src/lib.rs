//! # guru-core
//!
//! The async-signal-safe engine of guru (Guru Meditation Reports for Rust
//! processes): on a trigger signal it captures every thread's stack — each
//! thread unwinds *itself* from its signal context in microseconds — and
//! writes a report, without allocating, without locks, without stopping the
//! world.
//!
//! ```no_run
//! // Core-only mode: SIGUSR2 writes a report to stderr from the signal handler.
//! guru_core::install(guru_core::Options::default()).expect("install guru");
//! ```
//!
//! The data flows through the modules in this order:
//! [`setup`] (modules, symbols, preallocation) → [`trigger`] (who asked) →
//! [`round`] (fan-out and gather) → [`capture`](mod@capture) (each thread, in its handler,
//! into its [`slots`] entry) → [`symbolize`] → [`render`] → [`write`](mod@write).
//!
//! # Async-signal safety
//!
//! Every function reachable from a signal handler says so in an
//! `# Async-signal safety` section. On those paths the core never allocates
//! (all memory is prepared by [`install`]), never takes a lock that can block
//! (the only lock-like thing is a try-lock on the unwinder cache pool, with a
//! bounded retry), never panics (the handler-reachable modules deny `unwrap`,
//! `panic!` and unchecked indexing), reads stack memory only inside the
//! mapping that contains the interrupted stack pointer (listed readable from
//! `/proc/self/maps` at the start of the round), and saves and restores
//! `errno`. System calls used: `write`, `poll`, `read`, `open`, `close`,
//! `getdents64`, `gettid`, `getpid`, `rt_tgsigqueueinfo`, `futex`,
//! `clock_gettime`, `prctl`, `sched_yield`, `rt_sigprocmask`, `sigaltstack`
//! (query only), `lseek` and `fstat` (on the `/proc` descriptors kept from
//! install), `process_vm_readv` (on this process, to probe a stack missing
//! from the range table). Output is bounded: a report written from the
//! trigger handler to a descriptor nobody reads gives up one round deadline
//! after it began writing, and the next report says how much was dropped and
//! why (see [`write`](mod@write)).
//!
//! # Crash reports
//!
//! With [`Options::crash_reports`] (default true) [`install`] also installs
//! handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT and SIGSYS
//! (`SA_SIGINFO | SA_ONSTACK`, chained to what was there before) and starts
//! one helper thread, `guru-crash` (`pthread_create`, 512 KiB stack, idle on
//! a futex); a crash then writes a report to `output_fd` and the process
//! dies as it would have. See [`crash`] for how, and its limits.
//!
//! # Memory
//!
//! [`install`] preallocates everything; [`Engine::memory`] reports it. With the
//! defaults (1024 threads × 128 frames):
//!
//! | part | bytes |
//! |---|---|
//! | slot table (1024 × 128 frames) | ~1.1 MiB |
//! | readable-range table (3072 ranges) | 48 KiB |
//! | unwinder caches (≤ 8) | ~8 KiB + framehop's per-cache state each |
//! | scratch (maps, dirents, output) | 92 KiB |
//!
//! plus the symbol tables, which depend on the program (function symbols of
//! every module, names copied).
//!
//! # Portability
//!
//! Linux only, on x86_64 and aarch64, with glibc or musl. A thread's capture
//! handler needs ~17 KiB of stack; it does not use `SA_ONSTACK`, and a thread
//! with less than [`capture::MIN_STACK_FOR_UNWIND`] left is listed "not
//! unwound" instead of risking an overflow.
#![no_std]
#![doc(test(attr(deny(warnings))))]

extern crate alloc;

pub mod arch;
pub mod capture;
pub mod context;
pub mod crash;
pub mod elf;
mod fixed;
#[doc(hidden)]
pub mod floor;
pub mod format;
pub mod fp;
mod hot;
pub mod procfs;
pub mod ranges;
pub mod render;
pub mod round;
pub mod setup;
pub mod slots;
pub mod storage;
pub mod symbolize;
pub mod sys;
pub mod trigger;
pub mod write;

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

pub use round::{RoundGuard, RoundSummary};
pub use slots::{SlotView, StackEnd};
pub use storage::StaticArena;
pub use symbolize::{ModuleInfo, ModuleSet};
pub use trigger::Trigger;

use storage::StoreMut;

/// Configuration of the engine, fixed at [`install`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The signal that triggers a report in core-only mode (default SIGUSR2).
    /// `None`: install no trigger handler (the std adapter installs its own).
    pub trigger_signal: Option<i32>,
    /// The real-time signal used to make each thread capture itself. `None`
    /// picks the first real-time signal from `SIGRTMIN + 3` that has no handler.
    pub capture_signal: Option<i32>,
    /// Where core-only reports are written (default 2, stderr).
    pub output_fd: i32,
    /// How long a round waits for threads, in milliseconds (default 100).
    /// A core report also gives up writing to `output_fd` this long after
    /// it began writing (see [`write`](mod@write), # Bounded writes).
    pub round_deadline_ms: u32,
    /// Most threads captured in one round (default 1024); the rest are counted
    /// as left out.
    pub max_threads: usize,
    /// Most frames kept per thread (default 128); deeper stacks are marked
    /// truncated.
    pub max_frames: usize,
    /// Unwinder caches in the pool (default: twice the CPUs, at least 2, at
    /// most 8).
    pub unwinder_caches: usize,
    /// Output buffer for the core's text report (default 64 KiB; the report is
    /// flushed whenever it fills, so this bounds write sizes, not reports).
    pub output_buffer_bytes: usize,
    /// Readable mappings tracked (default: 2 × max_threads + 1024).
    pub max_mappings: usize,
    /// Load function symbols from `.symtab`/`.dynsym` at setup (default true).
    pub symbols: bool,
    /// Unwind by walking frame pointers only (default false): no unwind
    /// tables, no unwinder caches, a few hundred bytes of handler stack. Needs
    /// code built with frame pointers (`-C force-frame-pointers=yes` on
    /// x86_64); see [`fp`] for what it cannot see.
    pub frame_pointers_only: bool,
    /// Ask the kernel about mappings with `PROCMAP_QUERY` where it answers
    /// (Linux 6.11 and later; default true): each round then lists only the
    /// code mappings, and each thread looks up its own stack as it captures
    /// itself, instead of the round reading and parsing the whole text of
    /// `/proc/self/maps`. Where the ioctl is missing (older kernels,
    /// qemu-user) the text is read as with `false`.
    pub maps_query: bool,
    /// Crash reports (default true): a fatal signal (SIGSEGV, SIGBUS, SIGILL,
    /// SIGFPE, SIGABRT, SIGSYS) makes a report, then the process dies as it
    /// would have; see [`crash`].
    pub crash_reports: bool,
    /// How long a crash report may take before the process dies anyway, in
    /// milliseconds (default 3000).
    pub crash_deadline_ms: u32,
    /// Thread context (labels, spans, breadcrumbs): how many threads can
    /// have a record and its capacities (see [`context`]).
    pub context: context::ContextOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options::DEFAULT
    }
}

/// Size of the buffer `/proc/self/maps` is read through.
const MAPS_BUFFER_BYTES: usize = 16 * 1024;
/// Size of the buffer `/proc/self/task` is listed through.
const DENTS_BUFFER_BYTES: usize = 8 * 1024;

impl Options {
    /// The defaults: SIGUSR2 → report on stderr, 1024 threads × 128 frames,
    /// DWARF unwinding, symbols.
    pub const DEFAULT: Options = Options {
        trigger_signal: Some(libc::SIGUSR2),
        capture_signal: None,
        output_fd: 2,
        round_deadline_ms: 100,
        max_threads: 1024,
        max_frames: 128,
        unwinder_caches: 0,
        output_buffer_bytes: 64 * 1024,
        max_mappings: 0,
        symbols: true,
        frame_pointers_only: false,
        maps_query: true,
        crash_reports: true,
        crash_deadline_ms: crash::DEFAULT_DEADLINE_MS,
        context: context::ContextOptions::DEFAULT,
    };

    /// The smallest footprint, for [`install_static`]: 64 threads × 32
    /// frames, frame pointers only, no symbols (frames are printed as
    /// `module+0xoffset` against the module list with build-ids), a 4 KiB
    /// output buffer, 256 tracked mappings.
    pub const SMALLEST: Options = Options {
        max_threads: 64,
        max_frames: 32,
        unwinder_caches: 0,
        output_buffer_bytes: 4096,
        max_mappings: 256,
        symbols: false,
        frame_pointers_only: true,
        maps_query: true,
        context: context::ContextOptions::OFF,
        ..Options::DEFAULT
    };

    /// These options with room for `threads` threads of `frames` frames each.
    pub const fn with_capacity(self, threads: usize, frames: usize) -> Options {
        Options {
            max_threads: threads,
            max_frames: frames,
            ..self
        }
    }

    /// Readable mappings tracked (`max_mappings`, or its default).
    pub const fn mappings(&self) -> usize {
        match self.max_mappings {
            0 => self.max_threads.saturating_mul(2).saturating_add(1024),
            n => n,
        }
    }

    /// Bytes of static memory [`install_static`] needs for these options: the
    /// size to give a [`StaticArena`]. Everything the engine keeps is in it
    /// (engine, slot table with frames, range table, scratch and output
    /// buffers, module table); nothing else is allocated.
    pub const fn static_bytes(&self) -> usize {
        storage::bytes_for::<Engine>(1)
            .saturating_add(slots::SlotTable::static_bytes(
                self.max_threads,
                self.max_frames,
            ))
            .saturating_add(ranges::RangeTable::static_bytes(self.mappings()))
            .saturating_add(storage::bytes_for::<u8>(MAPS_BUFFER_BYTES))
            .saturating_add(storage::bytes_for::<u8>(DENTS_BUFFER_BYTES))
            .saturating_add(storage::bytes_for::<u8>(self.output_buffer_bytes))
            .saturating_add(storage::bytes_for::<u32>(self.max_threads))
            .saturating_add(fixed::static_bytes())
            .saturating_add(self.context.static_bytes())
    }
}

/// Errors from setting up or using the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// [`install`] was already called in this process; there is one engine per
    /// process (signal handlers are process-wide).
    AlreadyInstalled,
    /// The engine is not installed: call [`install`] first.
    NotInstalled,
    /// An option is out of range; the text names it and the allowed range.
    InvalidOption(&'static str),
    /// No free real-time signal for capturing; set `Options::capture_signal`.
    NoCaptureSignal,
    /// The chosen capture signal already has a handler; pick another one.
    CaptureSignalInUse(i32),
    /// A report round is already running; the request was counted as coalesced.
    RoundInProgress,
    /// The [`StaticArena`] given to [`install_static`] is smaller than
    /// [`Options::static_bytes`], or was already used.
    ArenaTooSmall {
        /// Bytes the options need.
        needed: usize,
        /// Bytes the arena has (0 if it was already used).
        available: usize,
    },
    /// A system call failed during setup or writing; `errno` says why.
    Sys {
        /// What was being done.
        operation: &'static str,
        /// The errno.
        errno: i32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyInstalled => write!(f, "guru is already installed in this process"),
            Error::NotInstalled => {
                write!(f, "guru is not installed: call guru_core::install first")
            }
            Error::InvalidOption(what) => write!(f, "invalid option: {what}"),
            Error::NoCaptureSignal => {
                write!(
                    f,
                    "no free real-time signal for capturing threads: set Options::capture_signal"
                )
            }
            Error::CaptureSignalInUse(s) => {
                write!(
                    f,
                    "signal {s} already has a handler: choose another Options::capture_signal"
                )
            }
            Error::RoundInProgress => write!(
                f,
                "a report is already being produced; this request was coalesced"
            ),
            Error::ArenaTooSmall { needed, available } => write!(
                f,
                "static arena too small or already used: {needed} bytes needed, {available} available"
            ),
            Error::Sys { operation, errno } => write!(f, "{operation} failed (errno {errno})"),
        }
    }
}

impl core::error::Error for Error {}

/// Buffers owned by whoever holds the round flag.
#[derive(Debug)]
pub(crate) struct Scratch {
    pub(crate) maps: StoreMut<u8>,
    pub(crate) dents: StoreMut<u8>,
    pub(crate) out: StoreMut<u8>,
    pub(crate) used: StoreMut<u32>,
    pub(crate) used_len: usize,
    /// Threads that did not answer last round (at most 64 remembered).
    pub(crate) unresponsive: [i32; 64],
    pub(crate) unresponsive_len: usize,
    /// `/proc` descriptors kept from install (see [`round`]).
    pub(crate) proc: round::ProcFds,
}

/// The installed engine: everything a handler needs, prepared at setup.
#[derive(Debug)]
pub struct Engine {
    pub(crate) options: Options,
    pub(crate) capture_signal: i32,
    pub(crate) deadline_ns: u64,
    modules: AtomicPtr<ModuleSet>,
    pub(crate) slots: slots::SlotTable,
    pub(crate) ranges: ranges::RangeTable,
    pub(crate) caches: capture::CachePool,
    pub(crate) contexts: context::ContextTable,
    pub(crate) triggers: trigger::TriggerLog,
    pub(crate) round_active: AtomicBool,
    pub(crate) generation: AtomicU32,
    pub(crate) answered: AtomicU32,
    pub(crate) report_seq: AtomicU64,
    pub(crate) initiator_tid: AtomicI32,
    pub(crate) scratch: UnsafeCell<Scratch>,
    installed_monotonic_ns: u64,
    /// Installed by [`install_static`]: nothing may be allocated, ever.
    in_static_memory: bool,
}

// SAFETY: all shared state is atomic except `scratch`, which only the holder of
// `round_active` touches (see `round::begin`), and the module sets behind
// `modules`, which are immutable once published.
#[allow(unsafe_code)]
unsafe impl Sync for Engine {}
// SAFETY: as above; nothing in the engine is tied to the thread that built it.
#[allow(unsafe_code)]
unsafe impl Send for Engine {}

/// Preallocated memory, by part (see the crate docs, # Memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Slot table including frame storage.
    pub slots: usize,
    /// Readable-range table.
    pub ranges: usize,
    /// Unwinder cache pool.
    pub caches: usize,
    /// Scratch buffers (maps, dirents, output, slot list).
    pub scratch: usize,
    /// Symbol tables and module paths.
    pub symbols: usize,
    /// Thread-context table and the records made so far (~7 KiB each, on
    /// each thread's first use; see [`context`]).
    pub contexts: usize,
}

impl MemoryUse {
    /// Everything except symbols (which depend on the program).
    pub fn fixed(&self) -> usize {
        self.slots + self.ranges + self.caches + self.scratch + self.contexts
    }
}

static ENGINE: AtomicPtr<Engine> = AtomicPtr::new(core::ptr::null_mut());
static INSTALLING: AtomicBool = AtomicBool::new(false);

/// The installed engine, if any.
///
/// # Async-signal safety
/// One atomic load.
pub fn engine() -> Option<&'static Engine> {
    let p = ENGINE.load(Ordering::Acquire);
    // SAFETY: ENGINE is only ever set to a leaked `Box<Engine>` (never freed) or
    // to an engine in a `StaticArena` (`install_static`), so a non-null pointer
    // is valid for 'static.
    #[allow(unsafe_code)]
    unsafe {
        p.as_ref()
    }
}

fn choose_capture_signal(requested: Option<i32>) -> Result<i32, Error> {
    let (min, max) = (sys::sigrtmin(), sys::sigrtmax());
    match requested {
        Some(s) if s < min || s > max => Err(Error::InvalidOption(
            "capture_signal must be a real-time signal",
        )),
        Some(s) if sys::signal_has_handler(s) => Err(Error::CaptureSignalInUse(s)),
        Some(s) => Ok(s),
        None => (min + 3..=max)
            .find(|&s| !sys::signal_has_handler(s))
            .ok_or(Error::NoCaptureSignal),
    }
}

fn validate(o: &Options) -> Result<(), Error> {
    if o.max_threads == 0 || o.max_threads > 1 << 20 {
        return Err(Error::InvalidOption("max_threads must be 1..=1048576"));
    }
    if o.max_frames == 0 || o.max_frames > 4096 {
        return Err(Error::InvalidOption("max_frames must be 1..=4096"));
    }
    if o.output_buffer_bytes < 256 {
        return Err(Error::InvalidOption(
            "output_buffer_bytes must be at least 256",
        ));
    }
    if o.crash_deadline_ms < 10 || o.crash_deadline_ms > 600_000 {
        return Err(Error::InvalidOption(
            "crash_deadline_ms must be 10..=600000",
        ));
    }
    if o.round_deadline_ms == 0 || o.round_deadline_ms > 60_000 {
        return Err(Error::InvalidOption("round_deadline_ms must be 1..=60000"));
    }
    o.context.validate().map_err(Error::InvalidOption)?;
    if let Some(t) = o.trigger_signal
        && (!(1..=sys::sigrtmax()).contains(&t) || t == libc::SIGKILL || t == libc::SIGSTOP)
    {
        {
            return Err(Error::InvalidOption(
                "trigger_signal must be a catchable signal",
            ));
        }
    }
    Ok(())
}

/// Prepares the engine and installs the capture handler (and, if
/// `options.trigger_signal` is set, the trigger handler that produces a
/// report to `options.output_fd` straight from the signal handler).
///
/// Call it from normal context, early (before the process gets busy): it
/// enumerates modules, reads symbol tables and preallocates everything.
pub fn install(options: Options) -> Result<&'static Engine, Error> {
    validate(&options)?;
    if INSTALLING.swap(true, Ordering::AcqRel) {
        return Err(Error::AlreadyInstalled);
    }
    let result = install_inner(options);
    if result.is_err() {
        INSTALLING.store(false, Ordering::Release);
    }
    result
}

fn install_inner(options: Options) -> Result<&'static Engine, Error> {
    let capture_signal = capture_signal_for(&options)?;
    let module_set = Box::new(setup::build_module_set(options.symbols));
    let caches = match options.unwinder_caches {
        _ if options.frame_pointers_only => capture::CachePool::none(),
        0 => capture::CachePool::new((sys::online_cpus() * 2).clamp(2, 8)),
        n => capture::CachePool::new(n),
    };
    let scratch = Scratch::new(
        alloc::vec![0u8; MAPS_BUFFER_BYTES].into(),
        alloc::vec![0u8; DENTS_BUFFER_BYTES].into(),
        alloc::vec![0u8; options.output_buffer_bytes].into(),
        alloc::vec![0u32; options.max_threads].into(),
    );
    let engine = Box::new(Engine::assemble(
        options,
        capture_signal,
        Box::into_raw(module_set),
        slots::SlotTable::new(options.max_threads, options.max_frames),
        ranges::RangeTable::new(options.mappings()),
        caches,
        context::ContextTable::new(options.context),
        scratch,
        false,
    ));
    let engine: &'static Engine = Box::leak(engine);
    publish_and_install_handlers(engine)
}

/// Like [`install`], but with no heap at all: every table the engine keeps
/// is carved out of `arena`, static memory sized at build time with
/// [`Options::static_bytes`]; nothing is allocated, now or later.
///
/// The options must say `frame_pointers_only: true` and `symbols: false`
/// (DWARF unwinding and symbol tables need the heap); [`Options::SMALLEST`]
/// is a starting point. Frames are printed as `module+0xoffset` against the
/// Modules list (path, load address, build-id), to be symbolized offline.
/// Modules loaded after this call are not listed (no `refresh_modules`).
///
/// ```no_run
/// use guru_core::{Options, StaticArena};
/// const OPTIONS: Options = Options::SMALLEST.with_capacity(32, 48);
/// static ARENA: StaticArena<{ OPTIONS.static_bytes() }> = StaticArena::new();
/// guru_core::install_static(OPTIONS, &ARENA).expect("install guru");
/// ```
pub fn install_static<const N: usize>(
    options: Options,
    arena: &'static StaticArena<N>,
) -> Result<&'static Engine, Error> {
    validate(&options)?;
    if !options.frame_pointers_only || options.symbols {
        return Err(Error::InvalidOption(
            "install_static needs frame_pointers_only: true and symbols: false",
        ));
    }
    let needed = options.static_bytes();
    if N < needed {
        return Err(Error::ArenaTooSmall {
            needed,
            available: N,
        });
    }
    if INSTALLING.swap(true, Ordering::AcqRel) {
        return Err(Error::AlreadyInstalled);
    }
    let result = install_static_inner(options, arena, needed);
    if result.is_err() {
        INSTALLING.store(false, Ordering::Release);
    }
    result
}

fn install_static_inner<const N: usize>(
    options: Options,
    arena: &'static StaticArena<N>,
    needed: usize,
) -> Result<&'static Engine, Error> {
    let capture_signal = capture_signal_for(&options)?;
    let too_small = |available| Error::ArenaTooSmall { needed, available };
    let mut carver = arena.take().ok_or(too_small(0))?;
    let modules: &'static ModuleSet = fixed::module_set_in(&mut carver).ok_or(too_small(N))?;
    let slots = slots::SlotTable::new_in(&mut carver, options.max_threads, options.max_frames)
        .ok_or(too_small(N))?;
    let ranges = ranges::RangeTable::new_in(&mut carver, options.mappings()).ok_or(too_small(N))?;
    let contexts =
        context::ContextTable::new_in(&mut carver, options.context).ok_or(too_small(N))?;
    let mut buffer = |len: usize| carver.slice(len, |_| 0u8).ok_or(too_small(N));
    let maps = StoreMut::Static(buffer(MAPS_BUFFER_BYTES)?);
    let dents = StoreMut::Static(buffer(DENTS_BUFFER_BYTES)?);
    let out = StoreMut::Static(buffer(options.output_buffer_bytes)?);
    let used = StoreMut::Static(
        carver
            .slice(options.max_threads, |_| 0u32)
            .ok_or(too_small(N))?,
    );
    let scratch = Scratch::new(maps, dents, out, used);
    let engine = carver
        .one(Engine::assemble(
            options,
            capture_signal,
            core::ptr::from_ref(modules).cast_mut(),
            slots,
            ranges,
            capture::CachePool::none(),
            contexts,
            scratch,
            true,
        ))
        .ok_or(too_small(N))?;
    publish_and_install_handlers(engine)
}

/// The capture signal for `options`: the requested one or the first free
/// real-time signal, never the trigger signal.
fn capture_signal_for(options: &Options) -> Result<i32, Error> {
    let capture_signal = choose_capture_signal(options.capture_signal)?;
    if options.trigger_signal == Some(capture_signal) {
        return Err(Error::InvalidOption(
            "trigger_signal and capture_signal must differ",
        ));
    }
    Ok(capture_signal)
}

impl Scratch {
    fn new(
        maps: StoreMut<u8>,
        dents: StoreMut<u8>,
        out: StoreMut<u8>,
        used: StoreMut<u32>,
    ) -> Scratch {
        Scratch {
            maps,
            dents,
            out,
            used,
            used_len: 0,
            unresponsive: [0; 64],
            unresponsive_len: 0,
            proc: round::ProcFds::open(),
        }
    }
}

impl Engine {
    /// Puts an engine together from its prepared parts (heap or static).
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        options: Options,
        capture_signal: i32,
        modules: *mut ModuleSet,
        slots: slots::SlotTable,
        ranges: ranges::RangeTable,
        caches: capture::CachePool,
        contexts: context::ContextTable,
        scratch: Scratch,
        in_static_memory: bool,
    ) -> Engine {
        Engine {
            options,
            capture_signal,
            deadline_ns: u64::from(options.round_deadline_ms) * 1_000_000,
            modules: AtomicPtr::new(modules),
            slots,
            ranges,
            caches,
            contexts,
            triggers: trigger::TriggerLog::new(),
            round_active: AtomicBool::new(false),
            generation: AtomicU32::new(0),
            answered: AtomicU32::new(0),
            report_seq: AtomicU64::new(0),
            initiator_tid: AtomicI32::new(0),
            scratch: UnsafeCell::new(scratch),
            installed_monotonic_ns: sys::monotonic_ns(),
            in_static_memory,
        }
    }
}

/// Publishes the engine and installs its signal handlers.
fn publish_and_install_handlers(engine: &'static Engine) -> Result<&'static Engine, Error> {
    let (options, capture_signal) = (engine.options, engine.capture_signal);
    ENGINE.store(core::ptr::from_ref(engine).cast_mut(), Ordering::Release);

    let trigger = options.trigger_signal;
    sys::install_handler(sys::HandlerSpec {
        signal: capture_signal,
        handler: capture_signal_handler,
        // A trigger arriving while a thread captures itself goes to another
        // thread (or waits), keeping the capture short.
        block: trigger,
    })
    .map_err(|errno| Error::Sys {
        operation: "sigaction(capture signal)",
        errno,
    })?;
    sys::at_fork_child(reset_after_fork);
    if let Some(signal) = trigger {
        sys::install_handler(sys::HandlerSpec {
            signal,
            handler: trigger_signal_handler,
            block: None,
        })
        .map_err(|errno| Error::Sys {
            operation: "sigaction(trigger signal)",
            errno,
        })?;
    }
    if options.crash_reports {
        crash::install(engine)?;
    }
    Ok(engine)
}

/// In a forked child only the forking thread exists: a round that was running
/// in the parent can never finish, and slots being written by the parent's
/// other threads never will be. Start clean.
extern "C" fn reset_after_fork() {
    if let Some(engine) = engine() {
        engine.slots.reset_all();
        engine.round_active.store(false, Ordering::Release);
        engine.initiator_tid.store(0, Ordering::Relaxed);
    }
    crash::after_fork_child();
}

/// The capture-signal handler: the receiving thread captures itself into the
/// slot named by the signal's value, if that slot is still armed for it.
///
/// # Async-signal safety
/// See [`capture::capture_self`]; errno is saved and restored; signals not sent
/// by this process (`SI_QUEUE` from our own pid) are ignored.
extern "C" fn capture_signal_handler(
    _signal: i32,
    info: *mut libc::siginfo_t,
    ucontext: *mut c_void,
) {
    let _errno = sys::ErrnoGuard::save();
    let Some(engine) = engine() else { return };
    // SAFETY: `info` is the kernel's siginfo for this SA_SIGINFO handler.
    #[allow(unsafe_code)]
    let si = unsafe { sys::read_siginfo(info) };
    if floor::is_floor(si.value) {
        return floor::answer(engine, &si);
    }
    let cpu_start = sys::thread_cpu_ns();
    if si.code != libc::SI_QUEUE || !hot::is_own_pid(si.pid) {
        return;
    }
    let generation = (si.value as u64 >> 32) as u32;
    let index = floor::slot_index(si.value);
    let tid = sys::gettid();
    let Some(mut writer) = engine.slots.claim(index, generation, tid) else {
        return;
    };
    writer.set_context(engine.contexts.snapshot_own(tid, generation));
    // SAFETY: `ucontext` is the kernel's ucontext for this running handler.
    #[allow(unsafe_code)]
    let regs = unsafe { sys::registers_from_ucontext(ucontext) };
    let ctx = capture::CaptureContext {
        ranges: &engine.ranges,
        caches: &engine.caches,
        modules: engine.module_set(),
        walk_stack: floor::walks_stack(si.value),
    };
    // SAFETY: as for the registers: the kernel's ucontext for this handler.
    #[allow(unsafe_code)]
    let alternate = unsafe { sys::AltStack::from_ucontext(ucontext) };
    let interrupted = match regs {
        Some(regs) => capture::capture_self(ctx, &regs, writer, cpu_start, alternate),
        None => {
            writer.publish(slots::CaptureSummary {
                name: sys::thread_name(),
                end: StackEnd::UnwindFailed,
                end_detail: 0,
                syscall: arch::SyscallState::Running,
                pause_ns: 0,
                cpu_ns: cpu_start,
                scanned_from: 0,
            });
            arch::SyscallState::Running
        }
    };
    // Yield the CPU once captured (never in the initiator's own thread): on a
    // machine with more runnable threads than CPUs, the threads that still
    // have a capture signal pending (and the initiator, woken by the last
    // answer) then run now instead of after every other thread's full time
    // slice (2 busy threads of 8 on 2 CPUs: capture 3.5 ms -> 0.4 ms). The
    // yielding thread gives up the rest of its slice once per report; on an
    // idle CPU the call returns at once. A thread interrupted inside a
    // blocking system call is not made to yield: the kernel restarts that
    // call when the handler returns and the thread goes back to sleep,
    // which frees the CPU anyway; a yield first would only add a trip
    // through the scheduler (at 4096 parked threads on 2 CPUs it cost each
    // of them about 4.5 µs of CPU per round).
    if engine.generation.load(Ordering::Acquire) == generation {
        round::note_answer(engine);
        let running = !matches!(interrupted, arch::SyscallState::InSyscall(_));
        if running && engine.initiator_tid.load(Ordering::Relaxed) != tid {
            sys::sched_yield();
        }
    }
}

/// The core-only trigger handler: records the trigger and, unless a round is
/// already running (then it is counted as coalesced), produces a whole report
/// to `Options::output_fd` right here, the interrupted thread captured from
/// its ucontext. On a thread with less than [`capture::MIN_STACK_FOR_UNWIND`]
/// of stack left it produces no report (the trigger is counted as coalesced
/// and a one-line note is written instead): the round would overflow it.
///
/// # Async-signal safety
/// See [`round::RoundGuard::capture`] and [`render::write_text_report`].
extern "C" fn trigger_signal_handler(
    signal: i32,
    info: *mut libc::siginfo_t,
    ucontext: *mut c_void,
) {
    let _errno = sys::ErrnoGuard::save();
    let Some(engine) = engine() else { return };
    // SAFETY: `info` is the kernel's siginfo for this SA_SIGINFO handler.
    #[allow(unsafe_code)]
    let si = unsafe { sys::read_siginfo(info) };
    // SAFETY: `ucontext` is the kernel's ucontext for this running handler.
    #[allow(unsafe_code)]
    let regs = unsafe { sys::registers_from_ucontext(ucontext) };
    let trigger = Trigger {
        unix_ns: sys::realtime_ns(),
        signal,
        code: si.code,
        sender_pid: si.pid,
        sender_uid: si.uid,
        started_report: false,
    };
    let _ = report_to_fd(engine, trigger, regs.as_ref(), engine.options.output_fd);
}

/// One line saying why a trigger did not start a report.
///
/// # Async-signal safety
/// Formats into a stack buffer; `write(2)`.
fn write_trigger_refused(fd: i32, left: u64) {
    use core::fmt::Write as _;
    let mut buf = [0u8; 160];
    let mut w = format::SliceWriter::new(&mut buf);
    let _ = writeln!(
        w,
        "guru: trigger not served on thread {}: {left} bytes of stack left, a report needs {}; counted as coalesced",
        sys::gettid(),
        capture::MIN_STACK_FOR_UNWIND
    );
    let _ = write::FdSink::write_all_fd(fd, w.as_str().as_bytes());
}

fn report_to_fd(
    engine: &'static Engine,
    mut trigger: Trigger,
    own_registers: Option<&arch::Registers>,
    fd: i32,
) -> Result<RoundSummary, Error> {
    let Some(mut round) = round::begin(engine, Some(trigger)) else {
        engine.triggers.record(&trigger);
        return Err(Error::RoundInProgress);
    };
    // In a signal handler (own registers given) the whole round runs on the
    // stack of the thread that took the signal. One with little stack left
    // (deep recursion, a small alternate stack) would overflow it and take
    // the process down: count the trigger as coalesced instead and say so;
    // the next one most likely lands on another thread. (The caller, the
    // trigger handler, ignores the error.)
    if own_registers.is_some()
        && let Some(left) = round.own_stack_left()
        && left < capture::MIN_STACK_FOR_UNWIND
    {
        round.cancel();
        engine.triggers.record(&trigger);
        write_trigger_refused(fd, left);
        return Err(Error::RoundInProgress);
    }
    trigger.started_report = true;
    engine.triggers.record(&trigger);
    round.capture(own_registers);
    render::write_text_report(&mut round, fd).map_err(|errno| Error::Sys {
        operation: "write(report)",
        errno,
    })?;
    Ok(*round.summary())
}

/// Produces a core text report now and writes it to `fd`. Works from any
/// context, signal handlers included; the calling thread appears in the report
/// (in normal context it signals itself, so its stack shows this call).
///
/// Returns [`Error::RoundInProgress`] (and counts a coalesced trigger) when a
/// report is already being produced.
///
/// # Async-signal safety
/// As [`round::RoundGuard::capture`] and [`render::write_text_report`].
pub fn write_report(fd: i32) -> Result<RoundSummary, Error> {
    let engine = engine().ok_or(Error::NotInstalled)?;
    let trigger = Trigger {
        unix_ns: sys::realtime_ns(),
        ..Trigger::default()
    };
    report_to_fd(engine, trigger, None, fd)
}

/// Runs a capture round and hands it to `f` (for the std adapter, which
/// symbolizes and renders in its reporter thread). `trigger` is the signal that
/// asked for it, if any. While `f` runs, the round is held: other rounds
/// coalesce.
///
/// Not for signal handlers if `f` allocates.
pub fn capture<R>(
    trigger: Option<Trigger>,
    f: impl FnOnce(&CapturedRound<'_, '_>) -> R,
) -> Result<R, Error> {
    let engine = engine().ok_or(Error::NotInstalled)?;
    let mut trigger = trigger.unwrap_or(Trigger {
        unix_ns: sys::realtime_ns(),
        ..Trigger::default()
    });
    let Some(mut round) = round::begin(engine, Some(trigger)) else {
        engine.triggers.record(&trigger);
        return Err(Error::RoundInProgress);
    };
    trigger.started_report = true;
    engine.triggers.record(&trigger);
    round.capture(None);
    // The caller may allocate from here on: this thread is no longer capturing.
    engine.initiator_tid.store(0, Ordering::Relaxed);
    Ok(f(&CapturedRound { round: &round }))
}

/// Runs a capture round that is not a report and hands it to `f`: the
/// same round as [`capture()`] (every thread unwinds itself), but it takes no
/// report sequence number (its summary says 0) and records no trigger, so
/// the reports that follow are numbered and listed as if it never ran. The
/// std adapter's symbol warm-up uses it to parse, at install, the debug
/// info of the stacks its first report will show.
///
/// [`Error::RoundInProgress`] when a round is running (nothing is counted
/// as coalesced: no report was asked for).
///
/// Not for signal handlers if `f` allocates.
pub fn capture_unnumbered<R>(f: impl FnOnce(&CapturedRound<'_, '_>) -> R) -> Result<R, Error> {
    capture_unnumbered_flagged(0, f)
}

/// [`capture_unnumbered`] with `flags` or-ed into every capture signal's
/// value (0, or [`floor`]'s no-walk bit for
/// [`floor::capture_without_walk`]).
pub(crate) fn capture_unnumbered_flagged<R>(
    flags: u64,
    f: impl FnOnce(&CapturedRound<'_, '_>) -> R,
) -> Result<R, Error> {
    let engine = engine().ok_or(Error::NotInstalled)?;
    let mut round = round::begin_unnumbered(engine).ok_or(Error::RoundInProgress)?;
    round.capture_flagged(None, flags);
    // The caller may allocate from here on: this thread is no longer capturing.
    engine.initiator_tid.store(0, Ordering::Relaxed);
    Ok(f(&CapturedRound { round: &round }))
}

/// Records a trigger that did not start a round itself (the std adapter's
/// signal action calls this before waking its reporter thread).
///
/// # Async-signal safety
/// Atomics only.
pub fn note_trigger(trigger: &Trigger) {
    if let Some(engine) = engine() {
        engine.triggers.record(trigger);
    }
}

/// Counts `n` triggers as coalesced into the next report without listing
/// them among the recent triggers (the std adapter's signal action counts
/// this way the triggers that found its wake-up pipe full).
///
/// # Async-signal safety
/// Atomics only.
pub fn note_coalesced(n: u64) {
    if let Some(engine) = engine() {
        engine.triggers.add_coalesced(n);
    }
}

/// Makes `signal` a core-only trigger: from now on it runs the handler of
/// [`Options::trigger_signal`] (the whole report produced in the handler and
/// written to [`Options::output_fd`]). For the std adapter in a forked
/// child, whose reporter thread did not survive the fork; it replaces
/// whatever handled `signal` before.
///
/// # Async-signal safety
/// One `sigaction(2)`: callable from a `pthread_atfork` child handler.
pub fn serve_trigger_in_core(signal: i32) -> Result<(), Error> {
    if engine().is_none() {
        return Err(Error::NotInstalled);
    }
    sys::install_handler(sys::HandlerSpec {
        signal,
        handler: trigger_signal_handler,
        block: None,
    })
    .map_err(|errno| Error::Sys {
        operation: "sigaction(trigger signal)",
        errno,
    })
}

/// A finished capture round, read-only.
#[derive(Debug)]
pub struct CapturedRound<'r, 'e> {
    round: &'r RoundGuard<'e>,
}

/// One thread of a round.
#[derive(Debug)]
pub enum ThreadCapture<'r> {
    /// The thread captured itself.
    Captured(SlotView<'r>),
    /// The thread did not answer (`phase` says how far it got).
    Missing {
        /// Thread id.
        tid: i32,
        /// Where its slot stopped.
        phase: slots::Phase,
    },
}

impl<'e> CapturedRound<'_, 'e> {
    /// The round's figures.
    pub fn summary(&self) -> &RoundSummary {
        self.round.summary()
    }

    /// The modules the frames were captured against.
    pub fn modules(&self) -> &'e ModuleSet {
        self.round.modules
    }

    /// The slot table's capacity.
    pub fn capacity(&self) -> usize {
        self.round.engine.slots.capacity()
    }

    /// The round deadline in milliseconds.
    pub fn deadline_ms(&self) -> u64 {
        self.round.engine.deadline_ns / 1_000_000
    }

    /// Every thread listed in this round, in `/proc/self/task` order.
    pub fn threads(&self) -> impl Iterator<Item = ThreadCapture<'_>> + '_ {
        let engine = self.round.engine;
        let generation = self.round.summary.generation;
        self.round
            .used_indices()
            .map(move |i| match engine.slots.read(i, generation) {
                Some(v) => ThreadCapture::Captured(v),
                None => ThreadCapture::Missing {
                    tid: engine.slots.tid(i),
                    phase: engine.slots.phase(i, generation),
                },
            })
    }

    /// What a captured thread's handler copied of its context (labels,
    /// spans, breadcrumbs), if it has a record; see [`context`].
    pub fn context(&self, view: &SlotView<'_>) -> Option<context::ContextView<'_>> {
        self.round
            .engine
            .contexts
            .read(view.context, view.tid, view.generation)
    }

    /// Calls `f` with the most recent triggers, oldest first.
    pub fn for_each_recent_trigger(&self, f: impl FnMut(&Trigger)) {
        self.round.engine.triggers.for_each_recent(f);
    }
}

impl Engine {
    /// The current module set.
    ///
    /// # Async-signal safety
    /// One atomic load.
    pub fn module_set(&self) -> &ModuleSet {
        let p = self.modules.load(Ordering::Acquire);
        // SAFETY: `modules` always holds a leaked `Box<ModuleSet>` or a set in a
        // `StaticArena`; published sets are never freed (a handler may still be
        // reading an older one).
        #[allow(unsafe_code)]
        unsafe {
            &*p
        }
    }

    /// The thread-context records (for the crash path:
    /// [`context::ContextTable::snapshot_stopped`] copies a stopped thread's
    /// record for its slot).
    pub fn contexts(&self) -> &context::ContextTable {
        &self.contexts
    }

    /// The options it was installed with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The real-time signal used for capturing.
    pub fn capture_signal(&self) -> i32 {
        self.capture_signal
    }

    /// Preallocated memory by part.
    pub fn memory(&self) -> MemoryUse {
        // SAFETY: only lengths are read; the buffers are never reallocated after
        // setup, so reading their sizes races with nothing.
        #[allow(unsafe_code)]
        let scratch = unsafe { &*self.scratch.get() };
        MemoryUse {
            slots: self.slots.memory_bytes(),
            ranges: self.ranges.memory_bytes(),
            caches: self.caches.memory_bytes(),
            scratch: scratch.maps.len()
                + scratch.dents.len()
                + scratch.out.len()
                + scratch.used.len() * 4,
            symbols: self.module_set().symbol_memory_bytes(),
            contexts: self.contexts.memory_bytes(),
        }
    }

    /// Nanoseconds since [`install`] (monotonic).
    pub fn uptime_ns(&self) -> u64 {
        sys::monotonic_ns().saturating_sub(self.installed_monotonic_ns)
    }

    /// Rebuilds the module set if the loader's counters say modules were
    /// loaded or unloaded since it was built (after `dlopen`). Returns whether
    /// a new set was published. Normal context only: it takes the loader lock
    /// and allocates. The old set is leaked on purpose: a handler may still use it.
    pub fn refresh_modules(&self) -> bool {
        if self.in_static_memory {
            return false;
        }
        if setup::loader_counters() == self.module_set().loader_counters {
            return false;
        }
        let fresh = Box::new(setup::build_module_set(self.options.symbols));
        self.modules.store(Box::into_raw(fresh), Ordering::Release);
        true
    }
}

/// Whether the calling thread is inside guru's capture path right now: in its
/// capture handler, or initiating a round from a signal handler. For
/// allocation guards in tests and fuzzers (`#[global_allocator]` wrappers that
/// abort when this is true).
///
/// # Async-signal safety
/// `gettid` and atomic loads; scans the slot table (O(threads)).
pub fn in_capture_context() -> bool {
    let Some(engine) = engine() else { return false };
    if !engine.round_active.load(Ordering::Acquire) {
        return false;
    }
    let tid = sys::gettid();
    if engine.initiator_tid.load(Ordering::Relaxed) == tid {
        return true;
    }
    engine.slots.is_writing(tid)
}
