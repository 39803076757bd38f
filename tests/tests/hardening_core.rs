//! The core under pressure (issue 10, items 6 and 9, and the smaller
//! things seen): more readable mappings or threads than the readable-range
//! table holds, no descriptor left, no `/proc`, a thread stopped by a
//! tracer, a thread blocked in `openat`. Each test runs the core fixture,
//! signals it and checks its stderr report.
#![cfg(target_os = "linux")]
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use guru_tests::{Fixture, Report, ThreadBlock};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");
const WAIT: Duration = Duration::from_secs(30);

/// Starts the fixture (program `program`, e.g. a wrapper) and waits for it.
fn start_with(program: &str, args: &[&str]) -> (Fixture, BTreeMap<String, i32>) {
    let mut fx = Fixture::spawn(program, args);
    fx.wait_for_line("ready pid=", WAIT);
    let threads = fx.announced_threads();
    for (name, call) in [
        ("sleeper", libc::SYS_clock_nanosleep),
        ("pipe-reader", libc::SYS_read),
    ] {
        if let Some(&tid) = threads.get(name) {
            wait_in_syscall_if_visible(fx.pid(), tid, call);
        }
    }
    (fx, threads)
}

fn start(args: &[&str]) -> (Fixture, BTreeMap<String, i32>) {
    start_with(FIXTURE, args)
}

/// As `guru_tests::wait_in_syscall`, but only where this process can see the
/// fixture's `/proc` (a fixture in its own mount namespace still shows in
/// ours).
fn wait_in_syscall_if_visible(pid: i32, tid: i32, call: libc::c_long) {
    if std::path::Path::new(&format!("/proc/{pid}/task/{tid}/syscall")).exists() {
        guru_tests::wait_in_syscall(pid, tid, call, WAIT);
    }
}

/// Threads that captured themselves but could not unwind for lack of a
/// readable range around their stack pointer.
fn unknown_stacks(report: &Report) -> Vec<&ThreadBlock> {
    report
        .threads
        .iter()
        .filter(|t| {
            t.notes
                .iter()
                .any(|n| n.contains("outside any readable mapping"))
        })
        .collect()
}

/// Sends SIGUSR2 until report number `n` is out and returns it. A trigger
/// that lands while the previous round is still letting go is only counted
/// as coalesced, so it is sent again when no report follows.
fn report_number(fx: &Fixture, n: usize) -> Report {
    let deadline = Instant::now() + WAIT;
    loop {
        fx.signal(libc::SIGUSR2);
        let resend = Instant::now() + Duration::from_secs(3);
        while Instant::now() < resend {
            if let Some(r) = guru_tests::parse_reports(&fx.stderr_text())
                .into_iter()
                .nth(n - 1)
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no report #{n} within {WAIT:?}:\n{}",
                fx.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn one_report(fx: &Fixture) -> Report {
    report_number(fx, 1)
}

#[test]
fn thousands_of_mappings_keep_thread_stacks_tracked() {
    // 4000 separate readable mappings, made after the threads started: they
    // sit below the stacks and libraries, and the table (3072 ranges by
    // default) used to keep only the lowest addresses. Read from the text
    // of /proc/self/maps (as on kernels without PROCMAP_QUERY).
    let (fx, threads) = start(&[
        "--mappings",
        "4000",
        "--deadline-ms",
        "5000",
        "--no-maps-query",
    ]);
    let report = one_report(&fx);
    let figures = report.section("Report").expect("Report section");
    assert!(
        figures.contains("readable mappings not tracked (table full)"),
        "the table must overflow for this test to mean anything:\n{figures}"
    );
    check_thousands_of_mappings(&report, &threads);
}

#[test]
fn thousands_of_mappings_with_maps_query_need_no_room_in_the_table() {
    // The same process where the kernel answers PROCMAP_QUERY: the table
    // holds code only and each thread asks for its own stack, so nothing
    // is left out however many mappings there are.
    if !guru_core::sys::maps_query_available() {
        eprintln!("SKIPPED: this kernel has no PROCMAP_QUERY (Linux 6.11 and later)");
        return;
    }
    let (fx, threads) = start(&["--mappings", "4000", "--deadline-ms", "5000"]);
    let report = one_report(&fx);
    let figures = report.section("Report").expect("Report section");
    assert!(
        !figures.contains("readable mappings"),
        "with PROCMAP_QUERY no mapping is left out or unknown:\n{figures}"
    );
    check_thousands_of_mappings(&report, &threads);
    // The descriptor the threads query is kept: a second report is as whole.
    let second = report_number(&fx, 2);
    check_thousands_of_mappings(&second, &threads);
}

fn check_thousands_of_mappings(report: &Report, threads: &BTreeMap<String, i32>) {
    assert!(
        unknown_stacks(report).is_empty(),
        "threads lost their stacks:\n{}",
        report.text
    );
    assert_eq!(report.figure("threads:", "captured"), threads.len() as u64);
    report
        .thread_named("sleeper")
        .assert_frames_in_order(&["fixture::sleeping_in_std_sleep"]);
    report
        .thread_named("recursion")
        .assert_frames_in_order(&["fixture::recursing"]);
    // Code stays tracked too: the syscall a thread sits in is read from the
    // instruction bytes at its pc.
    let pipe = &report.thread_named("pipe-reader").header;
    assert!(pipe.contains("in syscall read"), "{pipe}");
}

#[test]
fn three_thousand_threads_keep_their_stacks_tracked() {
    // Each Rust thread has two readable mappings (its stack and its
    // alternate signal stack): 6000 and more, for a table of 3072 (read
    // from the text of /proc/self/maps; with PROCMAP_QUERY the table holds
    // code only).
    let (fx, threads) = start(&["--idle", "3000", "--no-maps-query"]);
    assert!(threads.len() > 3000);
    let report = one_report(&fx);
    let figures = report.section("Report").expect("Report section");
    assert!(
        figures.contains("readable mappings not tracked (table full)"),
        "the table must overflow for this test to mean anything:\n{figures}"
    );
    let lost = unknown_stacks(&report);
    assert!(
        lost.is_empty(),
        "{} captured threads lost their stacks, e.g. {:?}",
        lost.len(),
        lost.first().map(|t| &t.header)
    );
    // The machine is shared: not every thread answers within the deadline,
    // but every one that did is unwound into its parking function.
    let captured = report.figure("threads:", "captured");
    assert!(captured > 0, "{figures}");
    let idle_unwound = report
        .threads
        .iter()
        .filter(|t| t.name.starts_with("idle-") && !t.frames.is_empty())
        .filter(|t| t.frame_index("fixture::sleeping_in_std_sleep").is_some())
        .count();
    let idle_captured = report
        .threads
        .iter()
        .filter(|t| t.name.starts_with("idle-") && !t.frames.is_empty())
        .count();
    assert!(idle_captured > 0, "{figures}");
    assert_eq!(idle_unwound, idle_captured, "{figures}");
}

#[test]
fn a_process_out_of_descriptors_still_lists_every_thread() {
    let (fx, threads) = start(&["--exhaust-fds", "--deadline-ms", "5000"]);
    let report = one_report(&fx);
    assert_eq!(
        report.figure("threads:", "listed"),
        threads.len() as u64,
        "{}",
        report.text
    );
    assert_eq!(report.figure("threads:", "captured"), threads.len() as u64);
    assert!(!report.text.contains("thread list incomplete"));
    assert!(unknown_stacks(&report).is_empty(), "{}", report.text);
    report
        .thread_named("sleeper")
        .assert_frames_in_order(&["fixture::sleeping_in_std_sleep"]);
    // The kept descriptors are rewound: a second report is just as whole.
    let second = report_number(&fx, 2);
    assert_eq!(second.figure("threads:", "captured"), threads.len() as u64);
}

/// The report of a process that could not list its threads: the thread that
/// wrote it is there, unwound, and the reason is given.
fn check_writer_only(report: &Report, main_tid: i32, reason: &str) {
    assert_eq!(report.figure("threads:", "listed"), 1, "{}", report.text);
    assert_eq!(report.figure("threads:", "captured"), 1, "{}", report.text);
    let writer = &report.threads[0];
    assert_eq!(writer.tid, main_tid, "{}", report.text);
    assert!(
        writer.header.contains("writing this report"),
        "{}",
        writer.header
    );
    assert!(
        writer.frames.len() >= 3,
        "the writer is unwound:\n{}",
        report.text
    );
    assert!(unknown_stacks(report).is_empty(), "{}", report.text);
    let figures = report.section("Report").expect("Report section");
    assert!(
        figures.contains(&format!("cannot list /proc/self/task: {reason}")),
        "{figures}"
    );
    assert!(
        figures.contains("shown: the thread writing this report"),
        "{figures}"
    );
}

#[test]
fn out_of_descriptors_from_the_start_shows_the_writer_and_says_why() {
    let (fx, threads) = start(&["--exhaust-fds-before-install"]);
    let report = one_report(&fx);
    // The trigger handler runs on whichever thread the kernel picks.
    let writer = report.threads.first().map(|t| t.tid).unwrap_or(0);
    assert!(threads.values().any(|&t| t == writer), "{}", report.text);
    check_writer_only(&report, writer, "EMFILE");
}

#[test]
fn without_proc_the_report_shows_the_writer_and_says_why() {
    // A private mount namespace with an empty tmpfs over /proc.
    let probe = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs none /proc"])
        .status();
    if !probe.as_ref().is_ok_and(|s| s.success()) {
        println!("SKIPPED: cannot mount over /proc in a private mount namespace here ({probe:?})");
        return;
    }
    let script = "mount -t tmpfs none /proc && exec \"$0\" \"$@\"";
    let (mut fx, threads) = start_with("unshare", &["-m", "sh", "-c", script, FIXTURE]);
    let report = one_report(&fx);
    let writer = report.threads.first().map(|t| t.tid).unwrap_or(0);
    assert!(threads.values().any(|&t| t == writer), "{}", report.text);
    println!("{}", report.text);
    check_writer_only(&report, writer, "ENOENT");
    let figures = report.section("Report").expect("Report section");
    assert!(
        figures.contains("cannot read /proc/self/maps: ENOENT"),
        "{figures}"
    );
    // A report on request (from normal context: the main thread signals
    // itself) shows the main thread.
    fx.send_line("report");
    fx.wait_for_line("reported", WAIT);
    let second = fx.wait_for_reports(2, WAIT).remove(1);
    check_writer_only(&second, threads["main"], "ENOENT");
    second.threads[0].assert_frames_in_order(&["guru_core::write_report"]);
}

/// Detaches from a stopped tracee when dropped (also when an assertion
/// fails): a killed fixture with a thread still traced by us would leave a
/// zombie that only our `waitpid(tid, __WALL)` reaps, and `Fixture`'s drop
/// would wait for it forever.
struct Traced(i32);

impl Drop for Traced {
    fn drop(&mut self) {
        // SAFETY: detaching our tracee (in its ptrace stop).
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0) };
    }
}

/// Stops thread `tid` with PTRACE_SEIZE + PTRACE_INTERRUPT and waits until
/// it is in its ptrace stop. `None` (and says why) if not permitted.
fn ptrace_stop(tid: i32) -> Option<Traced> {
    // SAFETY: ptrace(2) requests on a thread of our own child.
    let seized = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) };
    if seized != 0 {
        println!(
            "SKIPPED: PTRACE_SEIZE not permitted: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    let traced = Traced(tid);
    // SAFETY: as above; the thread is now our tracee.
    let r = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
    assert_eq!(
        r,
        0,
        "PTRACE_INTERRUPT: {}",
        std::io::Error::last_os_error()
    );
    let mut status = 0;
    // SAFETY: waitpid(2) for our tracee, with a valid status pointer.
    let w = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
    assert_eq!(w, tid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(libc::WIFSTOPPED(status), "status {status:#x}");
    Some(traced)
}

fn task_state(pid: i32, tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn a_thread_stopped_by_a_tracer_is_called_so() {
    let (fx, threads) = start(&[]);
    let tid = threads["sleeper"];
    // Declared after `fx`, so dropped (detached) before the fixture is killed.
    let Some(traced) = ptrace_stop(tid) else {
        return;
    };
    let deadline = Instant::now() + WAIT;
    while task_state(fx.pid(), tid) != Some('t') {
        assert!(Instant::now() < deadline, "{tid} never showed state t");
        std::thread::sleep(Duration::from_millis(5));
    }
    let first = report_number(&fx, 1);
    let header = &first.thread_named("sleeper").header;
    println!("first: {header}");
    assert!(
        header.contains("state t, stopped by a tracer (ptrace)"),
        "{header}"
    );
    assert!(!header.contains("may be blocked"), "{header}");
    // The next round finds the first capture signal still pending: the
    // tracer, not the thread, is why.
    let second = report_number(&fx, 2);
    let header = &second.thread_named("sleeper").header;
    println!("second: {header}");
    assert!(
        header.contains("stopped by a tracer (ptrace)") && header.contains("still pending"),
        "{header}"
    );
    assert!(!header.contains("the thread blocks it"), "{header}");
    drop(traced);
}

#[test]
fn a_thread_opening_a_fifo_is_in_syscall_openat() {
    let dir = std::env::temp_dir().join(format!("guru-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    let path = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).expect("path");
    // SAFETY: mkfifo(3) of a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let (fx, threads) = start(&["--fifo", fifo.to_str().expect("utf-8 path")]);
    wait_in_syscall_if_visible(fx.pid(), threads["fifo-opener"], libc::SYS_openat);
    let report = one_report(&fx);
    let opener = report.thread_named("fifo-opener");
    println!("{}", opener.header);
    assert!(
        opener.header.contains("in syscall openat"),
        "{}",
        opener.header
    );
    opener.assert_frames_in_order(&["fixture::opening_a_fifo"]);
    drop(fx);
    let _ = std::fs::remove_dir_all(&dir);
}
