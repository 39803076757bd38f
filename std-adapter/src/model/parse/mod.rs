//! Reading a text report back into the model ([`super::Report::from_text`]):
//! line by line, every line recognized or rejected with its number and what
//! was expected. Numbers are read only in the form the renderer writes them
//! (no leading zeros, lowercase hex), so what parses renders back the same.
//! This module has the report's frame and the small sections; stacks and
//! figures are in submodules.

use std::fmt;

mod context;
mod figures;
mod stacks;
mod watchdog;
mod words;

use super::{
    ConfigEntry, ConfigGroup, Configuration, Content, Custom, Data, Kind, Package, ProcessEntry,
    Processes, Report, SCHEMA, Section, Trigger,
};
use figures::{figures, modules, process};
use stacks::{green_threads, threads};
use words::{crash_trigger, num, signal_trigger};
pub(super) use words::{hex, utc_ns};

/// Why a text report could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number (one past the last line for a report cut short).
    pub line: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// What went wrong reading a text report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A line is not what the format has at this place.
    Expected {
        /// What the format has here.
        expected: &'static str,
        /// The line (at most 120 characters of it).
        found: String,
    },
    /// The input ended before the report's end line.
    Truncated {
        /// What was still to come.
        expected: &'static str,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ParseErrorKind::Expected { expected, found } => write!(
                f,
                "line {}: expected {expected}, found {found:?} (is this a whole guru text report?)",
                self.line
            ),
            ParseErrorKind::Truncated { expected } => write!(
                f,
                "line {}: the text ends before {expected} (pass the whole report, begin line to end line)",
                self.line
            ),
        }
    }
}

impl std::error::Error for ParseError {}

type Result<T> = std::result::Result<T, ParseError>;

const RULE: &str = "========================================================================";

/// The lines of one part of the report, with their position in the text.
struct Lines<'a> {
    lines: &'a [&'a str],
    /// 1-based number of `lines[0]`.
    base: usize,
    pos: usize,
}

impl<'a> Lines<'a> {
    fn new(lines: &'a [&'a str], base: usize) -> Lines<'a> {
        Lines {
            lines,
            base,
            pos: 0,
        }
    }

    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<&'a str> {
        self.lines.get(self.pos + ahead).copied()
    }

    fn done(&self) -> bool {
        self.pos >= self.lines.len()
    }

    fn line_no(&self) -> usize {
        self.base + self.pos
    }

    /// The next line, or a `Truncated` error naming what was expected.
    fn next(&mut self, expected: &'static str) -> Result<&'a str> {
        match self.peek() {
            Some(l) => {
                self.pos += 1;
                Ok(l)
            }
            None => Err(ParseError {
                line: self.line_no(),
                kind: ParseErrorKind::Truncated { expected },
            }),
        }
    }

    /// An error about the line just taken (or the current one if none was).
    fn err(&self, expected: &'static str) -> ParseError {
        let at = self.pos.saturating_sub(1);
        let found: String = self
            .lines
            .get(at)
            .copied()
            .unwrap_or("")
            .chars()
            .take(120)
            .collect();
        ParseError {
            line: self.base + at,
            kind: ParseErrorKind::Expected { expected, found },
        }
    }

    /// Takes the next line, which must start with `prefix`; returns the rest.
    fn expect(&mut self, prefix: &str, expected: &'static str) -> Result<&'a str> {
        let l = self.next(expected)?;
        l.strip_prefix(prefix).ok_or_else(|| self.err(expected))
    }

    /// Takes the next line if it starts with `prefix`; returns the rest.
    fn take(&mut self, prefix: &str) -> Option<&'a str> {
        let rest = self.peek()?.strip_prefix(prefix)?;
        self.pos += 1;
        Some(rest)
    }
}

/// Whether a section banner starts at the current line; its title.
fn banner_at<'a>(l: &Lines<'a>) -> Option<&'a str> {
    if l.peek()? != RULE || l.peek_at(2)? != RULE {
        return None;
    }
    let mid = l.peek_at(1)?;
    let inner = mid.strip_prefix("====")?.strip_suffix("====")?;
    let title = inner.trim_matches(' ');
    // Only what `write_banner` writes for this title.
    let mut back = String::new();
    let _ = guru_core::format::write_banner(&mut back, title);
    (back.lines().nth(1) == Some(mid)).then_some(title)
}

/// Reads a whole text report.
pub(super) fn report(text: &str) -> Result<Report> {
    // Every line ends with a newline; text after the last one is an error.
    let all: Vec<&str> = text.split('\n').collect();
    let complete = text.ends_with('\n');
    let lines = match all.split_last() {
        Some((_, lines)) if complete => lines,
        _ => &all[..],
    };
    let mut l = Lines::new(lines, 1);
    let begin = l.expect(
        "==== Guru Meditation ==== pid ",
        "the begin line (==== Guru Meditation ==== pid …)",
    )?;
    let (pid, rest) = begin
        .split_once(" report #")
        .ok_or_else(|| l.err("report #"))?;
    let pid: i32 = num(pid).ok_or_else(|| l.err("a pid"))?;
    let (sequence, rest) = rest.split_once(" at ").ok_or_else(|| l.err("at <time>"))?;
    let sequence: u64 = num(sequence).ok_or_else(|| l.err("a report number"))?;
    let time = rest.get(..24).ok_or_else(|| l.err("a UTC time"))?;
    let time_unix_ns = utc_ns(time).ok_or_else(|| l.err("a UTC time"))?;
    let how = rest.get(24..).unwrap_or("");
    let mut trigger = if how == " on request" {
        Trigger::Call
    } else if let Some(stall) = how.strip_prefix(" triggered by watchdog: ") {
        Trigger::Watchdog(
            watchdog::stall(stall).ok_or_else(|| l.err("triggered by watchdog: <the stall>"))?,
        )
    } else if let Some(path) = how.strip_prefix(" triggered by file ") {
        Trigger::File {
            path: path.to_string(),
        }
    } else if let Some(words) = how.strip_prefix(" triggered by a crash: ") {
        crash_trigger(words, time).ok_or_else(|| {
            l.err("triggered by a crash: <signal> (<code>) … in thread <tid> \"<name>\"")
        })?
    } else if let Some(rest) = how.strip_prefix(" triggered by a panic in thread ") {
        let (thread, thread_name) = rest
            .strip_suffix('"')
            .and_then(|r| r.split_once(" \""))
            .and_then(|(tid, name)| Some((num(tid)?, name.to_string())))
            .ok_or_else(|| l.err("triggered by a panic in thread <tid> \"<name>\""))?;
        // The rest is in the Report section (see `fill_in`).
        Trigger::Panic {
            message: String::new(),
            location: String::new(),
            thread,
            thread_name,
            unreported_panics_before: 0,
            min_interval_ms: 0,
        }
    } else {
        how.strip_prefix(" triggered by ")
            .and_then(|s| signal_trigger(s, time))
            .ok_or_else(|| l.err("on request, triggered by file … or triggered by <signal>"))?
    };
    let end_line = format!("==== End of Guru Meditation ==== pid {pid} report #{sequence}");
    let mut sections = Vec::new();
    loop {
        if l.peek() == Some(end_line.as_str()) {
            l.pos += 1;
            break;
        }
        let Some(title) = banner_at(&l) else {
            l.next("a section banner or the end line")?;
            return Err(l.err("a section banner or the end line"));
        };
        l.pos += 3;
        let start = l.pos;
        while !l.done() && banner_at(&l).is_none() && l.peek() != Some(end_line.as_str()) {
            l.pos += 1;
        }
        let body = Lines::new(&l.lines[start..l.pos], l.base + start);
        sections.push(section(title, body, &mut trigger)?);
    }
    if !l.done() {
        l.pos += 1;
        return Err(l.err("nothing after the end line"));
    }
    if !complete {
        return Err(ParseError {
            line: l.line_no(),
            kind: ParseErrorKind::Truncated {
                expected: "the newline that ends the end line",
            },
        });
    }
    let mut report = Report {
        schema: SCHEMA.to_string(),
        pid,
        sequence,
        time: time.to_string(),
        time_unix_ns,
        trigger,
        sections,
        read_from_text: true,
    };
    fill_in(&mut report);
    Ok(report)
}

/// What one section carries for another: the slot table size, the round's
/// sequence, a panic's message and location (the begin line names only its
/// thread).
fn fill_in(r: &mut Report) {
    let mut capacity = None;
    for s in &mut r.sections {
        if let Content::Ok(Data::Report(f)) = &mut s.content {
            if let Some(Trigger::Signal { time, .. } | Trigger::Crash { time, .. }) =
                &mut f.requested_by
            {
                time.clone_from(&r.time);
            }
            if let (
                Trigger::Panic {
                    thread,
                    thread_name,
                    ..
                },
                Some(
                    by @ Trigger::Panic {
                        thread: t,
                        thread_name: n,
                        ..
                    },
                ),
            ) = (&r.trigger, &f.requested_by)
                && (thread, thread_name) == (t, n)
            {
                r.trigger = by.clone();
            }
            // The begin line says `on request` for a dump too.
            if let (Trigger::Call, Some(d @ Trigger::Dump { .. })) = (&r.trigger, &f.requested_by) {
                r.trigger = d.clone();
            }
            if let Some(round) = &mut f.round {
                round.sequence = r.sequence;
                capacity = Some(f.capacity);
            }
        }
    }
    for s in &mut r.sections {
        if let Content::Ok(Data::Threads(t)) = &mut s.content
            && t.left_out == 0
        {
            t.capacity = capacity.unwrap_or(0);
        }
    }
}

fn kind_of(title: &str) -> Kind {
    match title {
        "Package" => Kind::Package,
        "Threads" => Kind::Threads,
        "Green Threads" => Kind::GreenThreads,
        "Processes" => Kind::Processes,
        "Configuration" => Kind::Configuration,
        "Process" => Kind::Process,
        "Modules" => Kind::Modules,
        "Report" => Kind::Report,
        _ => Kind::Custom,
    }
}

/// Reads one section; `trigger` is the begin line's (a core crash report's
/// Report section gives the time of the crash).
fn section(title: &str, mut l: Lines<'_>, trigger: &mut Trigger) -> Result<Section> {
    let kind = kind_of(title);
    if l.lines.len() == 1
        && let Some(error) = l
            .peek()
            .and_then(|s| s.strip_prefix("  !! section failed: "))
    {
        return Ok(Section {
            title: title.to_string(),
            content: Content::Failed {
                kind,
                error: error.to_string(),
            },
        });
    }
    let data = match kind {
        Kind::Package => Data::Package(Box::new(package(&mut l)?)),
        Kind::Threads => Data::Threads(threads(&mut l, trigger)?),
        Kind::GreenThreads => Data::GreenThreads(green_threads(&mut l)?),
        Kind::Processes => Data::Processes(processes(&mut l)?),
        Kind::Configuration => Data::Configuration(configuration(&mut l)?),
        Kind::Process => Data::Process(Box::new(process(&mut l)?)),
        Kind::Modules => Data::Modules(modules(&mut l)?),
        Kind::Report => Data::Report(Box::new(figures(&mut l, trigger)?)),
        Kind::Custom => {
            let mut text = Vec::new();
            while !l.done() {
                text.push(l.expect("  ", "a line of the section's text, indented")?);
            }
            Data::Custom(Custom {
                text: text.join("\n"),
            })
        }
    };
    if !l.done() {
        l.pos += 1;
        return Err(l.err("the end of the section"));
    }
    Ok(Section {
        title: title.to_string(),
        content: Content::Ok(data),
    })
}

fn package(l: &mut Lines<'_>) -> Result<Package> {
    let name = l.expect("  name: ", "  name: …")?.to_string();
    let version = l.expect("  version: ", "  version: …")?.to_string();
    let service = l.expect("  service: ", "  service: …")?.to_string();
    let authors = l
        .take("  authors: ")
        .map(|a| a.split(", ").map(str::to_string).collect())
        .unwrap_or_default();
    let repository = l.take("  repository: ").map(str::to_string);
    let target = l.expect("  target: ", "  target: …")?.to_string();
    let profile = l.expect("  profile: ", "  profile: … (opt-level …)")?;
    let (profile, opt_level) = profile
        .strip_suffix(')')
        .and_then(|p| p.split_once(" (opt-level "))
        .ok_or_else(|| l.err("  profile: … (opt-level …)"))?;
    let rustc = l.take("  rustc: ").map(str::to_string);
    let commit = l.expect("  git commit: ", "  git commit: …")?;
    let (commit, dirty) = match commit.strip_suffix(" (dirty)") {
        Some(c) => (c, Some(true)),
        None => (commit, None),
    };
    Ok(Package {
        name,
        version,
        service,
        authors,
        repository,
        target,
        profile: profile.to_string(),
        opt_level: opt_level.to_string(),
        rustc,
        git_commit: (commit != "unknown").then(|| commit.to_string()),
        git_dirty: dirty,
    })
}

/// One frame line: its index, address, and what follows them.
fn processes(l: &mut Lines<'_>) -> Result<Processes> {
    let mut out = Vec::new();
    while !l.done() {
        let line = l.next("a process")?;
        let rest = line.trim_start_matches(' ');
        let indent = line.len() - rest.len();
        let expected = "Process <pid> (under <ppid>) [ run by: …, state: … ]";
        let parsed = (|| {
            if indent % 4 != 0 {
                return None;
            }
            let rest = rest.strip_prefix("Process ")?.strip_suffix(") ]")?;
            let (pid, rest) = rest.split_once(" (under ")?;
            let (ppid, rest) = rest.split_once(") [ run by: ")?;
            let (user, state) = rest.rsplit_once(", state: ")?;
            let (state, state_name) = state.split_once(" (")?;
            let (user, uid) = if user == "unknown" {
                (None, None)
            } else if let Some(uid) = user.strip_prefix("uid ") {
                (None, Some(num(uid)?))
            } else {
                let (name, uid) = user.strip_suffix(')')?.rsplit_once(" (")?;
                (Some(name.to_string()), Some(num(uid)?))
            };
            Some(ProcessEntry {
                pid: num(pid)?,
                ppid: num(ppid)?,
                uid,
                user,
                state: state.to_string(),
                state_name: state_name.to_string(),
                cmdline: Vec::new(),
                depth: indent / 4,
            })
        })();
        let mut p = parsed.ok_or_else(|| l.err(expected))?;
        let pad = " ".repeat(indent + 4);
        let cmdline = l.expect(&pad, "the process's command line, indented")?;
        p.cmdline = cmdline.split(' ').map(str::to_string).collect();
        out.push(p);
    }
    Ok(Processes { processes: out })
}

fn configuration(l: &mut Lines<'_>) -> Result<Configuration> {
    if l.peek() == Some("  (no configuration given: see guru::Builder::config)") {
        l.pos += 1;
        return Ok(Configuration { groups: None });
    }
    let mut groups: Vec<ConfigGroup> = Vec::new();
    while !l.done() {
        let line = l.next("[group] or an entry")?;
        if let Some(name) = line.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            groups.push(ConfigGroup {
                name: name.to_string(),
                entries: Vec::new(),
            });
            continue;
        }
        let entry = line
            .strip_prefix("  ")
            .and_then(|e| e.split_once(" = "))
            .map(|(key, value)| ConfigEntry {
                key: key.to_string(),
                value: value.to_string(),
            });
        match (groups.last_mut(), entry) {
            (Some(g), Some(e)) => g.entries.push(e),
            _ => return Err(l.err("[group] or `  key = value` in a group")),
        }
    }
    Ok(Configuration {
        groups: Some(groups),
    })
}

fn unknown_or<T>(s: &str, f: impl FnOnce(&str) -> Option<T>) -> Option<Option<T>> {
    if s == "unknown" {
        Some(None)
    } else {
        f(s).map(Some)
    }
}
