//! The report model (`guru::model`) over real crash and panic reports
//! (issue 12): `crash_fixture` crashes or panics on command; its text report
//! must read back with `Report::from_text` into a model carrying the crash
//! (`Trigger::Crash` / `Trigger::Panic`, the crashed or panicking thread
//! first with its `ThreadMark`) and render to the same text byte for byte;
//! its JSON report must read back with `Report::from_json` into the same
//! JSON value, validate against the checked-in schema, and render to text
//! that reads back and renders the same again. The core's own crash report
//! (core-only install, and the `abort` path with `from pid`) must read back
//! too.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use guru::model::{Content, Data, Report, Thread, ThreadMark, Trigger};
use guru_tests::model_round_trip::{self, text_round_trip};
use guru_tests::{Fixture, parse_reports, watchdog};
use serde_json::Value;

const FIXTURE: &str = env!("CARGO_BIN_EXE_crash_fixture");
const WAIT: Duration = Duration::from_secs(60);

/// Runs `crash_fixture <args>`, says `go`, waits until it dies (a crash)
/// or, with `lives`, until `lives` appears on stderr; returns its stderr.
/// The crash deadline is 20 s unless `args` say: the std report's first
/// symbolization, on a loaded machine in a debug build, may take longer
/// than the default's two-thirds share (then the core's fallback report
/// comes instead).
fn run(args: &[&str], lives: Option<&str>) -> String {
    watchdog(Duration::from_secs(600));
    let mut args = args.to_vec();
    if !args.contains(&"--deadline-ms") {
        args.extend_from_slice(&["--deadline-ms", "20000"]);
    }
    let mut fx = Fixture::spawn_with_env(FIXTURE, &args, &[("RUST_BACKTRACE", "0")]);
    fx.wait_for_line("ready pid=", WAIT);
    fx.send_line("go");
    let deadline = Instant::now() + WAIT;
    loop {
        let done = match lives {
            Some(needle) => fx.stderr_text().contains(needle),
            None => !fx.is_alive(),
        };
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?}: not done within {WAIT:?}\nstderr:\n{}",
            fx.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the stderr reader catch up with the last bytes.
    std::thread::sleep(Duration::from_millis(100));
    let stderr = fx.stderr_text();
    let _ = fx.finish(WAIT);
    stderr
}

/// The one text report in `stderr`, as written (with its final newline).
fn text_report(stderr: &str) -> String {
    let reports = parse_reports(stderr);
    assert_eq!(reports.len(), 1, "expected one report:\n{stderr}");
    format!("{}\n", reports[0].text)
}

/// The one JSON report line in `stderr`.
fn json_report(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with('{') && l.ends_with('}'))
        .collect();
    assert_eq!(lines.len(), 1, "expected one JSON report:\n{stderr}");
    lines[0].to_string()
}

/// JSON → from_json → the same value, valid against the schema, and its
/// text reads back and renders the same again; returns the model.
fn json_round_trip(line: &str) -> Report {
    let model = model_round_trip::json_round_trip(line);
    text_round_trip(&model.to_text());
    model
}

fn threads(r: &Report) -> &[Thread] {
    match r.section("Threads").map(|s| &s.content) {
        Some(Content::Ok(Data::Threads(t))) => &t.threads,
        other => panic!("no Threads data: {other:?}"),
    }
}

fn requested_by(r: &Report) -> Option<&Trigger> {
    match r.section("Report").map(|s| &s.content) {
        Some(Content::Ok(Data::Report(f))) => f.requested_by.as_ref(),
        other => panic!("no Report data: {other:?}"),
    }
}

/// The crash trigger's signal, code name, fault address (or sender) and
/// thread; the first thread is that thread, marked with the same crash.
fn check_crash(r: &Report, signal: i32, code: &str, fault: bool) -> Trigger {
    let Trigger::Crash {
        signal: s,
        si_code_name,
        fault_address,
        sender_pid,
        thread,
        thread_name,
        ..
    } = &r.trigger
    else {
        panic!("not a crash trigger: {:?}", r.trigger);
    };
    assert_eq!(*s, signal);
    assert_eq!(si_code_name.as_deref(), Some(code));
    assert_eq!(fault_address.is_some(), fault, "{:?}", r.trigger);
    assert_eq!(sender_pid.is_some(), !fault, "{:?}", r.trigger);
    assert_eq!(thread_name, "crasher");
    let first = &threads(r)[0];
    assert_eq!(first.tid, *thread);
    assert_eq!(first.state, "crashed");
    match &first.mark {
        Some(ThreadMark::Crashed {
            signal: s,
            si_code_name: c,
            fault_address: a,
            ..
        }) => {
            assert_eq!((*s, c.as_deref(), a), (signal, Some(code), fault_address));
        }
        other => panic!("first thread not marked crashed: {other:?}"),
    }
    assert!(
        threads(r)[1..].iter().all(|t| t.mark.is_none()),
        "only the crashed thread is marked"
    );
    r.trigger.clone()
}

/// The crashed (or panicking) thread's context: the fixture's label and
/// breadcrumb, copied for it by the crash helper (it did not run a capture
/// handler) or by its own panic-hook round.
fn check_context(r: &Report) {
    let first = &threads(r)[0];
    let c = first
        .context
        .as_ref()
        .unwrap_or_else(|| panic!("no context on {first:?}"));
    assert!(
        c.labels
            .iter()
            .any(|l| l.key == "job" && l.value == "crash-test"),
        "{c:?}"
    );
    assert!(
        c.breadcrumbs.iter().any(|b| b.text == "about to crash"),
        "{c:?}"
    );
}

#[test]
fn std_crash_text_reports_round_trip() {
    // A fault (address), and a stack overflow (reported before Rust's
    // overflow handler aborts: no "then SIGABRT").
    let text = text_report(&run(&["null", "--guru", "std"], None));
    let model = text_round_trip(&text);
    let trigger = check_crash(&model, libc::SIGSEGV, "SEGV_MAPERR", true);
    check_context(&model);
    // The Report section names the same crash (its time is not in the text).
    let mut by = requested_by(&model).cloned().expect("requested by");
    if let (Trigger::Crash { time: a, .. }, Trigger::Crash { time: b, .. }) = (&mut by, &trigger) {
        a.clone_from(b);
    }
    assert_eq!(by, trigger);
    assert!(
        text.contains("\n  after this report the process dies by the signal's own action"),
        "{text}"
    );

    let text = text_report(&run(&["overflow", "--guru", "std"], None));
    let model = text_round_trip(&text);
    let Trigger::Crash { then_signal, .. } =
        check_crash(&model, libc::SIGSEGV, "SEGV_ACCERR", true)
    else {
        unreachable!()
    };
    assert_eq!(then_signal, None, "{text}");
}

#[test]
fn std_crash_json_report_round_trips_and_matches_the_schema() {
    let line = json_report(&run(&["ill", "--guru", "std", "--json"], None));
    let model = json_round_trip(&line);
    check_crash(&model, libc::SIGILL, "ILL_ILLOPN", true);
    check_context(&model);
    assert_eq!(requested_by(&model), Some(&model.trigger));
    let doc: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(doc["trigger"]["kind"], "crash");
    assert_eq!(doc["trigger"]["si_code_name"], "ILL_ILLOPN");
    let first = &doc["sections"][1]["data"]["threads"][0];
    assert_eq!(first["mark"]["kind"], "crashed", "{first:#}");
}

#[test]
fn core_crash_reports_round_trip() {
    // Core-only install: the core renders the report (no std sections).
    let text = text_report(&run(&["null", "--guru", "core"], None));
    let model = text_round_trip(&text);
    let names: Vec<&str> = model.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(names, ["Threads", "Modules", "Report"]);
    check_crash(&model, libc::SIGSEGV, "SEGV_MAPERR", true);
    check_context(&model);
    assert!(requested_by(&model).is_none());
    // The crash's own time comes from the Report section's `crash:` line.
    let Trigger::Crash { time, .. } = &model.trigger else {
        unreachable!()
    };
    assert!(
        text.contains(&format!("\"crasher\" at {time}\n")),
        "{time} not in:\n{text}"
    );

    // abort(): a signal the process sent itself (`from pid`, SI_TKILL).
    let text = text_report(&run(&["abort", "--guru", "core"], None));
    let model = text_round_trip(&text);
    let Trigger::Crash { sender_pid, .. } = check_crash(&model, libc::SIGABRT, "SI_TKILL", false)
    else {
        unreachable!()
    };
    assert_eq!(sender_pid, Some(model.pid));
}

/// The std adapter cannot write (a thread holds the allocator's lock): the
/// core's fallback report lists the std adapter's sections as failed, with
/// why, and reads back like any core crash report.
#[test]
fn core_fallback_crash_report_lists_what_is_missing_and_round_trips() {
    let stderr = run(
        &["alloc-lock", "--guru", "std", "--deadline-ms", "1500"],
        None,
    );
    assert!(
        stderr.contains("guru: the std reporter did not write the crash report within 1000 ms"),
        "{stderr}"
    );
    let text = text_report(&stderr);
    let model = text_round_trip(&text);
    check_crash(&model, libc::SIGSEGV, "SEGV_MAPERR", true);
    let names: Vec<&str> = model.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        names,
        [
            "Package",
            "Threads",
            "Configuration",
            "Process",
            "Modules",
            "Report"
        ]
    );
    for title in ["Package", "Configuration", "Process"] {
        match model.section(title).map(|s| &s.content) {
            Some(Content::Failed { error, .. }) => assert!(
                error.starts_with(
                    "missing: the std reporter did not write this crash report within 1000 ms"
                ),
                "{title}: {error}"
            ),
            other => panic!("{title} not failed: {other:?}"),
        }
    }
}

#[test]
fn panic_reports_round_trip_in_both_formats() {
    let check = |r: &Report| {
        let Trigger::Panic {
            message,
            location,
            thread,
            thread_name,
            min_interval_ms,
            ..
        } = &r.trigger
        else {
            panic!("not a panic trigger: {:?}", r.trigger);
        };
        assert_eq!(message, "fixture panic 7");
        assert!(location.contains("crash_fixture.rs:"), "{location}");
        assert_eq!(thread_name, "crasher");
        assert_eq!(*min_interval_ms, 1000);
        let first = &threads(r)[0];
        assert_eq!(first.tid, *thread);
        assert_eq!(first.mark, Some(ThreadMark::Panicking));
        assert!(first.writing_report);
        check_context(r);
        // From text the trigger is completed from the Report section.
        assert_eq!(requested_by(r), Some(&r.trigger));
    };
    let text = text_report(&run(&["panic", "--guru", "std"], Some("==== End of Guru")));
    let model = text_round_trip(&text);
    check(&model);

    let stderr = run(&["panic", "--guru", "std", "--json"], Some("}\n"));
    let model = json_round_trip(&json_report(&stderr));
    check(&model);
}
