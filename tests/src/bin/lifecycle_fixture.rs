//! Fixture for the lifecycle and trigger tests
//! (`tests/tests/hardening_lifecycle.rs`): installs `guru` as flags say,
//! prints `thread <name> <tid>` lines and `ready pid=<pid>`, then obeys
//! commands on stdin until it closes.
//!
//! Flags: `--min-interval-ms N` (default: the builder's default),
//! `--signal-rt N` (trigger `SIGRTMIN+N` instead of `SIGUSR2`),
//! `--file-trigger PATH`, `--block-signals` (block every signal in `main`
//! before installing, as a `sigwait` daemon does; threads started later
//! inherit the mask), `--discard-guard` (`let _ = install()`), `--gate` (a
//! section that waits for `release`, in the original process only),
//! `--stuck-section` (a section that never returns, with a 1-hour budget).
//!
//! Commands: `call-report` (prints the report between `call-report-begin`
//! and `call-report-end`, lines prefixed `| `), `report-in-thread` (a thread
//! `caller` calls `guru::report()`, then prints `caller-report-done`),
//! `fork idle` / `fork report` (fork from `main`; the child, with a 30 s
//! alarm as its watchdog, optionally calls `guru::report()` and prints
//! `child-report pid=<pid> lines=<n> begin=<first line>`, then waits for
//! `child-exit` and returns from `main`; the parent prints
//! `forked child=<pid>`), `child-exit` (the parent lets the child return
//! and prints `child-exited code=<c> signal=<s>`), `drop-guard`,
//! `reinstall`, `exit`.
#![allow(unsafe_code)]

use std::io::{BufRead, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
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

/// Writes a line to stdout with one `write(2)`: usable in a forked child,
/// whose stdout lock a thread of the parent may have held at the fork.
fn raw_line(line: &str) {
    let mut l = line.to_string();
    l.push('\n');
    // SAFETY: writing a valid buffer to fd 1.
    unsafe { libc::write(1, l.as_ptr().cast(), l.len()) };
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

#[inline(never)]
fn lifecycle_sleeper() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[inline(never)]
fn lifecycle_child_waiting(fd: i32) {
    let mut b = [0u8; 1];
    // SAFETY: reading into a valid one-byte buffer.
    while unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) } < 0 {}
}

fn builder(args: &[String]) -> guru::Builder {
    let mut b = guru::Builder::new(guru::package!()).service_name("lifecycle-fixture");
    if let Some(ms) = value(args, "--min-interval-ms").and_then(|v| v.parse().ok()) {
        b = b.min_interval(Duration::from_millis(ms));
    }
    if let Some(n) = value(args, "--signal-rt").and_then(|v| v.parse::<i32>().ok()) {
        b = b.signal(libc::SIGRTMIN() + n);
    }
    if let Some(path) = value(args, "--file-trigger") {
        b = b.file_trigger(path);
    }
    if flag(args, "--stuck-section") {
        b = b.section_timeout(Duration::from_secs(3600));
    }
    b
}

type Gate = Arc<(Mutex<bool>, Condvar)>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let original_pid = std::process::id();

    if flag(&args, "--block-signals") {
        // SAFETY: sigset_t is plain data; all-zero is a valid value.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t owned here.
        unsafe { libc::sigfillset(&mut set) };
        // SAFETY: `set` is initialised; a null old set is allowed.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    }

    let gate: Gate = Arc::new((Mutex::new(false), Condvar::new()));
    if flag(&args, "--gate") {
        let g = gate.clone();
        guru::register_section("Gate", move || {
            if std::process::id() != original_pid {
                return "not held in a forked child".to_string();
            }
            raw_line("gate-waiting");
            let (m, cv) = &*g;
            let mut open = m.lock().unwrap_or_else(|e| e.into_inner());
            while !*open {
                open = cv.wait(open).unwrap_or_else(|e| e.into_inner());
            }
            *open = false;
            "gate passed".to_string()
        });
    }
    if flag(&args, "--stuck-section") {
        guru::register_section("Stuck", move || -> String {
            if std::process::id() == original_pid {
                raw_line("stuck-entered");
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            "not stuck in a forked child".to_string()
        });
    }

    let mut guard = if flag(&args, "--discard-guard") {
        // The mistake the Guard's drop must make loud.
        #[allow(clippy::let_underscore_must_use, let_underscore_drop)]
        let _ = builder(&args).install();
        println!("discarded");
        None
    } else {
        match builder(&args).install() {
            Ok(g) => Some(g),
            Err(e) => {
                println!("install-error: {e}");
                std::process::exit(2);
            }
        }
    };

    spawn("lifecycle-sleeper", lifecycle_sleeper);
    println!("thread main {}", gettid());
    println!("ready pid={}", std::process::id());
    let _ = std::io::stdout().flush();

    // The forked child's: the read end it waits on. The parent's: the
    // child's pid and the write end that lets it go.
    let mut child_wait: Option<i32> = None;
    let mut child: Option<(i32, i32)> = None;
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
            "report-in-thread" => {
                std::thread::Builder::new()
                    .name("caller".into())
                    .spawn(|| {
                        let text = guru::report();
                        raw_line(&format!(
                            "caller-report-done lines={}",
                            text.lines().count()
                        ));
                    })
                    .expect("spawn caller");
            }
            cmd @ ("fork idle" | "fork report") => {
                let mut fds = [0i32; 2];
                // SAFETY: pipe() fills two descriptors.
                assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
                // SAFETY: fork(); the child only uses its own copies.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork failed");
                if pid == 0 {
                    // SAFETY: alarm has no preconditions: the child's watchdog.
                    unsafe { libc::alarm(30) };
                    // SAFETY: closing our copy of the write end.
                    unsafe { libc::close(fds[1]) };
                    raw_line(&format!("child-started pid={}", std::process::id()));
                    if cmd == "fork report" {
                        let text = guru::report();
                        raw_line(&format!(
                            "child-report pid={} lines={} begin={}",
                            std::process::id(),
                            text.lines().count(),
                            text.lines().next().unwrap_or("")
                        ));
                    }
                    child_wait = Some(fds[0]);
                    break;
                }
                // SAFETY: closing the parent's copy of the read end.
                unsafe { libc::close(fds[0]) };
                child = Some((pid, fds[1]));
                println!("forked child={pid}");
            }
            "child-exit" => {
                let Some((pid, go)) = child.take() else {
                    println!("no child");
                    continue;
                };
                // SAFETY: closing the write end lets the child's read return.
                unsafe { libc::close(go) };
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    -1
                };
                let signal = if libc::WIFSIGNALED(status) {
                    libc::WTERMSIG(status)
                } else {
                    0
                };
                println!("child-exited code={code} signal={signal}");
            }
            "release" => {
                let (m, cv) = &*gate;
                *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
                cv.notify_all();
                println!("released");
            }
            "drop-guard" => {
                drop(guard.take());
                println!("guard-dropped");
            }
            "reinstall" => match builder(&args).install() {
                Ok(g) => {
                    guard = Some(g);
                    println!("reinstalled");
                }
                Err(e) => println!("install-error: {e}"),
            },
            "exit" => break,
            _ => println!("unknown command"),
        }
        let _ = std::io::stdout().flush();
    }
    if let Some(fd) = child_wait {
        // The forked child: wait to be let go, then return from main (the
        // guard it inherited is dropped here).
        lifecycle_child_waiting(fd);
        raw_line(&format!("child-returning pid={}", std::process::id()));
    }
    drop(guard);
}
