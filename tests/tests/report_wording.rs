//! Issue 11's report-wording points on real reports: the first report lists
//! every thread its Process section counts (guru's `guru-sections` worker
//! starts at install, not during report #1); a report without a signal is
//! worded the same in "requested by" and in the recent triggers; the task
//! traces line does not stutter.
#![cfg(target_os = "linux")]

use std::time::Duration;

use guru_tests::{Fixture, Report};

const STD: &str = env!("CARGO_BIN_EXE_std_fixture");
const TOKIO: &str = env!("CARGO_BIN_EXE_tokio_fixture");
/// Generous: test builds are unoptimized, and the first report parses DWARF.
const WAIT: Duration = Duration::from_secs(90);

fn first_report(program: &str, args: &[&str]) -> (Fixture, Report) {
    guru_tests::watchdog(Duration::from_secs(300));
    let mut fx = Fixture::spawn_with_env(program, args, &[("RUST_BACKTRACE", "0")]);
    fx.wait_for_line("ready pid=", WAIT);
    // Let the fixture's threads reach their blocking calls.
    std::thread::sleep(Duration::from_millis(300));
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    (fx, report)
}

/// The number after `prefix` on the first line of `body` that starts with it.
fn number(body: &str, prefix: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{body}"))
}

#[test]
fn report_one_lists_as_many_threads_as_process_counts() {
    let (_fx, r) = first_report(STD, &[]);
    assert_eq!(r.sequence, 1, "{}", r.text);
    let report = r.section("Report").expect("Report section");
    let process = r.section("Process").expect("Process section");
    let listed = number(&report, "  threads: ");
    let counted = number(&process, "  threads: ");
    assert_eq!(
        listed, counted,
        "report #1 lists {listed} threads, Process counts {counted}:\n{}",
        r.text
    );
    // guru's own section worker is one of them, from the first report on.
    r.thread_named("guru-sections");
}

#[test]
fn a_call_is_worded_alike_in_requested_by_and_recent_triggers() {
    guru_tests::watchdog(Duration::from_secs(300));
    let mut fx = Fixture::spawn_with_env(STD, &[], &[("RUST_BACKTRACE", "0")]);
    fx.wait_for_line("ready pid=", WAIT);
    fx.send_line("call-report");
    fx.wait_for_line("call-report-end", WAIT);
    // The fixture prints guru::report()'s text on stdout, `| `-prefixed.
    let text: String = fx
        .stdout_seen
        .iter()
        .filter_map(|l| l.strip_prefix("| "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        text.contains("  requested by: a call to guru::report\n"),
        "{text}"
    );
    assert!(
        text.contains(": a call to guru::report (started a report)\n"),
        "the recent triggers word the call as \"requested by\" does:\n{text}"
    );
    assert!(!text.contains("a request without a signal"), "{text}");
}

#[test]
fn task_traces_line_says_not_built_in_once() {
    let (_fx, r) = first_report(TOKIO, &[]);
    let green = r.section("Green Threads").expect("Green Threads section");
    let lines: Vec<&str> = green
        .lines()
        .filter(|l| l.starts_with("  task traces: "))
        .collect();
    assert!(!lines.is_empty(), "{green}");
    for l in lines {
        assert_eq!(l.matches("task traces").count(), 1, "stutters: {l}");
    }
}
