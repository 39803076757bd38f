//! Reading the watchdog's words back (see `text::watchdog`): each piece is
//! split where the words put it, then rendered again with the renderer's
//! own function and kept only if that gives the same text, so what parses
//! renders back byte for byte and anything else is rejected.

use super::super::text::watchdog::{
    centis, heartbeat_words, interval_words, recovery_words, same_stack_words, short_duration,
    stall_words, stalled_worker_line, suppressed_words,
};
use super::super::{
    HeartbeatState, Recovery, SameStack, Stall, Stalled, StalledWorker, WatchdogNotes,
};
use super::words::{decimal, num, seconds_ns};
use super::{Lines, Result};

/// What `short_duration` wrote, as a duration that it writes the same.
pub(super) fn short_ns(s: &str) -> Option<u64> {
    let v = if let Some(ms) = s.strip_suffix(" ms") {
        let ms: u64 = num(ms)?;
        // "1000 ms" is written for 999.5 ms and up.
        if ms >= 1000 {
            ms.checked_sub(1)?.checked_mul(1_000_000)?.checked_add(1)?
        } else {
            ms.checked_mul(1_000_000)?
        }
    } else {
        let secs = s.strip_suffix(" s")?;
        match decimal(secs, 1, 100_000_000) {
            // "2.0 s" is written for 1.95 s and up, never for 2 s itself.
            Some(ns) if ns.is_multiple_of(1_000_000_000) => ns.checked_add(1)?,
            Some(ns) => ns,
            None => num::<u64>(secs)?.checked_mul(1_000_000_000)?,
        }
    };
    (short_duration(v) == s).then_some(v)
}

/// Seconds with two decimals (`0.73`), in ns.
pub(super) fn centis_ns(s: &str) -> Option<u64> {
    let v = decimal(s, 2, 10_000_000)?;
    (centis(v) == s).then_some(v)
}

/// `thread 1234 "name"`, `thread 1234`, `thread not known`.
fn thread(s: &str) -> Option<(Option<i32>, Option<String>)> {
    let rest = s.strip_prefix("thread ")?;
    if rest == "not known" {
        return Some((None, None));
    }
    match rest.split_once(' ') {
        None => Some((Some(num(rest)?), None)),
        Some((tid, name)) => {
            let name = name.strip_prefix('"')?.strip_suffix('"')?;
            Some((Some(num(tid)?), Some(name.to_string())))
        }
    }
}

/// A stall as `stall_words` wrote it.
pub(super) fn stall(s: &str) -> Option<Stall> {
    let parsed = if let Some(rest) = s.strip_prefix("heartbeat \"") {
        let (name, rest) = rest.split_once("\" missed its ")?;
        let (deadline, rest) = rest.split_once(" deadline (last beat ")?;
        let (silent, rest) = rest.split_once(" s ago, ")?;
        let (tid, thread_name) = thread(rest.strip_suffix(')')?)?;
        Stall {
            what: Stalled::Heartbeat {
                heartbeat: name.to_string(),
            },
            deadline_ns: short_ns(deadline)?,
            silent_ns: centis_ns(silent)?,
            tid,
            thread_name,
        }
    } else {
        let rest = s.strip_prefix("tokio runtime \"")?;
        let (runtime, rest) = rest.split_once("\" worker ")?;
        let (worker, rest) = rest.split_once(" has not come back to its scheduler for ")?;
        let (silent, rest) = rest.split_once(" s (threshold ")?;
        let (threshold, rest) = rest.split_once(", ")?;
        let (tid, thread_name) = thread(rest.strip_suffix(')')?)?;
        Stall {
            what: Stalled::TokioWorker {
                runtime: runtime.to_string(),
                worker: num(worker)?,
            },
            deadline_ns: short_ns(threshold)?,
            silent_ns: centis_ns(silent)?,
            tid,
            thread_name,
        }
    };
    (stall_words(&parsed) == s).then_some(parsed)
}

/// A stall that ended, as `recovery_words` wrote it.
fn recovery(s: &str) -> Option<Recovery> {
    let (head, reported) = match s.strip_suffix("; its stall was reported)") {
        Some(h) => (h, true),
        None => (
            s.strip_suffix("; its stall was not reported: held back by the rate limit)")?,
            false,
        ),
    };
    let parsed = if let Some(rest) = head.strip_prefix("heartbeat \"") {
        let (name, rest) = rest.split_once("\" recovered after ")?;
        let (silent, deadline) = rest.split_once(" s without a beat (deadline ")?;
        Recovery {
            what: Stalled::Heartbeat {
                heartbeat: name.to_string(),
            },
            silent_ns: centis_ns(silent)?,
            deadline_ns: short_ns(deadline)?,
            reported,
            runtime_unregistered: false,
        }
    } else {
        let rest = head.strip_prefix("tokio runtime \"")?;
        let (runtime, rest) = rest.split_once("\" worker ")?;
        let (worker, rest, unregistered) = match rest.split_once(" recovered after ") {
            Some((w, r)) => (w, r, false),
            None => {
                let (w, r) = rest.split_once(" no longer watched after ")?;
                (w, r, true)
            }
        };
        let (silent, threshold) = if unregistered {
            rest.split_once(" s: its runtime was unregistered (threshold ")?
        } else {
            rest.split_once(" s (threshold ")?
        };
        Recovery {
            what: Stalled::TokioWorker {
                runtime: runtime.to_string(),
                worker: num(worker)?,
            },
            silent_ns: centis_ns(silent)?,
            deadline_ns: short_ns(threshold)?,
            reported,
            runtime_unregistered: unregistered,
        }
    };
    (recovery_words(&parsed) == s).then_some(parsed)
}

/// A heartbeat line, as `heartbeat_words` wrote it.
fn heartbeat(s: &str) -> Option<HeartbeatState> {
    let (head, stalled) = match s.strip_suffix(", stalled") {
        Some(h) => (h, true),
        None => (s, false),
    };
    let rest = head.strip_prefix("heartbeat \"")?;
    let (name, rest) = rest.rsplit_once("\": deadline ")?;
    let (deadline, rest) = rest.split_once(", last beat ")?;
    let (ago, tid) = rest.split_once(" s ago by thread ")?;
    let parsed = HeartbeatState {
        name: name.to_string(),
        deadline_ns: short_ns(deadline)?,
        since_last_beat_ns: centis_ns(ago)?,
        tid: num(tid)?,
        stalled,
    };
    (heartbeat_words(&parsed) == s).then_some(parsed)
}

/// The Report section's watchdog notes (after the stall line, if any):
/// stalls that ended, suppressed reports, the rate limit, the heartbeats.
/// `None` when there is none of them.
pub(super) fn notes(l: &mut Lines<'_>) -> Result<Option<WatchdogNotes>> {
    let mut n = WatchdogNotes::default();
    let mut any = false;
    while let Some(rest) = l
        .peek()
        .and_then(|s| s.strip_prefix("  watchdog: "))
        .filter(|r| r.starts_with("heartbeat \"") || r.starts_with("tokio runtime \""))
    {
        l.pos += 1;
        n.recovered.push(
            recovery(rest)
                .ok_or_else(|| l.err("  watchdog: … recovered after … s (…; its stall was …)"))?,
        );
        any = true;
    }
    if let Some(rest) = l
        .peek()
        .and_then(|s| s.strip_prefix("  watchdog: "))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    {
        l.pos += 1;
        let count = rest
            .split_once(' ')
            .and_then(|(c, _)| num::<u64>(c))
            .filter(|&c| c > 0 && suppressed_words(c) == rest)
            .ok_or_else(|| {
                l.err("  watchdog: <n> automatic reports suppressed by the rate limit since the last report")
            })?;
        n.suppressed_reports = count;
        any = true;
    }
    if let Some(rest) = l.take("  watchdog: automatic reports ") {
        let ns = if rest == "not rate-limited" {
            Some(0)
        } else {
            rest.strip_prefix("at least ")
                .and_then(|r| r.strip_suffix(" apart"))
                .and_then(seconds_ns)
                .filter(|&ns| interval_words(ns) == format!("automatic reports {rest}"))
        };
        n.min_interval_ns = Some(ns.ok_or_else(|| {
            l.err("  watchdog: automatic reports at least <s> s apart (or not rate-limited)")
        })?);
        any = true;
    }
    while let Some(line) = l
        .peek()
        .and_then(|s| s.strip_prefix("  "))
        .filter(|s| s.starts_with("heartbeat \""))
    {
        l.pos += 1;
        n.heartbeats.push(heartbeat(line).ok_or_else(|| {
            l.err(
                "  heartbeat \"<name>\": deadline …, last beat … s ago by thread <tid>[, stalled]",
            )
        })?);
        any = true;
    }
    Ok(any.then_some(n))
}

/// `same stack as report #3 (12.4 s ago), CPU +0 ms`.
pub(super) fn same_stack(s: &str) -> Option<SameStack> {
    let rest = s.strip_prefix("same stack as report #")?;
    let (n, rest) = rest.split_once(" (")?;
    let (ago, cpu) = rest.split_once(" s ago), CPU ")?;
    let cpu_delta_ns = if cpu == "time unknown" {
        None
    } else if let Some(ms) = cpu.strip_prefix('+').and_then(|c| c.strip_suffix(" ms")) {
        Some(num::<u64>(ms)?.checked_mul(1_000_000)?)
    } else {
        Some(decimal(
            cpu.strip_prefix('+')?.strip_suffix(" s")?,
            1,
            100_000_000,
        )?)
    };
    let parsed = SameStack {
        as_report: num(n)?,
        ago_ns: decimal(ago, 1, 100_000_000)?,
        cpu_delta_ns,
    };
    (same_stack_words(&parsed) == s).then_some(parsed)
}

/// `  worker 1 stalled: has not come back to its scheduler for 1.23 s (thread 1234)`.
pub(super) fn stalled_worker(line: &str) -> Option<StalledWorker> {
    let rest = line.strip_prefix("  worker ")?;
    let (worker, rest) = rest.split_once(" stalled: has not come back to its scheduler for ")?;
    let (silent, rest) = rest.split_once(" s (thread ")?;
    let tid = match rest.strip_suffix(')')? {
        "not known" => None,
        t => Some(num(t)?),
    };
    let parsed = StalledWorker {
        worker: num(worker)?,
        silent_ns: centis_ns(silent)?,
        tid,
    };
    (stalled_worker_line(&parsed) == line).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::super::super::{
        Content, Data, Figures, GreenThreads, Report, SCHEMA, Section, Thread, Threads, Trigger,
    };
    use super::*;

    #[test]
    fn durations_read_back_at_every_boundary() {
        for ns in [
            0,
            1,
            10_000_000,
            999_000_000,
            999_000_001,
            999_999_999,
            1_000_000_000,
            1_040_000_000,
            1_949_999_999,
            1_950_000_000,
            1_999_999_999,
            2_000_000_001,
            86_400_000_000_000,
        ] {
            let text = short_duration(ns);
            let back = short_ns(&text).unwrap_or_else(|| panic!("{ns} as {text:?}"));
            assert_eq!(short_duration(back), text, "{ns}");
        }
        for bad in ["1001 ms", "01 ms", "2.00 s", "1 ms ", "-1 ms", "1.5 ms"] {
            assert_eq!(short_ns(bad), None, "{bad}");
        }
        assert_eq!(centis_ns("0.73"), Some(730_000_000));
        assert_eq!(centis_ns("0.7"), None);
    }

    fn a_stall(what: Stalled, tid: Option<i32>, name: Option<&str>) -> Stall {
        Stall {
            what,
            deadline_ns: 1_500_000_000,
            silent_ns: 2_340_000_000,
            tid,
            thread_name: name.map(str::to_string),
        }
    }

    #[test]
    fn stalls_recoveries_and_heartbeats_read_back() {
        let hb = Stalled::Heartbeat {
            heartbeat: "loop \"a\", missed".into(),
        };
        let worker = Stalled::TokioWorker {
            runtime: "api (v2)".into(),
            worker: 3,
        };
        for s in [
            a_stall(hb.clone(), Some(12), Some("event\\x0aloop")),
            a_stall(hb.clone(), Some(12), None),
            a_stall(worker.clone(), None, None),
            a_stall(worker.clone(), Some(7), Some("tokio-rt-w")),
        ] {
            let text = stall_words(&s);
            assert_eq!(stall(&text), Some(s), "{text}");
        }
        for (what, unregistered) in [(hb, false), (worker.clone(), false), (worker, true)] {
            for reported in [true, false] {
                let r = Recovery {
                    what: what.clone(),
                    silent_ns: 4_100_000_000,
                    deadline_ns: 300_000_000,
                    reported,
                    runtime_unregistered: unregistered,
                };
                let text = recovery_words(&r);
                assert_eq!(recovery(&text), Some(r), "{text}");
            }
        }
        let h = HeartbeatState {
            name: "x\": deadline".into(),
            deadline_ns: 10_000_000,
            since_last_beat_ns: 120_000_000,
            tid: 4_194_303,
            stalled: true,
        };
        assert_eq!(heartbeat(&heartbeat_words(&h)), Some(h));
        assert_eq!(stall("heartbeat \"x\" missed its 500 ms deadline"), None);
        assert_eq!(recovery("heartbeat \"x\" recovered after 1 s"), None);
    }

    #[test]
    fn same_stack_and_stalled_workers_read_back() {
        for cpu in [None, Some(0), Some(999_000_000), Some(11_900_000_000)] {
            let s = SameStack {
                as_report: 3,
                ago_ns: 12_400_000_000,
                cpu_delta_ns: cpu,
            };
            assert_eq!(same_stack(&same_stack_words(&s)), Some(s));
        }
        assert_eq!(
            same_stack("same stack as report #3 (1.0 s ago), CPU +0.5 s"),
            None,
            "under a second is written in ms"
        );
        for tid in [None, Some(99)] {
            let w = StalledWorker {
                worker: 1,
                silent_ns: 1_230_000_000,
                tid,
            };
            assert_eq!(stalled_worker(&stalled_worker_line(&w)), Some(w));
        }
    }

    /// A watchdog report with every watchdog field, at text precision: its
    /// text reads back into the same model, and its JSON too.
    #[test]
    fn a_watchdog_report_round_trips_through_text_and_json() {
        let trigger = Trigger::Watchdog(a_stall(
            Stalled::Heartbeat {
                heartbeat: "event-loop".into(),
            },
            Some(12),
            Some("event-loop"),
        ));
        let thread = |tid: i32, stalled: bool, same: Option<SameStack>| Thread {
            tid,
            name: format!("t{tid}"),
            captured: true,
            state: "in syscall read".into(),
            pause_ns: 4_000,
            writing_report: false,
            frames: Vec::new(),
            stack_end: None,
            frames_scanned_from: None,
            unresponsive: None,
            elided: Vec::new(),
            cpu_ns: Some(10_000_000),
            stack_hash: None,
            same_stack: same,
            stalled,
            mark: None,
            // With the thread-context lines, which come after the watchdog's.
            context: Some(super::super::super::ThreadContext {
                labels: vec![super::super::super::Label {
                    key: "request".into(),
                    value: "GET /".into(),
                }],
                ..Default::default()
            }),
        };
        let same = SameStack {
            as_report: 1,
            ago_ns: 1_500_000_000,
            cpu_delta_ns: Some(0),
        };
        let mut runtime = super::super::stacks::runtime_header(
            "Runtime \"rt\" (multi_thread): 0 workers, 0 alive tasks, global queue depth 0",
        )
        .expect("runtime header");
        runtime.task_dump = super::super::super::TaskDump::NotTaken {
            reason: "not built in".into(),
        };
        runtime.stalled_workers = vec![StalledWorker {
            worker: 1,
            silent_ns: 310_000_000,
            tid: Some(13),
        }];
        let figures = Figures {
            requested_by: Some(trigger.clone()),
            round: None,
            capacity: 0,
            recent_triggers: Vec::new(),
            unresponsive_threads: Vec::new(),
            symbolization: None,
            sections_ns: None,
            total_ns: None,
            trigger_settings: None,
            ignored_file_touches: None,
            blocking_capture: None,
            watchdog: Some(WatchdogNotes {
                recovered: vec![Recovery {
                    what: Stalled::TokioWorker {
                        runtime: "rt".into(),
                        worker: 0,
                    },
                    silent_ns: 2_000_000_000,
                    deadline_ns: 300_000_000,
                    reported: false,
                    runtime_unregistered: false,
                }],
                suppressed_reports: 1,
                min_interval_ns: Some(30_000_000_000),
                heartbeats: vec![HeartbeatState {
                    name: "event-loop".into(),
                    deadline_ns: 1_500_000_000,
                    since_last_beat_ns: 2_340_000_000,
                    tid: 12,
                    stalled: true,
                }],
            }),
        };
        let section = |title: &str, data| Section {
            title: title.into(),
            content: Content::Ok(data),
        };
        let report = Report {
            schema: SCHEMA.into(),
            pid: 12,
            sequence: 2,
            time: "2026-01-01T00:00:00.000Z".into(),
            time_unix_ns: 1_767_225_600_000_000_000,
            trigger,
            sections: vec![
                section(
                    "Threads",
                    Data::Threads(Threads {
                        threads: vec![thread(12, true, None), thread(13, false, Some(same))],
                        left_out: 0,
                        capacity: 0,
                    }),
                ),
                section(
                    "Green Threads",
                    Data::GreenThreads(GreenThreads {
                        runtimes: vec![runtime],
                    }),
                ),
                section("Report", Data::Report(Box::new(figures))),
            ],
            read_from_text: false,
        };
        let text = report.to_text();
        for line in [
            " triggered by watchdog: heartbeat \"event-loop\" missed its 1.5 s deadline (last beat 2.34 s ago, thread 12 \"event-loop\")\n",
            "------ Thread 12 \"t12\" (in syscall read; paused 4.0 µs; cpu 0.010 s; stalled) ------\n  stalled: heartbeat \"event-loop\" missed its 1.5 s deadline",
            "  same stack as report #1 (1.5 s ago), CPU +0 ms\n",
            "  worker 1 stalled: has not come back to its scheduler for 0.31 s (thread 13)\n",
            "  requested by: the watchdog (automatic)\n  watchdog: heartbeat \"event-loop\" missed",
            "  watchdog: tokio runtime \"rt\" worker 0 recovered after 2.00 s (threshold 300 ms; its stall was not reported: held back by the rate limit)\n",
            "  watchdog: 1 automatic report suppressed by the rate limit since the last report\n",
            "  watchdog: automatic reports at least 30.000 s apart\n",
            "  heartbeat \"event-loop\": deadline 1.5 s, last beat 2.34 s ago by thread 12, stalled\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        let mut parsed = Report::from_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.to_text(), text);
        parsed.read_from_text = false;
        assert_eq!(parsed, report);
        assert_eq!(Report::from_json(&report.to_json()).expect("json"), report);
        // No rate limit, and no reporter installed, read back too.
        for limit in [Some(0), None] {
            let mut r = report.clone();
            if let Some(Content::Ok(Data::Report(f))) =
                r.sections.last_mut().map(|s| &mut s.content)
                && let Some(n) = &mut f.watchdog
            {
                n.min_interval_ns = limit;
            }
            let text = r.to_text();
            assert_eq!(
                text.contains("  watchdog: automatic reports not rate-limited\n"),
                limit == Some(0)
            );
            let mut parsed = Report::from_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            parsed.read_from_text = false;
            assert_eq!(parsed, r);
        }
        // A stalled thread's note must be the begin line's stall.
        let forged = text.replace(
            "  stalled: heartbeat \"event-loop\"",
            "  stalled: heartbeat \"other\"",
        );
        assert!(Report::from_text(&forged).is_err());
    }
}
