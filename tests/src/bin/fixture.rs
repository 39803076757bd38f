//! Fixture process for the core engine's integration tests.
//!
//! It installs `guru-core` (SIGUSR2 → report on stderr from the handler),
//! starts threads parked in known `#[inline(never)]` functions, prints one
//! `thread <name> <tid>` line per thread and then `ready pid=<pid>`, and serves
//! commands on stdin: `allocs` (allocations since ready), `report` (a report
//! requested from normal context), `floor` / `floor-yield` (a floor round,
//! `guru_core::floor::round`; answers `floor listed=… answered=…
//! unresponsive=…`), `no-walk` (a capture round without the stack walk,
//! `guru_core::floor::capture_without_walk`; answers `no-walk listed=…
//! captured=… unresponsive=… pc_only=… not_walked=… timed=…`), `exit`.
//!
//! Its global allocator counts every allocation and **aborts the process** if
//! one happens in guru's capture context (a capture handler, or a round
//! initiated from the trigger handler): the report must come out without the
//! heap. While all threads are parked, the count must not move at all.
//!
//! Options: `--max-threads N`, `--max-frames N`, `--deadline-ms N` (the
//! round deadline), `--blocker` (a thread that
//! blocks the capture signal), `--idle N` (N more idle threads),
//! `--mappings N` (N separate readable anonymous mappings, alternately
//! read-only and read-write so the kernel cannot merge them),
//! `--exhaust-fds` (before `ready`: lower RLIMIT_NOFILE to a few more than
//! open now and open /dev/null until EMFILE; prints `fds-exhausted <n>`),
//! `--exhaust-fds-before-install` (the same before guru is installed, so
//! it keeps no descriptor; a few are freed for the fixture's own pipe and
//! taken again before `ready`), `--fifo PATH` (a thread `fifo-opener`
//! blocked opening the FIFO at PATH for reading: in syscall `openat`),
//! `--no-maps-query` (`Options::maps_query` off: every round reads the text
//! of `/proc/self/maps`, as on kernels without `PROCMAP_QUERY`).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

struct GuardedAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn die(msg: &[u8]) -> ! {
    // SAFETY: write(2) of a static buffer to stderr, then abort(3); both are
    // async-signal-safe and touch no Rust state.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::abort()
    }
}

// SAFETY: delegates to the system allocator; the extra bookkeeping (an atomic
// counter and a lock-free check) neither allocates nor unwinds.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        if guru_core::in_capture_context() {
            die(b"fixture: ALLOCATION IN CAPTURE CONTEXT\n");
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if guru_core::in_capture_context() {
            die(b"fixture: DEALLOCATION IN CAPTURE CONTEXT\n");
        }
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        if guru_core::in_capture_context() {
            die(b"fixture: REALLOCATION IN CAPTURE CONTEXT\n");
        }
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: GuardedAlloc = GuardedAlloc;

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

#[inline(never)]
fn spin_level_three(x: u64) -> u64 {
    let mut acc = x;
    for i in 0..100_000u64 {
        acc = black_box(acc.rotate_left(5) ^ i);
    }
    acc
}

#[inline(never)]
fn spin_level_two(x: u64) -> u64 {
    black_box(spin_level_three(x)).wrapping_add(1)
}

#[inline(never)]
fn spin_level_one() {
    let mut x = 7;
    loop {
        x = black_box(spin_level_two(x));
    }
}

#[inline(never)]
fn sleeping_in_std_sleep() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[inline(never)]
fn waiting_on_mutex(lock: &Mutex<()>) {
    let _g = lock.lock();
}

#[inline(never)]
fn waiting_on_condvar(pair: &(Mutex<bool>, Condvar)) {
    let mut ready = pair.0.lock().unwrap_or_else(|e| e.into_inner());
    while !*ready {
        ready = pair.1.wait(ready).unwrap_or_else(|e| e.into_inner());
    }
}

#[inline(never)]
fn reading_from_pipe(fd: i32) {
    let mut buf = [0u8; 8];
    loop {
        // SAFETY: read(2) into a valid stack buffer from a pipe we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n != -1 {
            break;
        }
    }
}

#[inline(never)]
fn recursing(depth: u32) -> u32 {
    if depth == 0 {
        loop {
            std::thread::park();
        }
    }
    black_box(recursing(black_box(depth - 1))).wrapping_add(1)
}

#[inline(never)]
fn blocking_the_capture_signal(signal: i32) {
    // SAFETY: sigset_t manipulation on a local set, then blocking one signal in
    // this thread only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    sleeping_in_std_sleep();
}

#[inline(never)]
fn opening_a_fifo(path: &std::ffi::CStr) {
    // SAFETY: open(2) of a NUL-terminated path; blocks until a writer comes.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    black_box(fd);
    sleeping_in_std_sleep();
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn value(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn write_stdout(bytes: &[u8]) {
    // SAFETY: write(2) of a valid buffer to stdout.
    unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
}

/// Lowers the soft RLIMIT_NOFILE to 16 above the highest descriptor open
/// now, then opens /dev/null until the process runs out (EMFILE). The
/// descriptors are leaked on purpose: a descriptor leak is the scenario.
fn exhaust_fds() -> Vec<i32> {
    // SAFETY: rlimit is plain data; getrlimit/setrlimit fill/read it.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let probe = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        libc::close(probe);
        lim.rlim_cur = (probe as libc::rlim_t + 16).min(lim.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    let mut opened = Vec::new();
    loop {
        // SAFETY: open(2) of a constant NUL-terminated path.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error();
            assert_eq!(errno, Some(libc::EMFILE), "fixture: expected EMFILE");
            return opened;
        }
        opened.push(fd);
    }
}

/// Maps `n` separate readable pages (alternately r-- and rw-, so adjacent
/// ones never merge into one mapping) and leaves them mapped.
fn map_separately(n: usize) {
    if n == 0 {
        return;
    }
    let page = 4096usize;
    // SAFETY: an anonymous private mapping of n pages; nothing aliases it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            n * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED, "fixture: mmap");
    for i in (0..n).step_by(2) {
        // SAFETY: page i lies inside the mapping made above.
        let r = unsafe {
            libc::mprotect(
                base.cast::<u8>().add(i * page).cast(),
                page,
                libc::PROT_READ,
            )
        };
        assert_eq!(r, 0, "fixture: mprotect");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let before_install = flag(&args, "--exhaust-fds-before-install");
    let mut early = Vec::new();
    if before_install {
        early = exhaust_fds();
        println!("fds-exhausted {}", early.len());
    }
    let mut options = guru_core::Options::default();
    if let Some(n) = value(&args, "--max-threads") {
        options.max_threads = n;
    }
    if let Some(n) = value(&args, "--max-frames") {
        options.max_frames = n;
    }
    if let Some(n) = value(&args, "--deadline-ms") {
        options.round_deadline_ms = n as u32;
    }
    if flag(&args, "--no-maps-query") {
        options.maps_query = false;
    }
    let engine = match guru_core::install(options) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("fixture: install failed: {e}");
            std::process::exit(2);
        }
    };
    let capture_signal = engine.capture_signal();
    if before_install {
        // Room for the fixture's own pipe; taken again before `ready`.
        for fd in early.drain(..).rev().take(8) {
            // SAFETY: closing a descriptor this function opened.
            unsafe { libc::close(fd) };
        }
    }

    let (tx, rx) = mpsc::channel::<(String, i32)>();
    let mut expected = 0;
    let mut spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
        let tx = tx.clone();
        let owned = name.to_string();
        std::thread::Builder::new()
            .name(owned.clone())
            .spawn(move || {
                tx.send((owned, gettid())).expect("report tid");
                drop(tx);
                body();
            })
            .expect("spawn");
        expected += 1;
    };

    spawn("spinner", Box::new(spin_level_one));
    spawn("sleeper", Box::new(sleeping_in_std_sleep));
    let lock = Arc::new(Mutex::new(()));
    let held = lock.lock().expect("lock");
    let l2 = lock.clone();
    spawn("mutex-waiter", Box::new(move || waiting_on_mutex(&l2)));
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = pair.clone();
    spawn("condvar-waiter", Box::new(move || waiting_on_condvar(&p2)));
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills the two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let read_end = fds[0];
    spawn("pipe-reader", Box::new(move || reading_from_pipe(read_end)));
    spawn(
        "recursion",
        Box::new(|| {
            black_box(recursing(300));
        }),
    );
    if flag(&args, "--blocker") {
        spawn(
            "blocker",
            Box::new(move || blocking_the_capture_signal(capture_signal)),
        );
    }
    if let Some(path) = args
        .iter()
        .position(|a| a == "--fifo")
        .and_then(|i| args.get(i + 1))
    {
        let path = std::ffi::CString::new(path.as_str()).expect("fifo path");
        spawn("fifo-opener", Box::new(move || opening_a_fifo(&path)));
    }
    for i in 0..value(&args, "--idle").unwrap_or(0) {
        spawn(&format!("idle-{i}"), Box::new(sleeping_in_std_sleep));
    }
    map_separately(value(&args, "--mappings").unwrap_or(0));
    drop(tx);
    for _ in 0..expected {
        let (name, tid) = rx.recv().expect("thread started");
        println!("thread {name} {tid}");
    }
    println!("thread main {}", gettid());
    if let Some(tid) = guru_core::crash::helper_tid() {
        println!("thread guru-crash {tid}");
    }
    println!("capture-signal {capture_signal}");
    // Give every thread time to reach its parking function (they are already
    // running; this only avoids catching one between `send` and its body).
    std::thread::sleep(Duration::from_millis(100));
    if flag(&args, "--exhaust-fds") || before_install {
        println!("fds-exhausted {}", exhaust_fds().len());
    }
    let baseline = ALLOCATIONS.load(Ordering::SeqCst);
    println!("ready pid={}", std::process::id());

    // From here on the main thread does not allocate: raw read/write only.
    let mut line = [0u8; 64];
    let mut len = 0usize;
    loop {
        let mut byte = [0u8; 1];
        // SAFETY: read(2) of one byte into a stack buffer.
        let n = unsafe { libc::read(0, byte.as_mut_ptr().cast(), 1) };
        if n == 0 {
            break;
        }
        if n < 0 {
            continue;
        }
        if byte[0] != b'\n' {
            if len < line.len() {
                line[len] = byte[0];
                len += 1;
            }
            continue;
        }
        match &line[..len] {
            b"allocs" => {
                let mut buf = [0u8; 64];
                let mut w = guru_core::format::SliceWriter::new(&mut buf);
                let _ = std::fmt::Write::write_fmt(
                    &mut w,
                    format_args!("allocs {}\n", ALLOCATIONS.load(Ordering::SeqCst) - baseline),
                );
                write_stdout(w.as_str().as_bytes());
            }
            b"report" => {
                let ok = guru_core::write_report(2).is_ok();
                write_stdout(if ok {
                    b"reported\n"
                } else {
                    b"report-failed\n"
                });
            }
            b"floor" | b"floor-yield" => {
                let kind = if line[..len] == *b"floor" {
                    guru_core::floor::FloorKind::Answer
                } else {
                    guru_core::floor::FloorKind::AnswerAndYield
                };
                let mut buf = [0u8; 128];
                let mut w = guru_core::format::SliceWriter::new(&mut buf);
                let _ = match guru_core::floor::round(kind) {
                    Ok(s) => std::fmt::Write::write_fmt(
                        &mut w,
                        format_args!(
                            "floor listed={} answered={} unresponsive={}\n",
                            s.threads_listed, s.threads_captured, s.threads_unresponsive
                        ),
                    ),
                    Err(_) => std::fmt::Write::write_str(&mut w, "floor-failed\n"),
                };
                write_stdout(w.as_str().as_bytes());
            }
            b"no-walk" => {
                let mut buf = [0u8; 160];
                let mut w = guru_core::format::SliceWriter::new(&mut buf);
                let counted = guru_core::floor::capture_without_walk(|round| {
                    let s = *round.summary();
                    // Threads holding their pc alone, marked not walked, and
                    // with a pause measured.
                    let (mut pc_only, mut not_walked, mut timed) = (0, 0, 0);
                    for t in round.threads() {
                        if let guru_core::ThreadCapture::Captured(v) = t {
                            pc_only += usize::from(v.frames().len() == 1);
                            not_walked +=
                                usize::from(v.summary.end == guru_core::StackEnd::NotWalked);
                            timed += usize::from(v.summary.pause_ns > 0);
                        }
                    }
                    (s, pc_only, not_walked, timed)
                });
                let _ = match counted {
                    Ok((s, pc_only, not_walked, timed)) => std::fmt::Write::write_fmt(
                        &mut w,
                        format_args!(
                            "no-walk listed={} captured={} unresponsive={} pc_only={pc_only} \
                             not_walked={not_walked} timed={timed}\n",
                            s.threads_listed, s.threads_captured, s.threads_unresponsive
                        ),
                    ),
                    Err(_) => std::fmt::Write::write_str(&mut w, "no-walk-failed\n"),
                };
                write_stdout(w.as_str().as_bytes());
            }
            b"exit" => break,
            _ => write_stdout(b"unknown command\n"),
        }
        len = 0;
    }
    drop(held);
    std::process::exit(0);
}
