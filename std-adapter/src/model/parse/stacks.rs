//! Reading stacks back: the Threads section (thread headers, frame lines
//! with their DWARF functions, folded ranges, notes, unresponsive threads)
//! and the Green Threads section (runtimes, worker figures, task traces).

use std::sync::Arc;

use super::super::Trigger;
use super::super::text::PANICKING;
use super::super::text::green::{ROOT_CALL_NOTE, micros, opt, plural, secs};
use super::super::text::watchdog::stall_words;
use super::super::{
    Elided, ElidedWhy, Frame, Function, GreenThreads, Hex, Runtime, TaskDump, TaskGroup, Thread,
    ThreadMark, Threads, UnstableFigures, WorkerFigures,
};
use super::words::{crash_mark, decimal, duration, hex16, num, opt_num, seconds_ns};
use super::{Lines, Result};

pub(super) fn frame_line(s: &str) -> Option<(usize, u64, &str)> {
    let rest = s.strip_prefix("  #")?;
    let (n, rest) = rest.split_once(' ')?;
    let (addr, rest) = rest.split_once(' ')?;
    Some((num(n)?, hex16(addr)?, rest))
}

/// `name+0xoffset`.
pub(super) fn plus_hex(s: &str) -> Option<(&str, u64)> {
    let (name, off) = s.rsplit_once("+0x")?;
    let digits = off;
    let v = u64::from_str_radix(digits, 16).ok()?;
    (format!("{v:x}") == digits && !name.is_empty()).then_some((name, v))
}

pub(super) fn function(body: &str, inlined: bool) -> Function {
    let (name, file, line) = match body.split_once(" at ") {
        Some((name, at)) => match at.rsplit_once(':').and_then(|(f, n)| Some((f, num(n)?))) {
            Some((file, line)) => (name, Some(file), Some(line)),
            None => (name, Some(at), None),
        },
        None => (body, None, None),
    };
    Function {
        name: (name != "??").then(|| name.into()),
        file: file.map(Arc::from),
        line,
        inlined,
    }
}

/// Reads consecutive frame lines (a frame per index; a DWARF function per
/// line).
pub(super) fn frames(l: &mut Lines<'_>, out: &mut Vec<Frame>) -> Result<()> {
    while let Some((n, address, rest)) = l.peek().and_then(frame_line) {
        l.pos += 1;
        let mut frame = Frame {
            index: n,
            address: Hex(address),
            module: None,
            module_offset: None,
            symbol: None,
            symbol_offset: None,
            functions: Arc::from([]),
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
            frame.module = Some(module.into());
            frame.module_offset = Some(Hex(off));
            match plus_hex(head).filter(|_| !head.contains(" at ")) {
                Some((sym, off)) => {
                    frame.symbol = Some(sym.into());
                    frame.symbol_offset = Some(Hex(off));
                    None
                }
                None => Some(function(head, false)),
            }
        } else if let Some((module, off)) = plus_hex(rest).filter(|_| !rest.contains(' ')) {
            frame.module = Some(module.into());
            frame.module_offset = Some(Hex(off));
            None
        } else {
            Some(function(rest, false))
        };
        // Lines of one frame share its number and address; only the last
        // (not inlined) one ends it.
        let continues = out.last().is_some_and(|p: &Frame| {
            p.index == n && p.address.0 == address && p.functions.last().is_some_and(|f| f.inlined)
        });
        match (func, continues) {
            (Some(f), true) => {
                let Some(p) = out.last_mut() else {
                    return Err(l.err("a frame"));
                };
                p.module = frame.module;
                p.module_offset = frame.module_offset;
                let mut functions = p.functions.to_vec();
                functions.push(f);
                p.functions = functions.into();
            }
            (Some(f), false) => {
                frame.functions = Arc::from([f]);
                out.push(frame);
            }
            (None, true) => return Err(l.err("the next function of the frame")),
            (None, false) => out.push(frame),
        }
    }
    Ok(())
}

/// `  ... #a..#b: <what>`.
pub(super) fn elided(s: &str) -> Option<Elided> {
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

/// `------ Thread <tid> "<name>" (<state>[; writing this report]; paused <t>[; cpu <s>][; stalled]) ------`
/// A crashed thread: `------ Thread <tid> "<name>" (crashed: …[; cpu <s>][; stalled]) ------`.
pub(super) fn captured_header(s: &str) -> Option<Thread> {
    let rest = s.strip_prefix("------ Thread ")?.strip_suffix(") ------")?;
    let (rest, stalled) = match rest.strip_suffix("; stalled") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (rest, cpu_ns) = match rest
        .rsplit_once("; cpu ")
        .and_then(|(r, cpu)| Some((r, seconds_ns(cpu)?)))
    {
        Some((r, cpu)) => (r, Some(cpu)),
        None => (rest, None),
    };
    let (tid, rest) = rest.split_once(" \"")?;
    let (name, rest) = rest.split_once("\" (")?;
    let (state, pause_ns, writing_report, mark) = match crash_mark(rest) {
        Some(mark) => ("crashed".to_string(), 0, false, Some(mark)),
        None => {
            let (state, pause) = rest.rsplit_once("; paused ")?;
            let (state, writing) = match state.strip_suffix("; writing this report") {
                Some(s) => (s, true),
                None => (state, state.ends_with(", writing this report")),
            };
            let mark = (state == PANICKING).then_some(ThreadMark::Panicking);
            (state.to_string(), duration(pause)?, writing, mark)
        }
    };
    Some(Thread {
        tid: num(tid)?,
        name: name.to_string(),
        captured: true,
        state,
        pause_ns,
        writing_report,
        frames: Vec::new(),
        stack_end: None,
        frames_scanned_from: None,
        unresponsive: None,
        elided: Vec::new(),
        cpu_ns,
        stack_hash: None,
        same_stack: None,
        stalled,
        mark,
        context: None,
    })
}

pub(super) fn scan_note(s: &str) -> Option<u16> {
    let rest = s.strip_prefix("  -- #")?;
    let (n, rest) = rest.split_once(" and later frames were found by scanning the stack (#")?;
    let n: u16 = num(n)?;
    let m: u16 = num(rest.strip_suffix(" has no unwind information)")?)?;
    (n > 0 && m == n - 1).then_some(n)
}

pub(super) fn threads(l: &mut Lines<'_>, trigger: &Trigger) -> Result<Threads> {
    let mut out = Threads {
        threads: Vec::new(),
        left_out: 0,
        capacity: 0,
    };
    while !l.done() {
        let header = l.next("a thread")?;
        if let Some(rest) = header.strip_prefix("------ ")
            && let Some((n, rest)) =
                rest.split_once(" more threads left out: the slot table holds ")
        {
            let cap = rest
                .strip_suffix(" (raise Options::max_threads) ------")
                .and_then(num);
            let (Some(n), Some(cap)) = (num::<usize>(n), cap) else {
                return Err(l.err("------ N more threads left out: …"));
            };
            out.left_out = n;
            out.capacity = cap;
            if !l.next("an empty line")?.is_empty() {
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
            if !l.next("an empty line")?.is_empty() {
                return Err(l.err("an empty line"));
            }
            out.threads.push(Thread::not_captured(
                tid,
                header.split('"').nth(1).unwrap_or("").to_string(),
                format!("{header}\n  -- not captured"),
            ));
            continue;
        };
        // The lines under the header: why it is stalled (an automatic
        // report's stalled thread), and that its stack did not change.
        if let (true, Trigger::Watchdog(stall)) = (th.stalled, trigger) {
            let why = l.expect("  stalled: ", "  stalled: <the stall>")?;
            if why != stall_words(stall) {
                return Err(l.err("  stalled: <the stall the begin line names>"));
            }
        }
        if let Some(rest) = l.take("  same stack as report #") {
            th.same_stack = Some(
                super::watchdog::same_stack(&format!("same stack as report #{rest}"))
                    .ok_or_else(|| l.err("  same stack as report #<n> (<x.y> s ago), CPU …"))?,
            );
        }
        th.context = super::context::context(l)?;
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
        if !l.next("an empty line after the thread")?.is_empty() {
            return Err(l.err("a frame, a note, or an empty line after the thread"));
        }
        out.threads.push(th);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Green Threads

pub(super) fn runtime_header(line: &str) -> Option<Runtime> {
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
        read_after_capture_ns: None,
        task_dump: TaskDump::Failed {
            reason: String::new(),
        },
        stalled_workers: Vec::new(),
    })
}

pub(super) fn worker_row(line: &str, unstable: bool) -> Option<WorkerFigures> {
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

pub(super) fn unstable_line(line: &str) -> Option<UnstableFigures> {
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
pub(super) fn taken_line(s: &str) -> Option<(usize, usize, u64, u64)> {
    let (tasks, rest) = s.split_once(" task")?;
    let tasks: usize = num(tasks)?;
    let rest = rest.strip_prefix(plural(tasks))?.strip_prefix(", ")?;
    let (groups, rest) = rest.split_once(" distinct trace")?;
    let groups: usize = num(groups)?;
    let rest = rest
        .strip_prefix(plural(groups))?
        .strip_prefix("; the dump took ")?;
    let (dump, resolve) = rest.split_once(", tokio's backtrace resolution ")?;
    Some((tasks, groups, duration(dump)?, duration(resolve)?))
}

pub(super) fn group_header(line: &str, runtime: &str) -> Option<Vec<String>> {
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

pub(super) fn task_group(l: &mut Lines<'_>, runtime: &str) -> Result<TaskGroup> {
    let header = l.next("------ Task … of runtime … ------")?;
    let task_ids = group_header(header, runtime)
        .ok_or_else(|| l.err("------ Task(s) … of runtime \"…\" ------"))?;
    let mut traces = Vec::new();
    if l.take("  (no trace: the task did not reach a tokio leaf future when traced)")
        .is_some()
    {
        return Ok(TaskGroup {
            task_ids,
            traces,
            root_call_found: Vec::new(),
        });
    }
    let mut root_call_found = Vec::new();
    let mut leaves: Option<usize> = None;
    loop {
        if let Some(rest) = l
            .peek()
            .and_then(|s| s.strip_prefix("  -- waiting on leaf "))
        {
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
        let note = trace
            .last()
            .map(|f| format!("  (#{}: {ROOT_CALL_NOTE})", f.index));
        let found = note.is_some_and(|n| l.peek() == Some(n.as_str()));
        if found {
            l.pos += 1;
        }
        root_call_found.push(found);
        traces.push(trace);
        if leaves.is_none() {
            break;
        }
    }
    if leaves.is_some_and(|n| n != traces.len()) {
        return Err(l.err("as many leaves as announced"));
    }
    Ok(TaskGroup {
        task_ids,
        traces,
        root_call_found,
    })
}

pub(super) fn task_dump(l: &mut Lines<'_>, runtime: &str) -> Result<TaskDump> {
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
        } else if line.starts_with("not built in")
            || line.starts_with("task dumps are turned off")
            || line.starts_with("not taken for a ")
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
        if !l.next("an empty line before a task group")?.is_empty() {
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

pub(super) fn green_threads(l: &mut Lines<'_>) -> Result<GreenThreads> {
    let mut runtimes = Vec::new();
    while !l.done() {
        if !runtimes.is_empty() && !l.next("an empty line between runtimes")?.is_empty() {
            return Err(l.err("an empty line between runtimes"));
        }
        let header = l.next("Runtime \"…\" (…): …")?;
        let mut r = runtime_header(header).ok_or_else(|| {
            l.err("Runtime \"<name>\" (<flavor>): <n> workers, <n> alive tasks, global queue depth <n>")
        })?;
        if let Some(rest) = l.take("  figures read ") {
            r.read_after_capture_ns = Some(
                rest.strip_suffix(" after the Threads section's capture")
                    .and_then(duration)
                    .ok_or_else(|| l.err("  figures read … after the Threads section's capture"))?,
            );
        }
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
        while let Some(s) = l.peek().and_then(super::watchdog::stalled_worker) {
            r.stalled_workers.push(s);
            l.pos += 1;
        }
        if let Some(rest) = l.take("  blocking threads: ") {
            r.unstable = Some(unstable_line(rest).ok_or_else(|| l.err("  blocking threads: …"))?);
        }
        r.task_dump = task_dump(l, &r.name)?;
        runtimes.push(r);
    }
    Ok(GreenThreads { runtimes })
}
