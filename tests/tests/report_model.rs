//! The report model (`guru::model`) over real reports: fixture processes are
//! signalled, and their text reports must read back into the model and
//! render to the same text byte for byte; their JSON reports must read into
//! the model and serialize to the same JSON value, and validate against the
//! checked-in JSON Schema (`docs/guru-report.schema.json`).
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use guru::model::{Content, Data, ElidedWhy, Kind, Report, TaskDump};
use guru_tests::Fixture;
use serde_json::Value;

const STD: &str = env!("CARGO_BIN_EXE_std_fixture");
const TOKIO: &str = env!("CARGO_BIN_EXE_tokio_fixture");
const CORE: &str = env!("CARGO_BIN_EXE_fixture");
/// Generous: test builds are unoptimized, and the first report parses DWARF.
const WAIT: Duration = Duration::from_secs(90);

fn start(program: &str, args: &[&str]) -> Fixture {
    guru_tests::watchdog(Duration::from_secs(600));
    let mut fx = Fixture::spawn_with_env(program, args, &[("RUST_BACKTRACE", "0")]);
    fx.wait_for_line("ready pid=", WAIT);
    fx
}

/// One text report from `program` after SIGUSR2, as it appeared on stderr
/// (begin line to end line, with its final newline).
fn text_report(program: &str, args: &[&str]) -> String {
    let fx = start(program, args);
    // Let the fixture's threads reach their blocking calls.
    std::thread::sleep(Duration::from_millis(300));
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    format!("{}\n", report.text)
}

/// One JSON report from `program` after SIGUSR2, as the raw line.
fn json_report(program: &str, args: &[&str]) -> String {
    let fx = start(program, args);
    std::thread::sleep(Duration::from_millis(300));
    fx.signal(libc::SIGUSR2);
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(line) = fx
            .stderr_text()
            .lines()
            .find(|l| l.starts_with('{') && l.ends_with('}'))
        {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no JSON report within {WAIT:?}:\n{}",
            fx.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// text → from_text → to_text is the same text; returns the model.
fn assert_text_round_trip(text: &str) -> Report {
    let model = Report::from_text(text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
    let back = model.to_text();
    if back != text {
        let (a, b): (Vec<_>, Vec<_>) = (text.lines().collect(), back.lines().collect());
        let at = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        panic!(
            "text differs at line {}:\n  report: {:?}\n  model:  {:?}",
            at + 1,
            a.get(at),
            b.get(at)
        );
    }
    assert!(model.read_from_text);
    model
}

/// JSON → from_json → serde is the same value, and it validates against the
/// checked-in schema; returns the model.
fn assert_json_round_trip(line: &str) -> Report {
    let original: Value = serde_json::from_str(line).expect("JSON report");
    let model = Report::from_json(line).unwrap_or_else(|e| panic!("{e}\n{line}"));
    let again = serde_json::to_value(&model).expect("serialize");
    assert_eq!(again, original, "model JSON differs from the report's");
    assert!(!model.read_from_text);
    validate(&original);
    model
}

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/guru-report.schema.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("schema JSON")
}

fn validate(doc: &Value) {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match the schema: {errors:#?}"
    );
}

fn section<'r>(r: &'r Report, title: &str) -> &'r Content {
    &r.section(title)
        .unwrap_or_else(|| panic!("no section {title:?}"))
        .content
}

#[test]
fn std_text_report_round_trips_with_failed_sections_and_inlined_frames() {
    let text = text_report(
        STD,
        &["--bad-sections", "--section-timeout-ms", "1000", "--child"],
    );
    let model = assert_text_round_trip(&text);
    // What the model holds, not only that it renders the same.
    let Content::Failed { kind, error } = section(&model, "Panicking") else {
        panic!("Panicking is not failed");
    };
    assert_eq!(*kind, Kind::Custom);
    assert!(error.starts_with("panicked: "), "{error}");
    let Content::Ok(Data::Threads(t)) = section(&model, "Threads") else {
        panic!("no Threads data");
    };
    let inliner = t
        .threads
        .iter()
        .find(|t| t.name == "std-inliner")
        .expect("std-inliner");
    let inlined = inliner
        .frames
        .iter()
        .find(|f| f.functions.len() >= 2)
        .expect("a frame with an inlined call");
    assert!(inlined.functions[0].inlined);
    assert!(!inlined.functions.last().expect("function").inlined);
    assert!(inlined.module.is_some(), "{inlined:?}");
    assert!(
        t.threads
            .iter()
            .any(|t| t.elided.iter().any(|e| e.why == ElidedWhy::RuntimeStartUp)),
        "no folded start-up frames"
    );
    let Content::Ok(Data::Processes(p)) = section(&model, "Processes") else {
        panic!("no Processes data");
    };
    assert_eq!(p.processes.len(), 2);
    assert_eq!(p.processes[1].depth, 1);
    assert!(p.processes[1].cmdline.contains(&"***".to_string()));
}

#[test]
fn std_json_report_round_trips_and_matches_the_schema() {
    let line = json_report(
        STD,
        &[
            "--json",
            "--bad-sections",
            "--section-timeout-ms",
            "1000",
            "--child",
            "--env",
        ],
    );
    let model = assert_json_round_trip(&line);
    let failed = model
        .sections
        .iter()
        .filter(|s| matches!(s.content, Content::Failed { .. }))
        .count();
    assert_eq!(failed, 3, "three bad sections");
    // The model renders a text report that reads back into itself.
    let text = model.to_text();
    let again = Report::from_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again.to_text(), text);
}

#[test]
fn tokio_reports_round_trip_in_both_formats() {
    let text = text_report(TOKIO, &[]);
    let model = assert_text_round_trip(&text);
    let Content::Ok(Data::GreenThreads(g)) = section(&model, "Green Threads") else {
        panic!("no Green Threads data in:\n{text}");
    };
    // "api", "side" and "pool" (the fixture's 2-worker runtime).
    assert_eq!(g.runtimes.len(), 3, "{g:?}");
    assert!(g.runtimes.iter().all(|r| !r.worker_figures.is_empty()));
    // Built with --cfg tokio_unstable (.ci/run does), "api" has task traces
    // and they round-trip too.
    #[cfg(tokio_unstable)]
    {
        let TaskDump::Taken { groups, .. } = &g.runtimes[0].task_dump else {
            panic!("no task dump of \"api\":\n{text}");
        };
        assert!(groups.iter().any(|g| g.task_ids.len() == 2), "{groups:?}");
        assert!(
            groups
                .iter()
                .flat_map(|g| g.traces.iter().flatten())
                .count()
                > 0,
            "{groups:?}"
        );
    }

    let line = json_report(TOKIO, &["--json", "--blocked"]);
    let model = assert_json_round_trip(&line);
    let Content::Ok(Data::GreenThreads(g)) = section(&model, "Green Threads") else {
        panic!("no Green Threads data");
    };
    assert!(g.runtimes.len() >= 4, "{g:?}");
    // Built with task dumps, "api" has its traces; without, why not.
    let api = &g.runtimes[0].task_dump;
    if cfg!(tokio_unstable) {
        assert!(matches!(api, TaskDump::Taken { .. }), "{api:?}");
    } else {
        assert!(matches!(api, TaskDump::NotTaken { .. }), "{api:?}");
    }
    let text = model.to_text();
    let again = Report::from_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again.to_text(), text);
}

#[test]
fn tokio_text_report_with_blocked_runtimes_round_trips() {
    let text = text_report(TOKIO, &["--blocked"]);
    assert_text_round_trip(&text);
}

#[test]
fn core_text_report_round_trips_with_recursion_unresponsive_and_truncated_stacks() {
    // --max-frames 16: the recursing thread's stack is truncated (a note);
    // --blocker: a thread that blocks the capture signal (unresponsive).
    let text = text_report(CORE, &["--blocker", "--max-frames", "16"]);
    let model = assert_text_round_trip(&text);
    let names: Vec<&str> = model.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(names, ["Threads", "Modules", "Report"]);
    let Content::Ok(Data::Threads(t)) = section(&model, "Threads") else {
        panic!("no Threads data");
    };
    let blocker = t
        .threads
        .iter()
        .find(|t| t.name == "blocker")
        .expect("blocker");
    assert!(
        !blocker.captured && blocker.unresponsive.is_some(),
        "{blocker:?}"
    );
    let recursion = t
        .threads
        .iter()
        .find(|t| t.name == "recursion")
        .expect("recursion");
    assert!(
        recursion
            .elided
            .iter()
            .any(|e| e.why == ElidedWhy::Recursion),
        "recursion not folded:\n{text}"
    );
    assert!(
        t.threads.iter().any(|t| t.stack_end.is_some()),
        "no truncated stack:\n{text}"
    );
    let Content::Ok(Data::Report(f)) = section(&model, "Report") else {
        panic!("no Report data");
    };
    assert_eq!(f.unresponsive_threads, Vec::<i32>::new(), "core lists none");
    assert!(f.requested_by.is_none() && f.symbolization.is_none());
    assert_eq!(t.capacity, f.capacity);
}

#[test]
fn checked_in_schema_is_a_valid_schema_of_the_model() {
    // The drift test is in the guru crate (model::tests); here the file must
    // be a schema the validator accepts, and reject a broken document.
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let broken = serde_json::json!({ "schema": "guru-report/1", "pid": "not a number" });
    assert!(!validator.is_valid(&broken));
}
