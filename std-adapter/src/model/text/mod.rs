//! The text renderer of the model: the text report of `docs/report-format.md`,
//! with the core's begin/end lines, banners, trigger wording, round figures
//! and scan note from `guru_core::render`/`guru_core::format`, so a report
//! rendered here reads exactly like the core's and the std adapter's.

use std::fmt::Write;

use guru_core::format::{write_banner, write_duration, write_escaped, write_utc};
use guru_core::render::{write_begin_line, write_end_line, write_scan_note};
use guru_core::{RoundSummary, Trigger as CoreTrigger};

mod figures;
pub(super) mod green;
pub(super) mod watchdog;

use super::{
    Configuration, Content, Data, ElidedWhy, Frame, Label, Package, Processes, Report, Thread,
    ThreadContext, ThreadMark, Threads, Trigger,
};
pub(in crate::model) use figures::{
    BLOCKED_AT_INSTALL_NOTE, BLOCKED_INHERITED_NOTE, PANICS_NOT_REPORTED, RATE_LIMIT_NOTE,
    STANDARD_SIGNAL_NOTE, UNKNOWN_LOCATION, mib, seconds,
};
use figures::{write_figures, write_process};
use green::write_green_threads;

pub(in crate::model) fn render(r: &Report) -> String {
    // Room for the usual report, so the text is not copied as it grows: a
    // line of about 100 bytes per frame, a few lines per thread.
    let lines: usize = r
        .sections
        .iter()
        .map(|s| match &s.content {
            Content::Ok(Data::Threads(t)) => {
                t.threads.iter().map(|t| 2 + t.frames.len()).sum::<usize>()
            }
            _ => 0,
        })
        .sum();
    let mut w = String::with_capacity(16 * 1024 + lines.saturating_mul(100));
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
        Trigger::Watchdog(stall) => {
            let _ = write!(
                w,
                "==== Guru Meditation ==== pid {} report #{} at ",
                r.pid, r.sequence
            );
            let _ = write_utc(&mut w, r.time_unix_ns);
            let _ = writeln!(w, " triggered by {}", watchdog::trigger_words(stall));
        }
        Trigger::Crash { .. } => {
            if let Some(words) = crash_words(&r.trigger) {
                let _ = guru_core::crash::write_crash_begin_line(&mut w, &summary, &words);
            }
        }
        Trigger::Panic {
            thread,
            thread_name,
            ..
        } => {
            let _ = write!(
                w,
                "==== Guru Meditation ==== pid {} report #{} at ",
                r.pid, r.sequence
            );
            let _ = write_utc(&mut w, r.time_unix_ns);
            let _ = write!(w, " triggered by a panic in thread {thread} \"");
            esc(&mut w, thread_name);
            w.push_str("\"\n");
        }
        _ => {
            let _ = write_begin_line(&mut w, &summary);
        }
    }
    let body_start = w.len();
    for s in &r.sections {
        let _ = write_banner(&mut w, &banner_title(&s.title));
        match &s.content {
            Content::Ok(data) => write_data(&mut w, data, r),
            Content::Failed { error, .. } => {
                w.push_str("  !! section failed: ");
                esc(&mut w, error);
                w.push('\n');
            }
        }
    }
    seal(&mut w, body_start);
    let _ = write_end_line(&mut w, &summary);
    w
}

/// The panicking thread's state in a panic report (the panic hook writes
/// the report in that thread).
pub(in crate::model) const PANICKING: &str = "panicking, writing this report";

/// Longest title a banner shows: its line keeps two spaces on each side of
/// the title (`====  Title  ====`), so it can never start like a begin or
/// end line.
const TITLE_WIDTH: usize = 60;

/// A section title as its banner shows it: control characters escaped like
/// any text, cut to [`TITLE_WIDTH`] characters (the JSON report has it whole).
fn banner_title(title: &str) -> String {
    let mut t = String::with_capacity(title.len());
    esc(&mut t, title.trim());
    if t.chars().count() <= TITLE_WIDTH {
        return t;
    }
    // Cut between escaped characters, never inside a `\xNN`.
    let mut cut = String::with_capacity(TITLE_WIDTH);
    let mut piece = String::new();
    for c in title.trim().chars() {
        piece.clear();
        esc(&mut piece, c.encode_utf8(&mut [0; 4]));
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
/// split lines at; text already escaped stays as it is.
fn esc(w: &mut String, s: &str) {
    // The usual text (names, paths) is printable ASCII: nothing to escape.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        w.push_str(s);
        return;
    }
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
    // A branch-free pass over 64-byte blocks finds the blocks where a byte
    // may start a control character or a newline is followed by `=` (it
    // vectorizes; a byte-by-byte scan with the line-start test was a fifth
    // of a warm 8-thread report); only those blocks are looked at byte by
    // byte. The body's last byte has no successor: checked on its own.
    let line_at = |i: usize| b[i] == b'\n' && body.get(i + 1..).is_some_and(forged);
    let n = b.len();
    let dirty = forged(body)
        || (n > 0 && control(n - 1))
        || (0..n).step_by(64).any(|start| {
            let end = (start + 64).min(n);
            let (block, next) = (&b[start..end], &b[start + 1..(end + 1).min(n)]);
            let candidate = block.iter().zip(next).fold(false, |any, (&c, &d)| {
                any | ((c < 0x20) & (c != b'\n'))
                    | (c == 0x7f)
                    | (c == 0xc2)
                    | ((c == b'\n') & (d == b'='))
            });
            candidate && (start..end).any(|i| control(i) || line_at(i))
        });
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

fn escaped(s: &str) -> String {
    let mut out = String::new();
    esc(&mut out, s);
    out
}

/// The words of a crash trigger, as the core's crash report writes them
/// (`None` for any other trigger).
fn crash_words(t: &Trigger) -> Option<guru_core::crash::CrashWords<'_>> {
    match t {
        Trigger::Crash {
            signal,
            si_code,
            fault_address,
            sender_pid,
            thread,
            thread_name,
            then_signal,
            ..
        } => Some(guru_core::crash::CrashWords {
            signal: *signal,
            code: *si_code,
            address: fault_address.map(|a| a.0),
            sender_pid: sender_pid.unwrap_or(0),
            tid: *thread,
            name: thread_name.as_bytes(),
            then_signal: then_signal.unwrap_or(0),
        }),
        _ => None,
    }
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
        Trigger::Dump {
            client_pid,
            client_uid,
        } => CoreTrigger {
            unix_ns: 0,
            signal: 0,
            code: guru_core::trigger::CODE_DUMP,
            sender_pid: *client_pid,
            sender_uid: *client_uid,
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
        Data::Threads(t) => write_threads(w, t, r),
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
        Data::Report(f) => write_figures(w, f, r.time_unix_ns, &r.trigger),
    }
}

fn write_package(w: &mut String, p: &Package) {
    // Application-supplied (Cargo.toml, the build, service_name): escaped
    // like any text.
    let mut line = |label: &str, value: &str| {
        w.push_str(label);
        esc(w, value);
        w.push('\n');
    };
    line("  name: ", &p.name);
    line("  version: ", &p.version);
    line("  service: ", &p.service);
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

/// A frame's source path as the text report prints it: the part a reader
/// needs, not the build machine's prefix (the JSON report keeps the full
/// path). `/rustc/<commit>/library/std/src/…` → `std/src/…`;
/// `…/.cargo/registry/src/<index>-<hash>/axum-0.8.9/src/…` →
/// `axum-0.8.9/src/…`; `…/.cargo/git/checkouts/<repo>-<hash>/<rev>/src/…` →
/// `<repo>-<hash>/<rev>/src/…`. Any other path is left as it is.
pub(in crate::model) fn short_path(file: &str) -> &str {
    if let Some(rest) = file.strip_prefix("/rustc/")
        && let Some((commit, tail)) = rest.split_once('/')
        && !commit.is_empty()
        && commit.bytes().all(|b| b.is_ascii_hexdigit())
        && let Some(lib) = tail.strip_prefix("library/")
        && !lib.is_empty()
    {
        return lib;
    }
    if let Some(i) = find(file, "/.cargo/registry/src/") {
        let rest = &file[i + "/.cargo/registry/src/".len()..];
        if let Some((_index, krate)) = rest.split_once('/')
            && !krate.is_empty()
        {
            return krate;
        }
    }
    if let Some(i) = find(file, "/.cargo/git/checkouts/") {
        let rest = &file[i + "/.cargo/git/checkouts/".len()..];
        if !rest.is_empty() {
            return rest;
        }
    }
    file
}

/// Where `needle` first occurs in `hay`: `str::find` builds a two-way
/// searcher for every call, which showed in a warm report's profile (two
/// calls for every frame's file); paths are short and the needles start
/// with a `/`, so a scan of the slashes is cheaper.
fn find(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let first = *n.first()?;
    h.iter()
        .enumerate()
        .filter(|&(_, &b)| b == first)
        .map(|(i, _)| i)
        .find(|&i| h.get(i..i + n.len()) == Some(n))
}

/// One frame: a line per DWARF function (inlined ones first), or one line
/// with the ELF symbol or `module+0xoffset`.
pub(super) fn write_frame(w: &mut String, f: &Frame) {
    let n = f.index;
    // Hand-written number formatting: `write!` through `fmt` was a large
    // part of a warm report's rendering (a line per frame and function).
    let write_module = |w: &mut String| {
        if let Some(name) = &f.module {
            w.push_str(name);
            w.push_str("+0x");
            push_hex(w, f.module_offset.unwrap_or_default().0, 1);
        }
    };
    let write_start = |w: &mut String| {
        w.push_str("  #");
        push_decimal(w, n as u64);
        w.push_str(" 0x");
        push_hex(w, f.address.0, 16);
        w.push(' ');
    };
    if !f.functions.is_empty() {
        for func in f.functions.iter() {
            write_start(w);
            esc(w, func.name.as_deref().unwrap_or("??"));
            if let Some(file) = &func.file {
                w.push_str(" at ");
                esc(w, short_path(file));
                if let Some(line) = func.line {
                    w.push(':');
                    push_decimal(w, u64::from(line));
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
    write_start(w);
    match (&f.symbol, &f.module) {
        (Some(name), Some(_)) => {
            esc(w, name);
            w.push_str("+0x");
            push_hex(w, f.symbol_offset.unwrap_or_default().0, 1);
            w.push_str(" (");
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

/// `v` in decimal, as `{}` writes it.
fn push_decimal(w: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        w.push(char::from(b));
    }
}

/// `v` in lower-case hex, zero-padded to `width` digits (at least one), as
/// `{:0width$x}` writes it.
fn push_hex(w: &mut String, v: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - v.leading_zeros() as usize / 4).max(1);
    for k in (0..digits.max(width)).rev() {
        let nibble = if k < 16 { (v >> (k * 4)) & 0xf } else { 0 };
        w.push(char::from(DIGITS[nibble as usize]));
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

/// `------ Thread <tid> "<name>" (<state>[; writing this report]; paused <t>[; cpu <s>][; stalled]) ------`;
/// a crashed thread: `------ Thread <tid> "<name>" (crashed: SIGSEGV SEGV_MAPERR
/// at address 0x0[; cpu <s>]) ------` (it did not capture itself: no pause;
/// its CPU clock was read for it by the crash helper).
pub(super) fn write_thread_header(w: &mut String, th: &Thread) {
    let _ = write!(w, "------ Thread {} \"", th.tid);
    esc(w, &th.name);
    w.push_str("\" (");
    if let Some(ThreadMark::Crashed {
        signal,
        si_code,
        fault_address,
        ..
    }) = &th.mark
    {
        let _ =
            guru_core::crash::write_crash_mark(w, *signal, *si_code, fault_address.map(|a| a.0));
    } else {
        esc(w, &th.state);
        // The std adapter's own thread says so in its state ("the reporter,
        // writing this report"); the core's adds it after the state.
        if th.writing_report && !th.state.ends_with("writing this report") {
            w.push_str("; writing this report");
        }
        w.push_str("; paused ");
        let _ = write_duration(w, th.pause_ns);
    }
    if let Some(cpu) = th.cpu_ns {
        let _ = write!(w, "; cpu {}", seconds(cpu));
    }
    if th.stalled {
        w.push_str("; stalled");
    }
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

fn write_threads(w: &mut String, t: &Threads, r: &Report) {
    let from_text = r.read_from_text;
    for th in &t.threads {
        if let Some(block) = &th.unresponsive {
            w.push_str(block);
            w.push_str("\n\n");
            continue;
        }
        write_thread_header(w, th);
        watchdog::write_thread_notes(w, th.stalled, th.same_stack.as_ref(), &r.trigger);
        if let Some(c) = &th.context {
            write_context(w, c);
        }
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

/// A thread's context lines (`  labels: …`, `  spans: …`,
/// `  breadcrumbs …: …`, or the "being updated" line), written by the
/// core's function so that core and std reports read back alike.
pub(in crate::model) fn write_context(w: &mut String, c: &ThreadContext) {
    use guru_core::context::{BEING_UPDATED_LINE, write_context_parts};
    if c.being_updated {
        w.push_str(BEING_UPDATED_LINE);
        w.push('\n');
        return;
    }
    fn pairs(v: &[Label]) -> impl Iterator<Item = (&str, &str)> {
        v.iter().map(|l| (l.key.as_str(), l.value.as_str()))
    }
    let _ = write_context_parts(
        w,
        pairs(&c.labels),
        c.labels_not_kept,
        c.spans.iter().map(|s| (s.name.as_str(), pairs(&s.fields))),
        c.spans_not_kept,
        c.breadcrumbs.iter().map(|b| (b.age_ns, b.text.as_str())),
        c.breadcrumbs_dropped,
    );
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

#[cfg(test)]
mod short_path_tests {
    use super::{find, push_decimal, push_hex, short_path};

    #[test]
    fn numbers_as_fmt_writes_them() {
        for v in [
            0,
            1,
            9,
            10,
            0xf,
            0x10,
            255,
            4096,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut w = String::new();
            push_decimal(&mut w, v);
            push_hex(&mut w, v, 1);
            push_hex(&mut w, v, 16);
            assert_eq!(w, format!("{v}{v:x}{v:016x}"));
        }
        assert_eq!(find("a/b/.cargo/x", "/.cargo/"), Some(3));
        assert_eq!(find("/.carg", "/.cargo/"), None);
        assert_eq!(find("", "/"), None);
    }

    #[test]
    fn toolchain_registry_and_git_paths_are_shortened() {
        assert_eq!(
            short_path(
                "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src/thread/functions.rs"
            ),
            "std/src/thread/functions.rs"
        );
        assert_eq!(
            short_path(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/axum-0.8.9/src/routing/mod.rs"
            ),
            "axum-0.8.9/src/routing/mod.rs"
        );
        assert_eq!(
            short_path("/home/u/.cargo/git/checkouts/hyper-5e1b1d5a3d8e0f2c/1a2b3c4/src/lib.rs"),
            "hyper-5e1b1d5a3d8e0f2c/1a2b3c4/src/lib.rs"
        );
        // Left alone: the application's own paths, and look-alikes.
        for p in [
            "src/main.rs",
            "/work/app/src/main.rs",
            "/rustc/not-a-commit/library/std/src/rt.rs",
            "/rustc/abc/library/",
            "/root/.cargo/registry/src/index-only",
        ] {
            assert_eq!(short_path(p), p);
        }
    }
}
