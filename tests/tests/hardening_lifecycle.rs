//! Lifecycle and trigger hardening (issue 10 items 4, 5, 7, 11 and the
//! reporter/guard/trigger "smaller things"): fork, blocked signal masks,
//! queued real-time triggers, the file trigger's door, the rate limit, the
//! guard's drop. Each test runs `lifecycle_fixture` (or signals it), with the
//! harness's watchdog and a deadline on every wait.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use guru_tests::{Fixture, Report, parse_reports, stress, watchdog};

const FIXTURE: &str = env!("CARGO_BIN_EXE_lifecycle_fixture");
const WAIT: Duration = Duration::from_secs(20);

fn start(args: &[&str]) -> Fixture {
    watchdog(Duration::from_secs(240));
    let mut fx = Fixture::spawn(FIXTURE, args);
    fx.wait_for_line("ready pid=", WAIT);
    fx
}

fn my_pid() -> i32 {
    std::process::id() as i32
}

/// The value after `key=` in a `word key=value ...` line.
fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .to_string()
}

fn reports_of(fx: &Fixture, pid: i32) -> Vec<Report> {
    parse_reports(&fx.stderr_text())
        .into_iter()
        .filter(|r| r.pid == pid)
        .collect()
}

/// Waits until `pid` has `n` complete reports on the fixture's stderr.
fn wait_reports_of(fx: &Fixture, pid: i32, n: usize) -> Vec<Report> {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = reports_of(fx, pid);
        if r.len() >= n {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid}: {} of {n} reports within {WAIT:?}; stderr:\n{}",
            r.len(),
            fx.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Like `wait_for_line`, but also finds a line already seen (the forked
/// child and its parent print concurrently).
fn line_seen_or_next(fx: &mut Fixture, prefix: &str) -> String {
    if let Some(l) = fx.stdout_seen.iter().find(|l| l.starts_with(prefix)) {
        return l.clone();
    }
    fx.wait_for_line(prefix, WAIT)
}

/// Waits until the fixture's stderr contains `needle` (stderr and stdout
/// are read by different threads: a line on one says nothing of the other).
fn wait_stderr(fx: &Fixture, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = fx.stderr_text();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} on stderr within {WAIT:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the fixture's reporter thread woke more than `after` times
/// and sleeps again in a `poll` without timeout (it has handled what woke
/// it). Returns its wake-up count.
fn wait_reporter_idle(pid: i32, after: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let (tid, n) = reporter_wakeups(pid);
        let sc =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).unwrap_or_default();
        let f: Vec<&str> = sc.split_whitespace().collect();
        let nr: i64 = f.first().and_then(|v| v.parse().ok()).unwrap_or(-1);
        // poll(fds, nfds, -1) or ppoll(fds, nfds, NULL, ...).
        let forever = (nr == libc::SYS_poll && f.get(3).is_some_and(|t| t.ends_with("ffffffff")))
            || (nr == libc::SYS_ppoll && f.get(3) == Some(&"0x0"));
        if n > after && forever {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "reporter of {pid} not idle after {after} wake-ups: {n}, {sc}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) to a fixture process (or its forked child).
    let r = unsafe { libc::kill(pid, signal) };
    assert_eq!(r, 0, "kill({pid}, {signal})");
}

/// Waits until `pid` has no `signal` pending (it was delivered), so the
/// next one is not merged with it by the kernel.
fn wait_delivered(pid: i32, signal: i32) {
    let bit = 1u64 << (signal - 1);
    let deadline = Instant::now() + WAIT;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let pending = status
            .lines()
            .filter(|l| l.starts_with("ShdPnd:") || l.starts_with("SigPnd:"))
            .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
            .fold(0, |a, m| a | m);
        if pending & bit == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "signal {signal} stays pending");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn section(r: &Report, title: &str) -> String {
    r.section(title)
        .unwrap_or_else(|| panic!("no {title} section in:\n{}", r.text))
}

// ---------------------------------------------------------------------------
// Item 4: fork() in std mode
// ---------------------------------------------------------------------------

#[test]
fn child_forked_while_parent_holds_the_report_lock_reports_without_deadlock() {
    let mut fx = start(&["--gate", "--min-interval-ms", "0"]);
    // A thread of the parent is inside guru::report(), holding the report
    // lock, held in the Gate section, when main forks.
    fx.send_line("report-in-thread");
    fx.wait_for_line("gate-waiting", WAIT);
    fx.send_line("fork report");
    let child: i32 = field(&fx.wait_for_line("forked child=", WAIT), "child")
        .parse()
        .unwrap();
    // The child's own guru::report() returns (no deadlock) and is its own.
    let line = line_seen_or_next(&mut fx, "child-report ");
    assert_eq!(field(&line, "pid"), child.to_string(), "{line}");
    assert!(
        line.contains(&format!("==== Guru Meditation ==== pid {child} ")),
        "{line}"
    );
    let lines: usize = field(&line, "lines").parse().unwrap();
    assert!(lines > 20, "a whole report, not a stub: {line}");
    // The parent's report goes on once released; the child exits cleanly.
    fx.send_line("release");
    fx.wait_for_line("caller-report-done", WAIT);
    fx.send_line("child-exit");
    let exited = fx.wait_for_line("child-exited", WAIT);
    assert_eq!(
        exited,
        "child-exited code=0 signal=0",
        "{}",
        fx.stderr_text()
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}

#[test]
fn forked_child_returning_from_main_exits_cleanly() {
    let mut fx = start(&["--min-interval-ms", "0"]);
    fx.send_line("fork idle");
    fx.wait_for_line("forked child=", WAIT);
    line_seen_or_next(&mut fx, "child-started");
    fx.send_line("child-exit");
    fx.wait_for_line("child-returning", WAIT);
    let exited = fx.wait_for_line("child-exited", WAIT);
    assert_eq!(
        exited,
        "child-exited code=0 signal=0",
        "the child's Guard::drop must not panic:\n{}",
        fx.stderr_text()
    );
    assert!(
        !fx.stderr_text().contains("panicked"),
        "{}",
        fx.stderr_text()
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}

#[test]
fn sigusr2_to_a_forked_child_gives_the_childs_own_report() {
    let mut fx = start(&["--min-interval-ms", "0"]);
    let parent = fx.pid();
    fx.send_line("fork idle");
    let child: i32 = field(&fx.wait_for_line("forked child=", WAIT), "child")
        .parse()
        .unwrap();
    line_seen_or_next(&mut fx, "child-started");
    // In its waiting function (blocked reading the pipe), not on its way.
    guru_tests::wait_in_syscall(child, child, libc::SYS_read, WAIT);
    kill(child, libc::SIGUSR2);
    let reports = wait_reports_of(&fx, child, 1);
    let r = &reports[0];
    // Its own threads: the child has only the thread that forked, waiting.
    assert!(
        r.threads.iter().any(|t| t
            .frames
            .iter()
            .any(|f| f.contains("lifecycle_child_waiting"))),
        "{}",
        r.text
    );
    assert!(section(r, "Report").contains(&format!("from pid {}", my_pid())));
    // Nothing in the parent: its reporter never heard of it.
    assert!(reports_of(&fx, parent).is_empty(), "{}", fx.stderr_text());
    // The parent still reports on its own trigger.
    kill(parent, libc::SIGUSR2);
    let p = wait_reports_of(&fx, parent, 1);
    assert!(
        p[0].threads
            .iter()
            .any(|t| t.name.starts_with("lifecycle-sleep"))
    );
    assert_eq!(reports_of(&fx, child).len(), 1);
    fx.send_line("child-exit");
    assert_eq!(
        fx.wait_for_line("child-exited", WAIT),
        "child-exited code=0 signal=0"
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}

// ---------------------------------------------------------------------------
// Item 5: signals blocked before install
// ---------------------------------------------------------------------------

#[test]
fn blocked_signal_mask_is_detected_and_named_in_the_report() {
    let mut fx = start(&["--block-signals", "--min-interval-ms", "0"]);
    let pid = fx.pid();
    let sleeper = fx.announced_threads()["lifecycle-sleeper"];
    // Install warned: the installing thread blocks the capture signal.
    wait_stderr(
        &fx,
        "guru: warning: the thread installing guru blocks the capture signal",
    );
    // SIGUSR2 is blocked in every application thread: guru's reporter,
    // which unblocks it, takes it.
    fx.signal(libc::SIGUSR2);
    let reports = wait_reports_of(&fx, pid, 1);
    let r = &reports[0];
    let reporter = r.thread_named("guru-reporter");
    assert!(
        !reporter.frames.is_empty(),
        "the reporter captures itself:\n{}",
        r.text
    );
    let blocked = r
        .threads
        .iter()
        .find(|t| t.tid == sleeper)
        .unwrap_or_else(|| panic!("no sleeper thread in:\n{}", r.text));
    assert!(blocked.frames.is_empty(), "{}", blocked.header);
    let report = section(r, "Report");
    assert!(
        report.contains("threads blocking the capture signal SIGRTMIN+")
            && report.contains(&sleeper.to_string())
            && report.contains("the likely cause is the signal mask these threads inherited"),
        "{report}"
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}

// ---------------------------------------------------------------------------
// Item 7: queued real-time triggers
// ---------------------------------------------------------------------------

/// Started reports plus coalesced triggers over all reports.
fn accounted(reports: &[Report]) -> u64 {
    reports.len() as u64 + reports.iter().map(stress::coalesced).sum::<u64>()
}

#[test]
fn every_queued_realtime_trigger_is_reported_or_counted() {
    let fx = start(&["--signal-rt", "4"]);
    let pid = fx.pid();
    let signal = libc::SIGRTMIN() + 4;
    let mut accepted = 0u64;
    for _ in 0..20_000 {
        if stress::send(pid, signal, true) {
            accepted += 1;
        }
    }
    assert!(accepted > 5_000, "the kernel queued only {accepted}");
    // The last counts show in a later report: send one more trigger while
    // the books do not balance yet (each is accepted too).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    loop {
        let reports = reports_of(&fx, pid);
        let total = accounted(&reports);
        assert!(
            total <= accepted,
            "{total} accounted for, only {accepted} sent"
        );
        if total == accepted {
            eprintln!(
                "queued std storm: {accepted} accepted, {} reports, {} coalesced",
                reports.len(),
                total - reports.len() as u64
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{accepted} accepted, {total} accounted for in {} reports:\n{}",
            reports.len(),
            stress::tail(&fx.stderr_text(), 3000)
        );
        if reports.len() == seen {
            std::thread::sleep(Duration::from_millis(1500));
            if reports_of(&fx, pid).len() == seen {
                assert!(stress::send(pid, signal, true));
                accepted += 1;
            }
        }
        seen = reports.len();
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// Item 11 and the smaller things: rate limit, file trigger, report wording
// ---------------------------------------------------------------------------

#[test]
fn triggers_within_the_min_interval_make_one_later_report() {
    let dir = tempdir("rate");
    let file = dir.join("trigger");
    let mut fx = start(&[
        "--min-interval-ms",
        "3000",
        "--file-trigger",
        file.to_str().unwrap(),
    ]);
    let pid = fx.pid();
    fx.signal(libc::SIGUSR2);
    let first = wait_reports_of(&fx, pid, 1);
    // Within the interval: two signals and a file touch. Held, not dropped.
    fx.signal(libc::SIGUSR2);
    wait_delivered(pid, libc::SIGUSR2);
    fx.signal(libc::SIGUSR2);
    wait_delivered(pid, libc::SIGUSR2);
    std::fs::write(&file, b"now").unwrap();
    let reports = wait_reports_of(&fx, pid, 2);
    let second = section(&reports[1], "Report");
    assert!(
        second.contains("  requested by: SIGUSR2 from pid "),
        "{second}"
    );
    assert!(second.contains("  coalesced triggers: 2\n"), "{second}");
    assert!(
        second.contains("  rate limit: reports at least 3.000 s apart"),
        "{second}"
    );
    assert!(
        second.contains("  note: SIGUSR2 is a standard signal: one sent while another is still pending is merged by the kernel"),
        "{second}"
    );
    // The recent triggers come by time under a heading: the one that
    // started report 2 before the two coalesced into it.
    let list: Vec<&str> = second
        .lines()
        .skip_while(|l| !l.starts_with("  recent triggers, by time (oldest first):"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    assert_eq!(list.len(), 4, "{second}");
    assert!(list[0].ends_with("(started a report)"), "{second}");
    assert!(list[1].ends_with("(started a report)"), "{second}");
    assert!(
        list[2].ends_with("(coalesced)") && list[3].ends_with("(coalesced)"),
        "{second}"
    );
    // The file touch is worded as in "requested by" (issue 11: one wording).
    assert!(list[3].contains(": file trigger (coalesced)"), "{second}");
    assert!(!second.contains("a request without a signal"), "{second}");
    let times: Vec<&str> = list
        .iter()
        .map(|l| l.trim().split(": ").next().unwrap_or(""))
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "{second}");
    // The reporter is described as what it is doing.
    let reporter = first[0].thread_named("guru-reporter");
    assert!(
        reporter
            .header
            .contains("(the reporter, writing this report; paused "),
        "{}",
        reporter.header
    );
    assert!(
        !reporter.header.contains("in syscall"),
        "{}",
        reporter.header
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("guru-lifecycle-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn trigger_file_of_another_user_is_ignored_and_counted() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to give the trigger file to another user (chown)");
        return;
    }
    let dir = tempdir("owner");
    let file = dir.join("trigger");
    let mut fx = start(&[
        "--min-interval-ms",
        "0",
        "--file-trigger",
        file.to_str().unwrap(),
    ]);
    let pid = fx.pid();
    let idle = wait_reporter_idle(pid, 0);
    // Another user's file at the trigger path, created and written (its
    // creation under its own name, so it is another user's from the start).
    let staged = dir.join("staged");
    std::fs::write(&staged, b"x").unwrap();
    std::os::unix::fs::chown(&staged, Some(65534), Some(65534)).unwrap();
    std::fs::rename(&staged, &file).unwrap();
    let woke = wait_reporter_idle(pid, idle);
    std::fs::write(&file, b"again").unwrap();
    wait_reporter_idle(pid, woke);
    assert!(reports_of(&fx, pid).is_empty(), "{}", fx.stderr_text());
    // Ours again: the touch triggers, and the report says what was ignored.
    std::os::unix::fs::chown(&file, Some(0), Some(0)).unwrap();
    std::fs::write(&file, b"ours").unwrap();
    let reports = wait_reports_of(&fx, pid, 1);
    let text = section(&reports[0], "Report");
    assert!(text.contains("  requested by: file trigger "), "{text}");
    assert!(
        text.contains("  file trigger: 2 touches ignored since the last report (the file is owned by uid 65534, not by this process's user or root)"),
        "{text}"
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The voluntary context switches of the fixture's reporter thread: each
/// wake-up from `poll` is one.
/// (The thread names itself once it runs: wait for that.)
fn reporter_wakeups(pid: i32) -> (i32, u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = find_reporter(pid) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no guru-reporter thread in {pid}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn find_reporter(pid: i32) -> Option<(i32, u64)> {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = entry.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() == "guru-reporter" {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            let n = status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap();
            let tid = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
            return Some((tid, n));
        }
    }
    None
}

#[test]
fn only_the_trigger_file_wakes_the_reporter() {
    let dir = tempdir("named");
    let file = dir.join("trigger");
    let other = dir.join("other.log");
    std::fs::write(&other, b"").unwrap();
    let fx = start(&[
        "--min-interval-ms",
        "0",
        "--file-trigger",
        file.to_str().unwrap(),
    ]);
    let pid = fx.pid();
    let (tid, _) = reporter_wakeups(pid);
    // Asleep in poll (after indexing debug info).
    let deadline = Instant::now() + WAIT;
    loop {
        let sc = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).unwrap();
        let nr: i64 = sc.split_whitespace().next().unwrap().parse().unwrap_or(-1);
        if nr == libc::SYS_poll || nr == libc::SYS_ppoll {
            break;
        }
        assert!(Instant::now() < deadline, "reporter never sleeps: {sc}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (_, before) = reporter_wakeups(pid);
    // Busy neighbours: another file in the same directory written and
    // touched over and over.
    for i in 0..50 {
        std::fs::write(&other, format!("line {i}\n")).unwrap();
        let f = std::fs::File::open(&other).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
    }
    // inotify queues events at once; give a woken reporter time to run.
    std::thread::sleep(Duration::from_millis(300));
    let (_, after) = reporter_wakeups(pid);
    assert_eq!(
        after, before,
        "the reporter woke for another file in the trigger's directory"
    );
    // The trigger file itself still works.
    std::fs::write(&file, b"now").unwrap();
    let reports = wait_reports_of(&fx, pid, 1);
    assert!(section(&reports[0], "Report").contains("requested by: file trigger"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dropping_the_guard_restores_the_signal_default_and_reinstall_works() {
    let mut fx = start(&["--min-interval-ms", "0"]);
    let pid = fx.pid();
    fx.signal(libc::SIGUSR2);
    wait_reports_of(&fx, pid, 1);
    fx.send_line("drop-guard");
    fx.wait_for_line("guard-dropped", WAIT);
    fx.send_line("reinstall");
    fx.wait_for_line("reinstalled", WAIT);
    fx.signal(libc::SIGUSR2);
    wait_reports_of(&fx, pid, 2);
    fx.send_line("drop-guard");
    fx.wait_for_line("guard-dropped", WAIT);
    // SIGUSR2's default action again: it terminates the process.
    fx.signal(libc::SIGUSR2);
    let status = fx.finish(WAIT);
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(libc::SIGUSR2),
        "after the guard is dropped SIGUSR2 must do what it did before guru: {status:?}"
    );
}

#[test]
fn discarded_guard_is_loud_and_report_is_consistent() {
    let mut fx = start(&["--discard-guard"]);
    wait_stderr(
        &fx,
        "so guru is uninstalled again: bind it for the life of the program (`let _guard = ...`, not `let _ = ...`) or call Guard::keep()",
    );
    fx.send_line("call-report");
    fx.wait_for_line("call-report-end", WAIT);
    let text: String = fx
        .stdout_seen
        .iter()
        .filter_map(|l| l.strip_prefix("| "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("guru is not installed"), "{text}");
    assert!(!text.contains("guru installed"), "{text}");
    assert!(text.contains("(guru not installed)"), "{text}");
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}

#[test]
fn dropping_the_guard_is_bounded_while_the_reporter_is_stuck() {
    let mut fx = start(&["--stuck-section", "--min-interval-ms", "0"]);
    fx.signal(libc::SIGUSR2);
    fx.wait_for_line("stuck-entered", WAIT);
    fx.send_line("drop-guard");
    fx.wait_for_line("guard-dropped", WAIT);
    wait_stderr(
        &fx,
        "guru: the reporter thread did not stop within 3 s of dropping the guard",
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}
