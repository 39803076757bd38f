//! The core-only example built for another target — aarch64 Linux run under
//! qemu-user, or a static x86_64 musl binary — is started, sent SIGUSR2, and
//! its report checked.
//!
//! `.ci/run` builds the binary and runs this test with:
//! - `GURU_CROSS_BIN`: the `core_only` binary;
//! - `GURU_CROSS_KIND`: `aarch64` or `musl`;
//! - `GURU_CROSS_RUNNER` (optional): the emulator command line, e.g.
//!   `qemu-aarch64 -L /usr/aarch64-linux-gnu`.
//!
//! The test is `#[ignore]`d, so a plain `cargo test --workspace` lists it as
//! ignored (with the reason) instead of counting a test that checked nothing
//! as passed; `.ci/constrained.sh` runs it with `--include-ignored`. Run
//! without `GURU_CROSS_BIN`, it fails and says what to set.
#![cfg(target_os = "linux")]

use std::time::Duration;

use guru_tests::{Fixture, Report, watchdog};

const WAIT: Duration = Duration::from_secs(60);

fn start_cross() -> (Fixture, String) {
    let Ok(bin) = std::env::var("GURU_CROSS_BIN") else {
        panic!(
            "constrained_cross: GURU_CROSS_BIN is not set: this test checks a cross-built \
             core_only binary (.ci/constrained.sh builds one for aarch64 and musl and sets \
             GURU_CROSS_BIN, GURU_CROSS_KIND and GURU_CROSS_RUNNER)"
        );
    };
    let kind = std::env::var("GURU_CROSS_KIND").unwrap_or_default();
    let runner = std::env::var("GURU_CROSS_RUNNER").unwrap_or_default();
    let mut command: Vec<String> = runner.split_whitespace().map(str::to_owned).collect();
    command.push(bin);
    command.extend(["--exit-after-ms".to_owned(), "120000".to_owned()]);
    let (program, args) = command.split_first().expect("a program");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut fx = Fixture::spawn(program, &args);
    fx.wait_for_line("core_only: pid", WAIT);
    (fx, kind)
}

const NAMES: [&str; 6] = [
    "busy",
    "sleeper",
    "mutex-waiter",
    "condvar-waiter",
    "pipe-reader",
    "deep-recursion",
];

/// Asks for reports until one shows every named thread: the example prints
/// its pid line once it has spawned its threads, but under an emulator a
/// thread may not have named itself (or reached its function) yet.
fn report_of(fx: &Fixture) -> Report {
    let mut report = None;
    for attempt in 1..=30 {
        fx.signal(libc::SIGUSR2);
        let mut reports = fx.wait_for_reports(attempt, WAIT);
        assert_eq!(reports.len(), attempt, "one report per trigger");
        let last = reports.pop().expect("a report");
        let complete = NAMES.iter().all(|n| {
            last.threads
                .iter()
                .any(|t| t.name == *n && !t.frames.is_empty())
        });
        report = Some(last);
        if complete {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = report.expect("a report");
    assert_eq!(report.pid, fx.pid(), "{}", report.text);
    assert_eq!(
        report.sections,
        ["Threads", "Modules", "Report"],
        "{}",
        report.text
    );
    report
}

#[test]
#[ignore = "SKIPPED: needs a cross-built core_only binary in GURU_CROSS_BIN (.ci/constrained.sh runs it)"]
fn cross_built_core_only_example_reports_every_thread() {
    watchdog(Duration::from_secs(600));
    let (fx, kind) = start_cross();
    let report = report_of(&fx);
    let text = &report.text;
    for name in NAMES {
        let block = report.thread_named(name);
        assert!(!block.frames.is_empty(), "{name}:\n{text}");
        assert!(
            block.header.contains("paused"),
            "{name} captured itself:\n{text}"
        );
    }
    // Interrupted in Rust code: its own unwind tables lead back to its callers,
    // the leaf frame (the interrupted pc) first.
    report
        .thread_named("busy")
        .assert_frames_in_order(&["core_only::busy_middle", "core_only::busy_outer"]);
    let modules = report.section("Modules").expect("Modules");
    assert!(modules.contains("/core_only build-id "), "{modules}");

    match kind.as_str() {
        "aarch64" => {
            // glibc's unwind tables bring blocked threads back to their callers.
            report
                .thread_named("sleeper")
                .assert_frames_in_order(&["core_only::sleeper"]);
            report
                .thread_named("pipe-reader")
                .assert_frames_in_order(&["read", "core_only::pipe_reader"]);
            report
                .thread_named("mutex-waiter")
                .assert_frames_in_order(&["core_only::mutex_waiter"]);
            assert!(modules.contains("libc.so"), "{modules}");
        }
        "musl" => {
            // Static: one module, every thread answered.
            assert_eq!(
                modules.lines().filter(|l| l.contains(" build-id ")).count(),
                1,
                "{modules}"
            );
            assert!(text.contains(" 0 unresponsive"), "{text}");
            // musl has no unwind tables: threads blocked inside it get their
            // Rust callers back by stack scanning, and the report says so.
            report
                .thread_named("pipe-reader")
                .assert_frames_in_order(&["read", "core_only::pipe_reader"]);
            report.thread_named("sleeper").assert_frames_in_order(&[
                "__clock_nanosleep",
                "std::thread",
                "core_only::sleeper",
            ]);
            for name in ["mutex-waiter", "condvar-waiter"] {
                let t = report.thread_named(name);
                t.assert_frames_in_order(&[&format!("core_only::{}", name.replace('-', "_"))]);
                assert!(
                    t.notes
                        .iter()
                        .any(|n| n.contains("found by scanning the stack")),
                    "{name}: {:?}",
                    t.notes
                );
            }
        }
        other => panic!("unknown GURU_CROSS_KIND {other:?}"),
    }
    drop(fx);
}
