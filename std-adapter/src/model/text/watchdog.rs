//! The watchdog's words (issue 14): the stall an automatic report was made
//! for (begin line, Report section, the stalled thread's note), the
//! Report section's notes (stalls that ended, reports the rate limit held
//! back, the heartbeats), the same-stack line under a thread header and a
//! runtime's stalled workers. The parser reads them back by rendering what
//! it read with these same functions. Names are escaped where they are
//! put into words.

use std::fmt::Write;

use super::super::{
    Figures, HeartbeatState, Recovery, SameStack, Stall, Stalled, StalledWorker, Trigger,
    WatchdogNotes,
};
use super::{escaped, seconds};

/// "500 ms" (rounded up) under a second, "2 s" for whole seconds, else
/// "1.5 s".
pub(in crate::model) fn short_duration(ns: u64) -> String {
    if ns < 1_000_000_000 {
        format!("{} ms", ns.div_ceil(1_000_000))
    } else if ns.is_multiple_of(1_000_000_000) {
        format!("{} s", ns / 1_000_000_000)
    } else {
        format!("{:.1} s", ns as f64 / 1e9)
    }
}

/// Seconds with two decimals, without the unit: `0.73`.
pub(in crate::model) fn centis(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e9)
}

/// `thread 1234 "event-loop"`, `thread 1234` or `thread not known`.
fn thread_words(tid: Option<i32>, name: Option<&str>) -> String {
    match (tid, name) {
        (Some(tid), Some(n)) => format!("thread {tid} \"{}\"", escaped(n)),
        (Some(tid), None) => format!("thread {tid}"),
        _ => "thread not known".into(),
    }
}

/// `heartbeat "event-loop" missed its 500 ms deadline (last beat 0.73 s
/// ago, thread 1234 "event-loop")`, or `tokio runtime "rt" worker 1 has not
/// come back to its scheduler for 0.31 s (threshold 300 ms, thread …)`.
pub(in crate::model) fn stall_words(s: &Stall) -> String {
    let thread = thread_words(s.tid, s.thread_name.as_deref());
    match &s.what {
        Stalled::Heartbeat { heartbeat } => format!(
            "heartbeat \"{}\" missed its {} deadline (last beat {} s ago, {thread})",
            escaped(heartbeat),
            short_duration(s.deadline_ns),
            centis(s.silent_ns)
        ),
        Stalled::TokioWorker { runtime, worker } => format!(
            "tokio runtime \"{}\" worker {worker} has not come back to its scheduler for {} s (threshold {}, {thread})",
            escaped(runtime),
            centis(s.silent_ns),
            short_duration(s.deadline_ns)
        ),
    }
}

/// The begin line's tail and the Report section's line: `watchdog: <stall>`.
pub(in crate::model) fn trigger_words(s: &Stall) -> String {
    format!("watchdog: {}", stall_words(s))
}

/// `heartbeat "x" recovered after 4.10 s without a beat (deadline 500 ms;
/// its stall was reported)` and the tokio worker's likewise.
pub(in crate::model) fn recovery_words(r: &Recovery) -> String {
    let reported = if r.reported {
        "its stall was reported"
    } else {
        "its stall was not reported: held back by the rate limit"
    };
    let after = centis(r.silent_ns);
    let limit = short_duration(r.deadline_ns);
    match &r.what {
        Stalled::Heartbeat { heartbeat } => format!(
            "heartbeat \"{}\" recovered after {after} s without a beat (deadline {limit}; {reported})",
            escaped(heartbeat)
        ),
        Stalled::TokioWorker { runtime, worker } if r.runtime_unregistered => format!(
            "tokio runtime \"{}\" worker {worker} no longer watched after {after} s: its runtime was unregistered (threshold {limit}; {reported})",
            escaped(runtime)
        ),
        Stalled::TokioWorker { runtime, worker } => format!(
            "tokio runtime \"{}\" worker {worker} recovered after {after} s (threshold {limit}; {reported})",
            escaped(runtime)
        ),
    }
}

/// `N automatic report(s) suppressed by the rate limit since the last report`.
pub(in crate::model) fn suppressed_words(n: u64) -> String {
    format!(
        "{n} automatic {} suppressed by the rate limit since the last report",
        if n == 1 { "report" } else { "reports" }
    )
}

/// `automatic reports at least 30.000 s apart`, or `automatic reports not
/// rate-limited` (0).
pub(in crate::model) fn interval_words(ns: u64) -> String {
    if ns == 0 {
        "automatic reports not rate-limited".into()
    } else {
        format!("automatic reports at least {} apart", seconds(ns))
    }
}

/// `heartbeat "x": deadline 500 ms, last beat 0.12 s ago by thread 1234[, stalled]`.
pub(in crate::model) fn heartbeat_words(h: &HeartbeatState) -> String {
    format!(
        "heartbeat \"{}\": deadline {}, last beat {} s ago by thread {}{}",
        escaped(&h.name),
        short_duration(h.deadline_ns),
        centis(h.since_last_beat_ns),
        h.tid,
        if h.stalled { ", stalled" } else { "" }
    )
}

/// The Report section's watchdog lines, after `requested by`: the stall that
/// made this report, then the notes.
pub(super) fn write_watchdog_figures(w: &mut String, f: &Figures) {
    if let Some(Trigger::Watchdog(stall)) = &f.requested_by {
        let _ = writeln!(w, "  {}", trigger_words(stall));
    }
    if let Some(n) = &f.watchdog {
        write_notes(w, n);
    }
}

fn write_notes(w: &mut String, n: &WatchdogNotes) {
    for r in &n.recovered {
        let _ = writeln!(w, "  watchdog: {}", recovery_words(r));
    }
    if n.suppressed_reports > 0 {
        let _ = writeln!(w, "  watchdog: {}", suppressed_words(n.suppressed_reports));
    }
    if let Some(ns) = n.min_interval_ns {
        let _ = writeln!(w, "  watchdog: {}", interval_words(ns));
    }
    for h in &n.heartbeats {
        let _ = writeln!(w, "  {}", heartbeat_words(h));
    }
}

/// `same stack as report #3 (12.4 s ago), CPU +0 ms` (`+<n> ms` under a
/// second, else `+<x.y> s`; `CPU time unknown`).
pub(in crate::model) fn same_stack_words(s: &SameStack) -> String {
    let cpu = match s.cpu_delta_ns {
        Some(ns) if ns < 1_000_000_000 => format!("CPU +{} ms", ns / 1_000_000),
        Some(ns) => format!("CPU +{:.1} s", ns as f64 / 1e9),
        None => "CPU time unknown".into(),
    };
    format!(
        "same stack as report #{} ({:.1} s ago), {cpu}",
        s.as_report,
        s.ago_ns as f64 / 1e9
    )
}

/// The lines under a thread's header: why it is stalled (with the
/// report's watchdog trigger), and that its stack did not change.
pub(super) fn write_thread_notes(
    w: &mut String,
    stalled: bool,
    same: Option<&SameStack>,
    trigger: &Trigger,
) {
    if let (true, Trigger::Watchdog(stall)) = (stalled, trigger) {
        let _ = writeln!(w, "  stalled: {}", stall_words(stall));
    }
    if let Some(s) = same {
        let _ = writeln!(w, "  {}", same_stack_words(s));
    }
}

/// `  worker 1 stalled: has not come back to its scheduler for 1.23 s (thread 1234)`.
pub(in crate::model) fn stalled_worker_line(s: &StalledWorker) -> String {
    let thread = match s.tid {
        Some(t) => format!("thread {t}"),
        None => "thread not known".into(),
    };
    format!(
        "  worker {} stalled: has not come back to its scheduler for {} s ({thread})",
        s.worker,
        centis(s.silent_ns)
    )
}
