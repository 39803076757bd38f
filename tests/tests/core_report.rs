//! The core engine, end to end: a fixture process with threads parked in
//! known functions is sent SIGUSR2 and its stderr report is checked.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::time::Duration;

use guru_tests::{Fixture, Report};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");
const WAIT: Duration = Duration::from_secs(20);

/// Starts the fixture and returns it with the thread name → tid map it printed.
fn start(args: &[&str]) -> (Fixture, BTreeMap<String, i32>) {
    let mut fx = Fixture::spawn(FIXTURE, args);
    fx.wait_for_line("ready pid=", WAIT);
    let threads = fx.announced_threads();
    // The checks expect these threads inside their blocking calls.
    for (name, call) in [
        ("sleeper", libc::SYS_clock_nanosleep),
        ("mutex-waiter", libc::SYS_futex),
        ("condvar-waiter", libc::SYS_futex),
        ("pipe-reader", libc::SYS_read),
        ("recursion", libc::SYS_futex),
    ] {
        if let Some(&tid) = threads.get(name) {
            guru_tests::wait_in_syscall(fx.pid(), tid, call, WAIT);
        }
    }
    (fx, threads)
}

fn check_report(report: &Report, pid: i32, threads: &BTreeMap<String, i32>) {
    assert_eq!(report.pid, pid);
    assert_eq!(
        report.sections,
        ["Threads", "Modules", "Report"],
        "{}",
        report.text
    );

    // Every thread is there, with its tid and name.
    for (name, &tid) in threads {
        let name = if name == "main" {
            "fixture"
        } else {
            name.as_str()
        };
        let block = report.thread_named(name);
        assert_eq!(block.tid, tid, "tid of {name}");
        assert!(!block.frames.is_empty(), "{name} has frames");
    }
    assert_eq!(
        report.threads.len(),
        threads.len(),
        "no extra or missing threads:\n{}",
        report.text
    );

    // Each thread's known functions, innermost first, in its own block.
    report
        .thread_named("spinner")
        .assert_frames_in_order(&["fixture::spin_level_two", "fixture::spin_level_one"]);
    let spinner = report.thread_named("spinner");
    if let Some(three) = spinner.frame_index("fixture::spin_level_three") {
        assert!(
            three
                < spinner
                    .frame_index("fixture::spin_level_two")
                    .expect("level two")
        );
    }
    assert!(spinner.header.contains("(running"), "{}", spinner.header);

    // Threads inside libc system calls unwind back into their Rust callers.
    let sleeper = report.thread_named("sleeper");
    assert!(
        sleeper.frames[0].contains("libc.so"),
        "sleeper stopped in libc: {}",
        sleeper.frames[0]
    );
    sleeper.assert_frames_in_order(&["std::thread", "fixture::sleeping_in_std_sleep"]);

    let mutex = report.thread_named("mutex-waiter");
    mutex.assert_frames_in_order(&["Mutex", "fixture::waiting_on_mutex"]);
    assert!(
        mutex.header.contains("in syscall futex"),
        "{}",
        mutex.header
    );

    let condvar = report.thread_named("condvar-waiter");
    condvar.assert_frames_in_order(&["Condvar", "fixture::waiting_on_condvar"]);
    assert!(
        condvar.header.contains("in syscall futex"),
        "{}",
        condvar.header
    );

    let pipe = report.thread_named("pipe-reader");
    assert!(
        pipe.frames[0].contains("read") && pipe.frames[0].contains("libc.so"),
        "{}",
        pipe.frames[0]
    );
    pipe.assert_frames_in_order(&["fixture::reading_from_pipe"]);
    assert!(pipe.header.contains("in syscall read"), "{}", pipe.header);

    // Recursion deeper than the frame capacity (128) is marked truncated.
    let deep = report.thread_named("recursion");
    deep.assert_frames_in_order(&["std::thread", "fixture::recursing", "fixture::recursing"]);
    assert!(
        deep.notes.iter().any(|n| n.contains("stack truncated")),
        "{:?}",
        deep.notes
    );

    // Frames of the main thread (which ran the report) reach `main`.
    let main = report.thread_named("fixture");
    assert!(
        main.frames.iter().any(|f| f.contains("fixture::main")),
        "{}",
        main.frames.join("\n")
    );

    // Modules list the executable and libc with build-ids.
    let modules = report.section("Modules").expect("Modules section");
    assert!(modules.contains("/fixture build-id "), "{modules}");
    assert!(modules.contains("libc.so"), "{modules}");

    let figures = report.section("Report").expect("Report section");
    let expected = format!(
        "{} listed, {} captured, 0 unresponsive, 0 not signalled, 0 left out",
        threads.len(),
        threads.len()
    );
    assert!(figures.contains(&expected), "{figures}");
    assert!(figures.contains("SIGUSR2 from pid"), "{figures}");
}

#[test]
fn every_thread_reported_three_times_without_allocating() {
    let (mut fx, threads) = start(&[]);
    let pid = fx.pid();
    for round in 1..=3u64 {
        fx.signal(libc::SIGUSR2);
        let reports = fx.wait_for_reports(round as usize, WAIT);
        let report = &reports[round as usize - 1];
        assert_eq!(report.sequence, round);
        check_report(report, pid, &threads);
        assert!(fx.is_alive(), "the process keeps running");
        assert_eq!(
            fx.allocations(WAIT),
            0,
            "no allocation while all threads are parked and reports run"
        );
    }
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}

#[test]
fn report_requested_from_normal_context_shows_the_caller() {
    let (mut fx, threads) = start(&[]);
    fx.send_line("report");
    fx.wait_for_line("reported", WAIT);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    assert!(report.text.contains("on request"), "{}", report.text);
    let main = report.thread_named("fixture");
    main.assert_frames_in_order(&["guru_core::write_report", "fixture::main"]);
    assert_eq!(report.threads.len(), threads.len());
    assert_eq!(fx.allocations(WAIT), 0);
}

#[test]
fn thread_blocking_the_capture_signal_is_listed_unresponsive() {
    let (fx, threads) = start(&["--blocker"]);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let blocker = report.thread_named("blocker");
    assert_eq!(blocker.tid, threads["blocker"]);
    assert!(
        blocker.header.contains("unresponsive after 100 ms"),
        "{}",
        blocker.header
    );
    assert!(blocker.header.contains("state S"), "{}", blocker.header);
    let figures = report.section("Report").expect("Report section");
    assert!(figures.contains("1 unresponsive"), "{figures}");
    // The others are complete, and the next round is just as good.
    report
        .thread_named("sleeper")
        .assert_frames_in_order(&["fixture::sleeping_in_std_sleep"]);
    fx.signal(libc::SIGUSR2);
    let second = fx.wait_for_reports(2, WAIT).remove(1);
    second
        .thread_named("mutex-waiter")
        .assert_frames_in_order(&["fixture::waiting_on_mutex"]);
    // The first round's capture signal is still queued for the blocker: no
    // second one is sent (real-time signals would pile up round after round).
    let header = &second.thread_named("blocker").header;
    assert!(header.contains("still pending"), "{header}");
}

#[test]
fn more_threads_than_slots_are_counted_as_left_out() {
    let (fx, threads) = start(&["--max-threads", "4", "--idle", "3"]);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    assert_eq!(report.threads.len(), 4, "{}", report.text);
    let left_out = threads.len() - 4;
    assert!(
        report
            .text
            .contains(&format!("------ {left_out} more threads left out")),
        "{}",
        report.text
    );
    let figures = report.section("Report").expect("Report section");
    assert!(
        figures.contains(&format!("{left_out} left out (capacity 4)")),
        "{figures}"
    );
}

#[test]
fn small_frame_capacity_truncates_and_says_so() {
    let (fx, _threads) = start(&["--max-frames", "3"]);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    for t in &report.threads {
        assert!(t.frames.len() <= 3, "{t:?}");
    }
    let sleeper = report.thread_named("sleeper");
    assert!(
        sleeper.notes.iter().any(|n| n.contains("stack truncated")),
        "{sleeper:?}"
    );
}

#[test]
fn repeated_triggers_all_end_in_complete_reports() {
    let (mut fx, _threads) = start(&[]);
    for _ in 0..50 {
        fx.signal(libc::SIGUSR2);
    }
    // Standard signals do not queue: at least one report, each complete, the
    // process alive and still answering.
    let reports = fx.wait_for_reports(1, WAIT);
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.sequence, i as u64 + 1);
    }
    assert!(fx.is_alive());
    assert_eq!(fx.allocations(WAIT), 0);
    let begins = fx
        .stderr_text()
        .matches("==== Guru Meditation ====")
        .count();
    let ends = fx
        .stderr_text()
        .matches("==== End of Guru Meditation ====")
        .count();
    assert_eq!(begins, ends, "every report that began also ended");
}
