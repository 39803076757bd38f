//! Task traces name the application's async functions in release builds
//! (issue 17): the axum-shaped fixture built with `cargo build --release`,
//! `--cfg tokio_unstable`, and `CARGO_PROFILE_RELEASE_DEBUG=true` or
//! `=line-tables-only` (separate target dirs), run with `--workers 1` so
//! guru dumps both of its runtimes. Its `tokio::spawn`ed tasks wait on
//! timers (`storm_ticker`), I/O (the accept loop and hyper's connections),
//! a channel (`storm_channel_wait`) and a lock (`storm_lock_wait`); each
//! must be named with `axum_fixture.rs:<line>` in a report's traces.
//!
//! The release builds take about a minute each, so `.ci/run` makes them and
//! passes them in `GURU_RELEASE_AXUM_FIXTURES`
//! (`<debug>=<path>:<debug>=<path>`); without it this test prints SKIPPED
//! and why.
#![cfg(target_os = "linux")]

use std::time::Duration;

use guru_tests::Fixture;

const WAIT: Duration = Duration::from_secs(60);

/// The async fns whose names a trace must show, and what each waits on.
const NAMED: [(&str, &str); 4] = [
    ("axum_fixture::storm_ticker", "a timer"),
    ("axum_fixture::storm_channel_wait", "a channel"),
    ("axum_fixture::storm_lock_wait", "a lock"),
    ("axum_fixture::storm_accept_loop", "I/O (accept)"),
];

/// The traces of one report of `fixture`: `(frame lines, whole section)`.
fn traces_of(fixture: &str) -> String {
    let mut fx = Fixture::spawn_with_env(fixture, &["--workers", "1"], &[("RUST_BACKTRACE", "0")]);
    fx.wait_for_line("ready pid=", WAIT);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let section = report
        .section("Green Threads")
        .unwrap_or_else(|| panic!("no Green Threads:\n{}", report.text));
    fx.send_line("quit");
    let status = fx.finish(WAIT);
    assert!(status.success(), "{status:?}");
    section
}

#[test]
fn release_task_traces_name_the_async_functions_with_file_and_line() {
    let Ok(list) = std::env::var("GURU_RELEASE_AXUM_FIXTURES") else {
        eprintln!(
            "SKIPPED: release task traces: GURU_RELEASE_AXUM_FIXTURES is not set (.ci/run builds the release fixtures with --cfg tokio_unstable and sets it)"
        );
        return;
    };
    let mut checked = 0;
    for entry in list.split(':').filter(|e| !e.is_empty()) {
        let (debug, path) = entry.split_once('=').unwrap_or_else(|| {
            panic!("GURU_RELEASE_AXUM_FIXTURES entry {entry:?}: want <debug>=<path>")
        });
        let section = traces_of(path);
        let frames: Vec<&str> = section
            .lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .collect();
        for (function, waits_on) in NAMED {
            assert!(
                frames.iter().any(|l| l.contains(function)
                    && l.contains(" at ")
                    && l.contains("axum_fixture.rs:")),
                "debug = {debug}: {function} (waiting on {waits_on}) not named with file:line in the traces:\n{section}"
            );
        }
        eprintln!("debug = {debug}: every async fn named with file:line");
        checked += 1;
    }
    assert_eq!(checked, 2, "want two release fixtures, got {list:?}");
}
