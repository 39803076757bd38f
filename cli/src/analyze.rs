//! `guru summarize` and `guru diff`: reading many threads at a glance.
//!
//! A thread's *stack* is the list of its frames' addresses; two threads
//! have the same stack when those lists are equal (the same code path, not
//! just the same function at the top). A frame is named by its outermost
//! (physical) function, else its ELF symbol, else `module+0xoffset`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use guru::model::{Content, Data, Frame, Report, Thread};

fn threads(r: &Report) -> Vec<&Thread> {
    r.sections
        .iter()
        .filter_map(|s| match &s.content {
            Content::Ok(Data::Threads(t)) => Some(t.threads.iter()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The frame's name: innermost function first (what it is doing), with the
/// physical function if that was inlined into.
fn frame_name(f: &Frame) -> String {
    let located = |func: &guru::model::Function| {
        let name = func.name.as_deref().unwrap_or("??").to_string();
        match (&func.file, func.line) {
            (Some(file), Some(line)) => format!("{name} at {file}:{line}"),
            (Some(file), None) => format!("{name} at {file}"),
            _ => name,
        }
    };
    if let Some(first) = f.functions.first() {
        return located(first);
    }
    match (&f.symbol, &f.module) {
        (Some(s), _) => s.to_string(),
        (None, Some(m)) => format!("{m}+0x{:x}", f.module_offset.map_or(0, |o| o.0)),
        _ => format!("0x{:x}", f.address.0),
    }
}

/// Function names of a frame (every inlined one too), without locations.
fn functions_of(f: &Frame) -> Vec<String> {
    if f.functions.is_empty() {
        return vec![frame_name(f)];
    }
    f.functions
        .iter()
        .map(|func| func.name.as_deref().unwrap_or("??").to_string())
        .collect()
}

/// The frames a thread's own code is in: those before the runtime's
/// `__rust_begin_short_backtrace` (thread start-up: `catch_unwind`,
/// `thread_start`, `clone`), as the text report folds them.
fn own_frames(t: &Thread) -> &[Frame] {
    const MARKER: &str = "__rust_begin_short_backtrace";
    let end = t
        .frames
        .iter()
        .position(|f| {
            f.functions
                .iter()
                .any(|func| func.name.as_deref().is_some_and(|n| n.contains(MARKER)))
                || f.symbol.as_deref().is_some_and(|n| n.contains(MARKER))
        })
        .filter(|&i| i > 0)
        .unwrap_or(t.frames.len());
    &t.frames[..end]
}

/// The stack's identity: the addresses of the thread's own frames (a text
/// report folds the start-up frames, JSON lists them: the two compare
/// alike).
fn stack_key(t: &Thread) -> Vec<u64> {
    own_frames(t).iter().map(|f| f.address.0).collect()
}

fn header(r: &Report) -> String {
    format!("pid {} report #{} at {}", r.pid, r.sequence, r.time)
}

const SHOWN_FRAMES: usize = 8;
const SHOWN_NAMES: usize = 6;

/// The `guru summarize` text.
pub(crate) fn summarize(r: &Report) -> String {
    let all = threads(r);
    let mut out = String::new();
    let captured = all.iter().filter(|t| t.captured).count();
    let _ = writeln!(
        out,
        "{}: {} threads ({} captured, {} did not answer)",
        header(r),
        all.len(),
        captured,
        all.len() - captured
    );
    // States.
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &all {
        *states.entry(t.state.as_str()).or_default() += 1;
    }
    let mut states: Vec<_> = states.into_iter().collect();
    states.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    out.push_str("\nStates:\n");
    for (s, n) in &states {
        let _ = writeln!(out, "  {n:>6}  {s}");
    }
    // Groups of identical stacks, largest first.
    let mut groups: Vec<(Vec<u64>, Vec<&Thread>)> = Vec::new();
    let mut index: HashMap<Vec<u64>, usize> = HashMap::new();
    for t in &all {
        let k = stack_key(t);
        match index.get(&k) {
            Some(&i) => groups[i].1.push(t),
            None => {
                index.insert(k.clone(), groups.len());
                groups.push((k, vec![t]));
            }
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    out.push_str("\nStacks:\n");
    for (_, members) in &groups {
        let first = members[0];
        let n = members.len();
        let what = if n == 1 {
            "1 thread".to_string()
        } else {
            format!("{n} threads, same stack")
        };
        let top = first.frames.first().map_or_else(
            || {
                first
                    .unresponsive
                    .clone()
                    .or_else(|| first.stack_end.clone())
                    .unwrap_or_else(|| "no frames".into())
            },
            frame_name,
        );
        let _ = writeln!(out, "  {what}, {}: {top}", first.state);
        let mut names: Vec<String> = members
            .iter()
            .take(SHOWN_NAMES)
            .map(|t| format!("{} \"{}\"", t.tid, t.name))
            .collect();
        if n > SHOWN_NAMES {
            names.push(format!("… {} more", n - SHOWN_NAMES));
        }
        let _ = writeln!(out, "      threads: {}", names.join(", "));
        for f in first.frames.iter().skip(1).take(SHOWN_FRAMES - 1) {
            let _ = writeln!(out, "      #{} {}", f.index, frame_name(f));
        }
        if first.frames.len() > SHOWN_FRAMES {
            let _ = writeln!(
                out,
                "      … {} more frames",
                first.frames.len() - SHOWN_FRAMES
            );
        }
    }
    // Functions most threads are in (each thread counted once a function).
    let mut funcs: HashMap<String, usize> = HashMap::new();
    for t in &all {
        let set: HashSet<String> = own_frames(t).iter().flat_map(functions_of).collect();
        for f in set {
            *funcs.entry(f).or_default() += 1;
        }
    }
    let mut funcs: Vec<_> = funcs.into_iter().collect();
    funcs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out.push_str("\nFunctions most threads are in (runtime start-up frames left out):\n");
    for (f, n) in funcs.iter().take(20) {
        let _ = writeln!(out, "  {n:>6}  {f}");
    }
    out
}

/// Process CPU seconds (user + system) from the Process section.
fn cpu_us(r: &Report) -> Option<u64> {
    r.sections.iter().find_map(|s| match &s.content {
        Content::Ok(Data::Process(p)) => Some(p.usage.user_cpu_us + p.usage.system_cpu_us),
        _ => None,
    })
}

/// `ns` as seconds with millisecond digits ("0.012 s"), the text report's
/// precision for a thread's CPU time.
fn seconds(ns: u64) -> String {
    format!("{}.{:03} s", ns / 1_000_000_000, ns / 1_000_000 % 1000)
}

/// The `guru diff` text.
pub(crate) fn diff(older: &Report, newer: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "older: {}\nnewer: {}", header(older), header(newer));
    if older.pid != newer.pid {
        let _ = writeln!(
            out,
            "warning: the reports are of different processes (pid {} and {}): threads are matched by tid anyway",
            older.pid, newer.pid
        );
    }
    if older.time_unix_ns > newer.time_unix_ns {
        out.push_str("warning: the \"older\" report is the later one\n");
    }
    let span_ms = newer.time_unix_ns.saturating_sub(older.time_unix_ns) / 1_000_000;
    match (cpu_us(older), cpu_us(newer)) {
        (Some(a), Some(b)) => {
            let _ = writeln!(
                out,
                "{} ms apart; process CPU +{:.3} s (user+system)",
                span_ms,
                b.saturating_sub(a) as f64 / 1e6
            );
        }
        _ => {
            let _ = writeln!(out, "{span_ms} ms apart");
        }
    }
    let a: BTreeMap<i32, &Thread> = threads(older).into_iter().map(|t| (t.tid, t)).collect();
    let b: BTreeMap<i32, &Thread> = threads(newer).into_iter().map(|t| (t.tid, t)).collect();
    let mut same = Vec::new();
    let mut changed = Vec::new();
    for (tid, tb) in &b {
        if let Some(ta) = a.get(tid) {
            if !tb.frames.is_empty() && stack_key(ta) == stack_key(tb) {
                same.push(*tb);
            } else {
                changed.push((*ta, *tb));
            }
        }
    }
    // Each thread's CPU used between the reports, where both carry its
    // thread-CPU clock (std reports, threads that answered).
    let cpu_delta = |t: &Thread| -> Option<u64> {
        let before = a.get(&t.tid)?.cpu_ns?;
        Some(t.cpu_ns?.saturating_sub(before))
    };
    let any_cpu = same
        .iter()
        .chain(changed.iter().map(|(_, t)| t))
        .any(|t| cpu_delta(t).is_some());
    if !any_cpu {
        out.push_str(
            "(per-thread CPU time is not in these reports: stuck threads are told by their stack only)\n",
        );
    }
    // Threads whose stack did not move and that burnt CPU first (spinning
    // in place), then busy ones, then blocked ones (stuck); guru's own
    // threads (the reporter's CPU is the report it wrote) last.
    same.sort_by_key(|t| {
        (
            t.name.starts_with("guru-"),
            std::cmp::Reverse(cpu_delta(t).unwrap_or(0)),
            t.state != "running",
            t.tid,
        )
    });
    let _ = writeln!(
        out,
        "\nSame stack in both ({}): stuck candidates",
        same.len()
    );
    for t in &same {
        let top = t.frames.first().map(frame_name).unwrap_or_default();
        let cpu = cpu_delta(t).map_or(String::new(), |d| format!(", cpu +{}", seconds(d)));
        let _ = writeln!(out, "  {} \"{}\" ({}{cpu}): {top}", t.tid, t.name, t.state);
    }
    let _ = writeln!(out, "\nStack changed ({}):", changed.len());
    for (ta, tb) in &changed {
        let was = ta.frames.first().map(frame_name).unwrap_or_default();
        let now = tb.frames.first().map(frame_name).unwrap_or_default();
        let cpu = cpu_delta(tb).map_or(String::new(), |d| format!(", cpu +{}", seconds(d)));
        let _ = writeln!(
            out,
            "  {} \"{}\": {} → {}{cpu}: {now} (was: {was})",
            tb.tid, tb.name, ta.state, tb.state
        );
    }
    let appeared: Vec<&&Thread> = b
        .iter()
        .filter(|(t, _)| !a.contains_key(t))
        .map(|(_, t)| t)
        .collect();
    let vanished: Vec<&&Thread> = a
        .iter()
        .filter(|(t, _)| !b.contains_key(t))
        .map(|(_, t)| t)
        .collect();
    let _ = writeln!(out, "\nAppeared ({}):", appeared.len());
    for t in appeared {
        let top = t.frames.first().map(frame_name).unwrap_or_default();
        let _ = writeln!(out, "  {} \"{}\" ({}): {top}", t.tid, t.name, t.state);
    }
    let _ = writeln!(out, "\nVanished ({}):", vanished.len());
    for t in vanished {
        let _ = writeln!(out, "  {} \"{}\" (was {})", t.tid, t.name, t.state);
    }
    out
}
