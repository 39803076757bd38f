//! The process the benchmark (`bench`) measures: guru installed, N threads
//! (some idle, some busy), optional latency workers, and a line protocol on
//! stdin/stdout so the benchmark can ask it for reports and figures while
//! peers (gdb, eu-stack) attach to it from outside.
//!
//! Not meant to be run by hand; `bench` starts it. Options:
//!
//! - `--threads N`: threads in the process in total (main thread included);
//! - `--busy B`: how many of them spin on computation (the rest are parked);
//! - `--depth D`: call depth at which every thread parks or spins (default 16);
//! - `--async-depth D`: instead, every thread parks or spins in the innermost
//!   poll of D nested async functions (each a distinct function, boxed as a
//!   server's layers are) in a current-thread tokio runtime;
//! - `--stack-kib K`: stack size of the spawned threads (default 256 KiB, so
//!   4096 threads fit anywhere); the engine's capacity is raised to N threads
//!   when N > 1024 (`Options::max_threads`);
//! - `--max-frames F`: frames kept per thread (`Options::max_frames`,
//!   default 128);
//! - `--deadline-ms D`: the round deadline (`Options::round_deadline_ms`,
//!   default 100 ms);
//! - `--workers W --unit-iters K --gap-us G`: W latency workers, each doing
//!   units of K iterations of arithmetic, sleeping G µs between units and
//!   recording each unit's duration in a histogram;
//! - `--std`: install through the std adapter (`guru`) instead of `guru-core`
//!   alone (SIGUSR2 then wakes guru's reporter thread);
//! - `--no-install`: no guru at all (baseline for size and idle figures);
//! - `--no-maps-query`: `Options::maps_query` off (every round reads the
//!   text of `/proc/self/maps`; handlers ask the kernel nothing).
//!
//! Commands (one a line; each answer is one line `ok key=value ...` or
//! `err <text>`): `capture`, `capture-no-walk` (a capture round whose
//! handlers skip only the stack walk: `guru_core::floor::capture_without_walk`),
//! `floor`, `floor-yield` (a floor round of
//! `guru_core::floor`), `cost capture|floor|floor-yield` (thread-CPU each
//! parked thread spent on one such round, kernel signal delivery included),
//! `evict` (CPU caches), `report`, `report-std`, `report-std-parts` (the
//! same, with where its time went), `rss`, `memory`, `rstack`,
//! `lat-reset`, `lat-get`, `exit`.

use std::hint::black_box;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "../bench/clock.rs"]
mod clock;
#[path = "../bench/deep.rs"]
mod deep;
use clock::{thread_cpu_ns, thread_cpu_ns_of};
#[path = "../bench/hist.rs"]
mod hist;

// Debian's libunwind-ptrace.so uses liblzma (for compressed debug sections)
// without listing it as NEEDED; rust-lld refuses such a library unless
// liblzma is linked too.
#[cfg(feature = "rstack")]
#[allow(unsafe_code)]
#[link(name = "lzma")]
unsafe extern "C" {}

/// Set once the process should stop (never, in practice: the bench kills it).
static STOP: AtomicBool = AtomicBool::new(false);
/// Threads that have reached their final depth.
static READY: AtomicUsize = AtomicUsize::new(0);
/// Work units finished by latency workers (to show they ran).
static UNITS: AtomicU64 = AtomicU64::new(0);

struct Args {
    threads: usize,
    busy: usize,
    depth: u32,
    async_depth: usize,
    stack_kib: usize,
    max_frames: usize,
    deadline_ms: u32,
    workers: usize,
    unit_iters: u64,
    gap_us: u64,
    std: bool,
    install: bool,
    no_maps_query: bool,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let value = |name: &str| -> Option<u64> {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let flag = |name: &str| argv.iter().any(|a| a == name);
    Args {
        threads: value("--threads").unwrap_or(8).max(1) as usize,
        busy: value("--busy").unwrap_or(0) as usize,
        depth: value("--depth").unwrap_or(16) as u32,
        async_depth: value("--async-depth").unwrap_or(0) as usize,
        stack_kib: value("--stack-kib").unwrap_or(256).max(64) as usize,
        max_frames: value("--max-frames").unwrap_or(128).clamp(1, 4096) as usize,
        deadline_ms: value("--deadline-ms").unwrap_or(100).clamp(1, 60_000) as u32,
        workers: value("--workers").unwrap_or(0) as usize,
        unit_iters: value("--unit-iters").unwrap_or(20_000),
        gap_us: value("--gap-us").unwrap_or(1000),
        std: flag("--std"),
        install: !flag("--no-install"),
        no_maps_query: flag("--no-maps-query"),
    }
}

#[inline(never)]
fn spin_work(iters: u64, seed: u64) -> u64 {
    let mut acc = seed;
    for i in 0..iters {
        acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    acc
}

#[inline(never)]
fn idle_leaf() {
    while !STOP.load(Ordering::Relaxed) {
        std::thread::park();
    }
}

#[inline(never)]
fn busy_leaf() {
    let mut x = 1;
    while !STOP.load(Ordering::Relaxed) {
        x = spin_work(100_000, x);
    }
    black_box(x);
}

/// Descends `depth` frames, then runs `leaf` (so every stack has some depth
/// for the unwinders to walk, like a real server's).
#[inline(never)]
fn descend(depth: u32, leaf: fn()) -> u32 {
    if depth == 0 {
        READY.fetch_add(1, Ordering::Release);
        leaf();
        return 0;
    }
    black_box(descend(black_box(depth - 1), leaf)) + 1
}

#[inline(never)]
fn latency_worker(iters: u64, gap: Duration) {
    let mut x = 7;
    while !STOP.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        x = spin_work(iters, x);
        hist::record(t0.elapsed().as_nanos() as u64);
        UNITS.fetch_add(1, Ordering::Relaxed);
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
    black_box(x);
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn devnull() -> i32 {
    use std::os::fd::IntoRawFd;
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null")
        .into_raw_fd()
}

fn join_u64(v: &[u64]) -> String {
    let parts: Vec<String> = v.iter().map(u64::to_string).collect();
    parts.join(",")
}

/// A round's summary, every captured thread's pause, those of the threads
/// interrupted while running user code (not blocked in a system call)
/// apart too, and the frames captured.
fn describe_round(
    round: &guru_core::CapturedRound<'_, '_>,
) -> (guru_core::round::RoundSummary, Vec<u64>, Vec<u64>, usize) {
    let s = *round.summary();
    let mut frames = 0;
    let mut running = vec![];
    let pauses: Vec<u64> = round
        .threads()
        .filter_map(|t| match t {
            guru_core::ThreadCapture::Captured(v) => {
                frames += v.frames().len();
                if !matches!(
                    v.summary.syscall,
                    guru_core::arch::SyscallState::InSyscall(_)
                ) {
                    running.push(v.summary.pause_ns);
                }
                Some(v.summary.pause_ns)
            }
            guru_core::ThreadCapture::Missing { .. } => None,
        })
        .collect();
    (s, pauses, running, frames)
}

/// `capture`: a capture round; `capture-no-walk`: the same without the
/// stack walk (`guru_core::floor::capture_without_walk`: the handler's
/// floor).
fn cmd_capture(walk: bool) -> String {
    let t0 = Instant::now();
    let result = if walk {
        guru_core::capture(None, describe_round)
    } else {
        guru_core::floor::capture_without_walk(describe_round)
    };
    let wall = t0.elapsed().as_nanos();
    match result {
        Ok((s, pauses, running, frames)) => format!(
            "ok capture_ns={} fanout_ns={} wall_ns={wall} listed={} captured={} unresponsive={} frames={frames} {} pauses={} running_pauses={}",
            s.capture_ns,
            s.fanout_ns,
            s.threads_listed,
            s.threads_captured,
            s.threads_unresponsive,
            phases(&s.phases),
            join_u64(&pauses),
            join_u64(&running)
        ),
        Err(e) => format!("err {e}"),
    }
}

/// `list_wall_ns=… list_cpu_ns=… maps_… signal_… gather_…`.
fn phases(p: &guru_core::round::Phases) -> String {
    [
        ("list", p.list),
        ("maps", p.maps),
        ("signal", p.signal),
        ("gather", p.gather),
    ]
    .iter()
    .map(|(name, t)| format!("{name}_wall_ns={} {name}_cpu_ns={}", t.wall_ns, t.cpu_ns))
    .collect::<Vec<_>>()
    .join(" ")
}

fn floor_kind(yielding: bool) -> guru_core::floor::FloorKind {
    if yielding {
        guru_core::floor::FloorKind::AnswerAndYield
    } else {
        guru_core::floor::FloorKind::Answer
    }
}

/// One floor round (`guru_core::floor::round`): the same fan-out and gather
/// as a capture, handlers that only answer.
fn cmd_floor(yielding: bool) -> String {
    let t0 = Instant::now();
    let result = guru_core::floor::round(floor_kind(yielding));
    let wall = t0.elapsed().as_nanos();
    match result {
        Ok(s) => format!(
            "ok capture_ns={} fanout_ns={} wall_ns={wall} listed={} answered={} unresponsive={} {}",
            s.capture_ns,
            s.fanout_ns,
            s.threads_listed,
            s.threads_captured,
            s.threads_unresponsive,
            phases(&s.phases)
        ),
        Err(e) => format!("err {e}"),
    }
}

/// Writes a 64 MiB buffer, line by line, so that the next round finds the
/// CPU caches holding none of guru's data (as after a second of a server's
/// own work between two reports).
fn cmd_evict() -> String {
    static BUFFER: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
    let mut b = BUFFER.lock().unwrap_or_else(|e| e.into_inner());
    if b.is_empty() {
        b.resize(64 << 20, 0);
    }
    for i in (0..b.len()).step_by(64) {
        b[i] = b[i].wrapping_add(1);
    }
    black_box(&*b);
    "ok".into()
}

/// The parked threads (named `idle-…`), listed once.
fn parked_threads() -> &'static [i32] {
    static TIDS: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();
    TIDS.get_or_init(|| {
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return vec![];
        };
        dir.flatten()
            .filter_map(|e| {
                let tid: i32 = e.file_name().to_str()?.parse().ok()?;
                let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
                comm.starts_with("idle-").then_some(tid)
            })
            .collect()
    })
}

/// Thread-CPU time every parked thread spent on one round of `what`: read
/// from each thread's CPU clock just before and after the round, so it holds
/// everything the signal cost that thread — the kernel's wake-up, signal
/// frame, FPU save and restore, `rt_sigreturn` and return to its futex wait
/// — which the handler's own pause (measured inside the handler) cannot see.
fn cmd_cost(what: &str) -> String {
    let tids = parked_threads();
    if tids.is_empty() {
        return "err no parked threads".into();
    }
    let before: Vec<u64> = tids.iter().map(|&t| thread_cpu_ns_of(t)).collect();
    let answer = match what {
        "capture" => cmd_capture(true),
        "floor" => cmd_floor(false),
        "floor-yield" => cmd_floor(true),
        other => return format!("err unknown round {other:?}"),
    };
    if !answer.starts_with("ok") {
        return answer;
    }
    let mut costs: Vec<u64> = tids
        .iter()
        .zip(before)
        .map(|(&t, b)| thread_cpu_ns_of(t).saturating_sub(b))
        .collect();
    costs.sort_unstable();
    format!(
        "ok threads={} median_ns={} p99_ns={} sum_ns={}",
        costs.len(),
        costs[costs.len() / 2],
        costs[(costs.len() * 99 / 100).min(costs.len() - 1)],
        costs.iter().sum::<u64>()
    )
}

fn cmd_report(fd: i32) -> String {
    let (t0, c0) = (Instant::now(), thread_cpu_ns());
    let result = guru_core::write_report(fd);
    let wall = t0.elapsed().as_nanos();
    let cpu = thread_cpu_ns() - c0;
    match result {
        Ok(s) => format!(
            "ok wall_ns={wall} cpu_ns={cpu} capture_ns={} captured={} listed={} max_pause_ns={}",
            s.capture_ns, s.threads_captured, s.threads_listed, s.max_pause_ns
        ),
        Err(e) => format!("err {e}"),
    }
}

fn cmd_memory() -> String {
    match guru_core::engine() {
        Some(engine) => {
            let m = engine.memory();
            format!(
                "ok slots={} ranges={} caches={} scratch={} symbols={} fixed={} max_threads={} max_frames={}",
                m.slots,
                m.ranges,
                m.caches,
                m.scratch,
                m.symbols,
                m.fixed(),
                engine.options().max_threads,
                engine.options().max_frames
            )
        }
        None => "err not installed".into(),
    }
}

#[cfg(feature = "rstack")]
fn cmd_rstack() -> String {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return format!("err current_exe: {e}"),
    };
    let t0 = Instant::now();
    let mut command = std::process::Command::new(exe);
    command.arg("--rstack-child");
    match rstack_self::trace(&mut command) {
        Ok(trace) => {
            let wall = t0.elapsed().as_nanos();
            let frames: usize = trace.threads().iter().map(|t| t.frames().len()).sum();
            format!(
                "ok wall_ns={wall} threads={} frames={frames}",
                trace.threads().len()
            )
        }
        Err(e) => format!("err rstack-self: {}", e.to_string().replace('\n', " ")),
    }
}

#[cfg(not(feature = "rstack"))]
fn cmd_rstack() -> String {
    "err rstack-self not built in: build guru-examples with --features rstack (needs libunwind-dev)"
        .into()
}

/// `report-std`: a whole report through the std adapter, timed from the
/// request to the returned text (which holds the end line). With `parts`
/// (`report-std-parts`), also where its time went ([`std_report_parts`]:
/// the report is parsed and rendered again after it is timed; the benchmark
/// never asks for that in the first report, whose RSS it reads).
fn cmd_report_std(parts: bool) -> String {
    let (t0, c0) = (Instant::now(), thread_cpu_ns());
    let text = std_report();
    let wall = t0.elapsed().as_nanos();
    let cpu = thread_cpu_ns() - c0;
    match text {
        Ok(text) => format!(
            "ok wall_ns={wall} cpu_ns={cpu} bytes={} lines={} complete={}{}",
            text.len(),
            text.lines().count(),
            text.contains("End of Guru Meditation"),
            if parts {
                std_report_parts(&text)
            } else {
                String::new()
            }
        ),
        Err(e) => format!("err {e}"),
    }
}

/// Where a std report's time went, from its own Report section (read back
/// with `guru::model::Report::from_text`): the round's capture, the
/// symbolization, the configuration and registered sections (the section
/// worker), the whole collection until the Report section; and the text
/// rendering, timed here by rendering the report read back once more (the
/// same model, so the same text). Empty when the report has no figures.
fn std_report_parts(text: &str) -> String {
    let Ok(report) = guru::model::Report::from_text(text) else {
        return String::new();
    };
    let figures = report.section("Report").and_then(|s| match &s.content {
        guru::model::Content::Ok(guru::model::Data::Report(f)) => Some(f),
        _ => None,
    });
    let Some(f) = figures else {
        return String::new();
    };
    let t0 = Instant::now();
    black_box(report.to_text());
    let render = t0.elapsed().as_nanos();
    let mut out = format!(" render_ns={render}");
    if let Some(r) = &f.round {
        out += &format!(" capture_ns={}", r.capture_ns);
    }
    if let Some(s) = &f.symbolization {
        out += &format!(
            " symbolize_ns={} frames={} cached={}",
            s.ns, s.frames, s.cached
        );
    }
    if let (Some(sections), Some(total)) = (f.sections_ns, f.total_ns) {
        out += &format!(" sections_ns={sections} collect_ns={total}");
    }
    out
}

fn std_report() -> Result<String, String> {
    Ok(guru::report())
}

/// `guru::setup_autorun`: SIGUSR2 wakes the reporter thread, which writes a
/// text report to stderr (the benchmark discards it). The guard lives as long
/// as the process.
/// Waits until the `guru-reporter` thread sleeps in `poll` (its start-up
/// work done); returns the time since `since` and the thread's CPU time.
fn wait_for_reporter_idle(since: Instant) -> (u128, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(tid) = thread_named("guru-reporter") {
            let call = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
                .unwrap_or_default();
            let nr = call.split_whitespace().next().unwrap_or("");
            if nr == libc::SYS_poll.to_string() || nr == libc::SYS_ppoll.to_string() {
                return (since.elapsed().as_nanos(), thread_cpu_ns_of(tid));
            }
        }
        if Instant::now() > deadline {
            return (since.elapsed().as_nanos(), 0);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// The tid of this process's thread called `name`.
fn thread_named(name: &str) -> Option<i32> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim_end() == name).then_some(tid)
        })
}

/// The engine's options: the defaults, with room for the threads and
/// frames asked for, and the deadline asked for.
fn core_options(args: &Args) -> guru_core::Options {
    let o = guru_core::Options::default();
    guru_core::Options {
        round_deadline_ms: args.deadline_ms,
        maps_query: !args.no_maps_query,
        ..o.with_capacity(args.threads.max(o.max_threads), args.max_frames)
    }
}

fn install_std(options: guru_core::Options) -> Result<(), String> {
    let guard = guru::Builder::new(guru::package!())
        .core_options(options)
        .install()
        .map_err(|e| e.to_string())?;
    Box::leak(Box::new(guard));
    Ok(())
}

fn main() {
    #[cfg(feature = "rstack")]
    if std::env::args().nth(1).as_deref() == Some("--rstack-child") {
        let _ = rstack_self::child();
        return;
    }
    let args = parse_args();
    let out_fd = devnull();
    let rss_before_install = rss_kb();
    let t_install = Instant::now();
    let installed = if !args.install {
        Ok(())
    } else if args.std {
        install_std(core_options(&args))
    } else {
        guru_core::install(guru_core::Options {
            output_fd: out_fd,
            ..core_options(&args)
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let install_ns = t_install.elapsed().as_nanos();
    if let Err(e) = installed {
        println!("err install: {e}");
        std::process::exit(1);
    }
    // std: guru's reporter thread indexes debug info right after install
    // (`Builder::prewarm_symbols`); wait for it, so "cold" reports measure a
    // process that has been up a moment, and say what the index cost.
    let rss_installed = rss_kb();
    let (prewarm_ns, prewarm_cpu_ns) = if args.install && args.std {
        wait_for_reporter_idle(t_install)
    } else {
        (0, 0)
    };
    let prewarm_rss_kb = rss_kb().saturating_sub(rss_installed);

    let spawned = args.threads.saturating_sub(1);
    let busy = args.busy.min(spawned);
    for i in 0..spawned {
        let leaf: fn() = if i < busy { busy_leaf } else { idle_leaf };
        let (depth, async_depth) = (args.depth, args.async_depth);
        let name = if i < busy {
            format!("busy-{i}")
        } else {
            format!("idle-{i}")
        };
        std::thread::Builder::new()
            .name(name)
            .stack_size(args.stack_kib * 1024)
            .spawn(move || {
                if async_depth > 0 {
                    deep::run(async_depth, leaf);
                } else {
                    descend(depth, leaf);
                }
            })
            .expect("spawn thread");
    }
    for _ in 0..args.workers {
        let (iters, gap) = (args.unit_iters, Duration::from_micros(args.gap_us));
        std::thread::Builder::new()
            .name("latency-worker".into())
            .spawn(move || latency_worker(iters, gap))
            .expect("spawn worker");
    }
    while READY.load(Ordering::Acquire) < spawned {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "ready pid={} install_ns={install_ns} rss_kb={} rss_before_install_kb={rss_before_install} \
         prewarm_ns={prewarm_ns} prewarm_cpu_ns={prewarm_cpu_ns} prewarm_rss_kb={prewarm_rss_kb}",
        std::process::id(),
        rss_kb()
    );

    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let answer = match line.trim() {
            "capture" => cmd_capture(true),
            "capture-no-walk" => cmd_capture(false),
            "floor" => cmd_floor(false),
            "floor-yield" => cmd_floor(true),
            cost if cost.starts_with("cost ") => cmd_cost(&cost[5..]),
            "report" => cmd_report(out_fd),
            "report-std" => cmd_report_std(false),
            "report-std-parts" => cmd_report_std(true),
            "rss" => format!("ok rss_kb={}", rss_kb()),
            "evict" => cmd_evict(),
            "trim" => {
                // SAFETY: malloc_trim has no preconditions.
                #[allow(unsafe_code)]
                let r = unsafe { libc::malloc_trim(0) };
                format!("ok trimmed={r} rss_kb={}", rss_kb())
            }
            "memory" => cmd_memory(),
            "rstack" => cmd_rstack(),
            "lat-reset" => {
                hist::reset();
                "ok".into()
            }
            "lat-get" => format!(
                "{} units={}",
                hist::summary_line(),
                UNITS.load(Ordering::Relaxed)
            ),
            "exit" => break,
            other => format!("err unknown command {other:?}"),
        };
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    STOP.store(true, Ordering::Relaxed);
}
