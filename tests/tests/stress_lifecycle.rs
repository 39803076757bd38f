//! Lifecycle and handler-path tests of a process with guru installed:
//! `fork()` after installation (also while rounds run in the parent), a
//! library `dlopen`ed after installation (its frames are symbolized once
//! `Engine::refresh_modules()` ran), the std adapter under storms and hostile
//! threads, and a report descriptor that fails every write — all under the
//! fixture's strict allocation guard, whose own self-test shows it does
//! abort. (More rarely taken handler paths: `stress_queued.rs`.)
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use guru_tests::stress::{self, Stress, WAIT};
use guru_tests::{Report, parse_reports};

const FIXTURE: &str = env!("CARGO_BIN_EXE_stress_fixture");
const DL_LIB: &str = env!("GURU_DL_TEST_LIB");
const QUIET: Duration = Duration::from_millis(500);

/// Waits for a complete report from `pid` (any sequence number) that was not
/// in `seen` before.
fn report_from(s: &Stress, pid: i32, seen: usize) -> Report {
    let deadline = Instant::now() + WAIT;
    loop {
        let mine: Vec<Report> = parse_reports(&s.fx.stderr_text())
            .into_iter()
            .filter(|r| r.pid == pid)
            .collect();
        if mine.len() > seen {
            return mine.into_iter().nth(seen).expect("report");
        }
        assert!(
            Instant::now() < deadline,
            "no report from pid {pid}:\n{}",
            stress::tail(&s.fx.stderr_text(), 3000)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a process this test started (directly or through
    // its fixture).
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, signal)
    };
}

#[test]
fn forked_children_report_their_own_threads() {
    let mut s = Stress::start(FIXTURE, &["--mode", "fork", "--deadline-ms", "5000"], &[]);
    let parent = s.fx.pid();
    let trigger = s.trigger;
    // Fork while a storm keeps rounds running in the parent, so some children
    // are forked in the middle of a round.
    let storm = std::thread::spawn(move || {
        stress::storm(parent, trigger, 1, Duration::from_millis(1500), 100, false)
    });
    let mut children = Vec::new();
    for _ in 0..4 {
        s.fx.send_line("fork");
        let line = s.fx.wait_for_line("child pid=", WAIT);
        let pid: i32 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("pid="))
            .and_then(|v| v.parse().ok())
            .expect("child pid");
        children.push(pid);
        std::thread::sleep(Duration::from_millis(200));
    }
    storm.join().expect("storm");
    // Drain rather than only wait for quiet: a round still gathering writes
    // nothing until it ends, so quiet output alone does not prove it is over.
    let (all, _) = s.drain(QUIET);
    let parent_reports: Vec<&Report> = all.iter().filter(|r| r.pid == parent).collect();
    assert!(!parent_reports.is_empty());
    let (begins, ends) = stress::count_frames(&s.fx.stderr_text());
    assert_eq!(begins, ends);

    for &child in &children {
        kill(child, libc::SIGUSR2);
        let r = report_from(&s, child, 0);
        let names: Vec<&str> = r.threads.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            r.threads.len(),
            2,
            "only the child's own threads: {names:?}\n{}",
            r.text
        );
        r.thread_named("stress_fixture")
            .assert_frames_in_order(&["stress_fixture::child_waiting", "stress_fixture::do_fork"]);
        assert!(!r.thread_named("child-worker").frames.is_empty());
        assert!(r.text.contains("0 unresponsive"), "{}", r.text);
        // And again: the child's engine keeps working round after round.
        kill(child, libc::SIGUSR2);
        let again = report_from(&s, child, 1);
        assert_eq!(again.sequence, r.sequence + 1);
        kill(child, libc::SIGKILL);
    }

    // The parent is unaffected.
    let before = parse_reports(&s.fx.stderr_text())
        .iter()
        .filter(|r| r.pid == parent)
        .count();
    kill(parent, libc::SIGUSR2);
    let last = report_from(&s, parent, before);
    for name in ["parked-0", "parked-1"] {
        assert!(!last.thread_named(name).frames.is_empty());
    }
    s.fx.send_line("exit");
    assert!(s.fx.finish(WAIT).success());
}

#[test]
fn dlopened_library_is_symbolized_after_refresh_modules() {
    let mut s = Stress::start(
        FIXTURE,
        &["--mode", "dlopen", "--deadline-ms", "5000"],
        &[("GURU_DL_TEST_LIB", DL_LIB)],
    );
    let lib_name = "libguru_dl_test.so";

    // Before the refresh the library is unknown to the engine.
    let first = s.one_report(1);
    let before = first.thread_named("in-library");
    assert!(
        before.frames.iter().all(|f| !f.contains("guru_dl_test")),
        "{}",
        before.frames.join("\n")
    );
    assert!(
        !first
            .section("Modules")
            .unwrap_or_default()
            .contains(lib_name)
    );

    s.fx.send_line("refresh");
    assert_eq!(s.fx.wait_for_line("refreshed ", WAIT), "refreshed true");
    s.fx.send_line("refresh");
    assert_eq!(
        s.fx.wait_for_line("refreshed ", WAIT),
        "refreshed false",
        "nothing new to load the second time"
    );

    let second = s.one_report(2);
    let t = second.thread_named("in-library");
    // Rust callback ← C library (its functions, by name, in its module) ←
    // back into the Rust thread that called it: unwound through the library,
    // including its trampoline without unwind information (x86_64), whose
    // caller is found by scanning the stack.
    t.assert_frames_in_order(&[
        "stress_fixture::dl_keep_going",
        "guru_dl_test_inner",
        "guru_dl_test_trampoline",
        "guru_dl_test_loop",
        "stress_fixture::main::{{closure}}",
    ]);
    if cfg!(target_arch = "x86_64") {
        let trampoline = t
            .frame_index("guru_dl_test_trampoline")
            .expect("trampoline");
        let note = format!(
            "#{} and later frames were found by scanning the stack (#{trampoline} has no unwind information)",
            trampoline + 1
        );
        assert!(
            t.notes.iter().any(|n| n.contains(&note)),
            "expected {note:?} in {:?}\n{}",
            t.notes,
            t.frames.join("\n")
        );
    }
    assert!(
        t.frames
            .iter()
            .any(|f| f.contains("guru_dl_test_loop") && f.contains(lib_name)),
        "frame names its module:\n{}",
        t.frames.join("\n")
    );
    assert!(
        second
            .section("Modules")
            .expect("Modules")
            .contains(lib_name)
    );
    s.fx.send_line("exit");
    assert!(s.fx.finish(WAIT).success());
}

#[test]
fn allocation_guard_aborts_on_an_allocating_handler() {
    // The guard itself can fail: a wrapped handler that allocates kills the
    // process with the guard's message.
    let mut s = Stress::start(FIXTURE, &["--mode", "fork", "--alloc-in-handler"], &[]);
    kill(s.fx.pid(), libc::SIGURG);
    let deadline = Instant::now() + WAIT;
    while s.fx.is_alive() {
        assert!(Instant::now() < deadline, "the guard did not abort");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        s.fx.stderr_text()
            .contains("alloc_guard: ALLOCATION IN A SIGNAL HANDLER")
    );
    let status = s.fx.finish(WAIT);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGABRT));
}

#[test]
fn failing_report_writes_are_survived() {
    // Reports go to a descriptor that is not open: every write fails (EBADF).
    let mut s = Stress::start(FIXTURE, &["--mode", "storm", "--output-fd", "987"], &[]);
    let pid = s.fx.pid();
    let (_, sent) = stress::storm(pid, s.trigger, 2, Duration::from_millis(1000), 100, false);
    let (before, errors, _) = s.stats();
    assert_eq!(errors, 0);
    // The workers go on: their count keeps growing (polled, so a loaded
    // machine only makes this slower, never wrong).
    let deadline = Instant::now() + WAIT;
    while s.stats().0 <= before {
        assert!(
            Instant::now() < deadline,
            "workers stopped after {sent} failed reports"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stress::count_frames(&s.fx.stderr_text()), (0, 0));
    s.fx.send_line("exit");
    assert!(s.fx.finish(WAIT).success());
}

#[test]
fn std_mode_survives_storms_and_hostile_threads() {
    for mode in ["storm", "hostile"] {
        let mut s = Stress::start(
            FIXTURE,
            &["--std", "--mode", mode, "--deadline-ms", "1000"],
            &[],
        );
        let pid = s.fx.pid();
        let (_, sent) = stress::storm(pid, s.trigger, 3, Duration::from_millis(1500), 500, false);
        let (reports, extra) = s.drain(Duration::from_secs(1));
        stress::assert_consecutive(&reports, pid);
        let coalesced: u64 = reports.iter().map(stress::coalesced).sum();
        assert!(reports.len() as u64 + coalesced <= sent + extra);
        assert!(coalesced > 0, "a storm coalesces triggers");
        for r in &reports {
            assert!(
                r.threads
                    .iter()
                    .filter(|t| t.name.starts_with("worker-"))
                    .all(|t| !t.frames.is_empty()),
                "{}",
                r.text
            );
            if mode == "hostile" {
                for name in ["stack-end", "altstack-heap"] {
                    let t = r.thread_named(name);
                    assert!(
                        t.notes.iter().any(|n| n.contains("stack nearly exhausted")),
                        "{name}: {:?}",
                        t.notes
                    );
                }
                assert!(
                    r.thread_named("spinner")
                        .frames
                        .first()
                        .is_some_and(|f| f.contains("spin_without_calls"))
                );
            }
        }
        let (_, errors, _) = s.stats();
        assert_eq!(errors, 0, "{mode}: heap corrupted");
        s.fx.send_line("exit");
        assert!(s.fx.finish(WAIT).success());
        eprintln!(
            "std {mode}: {sent} triggers, {} reports, {coalesced} coalesced",
            reports.len()
        );
    }
}
