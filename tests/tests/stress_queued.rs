//! Storms of *queued* (real-time) signals. They fill the per-user queue of
//! pending real-time signals (`RLIMIT_SIGPENDING`), and while it is full any
//! process of the same user fails to queue one — including the capture
//! signals of a fixture being reported on at the same time. So these tests
//! live in a test binary of their own: cargo runs test binaries one after
//! another, so no other stress test shares their time. (They assert nothing
//! that needs a capture signal to get through.)
//!
//! * every queued trigger is accounted for exactly: reports + coalesced =
//!   triggers the kernel accepted;
//! * the rarely taken handler paths do not allocate: one unwinder cache for
//!   every thread, a 256-byte output buffer, capture signals from outside the
//!   process (which the handler ignores).
#![cfg(target_os = "linux")]

use std::time::Duration;

use guru_tests::stress::{self, Stress};

const FIXTURE: &str = env!("CARGO_BIN_EXE_stress_fixture");
const QUIET: Duration = Duration::from_millis(500);
/// How long each storm lasts (senders fire as fast as they can meanwhile).
const STORM: Duration = Duration::from_secs(2);

#[test]
fn queued_trigger_storm_accounts_for_every_trigger() {
    // A real-time trigger signal queues: every accepted sigqueue reaches the
    // handler, so reports + coalesced must equal what was sent, exactly.
    let mut s = Stress::start(
        FIXTURE,
        &["--mode", "storm", "--trigger-rt", "--deadline-ms", "5000"],
        &[],
    );
    let pid = s.fx.pid();
    let (attempted, sent) = stress::storm(pid, s.trigger, 3, STORM, 1_000, true);
    let (reports, extra) = s.drain(QUIET);
    stress::assert_consecutive(&reports, pid);
    let coalesced: u64 = reports.iter().map(stress::coalesced).sum();
    assert_eq!(
        reports.len() as u64 + coalesced,
        sent + extra,
        "every delivered trigger started a report or was counted as coalesced"
    );
    let (_, errors, _) = s.stats();
    assert_eq!(errors, 0, "checksum errors");
    s.fx.send_line("exit");
    assert!(s.fx.finish(stress::WAIT).success());
    eprintln!(
        "queued storm: {attempted} sent, {sent} accepted, {} reports, {coalesced} coalesced",
        reports.len()
    );
}

#[test]
fn rare_handler_paths_do_not_allocate() {
    // One unwinder cache for every thread (contention: retry, give up), a
    // 256-byte output buffer (many flushes), and capture signals that do not
    // come from the process itself (kill: SI_USER; sigqueue: another pid),
    // which the capture handler must ignore.
    let mut s = Stress::start(
        FIXTURE,
        &[
            "--mode",
            "storm",
            "--caches",
            "1",
            "--output-buffer",
            "256",
            "--deadline-ms",
            "5000",
        ],
        &[],
    );
    let pid = s.fx.pid();
    let capture = s.capture;
    let foreign = std::thread::spawn(move || {
        stress::storm(pid, capture, 1, Duration::from_millis(800), 100, true);
        stress::storm(pid, capture, 1, Duration::from_millis(800), 100, false);
    });
    let (_, sent) = stress::storm(pid, s.trigger, 2, Duration::from_millis(1500), 100, false);
    foreign.join().expect("foreign senders");
    let (reports, _) = s.drain(QUIET);
    stress::assert_consecutive(&reports, pid);
    for r in &reports {
        assert_eq!(
            r.threads
                .iter()
                .filter(|t| t.name.starts_with("worker-"))
                .count(),
            4
        );
    }
    let (_, errors, _) = s.stats();
    assert_eq!(errors, 0);
    s.fx.send_line("exit");
    assert!(s.fx.finish(stress::WAIT).success());
    eprintln!("rare paths: {sent} triggers, {} reports", reports.len());
}
