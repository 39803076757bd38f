//! A daemon that uses only `guru-core`: SIGUSR2 writes a report to stderr
//! straight from the signal handler.
//!
//! Its threads sit in several states so a report has something to show: a
//! busy loop three calls deep, a sleeper, a thread blocked on a mutex, one on a
//! condition variable, one in `read()` on a pipe, and one at the bottom of a
//! deep recursion.
//!
//! ```text
//! cargo run --release -p guru-examples --bin core_only
//! kill -USR2 <pid>
//! ```
//!
//! `--report-after-ms N` makes it send itself SIGUSR2 after N ms (for demos),
//! `--exit-after-ms N` makes it exit after N ms.

use std::hint::black_box;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[inline(never)]
fn busy_inner(x: u64) -> u64 {
    let mut acc = x;
    for i in 0..1_000_000u64 {
        acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    acc
}

#[inline(never)]
fn busy_middle(x: u64) -> u64 {
    black_box(busy_inner(x)) ^ 1
}

#[inline(never)]
fn busy_outer() {
    let mut x = 1;
    loop {
        x = black_box(busy_middle(x));
    }
}

#[inline(never)]
fn sleeper() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[inline(never)]
fn mutex_waiter(lock: Arc<Mutex<()>>) {
    let _g = lock.lock();
}

#[inline(never)]
fn condvar_waiter(pair: Arc<(Mutex<bool>, Condvar)>) {
    let (m, cv) = &*pair;
    let mut ready = m.lock().unwrap_or_else(|e| e.into_inner());
    while !*ready {
        ready = cv.wait(ready).unwrap_or_else(|e| e.into_inner());
    }
}

#[inline(never)]
fn pipe_reader(fd: i32) {
    let mut buf = [0u8; 16];
    // SAFETY: reading into a valid stack buffer from a pipe we own.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
}

#[inline(never)]
fn recurse(depth: u32) -> u32 {
    if depth == 0 {
        std::thread::park();
        return 0;
    }
    black_box(recurse(black_box(depth - 1))) + 1
}

fn arg_ms(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    if let Err(e) = guru_core::install(guru_core::Options::default()) {
        eprintln!("core_only: cannot install guru: {e}");
        std::process::exit(1);
    }

    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .expect("spawn thread");
    };
    spawn("busy", Box::new(busy_outer));
    spawn("sleeper", Box::new(sleeper));
    let lock = Arc::new(Mutex::new(()));
    let held = lock.lock().expect("lock");
    let l2 = lock.clone();
    spawn("mutex-waiter", Box::new(move || mutex_waiter(l2)));
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = pair.clone();
    spawn("condvar-waiter", Box::new(move || condvar_waiter(p2)));
    let mut fds = [0i32; 2];
    // SAFETY: pipe() writes two descriptors into the array.
    #[allow(unsafe_code)]
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe");
    let read_end = fds[0];
    spawn("pipe-reader", Box::new(move || pipe_reader(read_end)));
    spawn(
        "deep-recursion",
        Box::new(|| {
            black_box(recurse(200));
        }),
    );

    println!(
        "core_only: pid {} — send SIGUSR2 for a report: kill -USR2 {}",
        std::process::id(),
        std::process::id()
    );
    if let Some(ms) = arg_ms("--report-after-ms") {
        std::thread::sleep(Duration::from_millis(ms));
        // SAFETY: sending a signal to our own process.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(libc::getpid(), libc::SIGUSR2)
        };
    }
    match arg_ms("--exit-after-ms") {
        Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    drop(held);
}
