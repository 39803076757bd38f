//! Helpers for the reliability tests (`tests/tests/stress_*.rs`): start the
//! stress fixture, fire signal storms from several sender threads, wait for
//! the output to settle, and account for every report and trigger.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Fixture, Report, parse_reports};

/// Generous wait for single events (nothing asserts timings).
pub const WAIT: Duration = Duration::from_secs(60);

/// A started stress fixture and what it printed before `ready`.
#[derive(Debug)]
pub struct Stress {
    /// The process.
    pub fx: Fixture,
    /// Thread name → tid.
    pub threads: BTreeMap<String, i32>,
    /// Its trigger signal.
    pub trigger: i32,
    /// Its capture signal.
    pub capture: i32,
}

fn field(line: &str, key: &str) -> Option<i64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
}

impl Stress {
    /// Starts `program` with `args` (and `env`) and waits for `ready`.
    pub fn start(program: &str, args: &[&str], env: &[(&str, &str)]) -> Stress {
        let mut fx = Fixture::spawn_with_env(program, args, env);
        let ready = fx.wait_for_line("ready pid=", WAIT);
        let threads = fx.announced_threads();
        Stress {
            fx,
            threads,
            trigger: field(&ready, "trigger=").expect("trigger") as i32,
            capture: field(&ready, "capture=").expect("capture") as i32,
        }
    }

    /// Asks for the worker figures: (iterations, errors, allocations).
    pub fn stats(&mut self) -> (u64, u64, u64) {
        self.fx.send_line("stats");
        let line = self.fx.wait_for_line("stats ", WAIT);
        (
            field(&line, "iterations=").expect("iterations") as u64,
            field(&line, "errors=").expect("errors") as u64,
            field(&line, "allocs=").expect("allocs") as u64,
        )
    }

    /// Waits until every report that began has ended and nothing new has been
    /// written for `quiet`; returns all reports. Panics (with the output) if
    /// that does not happen within [`WAIT`].
    pub fn settle(&mut self, quiet: Duration) -> Vec<Report> {
        let deadline = Instant::now() + WAIT;
        let mut last_len = usize::MAX;
        let mut stable_since = Instant::now();
        loop {
            let text = self.fx.stderr_text();
            let (begins, ends) = count_frames(&text);
            if text.len() != last_len {
                last_len = text.len();
                stable_since = Instant::now();
            } else if begins == ends && stable_since.elapsed() >= quiet {
                return parse_reports(&text);
            }
            assert!(
                self.fx.is_alive(),
                "fixture died:\n{}",
                tail(&self.fx.stderr_text(), 4000)
            );
            assert!(
                Instant::now() < deadline,
                "output did not settle: {begins} reports began, {ends} ended\n{}",
                tail(&text, 4000)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After a storm: settles, then sends single triggers, one at a time,
    /// until two in a row each start a report that counts no coalesced
    /// trigger and nothing follows them. Then every trigger the process
    /// received shows up in some report's figures: a report still in
    /// progress when the storm ended, wake-ups still queued for a reporter
    /// thread, and a trigger coalesced just after a round's tally (which the
    /// next report counts) are all waited out. Returns all reports and how
    /// many triggers this sent.
    pub fn drain(&mut self, quiet: Duration) -> (Vec<Report>, u64) {
        let mut sent = 0;
        let mut clean_in_a_row = 0;
        for _ in 0..20 {
            let before = self.settle(quiet);
            let (_, n) = self.one_report_counted(before.len() as u64 + 1);
            sent += n;
            let after = self.settle(quiet);
            let clean =
                after.len() == before.len() + 1 && after.last().is_some_and(|r| coalesced(r) == 0);
            clean_in_a_row = if clean { clean_in_a_row + 1 } else { 0 };
            if clean_in_a_row == 2 {
                return (after, sent);
            }
        }
        panic!(
            "reports kept coming after the storm:\n{}",
            tail(&self.fx.stderr_text(), 3000)
        );
    }

    /// Sends a trigger and waits for the report with sequence number `seq`.
    pub fn one_report(&mut self, seq: u64) -> Report {
        self.one_report_counted(seq).0
    }

    /// Sends a trigger and waits for the report with sequence number `seq`;
    /// returns it and how many triggers were sent. A trigger that arrives
    /// just as the previous round is letting go is coalesced (and counted as
    /// such in the next report), so it is sent again if no report follows
    /// within a while.
    pub fn one_report_counted(&mut self, seq: u64) -> (Report, u64) {
        let deadline = Instant::now() + WAIT;
        let mut sent = 0;
        let mut resend = Instant::now();
        loop {
            if Instant::now() >= resend {
                send(self.fx.pid(), self.trigger, false);
                sent += 1;
                resend = Instant::now() + Duration::from_secs(5);
            }
            if let Some(r) = parse_reports(&self.fx.stderr_text())
                .into_iter()
                .find(|r| r.sequence == seq)
            {
                return (r, sent);
            }
            assert!(
                self.fx.is_alive(),
                "fixture died:\n{}",
                tail(&self.fx.stderr_text(), 4000)
            );
            assert!(
                Instant::now() < deadline,
                "report #{seq} did not come:\n{}",
                tail(&self.fx.stderr_text(), 4000)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The last `n` bytes of `s` (on a char boundary).
pub fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// (report begin lines, report end lines) in `text`.
pub fn count_frames(text: &str) -> (usize, usize) {
    let begins = text
        .lines()
        .filter(|l| l.starts_with("==== Guru Meditation ===="))
        .count();
    let ends = text
        .lines()
        .filter(|l| l.starts_with("==== End of Guru Meditation ===="))
        .count();
    (begins, ends)
}

/// The "coalesced triggers: N" figure of a report.
pub fn coalesced(report: &Report) -> u64 {
    report
        .text
        .lines()
        .find_map(|l| l.trim().strip_prefix("coalesced triggers: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no coalesced figure in:\n{}", report.text))
}

/// Sends `signal` to `pid` once: with `kill`, or with `sigqueue` when
/// `queued`. Returns whether the kernel accepted it (a full real-time queue
/// answers EAGAIN).
pub fn send(pid: i32, signal: i32, queued: bool) -> bool {
    if queued {
        let value = libc::sigval {
            sival_ptr: std::ptr::null_mut(),
        };
        // SAFETY: sigqueue(3) to our own child.
        unsafe { libc::sigqueue(pid, signal, value) == 0 }
    } else {
        // SAFETY: kill(2) to our own child.
        unsafe { libc::kill(pid, signal) == 0 }
    }
}

/// Fires signals from each of `senders` threads as fast as they can for
/// `duration` (and at least `min_each` each); returns (attempted, accepted):
/// how many were sent and how many the kernel accepted.
pub fn storm(
    pid: i32,
    signal: i32,
    senders: usize,
    duration: Duration,
    min_each: u64,
    queued: bool,
) -> (u64, u64) {
    let attempted = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..senders)
        .map(|_| {
            let (attempted, accepted) = (attempted.clone(), accepted.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut n = 0u64;
                while n < min_each || start.elapsed() < duration {
                    n += 1;
                    if send(pid, signal, queued) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    } else if queued {
                        // The real-time queue is full: let the process drain
                        // it rather than keep it pinned full.
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                attempted.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("sender");
    }
    (
        attempted.load(Ordering::Relaxed),
        accepted.load(Ordering::Relaxed),
    )
}

/// Asserts that reports are numbered 1..=n without gaps or repeats and all
/// come from `pid`.
pub fn assert_consecutive(reports: &[Report], pid: i32) {
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.pid, pid, "report from another process");
        assert_eq!(
            r.sequence,
            i as u64 + 1,
            "reports out of order or missing: {:?}",
            reports.iter().map(|r| r.sequence).collect::<Vec<_>>()
        );
    }
}
