//! Green Threads (guru feature `tokio`) end to end: a fixture process
//! (`tests/src/bin/tokio_fixture.rs`) registers tokio runtimes whose tasks
//! wait in named async functions; the tests signal it and check the section.
//!
//! In the normal build the section shows each runtime's metrics and says how
//! to get task traces. `.ci/run` runs this file a second time built with
//! `RUSTFLAGS="--cfg tokio_unstable"` (the fixture has guru's `taskdump`
//! feature): then the task traces must name the async functions, and
//! runtimes that cannot take a dump must say so (timed out, or a worker
//! blocked) while the rest of the report comes out.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use guru_tests::{Fixture, Report};
use serde_json::Value;

const FIXTURE: &str = env!("CARGO_BIN_EXE_tokio_fixture");
/// Generous: test builds are unoptimized, and the first report parses DWARF.
const WAIT: Duration = Duration::from_secs(60);

/// Whether this build takes task dumps (the fixture is built the same way).
const DUMPS: bool = cfg!(all(
    tokio_unstable,
    any(target_arch = "x86_64", target_arch = "aarch64")
));

fn start(args: &[&str]) -> Fixture {
    let mut fx = Fixture::spawn_with_env(FIXTURE, args, &[("RUST_BACKTRACE", "0")]);
    fx.wait_for_line("ready pid=", WAIT);
    fx
}

fn green_threads(report: &Report) -> String {
    report
        .section("Green Threads")
        .unwrap_or_else(|| panic!("no Green Threads section in:\n{}", report.text))
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "{n:?} not found in:\n{haystack}");
    }
}

/// The part of the section about runtime `name` (until the next runtime).
fn runtime_part(section: &str, name: &str) -> String {
    let head = format!("Runtime \"{name}\" ");
    let start = section
        .find(&head)
        .unwrap_or_else(|| panic!("no runtime {name:?} in:\n{section}"));
    let rest = &section[start..];
    let end = rest[head.len()..]
        .find("\nRuntime \"")
        .map_or(rest.len(), |e| e + head.len());
    rest[..end].to_string()
}

/// The worker table's rows: (index, state).
fn worker_rows(part: &str) -> Vec<(usize, String)> {
    part.lines()
        .skip_while(|l| !l.trim_start().starts_with("worker"))
        .skip(1)
        .map_while(|l| {
            let mut cols = l.split_whitespace();
            let index = cols.next()?.parse().ok()?;
            Some((index, cols.next()?.to_string()))
        })
        .collect()
}

/// Frame lines (`#n 0x… function at file:line`) of the section that name `function`.
fn frames_naming<'a>(section: &'a str, function: &str) -> Vec<&'a str> {
    section
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('#') && l.contains(function))
        .collect()
}

#[test]
fn tokio_green_threads_show_each_runtime_with_its_metrics() {
    let fx = start(&[]);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);

    // DESIGN.md's order: Package, Threads, Green Threads, Processes, ...
    let at = |t: &str| report.sections.iter().position(|s| s == t);
    assert_eq!(
        at("Green Threads"),
        at("Threads").map(|i| i + 1),
        "{:?}",
        report.sections
    );
    assert_eq!(at("Processes"), at("Green Threads").map(|i| i + 1));

    let section = green_threads(&report);
    let api = runtime_part(&section, "api");
    assert_contains(
        &api,
        &["Runtime \"api\" (multi_thread): 1 worker, 4 alive tasks, global queue depth 0"],
    );
    let rows = worker_rows(&api);
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [0], "{api}");
    // Threads and these figures are two snapshots: the section says how far
    // apart.
    assert_contains(
        &api,
        &["  figures read ", " after the Threads section's capture"],
    );
    let pool = runtime_part(&section, "pool");
    assert_contains(
        &pool,
        &["Runtime \"pool\" (multi_thread): 2 workers, 1 alive task"],
    );
    assert_eq!(
        worker_rows(&pool).iter().map(|r| r.0).collect::<Vec<_>>(),
        [0, 1],
        "{pool}"
    );
    for (_, state) in &rows {
        assert!(state == "parked" || state == "active", "{api}");
    }
    let side = runtime_part(&section, "side");
    assert_contains(
        &side,
        &["Runtime \"side\" (current_thread): 1 worker, 1 alive task, global queue depth 0"],
    );
    assert_eq!(worker_rows(&side).len(), 1, "{side}");
    if DUMPS {
        // tokio_unstable adds its figures.
        assert_contains(&api, &["polls", "local queue", "blocking threads: "]);
        // Two workers: tokio's dump could wedge one, so none is requested,
        // and the report says why.
        assert_contains(
            &pool,
            &[
                "task traces: not taken for a multi_thread runtime with 2 workers: tokio's multi-thread task dump (as of tokio 1.54.1) can leave a worker waiting forever in its dump barrier",
            ],
        );
        assert!(!pool.contains("------ Task"), "{pool}");
    } else {
        assert_contains(
            &api,
            &[
                "task traces: not built in: build the application with RUSTFLAGS=\"--cfg tokio_unstable\"",
            ],
        );
    }

    // The process carries on, and the next report has the section again.
    fx.signal(libc::SIGUSR2);
    let reports = fx.wait_for_reports(2, WAIT);
    assert_contains(
        &green_threads(&reports[1]),
        &["Runtime \"api\" (multi_thread): 1 worker"],
    );
    let status = fx.finish(WAIT);
    assert!(status.success(), "{status:?}");
}

#[test]
fn tokio_task_traces_name_the_async_functions() {
    if !DUMPS {
        eprintln!(
            "built without --cfg tokio_unstable: no task traces to check (.ci/run checks them)"
        );
        return;
    }
    let fx = start(&[]);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let section = green_threads(&report);
    let api = runtime_part(&section, "api");
    assert_contains(&api, &["task traces: 4 tasks, 3 distinct traces"]);
    for function in [
        "tokio_fixture::fixture_wait_for_request",
        "tokio_fixture::fixture_sleep_until_tick",
        "tokio_fixture::fixture_wait_for_shutdown",
    ] {
        let frames = frames_naming(&api, function);
        assert!(!frames.is_empty(), "{function} not in the traces:\n{api}");
        // Symbolized like thread stacks: address, function, file:line, module+offset.
        assert!(
            frames.iter().any(|f| f.contains(" 0x")
                && f.contains("tokio_fixture.rs:")
                && f.contains("(tokio_fixture+0x")),
            "{frames:#?}"
        );
    }
    // The two tasks waiting in the same place are one group.
    assert!(
        api.lines()
            .any(|l| l.starts_with("------ Tasks ") && l.contains("(2 tasks) of runtime \"api\"")),
        "{api}"
    );
    let side = runtime_part(&section, "side");
    assert!(
        !frames_naming(&side, "tokio_fixture::fixture_side_sleep").is_empty(),
        "{side}"
    );
    // Leaf futures are tokio's: the trace goes from them to the task's root.
    let sleep = frames_naming(&api, "tokio_fixture::fixture_sleep_until_tick");
    assert!(!sleep.is_empty());
    assert!(
        !frames_naming(&api, "tokio::time::sleep::Sleep").is_empty(),
        "{api}"
    );
    let status = fx.finish(WAIT);
    assert!(status.success(), "{status:?}");
}

#[test]
fn tokio_blocked_runtimes_time_out_and_the_report_goes_on() {
    let fx = start(&["--blocked"]);
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    for title in [
        "Package",
        "Threads",
        "Green Threads",
        "Processes",
        "Configuration",
        "Process",
        "Modules",
        "Report",
    ] {
        assert!(
            report.sections.iter().any(|s| s == title),
            "{title}: {:?}",
            report.sections
        );
    }
    let section = green_threads(&report);
    let stuck = runtime_part(&section, "stuck");
    let wedge = runtime_part(&section, "wedge");
    let stalled = runtime_part(&section, "stalled");
    // Metrics come whatever the runtime does.
    assert_contains(&stuck, &["(multi_thread): 1 worker, 1 alive task"]);
    assert_contains(&wedge, &["(multi_thread): 2 workers, 1 alive task"]);
    assert_contains(&stalled, &["(current_thread): 1 worker"]);
    if DUMPS {
        assert_contains(
            &stuck,
            &["task traces: task dump timed out after 1000 ms: no worker took the dump"],
        );
        assert_contains(
            &stalled,
            &[
                "task traces: task dump timed out after 1000 ms: the runtime's thread did not run the dump task",
            ],
        );
        // One worker of two blocked: no dump is requested (tokio's would
        // leave the runtime stuck), and the blocked worker is named.
        assert_contains(&wedge, &["task traces: no task dump requested: worker "]);
        let blocked_rows: Vec<_> = worker_rows(&wedge)
            .into_iter()
            .filter(|(_, s)| s == "active")
            .collect();
        assert_eq!(blocked_rows.len(), 1, "{wedge}");
        assert_contains(
            &wedge,
            &[&format!(
                "worker {} has not been back in its scheduler",
                blocked_rows[0].0
            )],
        );
        // The healthy runtime's traces are in the same report.
        assert!(
            !frames_naming(&section, "tokio_fixture::fixture_wait_for_request").is_empty(),
            "{section}"
        );

        // The next report does not request the stuck runtime's pending dump
        // again; the current_thread runtime's dump was cancelled, so it is
        // tried (and times out) again.
        fx.signal(libc::SIGUSR2);
        let reports = fx.wait_for_reports(2, WAIT);
        let section = green_threads(&reports[1]);
        assert_contains(
            &runtime_part(&section, "stuck"),
            &["task traces: the dump requested by an earlier report has not ended"],
        );
        assert_contains(
            &runtime_part(&section, "stalled"),
            &["task traces: task dump timed out after 1000 ms"],
        );
    } else {
        for part in [&stuck, &wedge, &stalled] {
            assert_contains(part, &["task traces: not built in"]);
        }
    }
    let status = fx.finish(WAIT);
    assert!(status.success(), "{status:?}");
}

#[test]
fn tokio_green_threads_in_json() {
    let fx = start(&["--json"]);
    fx.signal(libc::SIGUSR2);
    let deadline = Instant::now() + WAIT;
    let doc: Value = loop {
        let text = fx.stderr_text();
        if let Some(doc) = text
            .lines()
            .filter(|l| l.starts_with('{'))
            .find_map(|l| serde_json::from_str(l).ok())
        {
            break doc;
        }
        assert!(Instant::now() < deadline, "no JSON report:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let sections = doc["sections"].as_array().expect("sections");
    let green = sections
        .iter()
        .find(|s| s["kind"] == "green_threads")
        .unwrap_or_else(|| panic!("no green_threads section: {doc}"));
    assert_eq!(green["title"], "Green Threads");
    assert_eq!(green["status"], "ok");
    let runtimes = green["data"]["runtimes"].as_array().expect("runtimes");
    assert_eq!(runtimes.len(), 3, "{green}");
    let api = &runtimes[0];
    assert_eq!(api["name"], "api");
    assert_eq!(api["flavor"], "multi_thread");
    assert_eq!(api["workers"], 1);
    assert_eq!(api["alive_tasks"], 4);
    assert_eq!(api["global_queue_depth"], 0);
    assert!(api["read_after_capture_ns"].is_u64(), "{api}");
    let workers = api["worker_figures"].as_array().expect("worker_figures");
    assert_eq!(workers.len(), 1);
    assert!(workers[0]["park_count"].is_u64(), "{api}");
    assert!(workers[0]["busy_ns"].is_u64(), "{api}");
    if DUMPS {
        let dump = &api["task_dump"];
        assert_eq!(dump["status"], "taken", "{dump}");
        assert_eq!(dump["tasks"], 4);
        let names: Vec<&str> = dump["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["traces"].as_array().into_iter().flatten())
            .flat_map(|t| t.as_array().into_iter().flatten())
            .flat_map(|f| f["functions"].as_array().into_iter().flatten())
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert!(
            names.iter().any(|n| n.contains("fixture_wait_for_request")),
            "{names:?}"
        );
    } else {
        assert_eq!(api["task_dump"]["status"], "not_taken");
    }
    assert_eq!(runtimes[1]["name"], "side");
    assert_eq!(runtimes[1]["flavor"], "current_thread");
    assert_eq!(runtimes[2]["name"], "pool");
    assert_eq!(runtimes[2]["workers"], 2);
    assert_eq!(runtimes[2]["task_dump"]["status"], "not_taken");
    let status = fx.finish(WAIT);
    assert!(status.success(), "{status:?}");
}
