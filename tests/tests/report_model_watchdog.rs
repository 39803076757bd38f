//! The report model over real watchdog reports (issue 14 on the model of
//! issue 11): an automatic report for a missed heartbeat (its stall in the
//! begin line and the Report section, the stalled thread first and marked,
//! the heartbeats, threads with the same stack as the report before), the
//! manual report after it that says the heartbeat recovered (and lists the
//! watchdog among its recent triggers), and the automatic report for a
//! tokio worker blocked in a poll (its stalled worker in Green Threads).
//! Text reports must read back into the model and render to the same text
//! byte for byte; JSON reports must read into the model, serialize to the
//! same JSON value and validate against the checked-in JSON Schema.
#![cfg(target_os = "linux")]

use std::time::Duration;

use guru::model::{Content, Data, Figures, Report, Stalled, Trigger, WatchdogNotes};
use guru_tests::Fixture;
use guru_tests::model_round_trip::{self, json_report_lines, text_round_trip};

const FIXTURE: &str = env!("CARGO_BIN_EXE_watchdog_fixture");
/// Generous: test builds are unoptimized; the machine is shared.
const WAIT: Duration = Duration::from_secs(60);

fn spawn(args: &[&str], json: bool) -> Fixture {
    guru_tests::watchdog(Duration::from_secs(300));
    let mut env = vec![("RUST_BACKTRACE", "0")];
    if json {
        env.push(("WATCHDOG_FIXTURE_JSON", "1"));
    }
    let mut fx = Fixture::spawn_with_env(FIXTURE, args, &env);
    fx.wait_for_line("ready", WAIT);
    fx
}

/// The text reports so far (with their final newline), at least `n`.
fn text_reports(fx: &Fixture, n: usize) -> Vec<String> {
    fx.wait_for_reports(n, WAIT)
        .into_iter()
        .map(|r| format!("{}\n", r.text))
        .collect()
}

/// The JSON reports so far (one line each), at least `n`.
fn json_reports(fx: &Fixture, n: usize) -> Vec<String> {
    json_report_lines(fx, n, WAIT)
}

/// JSON → from_json → serde is the same value, it validates against the
/// checked-in schema, and the model's text reads back into itself; returns
/// the model.
fn json_round_trip(line: &str) -> Report {
    let model = model_round_trip::json_round_trip(line);
    text_round_trip(&model.to_text());
    model
}

fn figures(r: &Report) -> &Figures {
    match r.section("Report").map(|s| &s.content) {
        Some(Content::Ok(Data::Report(f))) => f,
        other => panic!("no Report data: {other:?}"),
    }
}

fn notes(r: &Report) -> &WatchdogNotes {
    figures(r)
        .watchdog
        .as_ref()
        .unwrap_or_else(|| panic!("no watchdog notes in {r:#?}"))
}

fn threads(r: &Report) -> &[guru::model::Thread] {
    match r.section("Threads").map(|s| &s.content) {
        Some(Content::Ok(Data::Threads(t))) => &t.threads,
        other => panic!("no Threads data: {other:?}"),
    }
}

/// The automatic report for heartbeat "event-loop" (thread `tid`): its
/// trigger, the stalled thread first, the heartbeat stalled, and threads
/// that did not move since report #1 (the process's main thread, blocked
/// reading its stdin) marked with the same stack.
fn check_stall_report(r: &Report, tid: i32) {
    let Trigger::Watchdog(stall) = &r.trigger else {
        panic!("not a watchdog trigger: {:?}", r.trigger);
    };
    assert_eq!(
        stall.what,
        Stalled::Heartbeat {
            heartbeat: "event-loop".into()
        }
    );
    assert_eq!(stall.tid, Some(tid));
    assert_eq!(stall.thread_name.as_deref(), Some("event-loop"));
    assert!(stall.silent_ns >= 300_000_000, "{stall:?}");
    assert_eq!(figures(r).requested_by.as_ref(), Some(&r.trigger));
    let t = threads(r);
    assert_eq!(t[0].tid, tid, "the stalled thread first");
    assert!(t[0].stalled);
    assert_eq!(t.iter().filter(|t| t.stalled).count(), 1);
    let n = notes(r);
    assert!(n.min_interval_ns.is_some(), "{n:?}");
    let hb = n
        .heartbeats
        .iter()
        .find(|h| h.name == "event-loop")
        .unwrap_or_else(|| panic!("{n:?}"));
    assert!(hb.stalled && hb.tid == tid, "{hb:?}");
    let main = t.iter().find(|t| t.tid == r.pid).expect("the main thread");
    let same = main
        .same_stack
        .unwrap_or_else(|| panic!("main thread not marked stuck: {main:?}"));
    assert_eq!(same.as_report, 1, "{same:?}");
    assert!(
        t.iter().filter(|t| t.captured).all(|t| t.cpu_ns.is_some()),
        "every captured thread has its CPU time"
    );
}

/// The manual report after the heartbeat beat again: it says so, and lists
/// the automatic report among its recent triggers (`si_code` 3).
fn check_recovery_report(r: &Report) {
    let n = notes(r);
    let rec = n
        .recovered
        .iter()
        .find(|x| {
            x.what
                == Stalled::Heartbeat {
                    heartbeat: "event-loop".into(),
                }
        })
        .unwrap_or_else(|| panic!("no recovery in {n:?}"));
    assert!(rec.reported, "{rec:?}");
    assert!(rec.silent_ns >= 2_000_000_000, "{rec:?}");
    assert!(
        n.heartbeats.iter().all(|h| !h.stalled),
        "{:?}",
        n.heartbeats
    );
    assert!(
        figures(r)
            .recent_triggers
            .iter()
            .any(|t| t.signal == 0 && t.si_code == 3 && t.started_report),
        "{:?}",
        figures(r).recent_triggers
    );
}

/// Runs the heartbeat scenario: baseline report, a 2.5 s wedge (automatic
/// report), then a manual report after it resumed. Returns the three
/// reports' texts (or JSON lines) and the heartbeat's thread.
fn heartbeat_scenario(json: bool) -> (Vec<String>, i32) {
    let mut fx = spawn(&["heartbeat", "300", "1000"], json);
    let tid = fx.announced_threads()["event-loop"];
    let reports = |fx: &Fixture, n| {
        if json {
            json_reports(fx, n)
        } else {
            text_reports(fx, n)
        }
    };
    fx.signal(libc::SIGUSR2);
    reports(&fx, 1);
    fx.send_line("sleep 2500");
    fx.wait_for_line("wedged", WAIT);
    reports(&fx, 2);
    fx.wait_for_line("resumed", WAIT);
    fx.signal(libc::SIGUSR2);
    let all = reports(&fx, 3);
    assert_eq!(all.len(), 3, "one automatic report:\n{}", fx.stderr_text());
    (all, tid)
}

#[test]
fn heartbeat_text_reports_round_trip_with_the_stall_stuck_threads_and_recovery() {
    let (texts, tid) = heartbeat_scenario(false);
    assert!(
        texts[1].contains(" triggered by watchdog: heartbeat \"event-loop\" missed its 300 ms"),
        "{}",
        texts[1]
    );
    for t in &texts {
        text_round_trip(t);
    }
    check_stall_report(&text_round_trip(&texts[1]), tid);
    let recovery = text_round_trip(&texts[2]);
    check_recovery_report(&recovery);
    assert!(
        texts[2].contains(": the watchdog (started a report)\n"),
        "{}",
        texts[2]
    );
}

#[test]
fn heartbeat_json_reports_round_trip_and_match_the_schema() {
    let (lines, tid) = heartbeat_scenario(true);
    for l in &lines {
        json_round_trip(l);
    }
    let stall = json_round_trip(&lines[1]);
    check_stall_report(&stall, tid);
    // JSON carries what text does not: every thread's stack hash.
    assert!(
        threads(&stall)
            .iter()
            .filter(|t| t.captured)
            .all(|t| t.stack_hash.is_some())
    );
    check_recovery_report(&json_round_trip(&lines[2]));
}

/// A task blocks a worker of runtime "rt" for 2.5 s: one automatic report
/// naming the worker and its thread, with the worker stalled in Green
/// Threads; then a manual report that says it recovered.
fn tokio_scenario(json: bool) -> (Report, Report, i32) {
    let mut fx = spawn(&["tokio", "300"], json);
    let reports = |fx: &Fixture, n| {
        if json {
            json_reports(fx, n)
                .iter()
                .map(|l| json_round_trip(l))
                .collect::<Vec<_>>()
        } else {
            text_reports(fx, n)
                .iter()
                .map(|t| text_round_trip(t))
                .collect()
        }
    };
    fx.send_line("block 2500");
    let line = fx.wait_for_line("blocking ", WAIT);
    let tid: i32 = line["blocking ".len()..].trim().parse().unwrap();
    let stall = reports(&fx, 1).remove(0);
    fx.wait_for_line("unblocked", WAIT);
    // The watch sees the worker move again at its next sample.
    std::thread::sleep(Duration::from_millis(300));
    fx.signal(libc::SIGUSR2);
    let all = reports(&fx, 2);
    assert_eq!(all.len(), 2, "one automatic report:\n{}", fx.stderr_text());
    (stall, all[1].clone(), tid)
}

fn check_tokio_reports(stall: &Report, after: &Report, tid: i32) {
    let Trigger::Watchdog(s) = &stall.trigger else {
        panic!("not a watchdog trigger: {:?}", stall.trigger);
    };
    let Stalled::TokioWorker { runtime, worker } = &s.what else {
        panic!("not a tokio stall: {s:?}");
    };
    assert_eq!(runtime, "rt");
    assert_eq!(s.tid, Some(tid), "{s:?}");
    assert_eq!(s.deadline_ns, 300_000_000);
    assert!(threads(stall)[0].tid == tid && threads(stall)[0].stalled);
    let Some(Content::Ok(Data::GreenThreads(g))) =
        stall.section("Green Threads").map(|s| &s.content)
    else {
        panic!("no Green Threads data");
    };
    let rt = g.runtimes.iter().find(|r| r.name == "rt").expect("rt");
    assert!(
        rt.stalled_workers
            .iter()
            .any(|w| w.worker == *worker && w.tid == Some(tid)),
        "{:?}",
        rt.stalled_workers
    );
    let n = notes(after);
    assert!(
        n.recovered.iter().any(|r| r.reported
            && !r.runtime_unregistered
            && r.deadline_ns == 300_000_000
            && r.what == s.what),
        "{n:?}"
    );
}

#[test]
fn tokio_stall_reports_round_trip_in_both_formats() {
    let (stall, after, tid) = tokio_scenario(false);
    check_tokio_reports(&stall, &after, tid);
    let (stall, after, tid) = tokio_scenario(true);
    check_tokio_reports(&stall, &after, tid);
}
