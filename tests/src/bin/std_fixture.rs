//! Fixture for the std adapter's process tests (`tests/tests/std_report.rs`):
//! installs `guru` as flags say, parks named threads in known functions,
//! prints `thread <name> <tid>` lines and `ready pid=<pid>`, then obeys
//! commands on stdin (`call-report`, `release`, `progress`, `exit`) until
//! stdin closes.
//!
//! Flags: `--json`, `--log-dir DIR`, `--file-trigger PATH`, `--env`,
//! `--child` (spawn a child process), `--bad-sections` (sections that
//! panic, fail and overrun), `--gate` (a section that waits for `release`),
//! `--twice` (call `setup_autorun` a second time), `--alloc-workers N`,
//! `--section-timeout-ms N`, `--no-prewarm` (no debug-info index after
//! install), `--min-interval-ms N` (the rate limit; 0, none, unless given:
//! tests send triggers back to back), `--output-timeout-ms N` (`Builder::output_timeout`),
//! `--fsize-limit BYTES` (`RLIMIT_FSIZE`, with `SIGXFSZ` ignored: a write
//! past it fails with `EFBIG`, like a full disk), `--tmpfs-log-dir` (in a
//! private mount namespace, mount a 64 KiB tmpfs on the `--log-dir`
//! directory and fill all but 8 KiB of it: a really full disk; prints
//! `tmpfs-unavailable: <why>` and exits 3 where mounting is not permitted).
//! With `--sleep-child` it is the child: it waits
//! until its stdin closes.
//!
//! Every secret value it holds contains `S3CRET`; tests check that this
//! string never appears in its output.

use std::hint::black_box;
use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;

#[derive(Serialize)]
struct Database {
    url: String,
    db_password: String,
    pool_size: u32,
}

#[derive(Serialize)]
struct Config {
    listen: String,
    workers: u32,
    wrapped: guru::Secret<String>,
    api_token: String,
    database: Database,
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    #[allow(unsafe_code)]
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    tid as i32
}

#[inline(always)]
fn std_blocked_inlined(fd: i32) -> isize {
    let mut buf = [0u8; 8];
    // SAFETY: reading into a valid stack buffer from a pipe we own.
    #[allow(unsafe_code)]
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    black_box(n)
}

#[inline(never)]
fn std_blocked_outer(fd: i32) {
    while black_box(std_blocked_inlined(fd)) > 0 {}
}

#[inline(never)]
fn std_sleeper_loop() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[inline(never)]
fn std_spin(x: u64) -> u64 {
    let mut acc = x;
    for i in 0..100_000u64 {
        acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    acc
}

static ALLOC_ROUNDS: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
fn std_allocating_worker(seed: u64) {
    let mut x = seed;
    loop {
        let mut v: Vec<Box<[u64]>> = Vec::new();
        for i in 0..64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            let len = 1 + (x >> 58) as usize * 64;
            v.push(vec![x; len].into_boxed_slice());
        }
        let sum = v
            .iter()
            .map(|b| b.iter().fold(0u64, |a, &y| a ^ y))
            .fold(0u64, u64::wrapping_add);
        black_box(sum);
        let s: String = (0..32).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        black_box(s);
        ALLOC_ROUNDS.fetch_add(1, Ordering::Relaxed);
    }
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
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

/// Mounts a 64 KiB tmpfs on `dir` in a mount namespace of this process
/// alone and fills it up to 8 KiB with a file `filler`.
fn full_tmpfs(dir: &str) -> std::io::Result<()> {
    use std::ffi::CString;
    let check = |r: i32| {
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let target = CString::new(dir).expect("no NUL in the path");
    // SAFETY: unshare/mount with valid NUL-terminated strings (or null where
    // mount ignores the argument); the fixture is still single-threaded.
    #[allow(unsafe_code)]
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"size=64k,mode=0700".as_ptr().cast(),
        ))?;
    }
    std::fs::write(
        std::path::Path::new(dir).join("filler"),
        vec![b'.'; 56 * 1024],
    )
}

/// A gate the "Gate" section waits on until stdin says `release`.
type Gate = Arc<(Mutex<bool>, Condvar)>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if flag(&args, "--sleep-child") {
        // The child: lives until its parent (holding our stdin) goes away.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        return;
    }

    // One section registered before installation...
    guru::register_section("Work queue", || {
        "jobs waiting: 3\nworkers busy: 1".to_string()
    });

    let config = Config {
        listen: "127.0.0.1:9999".into(),
        workers: 4,
        wrapped: guru::Secret::new("S3CRET-wrapped-value".into()),
        api_token: "S3CRET-token-value".into(),
        database: Database {
            url: "postgres://app:S3CRET-url-password@db.example:5432/app".into(),
            db_password: "S3CRET-password-value".into(),
            pool_size: 7,
        },
    };
    let timeout_ms: u64 = value(&args, "--section-timeout-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut builder = guru::Builder::new(guru::package!())
        .service_name("std-fixture")
        .config(config)
        .section_timeout(Duration::from_millis(timeout_ms))
        .environment(flag(&args, "--env"))
        .prewarm_symbols(!flag(&args, "--no-prewarm"))
        .min_interval(Duration::from_millis(
            value(&args, "--min-interval-ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ));
    if flag(&args, "--json") {
        builder = builder.format(guru::Format::Json);
    }
    if let Some(ms) = value(&args, "--output-timeout-ms").and_then(|v| v.parse().ok()) {
        builder = builder.output_timeout(Duration::from_millis(ms));
    }
    if let Some(limit) = value(&args, "--fsize-limit").and_then(|v| v.parse().ok()) {
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: setrlimit with a valid struct; signal() sets SIGXFSZ's
        // disposition to ignore (so an oversized write fails with EFBIG).
        #[allow(unsafe_code)]
        unsafe {
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &rl), 0, "setrlimit");
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
    }
    if flag(&args, "--tmpfs-log-dir") {
        let dir = value(&args, "--log-dir").expect("--tmpfs-log-dir needs --log-dir");
        if let Err(e) = full_tmpfs(&dir) {
            println!("tmpfs-unavailable: {e}");
            std::process::exit(3);
        }
    }
    if let Some(dir) = value(&args, "--log-dir") {
        builder = builder.log_dir(dir);
    }
    if let Some(path) = value(&args, "--file-trigger") {
        builder = builder.file_trigger(path);
    }
    let guard = match builder.install() {
        Ok(g) => g,
        Err(e) => {
            println!("install-error: {e}");
            std::process::exit(2);
        }
    };
    if flag(&args, "--twice") {
        match guru::setup_autorun(guru::package!()) {
            Ok(_) => println!("second-install: ok"),
            Err(e) => println!("second-install: error: {e}"),
        }
    }

    // ... and some after.
    if flag(&args, "--bad-sections") {
        guru::register_section("Panicking", || -> String {
            panic!("section exploded on purpose")
        });
        guru::register_section("Failing", || -> Result<String, std::io::Error> {
            Err(std::io::Error::other("backend unreachable"))
        });
        guru::register_section("Slow", || {
            std::thread::sleep(Duration::from_secs(20));
            "too late".to_string()
        });
        guru::register_section("After the bad ones", || "still here");
    }
    let gate: Gate = Arc::new((Mutex::new(false), Condvar::new()));
    if flag(&args, "--gate") {
        let g = gate.clone();
        guru::register_section("Gate", move || {
            println!("gate-waiting");
            let _ = std::io::stdout().flush();
            let (m, cv) = &*g;
            let mut open = m.lock().unwrap_or_else(|e| e.into_inner());
            while !*open {
                open = cv.wait(open).unwrap_or_else(|e| e.into_inner());
            }
            *open = false;
            "gate passed".to_string()
        });
    }

    let mut fds = [0i32; 2];
    // SAFETY: pipe() writes two descriptors into the array.
    #[allow(unsafe_code)]
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe");
    let read_end = fds[0];
    spawn("std-inliner", move || std_blocked_outer(read_end));
    spawn("std-sleeper", std_sleeper_loop);
    spawn("std-spinner", || {
        let mut x = 1;
        loop {
            x = std_spin(x);
        }
    });
    let workers: u64 = value(&args, "--alloc-workers")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for i in 0..workers {
        spawn(&format!("alloc-{i}"), move || std_allocating_worker(i + 1));
    }
    let child = flag(&args, "--child").then(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let c = std::process::Command::new(exe)
            .args(["--sleep-child", "--password", "S3CRET-cmdline-value"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn child");
        println!("child pid={}", c.id());
        c
    });

    println!("thread main {}", gettid());
    println!("ready pid={}", std::process::id());
    let _ = std::io::stdout().flush();

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "call-report" => {
                let text = guru::report();
                println!("call-report-begin");
                for l in text.lines() {
                    println!("| {l}");
                }
                println!("call-report-end");
            }
            "release" => {
                let (m, cv) = &*gate;
                *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
                cv.notify_all();
                println!("released");
            }
            "progress" => println!("progress {}", ALLOC_ROUNDS.load(Ordering::Relaxed)),
            "exit" => break,
            _ => println!("unknown command"),
        }
        let _ = std::io::stdout().flush();
    }
    drop(child);
    drop(guard);
}
