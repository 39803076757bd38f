//! Fixture for the watchdog tests (`tests/tests/watchdog.rs`).
//!
//! `watchdog_fixture heartbeat <deadline_ms> <watchdog_min_interval_ms>`: a
//! thread "event-loop" beats a heartbeat "event-loop" every 20 ms and obeys
//! commands from stdin (forwarded by the main thread):
//! `sleep <ms>` (wedged in a blocking system call in `wedged_in_sleep`),
//! `spin <ms>` (`wedged_spinning`), `lock <ms>` (holds a mutex in
//! `wedged_holding_lock` while threads "waiter-1" and "waiter-2" wait for
//! it), `flap <n> <wedge_ms> <beat_ms>`, `drop` (drops the heartbeat and
//! keeps running without one). It prints `wedged` when a wedge starts and
//! `resumed` when it ends (`flapped` after a flap).
//!
//! `watchdog_fixture tokio <threshold_ms>`: a 2-worker runtime "rt",
//! registered, with `tokio_stall_threshold`; commands `block <ms>` (a task
//! that sleeps synchronously in `blocking_in_poll`: prints `blocking` and
//! `unblocked`), `busy <ms>` (many short tasks keep both workers busy:
//! prints `busy-done`), `beat <deadline_ms>` (a task beats a heartbeat
//! "tokio-beat" every 20 ms: prints `beating`), `block-all <ms>` (two tasks
//! block both workers in `blocking_in_poll` at once: prints `all-blocked`
//! once both run, `all-unblocked` after).
//!
//! `watchdog_fixture stuck`: threads "reader" (blocked in `read`),
//! "spinner" (spinning in `spin_in_place`), "mover" (in `mover_phase_one`
//! until the command `move`, then in `mover_phase_two`: prints `moved`).
//!
//! Every mode prints `thread <name> <tid>` lines and `ready`. With
//! `WATCHDOG_FIXTURE_JSON=1` in the environment its reports are JSON
//! (`tests/tests/report_model_watchdog.rs`).

use std::hint::black_box;
use std::io::BufRead;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    #[allow(unsafe_code)]
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    tid as i32
}

fn say(line: &str) {
    println!("{line}");
}

#[inline(never)]
fn wedged_in_sleep(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    black_box(());
}

#[inline(never)]
fn wedged_spinning(ms: u64) -> u64 {
    let end = Instant::now() + Duration::from_millis(ms);
    let mut x = 0u64;
    while Instant::now() < end {
        for _ in 0..10_000 {
            x = black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }
    x
}

#[inline(never)]
fn wedged_holding_lock(lock: &Mutex<u64>, ms: u64) {
    let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
    say("wedged");
    std::thread::sleep(Duration::from_millis(ms));
    *g += 1;
}

/// The fixture's reporter: no rate limit for manual reports, JSON when
/// `WATCHDOG_FIXTURE_JSON` is set.
fn builder() -> guru::Builder {
    let b = guru::Builder::new(guru::package!())
        .service_name("watchdog-fixture")
        .min_interval(Duration::ZERO);
    if std::env::var_os("WATCHDOG_FIXTURE_JSON").is_some() {
        b.format(guru::Format::Json)
    } else {
        b
    }
}

fn heartbeat_mode(deadline_ms: u64, auto_ms: u64) {
    let _guard = builder()
        .watchdog_min_interval(Duration::from_millis(auto_ms))
        .install()
        .expect("install guru");
    let lock = Arc::new(Mutex::new(0u64));
    for i in 1..=2 {
        let lock = lock.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("waiter-{i}"))
            .spawn(move || {
                tx.send(gettid()).unwrap();
                loop {
                    std::thread::sleep(Duration::from_millis(10));
                    let g = lock.lock().unwrap_or_else(|e| e.into_inner());
                    black_box(*g);
                }
            })
            .unwrap();
        say(&format!("thread waiter-{i} {}", rx.recv().unwrap()));
    }
    let (cmd_tx, cmd_rx) = mpsc::channel::<String>();
    let (tid_tx, tid_rx) = mpsc::channel();
    let loop_lock = lock.clone();
    std::thread::Builder::new()
        .name("event-loop".into())
        .spawn(move || {
            let mut hb = Some(guru::heartbeat(
                "event-loop",
                Duration::from_millis(deadline_ms),
            ));
            tid_tx.send(gettid()).unwrap();
            loop {
                if let Some(hb) = &hb {
                    hb.beat();
                }
                let cmd = match cmd_rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(c) => c,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(_) => return,
                };
                let w: Vec<u64> = cmd
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|n| n.parse().ok())
                    .collect();
                let arg = |i: usize| w.get(i).copied().unwrap_or(1000);
                match cmd.split_whitespace().next() {
                    Some("sleep") => {
                        say("wedged");
                        wedged_in_sleep(arg(0));
                        say("resumed");
                    }
                    Some("spin") => {
                        say("wedged");
                        black_box(wedged_spinning(arg(0)));
                        say("resumed");
                    }
                    Some("lock") => {
                        wedged_holding_lock(&loop_lock, arg(0));
                        say("resumed");
                    }
                    Some("flap") => {
                        for _ in 0..arg(0) {
                            wedged_in_sleep(arg(1));
                            let end = Instant::now() + Duration::from_millis(arg(2));
                            while Instant::now() < end {
                                if let Some(hb) = &hb {
                                    hb.beat();
                                }
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                        say("flapped");
                    }
                    Some("drop") => {
                        hb = None;
                        say("dropped");
                    }
                    _ => say(&format!("unknown command {cmd:?}")),
                }
            }
        })
        .unwrap();
    say(&format!("thread event-loop {}", tid_rx.recv().unwrap()));
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if cmd_tx.send(line).is_err() {
            break;
        }
    }
}

#[inline(never)]
fn blocking_in_poll(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    black_box(());
}

fn tokio_mode(threshold_ms: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = builder()
        .watchdog_min_interval(Duration::ZERO)
        .tokio_runtime("rt", rt.handle().clone())
        .tokio_stall_threshold(Duration::from_millis(threshold_ms))
        .install()
        .expect("install guru");
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut parts = line.split_whitespace();
        let cmd = parts.next().unwrap_or("");
        let ms: u64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
        match cmd {
            "block" => {
                rt.spawn(async move {
                    say(&format!("blocking {}", gettid()));
                    blocking_in_poll(ms);
                    say("unblocked");
                });
            }
            "beat" => {
                let hb = guru::heartbeat("tokio-beat", Duration::from_millis(ms));
                rt.spawn(async move {
                    loop {
                        hb.beat();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
                say("beating");
            }
            "block-all" => {
                use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
                let running = Arc::new(AtomicUsize::new(0));
                let together = Arc::new(AtomicUsize::new(0));
                let tasks: Vec<_> = (0..2)
                    .map(|_| {
                        let (running, together) = (running.clone(), together.clone());
                        rt.spawn(async move {
                            // Both tasks run at once only on both workers (an
                            // idle worker steals the second from a blocked one).
                            running.fetch_add(1, SeqCst);
                            let until = Instant::now() + Duration::from_secs(5);
                            while running.load(SeqCst) < 2 && Instant::now() < until {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            if Instant::now() < until && together.fetch_add(1, SeqCst) == 1 {
                                say("all-blocked");
                            }
                            blocking_in_poll(ms);
                        })
                    })
                    .collect();
                std::thread::spawn(move || {
                    for t in tasks {
                        while !t.is_finished() {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    say("all-unblocked");
                });
            }
            "busy" => {
                let end = Instant::now() + Duration::from_millis(ms);
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        rt.spawn(async move {
                            let mut x = 0u64;
                            while Instant::now() < end {
                                for _ in 0..20_000 {
                                    x = black_box(x.wrapping_add(1));
                                }
                                tokio::task::yield_now().await;
                            }
                            x
                        })
                    })
                    .collect();
                rt.block_on(async {
                    for t in tasks {
                        let _ = t.await;
                    }
                });
                say("busy-done");
            }
            _ => say(&format!("unknown command {line:?}")),
        }
    }
}

#[inline(never)]
fn reader_blocked(fd: i32) {
    let mut buf = [0u8; 8];
    // SAFETY: reading into a valid stack buffer from a pipe we own.
    #[allow(unsafe_code)]
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    black_box(n);
}

/// Spins without calling anything (in a debug build even `black_box` is a
/// call): the innermost frame is always this function.
#[inline(never)]
fn spin_in_place() -> ! {
    loop {
        // SAFETY: an empty instruction; touches no memory, no registers.
        #[allow(unsafe_code)]
        unsafe {
            std::arch::asm!("nop", options(nomem, nostack))
        };
    }
}

#[inline(never)]
fn mover_phase_one(rx: &mpsc::Receiver<()>) {
    let _ = rx.recv();
}

#[inline(never)]
fn mover_phase_two() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn stuck_mode() {
    let _guard = builder().install().expect("install guru");
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe to fill.
    #[allow(unsafe_code)]
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0);
    let read_fd = fds[0];
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                tx.send(gettid()).unwrap();
                f();
            })
            .unwrap();
        say(&format!("thread {name} {}", rx.recv().unwrap()));
    };
    spawn("reader", Box::new(move || reader_blocked(read_fd)));
    spawn("spinner", Box::new(|| spin_in_place()));
    let (move_tx, move_rx) = mpsc::channel();
    spawn(
        "mover",
        Box::new(move || {
            mover_phase_one(&move_rx);
            say("moved");
            mover_phase_two();
        }),
    );
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "move" {
            let _ = move_tx.send(());
        }
    }
    black_box(fds[1]);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    match args.get(1).map(String::as_str) {
        Some("heartbeat") => heartbeat_mode(num(2, 500), num(3, 30_000)),
        Some("tokio") => tokio_mode(num(2, 300)),
        Some("stuck") => stuck_mode(),
        other => {
            eprintln!("usage: watchdog_fixture heartbeat|tokio|stuck ... (got {other:?})");
            std::process::exit(2);
        }
    }
}
