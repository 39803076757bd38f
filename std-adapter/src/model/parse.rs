//! Reading a text report back into the model ([`super::Report::from_text`]):
//! line by line, every line recognized or rejected with its number and what
//! was expected. Numbers are read only in the form the renderer writes them
//! (no leading zeros, lowercase hex), so what parses renders back the same.
//! It is longer than most modules because it mirrors every line kind of the
//! renderer (`text.rs`) in one place, section by section in report order.

use std::fmt;
use std::str::FromStr;

use guru_core::format::{signal_name, write_duration, write_utc};

use super::text::{micros, mib, opt, seconds, secs};
use super::{
    ConfigEntry, ConfigGroup, Configuration, Content, Custom, Data, Elided, ElidedWhy, Figures,
    Frame, Function, GreenThreads, Hex, Kind, Limit, Module, Modules, Package, Process,
    ProcessEntry, Processes, RecentTrigger, Report, Round, Runtime, SCHEMA, Section,
    Symbolization, TaskDump, TaskGroup, Thread, Threads, Trigger, UnstableFigures, Usage,
    WorkerFigures,
};

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

/// A number as the renderer writes it (so it renders back the same).
fn num<T: FromStr + ToString>(s: &str) -> Option<T> {
    let v: T = s.parse().ok()?;
    (v.to_string() == s).then_some(v)
}

/// `0x`-prefixed lowercase hex without leading zeros.
pub(super) fn hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    let v = u64::from_str_radix(digits, 16).ok()?;
    (format!("{v:x}") == digits).then_some(v)
}

/// `0x` and 16 hex digits, as frame addresses and module ranges are written.
fn hex16(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    let v = u64::from_str_radix(digits, 16).ok()?;
    (format!("{v:016x}") == digits).then_some(v)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An ISO 8601 UTC time as `write_utc` writes it, in nanoseconds (to the ms).
pub(super) fn utc_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24 || b.get(23) != Some(&b'Z') {
        return None;
    }
    let field = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (field(0, 4)?, field(5, 7)?, field(8, 10)?);
    let (h, mi, sec, ms) = (field(11, 13)?, field(14, 16)?, field(17, 19)?, field(20, 23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days.checked_mul(86_400)? + h * 3600 + mi * 60 + sec;
    let ns = u64::try_from(secs).ok()?.checked_mul(1_000_000_000)?;
    let ns = ns.checked_add(u64::try_from(ms).ok()? * 1_000_000)?;
    let mut back = String::new();
    let _ = write_utc(&mut back, ns);
    (back == s).then_some(ns)
}

/// `a.b` with exactly `places` decimals, scaled: `("1.5", 1, 100)` is 150.
fn decimal(s: &str, places: usize, unit: u64) -> Option<u64> {
    let (int, frac) = s.split_once('.')?;
    if frac.len() != places || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int: u64 = num(int)?;
    let frac: u64 = frac.parse().ok()?;
    int.checked_mul(unit.checked_mul(10u64.checked_pow(places as u32)?)?)?
        .checked_add(frac.checked_mul(unit)?)
}

/// A duration as `write_duration` writes it, in ns at text precision.
fn duration(s: &str) -> Option<u64> {
    let ns = if let Some(v) = s.strip_suffix(" µs") {
        if v.contains('.') {
            // `{:.1} µs` is written below 10 µs: "10.0 µs" is 9 999 ns.
            decimal(v, 1, 100)?.min(9_999)
        } else {
            num::<u64>(v)?.checked_mul(1000)?
        }
    } else {
        decimal(s.strip_suffix(" ms")?, 1, 100_000)?
    };
    let mut back = String::new();
    let _ = write_duration(&mut back, ns);
    (back == s).then_some(ns)
}

/// `1.234 s` in ns.
fn seconds_ns(s: &str) -> Option<u64> {
    let ns = decimal(s.strip_suffix(" s")?, 3, 1_000_000)?;
    (seconds(ns) == s).then_some(ns)
}

/// `30.2 MiB` as the nearest byte count that is written the same.
fn mib_bytes(s: &str) -> Option<u64> {
    let tenths = decimal(s.strip_suffix(" MiB")?, 1, 1)?;
    let bytes = (tenths as f64 / 10.0 * 1024.0 * 1024.0).round() as u64;
    (mib(bytes) == s).then_some(bytes)
}

/// `-` or a value written by `text::opt`.
fn opt_num<T: FromStr + ToString>(s: &str) -> Option<Option<T>> {
    if s == "-" {
        Some(None)
    } else {
        num(s).map(Some)
    }
}

fn signal_number(name: &str) -> Option<i32> {
    if let Some(n) = name.strip_prefix("signal ") {
        return num(n);
    }
    (1..=64).find(|&s| signal_name(s) == Some(name))
}

/// What `write_trigger_source` wrote: (signal, si_code, sender pid, uid).
fn trigger_source(s: &str) -> Option<(i32, i32, i32, u32)> {
    if s == "a request without a signal" {
        return Some((0, 0, 0, 0));
    }
    if let Some((name, rest)) = s.split_once(" from pid ") {
        let (pid, uid) = rest.strip_suffix(')')?.split_once(" (uid ")?;
        return Some((signal_number(name)?, libc::SI_USER, num(pid)?, num(uid)?));
    }
    if let Some(name) = s.strip_suffix(" from the kernel") {
        return Some((signal_number(name)?, libc::SI_KERNEL, 0, 0));
    }
    let (name, code) = s.strip_suffix(')')?.rsplit_once(" (si_code ")?;
    let code: i32 = num(code)?;
    // Those codes are written "from pid": this wording never has them.
    if [libc::SI_USER, libc::SI_QUEUE, libc::SI_TKILL, libc::SI_KERNEL].contains(&code) {
        return None;
    }
    Some((signal_number(name)?, code, 0, 0))
}

fn signal_trigger(s: &str, time: &str) -> Option<Trigger> {
    let (signal, si_code, sender_pid, sender_uid) = trigger_source(s)?;
    Some(Trigger::Signal {
        signal,
        signal_name: signal_name(signal).map(str::to_string),
        si_code,
        sender_pid,
        sender_uid,
        time: time.to_string(),
    })
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
    let (pid, rest) = begin.split_once(" report #").ok_or_else(|| l.err("report #"))?;
    let pid: i32 = num(pid).ok_or_else(|| l.err("a pid"))?;
    let (sequence, rest) = rest.split_once(" at ").ok_or_else(|| l.err("at <time>"))?;
    let sequence: u64 = num(sequence).ok_or_else(|| l.err("a report number"))?;
    let time = rest.get(..24).ok_or_else(|| l.err("a UTC time"))?;
    let time_unix_ns = utc_ns(time).ok_or_else(|| l.err("a UTC time"))?;
    let how = rest.get(24..).unwrap_or("");
    let trigger = if how == " on request" {
        Trigger::Call
    } else if let Some(path) = how.strip_prefix(" triggered by file ") {
        Trigger::File {
            path: path.to_string(),
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
        sections.push(section(title, body)?);
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
        from_text: true,
    };
    fill_in(&mut report);
    Ok(report)
}

/// What one section carries for another: the slot table size, the round's
/// sequence.
fn fill_in(r: &mut Report) {
    let mut capacity = None;
    for s in &mut r.sections {
        if let Content::Ok(Data::Report(f)) = &mut s.content {
            if let Some(Trigger::Signal { time, .. }) = &mut f.requested_by {
                time.clone_from(&r.time);
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

fn section(title: &str, mut l: Lines<'_>) -> Result<Section> {
    let kind = kind_of(title);
    if l.lines.len() == 1
        && let Some(error) = l.peek().and_then(|s| s.strip_prefix("  !! section failed: "))
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
        Kind::Package => Data::Package(package(&mut l)?),
        Kind::Threads => Data::Threads(threads(&mut l)?),
        Kind::GreenThreads => Data::GreenThreads(green_threads(&mut l)?),
        Kind::Processes => Data::Processes(processes(&mut l)?),
        Kind::Configuration => Data::Configuration(configuration(&mut l)?),
        Kind::Process => Data::Process(process(&mut l)?),
        Kind::Modules => Data::Modules(modules(&mut l)?),
        Kind::Report => Data::Report(figures(&mut l)?),
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
fn frame_line(s: &str) -> Option<(usize, u64, &str)> {
    let rest = s.strip_prefix("  #")?;
    let (n, rest) = rest.split_once(' ')?;
    let (addr, rest) = rest.split_once(' ')?;
    Some((num(n)?, hex16(addr)?, rest))
}

/// `name+0xoffset`.
fn plus_hex(s: &str) -> Option<(&str, u64)> {
    let (name, off) = s.rsplit_once("+0x")?;
    let digits = off;
    let v = u64::from_str_radix(digits, 16).ok()?;
    (format!("{v:x}") == digits && !name.is_empty()).then_some((name, v))
}

fn function(body: &str, inlined: bool) -> Function {
    let (name, file, line) = match body.split_once(" at ") {
        Some((name, at)) => match at.rsplit_once(':').and_then(|(f, n)| Some((f, num(n)?))) {
            Some((file, line)) => (name, Some(file), Some(line)),
            None => (name, Some(at), None),
        },
        None => (body, None, None),
    };
    Function {
        name: (name != "??").then(|| name.to_string()),
        file: file.map(str::to_string),
        line,
        inlined,
    }
}

/// Reads consecutive frame lines (a frame per index; a DWARF function per
/// line).
fn frames(l: &mut Lines<'_>, out: &mut Vec<Frame>) -> Result<()> {
    while let Some((n, address, rest)) = l.peek().and_then(frame_line) {
        l.pos += 1;
        let mut frame = Frame {
            index: n,
            address: Hex(address),
            module: None,
            module_offset: None,
            symbol: None,
            symbol_offset: None,
            functions: Vec::new(),
        };
        let module_part = rest
            .strip_suffix(')')
            .and_then(|r| r.rsplit_once(" ("))
            .and_then(|(head, m)| Some((head, plus_hex(m)?)));
        let func = if rest == "?? (no module)" {
            None
        } else if let Some(body) = rest.strip_suffix(" (inlined)") {
            Some(function(body, true))
        } else if let Some((head, (module, off))) = module_part {
            frame.module = Some(module.to_string());
            frame.module_offset = Some(Hex(off));
            match plus_hex(head).filter(|_| !head.contains(" at ")) {
                Some((sym, off)) => {
                    frame.symbol = Some(sym.to_string());
                    frame.symbol_offset = Some(Hex(off));
                    None
                }
                None => Some(function(head, false)),
            }
        } else if let Some((module, off)) = plus_hex(rest).filter(|_| !rest.contains(' ')) {
            frame.module = Some(module.to_string());
            frame.module_offset = Some(Hex(off));
            None
        } else {
            Some(function(rest, false))
        };
        // Lines of one frame share its number and address; only the last
        // (not inlined) one ends it.
        let continues = out.last().is_some_and(|p: &Frame| {
            p.index == n
                && p.address.0 == address
                && p.functions.last().is_some_and(|f| f.inlined)
        });
        match (func, continues) {
            (Some(f), true) => {
                let Some(p) = out.last_mut() else {
                    return Err(l.err("a frame"));
                };
                p.module = frame.module;
                p.module_offset = frame.module_offset;
                p.functions.push(f);
            }
            (Some(f), false) => {
                frame.functions.push(f);
                out.push(frame);
            }
            (None, true) => return Err(l.err("the next function of the frame")),
            (None, false) => out.push(frame),
        }
    }
    Ok(())
}

/// `  ... #a..#b: <what>`.
fn elided(s: &str) -> Option<Elided> {
    let rest = s.strip_prefix("  ... #")?;
    let (first, rest) = rest.split_once("..#")?;
    let (last, what) = rest.split_once(": ")?;
    let (first, last): (usize, usize) = (num(first)?, num(last)?);
    let why = if what == "runtime start-up frames (std::rt, std::thread, libc)" {
        ElidedWhy::RuntimeStartUp
    } else {
        let count: usize = num(what.strip_suffix(" more frames of the same function")?)?;
        (Some(count) == last.checked_add(1)?.checked_sub(first)).then_some(ElidedWhy::Recursion)?
    };
    Some(Elided { first, last, why })
}

/// `------ Thread <tid> "<name>" (<state>[; writing this report]; paused <t>) ------`
fn captured_header(s: &str) -> Option<Thread> {
    let rest = s.strip_prefix("------ Thread ")?.strip_suffix(") ------")?;
    let (tid, rest) = rest.split_once(" \"")?;
    let (name, rest) = rest.split_once("\" (")?;
    let (state, pause) = rest.rsplit_once("; paused ")?;
    let (state, writing) = match state.strip_suffix("; writing this report") {
        Some(s) => (s, true),
        None => (state, false),
    };
    Some(Thread {
        tid: num(tid)?,
        name: name.to_string(),
        captured: true,
        state: state.to_string(),
        pause_ns: duration(pause)?,
        writing_report: writing,
        frames: Vec::new(),
        stack_end: None,
        frames_scanned_from: None,
        unresponsive: None,
        elided: Vec::new(),
    })
}

fn scan_note(s: &str) -> Option<u16> {
    let rest = s.strip_prefix("  -- #")?;
    let (n, rest) = rest.split_once(" and later frames were found by scanning the stack (#")?;
    let n: u16 = num(n)?;
    let m: u16 = num(rest.strip_suffix(" has no unwind information)")?)?;
    (n > 0 && m == n - 1).then_some(n)
}

fn threads(l: &mut Lines<'_>) -> Result<Threads> {
    let mut out = Threads {
        threads: Vec::new(),
        left_out: 0,
        capacity: 0,
    };
    while !l.done() {
        let header = l.next("a thread")?;
        if let Some(rest) = header.strip_prefix("------ ")
            && let Some((n, rest)) = rest.split_once(" more threads left out: the slot table holds ")
        {
            let cap = rest
                .strip_suffix(" (raise Options::max_threads) ------")
                .and_then(num);
            let (Some(n), Some(cap)) = (num::<usize>(n), cap) else {
                return Err(l.err("------ N more threads left out: …"));
            };
            out.left_out = n;
            out.capacity = cap;
            if l.next("an empty line")? != "" {
                return Err(l.err("an empty line"));
            }
            continue;
        }
        let Some(mut th) = captured_header(header) else {
            // A thread that did not answer: its two-line block from the core.
            let tid = header
                .strip_prefix("------ Thread ")
                .and_then(|r| r.split_once(" \""))
                .and_then(|(t, _)| num::<i32>(t))
                .filter(|_| header.ends_with(") ------"))
                .ok_or_else(|| l.err("------ Thread <tid> \"<name>\" (…) ------"))?;
            if l.next("  -- not captured")? != "  -- not captured" {
                return Err(l.err("  -- not captured"));
            }
            if l.next("an empty line")? != "" {
                return Err(l.err("an empty line"));
            }
            out.threads.push(Thread {
                tid,
                name: header.split('"').nth(1).unwrap_or("").to_string(),
                captured: false,
                state: "not captured".into(),
                pause_ns: 0,
                writing_report: false,
                frames: Vec::new(),
                stack_end: None,
                frames_scanned_from: None,
                unresponsive: Some(format!("{header}\n  -- not captured")),
                elided: Vec::new(),
            });
            continue;
        };
        loop {
            frames(l, &mut th.frames)?;
            match l.peek().and_then(elided) {
                Some(e) => {
                    th.elided.push(e);
                    l.pos += 1;
                }
                None => break,
            }
        }
        if let Some(n) = l.peek().and_then(scan_note) {
            th.frames_scanned_from = Some(n);
            l.pos += 1;
        }
        if let Some(end) = l.take("  -- ") {
            th.stack_end = Some(end.to_string());
        }
        if l.next("an empty line after the thread")? != "" {
            return Err(l.err("a frame, a note, or an empty line after the thread"));
        }
        out.threads.push(th);
    }
    Ok(out)
}

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
    if s == "unknown" { Some(None) } else { f(s).map(Some) }
}

fn limit(line: &str) -> Option<Limit> {
    let rest = line.strip_prefix("    ")?;
    let (left, right) = rest.split_once(" / ")?;
    let (name, soft) = left.trim_end().rsplit_once(' ')?;
    let hard = right.split(' ').next()?;
    let units = right.get(hard.len().max(20) + 1..).unwrap_or("");
    let l = Limit {
        name: name.trim_end().to_string(),
        soft: soft.to_string(),
        hard: hard.to_string(),
        units: units.to_string(),
    };
    let back = format!(
        "    {:<26} {:>20} / {:<20} {}",
        l.name, l.soft, l.hard, l.units
    );
    (back == line).then_some(l)
}

fn process(l: &mut Lines<'_>) -> Result<Process> {
    let ids = l.expect("  pid ", "  pid <pid>, parent <ppid>")?;
    let (pid, ppid) = ids
        .split_once(", parent ")
        .and_then(|(a, b)| Some((num(a)?, num(b)?)))
        .ok_or_else(|| l.err("  pid <pid>, parent <ppid>"))?;
    let executable = l.take("  executable: ").map(str::to_string);
    let working_directory = l.take("  working directory: ").map(str::to_string);
    let up = "  uptime: … (guru installed … ago)";
    let uptime = l.expect("  uptime: ", up)?;
    let (uptime_ns, guru_uptime_ns) = uptime
        .strip_suffix(" ago)")
        .and_then(|u| u.split_once(" (guru installed "))
        .and_then(|(a, b)| Some((unknown_or(a, seconds_ns)?, seconds_ns(b)?)))
        .ok_or_else(|| l.err(up))?;
    let threads = match l.take("  threads: ") {
        Some(t) => Some(num(t).ok_or_else(|| l.err("a thread count"))?),
        None => None,
    };
    let cpu = "  cpu time: user … s, system … s";
    let (user, system) = l
        .expect("  cpu time: user ", cpu)?
        .split_once(", system ")
        .and_then(|(u, s)| Some((seconds_ns(u)? / 1000, seconds_ns(s)? / 1000)))
        .ok_or_else(|| l.err(cpu))?;
    let mem = "  memory: RSS … (peak …), virtual …";
    let (rss, peak, virt) = l
        .expect("  memory: RSS ", mem)?
        .split_once(" (peak ")
        .and_then(|(rss, rest)| {
            let (peak, virt) = rest.split_once("), virtual ")?;
            Some((unknown_or(rss, mib_bytes)?, mib_bytes(peak)?, unknown_or(virt, mib_bytes)?))
        })
        .ok_or_else(|| l.err(mem))?;
    let faults = "  page faults: … minor, … major; context switches: … voluntary, … involuntary; block I/O: … in, … out";
    let f: Vec<u64> = {
        let line = l.expect("  page faults: ", faults)?;
        let words = [
            " minor, ",
            " major; context switches: ",
            " voluntary, ",
            " involuntary; block I/O: ",
            " in, ",
            " out",
        ];
        let mut rest = line;
        let mut v = Vec::new();
        for w in words {
            let (n, r) = rest.split_once(w).ok_or_else(|| l.err(faults))?;
            v.push(num(n).ok_or_else(|| l.err(faults))?);
            rest = r;
        }
        if !rest.is_empty() {
            return Err(l.err(faults));
        }
        v
    };
    let fds = "  open file descriptors: … (limit …)";
    let (open_fds, fd_limit) = l
        .expect("  open file descriptors: ", fds)?
        .strip_suffix(')')
        .and_then(|r| r.split_once(" (limit "))
        .and_then(|(n, lim)| Some((unknown_or(n, num)?, unknown_or(lim, |s| Some(s.to_string()))?)))
        .ok_or_else(|| l.err(fds))?;
    let mut limits = Vec::new();
    if l.take("  limits (soft / hard):").is_some() {
        while let Some(line) = l.peek() {
            limits.push(limit(line).ok_or_else(|| {
                l.pos += 1;
                l.err("    <name> <soft> / <hard> <units>")
            })?);
            l.pos += 1;
        }
        if limits.is_empty() {
            return Err(l.err("a limit"));
        }
    }
    let usage = Usage {
        user_cpu_us: user,
        system_cpu_us: system,
        max_rss_bytes: 0,
        minor_faults: f.first().copied().unwrap_or(0),
        major_faults: f.get(1).copied().unwrap_or(0),
        voluntary_switches: f.get(2).copied().unwrap_or(0),
        involuntary_switches: f.get(3).copied().unwrap_or(0),
        block_inputs: f.get(4).copied().unwrap_or(0),
        block_outputs: f.get(5).copied().unwrap_or(0),
    };
    Ok(Process {
        pid,
        ppid,
        executable,
        working_directory,
        uptime_ns,
        guru_uptime_ns,
        threads,
        usage,
        rss_bytes: rss,
        peak_rss_bytes: Some(peak),
        virtual_bytes: virt,
        open_fds,
        fd_limit,
        limits,
    })
}

fn modules(l: &mut Lines<'_>) -> Result<Modules> {
    let mut out = Vec::new();
    while !l.done() {
        let line = l.next("a module")?;
        let m = (|| {
            let rest = line.strip_prefix("  ")?;
            let (range, rest) = rest.split_once(' ')?;
            let (start, end) = range.split_once('-')?;
            let (rest, symbols) = rest.rsplit_once(" symbols ")?;
            let (path, id) = rest.rsplit_once(" build-id ")?;
            let build_id = match id {
                "none" => None,
                id if !id.is_empty() && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) => {
                    Some(id.to_string())
                }
                _ => return None,
            };
            Some(Module {
                path: path.to_string(),
                start: Hex(hex16(start)?),
                end: Hex(hex16(end)?),
                bias: None,
                build_id,
                symbols: num(symbols)?,
            })
        })();
        out.push(m.ok_or_else(|| l.err("  0x<start>-0x<end> <path> build-id <hex|none> symbols <n>"))?);
    }
    Ok(Modules { modules: out })
}

fn figures(l: &mut Lines<'_>) -> Result<Figures> {
    let requested_by = match l.take("  requested by: ") {
        None => None,
        Some("a call to guru::report") => Some(Trigger::Call),
        Some(s) => Some(match s.strip_prefix("file trigger ") {
            Some(path) => Trigger::File {
                path: path.to_string(),
            },
            None => signal_trigger(s, "").ok_or_else(|| l.err("who requested the report"))?,
        }),
    };
    let mut capacity = 0;
    let round = if l.take("  no capture round ran").is_some() {
        None
    } else {
        let t = "  threads: … listed, … captured, … unresponsive, … not signalled, … left out (capacity …)";
        let line = l.expect("  threads: ", t)?;
        let words = [
            " listed, ",
            " captured, ",
            " unresponsive, ",
            " not signalled, ",
            " left out (capacity ",
            ")",
        ];
        let mut rest = line;
        let mut v: Vec<usize> = Vec::new();
        for w in words {
            let (n, r) = rest.split_once(w).ok_or_else(|| l.err(t))?;
            v.push(num(n).ok_or_else(|| l.err(t))?);
            rest = r;
        }
        if !rest.is_empty() || v.len() != 6 {
            return Err(l.err(t));
        }
        capacity = v[5];
        let r = "  round: capture … (fan-out …); longest thread pause … (thread …)";
        let line = l.expect("  round: capture ", r)?;
        let (capture, fanout, pause, tid) = (|| {
            let (capture, rest) = line.split_once(" (fan-out ")?;
            let (fanout, rest) = rest.split_once("); longest thread pause ")?;
            let (pause, tid) = rest.strip_suffix(')')?.split_once(" (thread ")?;
            Some((duration(capture)?, duration(fanout)?, duration(pause)?, num(tid)?))
        })()
        .ok_or_else(|| l.err(r))?;
        let c = l.expect("  coalesced triggers: ", "  coalesced triggers: …")?;
        let coalesced = num(c).ok_or_else(|| l.err("a trigger count"))?;
        let mappings_dropped = match l.take("  readable mappings not tracked (table full): ") {
            Some(n) => num(n).ok_or_else(|| l.err("a mapping count"))?,
            None => 0,
        };
        Some(Round {
            sequence: 0,
            threads_listed: v[0],
            threads_captured: v[1],
            threads_unresponsive: v[2],
            threads_not_signalled: v[3],
            threads_left_out: v[4],
            capture_ns: capture,
            fanout_ns: fanout,
            max_pause_ns: pause,
            max_pause_tid: tid,
            coalesced_triggers: coalesced,
            mappings_dropped,
        })
    };
    let mut recent_triggers = Vec::new();
    while let Some(rest) = l.take("  trigger at ") {
        let t = (|| {
            let time = rest.get(..24)?;
            utc_ns(time)?;
            let source = rest.get(24..)?.strip_prefix(": ")?;
            let (source, started) = match source.strip_suffix(" (coalesced)") {
                Some(s) => (s, false),
                None => (source, true),
            };
            let (signal, si_code, sender_pid, sender_uid) = trigger_source(source)?;
            Some(RecentTrigger {
                time: time.to_string(),
                signal,
                si_code,
                sender_pid,
                sender_uid,
                started_report: started,
            })
        })();
        recent_triggers.push(t.ok_or_else(|| l.err("  trigger at <time>: <source>"))?);
    }
    let unresponsive_threads = match l.take("  unresponsive threads: ") {
        Some(list) => list
            .split(", ")
            .map(num)
            .collect::<Option<Vec<i32>>>()
            .ok_or_else(|| l.err("a list of thread ids"))?,
        None => Vec::new(),
    };
    let symbolization = match l.take("  symbolization: ") {
        None => None,
        Some(line) => Some(symbolization(line).ok_or_else(|| l.err("  symbolization: …"))?),
    };
    let mut symbolization = symbolization;
    while let Some(why) = l.take("  no debug info: ") {
        match &mut symbolization {
            Some(s) => s.no_debug_info.push(why.to_string()),
            None => return Err(l.err("no `no debug info` line without a symbolization line")),
        }
    }
    let (sections_ns, total_ns) = match l.take("  sections: ") {
        None => (None, None),
        Some(line) => {
            let (a, b) = line
                .split_once("; whole report until this section: ")
                .and_then(|(a, b)| Some((duration(a)?, duration(b)?)))
                .ok_or_else(|| l.err("  sections: …; whole report until this section: …"))?;
            (Some(a), Some(b))
        }
    };
    Ok(Figures {
        requested_by,
        round,
        capacity,
        recent_triggers,
        unresponsive_threads,
        symbolization,
        sections_ns,
        total_ns,
    })
}

fn symbolization(line: &str) -> Option<Symbolization> {
    let (frames, rest) = line.split_once(" frames (")?;
    let (cached, rest) = rest.split_once(" from the cache), ")?;
    let (examined, rest) = rest.split_once(" modules examined now, ")?;
    let (with, rest) = rest.split_once(" with debug info in all; ")?;
    let (ns, rest) = rest.split_once(" (cpu ")?;
    let (cpu, rss) = rest.split_once("), resident memory +")?;
    Some(Symbolization {
        frames: num(frames)?,
        cached: num(cached)?,
        modules_examined_now: num(examined)?,
        modules_with_debug_info: num(with)?,
        ns: duration(ns)?,
        cpu_ns: duration(cpu)?,
        rss_growth_bytes: mib_bytes(rss)?,
        no_debug_info: Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// Green Threads

fn runtime_header(line: &str) -> Option<Runtime> {
    let rest = line.strip_prefix("Runtime \"")?;
    let (name, rest) = rest.rsplit_once("\" (")?;
    let (flavor, rest) = rest.split_once("): ")?;
    let (workers, rest) = rest.split_once(" worker")?;
    let workers: usize = num(workers)?;
    let rest = rest.strip_prefix(if workers == 1 { ", " } else { "s, " })?;
    let (alive, rest) = rest.split_once(" alive task")?;
    let alive: usize = num(alive)?;
    let depth = rest
        .strip_prefix(if alive == 1 { ", " } else { "s, " })?
        .strip_prefix("global queue depth ")?;
    Some(Runtime {
        name: name.to_string(),
        flavor: flavor.to_string(),
        workers,
        alive_tasks: alive,
        global_queue_depth: num(depth)?,
        worker_figures: Vec::new(),
        unstable: None,
        task_dump: TaskDump::Failed {
            reason: String::new(),
        },
    })
}

fn worker_row(line: &str, unstable: bool) -> Option<WorkerFigures> {
    let mut t = line.split_whitespace().peekable();
    let index: usize = num(t.next()?)?;
    let parked = match t.next()? {
        "parked" => Some(true),
        "active" => Some(false),
        "-" => None,
        _ => return None,
    };
    let mut value_with_unit = |unit: &str| -> Option<Option<String>> {
        let v = t.next()?;
        if v == "-" {
            return Some(None);
        }
        (t.next()? == unit).then(|| Some(format!("{v} {unit}")))
    };
    let busy = value_with_unit("s")?;
    let busy_ns = match busy {
        Some(s) => Some(seconds_ns(&s)?),
        None => None,
    };
    let park_count = opt_num(t.next()?)?;
    let park_unpark_count = opt_num(t.next()?)?;
    let mut f = WorkerFigures {
        index,
        parked,
        busy_ns,
        park_count,
        park_unpark_count,
        ..WorkerFigures::default()
    };
    if unstable {
        f.poll_count = opt_num(t.next()?)?;
        f.local_queue_depth = opt_num(t.next()?)?;
        f.steal_count = opt_num(t.next()?)?;
        f.mean_poll_ns = match t.next()? {
            "-" => None,
            v => {
                let text = format!("{v} us");
                (t.next()? == "us").then_some(())?;
                let ns = decimal(v, 1, 100)?;
                (micros(Some(ns)) == text).then_some(ns)
            }
        };
    }
    if t.next().is_some() {
        return None;
    }
    let mut back = format!(
        "  {:>6}  {:<6}  {:>12}  {:>8}  {:>11}",
        f.index,
        line.split_whitespace().nth(1)?,
        secs(f.busy_ns),
        opt(f.park_count),
        opt(f.park_unpark_count)
    );
    if unstable {
        back.push_str(&format!(
            "  {:>10}  {:>11}  {:>8}  {:>10}",
            opt(f.poll_count),
            opt(f.local_queue_depth),
            opt(f.steal_count),
            micros(f.mean_poll_ns)
        ));
    }
    (back == line).then_some(f)
}

fn unstable_line(line: &str) -> Option<UnstableFigures> {
    let (b, rest) = line.split_once(" (")?;
    let (idle, rest) = rest.split_once(" idle), blocking queue depth ")?;
    let (q, rest) = rest.split_once("; spawned tasks ")?;
    let (spawned, rest) = rest.split_once(", remote schedules ")?;
    let (remote, yields) = rest.split_once(", budget-forced yields ")?;
    Some(UnstableFigures {
        blocking_threads: num(b)?,
        idle_blocking_threads: num(idle)?,
        blocking_queue_depth: num(q)?,
        spawned_tasks: opt_num(spawned)?,
        remote_schedules: opt_num(remote)?,
        budget_forced_yields: opt_num(yields)?,
    })
}

/// `{tasks} tasks, {n} distinct traces; the dump took D, tokio's backtrace resolution D`
fn taken_line(s: &str) -> Option<(usize, usize, u64, u64)> {
    let (tasks, rest) = s.split_once(" tasks, ")?;
    let (groups, rest) = rest.split_once(" distinct traces; the dump took ")?;
    let (dump, resolve) = rest.split_once(", tokio's backtrace resolution ")?;
    Some((num(tasks)?, num(groups)?, duration(dump)?, duration(resolve)?))
}

fn group_header(line: &str, runtime: &str) -> Option<Vec<String>> {
    let tail = format!(" of runtime \"{runtime}\" ------");
    let rest = line.strip_suffix(tail.as_str())?;
    if let Some(id) = rest.strip_prefix("------ Task ") {
        return Some(vec![id.to_string()]);
    }
    let rest = rest.strip_prefix("------ Tasks ")?;
    let (ids, count) = rest.strip_suffix(" tasks)")?.rsplit_once(" (")?;
    let ids: Vec<String> = ids.split(", ").map(str::to_string).collect();
    (num::<usize>(count)? == ids.len() && ids.len() > 1).then_some(ids)
}

fn task_group(l: &mut Lines<'_>, runtime: &str) -> Result<TaskGroup> {
    let header = l.next("------ Task … of runtime … ------")?;
    let task_ids =
        group_header(header, runtime).ok_or_else(|| l.err("------ Task(s) … of runtime \"…\" ------"))?;
    let mut traces = Vec::new();
    if l.take("  (no trace: the task did not reach a tokio leaf future when traced)")
        .is_some()
    {
        return Ok(TaskGroup { task_ids, traces });
    }
    let mut leaves: Option<usize> = None;
    loop {
        if let Some(rest) = l.peek().and_then(|s| s.strip_prefix("  -- waiting on leaf ")) {
            let leaf = rest
                .strip_suffix(':')
                .and_then(|r| r.split_once(" of "))
                .and_then(|(i, n)| Some((num::<usize>(i)?, num::<usize>(n)?)));
            l.pos += 1;
            match leaf {
                Some((i, n)) if i == traces.len() + 1 && n > 1 && leaves.is_none_or(|m| m == n) => {
                    leaves = Some(n);
                }
                _ => return Err(l.err("  -- waiting on leaf <i> of <n>:")),
            }
        } else if leaves.is_some() || !traces.is_empty() {
            break;
        }
        let mut trace = Vec::new();
        frames(l, &mut trace)?;
        if trace.iter().enumerate().any(|(i, f)| f.index != i) {
            return Err(l.err("a task trace's frames numbered from #0"));
        }
        traces.push(trace);
        if leaves.is_none() {
            break;
        }
    }
    if leaves.is_some_and(|n| n != traces.len()) {
        return Err(l.err("as many leaves as announced"));
    }
    Ok(TaskGroup { task_ids, traces })
}

fn task_dump(l: &mut Lines<'_>, runtime: &str) -> Result<TaskDump> {
    let line = l.expect("  task traces: ", "  task traces: …")?;
    if let Some(rest) = line.strip_prefix("task dump timed out after ") {
        let (ms, reason) = rest
            .split_once(" ms: ")
            .and_then(|(ms, r)| Some((num(ms)?, r)))
            .ok_or_else(|| l.err("task dump timed out after <n> ms: …"))?;
        return Ok(TaskDump::TimedOut {
            timeout_ms: ms,
            reason: reason.to_string(),
        });
    }
    let Some((tasks, n_groups, dump_ns, resolve_ns)) = taken_line(line) else {
        let reason = line.to_string();
        // The text does not say which: the wording does.
        return Ok(if line.starts_with("no task dump requested") {
            TaskDump::Blocked { reason }
        } else if line.starts_with("task traces not built in")
            || line.starts_with("task dumps are turned off")
            || line.starts_with("not taken for a current_thread runtime")
        {
            TaskDump::NotTaken { reason }
        } else {
            TaskDump::Failed { reason }
        });
    };
    let left_out = match l.take("  (") {
        Some(rest) => rest
            .split_once(" more tasks left out: at most ")
            .filter(|(_, r)| *r == "1000 are traced)")
            .and_then(|(n, _)| num(n))
            .ok_or_else(|| l.err("(<n> more tasks left out: at most 1000 are traced)"))?,
        None => 0,
    };
    let mut groups = Vec::new();
    while groups.len() < n_groups {
        if l.next("an empty line before a task group")? != "" {
            return Err(l.err("an empty line before a task group"));
        }
        groups.push(task_group(l, runtime)?);
    }
    Ok(TaskDump::Taken {
        tasks,
        left_out,
        dump_ns,
        resolve_ns,
        groups,
    })
}

fn green_threads(l: &mut Lines<'_>) -> Result<GreenThreads> {
    let mut runtimes = Vec::new();
    while !l.done() {
        if !runtimes.is_empty() && l.next("an empty line between runtimes")? != "" {
            return Err(l.err("an empty line between runtimes"));
        }
        let header = l.next("Runtime \"…\" (…): …")?;
        let mut r = runtime_header(header).ok_or_else(|| {
            l.err("Runtime \"<name>\" (<flavor>): <n> workers, <n> alive tasks, global queue depth <n>")
        })?;
        let columns = l.next("the workers' column headings")?;
        let plain = format!(
            "  {:>6}  {:<6}  {:>12}  {:>8}  {:>11}",
            "worker", "state", "busy", "parks", "park/unpark"
        );
        let unstable = format!(
            "{plain}  {:>10}  {:>11}  {:>8}  {:>10}",
            "polls", "local queue", "steals", "mean poll"
        );
        let with_unstable = if columns == plain {
            false
        } else if columns == unstable {
            true
        } else {
            return Err(l.err("the workers' column headings"));
        };
        while let Some(f) = l.peek().and_then(|s| worker_row(s, with_unstable)) {
            r.worker_figures.push(f);
            l.pos += 1;
        }
        if with_unstable != r.worker_figures.iter().any(|f| f.poll_count.is_some()) {
            return Err(l.err("worker rows matching the column headings"));
        }
        if let Some(rest) = l.take("  blocking threads: ") {
            r.unstable = Some(unstable_line(rest).ok_or_else(|| l.err("  blocking threads: …"))?);
        }
        r.task_dump = task_dump(l, &r.name)?;
        runtimes.push(r);
    }
    Ok(GreenThreads { runtimes })
}
