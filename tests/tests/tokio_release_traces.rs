//! Task traces name the application's async functions in release builds
//! (issue 17): the axum-shaped fixture built with `cargo build --release`,
//! `--cfg tokio_unstable`, and `CARGO_PROFILE_RELEASE_DEBUG=true` or
//! `=line-tables-only` (separate target dirs), run with `--workers 1` so
//! guru dumps both of its runtimes. Its `tokio::spawn`ed tasks wait on
//! timers (`storm_ticker`), I/O (the accept loop and hyper's connections),
//! a channel (`storm_channel_wait`) and a lock (`storm_lock_wait`); each
//! must be in a report's traces with an `axum_fixture.rs:<line>` inside the
//! function, and with `debug = true` by its qualified name (rustc's
//! line-tables-only DWARF names it `{async_fn#0}`, unqualified).
//!
//! The release builds take about a minute each, so `.ci/run` makes them and
//! passes them in `GURU_RELEASE_AXUM_FIXTURES`
//! (`<debug>=<path>:<debug>=<path>`). The test is `#[ignore]`d with a
//! SKIPPED reason, so a plain `cargo test` lists it as ignored rather than
//! passed; `.ci/run` runs it with `--include-ignored`, and run without the
//! variable it fails and says what to set.
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

/// The first and last line of `async fn <function>` in the fixture's source.
fn source_lines(function: &str) -> (usize, usize) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin/axum_fixture.rs");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name = function.rsplit("::").next().unwrap_or(function);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("async fn {name}(")))
        .unwrap_or_else(|| panic!("no async fn {name} in {path}"));
    let end = lines[start..]
        .iter()
        .position(|l| *l == "}")
        .map_or(lines.len(), |i| start + i);
    (start + 1, end + 1)
}

#[test]
#[ignore = "SKIPPED: needs release builds of axum_fixture in GURU_RELEASE_AXUM_FIXTURES (.ci/run builds them)"]
fn release_task_traces_name_the_async_functions_with_file_and_line() {
    let Ok(list) = std::env::var("GURU_RELEASE_AXUM_FIXTURES") else {
        panic!(
            "GURU_RELEASE_AXUM_FIXTURES is not set: .ci/run builds release axum_fixture binaries \
             with --cfg tokio_unstable (debug = true and line-tables-only) and sets it"
        );
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
            let (first, last) = source_lines(function);
            let in_function = |l: &&str| {
                l.split("axum_fixture.rs:")
                    .nth(1)
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| (first..=last).contains(&n))
            };
            // With full debug info the frame carries the qualified name;
            // rustc's "line-tables-only" DWARF has unqualified names only
            // (`{async_fn#0}`): there the frame is told by its file:line
            // inside the function.
            let named = |l: &&str| debug == "line-tables-only" || l.contains(function);
            assert!(
                frames.iter().any(|l| named(l) && in_function(l)),
                "debug = {debug}: {function} (waiting on {waits_on}, axum_fixture.rs:{first}-{last}) not in the traces:\n{section}"
            );
        }
        eprintln!("debug = {debug}: every async fn in the traces with its file:line");
        checked += 1;
    }
    assert_eq!(checked, 2, "want two release fixtures, got {list:?}");
}
