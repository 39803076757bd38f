//! The stall watchdog end to end (`tests/src/bin/watchdog_fixture.rs`):
//! heartbeats that stop, flap, are dropped; a stall in a blocking call, a
//! spin loop, holding a lock others wait for; a tokio worker blocked in a
//! poll, and a whole runtime blocked (both workers, with a heartbeat beaten
//! by a task); stuck and spinning threads across two manual reports.
//!
//! Each test first takes one manual report and waits for it: the reporter
//! thread then runs its loop (it indexes debug info first) and symbols are
//! warm, so what follows is about the watchdog, not start-up.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use guru_tests::{Fixture, Report, watchdog};

const FIXTURE: &str = env!("CARGO_BIN_EXE_watchdog_fixture");
/// Generous: test builds are unoptimized; the machine is shared.
const WAIT: Duration = Duration::from_secs(60);

fn start(args: &[&str]) -> Fixture {
    watchdog(Duration::from_secs(240));
    let mut fx = Fixture::spawn_with_env(FIXTURE, args, &[("RUST_BACKTRACE", "0")]);
    fx.wait_for_line("ready", WAIT);
    // The baseline report.
    fx.signal(libc::SIGUSR2);
    fx.wait_for_reports(1, WAIT);
    fx
}

fn begin_line(r: &Report) -> &str {
    r.text.lines().next().unwrap_or("")
}

fn automatic(reports: &[Report]) -> Vec<&Report> {
    reports
        .iter()
        .filter(|r| begin_line(r).contains("triggered by watchdog:"))
        .collect()
}

/// Waits for a report after the `n` seen so far, triggered by SIGUSR2.
fn manual_report(fx: &Fixture, n: usize) -> Report {
    fx.signal(libc::SIGUSR2);
    let reports = fx.wait_for_reports(n + 1, WAIT);
    let r = reports.last().unwrap().clone();
    assert!(
        begin_line(&r).contains("triggered by SIGUSR2"),
        "expected a manual report:\n{}",
        r.text
    );
    r
}

/// The checks every stall report passes: one report, its begin line and
/// Report section name the heartbeat, the stalled thread is first and
/// marked, in `function`.
fn assert_stall_report(r: &Report, tid: i32, function: &str) {
    let begin = begin_line(r);
    let expect = "watchdog: heartbeat \"event-loop\" missed its 300 ms deadline (last beat ";
    assert!(begin.contains(expect), "begin line: {begin}");
    assert!(
        begin.contains(&format!("thread {tid} \"event-loop\")")),
        "begin line: {begin}"
    );
    let section = r.section("Report").expect("Report section");
    assert!(section.contains(expect), "Report section:\n{section}");
    let first = &r.threads[0];
    assert_eq!(first.tid, tid, "stalled thread first:\n{}", r.text);
    assert!(first.header.contains("; stalled)"), "{}", first.header);
    assert!(
        first
            .notes
            .iter()
            .any(|n| n.starts_with("stalled: heartbeat \"event-loop\"")),
        "{:?}",
        first.notes
    );
    assert!(
        first.frame_index(function).is_some(),
        "{function} not in the stalled thread's frames:\n{}",
        first.frames.join("\n")
    );
}

#[test]
fn beating_heartbeat_gives_no_report() {
    let fx = start(&["heartbeat", "300", "1000"]);
    std::thread::sleep(Duration::from_secs(2));
    let r = manual_report(&fx, 1);
    let all = fx.wait_for_reports(2, WAIT);
    assert_eq!(all.len(), 2, "{}", fx.stderr_text());
    assert!(automatic(&all).is_empty(), "{}", fx.stderr_text());
    let section = r.section("Report").unwrap();
    assert!(
        section.contains("heartbeat \"event-loop\": deadline 300 ms, last beat"),
        "{section}"
    );
    assert!(!section.contains(", stalled"), "{section}");
}

#[test]
fn stopped_heartbeat_gives_one_report_then_recovers() {
    let mut fx = start(&["heartbeat", "300", "1000"]);
    let tid = fx.announced_threads()["event-loop"];
    fx.send_line("sleep 2500");
    fx.wait_for_line("wedged", WAIT);
    let wedged = Instant::now();
    // Within deadline + 1 s of the last beat (which came before "wedged").
    let reports = fx.wait_for_reports(2, Duration::from_millis(300 + 1000));
    let seen_after = wedged.elapsed();
    assert_stall_report(&reports[1], tid, "wedged_in_sleep");
    fx.wait_for_line("resumed", WAIT);
    // No second report for the same stall.
    let all = fx.wait_for_reports(2, WAIT);
    assert_eq!(automatic(&all).len(), 1, "{}", fx.stderr_text());
    assert_eq!(all.len(), 2, "{}", fx.stderr_text());
    let r = manual_report(&fx, 2);
    let section = r.section("Report").unwrap();
    assert!(
        section.contains("watchdog: heartbeat \"event-loop\" recovered after 2."),
        "{section}"
    );
    assert!(section.contains("its stall was reported"), "{section}");
    eprintln!("automatic report seen {seen_after:?} after the wedge began");
}

#[test]
fn flapping_heartbeat_stays_within_the_rate_limit() {
    // Five stalls of 700 ms, 300 ms apart, with one automatic report
    // allowed per 20 s: one report, four suppressed and counted.
    let mut fx = start(&["heartbeat", "300", "20000"]);
    fx.send_line("flap 5 700 300");
    fx.wait_for_line("flapped", WAIT);
    let r = manual_report(&fx, fx.wait_for_reports(1, WAIT).len());
    let all = fx.wait_for_reports(1, WAIT);
    assert_eq!(automatic(&all).len(), 1, "{}", fx.stderr_text());
    let section = r.section("Report").unwrap();
    assert!(
        section.contains("watchdog: 4 automatic reports suppressed by the rate limit"),
        "{section}"
    );
    assert_eq!(
        section.matches("held back by the rate limit").count(),
        4,
        "{section}"
    );
}

#[test]
fn stall_holding_a_mutex_others_wait_on() {
    let mut fx = start(&["heartbeat", "300", "1000"]);
    let threads = fx.announced_threads();
    fx.send_line("lock 2000");
    fx.wait_for_line("wedged", WAIT);
    let reports = fx.wait_for_reports(2, Duration::from_millis(1300));
    let r = &reports[1];
    assert_stall_report(r, threads["event-loop"], "wedged_holding_lock");
    for w in ["waiter-1", "waiter-2"] {
        let t = r.thread_named(w);
        assert!(
            t.frame_index("lock_contended").is_some() || t.header.contains("futex"),
            "{w} is not waiting for the lock:\n{}\n{}",
            t.header,
            t.frames.join("\n")
        );
    }
}

#[test]
fn stall_in_a_spin_loop() {
    let mut fx = start(&["heartbeat", "300", "1000"]);
    let tid = fx.announced_threads()["event-loop"];
    fx.send_line("spin 2000");
    fx.wait_for_line("wedged", WAIT);
    let reports = fx.wait_for_reports(2, Duration::from_millis(1300));
    assert_stall_report(&reports[1], tid, "wedged_spinning");
}

#[test]
fn dropped_heartbeat_gives_no_report() {
    let mut fx = start(&["heartbeat", "300", "1000"]);
    fx.send_line("drop");
    fx.wait_for_line("dropped", WAIT);
    fx.send_line("sleep 1500");
    fx.wait_for_line("resumed", WAIT);
    let r = manual_report(&fx, 1);
    let all = fx.wait_for_reports(2, WAIT);
    assert_eq!(all.len(), 2, "{}", fx.stderr_text());
    assert!(automatic(&all).is_empty(), "{}", fx.stderr_text());
    assert!(!r.text.contains("heartbeat \"event-loop\""), "{}", r.text);
}

#[test]
fn tokio_worker_blocked_in_a_poll_gives_one_report_naming_it() {
    let mut fx = start(&["tokio", "300"]);
    fx.send_line("block 2500");
    let line = fx.wait_for_line("blocking ", WAIT);
    let tid: i32 = line["blocking ".len()..].trim().parse().unwrap();
    fx.wait_for_line("unblocked", WAIT);
    let all = fx.wait_for_reports(2, WAIT);
    let auto = automatic(&all);
    assert_eq!(auto.len(), 1, "{}", fx.stderr_text());
    let r = auto[0];
    let begin = begin_line(r);
    assert!(
        begin.contains("watchdog: tokio runtime \"rt\" worker ")
            && begin.contains("has not come back to its scheduler for")
            && begin.contains(&format!("thread {tid} \"")),
        "{begin}"
    );
    assert_eq!(r.threads[0].tid, tid, "{}", r.text);
    assert!(
        r.threads[0].frame_index("blocking_in_poll").is_some(),
        "{}",
        r.text
    );
    let green = r.section("Green Threads").expect("Green Threads");
    assert!(
        green.contains("stalled: has not come back to its scheduler for")
            && green.contains(&format!("(thread {tid})")),
        "{green}"
    );
    // After it came back, the next report says so.
    let next = manual_report(&fx, all.len());
    let section = next.section("Report").unwrap();
    assert!(
        section.contains("watchdog: tokio runtime \"rt\" worker ")
            && section.contains("recovered after"),
        "{section}"
    );
}

#[test]
fn whole_tokio_runtime_blocked_still_fires_the_heartbeat_and_both_workers() {
    // A heartbeat beaten by a task, then both workers blocked in a poll:
    // nothing of the runtime runs, the watchdog (on guru's own thread)
    // reports the heartbeat once and each worker once.
    let mut fx = start(&["tokio", "300"]);
    fx.send_line("beat 300");
    fx.wait_for_line("beating", WAIT);
    std::thread::sleep(Duration::from_millis(200));
    fx.send_line("block-all 3000");
    fx.wait_for_line("all-blocked", WAIT);
    fx.wait_for_line("all-unblocked", WAIT);
    let all = fx.wait_for_reports(4, WAIT);
    let auto = automatic(&all);
    let heartbeat: Vec<_> = auto
        .iter()
        .filter(|r| begin_line(r).contains("watchdog: heartbeat \"tokio-beat\" missed its 300 ms"))
        .collect();
    assert_eq!(heartbeat.len(), 1, "{}", fx.stderr_text());
    let stalled = &heartbeat[0].threads[0];
    assert!(
        stalled.header.contains("; stalled)") && stalled.frame_index("blocking_in_poll").is_some(),
        "the heartbeat's last thread, a worker, blocked in the poll:\n{}",
        heartbeat[0].text
    );
    let mut workers: Vec<&str> = auto
        .iter()
        .filter_map(|r| {
            let b = begin_line(r);
            let rest = b.split("watchdog: tokio runtime \"rt\" worker ").nth(1)?;
            rest.split(' ').next()
        })
        .collect();
    workers.sort_unstable();
    assert_eq!(workers, ["0", "1"], "{}", fx.stderr_text());
}

#[test]
fn healthy_busy_runtime_gives_no_report() {
    let mut fx = start(&["tokio", "300"]);
    fx.send_line("busy 2500");
    fx.wait_for_line("busy-done", WAIT);
    std::thread::sleep(Duration::from_millis(500));
    manual_report(&fx, 1);
    let all = fx.wait_for_reports(2, WAIT);
    assert_eq!(all.len(), 2, "{}", fx.stderr_text());
    assert!(automatic(&all).is_empty(), "{}", fx.stderr_text());
}

/// `same stack as report #N (X s ago), CPU +Y`, parsed: (N, CPU in ms).
fn same_stack(r: &Report, name: &str) -> Option<(u64, f64)> {
    let t = r.thread_named(name);
    let line = t
        .notes
        .iter()
        .find(|n| n.starts_with("same stack as report #"))?;
    let n = line["same stack as report #".len()..]
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let cpu = line.split("CPU +").nth(1)?;
    let ms = if let Some(v) = cpu.strip_suffix(" ms") {
        v.parse::<f64>().ok()?
    } else {
        cpu.strip_suffix(" s")?.parse::<f64>().ok()? * 1000.0
    };
    Some((n, ms))
}

#[test]
fn stuck_detection_across_two_reports() {
    let mut fx = start(&["stuck"]);
    let first = fx.wait_for_reports(1, WAIT)[0].clone();
    assert!(first.thread_named("reader").header.contains("; cpu "));
    fx.send_line("move");
    fx.wait_for_line("moved", WAIT);
    std::thread::sleep(Duration::from_secs(1));
    let second = manual_report(&fx, 1);
    let seq = first.sequence;
    let (n, cpu) = same_stack(&second, "reader").unwrap_or_else(|| panic!("{}", second.text));
    assert_eq!(n, seq);
    assert_eq!(
        cpu, 0.0,
        "a thread blocked in read used CPU:\n{}",
        second.text
    );
    let (n, cpu) = same_stack(&second, "spinner").unwrap_or_else(|| panic!("{}", second.text));
    assert_eq!(n, seq);
    // It spins for the whole second between the reports; on a loaded
    // machine it may get a small share of a core, but never no tick at all.
    assert!(
        cpu >= 20.0,
        "the spinning thread's CPU did not grow:\n{}",
        second.text
    );
    assert_eq!(same_stack(&second, "mover"), None, "{}", second.text);
    // Every thread header shows its CPU time.
    for t in &second.threads {
        assert!(t.header.contains("; cpu "), "{}", t.header);
    }
}
