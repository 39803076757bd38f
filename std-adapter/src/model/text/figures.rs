//! The text of the figures sections: Process (resource usage) and Report
//! (the round's cost, trigger notes, symbolization).

use std::fmt::Write;

use guru_core::Trigger as CoreTrigger;
use guru_core::format::{write_duration, write_utc};
use guru_core::render::write_trigger_source;

use guru_core::crash::{AFTER_REPORT_NOTE, write_crash_words};

use super::super::{Figures, Process, Round, Symbolization, Trigger};
use super::{core_trigger, crash_words, esc};

pub(in crate::model) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(in crate::model) fn seconds(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

pub(super) fn write_process(w: &mut String, p: &Process) {
    let _ = writeln!(w, "  pid {}, parent {}", p.pid, p.ppid);
    if let Some(e) = &p.executable {
        w.push_str("  executable: ");
        esc(w, e);
        w.push('\n');
    }
    if let Some(d) = &p.working_directory {
        w.push_str("  working directory: ");
        esc(w, d);
        w.push('\n');
    }
    let uptime = p.uptime_ns.map_or_else(|| "unknown".into(), seconds);
    if p.guru_uptime_ns == 0 {
        // No engine: the report says elsewhere that guru is not installed.
        let _ = writeln!(w, "  uptime: {uptime} (guru not installed)");
    } else {
        let _ = writeln!(
            w,
            "  uptime: {uptime} (guru installed {} ago)",
            seconds(p.guru_uptime_ns)
        );
    }
    if let Some(t) = p.threads {
        let _ = writeln!(w, "  threads: {t}");
    }
    let u = &p.usage;
    let _ = writeln!(
        w,
        "  cpu time: user {}, system {}",
        seconds(u.user_cpu_us.saturating_mul(1000)),
        seconds(u.system_cpu_us.saturating_mul(1000))
    );
    let _ = writeln!(
        w,
        "  memory: RSS {} (peak {}), virtual {}",
        p.rss_bytes.map_or_else(|| "unknown".into(), mib),
        p.peak_rss_bytes.map_or_else(|| mib(u.max_rss_bytes), mib),
        p.virtual_bytes.map_or_else(|| "unknown".into(), mib)
    );
    let _ = writeln!(
        w,
        "  page faults: {} minor, {} major; context switches: {} voluntary, {} involuntary; block I/O: {} in, {} out",
        u.minor_faults,
        u.major_faults,
        u.voluntary_switches,
        u.involuntary_switches,
        u.block_inputs,
        u.block_outputs
    );
    let _ = writeln!(
        w,
        "  open file descriptors: {} (limit {})",
        p.open_fds
            .map_or_else(|| "unknown".into(), |n| n.to_string()),
        p.fd_limit.as_deref().unwrap_or("unknown")
    );
    if !p.limits.is_empty() {
        w.push_str("  limits (soft / hard):\n");
        for l in &p.limits {
            let _ = writeln!(
                w,
                "    {:<26} {:>20} / {:<20} {}",
                l.name, l.soft, l.hard, l.units
            );
        }
    }
}

pub(super) fn write_figures(w: &mut String, f: &Figures, report_ns: u64, trigger: &Trigger) {
    // A core report's Report section has only the round's figures, and
    // lists its recent triggers after them; the std adapter's lists them
    // under a heading with its trigger notes.
    let std = f.requested_by.is_some();
    if let Some(by) = &f.requested_by {
        w.push_str("  requested by: ");
        match by {
            t @ (Trigger::Signal { .. } | Trigger::Dump { .. }) => {
                let _ = write_trigger_source(w, &core_trigger(t, true));
            }
            Trigger::File { path } => {
                w.push_str("file trigger ");
                esc(w, path);
            }
            Trigger::Call => w.push_str("a call to guru::report"),
            Trigger::Watchdog(_) => w.push_str("the watchdog (automatic)"),
            t @ Trigger::Crash { .. } => {
                w.push_str("a crash: ");
                if let Some(words) = crash_words(t) {
                    let _ = write_crash_words(w, &words);
                }
                w.push_str("\n  ");
                w.push_str(AFTER_REPORT_NOTE);
            }
            Trigger::Panic {
                message,
                location,
                thread,
                thread_name,
                unreported_panics_before,
                min_interval_ms,
            } => {
                let _ = write!(w, "a panic in thread {thread} \"");
                esc(w, thread_name);
                w.push_str("\" at ");
                if location.is_empty() {
                    w.push_str(UNKNOWN_LOCATION);
                } else {
                    esc(w, location);
                }
                w.push_str("\n  panic message: ");
                esc(w, message);
                let _ = write!(
                    w,
                    "\n  {PANICS_NOT_REPORTED}{}): {unreported_panics_before}",
                    seconds(min_interval_ms.saturating_mul(1_000_000))
                );
            }
        }
        w.push('\n');
    } else if let (Trigger::Crash { time, .. }, Some(words)) = (trigger, crash_words(trigger)) {
        // The core's crash report: the crash, with the time of the fault.
        w.push_str("  crash: ");
        let _ = write_crash_words(w, &words);
        w.push_str(" at ");
        esc(w, time);
        w.push_str("\n  ");
        w.push_str(AFTER_REPORT_NOTE);
        w.push('\n');
    }
    super::watchdog::write_watchdog_figures(w, f);
    let triggers: Vec<CoreTrigger> = f
        .recent_triggers
        .iter()
        .map(|t| CoreTrigger {
            unix_ns: super::super::parse::utc_ns(&t.time).unwrap_or(report_ns),
            signal: t.signal,
            code: t.si_code,
            sender_pid: t.sender_pid,
            sender_uid: t.sender_uid,
            started_report: t.started_report,
        })
        .collect();
    match &f.round {
        Some(round) => write_round(w, round, f.capacity),
        None => w.push_str("  no capture round ran\n"),
    }
    if std {
        write_trigger_notes(w, f, &triggers);
    } else {
        for t in &triggers {
            w.push_str("  trigger at ");
            let _ = write_utc(w, t.unix_ns);
            w.push_str(": ");
            let _ = write_trigger_source(w, t);
            w.push_str(if t.started_report {
                "\n"
            } else {
                " (coalesced)\n"
            });
        }
    }
    if !f.unresponsive_threads.is_empty() {
        let tids: Vec<String> = f.unresponsive_threads.iter().map(i32::to_string).collect();
        let _ = writeln!(w, "  unresponsive threads: {}", tids.join(", "));
    }
    if let Some(s) = &f.symbolization {
        write_symbolization(w, s);
    }
    if let (Some(sections), Some(total)) = (f.sections_ns, f.total_ns) {
        w.push_str("  sections: ");
        let _ = write_duration(w, sections);
        w.push_str("; whole report until this section: ");
        let _ = write_duration(w, total);
        w.push('\n');
    }
}

/// The round's figures, worded as `guru_core::render::write_round_figures`
/// words them (the core's text has errno numbers, the model their words).
fn write_round(w: &mut String, r: &Round, capacity: usize) {
    let _ = writeln!(
        w,
        "  threads: {} listed, {} captured, {} unresponsive, {} not signalled, {} left out (capacity {capacity})",
        r.threads_listed,
        r.threads_captured,
        r.threads_unresponsive,
        r.threads_not_signalled,
        r.threads_left_out
    );
    w.push_str("  round: capture ");
    let _ = write_duration(w, r.capture_ns);
    w.push_str(" (fan-out ");
    let _ = write_duration(w, r.fanout_ns);
    w.push_str("); longest thread pause ");
    let _ = write_duration(w, r.max_pause_ns);
    let _ = writeln!(w, " (thread {})", r.max_pause_tid);
    if let Some(why) = &r.thread_list_error {
        w.push_str("  thread list incomplete: cannot list /proc/self/task: ");
        esc(w, why);
        if r.thread_list_writer_shown {
            w.push_str("; shown: the thread writing this report");
        }
        w.push('\n');
    }
    let _ = writeln!(w, "  coalesced triggers: {}", r.coalesced_triggers);
    if let Some(d) = &r.output_dropped {
        let _ = write!(
            w,
            "  output dropped: {} bytes of {} {} not written (last #{}: ",
            d.bytes,
            d.reports,
            if d.reports == 1 { "report" } else { "reports" },
            d.last_sequence
        );
        esc(w, &d.reason);
        w.push_str(")\n");
    }
    if let Some(why) = &r.maps_error {
        w.push_str("  readable mappings unknown: cannot read /proc/self/maps: ");
        esc(w, why);
        w.push_str("; stacks were probed with process_vm_readv\n");
    }
    if r.mappings_dropped > 0 {
        let _ = writeln!(
            w,
            "  readable mappings not tracked (table full): {} (code and thread stacks were kept first)",
            r.mappings_dropped
        );
    }
}

/// The std adapter's trigger notes: what the coalesced count cannot
/// include, the rate limit, ignored file touches, the recent triggers (by
/// time) and threads that block the capture signal.
fn write_trigger_notes(w: &mut String, f: &Figures, triggers: &[CoreTrigger]) {
    if let Some(t) = &f.trigger_settings {
        if let Some(sig) = t.signal.filter(|&s| s < guru_core::sys::sigrtmin()) {
            let name = guru_core::format::signal_name(sig).unwrap_or("the trigger signal");
            let _ = writeln!(w, "  note: {name} {STANDARD_SIGNAL_NOTE}");
        }
        if t.min_interval_ns == 0 {
            w.push_str("  rate limit: none\n");
        } else {
            let _ = writeln!(
                w,
                "  rate limit: reports at least {} apart; {RATE_LIMIT_NOTE}",
                seconds(t.min_interval_ns)
            );
        }
    }
    if let Some(i) = f.ignored_file_touches.filter(|i| i.count > 0) {
        let _ = write!(
            w,
            "  file trigger: {} touches ignored since the last report",
            i.count
        );
        if let Some(uid) = i.owner_uid {
            let _ = write!(
                w,
                " (the file is owned by uid {uid}, not by this process's user or root)"
            );
        }
        w.push('\n');
    }
    if !triggers.is_empty() {
        w.push_str("  recent triggers, by time (oldest first):\n");
        for t in triggers {
            w.push_str("    ");
            let _ = write_utc(w, t.unix_ns);
            w.push_str(": ");
            let _ = write_trigger_source(w, t);
            w.push_str(if t.started_report {
                " (started a report)\n"
            } else {
                " (coalesced)\n"
            });
        }
    }
    if let Some(b) = f.blocking_capture.as_ref().filter(|b| !b.tids.is_empty()) {
        let tids: Vec<String> = b.tids.iter().map(i32::to_string).collect();
        let _ = write!(
            w,
            "  threads blocking the capture signal SIGRTMIN+{} (signal {}): {}; ",
            b.rtmin_offset,
            b.signal,
            tids.join(", ")
        );
        w.push_str(if b.blocked_at_install {
            BLOCKED_AT_INSTALL_NOTE
        } else {
            BLOCKED_INHERITED_NOTE
        });
        w.push('\n');
    }
}

/// A panic report's count of the panics the rate limit held back, up to
/// the interval (the parser matches it too).
pub(in crate::model) const PANICS_NOT_REPORTED: &str =
    "panics not reported since the last panic report (rate limit: one per ";
/// A panic without a location (`PanicHookInfo::location` is `None`).
pub(in crate::model) const UNKNOWN_LOCATION: &str = "an unknown location";

/// The fixed wording of the trigger notes (the parser matches it too).
pub(in crate::model) const STANDARD_SIGNAL_NOTE: &str = "is a standard signal: one sent while another is still pending is merged by the kernel before guru sees it, so such triggers are not counted (a real-time trigger signal queues)";
pub(in crate::model) const RATE_LIMIT_NOTE: &str =
    "sooner triggers are held and coalesced into one report";
pub(in crate::model) const BLOCKED_AT_INSTALL_NOTE: &str = "the thread that installed guru blocked it too, so the likely cause is the signal mask these threads inherited (an application that blocks every signal for sigwait/signalfd before starting its threads): unblock the capture signal in them with pthread_sigmask, or install guru before blocking signals";
pub(in crate::model) const BLOCKED_INHERITED_NOTE: &str = "a thread inherits the signal mask of the thread that started it: unblock the capture signal in them with pthread_sigmask";

fn write_symbolization(w: &mut String, s: &Symbolization) {
    let _ = write!(
        w,
        "  symbolization: {} frames ({} from the cache), {} modules examined now, {} with debug info in all; ",
        s.frames, s.cached, s.modules_examined_now, s.modules_with_debug_info
    );
    let _ = write_duration(w, s.ns);
    w.push_str(" (cpu ");
    let _ = write_duration(w, s.cpu_ns);
    let _ = writeln!(w, "), resident memory +{}", mib(s.rss_growth_bytes));
    for why in &s.no_debug_info {
        w.push_str("  no debug info: ");
        esc(w, why);
        w.push('\n');
    }
}
