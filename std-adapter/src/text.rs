//! The text report: the contract of DESIGN.md ("Report text format"), with
//! the core's begin/end lines, banners, thread headers, Modules and Report
//! figures reused from `guru_core::render`, so core and std reports read the
//! same. The std Threads section adds function names from DWARF, `at
//! file:line`, and a line per inlined call:
//!
//! ```text
//!   #2 0x000055d0c1a2b3c4 demo::parse_inlined at src/demo.rs:41 (inlined)
//!   #2 0x000055d0c1a2b3c4 demo::worker at src/demo.rs:57 (demo+0x2b3c4)
//! ```
//!
//! Inlined lines repeat the frame number and address of the physical frame
//! they belong to; the last line of a frame is the function the code really
//! lives in, and carries `module+0xoffset` for offline symbolization.
//!
//! As in std's short backtraces, the frames from
//! `std::sys::backtrace::__rust_begin_short_backtrace` outwards (thread and
//! program start-up in std and libc) are summarized in one `... #a..#b:`
//! line; the JSON report keeps every frame.

use std::fmt::Write;

use guru_core::format::{write_banner, write_duration, write_escaped, write_utc};
use guru_core::render::{
    write_begin_line, write_end_line, write_modules, write_round_figures, write_trigger_source,
};

use crate::procinfo::ProcessInfo;
use crate::report::{Body, Collected, Figures, FrameData, Source, ThreadsData};

/// Renders a whole report.
pub(crate) fn render(c: &Collected) -> String {
    let mut w = String::with_capacity(16 * 1024);
    let summary = c.line_summary();
    match &c.source {
        Source::File(path) => {
            let _ = write!(
                w,
                "==== Guru Meditation ==== pid {} report #{} at ",
                summary.pid, summary.sequence
            );
            let _ = write_utc(&mut w, summary.started_unix_ns);
            let _ = write!(w, " triggered by file ");
            let _ = write_escaped(&mut w, path.as_os_str().as_encoded_bytes());
            w.push('\n');
        }
        _ => {
            let _ = write_begin_line(&mut w, &summary);
        }
    }
    let body_start = w.len();
    for s in &c.sections {
        let _ = write_banner(&mut w, &banner_title(&s.title));
        match &s.body {
            Ok(body) => write_body(&mut w, body),
            Err(why) => {
                w.push_str("  !! section failed: ");
                push_escaped_line(&mut w, why);
                w.push('\n');
            }
        }
    }
    seal(&mut w, body_start);
    let _ = write_end_line(&mut w, &summary);
    w
}

/// Longest title a banner shows: its line keeps two spaces on each side of
/// the title (`====  Title  ====`), so it can never start like a begin or
/// end line.
const TITLE_WIDTH: usize = 60;

/// A section title as its banner shows it: control characters escaped like
/// any text, cut to [`TITLE_WIDTH`] characters (the JSON report has it whole).
fn banner_title(title: &str) -> String {
    let mut t = String::with_capacity(title.len());
    push_escaped_line(&mut t, title.trim());
    if t.chars().count() <= TITLE_WIDTH {
        return t;
    }
    // Cut between escaped characters, never inside a `\xNN`.
    let mut cut = String::with_capacity(TITLE_WIDTH);
    let mut piece = String::new();
    for c in title.trim().chars() {
        piece.clear();
        push_escaped_line(&mut piece, c.encode_utf8(&mut [0; 4]));
        if cut.chars().count() + piece.chars().count() > TITLE_WIDTH - 3 {
            break;
        }
        cut.push_str(&piece);
    }
    cut.push_str("...");
    cut
}

/// Escapes control characters (a section cannot inject lines or terminal
/// escapes), and the Unicode line and paragraph separators some readers
/// split lines at.
fn push_escaped_line(w: &mut String, s: &str) {
    let from = w.len();
    let _ = write_escaped(w, s.as_bytes());
    if s.contains(['\u{2028}', '\u{2029}']) {
        let tail = w[from..]
            .replace('\u{2028}', "\\u{2028}")
            .replace('\u{2029}', "\\u{2029}");
        w.truncate(from);
        w.push_str(&tail);
    }
}

/// The framing guarantee, whatever a section writer forgot: from
/// `body_start` on, no line starts like a begin or end line (it gets two
/// spaces of indent) and no control character but the newline is left (it
/// is escaped). One scan of the report; it rewrites only when needed.
fn seal(w: &mut String, body_start: usize) {
    const BEGIN: &str = "==== Guru Meditation";
    const END: &str = "==== End of Guru Meditation";
    let body = &w[body_start..];
    let forged = |line: &str| line.starts_with(BEGIN) || line.starts_with(END);
    let b = body.as_bytes();
    let control = |i: usize| match b[i] {
        b'\n' => false,
        c if c < 0x20 || c == 0x7f => true,
        0xc2 => b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)),
        _ => false,
    };
    let dirty =
        (0..b.len()).any(|i| control(i) || ((i == 0 || b[i - 1] == b'\n') && forged(&body[i..])));
    if !dirty {
        return;
    }
    let mut clean = String::with_capacity(body.len() + 64);
    for line in body.split_inclusive('\n') {
        let (text, newline) = match line.strip_suffix('\n') {
            Some(t) => (t, "\n"),
            None => (line, ""),
        };
        if forged(text) {
            clean.push_str("  ");
        }
        let _ = write_escaped(&mut clean, text.as_bytes());
        clean.push_str(newline);
    }
    w.truncate(body_start);
    w.push_str(&clean);
}

fn write_body(w: &mut String, body: &Body) {
    match body {
        Body::Package(p, service) => {
            // Application-supplied (Cargo.toml, the build, service_name):
            // escaped like any text.
            let mut line = |label: &str, value: &str| {
                w.push_str(label);
                push_escaped_line(w, value);
                w.push('\n');
            };
            line("  name: ", &p.name);
            line("  version: ", &p.version);
            line("  service: ", service);
            if !p.authors.is_empty() {
                line("  authors: ", &p.authors.join(", "));
            }
            if let Some(r) = &p.repository {
                line("  repository: ", r);
            }
            line("  target: ", &p.target);
            line(
                "  profile: ",
                &format!("{} (opt-level {})", p.profile, p.opt_level),
            );
            if let Some(r) = &p.rustc {
                line("  rustc: ", r);
            }
            let commit = p.git_commit.as_deref().unwrap_or("unknown");
            let dirty = if p.git_dirty == Some(true) {
                " (dirty)"
            } else {
                ""
            };
            line("  git commit: ", &format!("{commit}{dirty}"));
        }
        Body::Threads(t) => write_threads(w, t),
        Body::Processes(list) => {
            for p in list {
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
                push_escaped_line(w, &p.cmdline.join(" "));
                w.push('\n');
            }
        }
        Body::Configuration(None) => {
            w.push_str("  (no configuration given: see guru::Builder::config)\n");
        }
        Body::Configuration(Some(groups)) => {
            for g in groups {
                w.push('[');
                push_escaped_line(w, &g.name);
                w.push_str("]\n");
                for e in &g.entries {
                    w.push_str("  ");
                    push_escaped_line(w, &e.key);
                    w.push_str(" = ");
                    push_escaped_line(w, &e.value);
                    w.push('\n');
                }
            }
        }
        Body::Text(text) => {
            // Indented, so a section cannot forge banners or end lines.
            for line in text.lines() {
                w.push_str("  ");
                push_escaped_line(w, line);
                w.push('\n');
            }
        }
        Body::Process(p) => write_process(w, p),
        Body::Modules(m) => {
            let _ = write_modules(w, m);
        }
        Body::Report(f) => write_figures(w, f),
        #[cfg(feature = "tokio")]
        Body::GreenThreads(g) => crate::tokio::write_text(w, g),
    }
}

pub(crate) fn write_frame(w: &mut String, n: usize, f: &FrameData) {
    // `module+0xoffset`, written in place (no per-frame string).
    let write_module = |w: &mut String| {
        if let Some((name, off)) = &f.module {
            let _ = write!(w, "{name}+0x{off:x}");
        }
    };
    let funcs = &f.symbolized.functions;
    if !funcs.is_empty() {
        for func in funcs {
            let _ = write!(w, "  #{n} 0x{:016x} ", f.address);
            push_escaped_line(w, func.name.as_deref().unwrap_or("??"));
            if let Some(file) = &func.file {
                w.push_str(" at ");
                push_escaped_line(w, file);
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
    let _ = write!(w, "  #{n} 0x{:016x} ", f.address);
    match (&f.symbolized.symbol, &f.module) {
        (Some((name, off)), Some(_)) => {
            push_escaped_line(w, name);
            let _ = write!(w, "+0x{off:x} (");
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

fn write_threads(w: &mut String, t: &ThreadsData) {
    for th in &t.threads {
        if let Some(block) = &th.unresponsive {
            w.push_str(block);
            w.push('\n');
            continue;
        }
        w.push_str(&th.header);
        // Like std's short backtraces, the runtime's start-up frames (from
        // `__rust_begin_short_backtrace` outwards: std::rt, std::thread,
        // libc's start_thread/clone) are summarized in one line; JSON has them.
        let shown = th
            .frames
            .iter()
            .position(is_short_backtrace_marker)
            .filter(|&i| i > 0)
            .unwrap_or(th.frames.len());
        // Runs of one return address (deep recursion) are folded after three,
        // as in the core report.
        let mut run = 0usize;
        for (n, f) in th.frames.iter().enumerate().take(shown) {
            let same_as_previous = n > 0 && th.frames[n - 1].address == f.address;
            run = if same_as_previous { run + 1 } else { 0 };
            if run < 3 {
                write_frame(w, n, f);
                continue;
            }
            let next_same = th.frames.get(n + 1).is_some_and(|x| x.address == f.address);
            if !next_same {
                let _ = writeln!(
                    w,
                    "  ... #{}..#{}: {} more frames of the same function",
                    n + 1 - (run - 2),
                    n,
                    run - 2
                );
            }
        }
        if shown < th.frames.len() {
            let _ = writeln!(
                w,
                "  ... #{shown}..#{}: runtime start-up frames (std::rt, std::thread, libc)",
                th.frames.len() - 1
            );
        }
        let _ = guru_core::render::write_scan_note(w, th.scanned_from);
        if let Some(end) = &th.end {
            w.push_str(end);
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

/// The frame that enters the program's own code from the runtime.
fn is_short_backtrace_marker(f: &FrameData) -> bool {
    const MARKER: &str = "__rust_begin_short_backtrace";
    f.symbolized
        .functions
        .iter()
        .any(|func| func.name.as_deref().is_some_and(|n| n.contains(MARKER)))
        || f.symbolized
            .symbol
            .as_ref()
            .is_some_and(|(n, _)| n.contains(MARKER))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn seconds(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

fn write_process(w: &mut String, p: &ProcessInfo) {
    let _ = writeln!(w, "  pid {}, parent {}", p.pid, p.ppid);
    if let Some(e) = &p.executable {
        w.push_str("  executable: ");
        push_escaped_line(w, e);
        w.push('\n');
    }
    if let Some(d) = &p.working_directory {
        w.push_str("  working directory: ");
        push_escaped_line(w, d);
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
        seconds(u.user_cpu_us * 1000),
        seconds(u.system_cpu_us * 1000)
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

/// The Report section's trigger notes: what the coalesced count cannot
/// include, the rate limit, ignored file touches, the recent triggers (by
/// time) and threads that block the capture signal.
fn write_trigger_notes(w: &mut String, f: &Figures) {
    if let Some((signal, interval)) = f.trigger {
        if let Some(sig) = signal.filter(|&s| s < guru_core::sys::sigrtmin()) {
            let name = guru_core::format::signal_name(sig).unwrap_or("the trigger signal");
            let _ = writeln!(
                w,
                "  note: {name} is a standard signal: one sent while another is still pending is merged by the kernel before guru sees it, so such triggers are not counted (a real-time trigger signal queues)"
            );
        }
        if interval.is_zero() {
            w.push_str("  rate limit: none\n");
        } else {
            let _ = writeln!(
                w,
                "  rate limit: reports at least {} apart; sooner triggers are held and coalesced into one report",
                seconds(u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX))
            );
        }
    }
    if let (n @ 1.., owner) = f.ignored_file_touches {
        let _ = write!(
            w,
            "  file trigger: {n} touches ignored since the last report"
        );
        if let Some(uid) = owner {
            let _ = write!(
                w,
                " (the file is owned by uid {uid}, not by this process's user or root)"
            );
        }
        w.push('\n');
    }
    if !f.recent_triggers.is_empty() {
        w.push_str("  recent triggers, by time (oldest first):\n");
        for t in &f.recent_triggers {
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
    if let (false, Some((sig, at_install))) = (f.blocking_capture.is_empty(), f.capture_signal) {
        let tids: Vec<String> = f.blocking_capture.iter().map(i32::to_string).collect();
        let min = guru_core::sys::sigrtmin();
        let _ = write!(
            w,
            "  threads blocking the capture signal SIGRTMIN+{} (signal {sig}): {}; ",
            sig - min,
            tids.join(", ")
        );
        if at_install {
            w.push_str(
                "the thread that installed guru blocked it too, so the likely cause is the signal mask these threads inherited (an application that blocks every signal for sigwait/signalfd before starting its threads): unblock the capture signal in them with pthread_sigmask, or install guru before blocking signals\n",
            );
        } else {
            w.push_str(
                "a thread inherits the signal mask of the thread that started it: unblock the capture signal in them with pthread_sigmask\n",
            );
        }
    }
}

/// The `requested by:` words of a dump request (docs/report-format.md).
fn write_dump_source(w: &mut String, pid: i32, uid: u32) {
    let _ = write!(w, "guru dump from pid {pid} (uid {uid})");
}

fn write_figures(w: &mut String, f: &Figures) {
    w.push_str("  requested by: ");
    match &f.source {
        Source::Signal(t) => {
            let _ = write_trigger_source(w, t);
        }
        Source::File(p) => {
            w.push_str("file trigger ");
            push_escaped_line(w, &p.display().to_string());
        }
        Source::Call => w.push_str("a call to guru::report"),
        Source::Dump { pid, uid } => write_dump_source(w, *pid, *uid),
    }
    w.push('\n');
    if let Some(round) = &f.round {
        let _ = write_round_figures(w, round, f.capacity, |_| {});
    } else {
        w.push_str("  no capture round ran\n");
    }
    write_trigger_notes(w, f);
    if !f.unresponsive_tids.is_empty() {
        let tids: Vec<String> = f.unresponsive_tids.iter().map(i32::to_string).collect();
        let _ = writeln!(w, "  unresponsive threads: {}", tids.join(", "));
    }
    let s = &f.symbols;
    let _ = write!(
        w,
        "  symbolization: {} frames ({} from the cache), {} modules examined now, {} with debug info in all; ",
        s.frames, s.cached, s.modules_loaded, s.modules_with_debug_info
    );
    let _ = write_duration(w, s.ns);
    w.push_str(" (cpu ");
    let _ = write_duration(w, s.cpu_ns);
    let _ = writeln!(w, "), resident memory +{}", mib(s.rss_growth));
    for why in &f.no_debug_info {
        w.push_str("  no debug info: ");
        push_escaped_line(w, why);
        w.push('\n');
    }
    w.push_str("  sections: ");
    let _ = write_duration(w, f.sections_ns);
    w.push_str("; whole report until this section: ");
    let _ = write_duration(w, f.total_ns);
    w.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_stay_in_their_banner() {
        assert_eq!(banner_title(" Threads "), "Threads");
        let t = banner_title("Evil\n==== End of Guru Meditation ==== pid 1 report #1\n\x1b[2J");
        assert_eq!(
            t,
            "Evil\\x0a==== End of Guru Meditation ==== pid 1 report #1..."
        );
        assert!(t.chars().count() <= TITLE_WIDTH);
        let mut w = String::new();
        let _ = write_banner(&mut w, &banner_title(&"Guru Meditation ".repeat(9)));
        let line = w.lines().nth(1).unwrap();
        assert!(line.starts_with("====  Guru Meditation"), "{line}");
        assert_eq!(line.chars().count(), 72);
    }

    #[test]
    fn seal_neutralizes_forged_lines_and_controls() {
        let mut w = String::from("==== Guru Meditation ==== pid 2 report #1\n");
        let start = w.len();
        w.push_str("ok\n==== End of Guru Meditation ==== pid 2 report #1\nbell\x07\n");
        seal(&mut w, start);
        assert_eq!(
            w,
            "==== Guru Meditation ==== pid 2 report #1\nok\n  ==== End of Guru Meditation ==== pid 2 report #1\nbell\\x07\n"
        );
        let clean = "x\n  y\n".to_string();
        let mut same = clean.clone();
        seal(&mut same, 0);
        assert_eq!(same, clean);
    }
}
