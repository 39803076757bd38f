//! guru-core in a `#![no_std]`, `#![no_main]` program that links only libc
//! and aborts on panic.
//!
//! ```text
//! nostd            # guru_core::install: DWARF unwinding + symbols (heap at setup only)
//! nostd --static   # guru_core::install_static: frame pointers, no heap at all
//! nostd --measure [--static] [--threads N] [--frames N] [--fp]
//!                  # print what installing preallocates, then exit
//! ```
//!
//! It starts three threads parked in known functions (a spinner three calls
//! deep, a sleeper, a pipe reader), prints `thread <name> <tid>` for each and
//! `ready pid=<pid>`, then serves commands on stdin: `allocs` (prints
//! `allocs <count>`: heap allocations since start), `crash` (a null-pointer
//! write in `main`: a crash report, then death by SIGSEGV) and `exit`. SIGUSR2 writes a
//! report to stderr from the signal handler.
#![no_std]
#![no_main]
#![allow(unsafe_code)]

use core::ffi::{c_char, c_int, c_void};
use core::fmt::Write;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// Heap allocations made through the global allocator, and bytes live.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The C heap, counted.
struct CountingMalloc;

// SAFETY: delegates to posix_memalign/free, which return memory suitably
// aligned for `layout` (alignment at least that of a pointer) or null; the
// counters are atomics.
unsafe impl core::alloc::GlobalAlloc for CountingMalloc {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        let mut p: *mut c_void = core::ptr::null_mut();
        let align = layout.align().max(core::mem::size_of::<usize>());
        // SAFETY: `align` is a power of two and a multiple of the pointer size;
        // `p` is a valid out-pointer.
        if unsafe { libc::posix_memalign(&raw mut p, align, layout.size()) } != 0 {
            return core::ptr::null_mut();
        }
        p.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from posix_memalign in `alloc`.
        unsafe { libc::free(ptr.cast()) }
    }
}

#[global_allocator]
static HEAP: CountingMalloc = CountingMalloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    let msg = b"nostd: panic\n";
    // SAFETY: write(2) of a static buffer, then abort(3).
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::abort()
    }
}

/// A fixed buffer that formats with `core::fmt` and writes to a descriptor.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }

    fn emit(&self, fd: c_int) {
        let bytes = self.buf.get(..self.len).unwrap_or(&[]);
        let mut done = 0;
        while done < bytes.len() {
            let rest = bytes.get(done..).unwrap_or(&[]);
            // SAFETY: `rest` is a valid readable slice.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                return;
            }
            done += n as usize;
        }
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.get_mut(self.len..).ok_or(core::fmt::Error)?;
        let n = s.len().min(room.len());
        room.get_mut(..n)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes().get(..n).ok_or(core::fmt::Error)?);
        self.len += n;
        Ok(())
    }
}

macro_rules! say {
    ($fd:expr, $($arg:tt)*) => {{
        let mut line = Line::new();
        let _ = writeln!(line, $($arg)*);
        line.emit($fd);
    }};
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

fn set_thread_name(name: &core::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

#[inline(never)]
fn spin_inner(x: u64) -> u64 {
    let mut acc = x;
    for i in 0..1_000_000u64 {
        acc = core::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    acc
}

#[inline(never)]
fn spin_middle(x: u64) -> u64 {
    core::hint::black_box(spin_inner(x)) ^ 1
}

#[inline(never)]
fn spin_outer() -> ! {
    let mut x = 1;
    loop {
        x = core::hint::black_box(spin_middle(x));
    }
}

#[inline(never)]
fn sleep_forever() -> ! {
    loop {
        let ts = libc::timespec {
            tv_sec: 3600,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec; a null remainder is allowed.
        unsafe { libc::nanosleep(&raw const ts, core::ptr::null_mut()) };
    }
}

static PIPE_READ_END: AtomicI32 = AtomicI32::new(-1);

#[inline(never)]
fn read_forever() -> ! {
    let mut buf = [0u8; 16];
    loop {
        // SAFETY: reading into a valid stack buffer from a pipe we own.
        let n = unsafe {
            libc::read(
                PIPE_READ_END.load(Ordering::Relaxed),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n == 0 {
            sleep_forever();
        }
    }
}

/// Thread ids, published by each thread when it starts.
static TIDS: [AtomicI32; 3] = [AtomicI32::new(0), AtomicI32::new(0), AtomicI32::new(0)];
const NAMES: [&core::ffi::CStr; 3] = [c"spinner", c"sleeper", c"reader"];

extern "C" fn thread_main(arg: *mut c_void) -> *mut c_void {
    let which = arg as usize;
    if let (Some(name), Some(tid)) = (NAMES.get(which), TIDS.get(which)) {
        set_thread_name(name);
        tid.store(gettid(), Ordering::Release);
    }
    match which {
        0 => spin_outer(),
        1 => sleep_forever(),
        _ => read_forever(),
    }
}

fn start_threads() {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe() writes two descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } == 0 {
        PIPE_READ_END.store(fds[0], Ordering::Relaxed);
    }
    for which in 0..NAMES.len() {
        // SAFETY: pthread_t is plain data.
        let mut thread: libc::pthread_t = unsafe { core::mem::zeroed() };
        // SAFETY: `thread_main` has the C signature pthread_create expects; the
        // argument is an integer smuggled in the pointer; default attributes.
        let r = unsafe {
            libc::pthread_create(
                &raw mut thread,
                core::ptr::null(),
                thread_main,
                which as *mut c_void,
            )
        };
        if r != 0 {
            say!(2, "nostd: pthread_create failed: {r}");
            // SAFETY: plain process exit.
            unsafe { libc::_exit(1) };
        }
    }
    for tid in &TIDS {
        while tid.load(Ordering::Acquire) == 0 {
            // SAFETY: no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
}

/// The build-time budget of `--static`: 64 threads × 32 frames, frame pointers.
#[cfg(feature = "static")]
const STATIC_OPTIONS: guru_core::Options = guru_core::Options::SMALLEST;
#[cfg(feature = "static")]
static ARENA: guru_core::StaticArena<{ STATIC_OPTIONS.static_bytes() }> =
    guru_core::StaticArena::new();

struct Args {
    static_mode: bool,
    measure: bool,
    fp: bool,
    threads: Option<usize>,
    frames: Option<usize>,
}

fn parse_args(argc: c_int, argv: *const *const c_char) -> Args {
    let mut args = Args {
        static_mode: false,
        measure: false,
        fp: false,
        threads: None,
        frames: None,
    };
    let mut pending: Option<u8> = None;
    for i in 1..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: argv holds argc valid NUL-terminated strings.
        let arg = unsafe { core::ffi::CStr::from_ptr(*argv.add(i)) }.to_bytes();
        let number = core::str::from_utf8(arg)
            .ok()
            .and_then(|s| s.parse::<usize>().ok());
        match (pending.take(), arg) {
            (Some(b't'), _) => args.threads = number,
            (Some(_), _) => args.frames = number,
            (None, b"--static") => args.static_mode = true,
            (None, b"--measure") => args.measure = true,
            (None, b"--fp") => args.fp = true,
            (None, b"--threads") => pending = Some(b't'),
            (None, b"--frames") => pending = Some(b'f'),
            (None, _) => {
                say!(2, "nostd: unknown argument");
                // SAFETY: plain process exit.
                unsafe { libc::_exit(2) };
            }
        }
    }
    args
}

#[cfg(any(feature = "dwarf", feature = "static"))]
fn install(args: &Args) -> Result<Option<&'static guru_core::Engine>, guru_core::Error> {
    let mut options = if args.static_mode {
        guru_core::Options::SMALLEST
    } else {
        guru_core::Options::DEFAULT
    };
    options.max_threads = args.threads.unwrap_or(options.max_threads);
    options.max_frames = args.frames.unwrap_or(options.max_frames);
    options.frame_pointers_only |= args.fp;
    if args.static_mode {
        #[cfg(feature = "static")]
        return guru_core::install_static(STATIC_OPTIONS, &ARENA).map(Some);
    } else {
        #[cfg(feature = "dwarf")]
        return guru_core::install(options).map(Some);
    }
    #[allow(unreachable_code)]
    Ok(None)
}

#[cfg(any(feature = "dwarf", feature = "static"))]
/// `--measure`: what installing preallocates, by part, and what the heap saw.
fn measure(args: &Args, engine: Option<&'static guru_core::Engine>, allocated: usize) {
    let Some(engine) = engine else { return };
    let m = engine.memory();
    let o = engine.options();
    let arena = if args.static_mode {
        o.static_bytes()
    } else {
        0
    };
    say!(
        1,
        "measure threads={} frames={} fp={} static={} slots={} ranges={} caches={} scratch={} symbols={} fixed={} heap_live_bytes={} static_arena_bytes={}",
        o.max_threads,
        o.max_frames,
        o.frame_pointers_only,
        args.static_mode,
        m.slots,
        m.ranges,
        m.caches,
        m.scratch,
        m.symbols,
        m.fixed(),
        allocated,
        arena
    );
}

#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let args = parse_args(argc, argv);
    // Without either feature this is the baseline the binary-size table
    // subtracts: the same program with no guru in it.
    #[cfg(any(feature = "dwarf", feature = "static"))]
    {
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let engine = match install(&args) {
            Ok(engine) => engine,
            Err(e) => {
                say!(2, "nostd: cannot install guru: {e}");
                return 1;
            }
        };
        if args.measure {
            measure(
                &args,
                engine,
                LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before),
            );
            return 0;
        }
    }
    start_threads();
    say!(1, "thread main {}", gettid());
    for (name, tid) in NAMES.iter().zip(&TIDS) {
        say!(
            1,
            "thread {} {}",
            name.to_str().unwrap_or("?"),
            tid.load(Ordering::Relaxed)
        );
    }
    if let Some(tid) = guru_core::crash::helper_tid() {
        say!(1, "thread guru-crash {}", tid);
    }
    // SAFETY: getpid has no preconditions.
    say!(1, "ready pid={}", unsafe { libc::getpid() });
    serve_stdin();
    0
}

/// Writes through a null pointer: guru's crash report, then death by
/// SIGSEGV (the `crash` command).
#[inline(never)]
fn crash_now() {
    let p: *mut u64 = core::hint::black_box(core::ptr::null_mut());
    // SAFETY: deliberately not: the crash under test.
    unsafe { core::ptr::write_volatile(p, 1) };
}

/// Answers `allocs`, `crash` and `exit` on stdin until EOF.
fn serve_stdin() {
    let mut buf = [0u8; 256];
    let mut len = 0usize;
    loop {
        let Some(room) = buf.get_mut(len..) else {
            len = 0;
            continue;
        };
        // SAFETY: reading into the free part of a stack buffer.
        let n = unsafe { libc::read(0, room.as_mut_ptr().cast(), room.len()) };
        if n == 0 {
            return;
        }
        if n < 0 {
            continue;
        }
        len += n as usize;
        while let Some(end) = buf
            .get(..len)
            .and_then(|b| b.iter().position(|&c| c == b'\n'))
        {
            match buf.get(..end) {
                Some(b"allocs") => say!(1, "allocs {}", ALLOCATIONS.load(Ordering::Relaxed)),
                Some(b"exit") => return,
                Some(b"crash") => crash_now(),
                _ => say!(1, "unknown command"),
            }
            buf.copy_within(end + 1..len, 0);
            len -= end + 1;
        }
    }
}
