//! Issue 10, bounded output and log files: a stderr pipe nobody reads (core
//! and std), a non-blocking stderr with a slow reader, a full disk in
//! `log_dir` (a file size limit: the write fails with `EFBIG` like a full
//! disk's `ENOSPC`, and it needs no mount), the log directory swapped for a
//! symlink after install, and a missing log directory.
//!
//! The pipes here are made by the test and given to the fixture as its
//! stderr: shrunk to one page (`F_SETPIPE_SZ`) and filled with newlines
//! before the fixture starts, so "nobody reads" is exact, not a matter of
//! how big a report is.
#![allow(unsafe_code)]

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guru_tests::{Fixture, Report, parse_reports};

const CORE_FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");
const STD_FIXTURE: &str = env!("CARGO_BIN_EXE_std_fixture");
const READY: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);

/// A pipe of one page: (read end, write end), both close-on-exec (the
/// fixture gets the write end as its stderr through `Stdio`, a dup).
fn small_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two-element array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here alone.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a pipe we own.
    let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert_eq!(size, 4096, "F_SETPIPE_SZ");
    (r, w)
}

fn set_nonblocking(fd: &OwnedFd, on: bool) {
    // SAFETY: fcntl F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        assert!(flags >= 0);
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        assert_eq!(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags), 0);
    }
}

/// Fills the pipe behind `w` with newlines (blank lines, so the report that
/// follows once drained starts on a line of its own). Leaves `w` blocking.
fn fill(w: &OwnedFd) -> usize {
    set_nonblocking(w, true);
    let chunk = [b'\n'; 4096];
    let mut total = 0;
    loop {
        // SAFETY: writing a valid buffer to a descriptor we own.
        let n = unsafe { libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) };
        if n <= 0 {
            break;
        }
        total += n as usize;
    }
    set_nonblocking(w, false);
    assert!(total >= 4096, "pipe filled with {total} bytes");
    total
}

/// A pipe that nobody reads, ready to be a fixture's stderr.
fn full_pipe() -> (OwnedFd, Stdio) {
    let (r, w) = small_pipe();
    fill(&w);
    (r, Stdio::from(w))
}

/// Reads `r` in a thread until EOF, `chunk` bytes at a time with `pause`
/// between reads; returns what arrived so far, shared.
fn read_in_background(r: OwnedFd, chunk: usize, pause: Duration) -> Arc<Mutex<Vec<u8>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut file = std::fs::File::from(r);
        let mut buf = vec![0u8; chunk];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
            std::thread::sleep(pause);
        }
    });
    out
}

fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// Waits until `buf` holds `count` complete reports.
fn wait_reports(buf: &Arc<Mutex<Vec<u8>>>, count: usize, timeout: Duration) -> Vec<Report> {
    let deadline = Instant::now() + timeout;
    loop {
        let reports = parse_reports(&text(buf));
        if reports.len() >= count {
            return reports;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} complete reports within {timeout:?}, found {}; output:\n{}",
            reports.len(),
            text(buf)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asks the core fixture for its allocation count: answered only if its
/// main thread (the one that takes SIGUSR2) is not stuck in the handler.
fn core_alive(fx: &mut Fixture) {
    fx.send_line("allocs");
    fx.wait_for_line("allocs ", WAIT);
}

/// `guru::report()` in the std fixture, through its stdin/stdout.
fn call_report(fx: &mut Fixture) -> String {
    fx.send_line("call-report");
    fx.wait_for_line("call-report-begin", WAIT);
    let mut lines = Vec::new();
    loop {
        let line = fx.wait_for_line("", WAIT);
        if line == "call-report-end" {
            return lines.join("\n");
        }
        lines.push(line.strip_prefix("| ").unwrap_or(&line).to_string());
    }
}

/// Calls `guru::report()` until its Report section has the "output
/// dropped" line, and returns that line.
fn wait_dropped_line(fx: &mut Fixture) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let report = call_report(fx);
        if let Some(line) = report.lines().find(|l| l.contains("output dropped:")) {
            return line.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no report said 'output dropped' within {WAIT:?}; the last:\n{report}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dropped_line(report: &Report) -> Option<&str> {
    report
        .text
        .lines()
        .find(|l| l.contains("output dropped:"))
        .map(str::trim)
}

/// Item 1: in core-only mode, a trigger with stderr a full pipe used to block
/// the handler (and its thread) forever in write(2). Now the write gives up at
/// the round's deadline, the process runs on, and once the pipe is drained
/// the next report says what was dropped.
#[test]
fn core_full_stderr_pipe_does_not_block_the_handler() {
    let (r, stderr) = full_pipe();
    let mut fx = Fixture::spawn_with_stderr(CORE_FIXTURE, &[], stderr);
    fx.wait_for_line("ready", READY);
    core_alive(&mut fx);
    for _ in 0..2 {
        fx.signal(libc::SIGUSR2);
        // The main thread took the signal; it answers once the handler
        // returned (before: never).
        core_alive(&mut fx);
    }
    assert!(fx.is_alive());
    let out = read_in_background(r, 65536, Duration::ZERO);
    fx.signal(libc::SIGUSR2);
    let reports = wait_reports(&out, 1, WAIT);
    let last = reports.last().unwrap();
    assert_eq!(last.sequence, 3, "reports #1 and #2 were dropped whole");
    let line = dropped_line(last).unwrap_or_else(|| panic!("no dropped line:\n{}", last.text));
    assert!(
        line.contains(" of 2 reports not written (last #2: the output stayed full"),
        "{line}"
    );
    let bytes: u64 = line
        .strip_prefix("output dropped: ")
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {line:?}"));
    assert!(bytes > 2 * 1000, "two whole reports' bytes dropped: {line}");
    // A report written whole clears the tally.
    fx.signal(libc::SIGUSR2);
    let reports = wait_reports(&out, 2, WAIT);
    assert_eq!(dropped_line(&reports[1]), None, "{}", reports[1].text);
    core_alive(&mut fx);
}

/// Item 2: with the std adapter, the reporter thread used to block in write
/// forever (and dropping the guard then blocked main in join). Now the
/// reporter gives up after `output_timeout`, later reports say what was
/// dropped, and the fixture exits cleanly after dropping its guard.
#[test]
fn std_full_stderr_pipe_is_bounded_and_told() {
    let (r, stderr) = full_pipe();
    let mut fx = Fixture::spawn_with_stderr(STD_FIXTURE, &["--output-timeout-ms", "300"], stderr);
    fx.wait_for_line("ready", READY);
    fx.signal(libc::SIGUSR2);
    // The reporter gave up on the signal's report: guru::report() says so.
    // (Its number depends on whether a call's round began first.)
    let line = wait_dropped_line(&mut fx);
    assert!(line.contains(" of 1 report not written (last #"), "{line}");
    assert!(line.contains(": the output stayed full"), "{line}");
    let last = line
        .split("(last #")
        .nth(1)
        .and_then(|l| l.split(':').next())
        .unwrap();
    // Drained: the next report comes out whole and tells of #1.
    let out = read_in_background(r, 65536, Duration::ZERO);
    fx.signal(libc::SIGUSR2);
    let reports = wait_reports(&out, 1, WAIT);
    let told = dropped_line(&reports[0]).unwrap_or_else(|| panic!("{}", reports[0].text));
    assert!(
        told.contains(&format!("(last #{last}: the output stayed full")),
        "{told}"
    );
    fx.send_line("exit");
    let status = fx.finish(WAIT);
    assert!(status.success(), "fixture exit: {status}");
}

/// Item 2, the other half: a trigger while stderr stays full, then the guard
/// is dropped: the process still exits, in bounded time.
#[test]
fn std_exits_cleanly_with_stderr_never_drained() {
    let (r, stderr) = full_pipe();
    let mut fx = Fixture::spawn_with_stderr(STD_FIXTURE, &["--output-timeout-ms", "300"], stderr);
    fx.wait_for_line("ready", READY);
    fx.signal(libc::SIGUSR2);
    wait_dropped_line(&mut fx);
    // A second report, stuck in its write when the guard is dropped.
    fx.signal(libc::SIGUSR2);
    fx.send_line("exit");
    let status = fx.finish(WAIT);
    assert!(status.success(), "fixture exit: {status}");
    drop(r);
}

/// Item 3: a non-blocking stderr whose reader is slow used to get the report
/// cut at the first EAGAIN, mid-line and with no note. Now the reporter
/// polls within the default output timeout and the report arrives whole.
#[test]
fn std_nonblocking_stderr_with_a_slow_reader_gets_the_whole_report() {
    let (r, w) = small_pipe();
    // O_NONBLOCK on the write end's file description: the fixture's stderr.
    set_nonblocking(&w, true);
    let mut fx = Fixture::spawn_with_stderr(STD_FIXTURE, &[], Stdio::from(w));
    fx.wait_for_line("ready", READY);
    // About 100 KiB/s: a page every ~40 ms.
    let out = read_in_background(r, 512, Duration::from_millis(5));
    fx.signal(libc::SIGUSR2);
    let reports = wait_reports(&out, 1, WAIT);
    let report = &reports[0];
    // More than the pipe holds: the reporter had to wait for the reader.
    assert!(
        report.text.len() > 2 * 4096,
        "a report of several pages, not {} bytes:\n{}",
        report.text.len(),
        report.text
    );
    assert!(report.section("Report").is_some(), "{}", report.text);
    let all = text(&out);
    assert!(!all.contains("not written whole"), "{all}");
    assert_eq!(dropped_line(report), None);
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("guru-hardening-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits until the fixture's stderr has a line containing `needle`.
fn wait_stderr(fx: &Fixture, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = fx.stderr_text();
        if let Some(line) = all.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no stderr line with {needle:?}; stderr:\n{all}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Item 8: a write that fails part-way (here the file size limit, EFBIG, as
/// a full disk fails with ENOSPC) used to leave a partial report file. Now
/// nothing is left in the directory (the temporary file is removed), one
/// line on stderr says why, and the whole report follows on stderr.
#[test]
fn disk_full_leaves_no_partial_file_and_falls_back_to_stderr() {
    let dir = fresh_dir("fsize");
    let d = dir.to_str().unwrap();
    let mut fx = Fixture::spawn(STD_FIXTURE, &["--log-dir", d, "--fsize-limit", "4096"]);
    fx.wait_for_line("ready", READY);
    fx.signal(libc::SIGUSR2);
    let reports = fx.wait_for_reports(1, WAIT);
    assert!(
        reports[0].text.len() > 4096,
        "the report is larger than the limit"
    );
    let why = wait_stderr(&fx, "cannot write report file");
    assert!(why.contains("File too large"), "{why}");
    assert!(why.contains("the report follows on stderr"), "{why}");
    assert_eq!(
        names_in(&dir),
        Vec::<String>::new(),
        "no file, whole or partial"
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 8 on a really full disk: a 64 KiB tmpfs (mounted by the fixture in
/// a mount namespace of its own) filled to 8 KiB: the write fails with
/// ENOSPC part-way. Nothing may be left in the directory but the filler.
/// Where mounting is not permitted this test prints SKIPPED and says why
/// (the `RLIMIT_FSIZE` test above covers the same path everywhere).
#[test]
fn disk_full_on_a_tmpfs_leaves_no_partial_file() {
    let dir = fresh_dir("tmpfs");
    let d = dir.to_str().unwrap();
    let mut fx = Fixture::spawn(STD_FIXTURE, &["--log-dir", d, "--tmpfs-log-dir"]);
    loop {
        let line = fx.wait_for_line("", READY);
        if let Some(why) = line.strip_prefix("tmpfs-unavailable: ") {
            println!(
                "SKIPPED disk_full_on_a_tmpfs_leaves_no_partial_file: cannot mount a tmpfs here ({why})"
            );
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        if line.starts_with("ready") {
            break;
        }
    }
    // The fixture's view of the directory: its tmpfs, not ours.
    let inside = PathBuf::from(format!("/proc/{}/root{}", fx.pid(), d));
    assert_eq!(names_in(&inside), ["filler"]);
    fx.signal(libc::SIGUSR2);
    let reports = fx.wait_for_reports(1, WAIT);
    assert!(reports[0].text.len() > 8192, "larger than the space left");
    let why = wait_stderr(&fx, "cannot write report file");
    assert!(why.contains("No space left on device"), "{why}");
    assert_eq!(names_in(&inside), ["filler"], "no file, whole or partial");
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 12: the log directory renamed away after install and a symlink to
/// another directory put in its place used to redirect reports there. Now
/// they go on into the directory opened at install, nothing into the
/// symlink's target, and the stderr line names where the file really is.
#[test]
fn log_dir_swapped_for_a_symlink_after_install_is_not_followed() {
    let base = fresh_dir("swap");
    let logs = base.join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut fx = Fixture::spawn(STD_FIXTURE, &["--log-dir", logs.to_str().unwrap()]);
    fx.wait_for_line("ready", READY);
    let moved = base.join("logs.orig");
    let elsewhere = base.join("elsewhere");
    std::fs::rename(&logs, &moved).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &logs).unwrap();
    fx.signal(libc::SIGUSR2);
    // Wait for the file, wherever it lands.
    let deadline = Instant::now() + WAIT;
    while names_in(&moved).is_empty() && names_in(&elsewhere).is_empty() {
        assert!(Instant::now() < deadline, "no report file within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        names_in(&elsewhere),
        Vec::<String>::new(),
        "nothing through the symlink"
    );
    let line = wait_stderr(&fx, "written to");
    let files = names_in(&moved);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("std-fixture_gurumeditation_") && files[0].ends_with(".txt"),
        "{files:?}"
    );
    let path = moved.join(&files[0]);
    assert!(
        line.ends_with(&format!("written to {}", path.display())),
        "{line}"
    );
    let body = std::fs::read_to_string(&path).unwrap();
    let reports = parse_reports(&body);
    assert_eq!(reports.len(), 1, "one whole report in the file:\n{body}");
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
    std::fs::remove_dir_all(&base).unwrap();
}

/// Issue 11's log-directory item: a missing `log_dir` used to fail install.
/// Now it is created (mode 0700), and one stderr line says where each report
/// went; every file under its final name is a whole report.
#[test]
fn missing_log_dir_is_created_and_each_report_is_announced() {
    let base = fresh_dir("missing");
    let logs = base.join("a/b");
    let mut fx = Fixture::spawn(STD_FIXTURE, &["--log-dir", logs.to_str().unwrap()]);
    fx.wait_for_line("ready", READY);
    let mode = std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "created with mode {mode:o}");
    for n in 1..=2u64 {
        fx.signal(libc::SIGUSR2);
        wait_stderr(&fx, &format!("guru: report #{n} written to "));
    }
    let files = names_in(&logs);
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let path = logs.join(f);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
        assert!(
            fx.stderr_text()
                .contains(&format!("written to {}\n", path.display())),
            "{f} announced"
        );
        let body = std::fs::read_to_string(&path).unwrap();
        assert_eq!(parse_reports(&body).len(), 1, "{f} holds one whole report");
    }
    assert_eq!(
        parse_reports(&fx.stderr_text()).len(),
        0,
        "reports went to files"
    );
    fx.send_line("exit");
    assert!(fx.finish(WAIT).success());
    std::fs::remove_dir_all(&base).unwrap();
}
