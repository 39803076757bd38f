//! Signal storms: several sender threads fire triggers as fast as they can at
//! a core-only process whose workers allocate and checksum heap buffers.
//! Afterwards the process is alive, every report that began also ended,
//! reports are numbered without gaps, coalesced triggers are accounted for,
//! the workers' checksums are intact, errno was never disturbed, and no
//! handler path allocated (the fixture's guard would have aborted it).
//! (Storms of queued real-time triggers: `stress_queued.rs`.)
#![cfg(target_os = "linux")]

use std::time::Duration;

use guru_tests::stress::{self, Stress};

const FIXTURE: &str = env!("CARGO_BIN_EXE_stress_fixture");
const QUIET: Duration = Duration::from_millis(500);
/// How long each storm lasts (senders fire as fast as they can meanwhile).
const STORM: Duration = Duration::from_secs(2);

fn workers_are_in(report: &guru_tests::Report, prefix: &str, count: usize) {
    let n = report
        .threads
        .iter()
        .filter(|t| t.name.starts_with(prefix) && !t.frames.is_empty())
        .count();
    assert_eq!(n, count, "{prefix}* threads with frames:\n{}", report.text);
}

#[test]
fn usr2_storm_from_several_senders() {
    let mut s = Stress::start(FIXTURE, &["--mode", "storm", "--deadline-ms", "5000"], &[]);
    let pid = s.fx.pid();
    let (before, _, _) = s.stats();

    let (_, sent) = stress::storm(pid, s.trigger, 4, STORM, 2_500, false);
    // More triggers after the storm collect the last coalesced counts.
    let (reports, extra) = s.drain(QUIET);
    let (begins, ends) = stress::count_frames(&s.fx.stderr_text());
    assert_eq!(begins, ends, "a report began and never ended");
    assert_eq!(begins, reports.len(), "every report parses whole");
    stress::assert_consecutive(&reports, pid);
    let coalesced: u64 = reports.iter().map(stress::coalesced).sum();
    // Standard signals merge while pending, so some triggers never reach the
    // process; those that did either started a report or were coalesced.
    assert!(
        reports.len() as u64 + coalesced <= sent + extra,
        "{} reports + {coalesced} coalesced > {sent} + {extra} sent",
        reports.len()
    );
    for r in &reports {
        workers_are_in(r, "worker-", 4);
    }

    let (after, errors, _) = s.stats();
    assert_eq!(errors, 0, "checksum errors");
    assert!(after > before, "workers made progress");
    assert!(s.fx.is_alive());
    s.fx.send_line("exit");
    assert!(s.fx.finish(stress::WAIT).success());
    eprintln!(
        "usr2 storm: {sent} sent, {} reports, {coalesced} coalesced",
        reports.len()
    );
}

#[test]
fn errno_is_preserved_under_a_storm() {
    // Only the errno workers take the trigger, so whole rounds run in their
    // handlers while short-lived threads make the round's system calls fail.
    let mut s = Stress::start(FIXTURE, &["--mode", "errno", "--deadline-ms", "5000"], &[]);
    let pid = s.fx.pid();
    let (_, sent) = stress::storm(pid, s.trigger, 2, STORM, 2_000, false);
    // Drain rather than only wait for quiet: a round still gathering writes
    // nothing until it ends, so quiet output alone does not prove it is over.
    let (reports, _) = s.drain(QUIET);
    assert!(
        !reports.is_empty(),
        "{sent} triggers sent, no report came out:\n{}",
        stress::tail(&s.fx.stderr_text(), 3000)
    );
    let (iterations, errors, _) = s.stats();
    assert_eq!(
        errors,
        0,
        "errno changed under a worker:\n{}",
        stress::tail(&s.fx.stderr_text(), 2000)
    );
    assert!(iterations > 0);
    // The rounds really ran on the workers (the thread writing the report).
    let on_workers = reports
        .iter()
        .filter(|r| {
            r.threads
                .iter()
                .any(|t| t.name.starts_with("errno-") && t.header.contains("writing this report"))
        })
        .count();
    assert_eq!(
        on_workers,
        reports.len(),
        "every round ran on an errno worker"
    );
    s.fx.send_line("exit");
    assert!(s.fx.finish(stress::WAIT).success());
    eprintln!("errno storm: {sent} sent, {} reports", reports.len());
}
