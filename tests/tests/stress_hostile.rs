//! Hostile threads: one blocking the capture signal, short-lived threads that
//! exit in the middle of rounds, a spinner without calls, a thread near the
//! end of its stack, one running on a large (mapped) alternate signal stack
//! and one on a small alternate stack carved out of the heap. Reports keep
//! coming out whole, each hostile thread is described correctly, the heap
//! (checksummed buffers, and the bytes right below the heap alternate stack)
//! is intact, and no handler path allocates.
#![cfg(target_os = "linux")]

use std::time::Duration;

use guru_tests::stress::{self, Stress};
use guru_tests::{Report, ThreadBlock};

const FIXTURE: &str = env!("CARGO_BIN_EXE_stress_fixture");

fn block<'r>(report: &'r Report, name: &str) -> &'r ThreadBlock {
    report.thread_named(name)
}

fn check_hostile_report(r: &Report) {
    let blocker = block(r, "blocker");
    assert!(
        blocker.frames.is_empty()
            && (blocker.header.contains("unresponsive") || blocker.header.contains("pending")),
        "blocker: {}",
        blocker.header
    );

    // The spinner is always interrupted inside its own function, and the
    // unwinder walks on from there to the thread's start.
    let spinner = block(r, "spinner");
    assert!(
        spinner
            .frames
            .first()
            .is_some_and(|f| f.contains("spin_without_calls")),
        "spinner:\n{}",
        spinner.frames.join("\n")
    );
    assert!(
        spinner.frames.len() > 2,
        "spinner unwound past its function"
    );

    // Too little stack left: listed, not unwound, not crashed.
    for name in ["stack-end", "altstack-heap"] {
        let t = block(r, name);
        assert_eq!(t.frames.len(), 1, "{name}: only the interrupted pc");
        assert!(
            t.notes
                .iter()
                .any(|n| n.contains("not unwound: stack nearly exhausted")),
            "{name}: {:?}",
            t.notes
        );
    }

    // A roomy alternate stack unwinds through the SA_ONSTACK handler.
    block(r, "altstack-big").assert_frames_in_order(&["spinning_on_altstack", "altstack_handler"]);

    for w in ["worker-0", "worker-1"] {
        assert!(!block(r, w).frames.is_empty(), "{w} captured");
    }
}

#[test]
fn hostile_threads_do_not_break_reports() {
    let mut s = Stress::start(
        FIXTURE,
        &["--mode", "hostile", "--deadline-ms", "1000"],
        &[],
    );
    let pid = s.fx.pid();
    let headroom: u64 =
        s.fx.stdout_seen
            .iter()
            .find_map(|l| l.strip_prefix("stack-end headroom "))
            .and_then(|v| v.parse().ok())
            .expect("stack-end headroom line");
    assert!(headroom < guru_core::capture::MIN_STACK_FOR_UNWIND);

    // Reports one at a time...
    let mut reports = Vec::new();
    for seq in 1..=8 {
        reports.push(s.one_report(seq));
    }
    // ...then a storm while threads keep coming and going.
    let (_, sent) = stress::storm(pid, s.trigger, 2, Duration::from_secs(1), 500, false);
    // Quiet for longer than the round deadline (1 s): a round waiting on the
    // thread that blocks the capture signal writes nothing until its deadline,
    // so a shorter quiet window could end while a report is still on its way.
    let all = s.settle(Duration::from_millis(2500));
    let (begins, ends) = stress::count_frames(&s.fx.stderr_text());
    assert_eq!(begins, ends);
    assert_eq!(begins, all.len());
    stress::assert_consecutive(&all, pid);
    for r in &all {
        check_hostile_report(r);
    }
    let exited = all
        .iter()
        .flat_map(|r| &r.threads)
        .filter(|t| t.name == "churn-child")
        .count();

    let (_, errors, _) = s.stats();
    assert_eq!(
        errors,
        0,
        "heap corrupted:\n{}",
        stress::tail(&s.fx.stderr_text(), 2000)
    );
    assert!(s.fx.is_alive());
    s.fx.send_line("exit");
    assert!(s.fx.finish(stress::WAIT).success());
    eprintln!(
        "hostile: {} reports ({sent} triggers in the storm), {exited} short-lived thread entries",
        all.len()
    );
}

/// tgkill(2): sends `signal` to one thread of another process.
fn signal_thread(pid: i32, tid: i32, signal: i32) {
    // SAFETY: tgkill on a thread of a process this test started.
    #[allow(unsafe_code)]
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal) };
    assert_eq!(r, 0, "tgkill {pid} {tid} {signal}");
}

#[test]
fn trigger_on_a_thread_short_of_stack_is_counted_not_fatal() {
    // In core-only mode the trigger handler builds the whole report on the
    // stack of the thread that took the signal; with ~12 KiB left that used
    // to overflow it and abort the process. Deliver the trigger to exactly
    // that thread, and to the one on the small heap alternate stack.
    let mut s = Stress::start(
        FIXTURE,
        &[
            "--mode",
            "hostile",
            "--deadline-ms",
            "1000",
            "--stack-end-headroom",
            "12288",
            "--stack-end-takes-trigger",
        ],
        &[],
    );
    let pid = s.fx.pid();
    let stack_end = s.threads["stack-end"];
    signal_thread(pid, stack_end, s.trigger);
    let deadline = std::time::Instant::now() + stress::WAIT;
    while !s.fx.stderr_text().contains("trigger not served") {
        assert!(s.fx.is_alive(), "{}", s.fx.stderr_text());
        assert!(std::time::Instant::now() < deadline, "no note");
        std::thread::sleep(Duration::from_millis(10));
    }
    let note =
        s.fx.stderr_text()
            .lines()
            .find(|l| l.contains("trigger not served"))
            .map(str::to_string)
            .expect("note");
    assert!(
        note.starts_with(&format!("guru: trigger not served on thread {stack_end}: ")),
        "{note}"
    );
    // The next trigger, taken by a thread with room, reports the refused one
    // as coalesced (and the refusal used no report number).
    signal_thread(pid, s.threads["worker-0"], s.trigger);
    let report = loop {
        if let Some(r) = guru_tests::parse_reports(&s.fx.stderr_text()).pop() {
            break r;
        }
        assert!(s.fx.is_alive() && std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(report.sequence, 1);
    assert_eq!(stress::coalesced(&report), 1, "{}", report.text);
    assert!(
        block(&report, "stack-end")
            .notes
            .iter()
            .any(|n| n.contains("stack nearly exhausted"))
    );
    assert!(s.fx.is_alive());
    s.fx.send_line("exit");
    assert!(s.fx.finish(stress::WAIT).success());
}

#[test]
fn threads_exiting_mid_round_do_not_hold_it_to_its_deadline() {
    // Threads that are signalled and exit before handling the signal never
    // answer. The deadline here is a minute, and each report must come out
    // within half of that: a round that waited for such a thread would not.
    // Each one must be noticed as gone and given up at once. Rounds run
    // until one has had such a thread.
    let mut s = Stress::start(FIXTURE, &["--mode", "errno", "--deadline-ms", "60000"], &[]);
    let pid = s.fx.pid();
    let mut seen = None;
    for seq in 1..=400 {
        let limit = std::time::Instant::now() + Duration::from_secs(30);
        let mut resend = std::time::Instant::now();
        let r = loop {
            // A trigger landing just as the previous round lets go is only
            // coalesced, so it is sent again if no report follows.
            if std::time::Instant::now() >= resend {
                stress::send(pid, s.trigger, false);
                resend = std::time::Instant::now() + Duration::from_secs(2);
            }
            let reports = guru_tests::parse_reports(&s.fx.stderr_text());
            if let Some(r) = reports.into_iter().nth(seq - 1) {
                break r;
            }
            assert!(
                std::time::Instant::now() < limit,
                "report #{seq} did not come out within 30 s of its trigger (deadline 60 s):\n{}",
                stress::tail(&s.fx.stderr_text(), 3000)
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        if r.figure("threads:", "unresponsive") > 0 {
            seen = Some(r);
            break;
        }
    }
    let r = seen.expect("in 400 rounds no thread exited between its signal and its answer");
    // Every thread that did not answer is one that exited (nothing in this
    // mode blocks the capture signal), listed as such.
    let gone = r
        .threads
        .iter()
        .filter(|t| t.header.contains("exited during the report"))
        .count() as u64;
    assert!(gone >= r.figure("threads:", "unresponsive"), "{}", r.text);
    assert!(s.fx.is_alive());
    s.fx.send_line("exit");
    assert!(s.fx.finish(stress::WAIT).success());
}
