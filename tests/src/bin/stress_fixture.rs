//! Fixture process for the reliability tests (`tests/tests/stress_*.rs`).
//!
//! It installs `guru-core` in core-only mode, wraps guru's signal handlers
//! with the strict allocation guard ([`guru_tests::alloc_guard`]: any heap
//! use on any handler path aborts the process), starts the threads of one
//! scenario (`--mode`), prints `thread <name> <tid>` lines and
//! `ready pid=<pid> trigger=<sig> capture=<sig>`, then serves stdin commands:
//!
//! * `stats` → `stats iterations=<n> errors=<n> allocs=<n>` (worker figures)
//! * `refresh` → `refreshed <bool>` (`Engine::refresh_modules()`)
//! * `fork` → forks; the child prints `child pid=<pid> tid=<tid>` and waits
//!   in `child_waiting` (with one thread `child-worker`) until killed
//! * `exit`
//!
//! Modes:
//! * `storm`: allocating workers that keep checksummed heap buffers (a
//!   handler that scribbled on memory would show up as a checksum error);
//! * `errno`: workers that put a value in errno and check it is still there
//!   after spinning, while only they can receive the trigger signal and
//!   short-lived threads make the round's own system calls fail (ESRCH,
//!   ENOENT) inside handlers on the workers;
//! * `hostile`: a thread blocking the capture signal, a thread creating
//!   short-lived threads that exit mid-round, a spinner without calls, a
//!   thread near the end of its stack, threads running on a large and on a
//!   small `sigaltstack`, and two checksum workers;
//! * `fork`: a few parked threads (use the `fork` command);
//! * `dlopen`: loads the test library (path in `GURU_DL_TEST_LIB`) and
//!   parks a thread inside it (`guru_dl_test_loop`).
//!
//! Options: `--std` installs the std adapter (`guru::setup_autorun`: the
//! trigger wakes a reporter thread) instead of core-only mode; `--trigger-rt` uses the real-time signal `SIGRTMIN+8` as the
//! trigger (real-time signals queue, so every delivered trigger is counted),
//! `--caches N` unwinder caches, `--output-buffer N` bytes, `--output-fd N`
//! (core-only reports to that descriptor; a closed one makes every write fail),
//! `--deadline-ms N` (how long a round waits for threads; the tests give
//! loaded machines plenty, since they assert behaviour, not timing),
//! `--stack-end-headroom N` (bytes the stack-end thread leaves, default 24 KiB),
//! `--stack-end-takes-trigger` (it does not block the trigger signal),
//! `--alloc-in-handler` (guard self-test: a wrapped SIGURG handler that
//! allocates; the process must abort when sent SIGURG).
#![allow(unsafe_code)]

use std::hint::black_box;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use guru_tests::alloc_guard::{self, ALLOCATIONS, GuardedAlloc};

#[global_allocator]
static GLOBAL: GuardedAlloc = GuardedAlloc;

static STOP: AtomicBool = AtomicBool::new(false);
static ITERATIONS: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

fn value(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn block_signal(signal: i32) {
    // SAFETY: manipulates a local sigset and this thread's mask only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn errno_location() -> *mut i32 {
    // SAFETY: glibc's errno location for this thread; always valid.
    unsafe { libc::__errno_location() }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn checksum(v: &[u64]) -> u64 {
    v.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x).wrapping_mul(0x100_0000_01b3)
    })
}

/// Keeps 64 heap buffers of random sizes with known checksums; each step
/// verifies one, frees it and allocates a replacement.
#[inline(never)]
fn checksum_worker(seed: u64) {
    let mut rng = Rng(seed | 1);
    let mut live: Vec<(Vec<u64>, u64)> = Vec::with_capacity(64);
    while !STOP.load(Ordering::Relaxed) {
        let n = (rng.next() % 2048) as usize + 1;
        let base = rng.next();
        let buf: Vec<u64> = (0..n as u64)
            .map(|i| base ^ i.wrapping_mul(0x9e37))
            .collect();
        let sum = checksum(&buf);
        if live.len() < 64 {
            live.push((buf, sum));
        } else {
            let k = (rng.next() % 64) as usize;
            let (old, old_sum) = std::mem::replace(&mut live[k], (buf, sum));
            if checksum(&old) != old_sum {
                ERRORS.fetch_add(1, Ordering::Relaxed);
                alloc_guard::die(b"stress_fixture: CHECKSUM MISMATCH (heap corrupted)\n");
            }
        }
        // Strings too: formatting allocates and reallocates.
        let s = format!("{base:x}-{n}");
        black_box(s);
        ITERATIONS.fetch_add(1, Ordering::Relaxed);
    }
    for (b, s) in &live {
        if checksum(b) != *s {
            ERRORS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Puts a value in errno, spins (signals land here), checks it is unchanged.
/// Alternates between a value written directly and one left by a failing
/// system call.
#[inline(never)]
fn errno_worker(seed: u64) {
    let mut rng = Rng(seed | 1);
    while !STOP.load(Ordering::Relaxed) {
        let want = if rng.next() & 1 == 0 {
            let v = 1 + (rng.next() % 130) as i32;
            // SAFETY: writes this thread's errno.
            unsafe { *errno_location() = v };
            v
        } else {
            // SAFETY: close(-1) fails with EBADF and has no other effect.
            unsafe { libc::close(-1) };
            libc::EBADF
        };
        let mut x = rng.next();
        for i in 0..20_000u64 {
            x = black_box(x.rotate_left(7) ^ i);
        }
        // SAFETY: reads this thread's errno.
        let now = unsafe { *errno_location() };
        if now != want {
            ERRORS.fetch_add(1, Ordering::Relaxed);
            let msg = format!("stress_fixture: ERRNO CHANGED {want} -> {now}\n");
            // SAFETY: write(2) of a valid buffer.
            unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        }
        ITERATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Creates short-lived threads forever (up to eight alive at a time, each
/// living 0–3 ms): they appear in `/proc/self/task` and exit before, while or
/// after the round signals them.
#[inline(never)]
fn thread_churn(block: Option<i32>) {
    let mut rng = Rng(0x5eed);
    let mut alive = std::collections::VecDeque::new();
    while !STOP.load(Ordering::Relaxed) {
        let life = Duration::from_micros(rng.next() % 3000);
        let spawned = std::thread::Builder::new()
            .name("churn-child".into())
            .spawn(move || {
                if let Some(s) = block {
                    block_signal(s);
                }
                std::thread::sleep(life);
                black_box(checksum(&[1, 2, 3]));
            });
        if let Ok(h) = spawned {
            alive.push_back(h);
        }
        if alive.len() >= 8
            && let Some(h) = alive.pop_front()
        {
            let _ = h.join();
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Spins with no calls at all, even in a debug build (a bare loop around an
/// empty `asm!`): the interrupted pc is always in this function.
#[inline(never)]
fn spin_without_calls() -> ! {
    loop {
        // SAFETY: an empty instruction sequence with no operands.
        unsafe { std::arch::asm!("nop", options(nomem, nostack)) };
    }
}

fn approximate_sp() -> u64 {
    let marker = 0u8;
    black_box(&marker) as *const u8 as u64
}

/// Low end of the mapping containing `address`, from /proc/self/maps.
fn mapping_start(address: u64) -> Option<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let range = l.split(' ').next()?;
        let (a, b) = range.split_once('-')?;
        let (a, b) = (
            u64::from_str_radix(a, 16).ok()?,
            u64::from_str_radix(b, 16).ok()?,
        );
        (a <= address && address < b).then_some(a)
    })
}

static STACK_END_HEADROOM: AtomicU64 = AtomicU64::new(0);

/// Recurses until less than `headroom` bytes of stack are left, then spins
/// there without calls.
#[inline(never)]
fn near_stack_end(low: u64, headroom: u64, ready: &mpsc::Sender<()>) -> u64 {
    let pad = black_box([0u8; 512]);
    let sp = approximate_sp();
    if sp.saturating_sub(low) > headroom {
        return near_stack_end(low, headroom, ready) + u64::from(pad[7]);
    }
    STACK_END_HEADROOM.store(sp - low, Ordering::Relaxed);
    let _ = ready.send(());
    spinning_at_stack_end()
}

#[inline(never)]
fn spinning_at_stack_end() -> u64 {
    let mut x: u64 = 3;
    while !STOP.load(Ordering::Relaxed) {
        for _ in 0..1_000_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(7);
        }
    }
    x
}

/// SIGUSR1 handler (SA_ONSTACK): spins on the alternate stack until STOP.
extern "C" fn altstack_handler(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    spinning_on_altstack();
}

#[inline(never)]
fn spinning_on_altstack() {
    let mut x: u64 = 5;
    while !STOP.load(Ordering::Relaxed) {
        for _ in 0..1_000_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(11);
        }
    }
    black_box(x);
}

/// Heap memory right below the small alternate stack, filled with a known
/// pattern: (start, length, checksum). A handler that ran past the bottom of
/// the alternate stack would change it.
static BELOW_ALTSTACK: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

fn below_altstack_intact() -> bool {
    let (start, len, sum) = (
        BELOW_ALTSTACK[0].load(Ordering::Acquire),
        BELOW_ALTSTACK[1].load(Ordering::Acquire),
        BELOW_ALTSTACK[2].load(Ordering::Acquire),
    );
    if start == 0 {
        return true;
    }
    // SAFETY: a leaked heap buffer of `len` bytes set up by `on_altstack`; only
    // a stack overflow (the bug this detects) ever writes to it.
    let bytes = unsafe { std::slice::from_raw_parts(start as *const u64, len as usize / 8) };
    checksum(bytes) == sum
}

/// Runs the rest of this thread's life inside a SIGUSR1 handler on an
/// alternate stack of `size` bytes: its own mapping with a guard page when
/// `mapped`, else carved out of the middle of a large heap buffer (as C
/// programs often do), with checksummed heap data right below it.
fn on_altstack(size: usize, mapped: bool) {
    let base: *mut libc::c_void = if mapped {
        // SAFETY: anonymous private mapping, checked below; never unmapped.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size + 4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: the first page of our own mapping becomes the guard.
        unsafe { libc::mprotect(p, 4096, libc::PROT_NONE) };
        // SAFETY: inside the mapping.
        unsafe { p.cast::<u8>().add(4096).cast() }
    } else {
        const BELOW: usize = 1 << 20;
        let heap: &'static mut [u64] =
            Box::leak(vec![0u64; (BELOW + size) / 8 + 1].into_boxed_slice());
        let (below, rest) = heap.split_at_mut(BELOW / 8);
        for (i, w) in below.iter_mut().enumerate() {
            *w = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        BELOW_ALTSTACK[0].store(below.as_ptr() as u64, Ordering::Relaxed);
        BELOW_ALTSTACK[1].store(BELOW as u64, Ordering::Relaxed);
        BELOW_ALTSTACK[2].store(checksum(below), Ordering::Release);
        rest.as_mut_ptr().cast()
    };
    let ss = libc::stack_t {
        ss_sp: base,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: installs this thread's alternate stack (memory leaked/mapped
    // for the life of the process), then raises SIGUSR1 at this thread only.
    unsafe {
        assert_eq!(libc::sigaltstack(&ss, std::ptr::null_mut()), 0);
        libc::syscall(libc::SYS_tgkill, libc::getpid(), gettid(), libc::SIGUSR1);
    }
}

fn install_altstack_handler() {
    // SAFETY: SA_ONSTACK handler with an empty mask for SIGUSR1.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = altstack_handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
}

extern "C" fn allocating_handler(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    black_box(Box::new(42u64));
}

#[inline(never)]
fn parked() {
    loop {
        std::thread::park();
    }
}

#[inline(never)]
fn child_waiting() -> ! {
    loop {
        // SAFETY: pause(2) just waits for a signal.
        unsafe { libc::pause() };
    }
}

#[inline(never)]
fn child_worker() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn do_fork() {
    // SAFETY: fork(2); the child only writes with write(2), spawns one thread
    // and waits (glibc makes malloc usable in the child).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: prctl(2): die with the fixture, so a failed test leaves no
        // orphans behind.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        std::thread::Builder::new()
            .name("child-worker".into())
            .spawn(child_worker)
            .expect("spawn in child");
        let line = format!("child pid={} tid={}\n", std::process::id(), gettid());
        // SAFETY: write(2) to stdout.
        unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
        child_waiting();
    }
    println!("forked {pid}");
}

type DlLoop = unsafe extern "C" fn(extern "C" fn() -> i32);

extern "C" fn dl_keep_going() -> i32 {
    std::thread::sleep(Duration::from_millis(20));
    i32::from(!STOP.load(Ordering::Relaxed))
}

fn load_test_library() -> DlLoop {
    let path = std::env::var("GURU_DL_TEST_LIB").expect("GURU_DL_TEST_LIB");
    let cpath = std::ffi::CString::new(path.clone()).expect("path");
    // SAFETY: dlopen/dlsym with NUL-terminated strings; the symbol has the
    // signature of `guru_dl_test_loop` in tests/dl/guru_dl_test.c.
    unsafe {
        let handle = libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW);
        assert!(!handle.is_null(), "dlopen {path} failed");
        let sym = libc::dlsym(handle, c"guru_dl_test_loop".as_ptr());
        assert!(!sym.is_null(), "guru_dl_test_loop not found");
        std::mem::transmute::<*mut libc::c_void, DlLoop>(sym)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args
        .iter()
        .position(|a| a == "--mode")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "storm".into());
    let std_mode = args.iter().any(|a| a == "--std");
    let mut options = guru_core::Options::default();
    if args.iter().any(|a| a == "--trigger-rt") {
        options.trigger_signal = Some(libc::SIGRTMIN() + 8);
    }
    if let Some(n) = value(&args, "--caches") {
        options.unwinder_caches = n;
    }
    if let Some(n) = value(&args, "--output-buffer") {
        options.output_buffer_bytes = n;
    }
    if let Some(fd) = value(&args, "--output-fd") {
        options.output_fd = fd as i32;
    }
    if let Some(ms) = value(&args, "--deadline-ms") {
        options.round_deadline_ms = ms as u32;
    }
    let (engine, trigger, _std_guard) = if std_mode {
        // The std adapter: SIGUSR2 wakes its reporter thread, which runs the
        // round in normal context and writes the report to stderr.
        let guard = match guru::Builder::new(guru::package!())
            .core_options(guru_core::Options {
                trigger_signal: None,
                ..options
            })
            // Storms here measure coalescing in the round itself, not the
            // rate limit (tests/tests/hardening_lifecycle.rs covers that).
            .min_interval(std::time::Duration::ZERO)
            .install()
        {
            Ok(g) => g,
            Err(e) => {
                eprintln!("stress_fixture: setup_autorun failed: {e}");
                std::process::exit(2);
            }
        };
        let engine = guru_core::engine().expect("the std adapter installs the core");
        (engine, libc::SIGUSR2, Some(guard))
    } else {
        let engine = match guru_core::install(options) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("stress_fixture: install failed: {e}");
                std::process::exit(2);
            }
        };
        (
            engine,
            options.trigger_signal.expect("core-only trigger"),
            None,
        )
    };
    let capture = engine.capture_signal();
    alloc_guard::wrap_installed_handler(trigger);
    alloc_guard::wrap_installed_handler(capture);
    if args.iter().any(|a| a == "--alloc-in-handler") {
        alloc_guard::install_wrapped(libc::SIGURG, allocating_handler, 0);
    }

    let stack_end_headroom = value(&args, "--stack-end-headroom").unwrap_or(24 * 1024) as u64;
    let stack_end_blocks_trigger = !args.iter().any(|a| a == "--stack-end-takes-trigger");
    let (tx, rx) = mpsc::channel::<(String, i32)>();
    let expected = AtomicUsize::new(0);
    let spawn = |name: &str, stack: Option<usize>, body: Box<dyn FnOnce() + Send>| {
        let tx = tx.clone();
        let owned = name.to_string();
        let mut b = std::thread::Builder::new().name(owned.clone());
        if let Some(s) = stack {
            b = b.stack_size(s);
        }
        b.spawn(move || {
            tx.send((owned, gettid())).expect("report tid");
            drop(tx);
            body();
        })
        .expect("spawn");
        expected.fetch_add(1, Ordering::Relaxed);
    };

    match mode.as_str() {
        "storm" => {
            for i in 0..4u64 {
                spawn(
                    &format!("worker-{i}"),
                    None,
                    Box::new(move || checksum_worker(i + 1)),
                );
            }
        }
        "errno" => {
            // Only the errno workers may take the trigger signal, so the
            // whole round (and its failing system calls) runs on them (main
            // blocks it below, after spawning).
            for i in 0..3u64 {
                spawn(
                    &format!("errno-{i}"),
                    None,
                    Box::new(move || errno_worker(i + 11)),
                );
            }
            spawn(
                "churn",
                None,
                Box::new(move || {
                    block_signal(trigger);
                    thread_churn(Some(trigger))
                }),
            );
        }
        "hostile" => {
            // The hostile threads are about the capture handler; the trigger
            // handler (core-only mode runs whole rounds in it) is kept off
            // their small stacks (see docs/fuzzing.md, "stress tests"); main
            // blocks it below, after spawning.
            spawn(
                "blocker",
                None,
                Box::new(move || {
                    block_signal(trigger);
                    block_signal(capture);
                    parked()
                }),
            );
            spawn(
                "churn",
                None,
                Box::new(move || {
                    block_signal(trigger);
                    thread_churn(Some(trigger))
                }),
            );
            spawn(
                "spinner",
                None,
                Box::new(move || {
                    block_signal(trigger);
                    spin_without_calls()
                }),
            );
            let (ready_tx, ready_rx) = mpsc::channel();
            spawn(
                "stack-end",
                Some(512 * 1024),
                Box::new(move || {
                    if stack_end_blocks_trigger {
                        block_signal(trigger);
                    }
                    let low = mapping_start(approximate_sp()).expect("own stack mapping");
                    black_box(near_stack_end(low, stack_end_headroom, &ready_tx));
                }),
            );
            install_altstack_handler();
            spawn(
                "altstack-big",
                None,
                Box::new(move || {
                    block_signal(trigger);
                    on_altstack(256 * 1024, true)
                }),
            );
            spawn(
                "altstack-heap",
                None,
                Box::new(move || {
                    block_signal(trigger);
                    on_altstack(16 * 1024, false)
                }),
            );
            for i in 0..2u64 {
                spawn(
                    &format!("worker-{i}"),
                    None,
                    Box::new(move || checksum_worker(i + 21)),
                );
            }
            ready_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("stack-end thread reached its depth");
            println!(
                "stack-end headroom {}",
                STACK_END_HEADROOM.load(Ordering::Relaxed)
            );
        }
        "fork" => {
            for i in 0..2 {
                spawn(&format!("parked-{i}"), None, Box::new(parked));
            }
        }
        "dlopen" => {
            let f = load_test_library();
            spawn(
                "in-library",
                None,
                // SAFETY: calls the library's loop with a valid callback.
                Box::new(move || unsafe { f(dl_keep_going) }),
            );
        }
        other => {
            eprintln!("stress_fixture: unknown mode {other}");
            std::process::exit(2);
        }
    }
    if mode == "errno" || mode == "hostile" {
        block_signal(trigger);
    }
    drop(tx);
    for _ in 0..expected.load(Ordering::Relaxed) {
        let (name, tid) = rx.recv().expect("thread started");
        println!("thread {name} {tid}");
    }
    println!("thread main {}", gettid());
    // Let every thread reach its steady state (they are already running).
    std::thread::sleep(Duration::from_millis(100));
    println!(
        "ready pid={} trigger={trigger} capture={capture}",
        std::process::id()
    );

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "stats" => {
                if !below_altstack_intact() {
                    ERRORS.fetch_add(1, Ordering::Relaxed);
                    eprintln!("stress_fixture: HEAP BELOW THE ALTERNATE STACK CHANGED");
                }
                println!(
                    "stats iterations={} errors={} allocs={}",
                    ITERATIONS.load(Ordering::Relaxed),
                    ERRORS.load(Ordering::Relaxed),
                    ALLOCATIONS.load(Ordering::Relaxed)
                )
            }
            "refresh" => println!("refreshed {}", engine.refresh_modules()),
            "fork" => do_fork(),
            "exit" => break,
            _ => println!("unknown command"),
        }
    }
    STOP.store(true, Ordering::Relaxed);
    std::process::exit(0);
}
