//! The guru benchmark: what a report costs, side by side with the tools a
//! user would otherwise reach for (gdb, eu-stack, rstack-self), on the same
//! fixture processes in the same run. Writes `BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p guru-examples --features rstack --bin bench
//! cargo run --release -p guru-examples --bin bench -- --quick      # a minute or so
//! ```
//!
//! Options: `--quick` (N ∈ {8, 64}, fewer runs, short phases), `--threads
//! 8,64,256,1024`, `--runs R` (our runs per figure, default 15),
//! `--peer-runs P` (default 3), `--cold-runs C` (fresh processes for
//! first-report figures, default 3), `--idle-secs S` (default 10),
//! `--phase-secs S` (latency phases, default 5), `--no-peers`,
//! `--peer-timeout S` (a peer dump is killed after S s, default 60),
//! `--busy-up-to N` (busy variants only up to N threads, default 64), `--out
//! PATH` (default `BENCHMARKS.md` at the workspace root; `-` for stdout
//! only), `--plot PATH` (default `docs/bench-dump-vs-threads.svg`; `-` for
//! none). For short development runs of a subset: `--no-cold` (no
//! first-report processes), `--no-std`, `--no-extras` (no size, idle and
//! latency figures), `--no-deep` (no deep-stack variants), `--only-deep`.
//!
//! Each row also runs floor rounds (`guru_core::floor`) between its capture
//! rounds, in the same process: see `../bench/floor.rs`.
//!
//! It builds its fixture (`bench_fixture`) and the size probes
//! (`bench_size_*`) with cargo first, so the one command above is enough.
//! Peers that are not installed are skipped with a message saying how to get
//! them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../bench/floor.rs"]
mod floor;
#[path = "../bench/plot.rs"]
mod plot;
#[path = "../bench/stats.rs"]
mod stats;

use stats::{Stats, bytes, dur, ratio, spread};

struct Config {
    threads: Vec<usize>,
    runs: usize,
    peer_runs: usize,
    cold_runs: usize,
    idle_secs: u64,
    phase_secs: u64,
    peers: bool,
    out: Option<PathBuf>,
    quick: bool,
    /// A peer dump that takes longer is killed and reported as such.
    peer_timeout: Duration,
    /// Busy variants only up to this many threads.
    busy_up_to: usize,
    /// Where the plot goes (`None`: no plot).
    plot: Option<PathBuf>,
    /// Subsets, for development runs.
    cold: bool,
    std: bool,
    extras: bool,
    deep: bool,
    only_deep: bool,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn parse_config() -> Config {
    let argv: Vec<String> = std::env::args().collect();
    let value = |name: &str| -> Option<&str> {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .map(String::as_str)
    };
    let num = |name: &str, default: u64| -> u64 {
        value(name).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let quick = argv.iter().any(|a| a == "--quick");
    let threads = value("--threads")
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if quick {
                vec![8, 64]
            } else {
                vec![8, 64, 256, 1024, 4096]
            }
        });
    let out = match value("--out") {
        Some("-") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => Some(workspace_root().join("BENCHMARKS.md")),
    };
    Config {
        threads,
        runs: num("--runs", if quick { 5 } else { 15 }) as usize,
        peer_runs: num("--peer-runs", if quick { 1 } else { 3 }) as usize,
        cold_runs: num("--cold-runs", if quick { 1 } else { 3 }) as usize,
        idle_secs: num("--idle-secs", if quick { 2 } else { 10 }),
        phase_secs: num("--phase-secs", if quick { 2 } else { 5 }),
        peers: !argv.iter().any(|a| a == "--no-peers"),
        out,
        quick,
        peer_timeout: Duration::from_secs(num("--peer-timeout", 60)),
        busy_up_to: num("--busy-up-to", 64) as usize,
        plot: match value("--plot") {
            Some("-") => None,
            Some(p) => Some(PathBuf::from(p)),
            None => Some(workspace_root().join("docs/bench-dump-vs-threads.svg")),
        },
        cold: !argv.iter().any(|a| a == "--no-cold"),
        std: !argv.iter().any(|a| a == "--no-std"),
        extras: !argv.iter().any(|a| a == "--no-extras"),
        deep: !argv.iter().any(|a| a == "--no-deep"),
        only_deep: argv.iter().any(|a| a == "--only-deep"),
    }
}

// ---------------------------------------------------------------- building

const PROBES: [&str; 3] = ["bench_size_base", "bench_size_core", "bench_size_std"];

/// Builds the fixture and size probes next to this binary (same profile,
/// same target dir, same features).
fn build_helpers() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe.parent().ok_or("binary has no directory")?.to_path_buf();
    if std::env::var_os("GURU_BENCH_NO_BUILD").is_none() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--release", "-p", "guru-examples", "--bin"])
            .arg("bench_fixture");
        for p in PROBES {
            cmd.args(["--bin", p]);
        }
        if cfg!(feature = "rstack") {
            cmd.args(["--features", "rstack"]);
        }
        eprintln!("bench: building the fixture and size probes: {cmd:?}");
        let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build failed: {status}"));
        }
    }
    let fixture = dir.join("bench_fixture");
    if !fixture.exists() {
        return Err(format!("{} not found", fixture.display()));
    }
    Ok(dir)
}

// ---------------------------------------------------------------- fixture

type Answer = BTreeMap<String, String>;

struct Fixture {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: i32,
    ready: Answer,
}

fn parse_answer(line: &str) -> Result<Answer, String> {
    let line = line.trim();
    let rest = match line.split_once(' ') {
        Some((head, rest)) => (head, rest),
        None => (line, ""),
    };
    if rest.0 != "ok" && rest.0 != "ready" {
        return Err(line.to_string());
    }
    Ok(rest
        .1
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

impl Fixture {
    fn start(dir: &Path, args: &[String]) -> Result<Fixture, String> {
        let mut child = Command::new(dir.join("bench_fixture"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Reports the std adapter writes on SIGUSR2 go to stderr: not ours to show.
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting bench_fixture: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("reading fixture: {e}"))?;
        let ready = parse_answer(&line).map_err(|e| format!("fixture did not start: {e}"))?;
        let pid = ready
            .get("pid")
            .and_then(|p| p.parse().ok())
            .ok_or("fixture gave no pid")?;
        // Let the threads settle into their parked / spinning state.
        std::thread::sleep(Duration::from_millis(100));
        Ok(Fixture {
            child,
            stdin,
            stdout,
            pid,
            ready,
        })
    }

    fn ask(&mut self, command: &str) -> Result<Answer, String> {
        writeln!(self.stdin, "{command}").map_err(|e| format!("{command}: {e}"))?;
        self.stdin.flush().map_err(|e| format!("{command}: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("{command}: {e}"))?;
        if line.is_empty() {
            return Err(format!("{command}: fixture exited"));
        }
        parse_answer(&line)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn num(a: &Answer, key: &str) -> Option<f64> {
    a.get(key).and_then(|v| v.parse().ok())
}

/// Appends the comma-separated numbers of `key` (a list such as `pauses`).
fn extend_list(into: &mut Vec<f64>, a: &Answer, key: &str) {
    if let Some(list) = a.get(key) {
        into.extend(list.split(',').filter_map(|v| v.parse::<f64>().ok()));
    }
}

// ---------------------------------------------------------------- peers

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Peer {
    Gdb,
    EuStack,
    RstackSelf,
}

impl Peer {
    const ALL: [Peer; 3] = [Peer::Gdb, Peer::EuStack, Peer::RstackSelf];

    fn name(self) -> &'static str {
        match self {
            Peer::Gdb => "gdb",
            Peer::EuStack => "eu-stack",
            Peer::RstackSelf => "rstack-self",
        }
    }

    fn command_line(self) -> &'static str {
        match self {
            Peer::Gdb => "gdb -batch -ex 'thread apply all bt' -p PID",
            Peer::EuStack => "eu-stack -p PID",
            Peer::RstackSelf => "rstack_self::trace (in the fixture, libunwind)",
        }
    }
}

fn tool_version(tool: &str, arg: &str) -> Option<String> {
    let out = Command::new(tool).arg(arg).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(str::to_string)
}

/// Which peers can run, and why the others cannot.
fn peer_availability(dir: &Path) -> BTreeMap<Peer, Result<String, String>> {
    let mut m = BTreeMap::new();
    m.insert(
        Peer::Gdb,
        tool_version("gdb", "--version").ok_or_else(|| {
            "gdb not installed: skipped (install it with `apt-get install gdb`)".to_string()
        }),
    );
    m.insert(
        Peer::EuStack,
        tool_version("eu-stack", "--version").ok_or_else(|| {
            "eu-stack not installed: skipped (install it with `apt-get install elfutils`)"
                .to_string()
        }),
    );
    let rstack = if cfg!(feature = "rstack") {
        match Fixture::start(dir, &["--threads".into(), "2".into()])
            .and_then(|mut f| f.ask("rstack"))
        {
            Ok(_) => Ok("rstack-self 0.3 (libunwind backend)".to_string()),
            Err(e) => Err(format!("rstack-self does not work here: {e}")),
        }
    } else {
        Err(
            "rstack-self skipped: the benchmark was built without `--features rstack` \
             (it needs `apt-get install libunwind-dev`)"
                .to_string(),
        )
    };
    m.insert(Peer::RstackSelf, rstack);
    m
}

/// Runs one peer against the fixture: wall time in ns, threads listed, frames
/// shown in all.
fn run_peer(
    peer: Peer,
    fx: &mut Fixture,
    timeout: Duration,
) -> Result<(f64, usize, usize), String> {
    let pid = fx.pid.to_string();
    let (program, args): (&str, Vec<&str>) = match peer {
        Peer::Gdb => (
            "gdb",
            vec!["-batch", "-nx", "-ex", "thread apply all bt", "-p", &pid],
        ),
        Peer::EuStack => ("eu-stack", vec!["-p", &pid]),
        Peer::RstackSelf => {
            let a = fx.ask("rstack")?;
            let wall = num(&a, "wall_ns").ok_or("no wall_ns")?;
            let threads = num(&a, "threads").unwrap_or(0.0) as usize;
            let frames = num(&a, "frames").unwrap_or(0.0) as usize;
            return Ok((wall, threads, frames));
        }
    };
    let t0 = Instant::now();
    let dump = std::env::temp_dir().join(format!("guru-bench-peer-{}", std::process::id()));
    let file = std::fs::File::create(&dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{program}: {e}"))? {
            break status;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&dump);
            return Err(format!(
                "{program} did not finish within {} s (killed)",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = t0.elapsed().as_nanos() as f64;
    let bytes = std::fs::read(&dump).unwrap_or_default();
    let _ = std::fs::remove_file(&dump);
    let text = String::from_utf8_lossy(&bytes);
    let threads = match peer {
        Peer::Gdb => text.lines().filter(|l| l.starts_with("Thread ")).count(),
        _ => text.lines().filter(|l| l.starts_with("TID ")).count(),
    };
    let frames = text
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    if threads == 0 {
        return Err(format!("{program} listed no threads (exit {status})"));
    }
    Ok((wall, threads, frames))
}

// ---------------------------------------------------------------- /proc

/// Per-thread CPU ticks and context switches of a process.
#[derive(Debug, Default, Clone)]
struct TaskCounters {
    /// tid → (name, utime+stime ticks, voluntary, nonvoluntary switches)
    tasks: BTreeMap<i32, (String, u64, u64, u64)>,
}

fn read_task_counters(pid: i32) -> TaskCounters {
    let mut out = TaskCounters::default();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let name = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        // Fields after the command: state is field 3; utime 14, stime 15.
        let after: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let field =
            |n: usize| -> u64 { after.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0) };
        let ticks = field(14) + field(15);
        let ctxt = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        out.tasks.insert(
            tid,
            (
                name,
                ticks,
                ctxt("voluntary_ctxt_switches:"),
                ctxt("nonvoluntary_ctxt_switches:"),
            ),
        );
    }
    out
}

/// (wakeups, CPU ms) between two snapshots, for tasks whose name matches.
fn counter_delta(
    a: &TaskCounters,
    b: &TaskCounters,
    include: impl Fn(&str) -> bool,
) -> (u64, f64, usize) {
    let tick_ms = 1000.0 / clock_ticks_per_sec();
    let (mut wakeups, mut ticks, mut tasks) = (0u64, 0u64, 0usize);
    for (tid, (name, t1, v1, n1)) in &b.tasks {
        if !include(name) {
            continue;
        }
        tasks += 1;
        let (t0, v0, n0) = a
            .tasks
            .get(tid)
            .map(|(_, t, v, n)| (*t, *v, *n))
            .unwrap_or((0, 0, 0));
        wakeups += (v1 + n1).saturating_sub(v0 + n0);
        ticks += t1.saturating_sub(t0);
    }
    (wakeups, ticks as f64 * tick_ms, tasks)
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn read_first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn machine_description() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let git = std::env::var("GURU_BENCH_COMMIT").unwrap_or_else(|_| {
        Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(workspace_root())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    });
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    vec![
        ("date".into(), date),
        ("commit".into(), git),
        ("CPU".into(), format!("{model}, {cpus} CPUs online")),
        ("memory".into(), mem),
        (
            "kernel".into(),
            read_first_line("/proc/sys/kernel/osrelease"),
        ),
        ("rustc".into(), rustc),
        ("mappings per round".into(), maps_source().into()),
        (
            "load average at start".into(),
            read_first_line("/proc/loadavg"),
        ),
    ]
}

/// How guru's rounds learn the readable mappings on this kernel.
fn maps_source() -> &'static str {
    if guru_core::sys::maps_query_available() {
        "`PROCMAP_QUERY` (the modules' code per round; each thread's stack as it captures itself)"
    } else {
        "the text of `/proc/self/maps`, every round (no `PROCMAP_QUERY` on this kernel)"
    }
}

// ---------------------------------------------------------------- measuring

#[derive(Default)]
struct Row {
    threads: usize,
    busy: usize,
    capture: Option<Stats>,
    fanout: Option<Stats>,
    report_core: Option<Stats>,
    report_core_first: Option<Stats>,
    report_std_warm: Option<Stats>,
    report_std_cold: Option<Stats>,
    std_note: Option<String>,
    pauses: Option<Stats>,
    /// The pauses of threads interrupted while running user code.
    pauses_running: Option<Stats>,
    /// The same, in the handler's floor: capture rounds whose handlers skip
    /// only the stack walk (`capture-no-walk`), run right after each capture
    /// round on the same process.
    pauses_no_walk: Option<Stats>,
    pauses_running_no_walk: Option<Stats>,
    /// 64 idle threads only: the same capture rounds with
    /// `Options::maps_query` off (no `PROCMAP_QUERY` in the handler; the
    /// round reads the text of `/proc/self/maps` instead): pauses, capture.
    pauses_text_maps: Option<Stats>,
    pauses_running_text_maps: Option<Stats>,
    capture_text_maps: Option<Stats>,
    install: Option<Stats>,
    rss_first_core_kb: Option<Stats>,
    rss_first_std_kb: Option<Stats>,
    /// std: the debug-info index guru's reporter thread builds after install
    /// (`Builder::prewarm_symbols`): wall time from install, its CPU, RSS.
    prewarm: Option<Stats>,
    prewarm_cpu: Option<Stats>,
    prewarm_rss_kb: Option<Stats>,
    unresponsive: f64,
    peers: BTreeMap<Peer, Result<Option<Stats>, String>>,
    /// Frames per thread each peer showed (last run), for a fair reading.
    peer_frames: BTreeMap<Peer, f64>,
    /// Frames per thread in our captures.
    our_frames: f64,
    /// Floor rounds and where the time goes (`../bench/floor.rs`).
    floor: floor::FloorFigures,
    /// Reporting thread's CPU in std reports: cold (first) and warm.
    std_cpu_cold: Option<Stats>,
    std_cpu_warm: Option<Stats>,
    /// Warm std reports, where their time went (`floor::STD_PARTS`), and
    /// the core reports' own capture.
    std_parts: BTreeMap<&'static str, Stats>,
    core_report_capture: Option<Stats>,
}

/// The row's capture rounds with `Options::maps_query` off (no
/// `PROCMAP_QUERY` in the handler; the round reads the text of
/// `/proc/self/maps`), on a process of its own: pauses (all, and those of
/// threads interrupted while running user code) and capture times.
fn no_query_rounds(dir: &Path, cfg: &Config, row: &mut Row) -> Result<(), String> {
    let mut args = fixture_args(row.threads, row.busy, false);
    args.push("--no-maps-query".into());
    let mut text = Fixture::start(dir, &args)?;
    text.ask("report")?;
    let (mut pauses, mut running, mut capture) = (vec![], vec![], vec![]);
    for _ in 0..cfg.runs {
        let a = text.ask("capture")?;
        capture.extend(num(&a, "capture_ns"));
        extend_list(&mut pauses, &a, "pauses");
        extend_list(&mut running, &a, "running_pauses");
    }
    row.pauses_text_maps = stats_of(&pauses);
    row.pauses_running_text_maps = stats_of(&running);
    row.capture_text_maps = stats_of(&capture);
    Ok(())
}

fn stats_of(v: &[f64]) -> Option<Stats> {
    Stats::of(v)
}

fn fixture_args(threads: usize, busy: usize, std: bool) -> Vec<String> {
    let mut a = vec![
        "--threads".to_string(),
        threads.to_string(),
        "--busy".into(),
        busy.to_string(),
    ];
    if std {
        a.push("--std".into());
    }
    // A round of thousands of threads on 2 busy CPUs takes longer than the
    // default deadline (100 ms): give it time, so the figures are whole rounds.
    if threads > 1024 {
        a.extend(["--deadline-ms".into(), LARGE_DEADLINE_MS.to_string()]);
    }
    a
}

/// The round deadline of rows with more than 1024 threads.
const LARGE_DEADLINE_MS: u32 = 2000;

fn measure_row(
    cfg: &Config,
    dir: &Path,
    threads: usize,
    busy: usize,
    peers: &BTreeMap<Peer, Result<String, String>>,
    std_available: bool,
) -> Result<Row, String> {
    let std_available = std_available && cfg.std;
    let mut row = Row {
        threads,
        busy,
        ..Row::default()
    };
    eprintln!("bench: N={threads}, busy={busy}");

    // First reports, each in a fresh process: core (and std, cold symbols).
    let (mut first_core, mut rss_core, mut cold_std, mut rss_std) =
        (vec![], vec![], vec![], vec![]);
    let (mut prewarm, mut prewarm_cpu, mut prewarm_rss) = (vec![], vec![], vec![]);
    let mut install = vec![];
    let mut cold_cpu = vec![];
    for _ in 0..if cfg.cold { cfg.cold_runs.max(1) } else { 0 } {
        let mut fx = Fixture::start(dir, &fixture_args(threads, busy, false))?;
        install.extend(num(&fx.ready, "install_ns"));
        let r0 = num(&fx.ask("rss")?, "rss_kb").unwrap_or(0.0);
        let a = fx.ask("report")?;
        first_core.extend(num(&a, "wall_ns"));
        let r1 = num(&fx.ask("rss")?, "rss_kb").unwrap_or(0.0);
        rss_core.push(r1 - r0);
        // Gone before the std process starts: its busy threads would
        // otherwise spin on beside the std process's own, and the first std
        // report would get half the CPU share its warm ones get.
        drop(fx);
        if std_available {
            let mut fx = Fixture::start(dir, &fixture_args(threads, busy, true))?;
            prewarm.extend(num(&fx.ready, "prewarm_ns"));
            prewarm_cpu.extend(num(&fx.ready, "prewarm_cpu_ns"));
            prewarm_rss.extend(num(&fx.ready, "prewarm_rss_kb"));
            let r0 = num(&fx.ask("rss")?, "rss_kb").unwrap_or(0.0);
            let a = fx.ask("report-std")?;
            cold_std.extend(num(&a, "wall_ns"));
            cold_cpu.extend(num(&a, "cpu_ns"));
            let r1 = num(&fx.ask("rss")?, "rss_kb").unwrap_or(0.0);
            rss_std.push(r1 - r0);
        }
    }
    row.install = stats_of(&install);
    row.report_core_first = stats_of(&first_core);
    row.rss_first_core_kb = stats_of(&rss_core);
    row.report_std_cold = stats_of(&cold_std);
    row.std_cpu_cold = stats_of(&cold_cpu);
    row.rss_first_std_kb = stats_of(&rss_std);
    row.prewarm = stats_of(&prewarm);
    row.prewarm_cpu = stats_of(&prewarm_cpu);
    row.prewarm_rss_kb = stats_of(&prewarm_rss);

    // Warm figures and peers, all on one process.
    if threads == 64 && busy > 0 {
        // The same for the busy row, before its main process starts (whose
        // busy threads would spin meanwhile).
        no_query_rounds(dir, cfg, &mut row)?;
    }
    let mut fx = Fixture::start(dir, &fixture_args(threads, busy, std_available))?;
    fx.ask("report")?; // warm-up: first touch of the slot table and buffers
    let (mut capture, mut fanout, mut pauses, mut report, mut unresponsive) =
        (vec![], vec![], vec![], vec![], 0.0);
    let (mut core_capture, mut running_pauses) = (vec![], vec![]);
    let (mut no_walk, mut running_no_walk) = (vec![], vec![]);
    let mut floors = floor::FloorRuns::default();
    for run in 0..cfg.runs {
        // The floor, at the same moment: floor rounds right before each
        // capture round, on the same process.
        floors.run(&mut fx)?;
        // The handler's floor: the same round without the walk, before the
        // capture in odd runs and after it in even ones (the second of two
        // rounds finds the slots, stacks and tables the first warmed).
        let mut no_walk_round = |fx: &mut Fixture| -> Result<(), String> {
            let a = fx.ask("capture-no-walk")?;
            extend_list(&mut no_walk, &a, "pauses");
            extend_list(&mut running_no_walk, &a, "running_pauses");
            Ok(())
        };
        if run % 2 == 1 {
            no_walk_round(&mut fx)?;
        }
        let a = fx.ask("capture")?;
        floors.capture_phases(&a);
        capture.extend(num(&a, "capture_ns"));
        fanout.extend(num(&a, "fanout_ns"));
        unresponsive += num(&a, "unresponsive").unwrap_or(0.0);
        row.our_frames =
            num(&a, "frames").unwrap_or(0.0) / num(&a, "captured").unwrap_or(1.0).max(1.0);
        extend_list(&mut pauses, &a, "pauses");
        extend_list(&mut running_pauses, &a, "running_pauses");
        if run % 2 == 0 {
            no_walk_round(&mut fx)?;
        }
        let a = fx.ask("report")?;
        report.extend(num(&a, "wall_ns"));
        core_capture.extend(num(&a, "capture_ns"));
    }
    row.capture = stats_of(&capture);
    row.fanout = stats_of(&fanout);
    row.pauses = stats_of(&pauses);
    row.pauses_running = stats_of(&running_pauses);
    row.pauses_no_walk = stats_of(&no_walk);
    row.pauses_running_no_walk = stats_of(&running_no_walk);
    row.report_core = stats_of(&report);
    row.core_report_capture = stats_of(&core_capture);
    row.unresponsive = unresponsive;
    floors.costs(&mut fx, cfg.runs.min(5))?;
    row.floor = floors.figures();
    if std_available {
        let (mut warm, mut warm_cpu) = (vec![], vec![]);
        let mut parts: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        for _ in 0..cfg.runs {
            match fx.ask("report-std-parts") {
                Ok(a) => {
                    warm.extend(num(&a, "wall_ns"));
                    warm_cpu.extend(num(&a, "cpu_ns"));
                    for key in floor::STD_PARTS {
                        parts.entry(key).or_default().extend(num(&a, key));
                    }
                }
                Err(e) => {
                    row.std_note = Some(e);
                    break;
                }
            }
        }
        row.report_std_warm = stats_of(&warm);
        row.std_cpu_warm = stats_of(&warm_cpu);
        row.std_parts = parts
            .into_iter()
            .filter_map(|(k, v)| stats_of(&v).map(|s| (k, s)))
            .collect();
    }

    if threads == 64 && busy == 0 {
        // What the handler's one kernel query costs: the same rounds
        // without it, on a process of its own (the other one's threads are
        // all parked meanwhile).
        no_query_rounds(dir, cfg, &mut row)?;
    }
    if cfg.peers {
        for peer in Peer::ALL {
            let result = match peers.get(&peer) {
                Some(Ok(_)) => {
                    let mut times = vec![];
                    let mut error = None;
                    // At 4096 threads one dump each (they take seconds).
                    let peer_runs = if threads >= 4096 { 1 } else { cfg.peer_runs };
                    for _ in 0..peer_runs.max(1) {
                        match run_peer(peer, &mut fx, cfg.peer_timeout) {
                            Ok((t, listed, frames)) => {
                                row.peer_frames
                                    .insert(peer, frames as f64 / listed.max(1) as f64);
                                if listed < threads {
                                    eprintln!(
                                        "bench: {} listed {listed} of {threads} threads",
                                        peer.name()
                                    );
                                }
                                times.push(t);
                                // A dump that takes over 10 s (many busy
                                // threads) is not repeated: one run says enough.
                                if t > 10e9 {
                                    break;
                                }
                            }
                            Err(e) => {
                                error = Some(e);
                                break;
                            }
                        }
                    }
                    match error {
                        Some(e) if times.is_empty() => Err(e),
                        _ => Ok(stats_of(&times)),
                    }
                }
                Some(Err(why)) => Err(why.clone()),
                None => Err("unknown".into()),
            };
            if let Ok(Some(s)) = &result {
                eprintln!("bench:   {} {}", peer.name(), spread(&Some(*s)));
            }
            row.peers.insert(peer, result);
        }
    }
    eprintln!(
        "bench:   capture {}  report {}  pause median {}",
        spread(&row.capture),
        spread(&row.report_core),
        row.pauses.map_or("–".into(), |p| dur(p.median))
    );
    Ok(row)
}

struct Idle {
    label: String,
    seconds: u64,
    wakeups: u64,
    cpu_ms: f64,
    tasks: usize,
    guru_wakeups: u64,
    guru_cpu_ms: f64,
    guru_tasks: usize,
}

fn measure_idle(cfg: &Config, dir: &Path, std_available: bool) -> Result<Vec<Idle>, String> {
    let mut setups: Vec<(String, Vec<String>)> = vec![
        (
            "no guru (baseline), 64 threads".into(),
            vec!["--threads".into(), "64".into(), "--no-install".into()],
        ),
        ("guru-core, 64 threads".into(), fixture_args(64, 0, false)),
        (
            "guru-core, 1024 threads".into(),
            fixture_args(1024, 0, false),
        ),
    ];
    if std_available {
        setups.push(("guru (std), 64 threads".into(), fixture_args(64, 0, true)));
    }
    eprintln!(
        "bench: idle cost: {} processes side by side for {} s",
        setups.len(),
        cfg.idle_secs
    );
    let mut fixtures = vec![];
    for (label, args) in setups {
        let fx = Fixture::start(dir, &args)?;
        fixtures.push((label, fx));
    }
    std::thread::sleep(Duration::from_secs(1));
    let before: Vec<TaskCounters> = fixtures
        .iter()
        .map(|(_, f)| read_task_counters(f.pid))
        .collect();
    std::thread::sleep(Duration::from_secs(cfg.idle_secs));
    let mut out = vec![];
    for ((label, fx), b) in fixtures.iter().zip(before) {
        let a = read_task_counters(fx.pid);
        let (wakeups, cpu_ms, tasks) = counter_delta(&b, &a, |_| true);
        let (gw, gc, gt) = counter_delta(&b, &a, |n| n.starts_with("guru"));
        out.push(Idle {
            label: label.clone(),
            seconds: cfg.idle_secs,
            wakeups,
            cpu_ms,
            tasks,
            guru_wakeups: gw,
            guru_cpu_ms: gc,
            guru_tasks: gt,
        });
    }
    Ok(out)
}

struct Latency {
    phase: String,
    line: Answer,
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory preconditions; pid is our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, sig);
    }
}

fn measure_latency(
    cfg: &Config,
    dir: &Path,
    std_available: bool,
    gdb: bool,
) -> Result<(Vec<Latency>, String), String> {
    let workers = 2;
    let mut args = fixture_args(64, 0, std_available);
    args.extend([
        "--workers".into(),
        workers.to_string(),
        "--unit-iters".into(),
        "20000".into(),
        "--gap-us".into(),
        "1000".into(),
    ]);
    let setup = format!(
        "{} fixture, 64 parked threads + {workers} workers doing units of 20 000 multiply-adds \
         with 1 ms sleeps between units; each phase {} s",
        if std_available {
            "std (guru)"
        } else {
            "core-only"
        },
        cfg.phase_secs
    );
    eprintln!("bench: latency impact: {setup}");
    let mut fx = Fixture::start(dir, &args)?;
    std::thread::sleep(Duration::from_millis(500));
    let phase = Duration::from_secs(cfg.phase_secs);
    let mut out = vec![];

    fx.ask("lat-reset")?;
    std::thread::sleep(phase);
    out.push(Latency {
        phase: "no reports".into(),
        line: fx.ask("lat-get")?,
    });

    fx.ask("lat-reset")?;
    let t0 = Instant::now();
    let mut sent = 0;
    while t0.elapsed() < phase {
        signal(fx.pid, libc::SIGUSR2);
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    out.push(Latency {
        phase: format!("10 reports/s (SIGUSR2, {sent} sent)"),
        line: fx.ask("lat-get")?,
    });

    if gdb {
        fx.ask("lat-reset")?;
        let t0 = Instant::now();
        let _ = Command::new("gdb")
            .args(["-batch", "-nx", "-ex", "thread apply all bt", "-p"])
            .arg(fx.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let took = t0.elapsed();
        if took < phase {
            std::thread::sleep(phase - took);
        }
        out.push(Latency {
            phase: format!("one gdb attach ({})", dur(took.as_nanos() as f64)),
            line: fx.ask("lat-get")?,
        });
    }
    Ok((out, setup))
}

struct Sizes {
    base: Option<u64>,
    core: Option<u64>,
    std: Option<u64>,
    stripped: [Option<u64>; 3],
}

fn stripped_size(path: &Path) -> Option<u64> {
    let tmp = std::env::temp_dir().join(format!("guru-bench-strip-{}", std::process::id()));
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&tmp)
        .arg(path)
        .status()
        .ok()?
        .success();
    let size = if ok {
        std::fs::metadata(&tmp).ok().map(|m| m.len())
    } else {
        None
    };
    let _ = std::fs::remove_file(&tmp);
    size
}

fn measure_sizes(dir: &Path) -> Sizes {
    let size = |name: &str| std::fs::metadata(dir.join(name)).ok().map(|m| m.len());
    Sizes {
        base: size(PROBES[0]),
        core: size(PROBES[1]),
        std: size(PROBES[2]),
        stripped: PROBES.map(|p| stripped_size(&dir.join(p))),
    }
}

// ---------------------------------------------------------------- output

fn diff_size(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => bytes(b as f64 - a as f64),
        _ => "–".into(),
    }
}

/// The "Performance targets" table of DESIGN.md against this run.
fn write_targets(w: &mut String, rows: &[Row], memory: Option<&Answer>, idle: &[Idle]) {
    let row = |n: usize, busy: bool| rows.iter().find(|r| r.threads == n && (r.busy > 0) == busy);
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let _ = writeln!(
        w,
        "## Against the targets (DESIGN.md, \"Performance targets\")\n"
    );
    let _ = writeln!(w, "| what | target | this run | |\n|---|---|---|---|");
    let idle64 = row(64, false);
    let busy64 = row(64, true);
    let cap = idle64.and_then(|r| r.capture);
    let _ = writeln!(
        w,
        "| capture 64 idle threads | ≤ 2 ms | {} | {} |",
        spread(&cap),
        verdict(cap.map(|c| c.median <= 2e6))
    );
    for (label, r) in [("idle", idle64), ("a third busy", busy64)] {
        let Some(r) = r else { continue };
        let (ours, which) = match (&r.report_std_warm, &r.report_core) {
            (Some(s), _) => (Some(*s), "std, warm"),
            (None, c) => (*c, "core"),
        };
        let _ = writeln!(
            w,
            "| whole report, 64 threads {label} ({which}) | ≤ 10 ms | {} | {} |",
            spread(&ours),
            verdict(ours.map(|o| o.median <= 10e6))
        );
        for peer in [Peer::Gdb, Peer::EuStack] {
            if let Some(Ok(Some(p))) = r.peers.get(&peer) {
                let x = ours.map(|o| p.median / o.median);
                let _ = writeln!(
                    w,
                    "| … faster than {} (64 threads {label}) | ≥ 100× | {} | {} |",
                    peer.name(),
                    x.map_or("–".into(), |x| format!("{x:.0}×")),
                    verdict(x.map(|x| x >= 100.0))
                );
            }
        }
    }
    if let Some(r) = idle64 {
        let _ = writeln!(
            w,
            "| first report (std, cold symbols), 64 threads | ≤ 30 ms | {} | {} |",
            spread(&r.report_std_cold),
            verdict(r.report_std_cold.map(|c| c.median <= 30e6))
        );
        let _ = writeln!(
            w,
            "| … done after install instead (reporter thread: debug-info index, symbol warm-up) | – | \
             {} from install to done, {} CPU, +{} RSS | – |",
            spread(&r.prewarm),
            spread(&r.prewarm_cpu),
            r.prewarm_rss_kb
                .map_or("–".into(), |k| bytes(k.median * 1024.0))
        );
        // Counted from install: the warm-up parses at install what the
        // first report would otherwise parse.
        let mb = r
            .rss_first_std_kb
            .zip(r.prewarm_rss_kb)
            .map(|(a, b)| (a.median + b.median) * 1024.0);
        let _ = writeln!(
            w,
            "| extra RSS after the first report (std), 64 threads, counted from install (index \
             and warm-up included) | ≤ 20 MB | {} | {} |",
            mb.map_or("–".into(), bytes),
            verdict(mb.map(|b| b <= 20e6))
        );
    }
    let pauses: Vec<&Row> = rows.iter().filter(|r| r.pauses.is_some()).collect();
    let worst_median = pauses
        .iter()
        .filter_map(|r| r.pauses.map(|p| (p.median, r.threads, r.busy)))
        .fold(None, |a: Option<(f64, usize, usize)>, b| match a {
            Some(a) if a.0 >= b.0 => Some(a),
            _ => Some(b),
        });
    let worst_p99 = pauses
        .iter()
        .filter_map(|r| r.pauses.map(|p| (p.p99, r.threads, r.busy)))
        .fold(None, |a: Option<(f64, usize, usize)>, b| match a {
            Some(a) if a.0 >= b.0 => Some(a),
            _ => Some(b),
        });
    if let Some((m, n, b)) = worst_median {
        let _ = writeln!(
            w,
            "| pause of one thread, median (worst row) | ≤ 5 µs | {} (N={n}, busy={b}) | {} |",
            dur(m),
            verdict(Some(m <= 5e3))
        );
    }
    if let Some((m, n, b)) = worst_p99 {
        let _ = writeln!(
            w,
            "| pause of one thread, p99 (worst row) | ≤ 50 µs | {} (N={n}, busy={b}) | {} |",
            dur(m),
            verdict(Some(m <= 50e3))
        );
    }
    let guru_idle: Vec<&Idle> = idle
        .iter()
        .filter(|i| !i.label.starts_with("no guru"))
        .collect();
    if !guru_idle.is_empty() {
        let wakeups: u64 = guru_idle.iter().map(|i| i.wakeups).sum();
        let cpu: f64 = guru_idle.iter().map(|i| i.cpu_ms).sum();
        let _ = writeln!(
            w,
            "| idle cost (all guru processes, whole window) | 0 wakeups, 0 CPU | {wakeups} wakeups, {cpu:.0} ms | {} |",
            verdict(Some(wakeups == 0 && cpu == 0.0))
        );
    }
    if let Some(m) = memory {
        let fixed = num(m, "fixed");
        let _ = writeln!(
            w,
            "| preallocated memory, 1024 threads | ≤ 2 MiB | {} (+ symbol tables {}) | {} |",
            fixed.map_or("–".into(), bytes),
            num(m, "symbols").map_or("–".into(), bytes),
            verdict(fixed.map(|f| f <= 2.0 * 1024.0 * 1024.0))
        );
    }
    let _ = writeln!(w);
}

#[allow(clippy::too_many_arguments)]
fn render(
    cfg: &Config,
    machine: &[(String, String)],
    load_end: &str,
    peers: &BTreeMap<Peer, Result<String, String>>,
    std_available: Result<(), String>,
    rows: &[Row],
    memory: Option<&Answer>,
    sizes: &Sizes,
    idle: &[Idle],
    latency: &Option<(Vec<Latency>, String)>,
    deep: &[floor::DeepRow],
    plot: Option<&str>,
    elapsed: Duration,
) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# guru benchmarks\n");
    let _ = writeln!(
        w,
        "Regenerated by `cargo run --release -p guru-examples --features rstack --bin bench`{}; \
         do not edit by hand. Medians with (min–max, n = runs); every figure is measured on \
         the same fixture processes (`examples/src/bin/bench_fixture.rs`) in one run: \
         N threads in total, each parked (futex) or spinning 16 calls deep, on 256 KiB \
         stacks; \"busy\" rows have a third of them spinning. Rows of more than 1024 threads \
         raise the engine's capacity (`Options::max_threads`) and its round deadline to {} ms \
         (the default 100 ms is shorter than a round of 4096 threads on 2 CPUs).\n",
        if cfg.quick {
            " -- --quick (a short run)"
        } else {
            ""
        },
        LARGE_DEADLINE_MS
    );
    let _ = writeln!(w, "## Machine\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    for (k, v) in machine {
        let _ = writeln!(w, "| {k} | {v} |");
    }
    let _ = writeln!(w, "| load average at end | {load_end} |");
    let _ = writeln!(
        w,
        "| benchmark wall time | {:.0} s |",
        elapsed.as_secs_f64()
    );
    for peer in Peer::ALL {
        let v = match peers.get(&peer) {
            Some(Ok(v)) => v.clone(),
            Some(Err(e)) => e.clone(),
            None => "–".into(),
        };
        let _ = writeln!(w, "| {} | {} |", peer.name(), v);
    }
    let _ = writeln!(
        w,
        "\nThe machine is shared (other builds and fuzzers may run): the load average above \
         says how quiet it was. Timings are wall-clock unless marked thread-CPU.\n"
    );
    if let Err(e) = &std_available {
        let _ = writeln!(
            w,
            "**Std adapter figures missing:** {e}. Whole-report times below are the core's \
             report (function names from `.symtab`, no `file:line`), written from normal context \
             with `guru_core::write_report` to /dev/null.\n"
        );
    }

    if let Some(plot) = plot {
        let _ = writeln!(
            w,
            "![One full dump against the number of threads, log-log: guru (core, std warm), \
             the floor, gdb, eu-stack, rstack-self]({plot})\n\n\
             One full dump of every thread against N (idle rows, log–log; medians of this run): \
             guru's core report, guru's std report (warm symbols), the floor (a round whose \
             handlers only answer, `guru_core::floor`), gdb, eu-stack and rstack-self. Written \
             by the bench (`{plot}`).\n"
        );
    }
    write_targets(w, rows, memory, idle);
    floor::write_targets(w, &floor_rows(rows));
    let _ = writeln!(w, "## Our figures\n");
    let _ = writeln!(
        w,
        "- **capture**: trigger to all threads captured (`RoundSummary::capture_ns`: list \
         `/proc/self/task`, refresh the readable-range table, signal every thread, wait for all).\n\
         - **fan-out**: the listing-and-signalling part of it.\n\
         - **report (core)**: `guru_core::write_report` to /dev/null: capture + symbols from \
         the in-memory symbol tables + text + write; *first* is the first report of a fresh \
         process.\n\
         - **report (std) warm / cold**: `guru::report()` with DWARF `file:line`, cold = first \
         report of a fresh process, once guru's reporter thread has built its debug-info index \
         and run its symbol warm-up (`Builder::prewarm_symbols`, on by default: one capture \
         round at install whose stacks are resolved, writing nothing; the fixture waits for \
         it, before it starts its N threads, and its cost is in the targets table). The line \
         tables and inlining trees of units no warm-up stack touched (here: the fixture's \
         threads' own functions) are still parsed by the first report.\n\
         - **pause**: thread-CPU time each thread spent in its capture handler, pooled over \
         all runs.\n"
    );
    let _ = writeln!(
        w,
        "| N | busy | capture | fan-out | report (core) | first report (core) | report (std) warm | report (std) cold |"
    );
    let _ = writeln!(w, "|---:|---:|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.threads,
            r.busy,
            spread(&r.capture),
            spread(&r.fanout),
            spread(&r.report_core),
            spread(&r.report_core_first),
            spread(&r.report_std_warm),
            spread(&r.report_std_cold),
        );
    }
    floor::write_section(w, &floor_rows(rows), deep);
    let _ = writeln!(
        w,
        "\n### Pause of each thread (thread-CPU in its capture handler)\n"
    );
    let _ = writeln!(
        w,
        "| N | busy | samples | median | p99 | max | threads not answering (all runs) |\n|---:|---:|---:|---|---|---|---:|"
    );
    for r in rows {
        if let Some(p) = r.pauses {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.threads,
                r.busy,
                p.n,
                dur(p.median),
                dur(p.p99),
                dur(p.max),
                r.unresponsive
            );
        }
    }
    let _ = writeln!(w, "\n### Memory\n");
    let _ = writeln!(
        w,
        "| N | busy | `guru_core::install` time | extra RSS after the first report (core) | extra RSS after the first report (std) |\n|---:|---:|---|---|---|"
    );
    for r in rows {
        let kb = |s: &Option<Stats>| match s {
            Some(s) => format!(
                "{} ({}–{})",
                bytes(s.median * 1024.0),
                bytes(s.min * 1024.0),
                bytes(s.max * 1024.0)
            ),
            None => "–".into(),
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            r.threads,
            r.busy,
            spread(&r.install),
            kb(&r.rss_first_core_kb),
            kb(&r.rss_first_std_kb)
        );
    }
    if let Some(m) = memory {
        let g = |k: &str| num(m, k).unwrap_or(0.0);
        let _ = writeln!(
            w,
            "\nPreallocated by `guru_core::install` (`Engine::memory()`), defaults ({} threads × {} frames):\n",
            g("max_threads"),
            g("max_frames")
        );
        let _ = writeln!(w, "| part | bytes |\n|---|---:|");
        for (label, key) in [
            ("slot table", "slots"),
            ("readable-range table", "ranges"),
            ("unwinder caches", "caches"),
            ("scratch buffers", "scratch"),
            ("**fixed total**", "fixed"),
            (
                "symbol tables of this fixture (depend on the program)",
                "symbols",
            ),
        ] {
            let _ = writeln!(w, "| {label} | {} |", bytes(g(key)));
        }
    }
    let _ = writeln!(w, "\n### Binary size added\n");
    let _ = writeln!(
        w,
        "Release builds of three probes that spawn a thread and wait: without guru \
         (`bench_size_base`), with `guru_core::install` (`bench_size_core`), with the std \
         adapter (`bench_size_std`).\n"
    );
    let _ = writeln!(
        w,
        "| probe | file | stripped | added (file) | added (stripped) |\n|---|---:|---:|---:|---:|"
    );
    for (i, (name, size)) in [
        ("base", sizes.base),
        ("core", sizes.core),
        ("std", sizes.std),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = writeln!(
            w,
            "| {name} | {} | {} | {} | {} |",
            size.map_or("–".into(), |b| bytes(b as f64)),
            sizes.stripped[i].map_or("–".into(), |b| bytes(b as f64)),
            if i == 0 {
                "".into()
            } else {
                diff_size(sizes.base, size)
            },
            if i == 0 {
                "".into()
            } else {
                diff_size(sizes.stripped[0], sizes.stripped[i])
            },
        );
    }

    let _ = writeln!(w, "\n### Idle cost\n");
    let _ = writeln!(
        w,
        "Context switches (voluntary + involuntary, i.e. wakeups) and CPU time (utime + stime) \
         of every task of each process, from `/proc/<pid>/task/*/stat` and `status`, over a \
         window with no triggers. The fixtures' own threads are parked and their main thread \
         is blocked reading stdin, so everything counted would be guru's.\n"
    );
    let _ = writeln!(
        w,
        "| process | window | tasks | wakeups | CPU | guru threads | their wakeups | their CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for i in idle {
        let _ = writeln!(
            w,
            "| {} | {} s | {} | {} | {:.0} ms | {} | {} | {:.0} ms |",
            i.label,
            i.seconds,
            i.tasks,
            i.wakeups,
            i.cpu_ms,
            i.guru_tasks,
            i.guru_wakeups,
            i.guru_cpu_ms
        );
    }

    if let Some((lat, setup)) = latency {
        let _ = writeln!(w, "\n### Latency impact on a workload\n");
        let _ = writeln!(w, "{setup}. Duration of each work unit:\n");
        let _ = writeln!(
            w,
            "| phase | units | p50 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|"
        );
        for l in lat {
            let g = |k: &str| num(&l.line, k).unwrap_or(f64::NAN);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} |",
                l.phase,
                g("count"),
                dur(g("p50_ns")),
                dur(g("p99_ns")),
                dur(g("p999_ns")),
                dur(g("max_ns"))
            );
        }
    }

    if cfg.peers {
        let _ = writeln!(w, "\n## Peers on the same processes\n");
        let _ = writeln!(
            w,
            "Wall time of one full dump of all threads (a debugger stops every thread for about \
             that long). Ratio = peer time / our report time (core report; the std report where \
             measured).\n"
        );
        let _ = writeln!(w, "| peer | how |\n|---|---|");
        for peer in Peer::ALL {
            let _ = writeln!(w, "| {} | `{}` |", peer.name(), peer.command_line());
        }
        let _ = writeln!(
            w,
            "\n| N | busy | our report (core) | our report (std, warm) | gdb | eu-stack | rstack-self | gdb / ours | eu-stack / ours | rstack-self / ours |\n|---:|---:|---|---|---|---|---|---:|---:|---:|"
        );
        for r in rows {
            let ours = if r.report_std_warm.is_some() {
                &r.report_std_warm
            } else {
                &r.report_core
            };
            let cell = |p: Peer| match r.peers.get(&p) {
                Some(Ok(s)) => spread(s),
                Some(Err(_)) => "skipped".into(),
                None => "–".into(),
            };
            let rat = |p: Peer| match r.peers.get(&p) {
                Some(Ok(s)) => ratio(s, ours),
                _ => "–".into(),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.threads,
                r.busy,
                spread(&r.report_core),
                spread(&r.report_std_warm),
                cell(Peer::Gdb),
                cell(Peer::EuStack),
                cell(Peer::RstackSelf),
                rat(Peer::Gdb),
                rat(Peer::EuStack),
                rat(Peer::RstackSelf),
            );
        }
        let _ = writeln!(
            w,
            "\nFrames shown per thread (last run), to read the times fairly:\n\n\
             | N | busy | ours | gdb | eu-stack | rstack-self |\n|---:|---:|---:|---:|---:|---:|"
        );
        for r in rows {
            let f = |p: Peer| {
                r.peer_frames
                    .get(&p)
                    .map_or("–".into(), |v| format!("{v:.1}"))
            };
            let _ = writeln!(
                w,
                "| {} | {} | {:.1} | {} | {} | {} |",
                r.threads,
                r.busy,
                r.our_frames,
                f(Peer::Gdb),
                f(Peer::EuStack),
                f(Peer::RstackSelf)
            );
        }
        let mut notes = vec![];
        for r in rows {
            for (p, res) in &r.peers {
                if let Err(e) = res
                    && !notes.contains(&(p.name(), e.clone()))
                {
                    notes.push((p.name(), e.clone()));
                }
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(w);
            for (p, e) in notes {
                let _ = writeln!(w, "- {p}: {e}");
            }
        }
    }
    s
}

fn main() {
    let cfg = parse_config();
    let started = Instant::now();
    let dir = match build_helpers() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    let machine = machine_description();
    for (k, v) in &machine {
        eprintln!("bench: {k}: {v}");
    }
    let peers = peer_availability(&dir);
    for (p, a) in &peers {
        match a {
            Ok(v) => eprintln!("bench: peer {}: {v}", p.name()),
            Err(e) => eprintln!("bench: peer {}: {e}", p.name()),
        }
    }
    let std_available: Result<(), String> = Fixture::start(&dir, &fixture_args(2, 0, true))
        .map(|_| ())
        .map_err(|e| e.trim_start_matches("fixture did not start: ").to_string());
    if let Err(e) = &std_available {
        eprintln!("bench: std adapter figures skipped: {e}");
    }

    let mut rows = vec![];
    let mut memory = None;
    for &n in &cfg.threads {
        for busy in [0, n / 3] {
            if cfg.only_deep || (busy > 0 && n > cfg.busy_up_to) {
                continue;
            }
            match measure_row(&cfg, &dir, n, busy, &peers, std_available.is_ok()) {
                Ok(r) => rows.push(r),
                Err(e) => eprintln!("bench: N={n} busy={busy}: {e}"),
            }
        }
    }
    if let Ok(mut fx) = Fixture::start(&dir, &fixture_args(2, 0, false)) {
        memory = fx.ask("memory").ok();
    }
    let extras = cfg.extras && !cfg.only_deep;
    let sizes = if extras {
        measure_sizes(&dir)
    } else {
        Sizes {
            base: None,
            core: None,
            std: None,
            stripped: [None; 3],
        }
    };
    let idle = if extras {
        measure_idle(&cfg, &dir, std_available.is_ok()).unwrap_or_else(|e| {
            eprintln!("bench: idle: {e}");
            vec![]
        })
    } else {
        vec![]
    };
    let gdb = matches!(peers.get(&Peer::Gdb), Some(Ok(_))) && cfg.peers;
    let latency = if extras {
        measure_latency(&cfg, &dir, std_available.is_ok(), gdb)
            .map_err(|e| eprintln!("bench: latency: {e}"))
            .ok()
    } else {
        None
    };
    let deep = if cfg.deep {
        floor::measure_deep(&dir, cfg.runs)
    } else {
        vec![]
    };
    let plot_link = cfg.plot.as_ref().and_then(|path| {
        let svg = plot::dump_vs_threads(&plot_series(&rows));
        match std::fs::write(path, svg) {
            Ok(()) => {
                eprintln!("bench: wrote {}", path.display());
                Some(
                    path.strip_prefix(workspace_root())
                        .unwrap_or(path)
                        .display()
                        .to_string(),
                )
            }
            Err(e) => {
                eprintln!("bench: cannot write {}: {e}", path.display());
                None
            }
        }
    });
    let load_end = read_first_line("/proc/loadavg");
    let text = render(
        &cfg,
        &machine,
        &load_end,
        &peers,
        std_available,
        &rows,
        memory.as_ref(),
        &sizes,
        &idle,
        &latency,
        &deep,
        plot_link.as_deref(),
        started.elapsed(),
    );
    println!("{text}");
    if let Some(path) = &cfg.out {
        let old = std::fs::read_to_string(path).unwrap_or_default();
        // Blocks other benchmarks wrote (bench_crash's, watchdog_bench's)
        // first, the thread-context section last: bench_context rewrites its
        // own up to the next heading, block marker or the end of the file.
        let text = keep_marked_blocks(&old, text);
        // The thread-context figures come from bench_context, which writes
        // its own section: keep it.
        let text = match context_section(&old) {
            Some(section) => format!("{}\n\n{section}\n", text.trim_end()),
            None => text,
        };
        match std::fs::write(path, &text) {
            Ok(()) => eprintln!("bench: wrote {}", path.display()),
            Err(e) => eprintln!("bench: cannot write {}: {e}", path.display()),
        }
    }
}

/// Blocks other benchmarks write into BENCHMARKS.md between markers
/// (`<!-- NAME: begin -->` … `<!-- NAME: end -->`, e.g. `bench_crash`'s,
/// `watchdog_bench`'s) are kept: each block of the old file that the new
/// text lacks is appended to it.
fn keep_marked_blocks(old: &str, mut text: String) -> String {
    let mut rest = old;
    while let Some(start) = rest.find("<!-- ") {
        let after = &rest[start..];
        let Some(name) = after
            .strip_prefix("<!-- ")
            .and_then(|a| a.split_once(": begin -->"))
            .map(|(name, _)| name)
            .filter(|n| !n.contains(['\n', '>']))
        else {
            rest = &after[5..];
            continue;
        };
        let end_marker = format!("<!-- {name}: end -->");
        let Some(end) = after.find(&end_marker) else {
            break;
        };
        let block = &after[..end + end_marker.len()];
        if !text.contains(&format!("<!-- {name}: begin -->")) {
            text = format!("{}\n\n{block}\n", text.trim_end());
        }
        rest = &after[end + end_marker.len()..];
    }
    text
}

/// The rows as the floor module reads them.
fn floor_rows(rows: &[Row]) -> Vec<floor::RowView<'_>> {
    rows.iter()
        .map(|r| floor::RowView {
            threads: r.threads,
            busy: r.busy,
            capture: r.capture,
            fanout: r.fanout,
            report_core: r.report_core,
            report_std_warm: r.report_std_warm,
            report_std_cold: r.report_std_cold,
            rss_first_std_kb: r.rss_first_std_kb,
            prewarm_rss_kb: r.prewarm_rss_kb,
            rss_first_core_kb: r.rss_first_core_kb,
            std_cpu_cold: r.std_cpu_cold,
            std_cpu_warm: r.std_cpu_warm,
            std_parts: &r.std_parts,
            core_report_capture: r.core_report_capture,
            pauses: r.pauses,
            pauses_running: r.pauses_running,
            pauses_no_walk: r.pauses_no_walk,
            pauses_running_no_walk: r.pauses_running_no_walk,
            pauses_text_maps: r.pauses_text_maps,
            pauses_running_text_maps: r.pauses_running_text_maps,
            capture_text_maps: r.capture_text_maps,
            frames: r.our_frames,
            floor: &r.floor,
        })
        .collect()
}

/// The plot's series: idle rows only, medians.
fn plot_series(rows: &[Row]) -> Vec<plot::Series> {
    let idle: Vec<&Row> = rows.iter().filter(|r| r.busy == 0).collect();
    let series = |name: &'static str, f: &dyn Fn(&Row) -> Option<f64>| plot::Series {
        name,
        points: idle
            .iter()
            .filter_map(|r| f(r).map(|y| (r.threads as f64, y)))
            .collect(),
    };
    let peer = |p: Peer| {
        move |r: &Row| match r.peers.get(&p) {
            Some(Ok(Some(s))) => Some(s.median),
            _ => None,
        }
    };
    vec![
        series("guru core report", &|r| r.report_core.map(|s| s.median)),
        series("guru std report (warm)", &|r| {
            r.report_std_warm.map(|s| s.median)
        }),
        series("floor (handlers only answer)", &|r| {
            r.floor.floor.map(|s| s.median)
        }),
        series("gdb", &peer(Peer::Gdb)),
        series("eu-stack", &peer(Peer::EuStack)),
        series("rstack-self", &peer(Peer::RstackSelf)),
    ]
}

/// The `## Thread context` section of a BENCHMARKS.md (bench_context's), if any.
fn context_section(text: &str) -> Option<&str> {
    let start = text.find("\n## Thread context")? + 1;
    let rest = &text[start..];
    // Up to the next heading or marked block (bench_context does the same).
    let end = [rest[1..].find("\n## "), rest[1..].find("\n<!-- ")]
        .into_iter()
        .flatten()
        .min()
        .map_or(rest.len(), |e| e + 2);
    Some(rest[..end].trim_end())
}
