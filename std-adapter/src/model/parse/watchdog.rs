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
    if let Some(rest) = l.take("  watchdog: automatic reports at least ") {
        let ns = rest
            .strip_suffix(" apart")
            .and_then(seconds_ns)
            .filter(|&ns| interval_words(ns) == format!("automatic reports at least {rest}"))
            .ok_or_else(|| l.err("  watchdog: automatic reports at least <s> s apart"))?;
        n.min_interval_ns = Some(ns);
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
