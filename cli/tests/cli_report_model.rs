//! The report model over real `guru dump` reports (issue 15's lines): the
//! begin line's `on request`, the Report section's
//! `requested by: guru dump from pid <pid> (uid <uid>)`, and recent triggers
//! worded the same (started a report, or coalesced into one) read back into
//! the model as `Trigger::Dump` and `si_code` 4 (`CODE_DUMP`) and render to
//! the same bytes; the JSON form round-trips and matches the checked-in
//! schema (`docs/guru-report.schema.json`). `guru summarize` and `guru diff`
//! read them through the model.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use common::{dump_ok, guru, start, stderr, stdout, test_dir};
use guru::model::{Content, Data, Figures, Report, Trigger};
use guru_core::trigger::CODE_DUMP;
use guru_tests::model_round_trip::{json_round_trip, text_round_trip};

/// JSON → from_json → the same value, valid against the schema, and
/// `to_json` gives back the dump's bytes; returns the model.
fn assert_json_round_trip(doc: &str) -> Report {
    let model = json_round_trip(doc);
    assert_eq!(model.to_json(), doc, "to_json differs from the report");
    model
}

fn figures(r: &Report) -> &Figures {
    match r.section("Report").map(|s| &s.content) {
        Some(Content::Ok(Data::Report(f))) => f,
        other => panic!("no Report data: {other:?}"),
    }
}

/// The dump trigger's client, from the report's trigger and its Report
/// section (they must agree).
fn dump_client(r: &Report) -> (i32, u32) {
    let Trigger::Dump {
        client_pid,
        client_uid,
    } = r.trigger
    else {
        panic!("not a dump trigger: {:?}", r.trigger);
    };
    assert_eq!(figures(r).requested_by.as_ref(), Some(&r.trigger));
    (client_pid, client_uid)
}

/// Dumps `pid` from three clients at once until one report lists a dump
/// request coalesced into it (the rate limit holds the second and third
/// request); returns that report's text.
fn report_with_a_coalesced_dump(pid: i32, json: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let clients: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(move || {
                    let pid = pid.to_string();
                    let mut args = vec!["dump", pid.as_str(), "--timeout", "60"];
                    if json {
                        args.push("--json");
                    }
                    guru(&args)
                })
            })
            .collect();
        for c in clients {
            let o = c.join().expect("client thread");
            assert!(o.status.success(), "guru dump failed: {}", stderr(&o));
            let body = stdout(&o);
            let coalesced = if json {
                let r = Report::from_json(body.trim()).expect("JSON report");
                figures(&r)
                    .recent_triggers
                    .iter()
                    .any(|t| t.si_code == CODE_DUMP && !t.started_report)
            } else {
                body.lines()
                    .any(|l| l.contains(": guru dump from pid ") && l.ends_with(" (coalesced)"))
            };
            if coalesced {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no report with a coalesced dump request"
        );
    }
}

#[test]
fn real_dump_text_reports_round_trip_through_the_model() {
    let xdg = test_dir("model-text");
    let mut f = start(&xdg, &["--threads", "3", "--min-interval-ms", "1500"]);
    let pid = f.pid();

    // One dump: the begin line says `on request`, the Report section who.
    let text = dump_ok(pid, false);
    assert!(
        text.lines().next().unwrap_or("").ends_with(" on request"),
        "{text}"
    );
    let model = text_round_trip(&text);
    let (client_pid, client_uid) = dump_client(&model);
    assert!(client_pid > 0, "{client_pid}");
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let uid = unsafe { libc::geteuid() };
    assert_eq!(client_uid, uid);
    let started: Vec<_> = figures(&model)
        .recent_triggers
        .iter()
        .filter(|t| t.si_code == CODE_DUMP)
        .collect();
    assert_eq!(started.len(), 1, "{:?}", figures(&model).recent_triggers);
    assert_eq!(
        (
            started[0].signal,
            started[0].sender_pid,
            started[0].sender_uid
        ),
        (0, client_pid, client_uid)
    );
    assert!(started[0].started_report);
    assert!(
        text.contains(&format!(
            ": guru dump from pid {client_pid} (uid {client_uid}) (started a report)\n"
        )),
        "{text}"
    );

    // Requests held by the rate limit: one starts the report, the others
    // are coalesced into it, and say so in the same words.
    let text = report_with_a_coalesced_dump(pid, false);
    let model = text_round_trip(&text);
    dump_client(&model);
    assert!(
        figures(&model)
            .recent_triggers
            .iter()
            .any(|t| t.si_code == CODE_DUMP && !t.started_report && t.sender_pid > 0),
        "{:?}",
        figures(&model).recent_triggers
    );

    // The operator tools read it through the model.
    let dir = xdg.join("reports");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("dump.txt");
    std::fs::write(&path, &text).expect("write");
    let o = guru(&["summarize", path.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("3 threads, same stack, in syscall futex"),
        "{}",
        stdout(&o)
    );
    assert!(f.is_alive());
}

#[test]
fn real_dump_json_reports_round_trip_and_match_the_schema() {
    let xdg = test_dir("model-json");
    let mut f = start(&xdg, &["--threads", "3", "--min-interval-ms", "1500"]);
    let pid = f.pid();

    let json = dump_ok(pid, true);
    let model = assert_json_round_trip(json.trim_end());
    let (client_pid, _) = dump_client(&model);
    let t = figures(&model)
        .recent_triggers
        .iter()
        .find(|t| t.si_code == CODE_DUMP)
        .unwrap_or_else(|| panic!("{:?}", figures(&model).recent_triggers));
    assert_eq!((t.signal, t.sender_pid), (0, client_pid));
    // The model read from JSON renders the text a text dump would have:
    // it reads back to the same model text.
    let text = model.to_text();
    assert!(
        text.contains(&format!(
            "  requested by: guru dump from pid {client_pid} (uid "
        )),
        "{text}"
    );
    text_round_trip(&text);

    let json = report_with_a_coalesced_dump(pid, true);
    let model = assert_json_round_trip(json.trim_end());
    dump_client(&model);
    assert!(f.is_alive());
}
