//! Floor rounds (`guru_core::floor`, issue 16): a round built like a capture
//! round whose handlers only answer. It must reach every thread, allocate
//! nothing, leave the slot table and the report numbering as a capture round
//! expects them, and count a thread that blocks the capture signal. The same
//! for the handler's floor (`guru_core::floor::capture_without_walk`): a
//! capture round whose handlers skip only the stack walk.
#![cfg(target_os = "linux")]

use std::time::Duration;

use guru_tests::Fixture;

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");
const WAIT: Duration = Duration::from_secs(20);

/// `(listed, answered, unresponsive)` of one floor round.
fn floor(fx: &mut Fixture, command: &str) -> (u64, u64, u64) {
    fx.send_line(command);
    let line = fx.wait_for_line("floor", WAIT);
    assert!(line.starts_with("floor listed="), "{line}");
    (
        field(&line, "listed"),
        field(&line, "answered"),
        field(&line, "unresponsive"),
    )
}

#[test]
fn floor_rounds_reach_every_thread_and_leave_reports_as_they_were() {
    let mut fx = Fixture::spawn(FIXTURE, &[]);
    fx.wait_for_line("ready pid=", WAIT);
    let threads = fx.announced_threads();
    for command in ["floor", "floor-yield", "floor"] {
        let (listed, answered, unresponsive) = floor(&mut fx, command);
        assert!(
            listed >= threads.len() as u64,
            "{command}: {listed} listed, {} announced",
            threads.len()
        );
        assert_eq!(answered, listed, "{command}: every thread answers");
        assert_eq!(unresponsive, 0, "{command}");
    }
    assert_eq!(fx.allocations(WAIT), 0, "floor rounds allocate nothing");
    // A report after floor rounds is report 1 (they gave their numbers
    // back) and has every thread captured (no slot left armed for them).
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    assert_eq!(report.sequence, 1, "{}", report.text);
    assert_eq!(report.threads.len(), threads.len(), "{}", report.text);
    for block in &report.threads {
        assert!(!block.frames.is_empty(), "{}", block.header);
    }
    let figures = report.section("Report").expect("Report section");
    let n = threads.len();
    assert!(
        figures.contains(&format!("{n} listed, {n} captured, 0 unresponsive")),
        "{figures}"
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}

#[test]
fn floor_round_counts_a_thread_that_blocks_the_signal() {
    let mut fx = Fixture::spawn(FIXTURE, &["--blocker"]);
    fx.wait_for_line("ready pid=", WAIT);
    let (listed, answered, unresponsive) = floor(&mut fx, "floor");
    assert_eq!(unresponsive, 1, "the blocker does not answer");
    assert_eq!(answered, listed - 1);
    // The capture round after it still captures the others and lists the
    // blocker as unresponsive.
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let blocker = report.thread_named("blocker");
    assert!(
        blocker.header.contains("unresponsive"),
        "{}",
        blocker.header
    );
    report
        .thread_named("sleeper")
        .assert_frames_in_order(&["fixture::sleeping_in_std_sleep"]);
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}

/// `key=value` of a fixture answer line.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

#[test]
fn a_round_without_the_walk_captures_every_thread_at_its_pc_alone() {
    let mut fx = Fixture::spawn(FIXTURE, &["--blocker"]);
    fx.wait_for_line("ready pid=", WAIT);
    let threads = fx.announced_threads();
    for _ in 0..3 {
        fx.send_line("no-walk");
        let line = fx.wait_for_line("no-walk", WAIT);
        assert!(line.starts_with("no-walk listed="), "{line}");
        let listed = field(&line, "listed");
        assert!(listed >= threads.len() as u64, "{line}");
        // Every thread but the blocker answers, each with its interrupted
        // pc alone, marked as not walked, its pause measured.
        assert_eq!(field(&line, "unresponsive"), 1, "{line}");
        let captured = field(&line, "captured");
        assert_eq!(captured, listed - 1, "{line}");
        for key in ["pc_only", "not_walked", "timed"] {
            assert_eq!(field(&line, key), captured, "{key}: {line}");
        }
    }
    assert_eq!(fx.allocations(WAIT), 0, "the rounds allocate nothing");
    // The report after them is report 1 with whole stacks: the no-walk bit
    // stays with those rounds.
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    assert_eq!(report.sequence, 1, "{}", report.text);
    report
        .thread_named("sleeper")
        .assert_frames_in_order(&["fixture::sleeping_in_std_sleep"]);
    assert!(
        !report.text.contains("skips the stack walk"),
        "{}",
        report.text
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}
