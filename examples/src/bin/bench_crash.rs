//! Crash benchmark: fatal signal to process death, 64 threads, with guru's
//! crash report (std adapter, core only) against the same crash without
//! guru. Rewrites the "Crash reports" section of `BENCHMARKS.md` (between
//! its markers; `bench` keeps that section when it regenerates the file).
//!
//! ```text
//! cargo run --release -p guru-examples --bin bench_crash [-- --runs R --threads N --out PATH|-]
//! ```
//!
//! Each run starts this binary again as the child (`--child <mode>`): it
//! installs guru as the mode says, starts N − 1 threads parked in a futex
//! (`std::thread::park`) plus one that waits for `go` on a channel, prints
//! `ready`, and on `go` (stdin) that thread writes through a null pointer.
//! The parent measures from writing `go` to `waitpid` returning (the
//! report goes to a pipe the parent drains), checks the child died by
//! SIGSEGV, and for guru modes that a complete report came out.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BEGIN: &str = "<!-- bench_crash: begin -->";
const END: &str = "<!-- bench_crash: end -->";

fn child(mode: &str, threads: usize) {
    let _guard = match mode {
        "std" => Some(
            guru::Builder::new(guru::package!())
                .install()
                .expect("install guru"),
        ),
        "core" => {
            guru_core::install(guru_core::Options::default()).expect("install guru-core");
            None
        }
        _ => None,
    };
    for _ in 1..threads.max(2) - 1 {
        std::thread::spawn(|| {
            loop {
                std::thread::park();
            }
        });
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("crasher".into())
        .spawn(move || {
            let _ = rx.recv();
            let p: *mut u64 = std::hint::black_box(std::ptr::null_mut());
            // SAFETY: deliberately not: the crash being measured.
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::write_volatile(p, 1)
            };
        })
        .expect("spawn crasher");
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let _ = tx.send(());
    loop {
        std::thread::park();
    }
}

/// One run: go → death, in nanoseconds; whether a complete report came.
fn one(mode: &str, threads: usize) -> Result<(Duration, bool), String> {
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Command::new(exe)
        .args(["--child", mode, "--threads", &threads.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = BufReader::new(c.stdout.take().ok_or("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line).map_err(|e| e.to_string())?;
    if line.trim() != "ready" {
        return Err(format!("child said {line:?}"));
    }
    let mut err = c.stderr.take().ok_or("stderr")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // Let the std adapter's reporter prewarm its debug-info index first,
    // as a long-running daemon's would have.
    std::thread::sleep(Duration::from_millis(500));
    let mut stdin = c.stdin.take().ok_or("stdin")?;
    let t0 = Instant::now();
    stdin.write_all(b"go\n").map_err(|e| e.to_string())?;
    let status = c.wait().map_err(|e| e.to_string())?;
    let took = t0.elapsed();
    let stderr = reader.join().unwrap_or_default();
    if status.signal() != Some(libc::SIGSEGV) {
        return Err(format!("{mode}: child ended {status:?}"));
    }
    let complete = stderr.contains("==== Guru Meditation") && stderr.contains("==== End of Guru");
    Ok((took, complete))
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .cloned()
    };
    let threads: usize = value("--threads").map_or(64, |v| v.parse().expect("--threads N"));
    if let Some(mode) = value("--child") {
        child(&mode, threads);
        return;
    }
    let runs: usize = value("--runs").map_or(10, |v| v.parse().expect("--runs R"));
    let mut rows = Vec::new();
    for (mode, label) in [
        ("none", "without guru"),
        ("core", "guru-core (core-only crash report)"),
        ("std", "guru (std adapter's crash report)"),
    ] {
        let mut times = Vec::new();
        let mut complete = 0;
        for _ in 0..runs {
            match one(mode, threads) {
                Ok((t, c)) => {
                    times.push(t);
                    complete += usize::from(c);
                }
                Err(e) => eprintln!("bench_crash: {e}"),
            }
        }
        times.sort();
        let n = times.len();
        let row = if n == 0 {
            format!("| {label} | failed | – |")
        } else {
            format!(
                "| {label} | {} ({}–{}, n={n}) | {complete} of {n} |",
                fmt(times[n / 2]),
                fmt(times[0]),
                fmt(times[n - 1])
            )
        };
        eprintln!("{row}");
        rows.push(row);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let section = format!(
        "{BEGIN}\n## Crash reports\n\nWritten by `cargo run --release -p guru-examples --bin bench_crash` \
         (`examples/src/bin/bench_crash.rs`). Fatal signal to process death: a process of {threads} threads \
         (parked) writes through a null pointer in one of them; from the parent writing the command to \
         `waitpid` returning, the report (where there is one) read from a pipe. Medians (min–max, n = runs); \
         load average {}.\n\n| {threads} threads | signal to death | complete reports |\n|---|---|---|\n{}\n{END}\n",
        load.trim(),
        rows.join("\n")
    );
    println!("{section}");
    let out = match value("--out").as_deref() {
        Some("-") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
                .join("BENCHMARKS.md"),
        ),
    };
    if let Some(path) = out {
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let new = match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if e > b => {
                format!(
                    "{}{}{}",
                    &old[..b],
                    section,
                    &old[e + END.len()..].trim_start_matches('\n')
                )
            }
            _ => format!("{}\n{section}", old.trim_end()),
        };
        match std::fs::write(&path, new) {
            Ok(()) => eprintln!("bench_crash: wrote {}", path.display()),
            Err(e) => eprintln!("bench_crash: cannot write {}: {e}", path.display()),
        }
    }
}
