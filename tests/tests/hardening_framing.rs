//! Issue 10, item 13: application-supplied text (section titles, bodies,
//! errors, thread names) cannot forge a report's framing or send terminal
//! escapes: one begin line, one end line, no control bytes; JSON stays valid.

use std::time::Duration;

use guru_tests::Fixture;

const WAIT: Duration = Duration::from_secs(30);

fn start() -> Fixture {
    let mut fx = Fixture::spawn(env!("CARGO_BIN_EXE_secrets_fixture"), &["--evil"]);
    fx.wait_for_line("ready pid=", WAIT);
    fx
}

#[test]
fn forged_titles_bodies_and_errors_cannot_frame_a_report() {
    let fx = start();
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let stderr = fx.stderr_text();
    let begins = stderr
        .lines()
        .filter(|l| l.starts_with("==== Guru Meditation") || l.starts_with("==== End of Guru"))
        .collect::<Vec<_>>();
    assert_eq!(
        begins,
        [
            stderr
                .lines()
                .find(|l| l.starts_with("==== Guru Meditation ==== pid "))
                .unwrap(),
            format!(
                "==== End of Guru Meditation ==== pid {} report #{}",
                fx.pid(),
                report.sequence
            )
            .as_str()
        ],
        "exactly one begin and one end line:\n{stderr}"
    );
    assert_eq!(report.pid, fx.pid());
    let controls: Vec<(usize, char)> = stderr
        .char_indices()
        .filter(|&(_, c)| c != '\n' && (c.is_control() || c == '\u{2028}' || c == '\u{2029}'))
        .collect();
    assert!(
        controls.is_empty(),
        "control characters {controls:?} in:\n{stderr}"
    );
    // Titles are escaped and kept inside their banner line.
    assert!(
        report
            .sections
            .iter()
            .any(|t| t.starts_with("Evil\\x0a==== End of Guru Meditation ==== pid 1")),
        "{:?}",
        report.sections
    );
    assert!(
        report
            .sections
            .iter()
            .any(|t| t.starts_with("Guru Meditation ==== pid 1") && t.ends_with("...")),
        "{:?}",
        report.sections
    );
    // Every registered section is still a section of its own.
    for title in [
        "Evil body",
        "Evil error",
        "Secret body",
        "Process",
        "Modules",
        "Report",
    ] {
        assert!(
            report.sections.iter().any(|t| t == title),
            "{title} in {:?}",
            report.sections
        );
    }
    let body = report.section("Evil body").expect("Evil body");
    assert!(
        body.contains("  ==== End of Guru Meditation ==== pid 1 report #1"),
        "{body}"
    );
    assert!(body.contains("\\x1b[2J\\x0dcarriage"), "{body}");
    let thread = report
        .threads
        .iter()
        .find(|t| t.name.starts_with("ev\\x1b"))
        .expect("evil thread listed");
    assert!(thread.name.contains("\\x0a"), "{}", thread.name);
    fx.finish(WAIT);
}

#[test]
fn forged_framing_keeps_json_valid() {
    let mut fx = start();
    fx.send_line("json");
    let line = fx.wait_for_line("json ", WAIT);
    let doc = &line["json ".len()..];
    assert!(
        !doc.contains('\x1b') && !doc.contains('\r'),
        "raw control bytes in JSON"
    );
    let v: serde_json::Value = serde_json::from_str(doc).expect("valid JSON");
    let titles: Vec<&str> = v["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .filter_map(|s| s["title"].as_str())
        .collect();
    // JSON carries the title whole; its encoding keeps it on one line.
    assert!(
        titles.contains(&"Evil\n==== End of Guru Meditation ==== pid 1 report #1\n\x1b[2J"),
        "{titles:?}"
    );
    fx.finish(WAIT);
}
