//! The report model over real reports with thread context (issue 13): the
//! context fixture's text report (labels, spans from the tracing layer on a
//! plain thread and on tokio workers, breadcrumbs overflowing the ring, and
//! text that must be quoted) reads back into the model with each thread's
//! `context` set and renders to the same text byte for byte; its JSON
//! report reads back, serializes to the same JSON value, validates against
//! `docs/guru-report.schema.json` and renders a text that reads back the
//! same; a core-only report (the core's own renderer, from its handler)
//! with context round-trips too.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use guru::model::{Content, Data, Label, Report, Thread, ThreadContext};
use guru_tests::Fixture;
use serde_json::Value;

const FIXTURE: &str = env!("CARGO_BIN_EXE_context_fixture");
/// Generous: test builds are unoptimized, and the first report parses DWARF.
const WAIT: Duration = Duration::from_secs(90);

fn start(args: &[&str]) -> Fixture {
    guru_tests::watchdog(Duration::from_secs(600));
    let mut fx = Fixture::spawn_with_env(FIXTURE, args, &[("RUST_BACKTRACE", "0")]);
    fx.wait_for_line("ready pid=", WAIT);
    fx
}

/// One text report after SIGUSR2, begin line to end line with its newline.
fn text_report(args: &[&str]) -> String {
    let fx = start(args);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    format!("{}\n", report.text)
}

/// One JSON report after SIGUSR2, as the raw line.
fn json_report(args: &[&str]) -> String {
    let fx = start(args);
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

fn validate(doc: &Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/guru-report.schema.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
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

fn threads(r: &Report) -> &[Thread] {
    match r.section("Threads").map(|s| &s.content) {
        Some(Content::Ok(Data::Threads(t))) => &t.threads,
        other => panic!("no Threads data: {other:?}"),
    }
}

fn context<'r>(r: &'r Report, name: &str) -> &'r ThreadContext {
    threads(r)
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no thread {name}"))
        .context
        .as_ref()
        .unwrap_or_else(|| panic!("thread {name} has no context"))
}

fn label(key: &str, value: &str) -> Label {
    Label {
        key: key.into(),
        value: value.into(),
    }
}

fn texts(c: &ThreadContext) -> Vec<&str> {
    c.breadcrumbs.iter().map(|b| b.text.as_str()).collect()
}

/// What the context fixture's `basic` threads hold, read from either format.
fn assert_basic_contexts(r: &Report) {
    let c = context(r, "labels");
    assert_eq!(c.labels[0], label("tenant", "acme"));
    assert_eq!(c.labels[1], label("request", "GET /users/42 (retry 2)"));
    assert!(
        c.labels.contains(&label("quoted", "say \"hi\"\nnext")),
        "{c:?}"
    );
    assert!(c.labels.contains(&label("api_token", "***")), "{c:?}");
    let c = context(r, "crumbs");
    assert_eq!(c.breadcrumbs_dropped, 4);
    let expected: Vec<String> = (4..20).map(|i| format!("step {i}")).collect();
    assert_eq!(texts(c), expected);
    let c = context(r, "spans");
    let names: Vec<&str> = c.spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["http_request", "db_query"]);
    assert_eq!(
        c.spans[1].fields,
        [label("table", "users"), label("password", "***")]
    );
    let c = context(r, "awkward");
    assert_eq!(c.labels, [label("two words", "v"), label("empty", "")]);
    assert_eq!(c.spans[0].name, "awkward span");
    assert_eq!(
        c.spans[0].fields,
        [
            label("list", "[1, 2]"),
            label("note", "a}b"),
            label("empty", "")
        ]
    );
    assert_eq!(
        texts(c),
        [
            "a | b",
            "",
            " padded ",
            "pipe|end",
            "\"quoted\" start",
            "tab\there"
        ]
    );
    let workers = threads(r)
        .iter()
        .filter(|t| t.name == "ctx-worker")
        .filter_map(|t| t.context.as_ref())
        .filter(|c| c.spans.iter().any(|s| s.name == "query"))
        .count();
    assert_eq!(workers, 2, "both tokio workers inside their task's spans");
    assert!(
        threads(r)
            .iter()
            .find(|t| t.name == "guru-reporter")
            .is_some_and(|t| t.context.is_none()),
        "a thread without context has none"
    );
}

#[test]
fn std_text_report_with_thread_context_round_trips() {
    let text = text_report(&["basic"]);
    // The quoting the model's parser relies on, as the report shows it.
    for line in [
        "  labels: \"two words\"=\"v\" empty=\"\"",
        "  spans: \"awkward span\"{list=\"[1, 2]\" note=\"a}b\" empty=\"\"}",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(
        text.contains(" s \"a | b\" | -0.") && text.contains(" s \"tab\\x09here\"\n"),
        "breadcrumbs not quoted:\n{text}"
    );
    let model = assert_text_round_trip(&text);
    assert_basic_contexts(&model);
}

#[test]
fn std_json_report_with_thread_context_round_trips_and_matches_the_schema() {
    let line = json_report(&["basic", "--json"]);
    let original: Value = serde_json::from_str(&line).expect("JSON report");
    let model = Report::from_json(&line).unwrap_or_else(|e| panic!("{e}\n{line}"));
    assert_eq!(
        serde_json::to_value(&model).expect("serialize"),
        original,
        "model JSON differs from the report's"
    );
    validate(&original);
    assert_basic_contexts(&model);
    // Its text reads back into the same contexts (ages to the millisecond).
    let text = model.to_text();
    let again = Report::from_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again.to_text(), text);
    for (ta, tb) in threads(&model).iter().zip(threads(&again)) {
        let mut a = ta.context.clone();
        for crumb in a.iter_mut().flat_map(|c| c.breadcrumbs.iter_mut()) {
            crumb.age_ns -= crumb.age_ns % 1_000_000;
        }
        assert_eq!(a.as_ref(), tb.context.as_ref(), "thread {}", ta.name);
    }
}

#[test]
fn core_text_report_with_thread_context_round_trips() {
    let text = text_report(&["core"]);
    let model = assert_text_round_trip(&text);
    let names: Vec<&str> = model.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(names, ["Threads", "Modules", "Report"], "a core report");
    let c = context(&model, "ctx-core");
    assert_eq!(
        c.labels,
        [label("job", "42"), label("quoted key", "say \"hi\"")]
    );
    assert_eq!(c.spans.len(), 2);
    assert_eq!(
        c.spans[0].fields,
        [label("table", "users"), label("filter", "age > 3")]
    );
    assert_eq!(c.spans[1].name, "decode");
    assert_eq!(c.breadcrumbs_dropped, 3);
    assert_eq!(c.breadcrumbs.len(), 16);
    assert_eq!(c.breadcrumbs.last().map(|b| b.text.as_str()), Some("a | b"));
}
