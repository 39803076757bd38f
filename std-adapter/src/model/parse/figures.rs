//! Reading figures back: the Process, Modules and Report sections.

use guru_core::crash::AFTER_REPORT_NOTE;

use super::super::text::{
    BLOCKED_AT_INSTALL_NOTE, BLOCKED_INHERITED_NOTE, PANICS_NOT_REPORTED, RATE_LIMIT_NOTE,
    STANDARD_SIGNAL_NOTE, UNKNOWN_LOCATION,
};
use super::super::{
    BlockingCapture, Figures, Hex, IgnoredTouches, Limit, Module, Modules, OutputDropped, Process,
    RecentTrigger, Round, Symbolization, Trigger, TriggerSettings, Usage,
};
use super::words::{
    crash_trigger, duration, hex16, mib_bytes, num, seconds_ns, signal_trigger, trigger_source,
    utc_ns,
};
use super::{Lines, Result, unknown_or};

pub(super) fn limit(line: &str) -> Option<Limit> {
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

pub(super) fn process(l: &mut Lines<'_>) -> Result<Process> {
    let ids = l.expect("  pid ", "  pid <pid>, parent <ppid>")?;
    let (pid, ppid) = ids
        .split_once(", parent ")
        .and_then(|(a, b)| Some((num(a)?, num(b)?)))
        .ok_or_else(|| l.err("  pid <pid>, parent <ppid>"))?;
    let executable = l.take("  executable: ").map(str::to_string);
    let working_directory = l.take("  working directory: ").map(str::to_string);
    let up = "  uptime: … (guru installed … ago) or (guru not installed)";
    let uptime = l.expect("  uptime: ", up)?;
    let (uptime_ns, guru_uptime_ns) = match uptime.strip_suffix(" (guru not installed)") {
        Some(a) => unknown_or(a, seconds_ns).map(|a| (a, 0)),
        None => uptime
            .strip_suffix(" ago)")
            .and_then(|u| u.split_once(" (guru installed "))
            .and_then(|(a, b)| Some((unknown_or(a, seconds_ns)?, seconds_ns(b)?)))
            // Installed less than 0.5 ms ago reads as installed (1 ns).
            .map(|(a, g)| (a, g.max(1))),
    }
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
            Some((
                unknown_or(rss, mib_bytes)?,
                mib_bytes(peak)?,
                unknown_or(virt, mib_bytes)?,
            ))
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
        .and_then(|(n, lim)| {
            Some((
                unknown_or(n, num)?,
                unknown_or(lim, |s| Some(s.to_string()))?,
            ))
        })
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

pub(super) fn modules(l: &mut Lines<'_>) -> Result<Modules> {
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
                id if !id.is_empty()
                    && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) =>
                {
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
        out.push(
            m.ok_or_else(|| l.err("  0x<start>-0x<end> <path> build-id <hex|none> symbols <n>"))?,
        );
    }
    Ok(Modules { modules: out })
}

/// A panic report's `a panic in thread <tid> "<name>" at <location>` and
/// the two lines after it.
fn panic_figures(l: &mut Lines<'_>, head: &str) -> Result<Trigger> {
    let expected = "a panic in thread <tid> \"<name>\" at <location>";
    let (thread, rest) = head.split_once(" \"").ok_or_else(|| l.err(expected))?;
    let (thread_name, location) = rest.split_once("\" at ").ok_or_else(|| l.err(expected))?;
    let thread = num(thread).ok_or_else(|| l.err(expected))?;
    let location = if location == UNKNOWN_LOCATION {
        String::new()
    } else {
        location.to_string()
    };
    let message = l.expect("  panic message: ", "  panic message: …")?;
    let n = "  panics not reported since the last panic report (rate limit: one per … s): …";
    let line = l.expect("  ", n)?;
    let (interval, count) = line
        .strip_prefix(PANICS_NOT_REPORTED)
        .and_then(|r| r.split_once("): "))
        .and_then(|(i, c)| Some((seconds_ns(i)?, num::<u64>(c)?)))
        .filter(|(i, _)| i % 1_000_000 == 0)
        .ok_or_else(|| l.err(n))?;
    Ok(Trigger::Panic {
        message: message.to_string(),
        location,
        thread,
        thread_name: thread_name.to_string(),
        unreported_panics_before: count,
        min_interval_ms: interval / 1_000_000,
    })
}

/// `AFTER_REPORT_NOTE`, after a crash's line.
fn after_crash(l: &mut Lines<'_>) -> Result<()> {
    let expected = "  after this report the process dies by the signal's own action …";
    match l.expect("  ", expected)? {
        AFTER_REPORT_NOTE => Ok(()),
        _ => Err(l.err(expected)),
    }
}

/// The Report section; `trigger` is the begin line's: a core crash report's
/// section says when the crash happened, which becomes its `time`.
pub(super) fn figures(l: &mut Lines<'_>, trigger: &mut Trigger) -> Result<Figures> {
    let requested_by = match l.take("  requested by: ") {
        None => None,
        Some("a call to guru::report") => Some(Trigger::Call),
        Some("the watchdog (automatic)") => {
            let line = l.expect("  watchdog: ", "  watchdog: <the stall>")?;
            Some(Trigger::Watchdog(super::watchdog::stall(line).ok_or_else(|| {
                l.err("  watchdog: heartbeat \"…\" missed its … deadline (…) or tokio runtime \"…\" worker … has not come back …")
            })?))
        }
        Some(s) if s.starts_with("a crash: ") => {
            let words = s.strip_prefix("a crash: ").unwrap_or("");
            let crash = crash_trigger(words, "")
                .ok_or_else(|| l.err("a crash: <signal> (<code>) … in thread …"))?;
            after_crash(l)?;
            Some(crash)
        }
        Some(s) if s.starts_with("a panic in thread ") => {
            let head = s.strip_prefix("a panic in thread ").unwrap_or("");
            Some(panic_figures(l, head)?)
        }
        Some(s) if s.starts_with("guru dump from pid ") => {
            Some(dump_trigger(s).ok_or_else(|| l.err("guru dump from pid <pid> (uid <uid>)"))?)
        }
        Some(s) => Some(match s.strip_prefix("file trigger ") {
            Some(path) => Trigger::File {
                path: path.to_string(),
            },
            None => signal_trigger(s, "").ok_or_else(|| l.err("who requested the report"))?,
        }),
    };
    if requested_by.is_none() && matches!(trigger, Trigger::Crash { .. }) {
        // The core's crash report: `crash: <words> at <time>`, the same
        // crash as its begin line says.
        let expected = "  crash: <the crash, as in the begin line> at <time>";
        let line = l.expect("  crash: ", expected)?;
        let split = line
            .len()
            .checked_sub(24)
            .filter(|&i| line.is_char_boundary(i));
        let crash = split
            .and_then(|i| {
                let time = &line[i..];
                utc_ns(time)?;
                crash_trigger(line[..i].strip_suffix(" at ")?, time)
            })
            .ok_or_else(|| l.err(expected))?;
        let same = |t: &Trigger| match t {
            Trigger::Crash { .. } => {
                let mut t = t.clone();
                if let Trigger::Crash { time, .. } = &mut t {
                    time.clear();
                }
                Some(t)
            }
            _ => None,
        };
        if same(&crash) != same(trigger) {
            return Err(l.err("the crash of the begin line"));
        }
        after_crash(l)?;
        *trigger = crash;
    }
    let watchdog = if requested_by.is_some() {
        super::watchdog::notes(l)?
    } else {
        None
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
            Some((
                duration(capture)?,
                duration(fanout)?,
                duration(pause)?,
                num(tid)?,
            ))
        })()
        .ok_or_else(|| l.err(r))?;
        let (thread_list_error, thread_list_writer_shown) =
            match l.take("  thread list incomplete: cannot list /proc/self/task: ") {
                None => (None, false),
                Some(why) => match why.strip_suffix("; shown: the thread writing this report") {
                    Some(why) => (Some(why.to_string()), true),
                    None => (Some(why.to_string()), false),
                },
            };
        let c = l.expect("  coalesced triggers: ", "  coalesced triggers: …")?;
        let coalesced = num(c).ok_or_else(|| l.err("a trigger count"))?;
        let output_dropped = match l.take("  output dropped: ") {
            None => None,
            Some(line) => Some(output_dropped(line).ok_or_else(|| {
                l.err("  output dropped: … bytes of … reports not written (last #…: …)")
            })?),
        };
        let maps_error = match l.take("  readable mappings unknown: cannot read /proc/self/maps: ")
        {
            None => None,
            Some(why) => Some(
                why.strip_suffix("; stacks were probed with process_vm_readv")
                    .ok_or_else(|| l.err("…; stacks were probed with process_vm_readv"))?
                    .to_string(),
            ),
        };
        let mappings_dropped = match l.take("  readable mappings not tracked (table full): ") {
            Some(n) => n
                .strip_suffix(" (code and thread stacks were kept first)")
                .and_then(num)
                .ok_or_else(|| l.err("a mapping count"))?,
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
            output_dropped,
            thread_list_error,
            thread_list_writer_shown,
            maps_error,
        })
    };
    let std = requested_by.is_some();
    let mut trigger_settings = None;
    let mut ignored_file_touches = None;
    let mut blocking_capture = None;
    let mut recent_triggers = Vec::new();
    if std {
        let mut standard = None;
        if let Some(note) = l.take("  note: ") {
            let (name, rest) = note
                .split_once(' ')
                .ok_or_else(|| l.err("  note: <signal> is a standard signal: …"))?;
            standard = (1..32)
                .find(|&s| guru_core::format::signal_name(s) == Some(name))
                .filter(|_| rest == STANDARD_SIGNAL_NOTE);
            if standard.is_none() {
                return Err(l.err("  note: <signal> is a standard signal: …"));
            }
        }
        if let Some(rate) = l.take("  rate limit: ") {
            let min_interval_ns = if rate == "none" {
                0
            } else {
                rate.strip_prefix("reports at least ")
                    .and_then(|r| r.strip_suffix(RATE_LIMIT_NOTE))
                    .and_then(|r| r.strip_suffix(" apart; "))
                    .and_then(seconds_ns)
                    .filter(|&ns| ns > 0)
                    .ok_or_else(|| l.err("  rate limit: none or reports at least … s apart; …"))?
            };
            trigger_settings = Some(TriggerSettings {
                signal: standard,
                min_interval_ns,
            });
        } else if standard.is_some() {
            return Err(l.err("  rate limit: …"));
        }
        if let Some(line) = l.take("  file trigger: ") {
            let t = (|| {
                let (n, rest) = line.split_once(" touches ignored since the last report")?;
                let owner_uid = match rest {
                    "" => None,
                    r => Some(num(r
                        .strip_prefix(" (the file is owned by uid ")?
                        .strip_suffix(", not by this process's user or root)")?)?),
                };
                Some(IgnoredTouches {
                    count: num(n).filter(|&n: &u64| n > 0)?,
                    owner_uid,
                })
            })();
            ignored_file_touches =
                Some(t.ok_or_else(|| {
                    l.err("  file trigger: … touches ignored since the last report")
                })?);
        }
        if l.take("  recent triggers, by time (oldest first):")
            .is_some()
        {
            while let Some(rest) = l.take("    ") {
                let t = recent_trigger(rest, " (started a report)")
                    .ok_or_else(|| l.err("    <time>: <source> (started a report|coalesced)"))?;
                recent_triggers.push(t);
            }
            if recent_triggers.is_empty() {
                return Err(l.err("a recent trigger"));
            }
        }
        if let Some(line) = l.take("  threads blocking the capture signal SIGRTMIN+") {
            let b = (|| {
                let (offset, rest) = line.split_once(" (signal ")?;
                let (signal, rest) = rest.split_once("): ")?;
                let (tids, note) = rest.split_once("; ")?;
                let blocked_at_install = match note {
                    BLOCKED_AT_INSTALL_NOTE => true,
                    BLOCKED_INHERITED_NOTE => false,
                    _ => return None,
                };
                Some(BlockingCapture {
                    signal: num(signal)?,
                    rtmin_offset: num(offset)?,
                    blocked_at_install,
                    tids: tids.split(", ").map(num).collect::<Option<Vec<i32>>>()?,
                })
            })();
            blocking_capture =
                Some(b.ok_or_else(|| l.err("  threads blocking the capture signal …"))?);
        }
    }
    while let Some(rest) = l.take("  trigger at ").filter(|_| !std) {
        let t = recent_trigger(rest, "");
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
        trigger_settings,
        ignored_file_touches,
        blocking_capture,
        watchdog,
    })
}

/// `<time>: <source>[<started>| (coalesced)]`.
fn recent_trigger(rest: &str, started: &str) -> Option<RecentTrigger> {
    let time = rest.get(..24)?;
    utc_ns(time)?;
    let source = rest.get(24..)?.strip_prefix(": ")?;
    let (source, started) = match source.strip_suffix(" (coalesced)") {
        Some(s) => (s, false),
        None => (source.strip_suffix(started)?, true),
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
}

/// `<n> bytes of <m> report[s] not written (last #<seq>: <why>)`.
fn output_dropped(line: &str) -> Option<OutputDropped> {
    let (bytes, rest) = line.split_once(" bytes of ")?;
    let (reports, rest) = rest.split_once(' ')?;
    let reports: u64 = num(reports)?;
    let word = if reports == 1 { "report" } else { "reports" };
    let rest = rest
        .strip_prefix(word)?
        .strip_prefix(" not written (last #")?;
    let (seq, why) = rest.strip_suffix(')')?.split_once(": ")?;
    Some(OutputDropped {
        bytes: num(bytes)?,
        reports,
        last_sequence: num(seq)?,
        reason: why.to_string(),
    })
}

pub(super) fn symbolization(line: &str) -> Option<Symbolization> {
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

/// `guru dump from pid 12 (uid 1000)`.
fn dump_trigger(s: &str) -> Option<Trigger> {
    match super::words::trigger_source(s)? {
        (0, guru_core::trigger::CODE_DUMP, client_pid, client_uid) => Some(Trigger::Dump {
            client_pid,
            client_uid,
        }),
        _ => None,
    }
}
