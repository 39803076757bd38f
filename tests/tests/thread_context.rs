//! Issue 13: thread context — labels, breadcrumbs and tracing spans under
//! each thread's header, in text and JSON, masked; never torn; no
//! allocation in the capture handlers (the fixture runs under the strict
//! allocation guard) nor on the write paths after a thread's first use.

use std::time::Duration;

use guru_tests::Fixture;

const WAIT: Duration = Duration::from_secs(60);
/// One watchdog for the whole test process (the storm takes longest).
const WATCHDOG: Duration = Duration::from_secs(600);

fn fixture() -> String {
    env!("CARGO_BIN_EXE_context_fixture").to_string()
}

fn start(args: &[&str]) -> Fixture {
    guru_tests::watchdog(WATCHDOG);
    let mut fx = Fixture::spawn(&fixture(), args);
    fx.wait_for_line("ready pid=", WAIT);
    fx
}

/// The context lines (`labels:`, `spans:`, `breadcrumbs`, `context:`) of the
/// thread named `name` in the last report.
fn context_lines(report: &guru_tests::Report, name: &str) -> Vec<String> {
    report
        .thread_named(name)
        .notes
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| {
            l.starts_with("labels:")
                || l.starts_with("spans:")
                || l.starts_with("breadcrumbs")
                || l.starts_with("context:")
        })
        .collect()
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {lines:#?}"))
}

#[test]
fn labels_nested_shadowed_dropped_truncated_and_masked() {
    let mut fx = start(&["basic"]);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let lines = context_lines(&report, "labels");
    let labels = line(&lines, "labels:");
    // Shadowed: the inner `request` is shown, once, after `tenant`.
    assert!(
        labels
            .starts_with("labels: tenant=\"acme\" request=\"GET /users/42 (retry 2)\" long=\"xxx"),
        "{labels}"
    );
    assert_eq!(labels.matches("request=").count(), 1, "{labels}");
    // Dropped before the report: gone.
    assert!(!labels.contains("gone="), "{labels}");
    // Truncated at 64 bytes with the marker.
    let long = labels
        .split("long=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(long, format!("{}…", "x".repeat(61)), "{labels}");
    // Escaped, one line.
    assert!(
        labels.contains(r#"quoted="say \"hi\"\x0anext""#),
        "{labels}"
    );
    // Masked: by name and by shape.
    assert!(labels.contains("api_token=\"***\""), "{labels}");
    assert!(
        labels.contains("dsn=\"postgres://app:***@db/x\""),
        "{labels}"
    );
    assert!(
        !report.text.contains("S3CRET"),
        "a secret leaked:\n{}",
        report.text
    );
    // Threads that never used context show nothing.
    assert!(context_lines(&report, "guru-reporter").is_empty());

    // The inner `request` and the outer one dropped: only `tenant` and the rest.
    fx.send_line("drop");
    fx.wait_for_line("dropped", WAIT);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(2, WAIT).remove(1);
    let lines = context_lines(&report, "labels");
    let labels = line(&lines, "labels:");
    assert!(
        labels.starts_with("labels: tenant=\"acme\" long="),
        "{labels}"
    );
    assert!(!labels.contains("request="), "{labels}");
}

#[test]
fn breadcrumbs_order_overflow_truncation_and_masking() {
    let fx = start(&["basic"]);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let lines = context_lines(&report, "crumbs");
    let crumbs = line(&lines, "breadcrumbs");
    let (head, items) = crumbs.split_once("): ").unwrap();
    assert_eq!(head, "breadcrumbs (oldest first, 4 older dropped");
    let texts: Vec<&str> = items
        .split(" | ")
        .map(|c| {
            assert!(
                c.starts_with("-0.") || c.starts_with("-1.") || c.starts_with("-2."),
                "{c}"
            );
            c.splitn(3, ' ').nth(2).unwrap()
        })
        .collect();
    let expected: Vec<String> = (4..20).map(|i| format!("step {i}")).collect();
    assert_eq!(texts, expected, "{crumbs}");

    let lines = context_lines(&report, "longcrumb");
    let crumbs = line(&lines, "breadcrumbs");
    assert!(
        crumbs.starts_with("breadcrumbs (oldest first): "),
        "{crumbs}"
    );
    assert!(
        crumbs.contains(&format!(" {}… |", "y".repeat(93))),
        "{crumbs}"
    );
    assert!(crumbs.contains("Authorization: Bearer ***"), "{crumbs}");
    assert!(crumbs.contains("redis://:***@cache:6379"), "{crumbs}");
    assert!(!report.text.contains("S3CRET"), "a secret leaked");
}

#[test]
fn spans_on_a_plain_thread_and_on_tokio_workers() {
    let fx = start(&["basic"]);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let lines = context_lines(&report, "spans");
    assert_eq!(
        line(&lines, "spans:"),
        "spans: http_request{method=GET path=/users/42} > db_query{table=users password=***}"
    );
    // Each worker is blocked inside its task's spans, and shows them.
    let mut seen: Vec<String> = report
        .threads
        .iter()
        .filter(|t| t.name == "ctx-worker")
        .flat_map(|t| t.notes.iter())
        .filter(|l| l.trim().starts_with("spans:"))
        .map(|l| l.trim().to_string())
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "spans: handle_connection{conn=7 password=***} > query{conn=7}",
            "spans: handle_connection{conn=8 password=***} > query{conn=8}",
        ],
        "{}",
        report.text
    );
    assert!(!report.text.contains("S3CRET"), "a secret leaked");
}

#[test]
fn json_has_typed_context_fields() {
    let fx = start(&["basic", "--json"]);
    fx.signal(libc::SIGUSR2);
    let deadline = std::time::Instant::now() + WAIT;
    let doc: serde_json::Value = loop {
        let text = fx.stderr_text();
        if let Some(doc) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .next()
        {
            break doc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no JSON report:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!doc.to_string().contains("S3CRET"), "a secret leaked");
    let threads = doc
        .pointer("/sections")
        .and_then(|s| s.as_array())
        .and_then(|s| s.iter().find_map(|s| s.pointer("/data/threads")))
        .and_then(|t| t.as_array())
        .expect("a threads section with threads");
    let named = |n: &str| {
        threads
            .iter()
            .find(|t| t["name"] == n)
            .unwrap_or_else(|| panic!("no thread {n}"))
    };
    let c = &named("labels")["context"];
    assert_eq!(c["being_updated"], false);
    assert_eq!(
        c["labels"][0],
        serde_json::json!({"key": "tenant", "value": "acme"})
    );
    assert_eq!(c["labels"][1]["value"], "GET /users/42 (retry 2)");
    let c = &named("crumbs")["context"];
    assert_eq!(c["breadcrumbs_dropped"], 4);
    assert_eq!(c["breadcrumbs"].as_array().unwrap().len(), 16);
    assert_eq!(c["breadcrumbs"][0]["text"], "step 4");
    assert!(c["breadcrumbs"][0]["age_ns"].as_u64().is_some());
    let c = &named("spans")["context"];
    assert_eq!(c["spans"][1]["name"], "db_query");
    assert_eq!(
        c["spans"][1]["fields"][1],
        serde_json::json!({"key": "password", "value": "***"})
    );
    assert!(named("guru-reporter")["context"].is_null());
}

#[test]
fn no_allocation_on_the_write_paths_after_first_use() {
    let mut fx = start(&["basic"]);
    fx.send_line("allocs");
    let line = fx.wait_for_line("allocs ", WAIT);
    assert_eq!(line.trim(), "allocs label=0 breadcrumb=0 span=0");
    // And the capture handlers, with records present, allocate nothing: the
    // fixture's guard would have aborted it.
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    assert!(!report.text.contains("ALLOCATION"));
    assert!(fx.is_alive(), "{}", fx.stderr_text());
}

fn summary(fx: &mut Fixture, prefix: &str) -> std::collections::BTreeMap<String, u64> {
    let line = fx.wait_for_line(prefix, Duration::from_secs(600));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

#[test]
fn torn_write_storm_shows_only_whole_values() {
    guru_tests::watchdog(WATCHDOG);
    let mut fx = Fixture::spawn(&fixture(), &["storm"]);
    let s = summary(&mut fx, "storm ");
    assert_eq!(s["reports"], 1000);
    assert_eq!(s["bad"], 0, "torn values shown: {}", fx.stderr_text());
    assert!(s["shown"] > 0, "the label was never shown: {s:?}");
}

#[test]
fn a_thousand_threads_and_threads_exiting_while_read() {
    guru_tests::watchdog(WATCHDOG);
    let mut fx = Fixture::spawn(&fixture(), &["threads"]);
    let s = summary(&mut fx, "threads ");
    assert_eq!(s["labelled"], 1000, "{s:?}");
    assert_eq!(s["wrong"], 0);
    let s = summary(&mut fx, "churn ");
    assert_eq!(s["reports"], 50);
    assert!(s["shown"] > 0, "no churning thread was ever shown: {s:?}");
    assert_eq!(
        s["wrong"], 0,
        "a label under another thread's header: {s:?}"
    );
}
