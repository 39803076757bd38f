//! The `#![no_std]`, `#![no_main]` example (examples/nostd: libc only,
//! `panic = "abort"`) is built, started, sent SIGUSR2, and its report checked:
//! once with `guru_core::install` (DWARF unwinding, symbols) and once with
//! `guru_core::install_static` (frame pointers only, no heap at all — its
//! allocation counter must stay at zero).
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use guru_core::symbolize::SymbolTable;
use guru_tests::{Fixture, Report, watchdog};

const WAIT: Duration = Duration::from_secs(20);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Builds examples/nostd once (its own workspace: `panic = "abort"` is a
/// profile setting) from its directory, so its `.cargo/config.toml` adds frame
/// pointers; returns the binary.
fn nostd_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = workspace_root();
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("nostd");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root.join("examples/nostd"))
            .args(["build", "--release", "--locked", "--target-dir"])
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo build for examples/nostd");
        assert!(status.success(), "building examples/nostd failed");
        target_dir.join("release/nostd")
    })
}

/// Starts the example and returns it with its `thread <name> <tid>` lines.
fn start(args: &[&str]) -> (Fixture, Vec<(String, i32)>) {
    let bin = nostd_binary().to_str().expect("utf-8 path").to_owned();
    let mut fx = Fixture::spawn(&bin, args);
    fx.wait_for_line("ready pid=", WAIT);
    let threads = fx
        .stdout_seen
        .iter()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            (p.next() == Some("thread")).then(|| {
                let name = p.next().expect("name").to_owned();
                (name, p.next().and_then(|t| t.parse().ok()).expect("tid"))
            })
        })
        .collect();
    (fx, threads)
}

fn one_report(fx: &mut Fixture) -> Report {
    fx.signal(libc::SIGUSR2);
    let mut reports = fx.wait_for_reports(1, WAIT);
    assert_eq!(reports.len(), 1, "exactly one report");
    let report = reports.remove(0);
    assert_eq!(report.pid, fx.pid());
    assert_eq!(
        report.sections,
        ["Threads", "Modules", "Report"],
        "{}",
        report.text
    );
    report
}

/// Every thread the example started is in the report, under its tid and name.
fn check_threads(report: &Report, threads: &[(String, i32)]) {
    assert_eq!(report.threads.len(), threads.len(), "{}", report.text);
    for (name, tid) in threads {
        let name = if name == "main" { "nostd" } else { name };
        let block = report.thread_named(name);
        assert_eq!(block.tid, *tid, "{}", report.text);
        assert!(!block.frames.is_empty(), "{}", report.text);
    }
}

#[test]
fn nostd_example_reports_with_dwarf_unwinding_and_symbols() {
    watchdog(Duration::from_secs(600));
    let (mut fx, threads) = start(&[]);
    let report = one_report(&mut fx);
    check_threads(&report, &threads);
    report.thread_named("spinner").assert_frames_in_order(&[
        "nostd::spin_inner",
        "nostd::spin_middle",
        "nostd::spin_outer",
        "nostd::thread_main",
    ]);
    // Threads inside libc come back to their callers through libc's CFI.
    report
        .thread_named("sleeper")
        .assert_frames_in_order(&["nanosleep", "nostd::sleep_forever"]);
    report
        .thread_named("reader")
        .assert_frames_in_order(&["read", "nostd::read_forever"]);
    let modules = report.section("Modules").expect("Modules");
    assert!(modules.contains("/nostd build-id "), "{modules}");
    assert!(fx.finish(WAIT).success());
}

/// Resolves a `module+0xoffset` frame of the example against its own ELF
/// symbols, the way an operator would symbolize a static-mode report offline.
fn symbolize_offline(symbols: &SymbolTable, frame: &str, is_return_address: bool) -> String {
    let Some(offset) = frame
        .split_whitespace()
        .find_map(|w| w.strip_prefix("nostd+0x"))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
    else {
        return String::new();
    };
    let lookup = if is_return_address {
        offset - 1
    } else {
        offset
    };
    symbols
        .lookup(lookup)
        .map(|hit| String::from_utf8_lossy(hit.name).into_owned())
        .unwrap_or_default()
}

#[test]
fn nostd_example_static_mode_reports_without_any_heap() {
    watchdog(Duration::from_secs(600));
    let (mut fx, threads) = start(&["--static"]);
    assert_eq!(fx.allocations(WAIT), 0, "install_static allocated");
    let report = one_report(&mut fx);
    assert_eq!(fx.allocations(WAIT), 0, "the report allocated");
    check_threads(&report, &threads);
    assert!(report.text.contains("(capacity 64)"), "{}", report.text);

    // No symbols in static mode: frames are module+offset, and the Modules
    // list says which file and build-id they belong to.
    let modules = report.section("Modules").expect("Modules");
    assert!(modules.contains("/nostd build-id "), "{modules}");
    assert!(modules.contains(" symbols 0"), "{modules}");
    let image = std::fs::read(nostd_binary()).expect("read the example binary");
    let symbols = SymbolTable::from_elf(&image);
    let spinner = report.thread_named("spinner");
    let names: Vec<String> = spinner
        .frames
        .iter()
        .enumerate()
        .map(|(n, f)| symbolize_offline(&symbols, f, n > 0))
        .collect();
    let position = |needle: &str| {
        names
            .iter()
            .position(|n| n.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not among {names:?}\n{}", report.text))
    };
    // The spinner runs frame-pointer code: its whole chain is there, in order.
    let (inner, middle, outer) = (
        position("spin_inner"),
        position("spin_middle"),
        position("spin_outer"),
    );
    assert!(inner < middle && middle < outer, "{names:?}");
    assert!(fx.finish(WAIT).success());
}

#[test]
fn static_arena_size_is_what_install_static_uses() {
    watchdog(Duration::from_secs(600));
    let bin = nostd_binary().to_str().expect("utf-8 path").to_owned();
    let out = Command::new(&bin)
        .args(["--measure", "--static"])
        .output()
        .expect("run nostd --measure");
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    assert_eq!(field("heap_live_bytes"), 0, "{line}");
    assert_eq!(field("caches"), 0, "{line}");
    let expected = guru_core::Options::SMALLEST.static_bytes() as u64;
    assert_eq!(field("static_arena_bytes"), expected, "{line}");
    assert!(field("fixed") <= expected, "{line}");
}

/// A crash in the `no_std` example: the core's crash report (crashed thread
/// first, marked, from the fault's registers), then death by SIGSEGV — with
/// `install` and with `install_static` (no heap: the allocation counter
/// stays at zero).
#[test]
fn nostd_example_crash_report() {
    watchdog(Duration::from_secs(600));
    use std::os::unix::process::ExitStatusExt;
    for args in [&[][..], &["--static"][..]] {
        let (mut fx, _threads) = start(args);
        if args.contains(&"--static") {
            assert_eq!(fx.allocations(WAIT), 0);
        }
        fx.send_line("crash");
        let (status, stderr) = fx.wait_for_death(WAIT);
        assert_eq!(status.signal(), Some(libc::SIGSEGV), "{stderr}");
        let reports = guru_tests::parse_reports(&stderr);
        assert_eq!(reports.len(), 1, "{stderr}");
        let r = &reports[0];
        let first = &r.threads[0];
        assert_eq!(first.name, "nostd", "{}", r.text);
        assert!(
            first
                .header
                .contains("(crashed: SIGSEGV SEGV_MAPERR at address 0x0)"),
            "{}",
            r.text
        );
        if args.is_empty() {
            assert!(
                first.frame_index("nostd::crash_now").is_some(),
                "{}",
                r.text
            );
        } else {
            assert!(first.frames[0].contains("nostd+0x"), "{}", r.text);
        }
    }
}
