//! The report model over real reports with issue 10's lines: a std report
//! whose Report section says `output dropped: …` (stderr was a full pipe
//! nobody read) and a core report whose thread list is incomplete
//! (`thread list incomplete: cannot list /proc/self/task: EMFILE …`, no
//! descriptor left) read back into the model with those fields set and
//! render to the same text byte for byte.
#![cfg(target_os = "linux")]
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use guru::model::{Content, Data, Figures, Report};
use guru_tests::Fixture;

const CORE: &str = env!("CARGO_BIN_EXE_fixture");
const STD: &str = env!("CARGO_BIN_EXE_std_fixture");
const WAIT: Duration = Duration::from_secs(60);

/// A pipe of 4 KiB, already full: whoever writes to it blocks.
fn full_pipe() -> (OwnedFd, Stdio) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two-element array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here alone.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on pipes we own.
    unsafe {
        assert_eq!(libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096), 4096);
        let flags = libc::fcntl(w.as_raw_fd(), libc::F_GETFL);
        assert_eq!(
            libc::fcntl(w.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK),
            0
        );
        let chunk = [b'\n'; 4096];
        while libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) > 0 {}
        assert_eq!(libc::fcntl(w.as_raw_fd(), libc::F_SETFL, flags), 0);
    }
    (r, Stdio::from(w))
}

/// text → from_text → to_text is the same text; returns the model.
fn round_trip(text: &str) -> Report {
    let model = Report::from_text(text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
    let back = model.to_text();
    if back != text {
        let at = text
            .lines()
            .zip(back.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "text differs at line {}:\n  report: {:?}\n  model:  {:?}",
            at + 1,
            text.lines().nth(at),
            back.lines().nth(at)
        );
    }
    model
}

fn figures(r: &Report) -> &Figures {
    match r.section("Report").map(|s| &s.content) {
        Some(Content::Ok(Data::Report(f))) => f,
        other => panic!("no Report data: {other:?}"),
    }
}

/// `guru::report()` in the std fixture, through its stdin/stdout, with the
/// final newline.
fn call_report(fx: &mut Fixture) -> String {
    fx.send_line("call-report");
    fx.wait_for_line("call-report-begin", WAIT);
    let mut text = String::new();
    loop {
        let line = fx.wait_for_line("", WAIT);
        if line == "call-report-end" {
            return text;
        }
        text.push_str(line.strip_prefix("| ").unwrap_or(&line));
        text.push('\n');
    }
}

#[test]
fn std_report_saying_output_dropped_round_trips() {
    guru_tests::watchdog(Duration::from_secs(300));
    let (_r, stderr) = full_pipe();
    let mut fx = Fixture::spawn_with_stderr(STD, &["--output-timeout-ms", "300"], stderr);
    fx.wait_for_line("ready", WAIT);
    fx.signal(libc::SIGUSR2);
    // The reporter gives up on the signal's report; a later one says so.
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = call_report(&mut fx);
        if text.contains("\n  output dropped: ") {
            break text;
        }
        assert!(Instant::now() < deadline, "no 'output dropped':\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let model = round_trip(&text);
    let dropped = figures(&model)
        .round
        .as_ref()
        .and_then(|r| r.output_dropped.as_ref())
        .unwrap_or_else(|| panic!("no output_dropped in the model of:\n{text}"));
    assert!(dropped.bytes > 0 && dropped.reports >= 1, "{dropped:?}");
    assert!(dropped.reason.contains("stayed full"), "{dropped:?}");
    fx.send_line("exit");
    let _ = fx.finish(WAIT);
}

#[test]
fn core_report_with_an_incomplete_thread_list_round_trips() {
    guru_tests::watchdog(Duration::from_secs(300));
    let mut fx = Fixture::spawn(CORE, &["--exhaust-fds-before-install"]);
    fx.wait_for_line("ready pid=", WAIT);
    let deadline = Instant::now() + WAIT;
    let report = loop {
        fx.signal(libc::SIGUSR2);
        std::thread::sleep(Duration::from_millis(300));
        if let Some(r) = guru_tests::parse_reports(&fx.stderr_text())
            .into_iter()
            .next()
        {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no report:\n{}",
            fx.stderr_text()
        );
    };
    let text = format!("{}\n", report.text);
    assert!(
        text.contains("  thread list incomplete: cannot list /proc/self/task: EMFILE"),
        "{text}"
    );
    let model = round_trip(&text);
    let round = figures(&model).round.as_ref().expect("a round");
    assert!(
        round
            .thread_list_error
            .as_deref()
            .is_some_and(|e| e.starts_with("EMFILE")),
        "{round:?}"
    );
    assert!(round.thread_list_writer_shown, "{round:?}");
}
