//! The std adapter (`guru`) end to end: a fixture process
//! (`tests/src/bin/std_fixture.rs`) installs it, the test triggers reports
//! (SIGUSR2, the file trigger, `guru::report()`), and checks each section,
//! secret masking, JSON, log files, failing sections, and reports under
//! allocation load. One scenario per process; every wait has a deadline and
//! the harness watchdog aborts a hung test binary.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use guru_tests::{Fixture, Report, parse_reports};
use serde_json::Value;

const FIXTURE: &str = env!("CARGO_BIN_EXE_std_fixture");
/// Generous: test builds are unoptimized, and the first report parses DWARF.
const WAIT: Duration = Duration::from_secs(60);

const SECTIONS: [&str; 8] = [
    "Package",
    "Threads",
    "Processes",
    "Configuration",
    "Work queue",
    "Process",
    "Modules",
    "Report",
];

fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> (Fixture, BTreeMap<String, i32>) {
    // No backtraces from the panicking section's panic hook: they only slow
    // the section down (it has a time budget) and clutter stderr.
    let mut env = env.to_vec();
    env.push(("RUST_BACKTRACE", "0"));
    let mut fx = Fixture::spawn_with_env(FIXTURE, args, &env);
    fx.wait_for_line("ready pid=", WAIT);
    let threads = fx.announced_threads();
    // The tests look for these threads inside their blocking calls; on a
    // loaded machine a thread may not have reached its call yet.
    for (name, call) in [
        ("std-inliner", libc::SYS_read),
        ("std-sleeper", libc::SYS_clock_nanosleep),
    ] {
        if let Some(&tid) = threads.get(name) {
            guru_tests::wait_in_syscall(fx.pid(), tid, call, WAIT);
        }
    }
    (fx, threads)
}

fn start(args: &[&str]) -> (Fixture, BTreeMap<String, i32>) {
    start_with_env(args, &[])
}

/// Starts the fixture, sends SIGUSR2 once and returns the report.
fn one_report(args: &[&str]) -> (Fixture, BTreeMap<String, i32>, Report) {
    let (fx, threads) = start(args);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    (fx, threads, report)
}

fn section(report: &Report, title: &str) -> String {
    report
        .section(title)
        .unwrap_or_else(|| panic!("no section {title:?} in:\n{}", report.text))
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "{n:?} not found in:\n{haystack}");
    }
}

fn my_pid() -> i32 {
    std::process::id() as i32
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("guru-std-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The JSON documents on the fixture's stderr (one per line; a last line
/// without its newline is still being written).
fn json_docs(fx: &Fixture) -> Vec<Value> {
    let text = fx.stderr_text();
    text[..text.rfind('\n').map_or(0, |i| i + 1)]
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON ({e}): {l}")))
        .collect()
}

fn wait_json(fx: &Fixture, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let docs = json_docs(fx);
        if docs.len() >= count {
            return docs;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} JSON reports, stderr:\n{}",
            fx.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `signal` is no longer pending for process `pid` (delivered
/// to a thread, whose handler then runs).
fn wait_delivered(pid: i32, signal: i32) {
    let bit = 1u64 << (signal - 1);
    let deadline = Instant::now() + WAIT;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let pending = status
            .lines()
            .filter(|l| l.starts_with("ShdPnd:") || l.starts_with("SigPnd:"))
            .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
            .fold(0, |a, b| a | b);
        if pending & bit == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "signal {signal} never delivered");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn std_sections_come_in_design_order() {
    let (_fx, _, report) = one_report(&[]);
    assert_eq!(report.sections, SECTIONS, "{}", report.text);
    assert!(
        report
            .text
            .lines()
            .next()
            .unwrap()
            .contains(&format!("triggered by SIGUSR2 from pid {}", my_pid())),
        "{}",
        report.text
    );
}

#[test]
fn std_package_section() {
    let (_fx, _, report) = one_report(&[]);
    let body = section(&report, "Package");
    let profile = if cfg!(debug_assertions) {
        "profile: debug"
    } else {
        "profile: release"
    };
    assert_contains(
        &body,
        &[
            "  name: guru-tests\n",
            &format!("  version: {}\n", env!("CARGO_PKG_VERSION")),
            "  service: std-fixture\n",
            &format!("  target: {}", std::env::consts::ARCH),
            profile,
            "  rustc: rustc ",
        ],
    );
    // The fixtures' build script (tests/build.rs, the lines documented at
    // guru::package!) passes the checkout's commit: inside a git checkout the
    // report names it, never "unknown".
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let line = body
        .lines()
        .find(|l| l.starts_with("  git commit: "))
        .unwrap_or_else(|| panic!("no git commit line:\n{body}"));
    match head {
        Some(sha) => assert!(
            line == format!("  git commit: {sha}")
                || line == format!("  git commit: {sha} (dirty)"),
            "{line:?} should name HEAD {sha}"
        ),
        None => assert_eq!(line, "  git commit: unknown", "not in a git checkout"),
    }
}

#[test]
fn std_threads_section_has_names_inlined_frames_and_lines() {
    let (_fx, threads, report) = one_report(&[]);
    for (name, &tid) in &threads {
        let name = if name == "main" { "std_fixture" } else { name };
        assert_eq!(report.thread_named(name).tid, tid, "tid of {name}");
    }
    let inliner = report.thread_named("std-inliner");
    inliner.assert_frames_in_order(&["std_blocked_inlined", "std_fixture::std_blocked_outer"]);
    let inlined = &inliner.frames[inliner.frame_index("std_blocked_inlined").unwrap()];
    assert!(inlined.ends_with("(inlined)"), "{inlined}");
    assert!(
        inlined.contains(" at ") && inlined.contains("std_fixture.rs:"),
        "{inlined}"
    );
    let outer = &inliner.frames[inliner
        .frame_index("std_fixture::std_blocked_outer")
        .unwrap()];
    assert!(outer.contains("std_fixture.rs:"), "{outer}");
    assert!(outer.contains("(std_fixture+0x"), "{outer}");
    // Same physical frame: same number and address on both lines.
    let key = |f: &str| f.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(key(inlined), key(outer));
    assert!(
        inliner.header.contains("in syscall read"),
        "{}",
        inliner.header
    );

    report
        .thread_named("std-sleeper")
        .assert_frames_in_order(&["std::thread", "std_fixture::std_sleeper_loop"]);
    assert!(
        report
            .thread_named("std-spinner")
            .frame_index("std_fixture::std_spin")
            .is_some()
            || report
                .thread_named("std-spinner")
                .frame_index("std_fixture::main")
                .is_some(),
        "{}",
        report.text
    );
    // The runtime's start-up frames are summarized, as in std backtraces.
    let sleeper = report.thread_named("std-sleeper");
    assert!(
        sleeper
            .notes
            .iter()
            .any(|n| n.contains("runtime start-up frames (std::rt, std::thread, libc)")),
        "{}",
        report.text
    );
    assert!(
        sleeper
            .frame_index("__rust_begin_short_backtrace")
            .is_none()
    );
    let reporter = report.thread_named("guru-reporter");
    assert!(reporter.header.contains("writing this report"));
    assert!(
        reporter.frame_index("guru::report::collect").is_some(),
        "{}",
        report.text
    );
}

#[test]
fn std_processes_section_lists_children_with_masked_command_lines() {
    let (fx, _, report) = one_report(&["--child"]);
    let child: i32 = fx
        .stdout_seen
        .iter()
        .find_map(|l| l.strip_prefix("child pid="))
        .and_then(|p| p.parse().ok())
        .expect("child pid");
    let body = section(&report, "Processes");
    let lines: Vec<&str> = body.lines().collect();
    assert!(
        lines[0].starts_with(&format!("Process {} (under {})", fx.pid(), my_pid())),
        "{body}"
    );
    assert!(
        lines[0].contains("run by: ") && lines[0].contains("state: "),
        "{body}"
    );
    let at = lines
        .iter()
        .position(|l| {
            l.trim_start()
                .starts_with(&format!("Process {child} (under {})", fx.pid()))
        })
        .unwrap_or_else(|| panic!("child {child} not listed:\n{body}"));
    assert!(
        lines[at].starts_with("    Process"),
        "child is indented: {body}"
    );
    assert!(
        lines[at + 1].ends_with("--sleep-child --password ***"),
        "{}",
        lines[at + 1]
    );
    assert!(!body.contains("S3CRET"));
}

#[test]
fn std_configuration_section_groups_and_masks() {
    let (_fx, _, report) = one_report(&[]);
    let body = section(&report, "Configuration");
    assert_contains(
        &body,
        &[
            "[DEFAULT]\n",
            "  listen = 127.0.0.1:9999\n",
            "  workers = 4\n",
            "  wrapped = ***\n",
            "  api_token = ***\n",
            "[database]\n",
            "  db_password = ***\n",
            "  pool_size = 7\n",
            "  url = postgres://app:***@db.example:5432/app",
        ],
    );
    assert!(!body.contains("[environment]"), "not asked for:\n{body}");

    let (fx, _) = start_with_env(
        &["--env"],
        &[
            ("GURU_TEST_API_KEY", "S3CRET-env"),
            ("GURU_TEST_PLAIN", "visible-value"),
        ],
    );
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let body = section(&report, "Configuration");
    assert_contains(
        &body,
        &[
            "[environment]\n",
            "  GURU_TEST_API_KEY = ***\n",
            "  GURU_TEST_PLAIN = visible-value\n",
        ],
    );
}

#[test]
fn std_registered_sections_before_and_after_install() {
    let (_fx, _, report) = one_report(&["--bad-sections", "--section-timeout-ms", "1000"]);
    assert_eq!(
        section(&report, "Work queue"),
        "  jobs waiting: 3\n  workers busy: 1"
    );
    assert_eq!(section(&report, "After the bad ones"), "  still here");
    let order: Vec<&str> = report.sections.iter().map(String::as_str).collect();
    assert_eq!(
        &order[3..9],
        [
            "Configuration",
            "Work queue",
            "Panicking",
            "Failing",
            "Slow",
            "After the bad ones"
        ]
    );
}

#[test]
fn std_process_section() {
    let (fx, _, report) = one_report(&[]);
    let body = section(&report, "Process");
    assert_contains(
        &body,
        &[
            &format!("  pid {}, parent {}\n", fx.pid(), my_pid()),
            "  executable: ",
            "std_fixture",
            "  uptime: ",
            "  threads: ",
            "  cpu time: user ",
            "  memory: RSS ",
            "  open file descriptors: ",
            "Max open files",
        ],
    );
}

#[test]
fn std_modules_section() {
    let (_fx, _, report) = one_report(&[]);
    let body = section(&report, "Modules");
    let exe = std::fs::canonicalize(FIXTURE).unwrap();
    let line = body
        .lines()
        .find(|l| l.contains(exe.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} not listed:\n{body}", exe.display()));
    let id = line
        .split("build-id ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        id.len() >= 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{line}"
    );
    assert!(body.contains("libc"), "{body}");
}

#[test]
fn std_report_section_shows_sender_and_coalesced_triggers() {
    let (mut fx, _) = start(&["--gate"]);
    let pid = fx.pid();
    fx.signal(libc::SIGUSR2);
    // Report 1 is now held inside the Gate section; two more triggers arrive.
    fx.wait_for_line("gate-waiting", WAIT);
    fx.signal(libc::SIGUSR2);
    wait_delivered(pid, libc::SIGUSR2);
    fx.signal(libc::SIGUSR2);
    wait_delivered(pid, libc::SIGUSR2);
    fx.send_line("release");
    // They make one more report, not two.
    fx.wait_for_line("gate-waiting", WAIT);
    fx.send_line("release");
    let reports = fx.wait_for_reports(2, WAIT);
    let first = section(&reports[0], "Report");
    assert_contains(
        &first,
        &[
            &format!("  requested by: SIGUSR2 from pid {} (uid ", my_pid()),
            "  coalesced triggers: 0\n",
            "  symbolization: ",
        ],
    );
    let second = section(&reports[1], "Report");
    assert_contains(&second, &["  coalesced triggers: 1\n", "(coalesced)"]);
    assert_eq!(reports[1].sequence, reports[0].sequence + 1);
    fx.send_line("call-report");
    fx.wait_for_line("call-report-end", WAIT);
    assert_eq!(parse_reports(&fx.stderr_text()).len(), 2, "no third report");
}

#[test]
fn std_secret_values_never_appear_in_text_or_json() {
    for format in [None, Some("--json")] {
        let mut args = vec!["--child", "--env"];
        args.extend(format);
        let (mut fx, _) = start_with_env(&args, &[("GURU_TEST_SECRET", "S3CRET-env-value")]);
        fx.signal(libc::SIGUSR2);
        match format {
            None => drop(fx.wait_for_reports(1, WAIT)),
            Some(_) => drop(wait_json(&fx, 1)),
        }
        fx.send_line("call-report");
        fx.wait_for_line("call-report-end", WAIT);
        let stdout = fx.stdout_seen.join("\n");
        let stderr = fx.stderr_text();
        assert!(stderr.contains("***"), "masked values are shown:\n{stderr}");
        assert!(
            stdout.contains("***"),
            "guru::report() masks too:\n{stdout}"
        );
        assert!(
            !stderr.contains("S3CRET"),
            "secret leaked to stderr:\n{stderr}"
        );
        assert!(
            !stdout.contains("S3CRET"),
            "secret leaked to stdout:\n{stdout}"
        );
    }
}

#[test]
fn std_json_report_parses_with_schema_and_every_section() {
    let (fx, _) = start(&["--json", "--bad-sections", "--section-timeout-ms", "1000"]);
    fx.signal(libc::SIGUSR2);
    let doc = wait_json(&fx, 1).remove(0);
    assert_eq!(doc["schema"], "guru-report/1");
    assert_eq!(doc["pid"], fx.pid());
    assert_eq!(doc["trigger"]["kind"], "signal");
    assert_eq!(doc["trigger"]["sender_pid"], my_pid());
    let sections = doc["sections"].as_array().unwrap();
    let titles: Vec<&str> = sections
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "Package",
            "Threads",
            "Processes",
            "Configuration",
            "Work queue",
            "Panicking",
            "Failing",
            "Slow",
            "After the bad ones",
            "Process",
            "Modules",
            "Report"
        ]
    );
    let by_title = |t: &str| sections.iter().find(|s| s["title"] == t).unwrap();
    for t in [
        "Package",
        "Threads",
        "Processes",
        "Configuration",
        "Process",
        "Modules",
        "Report",
    ] {
        assert_eq!(by_title(t)["status"], "ok", "{t}: {}", by_title(t));
    }
    assert_eq!(by_title("Package")["data"]["name"], "guru-tests");
    let panicking = by_title("Panicking");
    assert_eq!(panicking["status"], "failed");
    assert!(
        panicking["error"]
            .as_str()
            .unwrap()
            .contains("section exploded on purpose"),
        "{panicking}"
    );
    assert_eq!(
        by_title("Work queue")["data"]["text"],
        "jobs waiting: 3\nworkers busy: 1"
    );

    let threads = by_title("Threads")["data"]["threads"].as_array().unwrap();
    let inliner = threads.iter().find(|t| t["name"] == "std-inliner").unwrap();
    let functions: Vec<&Value> = inliner["frames"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["functions"].as_array().unwrap())
        .collect();
    let outer = functions
        .iter()
        .find(|f| f["name"] == "std_fixture::std_blocked_outer")
        .unwrap_or_else(|| panic!("{inliner}"));
    assert!(outer["file"].as_str().unwrap().ends_with("std_fixture.rs"));
    assert!(outer["line"].as_u64().unwrap() > 0);
    assert!(
        functions.iter().any(
            |f| f["name"].as_str().unwrap().ends_with("std_blocked_inlined")
                && f["inlined"] == true
        ),
        "{inliner}"
    );
    let config = &by_title("Configuration")["data"]["groups"];
    assert_eq!(config[0]["name"], "DEFAULT");
    let modules = by_title("Modules")["data"]["modules"].as_array().unwrap();
    assert!(modules.iter().any(|m| m["build_id"].is_string()));
    assert!(
        by_title("Report")["data"]["round"]["threads_captured"]
            .as_u64()
            .unwrap()
            >= 5
    );
}

#[test]
fn std_log_dir_files_are_private_and_never_reused() {
    let dir = temp_dir("logdir");
    let (fx, _) = start(&["--log-dir", dir.to_str().unwrap()]);
    let prefix = "std-fixture_gurumeditation_";
    let suffix_pid = format!("_{}_", fx.pid());
    let list = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    // Reports one after another until two land in the same second (in
    // practice the first two do; the loop only guards against a slow start).
    let mut same_second = false;
    for n in 1..=20usize {
        fx.signal(libc::SIGUSR2);
        let deadline = Instant::now() + WAIT;
        while list().len() < n {
            assert!(
                Instant::now() < deadline,
                "report file {n} missing; stderr:\n{}",
                fx.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let stamps: Vec<String> = list()
            .iter()
            .map(|f| f[prefix.len()..prefix.len() + 14].to_string())
            .collect();
        let mut unique = stamps.clone();
        unique.dedup();
        if unique.len() < stamps.len() && n >= 2 {
            same_second = true;
            break;
        }
    }
    assert!(same_second, "no two reports in one second: {:?}", list());
    let files = list();
    for (i, name) in files.iter().enumerate() {
        assert!(name.starts_with(prefix) && name.ends_with(".txt"), "{name}");
        let rest = &name[prefix.len()..];
        assert!(rest[..14].chars().all(|c| c.is_ascii_digit()), "{name}");
        assert!(rest[14..].starts_with(&suffix_pid), "{name}");
        let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let reports = parse_reports(&text);
        assert_eq!(reports.len(), 1, "{name} holds one complete report");
        assert_eq!(reports[0].sequence, (i + 1) as u64);
        assert!(
            name.ends_with(&format!("_{}.txt", reports[0].sequence)),
            "{name}"
        );
    }
    assert!(
        parse_reports(&fx.stderr_text()).is_empty(),
        "nothing on stderr"
    );
    drop(fx);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn std_log_dir_that_cannot_be_created_is_an_install_error() {
    // A missing directory is created (tests/tests/hardening_output.rs); one
    // under a regular file cannot be.
    let file = temp_dir("missing").join("a-file");
    std::fs::write(&file, b"").unwrap();
    let missing = file.join("no-such-dir");
    let mut fx = Fixture::spawn(FIXTURE, &["--log-dir", missing.to_str().unwrap()]);
    let line = fx.wait_for_line("install-error: ", WAIT);
    assert!(line.contains(missing.to_str().unwrap()), "{line}");
    assert!(line.contains("Not a directory"), "{line}");
    assert_eq!(fx.finish(WAIT).code(), Some(2));
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
}

#[test]
fn std_log_dir_gone_at_report_time_falls_back_to_stderr() {
    let dir = temp_dir("gone");
    let (fx, _) = start(&["--log-dir", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    fx.signal(libc::SIGUSR2);
    let reports = fx.wait_for_reports(1, WAIT);
    assert_eq!(reports[0].sections, SECTIONS);
    let stderr = fx.stderr_text();
    let note = stderr
        .lines()
        .find(|l| l.starts_with("guru: cannot write report file "))
        .unwrap_or_else(|| panic!("no note:\n{stderr}"));
    assert!(
        note.contains(dir.to_str().unwrap()) && note.contains("follows on stderr"),
        "{note}"
    );
}

#[test]
fn std_failing_sections_do_not_stop_the_report() {
    let (mut fx, _) = start(&["--bad-sections", "--section-timeout-ms", "1000"]);
    for n in 1..=2 {
        fx.signal(libc::SIGUSR2);
        let report = fx.wait_for_reports(n, WAIT).remove(n - 1);
        assert_eq!(
            section(&report, "Panicking"),
            "  !! section failed: panicked: section exploded on purpose"
        );
        assert_eq!(
            section(&report, "Failing"),
            "  !! section failed: returned an error: backend unreachable"
        );
        let slow = section(&report, "Slow");
        assert!(
            slow.contains("timed out") || (n == 2 && slow.contains("still running")),
            "{slow}"
        );
        assert_eq!(section(&report, "After the bad ones"), "  still here");
        for t in ["Process", "Modules", "Report"] {
            assert!(report.sections.iter().any(|s| s == t), "{t} missing");
        }
    }
    assert!(fx.is_alive(), "the process lives on");
    fx.send_line("progress");
    fx.wait_for_line("progress ", WAIT);
}

#[test]
fn std_file_trigger_makes_reports() {
    let dir = temp_dir("trigger");
    let path = dir.join("report-now");
    let (fx, _) = start(&["--file-trigger", path.to_str().unwrap()]);
    std::fs::write(&path, b"1").unwrap();
    let first = fx.wait_for_reports(1, WAIT).remove(0);
    let begin = first.text.lines().next().unwrap();
    assert!(
        begin.contains(&format!("triggered by file {}", path.display())),
        "{begin}"
    );
    assert_eq!(first.sections, SECTIONS);
    std::fs::write(&path, b"2").unwrap();
    let reports = fx.wait_for_reports(2, WAIT);
    assert_eq!(reports[1].sequence, first.sequence + 1);
    drop(fx);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn std_setup_autorun_twice_is_an_error() {
    let (mut fx, _) = start(&["--twice"]);
    let line = fx
        .stdout_seen
        .iter()
        .find(|l| l.starts_with("second-install: "))
        .cloned()
        .expect("second install result");
    assert_eq!(
        line,
        "second-install: error: guru is already installed in this process (drop the existing guard first)"
    );
    fx.signal(libc::SIGUSR2);
    fx.wait_for_reports(1, WAIT);
    // A round trip through the fixture; a second handler would have made a
    // second report by now.
    fx.send_line("call-report");
    fx.wait_for_line("call-report-end", WAIT);
    assert_eq!(parse_reports(&fx.stderr_text()).len(), 1);
}

#[test]
fn std_reports_complete_while_threads_allocate_heavily() {
    let (mut fx, threads) = start(&["--alloc-workers", "4"]);
    let progress = |fx: &mut Fixture| -> u64 {
        fx.send_line("progress");
        let line = fx.wait_for_line("progress ", WAIT);
        line["progress ".len()..].parse().unwrap()
    };
    let before = progress(&mut fx);
    for n in 1..=5 {
        fx.signal(libc::SIGUSR2);
        let report = fx.wait_for_reports(n, WAIT).remove(n - 1);
        assert_eq!(report.sections, SECTIONS);
        for i in 0..4 {
            let name = format!("alloc-{i}");
            assert_eq!(report.thread_named(&name).tid, threads[&name]);
        }
    }
    let after = progress(&mut fx);
    assert!(
        after > before,
        "workers kept allocating ({before} → {after})"
    );
    assert!(fx.is_alive());
}

#[test]
fn std_report_call_returns_a_report_with_the_caller() {
    let (mut fx, _) = start(&[]);
    fx.send_line("call-report");
    fx.wait_for_line("call-report-end", WAIT);
    let text: String = fx
        .stdout_seen
        .iter()
        .filter_map(|l| l.strip_prefix("| "))
        .map(|l| format!("{l}\n"))
        .collect();
    let reports = parse_reports(&text);
    assert_eq!(reports.len(), 1, "{text}");
    assert!(
        reports[0]
            .text
            .lines()
            .next()
            .unwrap()
            .ends_with("on request")
    );
    assert_eq!(reports[0].sections, SECTIONS);
    reports[0]
        .thread_named("std_fixture")
        .assert_frames_in_order(&["guru::reporter::report", "std_fixture::main"]);
    assert!(
        parse_reports(&fx.stderr_text()).is_empty(),
        "not written anywhere"
    );
}

/// CPU ticks and context switches of one thread, from `/proc`.
fn thread_activity(pid: i32, tid: i32) -> (u64, u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).expect("stat");
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state.
    let utime = fields[11].parse().unwrap();
    let stime = fields[12].parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).expect("status");
    let switches = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .expect(key)
    };
    (
        utime,
        stime,
        switches("voluntary_ctxt_switches:"),
        switches("nonvoluntary_ctxt_switches:"),
    )
}

#[test]
fn std_reporter_sleeps_without_wakeups_while_idle() {
    let dir = temp_dir("idle");
    let path = dir.join("trigger");
    let (fx, _) = start(&["--file-trigger", path.to_str().unwrap()]);
    // Two reports: the section worker starts during the first one.
    fx.signal(libc::SIGUSR2);
    fx.wait_for_reports(1, WAIT);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(2, WAIT).remove(1);
    let idle_threads: Vec<i32> = report
        .threads
        .iter()
        .filter(|t| t.name == "guru-reporter" || t.name == "guru-sections")
        .map(|t| t.tid)
        .collect();
    assert_eq!(idle_threads.len(), 2, "{}", report.text);
    // Wait until both sleep (the reporter may still be finishing its write),
    // then watch them sit idle.
    let deadline = Instant::now() + WAIT;
    loop {
        let sleeping = idle_threads.iter().all(|&t| {
            std::fs::read_to_string(format!("/proc/{}/task/{t}/stat", fx.pid()))
                .is_ok_and(|s| s[s.rfind(')').unwrap() + 2..].starts_with('S'))
        });
        if sleeping {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "guru threads never went to sleep"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let before: Vec<_> = idle_threads
        .iter()
        .map(|&t| thread_activity(fx.pid(), t))
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let after: Vec<_> = idle_threads
        .iter()
        .map(|&t| thread_activity(fx.pid(), t))
        .collect();
    assert_eq!(
        before, after,
        "idle guru threads {idle_threads:?} did not wake"
    );
    drop(fx);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn debug_info_is_indexed_after_install_unless_turned_off() {
    // By default the reporter thread loads every module's debug info right
    // after install (before it serves any trigger), so the first report has
    // none left to examine; with prewarm_symbols(false) the first report
    // loads them itself. Both name the same functions.
    for (args, prewarmed) in [(&[][..], true), (&["--no-prewarm"][..], false)] {
        let (_fx, _threads, report) = one_report(args);
        let examined = report.figure("symbolization:", "modules examined now");
        if prewarmed {
            assert_eq!(examined, 0, "{}", report.text);
        } else {
            assert!(examined >= 1, "{}", report.text);
        }
        report
            .thread_named("std-inliner")
            .assert_frames_in_order(&["std_blocked_inlined", "std_fixture::std_blocked_outer"]);
    }
}

/// The symbolization line's "N frames (M from the cache)".
fn frames_and_cached(report: &Report) -> (u64, u64) {
    let line = report
        .text
        .lines()
        .find_map(|l| l.trim().strip_prefix("symbolization: "))
        .unwrap_or_else(|| panic!("no symbolization line in:\n{}", report.text));
    let (frames, rest) = line.split_once(" frames (").expect("frames");
    let (cached, _) = rest.split_once(" from the cache)").expect("from the cache");
    (frames.parse().unwrap(), cached.parse().unwrap())
}

#[test]
fn symbol_warm_up_resolves_live_stacks_without_taking_a_report_number() {
    // The warm-up at install captures every thread once (a round that is
    // not a report) and resolves its frames: the first report finds most of
    // its frames in the cache, is still report #1, and lists only the
    // trigger that asked for it. Without the warm-up the first report
    // resolves every distinct frame itself.
    let mut cached_by_mode = vec![];
    for (args, warmed) in [(&[][..], true), (&["--no-prewarm"][..], false)] {
        let (_fx, _threads, report) = one_report(args);
        let first = report.text.lines().next().unwrap_or_default();
        assert!(first.contains(" report #1 at "), "{first}");
        let triggers: Vec<&str> = report
            .text
            .lines()
            .skip_while(|l| !l.contains("recent triggers, by time"))
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .collect();
        assert_eq!(triggers.len(), 1, "{}", report.text);
        assert!(
            triggers[0].contains("SIGUSR2") && triggers[0].contains("(started a report)"),
            "{}",
            triggers[0]
        );
        let (frames, cached) = frames_and_cached(&report);
        assert!(frames > 0, "{}", report.text);
        if warmed {
            // guru's own threads sit where they sat at install, and the
            // standard library's parking and thread-start frames are shared.
            assert!(cached * 2 > frames, "{frames} frames, {cached} cached");
        }
        cached_by_mode.push(cached);
        report
            .thread_named("std-inliner")
            .assert_frames_in_order(&["std_blocked_inlined", "std_fixture::std_blocked_outer"]);
    }
    assert!(
        cached_by_mode[0] > cached_by_mode[1],
        "warm-up: {} frames cached, none: {}",
        cached_by_mode[0],
        cached_by_mode[1]
    );
}
