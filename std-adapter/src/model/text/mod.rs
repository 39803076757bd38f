//! The text renderer of the model: the text report of `docs/report-format.md`,
//! with the core's begin/end lines, banners, trigger wording, round figures
//! and scan note from `guru_core::render`/`guru_core::format`, so a report
//! rendered here reads exactly like the core's and the std adapter's.

use std::fmt::Write;

use guru_core::format::{write_banner, write_duration, write_escaped, write_utc};
use guru_core::render::{
    write_begin_line, write_end_line, write_round_figures, write_scan_note, write_trigger_source,
};
use guru_core::{RoundSummary, Trigger as CoreTrigger};

pub(super) mod green;

use super::{
    Configuration, Content, Data, ElidedWhy, Figures, Frame, Package, Process, Processes, Report,
    Symbolization, Thread, Threads, Trigger,
};
use green::write_green_threads;

pub(in crate::model) fn render(r: &Report) -> String {
    let mut w = String::with_capacity(16 * 1024);
    let summary = RoundSummary {
        sequence: r.sequence,
        pid: r.pid,
        started_unix_ns: r.time_unix_ns,
        // No round ran (sequence 0): the begin line says "on request" whatever
        // asked, as the std adapter writes it.
        trigger: match &r.trigger {
            Trigger::Signal { .. } if r.sequence > 0 => Some(core_trigger(&r.trigger, true)),
            _ => None,
        },
        ..RoundSummary::default()
    };
    match &r.trigger {
        Trigger::File { path } => {
            let _ = write!(
                w,
                "==== Guru Meditation ==== pid {} report #{} at ",
                r.pid, r.sequence
            );
            let _ = write_utc(&mut w, r.time_unix_ns);
            w.push_str(" triggered by file ");
            esc(&mut w, path);
            w.push('\n');
        }
        _ => {
            let _ = write_begin_line(&mut w, &summary);
        }
    }
    for s in &r.sections {
        let _ = write_banner(&mut w, &s.title);
        match &s.content {
            Content::Ok(data) => write_data(&mut w, data, r),
            Content::Failed { error, .. } => {
                w.push_str("  !! section failed: ");
                esc(&mut w, error);
                w.push('\n');
            }
        }
    }
    let _ = write_end_line(&mut w, &summary);
    w
}

/// Escapes control characters (a section cannot inject lines or terminal
/// escapes); text already escaped stays as it is.
fn esc(w: &mut String, s: &str) {
    let _ = write_escaped(w, s.as_bytes());
}

fn escaped(s: &str) -> String {
    let mut out = String::new();
    esc(&mut out, s);
    out
}

/// The core's trigger record for a model trigger (the wording helpers take it).
fn core_trigger(t: &Trigger, started_report: bool) -> CoreTrigger {
    match t {
        Trigger::Signal {
            signal,
            si_code,
            sender_pid,
            sender_uid,
            ..
        } => CoreTrigger {
            unix_ns: 0,
            signal: *signal,
            code: *si_code,
            sender_pid: *sender_pid,
            sender_uid: *sender_uid,
            started_report,
        },
        _ => CoreTrigger {
            unix_ns: 0,
            signal: 0,
            code: 0,
            sender_pid: 0,
            sender_uid: 0,
            started_report,
        },
    }
}

fn write_data(w: &mut String, data: &Data, r: &Report) {
    match data {
        Data::Package(p) => write_package(w, p),
        Data::Threads(t) => write_threads(w, t, r.read_from_text),
        Data::GreenThreads(g) => write_green_threads(w, g),
        Data::Processes(p) => write_processes(w, p),
        Data::Configuration(c) => write_configuration(w, c),
        Data::Custom(c) => {
            // Indented, so a section cannot forge banners or end lines.
            for line in c.text.lines() {
                w.push_str("  ");
                esc(w, line);
                w.push('\n');
            }
        }
        Data::Process(p) => write_process(w, p),
        Data::Modules(m) => {
            for m in &m.modules {
                let _ = write!(w, "  0x{:016x}-0x{:016x} ", m.start.0, m.end.0);
                esc(w, &m.path);
                match &m.build_id {
                    None => w.push_str(" build-id none"),
                    Some(id) => {
                        w.push_str(" build-id ");
                        w.push_str(id);
                    }
                }
                let _ = writeln!(w, " symbols {}", m.symbols);
            }
        }
        Data::Report(f) => write_figures(w, f, r.time_unix_ns),
    }
}

fn write_package(w: &mut String, p: &Package) {
    let _ = writeln!(w, "  name: {}", p.name);
    let _ = writeln!(w, "  version: {}", p.version);
    let _ = writeln!(w, "  service: {}", p.service);
    if !p.authors.is_empty() {
        let _ = writeln!(w, "  authors: {}", p.authors.join(", "));
    }
    if let Some(r) = &p.repository {
        let _ = writeln!(w, "  repository: {r}");
    }
    let _ = writeln!(w, "  target: {}", p.target);
    let _ = writeln!(w, "  profile: {} (opt-level {})", p.profile, p.opt_level);
    if let Some(r) = &p.rustc {
        let _ = writeln!(w, "  rustc: {r}");
    }
    let _ = writeln!(
        w,
        "  git commit: {}{}",
        p.git_commit.as_deref().unwrap_or("unknown"),
        if p.git_dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        }
    );
}

/// One frame: a line per DWARF function (inlined ones first), or one line
/// with the ELF symbol or `module+0xoffset`.
pub(super) fn write_frame(w: &mut String, f: &Frame) {
    let n = f.index;
    let write_module = |w: &mut String| {
        if let Some(name) = &f.module {
            let _ = write!(w, "{name}+0x{:x}", f.module_offset.unwrap_or_default().0);
        }
    };
    if !f.functions.is_empty() {
        for func in &f.functions {
            let _ = write!(w, "  #{n} 0x{:016x} ", f.address.0);
            esc(w, func.name.as_deref().unwrap_or("??"));
            if let Some(file) = &func.file {
                w.push_str(" at ");
                esc(w, file);
                if let Some(line) = func.line {
                    let _ = write!(w, ":{line}");
                }
            }
            if func.inlined {
                w.push_str(" (inlined)\n");
            } else if f.module.is_some() {
                w.push_str(" (");
                write_module(w);
                w.push_str(")\n");
            } else {
                w.push('\n');
            }
        }
        return;
    }
    let _ = write!(w, "  #{n} 0x{:016x} ", f.address.0);
    match (&f.symbol, &f.module) {
        (Some(name), Some(_)) => {
            esc(w, name);
            let _ = write!(w, "+0x{:x} (", f.symbol_offset.unwrap_or_default().0);
            write_module(w);
            w.push_str(")\n");
        }
        (None, Some(_)) => {
            write_module(w);
            w.push('\n');
        }
        _ => w.push_str("?? (no module)\n"),
    }
}

/// The frame that enters the program's own code from the runtime.
fn is_short_backtrace_marker(f: &Frame) -> bool {
    const MARKER: &str = "__rust_begin_short_backtrace";
    f.functions
        .iter()
        .any(|func| func.name.as_deref().is_some_and(|n| n.contains(MARKER)))
        || f.symbol.as_deref().is_some_and(|n| n.contains(MARKER))
}

/// `------ Thread <tid> "<name>" (<state>[; writing this report]; paused <t>) ------`
pub(super) fn write_thread_header(w: &mut String, th: &Thread) {
    let _ = write!(w, "------ Thread {} \"", th.tid);
    esc(w, &th.name);
    w.push_str("\" (");
    esc(w, &th.state);
    if th.writing_report {
        w.push_str("; writing this report");
    }
    w.push_str("; paused ");
    let _ = write_duration(w, th.pause_ns);
    w.push_str(") ------\n");
}

fn elided_line(w: &mut String, first: usize, last: usize, why: ElidedWhy) {
    match why {
        ElidedWhy::Recursion => {
            let _ = writeln!(
                w,
                "  ... #{first}..#{last}: {} more frames of the same function",
                last.saturating_add(1).saturating_sub(first)
            );
        }
        ElidedWhy::RuntimeStartUp => {
            let _ = writeln!(
                w,
                "  ... #{first}..#{last}: runtime start-up frames (std::rt, std::thread, libc)"
            );
        }
    }
}

/// The frames as the text shows them: runs of one return address folded
/// after three, the runtime's start-up frames in one line; a thread read
/// from text lists the frames it showed and brings its folded ranges along.
fn write_frames(w: &mut String, th: &Thread, from_text: bool) {
    if from_text || !th.elided.is_empty() {
        let mut pending = th.elided.iter().peekable();
        for f in &th.frames {
            while let Some(e) = pending.next_if(|e| e.last < f.index) {
                elided_line(w, e.first, e.last, e.why);
            }
            write_frame(w, f);
        }
        for e in pending {
            elided_line(w, e.first, e.last, e.why);
        }
        return;
    }
    let frames = &th.frames;
    let shown = frames
        .iter()
        .position(is_short_backtrace_marker)
        .filter(|&i| i > 0)
        .unwrap_or(frames.len());
    let mut run = 0usize;
    for (n, f) in frames.iter().enumerate().take(shown) {
        let same_as_previous = n > 0 && frames[n - 1].address == f.address;
        run = if same_as_previous { run + 1 } else { 0 };
        if run < 3 {
            write_frame(w, f);
            continue;
        }
        let next_same = frames.get(n + 1).is_some_and(|x| x.address == f.address);
        if !next_same {
            let first = frames[n + 1 - (run - 2)].index;
            elided_line(w, first, f.index, ElidedWhy::Recursion);
        }
    }
    if shown < frames.len() {
        let first = frames[shown].index;
        let last = frames[frames.len() - 1].index;
        elided_line(w, first, last, ElidedWhy::RuntimeStartUp);
    }
}

fn write_threads(w: &mut String, t: &Threads, from_text: bool) {
    for th in &t.threads {
        if let Some(block) = &th.unresponsive {
            w.push_str(block);
            w.push_str("\n\n");
            continue;
        }
        write_thread_header(w, th);
        write_frames(w, th, from_text);
        let _ = write_scan_note(w, th.frames_scanned_from.unwrap_or(0));
        if let Some(end) = &th.stack_end {
            let _ = writeln!(w, "  -- {end}");
        }
        w.push('\n');
    }
    if t.left_out > 0 {
        let _ = writeln!(
            w,
            "------ {} more threads left out: the slot table holds {} (raise Options::max_threads) ------\n",
            t.left_out, t.capacity
        );
    }
}

fn write_processes(w: &mut String, p: &Processes) {
    for p in &p.processes {
        let indent = "    ".repeat(p.depth);
        let user = match (&p.user, p.uid) {
            (Some(u), Some(id)) => format!("{u} ({id})"),
            (None, Some(id)) => format!("uid {id}"),
            _ => "unknown".into(),
        };
        let _ = writeln!(
            w,
            "{indent}Process {} (under {}) [ run by: {user}, state: {} ({}) ]",
            p.pid, p.ppid, p.state, p.state_name
        );
        w.push_str(&indent);
        w.push_str("    ");
        esc(w, &p.cmdline.join(" "));
        w.push('\n');
    }
}

fn write_configuration(w: &mut String, c: &Configuration) {
    let Some(groups) = &c.groups else {
        w.push_str("  (no configuration given: see guru::Builder::config)\n");
        return;
    };
    for g in groups {
        w.push('[');
        esc(w, &g.name);
        w.push_str("]\n");
        for e in &g.entries {
            w.push_str("  ");
            esc(w, &e.key);
            w.push_str(" = ");
            esc(w, &e.value);
            w.push('\n');
        }
    }
}

pub(in crate::model) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(in crate::model) fn seconds(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

fn write_process(w: &mut String, p: &Process) {
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
    let _ = writeln!(
        w,
        "  uptime: {} (guru installed {} ago)",
        p.uptime_ns.map_or_else(|| "unknown".into(), seconds),
        seconds(p.guru_uptime_ns)
    );
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

fn write_figures(w: &mut String, f: &Figures, report_ns: u64) {
    // A core report's Report section has only the round's figures.
    if let Some(by) = &f.requested_by {
        w.push_str("  requested by: ");
        match by {
            t @ Trigger::Signal { .. } => {
                let _ = write_trigger_source(w, &core_trigger(t, true));
            }
            Trigger::File { path } => {
                w.push_str("file trigger ");
                esc(w, path);
            }
            Trigger::Call => w.push_str("a call to guru::report"),
            Trigger::Dump {
                client_pid,
                client_uid,
            } => {
                let _ = write!(w, "guru dump from pid {client_pid} (uid {client_uid})");
            }
        }
        w.push('\n');
    }
    if let Some(round) = &f.round {
        let summary = RoundSummary {
            sequence: round.sequence,
            threads_listed: round.threads_listed,
            threads_captured: round.threads_captured,
            threads_unresponsive: round.threads_unresponsive,
            threads_not_signalled: round.threads_not_signalled,
            threads_left_out: round.threads_left_out,
            capture_ns: round.capture_ns,
            fanout_ns: round.fanout_ns,
            max_pause_ns: round.max_pause_ns,
            max_pause_tid: round.max_pause_tid,
            coalesced_triggers: round.coalesced_triggers,
            mappings_dropped: round.mappings_dropped,
            ..RoundSummary::default()
        };
        let triggers: Vec<CoreTrigger> = f
            .recent_triggers
            .iter()
            .map(|t| CoreTrigger {
                unix_ns: super::parse::utc_ns(&t.time).unwrap_or(report_ns),
                signal: t.signal,
                code: t.si_code,
                sender_pid: t.sender_pid,
                sender_uid: t.sender_uid,
                started_report: t.started_report,
            })
            .collect();
        let _ = write_round_figures(w, &summary, f.capacity, |g| {
            for t in &triggers {
                g(t);
            }
        });
    } else {
        w.push_str("  no capture round ran\n");
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
