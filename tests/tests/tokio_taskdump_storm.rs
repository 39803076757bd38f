//! Task dumps under a real server (issue 17): the axum-shaped fixture
//! (`tests/src/bin/axum_fixture.rs`: hyper serving HTTP/1 in tokio tasks on a
//! 2-worker runtime "server", ticking tasks, light keep-alive traffic, and a
//! 1-worker runtime "single" waiting on timers, a channel and a lock) is sent
//! [`REPORTS`] reports [`INTERVAL`] apart. Then:
//!
//! - no ticking task went more than 500 ms without a tick at any point (the
//!   fixture measures its own tick gaps; tokio's dump barrier stalls a
//!   runtime 250 ms per timed-out wait, and a wedged worker for good);
//! - every report's Green Threads has, for each runtime, task traces or a
//!   reason that is true for it;
//! - both runtimes shut down within `shutdown_timeout(1 s)`: every runtime
//!   thread ended.
//!
//! `.ci/run` runs this file three times in a row in a build with
//! `--cfg tokio_unstable` (guru's `taskdump` on), where guru could take
//! dumps; in the plain build no dump can be taken, and the storm still
//! checks progress, reasons and shutdown.
#![cfg(target_os = "linux")]

use std::time::Duration;

use guru_tests::{Fixture, Report};

const FIXTURE: &str = env!("CARGO_BIN_EXE_axum_fixture");
/// Generous: test builds are unoptimized, and the first report parses DWARF.
const WAIT: Duration = Duration::from_secs(60);
const REPORTS: usize = 20;
/// Half the one second: the fixture measures its progress the
/// same way whatever the interval, and dumps come twice as often.
const INTERVAL: Duration = Duration::from_millis(500);

/// Whether this build takes task dumps (the fixture is built the same way).
const DUMPS: bool = cfg!(all(
    tokio_unstable,
    any(target_arch = "x86_64", target_arch = "aarch64")
));

/// The part of the Green Threads section about runtime `name`.
fn runtime_part(section: &str, name: &str) -> String {
    let head = format!("Runtime \"{name}\" (");
    let start = section
        .find(&head)
        .unwrap_or_else(|| panic!("no runtime {name} in:\n{section}"));
    let rest = &section[start..];
    let end = rest[head.len()..]
        .find("\nRuntime \"")
        .map_or(rest.len(), |i| i + head.len());
    rest[..end].to_string()
}

fn task_traces_line(part: &str) -> &str {
    part.lines()
        .find(|l| l.starts_with("  task traces: "))
        .unwrap_or_else(|| panic!("no task traces line in:\n{part}"))
}

/// `key=<n>` from a `stats ...` line.
fn stat(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// What a report says about each runtime, checked to be true.
fn check_report(n: usize, report: &Report, taken: &mut usize, tickers_seen: &mut bool) {
    let section = report
        .section("Green Threads")
        .unwrap_or_else(|| panic!("report {n}: no Green Threads:\n{}", report.text));
    let server = runtime_part(&section, "server");
    let single = runtime_part(&section, "single");
    assert!(
        server.contains("(multi_thread): 2 workers"),
        "report {n}:\n{server}"
    );
    let line = task_traces_line(&server);
    if DUMPS {
        // Two workers: tokio's dump could wedge one; guru does not ask.
        assert!(
            line.contains(
                "not taken for a multi_thread runtime with 2 workers: tokio's multi-thread task dump (as of tokio 1.54.1) can leave a worker waiting forever in its dump barrier"
            ),
            "report {n}: {line}\n{server}"
        );
        // No worker of it is (or could be) in tokio's dump machinery.
        assert!(
            !report.text.contains("trace_core"),
            "report {n}:\n{}",
            report.text
        );
        let line = task_traces_line(&single);
        let names = |f: &str| {
            single
                .lines()
                .any(|l| l.trim_start().starts_with('#') && l.contains(f))
        };
        if line.contains(" distinct trace") && line.contains("; the dump took ") {
            *taken += 1;
            // The idle waiters are always in the dump (tokio leaves out a
            // task that is being scheduled at that moment: a ticker may be).
            for f in ["storm_channel_wait", "storm_lock_wait"] {
                assert!(names(f), "report {n}: {f} not in the traces:\n{single}");
            }
            *tickers_seen |= names("axum_fixture::storm_ticker");
        } else {
            // A 1-worker dump can only be late (the machine is loaded),
            // never harmful; that must be what it says.
            assert!(
                line.contains("task dump timed out after ")
                    || line.contains("has not ended (it timed out then)"),
                "report {n}: {line}\n{single}"
            );
        }
    } else {
        for part in [&server, &single] {
            assert!(
                task_traces_line(part).contains("task traces: not built in"),
                "report {n}:\n{part}"
            );
        }
    }
}

fn storm(args: &[&str]) {
    let mut fx = Fixture::spawn_with_env(FIXTURE, args, &[("RUST_BACKTRACE", "0")]);
    fx.wait_for_line("ready pid=", WAIT);
    let mut taken = 0;
    let mut tickers_seen = false;
    for n in 1..=REPORTS {
        fx.signal(libc::SIGUSR2);
        let reports = fx.wait_for_reports(n, WAIT);
        check_report(n, &reports[n - 1], &mut taken, &mut tickers_seen);
        fx.send_line("stats");
        let stats = fx.wait_for_line("stats ", WAIT);
        // Every task kept making progress while the reports were taken.
        assert!(
            stat(&stats, "max_tick_gap_ms") <= 500,
            "after report {n}: a task made no progress for more than 500 ms: {stats}"
        );
        std::thread::sleep(INTERVAL);
    }
    let stats = {
        fx.send_line("stats");
        fx.wait_for_line("stats ", WAIT)
    };
    eprintln!("{REPORTS} reports: {stats}; single runtime dumps taken: {taken}");
    assert!(stat(&stats, "requests") > 0, "{stats}");
    if DUMPS {
        assert!(taken > 0, "no dump of the 1-worker runtime was taken");
        assert!(tickers_seen, "no dump named storm_ticker");
    }
    fx.send_line("quit");
    for rt in ["server", "single"] {
        let line = fx.wait_for_line(&format!("shutdown {rt}: "), WAIT);
        let (ended, started) = line
            .split_once(": ")
            .and_then(|(_, r)| r.strip_suffix(" threads ended"))
            .and_then(|r| r.split_once(" of "))
            .expect("shutdown line");
        assert_eq!(
            ended, started,
            "{line}: a runtime thread did not end within shutdown_timeout(1 s)"
        );
    }
    let status = fx.finish(WAIT);
    assert!(status.success(), "{status:?}");
}

#[test]
fn taskdump_storm_keeps_a_server_runtime_running_and_able_to_shut_down() {
    storm(&[]);
}
