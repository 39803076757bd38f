//! The Green Threads section's text: each runtime's figures, worker table
//! and task traces.

use std::fmt::Write;

use guru_core::format::write_duration;

use super::super::{GreenThreads, TaskDump, TaskGroup};
use super::{escaped, write_frame};

/// The note after a trace whose last frame guru found in the root future.
pub(in crate::model) const ROOT_CALL_NOTE: &str =
    "the call in the task's root future, found in its code; tokio's trace ends below it";

/// At most this many tasks are traced per runtime (`guru::tokio::MAX_TRACED_TASKS`).
const MAX_TRACED_TASKS: usize = 1000;

pub(in crate::model) fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

pub(in crate::model) fn secs(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".into(), |ns| format!("{:.3} s", ns as f64 / 1e9))
}

pub(in crate::model) fn micros(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".into(), |ns| format!("{:.1} us", ns as f64 / 1e3))
}

pub(in crate::model) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(super) fn write_green_threads(w: &mut String, g: &GreenThreads) {
    for (i, r) in g.runtimes.iter().enumerate() {
        if i > 0 {
            w.push('\n');
        }
        let name = escaped(&r.name);
        let _ = writeln!(
            w,
            "Runtime \"{name}\" ({}): {} worker{}, {} alive task{}, global queue depth {}",
            r.flavor,
            r.workers,
            plural(r.workers),
            r.alive_tasks,
            plural(r.alive_tasks),
            r.global_queue_depth
        );
        if let Some(ns) = r.read_after_capture_ns {
            // Threads and these figures are two snapshots: say how far apart.
            w.push_str("  figures read ");
            let _ = write_duration(w, ns);
            w.push_str(" after the Threads section's capture\n");
        }
        let unstable = r.worker_figures.iter().any(|f| f.poll_count.is_some());
        let _ = write!(
            w,
            "  {:>6}  {:<6}  {:>12}  {:>8}  {:>11}",
            "worker", "state", "busy", "parks", "park/unpark"
        );
        if unstable {
            let _ = write!(
                w,
                "  {:>10}  {:>11}  {:>8}  {:>10}",
                "polls", "local queue", "steals", "mean poll"
            );
        }
        w.push('\n');
        for f in &r.worker_figures {
            let state = match f.parked {
                Some(true) => "parked",
                Some(false) => "active",
                None => "-",
            };
            let _ = write!(
                w,
                "  {:>6}  {:<6}  {:>12}  {:>8}  {:>11}",
                f.index,
                state,
                secs(f.busy_ns),
                opt(f.park_count),
                opt(f.park_unpark_count)
            );
            if unstable {
                let _ = write!(
                    w,
                    "  {:>10}  {:>11}  {:>8}  {:>10}",
                    opt(f.poll_count),
                    opt(f.local_queue_depth),
                    opt(f.steal_count),
                    micros(f.mean_poll_ns)
                );
            }
            w.push('\n');
        }
        if let Some(u) = &r.unstable {
            let _ = writeln!(
                w,
                "  blocking threads: {} ({} idle), blocking queue depth {}; spawned tasks {}, remote schedules {}, budget-forced yields {}",
                u.blocking_threads,
                u.idle_blocking_threads,
                u.blocking_queue_depth,
                opt(u.spawned_tasks),
                opt(u.remote_schedules),
                opt(u.budget_forced_yields)
            );
        }
        match &r.task_dump {
            TaskDump::NotTaken { reason }
            | TaskDump::Blocked { reason }
            | TaskDump::Failed { reason } => {
                let _ = writeln!(w, "  task traces: {}", escaped(reason));
            }
            TaskDump::TimedOut { timeout_ms, reason } => {
                let _ = writeln!(
                    w,
                    "  task traces: task dump timed out after {timeout_ms} ms: {}",
                    escaped(reason)
                );
            }
            TaskDump::Taken {
                tasks,
                left_out,
                dump_ns,
                resolve_ns,
                groups,
            } => {
                let _ = write!(
                    w,
                    "  task traces: {tasks} task{}, {} distinct trace{}; the dump took ",
                    plural(*tasks),
                    groups.len(),
                    plural(groups.len())
                );
                let _ = write_duration(w, *dump_ns);
                w.push_str(", tokio's backtrace resolution ");
                let _ = write_duration(w, *resolve_ns);
                w.push('\n');
                if *left_out > 0 {
                    let _ = writeln!(
                        w,
                        "  ({left_out} more tasks left out: at most {MAX_TRACED_TASKS} are traced)"
                    );
                }
                for g in groups {
                    w.push('\n');
                    write_group(w, &name, g);
                }
            }
        }
    }
}

fn write_group(w: &mut String, runtime: &str, g: &TaskGroup) {
    let ids: Vec<String> = g.task_ids.iter().map(|i| escaped(i)).collect();
    if ids.len() == 1 {
        let _ = write!(w, "------ Task {}", ids[0]);
    } else {
        let _ = write!(w, "------ Tasks {} ({} tasks)", ids.join(", "), ids.len());
    }
    let _ = writeln!(w, " of runtime \"{runtime}\" ------");
    if g.traces.is_empty() {
        w.push_str("  (no trace: the task did not reach a tokio leaf future when traced)\n");
    }
    for (n, trace) in g.traces.iter().enumerate() {
        if g.traces.len() > 1 {
            let _ = writeln!(w, "  -- waiting on leaf {} of {}:", n + 1, g.traces.len());
        }
        for f in trace {
            write_frame(w, f);
        }
        if g.root_call_found.get(n).copied().unwrap_or(false) {
            let _ = writeln!(
                w,
                "  (#{}: {ROOT_CALL_NOTE})",
                trace.last().map_or(0, |f| f.index)
            );
        }
    }
}
