//! Watchdog costs (BENCHMARKS.md, "Watchdog"): `Heartbeat::beat()` in ns;
//! the reporter thread's wake-ups per second and CPU with 0, 1 and 10
//! heartbeats of 1 s (voluntary context switches and `utime + stime` of
//! `guru-reporter` from `/proc`), and with the tokio stall watch on; the
//! time from a missed deadline to the report's sections running.
//!
//! ```text
//! cargo run --release -p guru-examples --bin watchdog_bench
//! ```
//!
//! Reports go to a temporary log directory (removed at the end). The
//! figures replace the watchdog block of `BENCHMARKS.md` (appended if it has
//! none; the main `bench` keeps the block when it rewrites the file); pass
//! `-` to print them only.

use std::hint::black_box;

use clock::thread_cpu_ns;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "../bench/clock.rs"]
mod clock;

static SECTION_RAN: Mutex<Option<Instant>> = Mutex::new(None);

fn reporter_tid() -> Option<i32> {
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|e| {
        let e = e.ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == "guru-reporter")
            .then(|| e.file_name().to_str()?.parse().ok())
            .flatten()
    })
}

/// (voluntary context switches, CPU ns) of a thread.
fn thread_figures(tid: i32) -> (u64, u64) {
    let status =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap_or_default();
    let switches = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let mut f = rest.split_whitespace().skip(11);
    let ticks: u64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory-safety preconditions.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (switches, ticks * 1_000_000_000 / hz)
}

/// Wake-ups per second and CPU (ms per s) of the reporter over `window`.
fn idle_cost(tid: i32, window: Duration) -> (f64, f64) {
    let (s0, c0) = thread_figures(tid);
    std::thread::sleep(window);
    let (s1, c1) = thread_figures(tid);
    let secs = window.as_secs_f64();
    ((s1 - s0) as f64 / secs, (c1 - c0) as f64 / 1e6 / secs)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("guru-watchdog-bench-{}", std::process::id()));
    guru::register_section("bench", || {
        *SECTION_RAN.lock().unwrap() = Some(Instant::now());
        String::from("ran")
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let guard = guru::Builder::new(guru::package!())
        .service_name("watchdog-bench")
        .log_dir(&dir)
        .min_interval(Duration::ZERO)
        .watchdog_min_interval(Duration::ZERO)
        .install()
        .expect("install guru");
    std::thread::sleep(Duration::from_millis(500)); // debug-info index
    let tid = reporter_tid().expect("guru-reporter thread");

    // beat()
    let hb = guru::heartbeat("bench", Duration::from_secs(3600));
    hb.beat();
    // Thread-CPU time (the machine is shared: wall time would count
    // preemption), the best of 5 runs of 5 M calls.
    let n = 5_000_000u64;
    let per_call = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let t = thread_cpu_ns();
                for _ in 0..n {
                    f();
                }
                (thread_cpu_ns() - t) as f64 / n as f64
            })
            .fold(f64::MAX, f64::min)
    };
    let beat_ns = per_call(&|| black_box(&hb).beat());
    let instant_ns = per_call(&|| {
        black_box(Instant::now());
    });
    drop(hb);
    let mut rows = vec![format!(
        "| `Heartbeat::beat()` | {beat_ns:.1} ns per call, thread-CPU, best of 5 × 5 M (`Instant::now()` the same way: {instant_ns:.1} ns) |"
    )];

    let window = Duration::from_secs(10);
    let (w, c) = idle_cost(tid, window);
    rows.push(format!(
        "| reporter thread, no heartbeat | {w:.2} wake-ups/s, {c:.3} ms CPU/s ({} s window) |",
        window.as_secs()
    ));
    for count in [1usize, 10] {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let beaters: Vec<_> = (0..count)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let hb = guru::heartbeat(format!("hb-{i}"), Duration::from_secs(1));
                    // Phases spread over the deadline.
                    std::thread::sleep(Duration::from_millis(97 * i as u64));
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        hb.beat();
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        let (w, c) = idle_cost(tid, window);
        rows.push(format!(
            "| reporter thread, {count} heartbeat{} of 1 s beaten every 100 ms | {w:.2} wake-ups/s, {c:.3} ms CPU/s |",
            if count == 1 { "" } else { "s" }
        ));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for b in beaters {
            let _ = b.join();
        }
    }

    // tokio stall watch: a registered, idle runtime, threshold 500 ms.
    let _keep =
        guru::Builder::new(guru::package!()).tokio_stall_threshold(Duration::from_millis(500));
    guru::tokio::register("bench", rt.handle().clone());
    std::thread::sleep(Duration::from_millis(1500));
    let (w, c) = idle_cost(tid, window);
    rows.push(format!(
        "| reporter thread, tokio stall watch on (threshold 500 ms, one idle 2-worker runtime) | {w:.2} wake-ups/s, {c:.3} ms CPU/s |"
    ));
    guru::tokio::unregister("bench");
    let _keep = guru::Builder::new(guru::package!()).tokio_stall_threshold(Duration::ZERO);

    // Missed deadline → the report's sections run.
    let mut lat = Vec::new();
    for _ in 0..10 {
        *SECTION_RAN.lock().unwrap() = None;
        let deadline = Duration::from_millis(200);
        let hb = guru::heartbeat("latency", deadline);
        hb.beat();
        let missed_at = Instant::now() + deadline;
        let ran = loop {
            if let Some(t) = *SECTION_RAN.lock().unwrap() {
                break t;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        lat.push(ran.saturating_duration_since(missed_at).as_secs_f64() * 1e3);
        drop(hb);
        std::thread::sleep(Duration::from_millis(100));
    }
    lat.sort_by(f64::total_cmp);
    rows.push(format!(
        "| missed deadline → the automatic report's sections running | median {:.1} ms, max {:.1} ms (10 stalls, deadline 200 ms) |",
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    ));
    guard.uninstall();
    let _ = std::fs::remove_dir_all(&dir);
    write_block(&rows);
}

const BLOCK_START: &str = "<!-- watchdog_bench: begin -->";
const BLOCK_END: &str = "<!-- watchdog_bench: end -->";

/// Prints the figures and puts them into BENCHMARKS.md (unless `-`).
fn write_block(rows: &[String]) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut block = format!(
        "{BLOCK_START}\n### Watchdog\n\nWritten by `cargo run --release -p guru-examples --bin watchdog_bench` (not by `bench`). Wake-ups are the `guru-reporter` thread's voluntary context switches (`/proc/self/task/<tid>/status`), CPU its `utime + stime` (clock ticks of 10 ms: 0.000 means no tick in the window), each over 10 s. Load average at the end: {}.\n\n| what | measured |\n|---|---|\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for r in rows {
        block.push_str(r);
        block.push('\n');
    }
    block.push_str(BLOCK_END);
    println!("{block}");
    if std::env::args().nth(1).as_deref() == Some("-") {
        return;
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new = match (old.find(BLOCK_START), old.find(BLOCK_END)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{block}{}", &old[..a], &old[b + BLOCK_END.len()..])
        }
        _ => format!("{}\n{block}\n", old.trim_end()),
    };
    match std::fs::write(&path, new) {
        Ok(()) => eprintln!("watchdog_bench: wrote {}", path.display()),
        Err(e) => eprintln!("watchdog_bench: cannot write {}: {e}", path.display()),
    }
}
