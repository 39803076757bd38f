//! Fixture for crash and panic reports (`tests/tests/crash_reports.rs`).
//!
//! `crash_fixture <mode> [--guru std|core|none] [--log-dir DIR] [--json]
//! [--deadline-ms N] [--core-dir DIR] [--no-panic-reports] [--no-crash-reports]`
//!
//! Starts threads parked in known functions (`worker-sleep` in
//! `fixture_sleeper`, `worker-read` in `fixture_reader`), prints `thread
//! <name> <tid>` for each and `ready pid=<pid>`, waits for a line `go` on
//! stdin, then crashes as `mode` says in the thread `crasher` (function
//! `crash_<mode>`), or in `main` for `overflow-main`:
//! `null`, `overflow`, `overflow-main`, `abort`, `ill`, `bus`, `fpe`,
//! `panic` (then prints `alive after panic` and waits for stdin to close),
//! `panics` (ten panics, then `alive after panics`; a line `again`
//! makes one more, in `main`), `two` (two threads
//! null-write at once), `alloc-lock` (`main` parks inside the global
//! allocator holding its lock, then `crasher` null-writes),
//! `recover` (a SIGSEGV handler installed before guru recovers the fault:
//! prints `recovered` and waits), `wait` (no crash: waits for stdin to close;
//! the test sends the signal).
//!
//! `--core-dir DIR`: chdir there and raise `RLIMIT_CORE` so the kernel may
//! write a core dump (the kernel's `core_pattern` decides where).
#![allow(unsafe_code)]

use std::hint::black_box;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// The global allocator: the system allocator behind one lock, which the
/// `alloc-lock` mode holds forever from inside `alloc`.
struct LockedAlloc;

static ALLOC_LOCK: AtomicBool = AtomicBool::new(false);
static PARK_NEXT_ALLOC: AtomicBool = AtomicBool::new(false);
static PARKED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn raw_write(fd: i32, s: &[u8]) {
    // SAFETY: write(2) of a valid buffer.
    unsafe { libc::write(fd, s.as_ptr().cast(), s.len()) };
}

// SAFETY: delegates to the system allocator under a spin-then-sleep lock.
unsafe impl std::alloc::GlobalAlloc for LockedAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        lock_alloc();
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        if PARK_NEXT_ALLOC.swap(false, Ordering::AcqRel) {
            raw_write(1, b"holding the allocator lock\n");
            PARKED.store(true, Ordering::Release);
            loop {
                // SAFETY: plain sleep with the lock held, on purpose.
                unsafe { libc::usleep(1_000_000) };
            }
        }
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { std::alloc::System.alloc(layout) };
        ALLOC_LOCK.store(false, Ordering::Release);
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        lock_alloc();
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        ALLOC_LOCK.store(false, Ordering::Release);
    }
}

fn lock_alloc() {
    while ALLOC_LOCK
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // SAFETY: sleeping 100 µs; no allocation.
        unsafe { libc::usleep(100) };
    }
}

#[global_allocator]
static HEAP: LockedAlloc = LockedAlloc;

fn gettid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

#[inline(never)]
fn fixture_sleeper() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[inline(never)]
fn fixture_reader(fd: i32) {
    let mut b = [0u8; 8];
    loop {
        // SAFETY: read into a stack buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

#[inline(never)]
fn crash_null() {
    let p: *mut u64 = black_box(std::ptr::null_mut());
    // SAFETY: deliberately not: the crash under test.
    unsafe { std::ptr::write_volatile(p, 42) };
}

#[inline(never)]
#[allow(unconditional_recursion)] // the stack overflow under test
fn crash_overflow(depth: u64) -> u64 {
    let mut big = [0u8; 4096];
    big[black_box(0)] = depth as u8;
    black_box(&mut big);
    crash_overflow(black_box(depth + 1)).wrapping_add(u64::from(big[7]))
}

#[inline(never)]
fn crash_abort() {
    std::process::abort();
}

#[inline(never)]
fn crash_ill() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: deliberately not: ud2 raises SIGILL.
    unsafe {
        std::arch::asm!("ud2")
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: deliberately not: udf raises SIGILL.
    unsafe {
        std::arch::asm!("udf #0")
    };
}

#[inline(never)]
fn crash_bus() {
    let path = std::env::temp_dir().join(format!("guru-bus-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create");
    file.set_len(8192).expect("size");
    use std::os::fd::AsRawFd;
    // SAFETY: maps 2 pages of a file we own.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    file.set_len(0).expect("truncate");
    let _ = std::fs::remove_file(&path);
    // SAFETY: deliberately not: the page is past the file's end (SIGBUS).
    let v = unsafe { std::ptr::read_volatile(p.cast::<u8>().add(4096)) };
    black_box(v);
}

#[inline(never)]
fn crash_fpe() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: deliberately not: dividing by zero raises SIGFPE.
    unsafe {
        std::arch::asm!("xor edx, edx", "mov eax, 1", "div ecx", in("ecx") black_box(0u32), out("eax") _, out("edx") _)
    };
}

#[inline(never)]
fn crash_panic() {
    panic!("fixture panic {}", black_box(7));
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(gettid());
            f();
        })
        .expect("spawn thread");
    let tid = rx.recv().expect("thread tid");
    println!("thread {name} {tid}");
}

fn value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

static RECOVERED: AtomicBool = AtomicBool::new(false);
static mut RECOVER_PAGE: *mut libc::c_void = std::ptr::null_mut();

/// A fault handler that makes the faulting page writable and returns (a
/// GC's write barrier, say).
extern "C" fn recovering_handler(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the page was mapped by `crash_recover`; mprotect is
    // async-signal-safe.
    unsafe {
        libc::mprotect(RECOVER_PAGE, 4096, libc::PROT_READ | libc::PROT_WRITE);
    }
    RECOVERED.store(true, Ordering::Release);
}

fn install_recovering_handler() {
    // SAFETY: maps one page; installs a plain SA_SIGINFO handler.
    unsafe {
        RECOVER_PAGE = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        let mut a: libc::sigaction = std::mem::zeroed();
        a.sa_sigaction = recovering_handler as *const () as usize;
        a.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSEGV, &a, std::ptr::null_mut());
    }
}

#[inline(never)]
fn crash_recover() {
    // SAFETY: the page is read-only: the handler makes it writable.
    unsafe { std::ptr::write_volatile(RECOVER_PAGE.cast::<u64>(), 5) };
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_default();
    let has = |f: &str| args.iter().any(|a| a == f);
    if let Some(dir) = value(&args, "--core-dir") {
        std::env::set_current_dir(&dir).expect("chdir core dir");
        let lim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit with a valid struct (may fail for an unprivileged
        // hard limit; then the soft limit stays).
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) };
    }
    if mode == "recover" {
        install_recovering_handler();
    }
    let deadline_ms: u32 = value(&args, "--deadline-ms").map_or(3000, |v| v.parse().expect("ms"));
    let _guard = match value(&args, "--guru").as_deref().unwrap_or("std") {
        "none" => None,
        "core" => {
            guru_core::install(guru_core::Options {
                crash_deadline_ms: deadline_ms,
                crash_reports: !has("--no-crash-reports"),
                ..guru_core::Options::default()
            })
            .expect("install guru-core");
            None
        }
        _ => {
            let section_mode = mode.clone();
            guru::register_section("Crash fixture", move || {
                format!("mode {section_mode}, pid {}", std::process::id())
            });
            let mut b = guru::Builder::new(guru::package!())
                .config(serde_json::json!({"listen": "0.0.0.0:80", "db_password": "S3CRET"}))
                .crash_deadline(Duration::from_millis(u64::from(deadline_ms)))
                .crash_reports(!has("--no-crash-reports"))
                .panic_reports(!has("--no-panic-reports"));
            if let Some(dir) = value(&args, "--log-dir") {
                b = b.log_dir(dir);
            }
            if has("--json") {
                b = b.format(guru::Format::Json);
            }
            Some(b.install().expect("install guru"))
        }
    };
    spawn("worker-sleep", fixture_sleeper);
    let mut fds = [0i32; 2];
    // SAFETY: valid out array.
    unsafe { libc::pipe(fds.as_mut_ptr()) };
    let read_fd = fds[0];
    spawn("worker-read", move || fixture_reader(read_fd));
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let crash_mode = mode.clone();
    if mode == "two" {
        let barrier = Arc::new(Barrier::new(2));
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let b2 = barrier.clone();
        spawn("crasher2", move || {
            let _ = rx2.recv();
            b2.wait();
            crash_null();
        });
        spawn("crasher", move || {
            let _ = go_rx.recv();
            let _ = tx2.send(());
            barrier.wait();
            crash_null();
        });
    } else if mode != "overflow-main" {
        spawn("crasher", move || {
            let _ = go_rx.recv();
            // Thread context the crash report must show for the crashed
            // thread (not in alloc-lock mode: its first use allocates).
            let _job = (crash_mode != "alloc-lock").then(|| {
                guru::breadcrumb("about to crash");
                guru::label("job", "crash-test")
            });
            match crash_mode.as_str() {
                "null" => crash_null(),
                "alloc-lock" => {
                    while !PARKED.load(Ordering::Acquire) {
                        // SAFETY: plain sleep; no allocation.
                        unsafe { libc::usleep(1000) };
                    }
                    crash_null();
                }
                "overflow" => {
                    black_box(crash_overflow(0));
                }
                "abort" => crash_abort(),
                "ill" => crash_ill(),
                "bus" => crash_bus(),
                "fpe" => crash_fpe(),
                "panic" => crash_panic(),
                "panics" => {
                    for _ in 0..10 {
                        let _ = std::panic::catch_unwind(crash_panic);
                    }
                    println!("alive after panics");
                }
                "recover" => {
                    crash_recover();
                    println!("recovered {}", RECOVERED.load(Ordering::Acquire));
                }
                _ => {}
            }
            fixture_sleeper();
        });
    }
    println!("ready pid={}", std::process::id());
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    while let Some(Ok(line)) = lines.next() {
        if line.trim() == "again" {
            let _ = std::panic::catch_unwind(crash_panic);
            continue;
        }
        if line.trim() != "go" {
            continue;
        }
        if mode == "overflow-main" {
            black_box(crash_overflow(0));
        }
        if mode == "alloc-lock" {
            // The crasher waits for PARKED; this thread then parks inside
            // `alloc` holding the allocator's lock, for good.
            let _ = go_tx.send(());
            PARK_NEXT_ALLOC.store(true, Ordering::Release);
            let v: Vec<u8> = Vec::with_capacity(black_box(64));
            black_box(v);
        }
        let _ = go_tx.send(());
        if mode == "panic" {
            std::thread::sleep(Duration::from_millis(0));
        }
    }
    if mode == "panic" || mode == "panics" {
        println!("stdin closed");
    }
}
