//! Task traces as model data: tasks with identical traces grouped, each
//! distinct trace symbolized once into model frames; and the workers this
//! report's Threads section shows stuck in tokio's dump machinery.

use std::collections::HashMap;

use guru_core::ModuleSet;

use crate::frames::frame;
use crate::model::{Frame, TaskGroup, Threads};
use crate::state::ReporterState;
use crate::symbols::Stats;

/// One trace as taken: return addresses, innermost first, and whether the
/// last one was added from the root future's code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RawTrace {
    pub(super) frames: Vec<u64>,
    pub(super) root_call: bool,
}

/// Threads of this report whose stack is inside tokio's multi-thread dump
/// machinery (`Handle::trace_core`, `worker/taskdump.rs`): `(tid, name)`.
/// A worker waiting there longer than tokio's 250 ms barrier timeout has
/// been left there by an earlier dump (see `docs/tokio-taskdump-wedge.md`).
#[cfg_attr(not(all(feature = "taskdump", tokio_unstable)), allow(dead_code))]
pub(super) fn in_dump_machinery(threads: Option<&Threads>) -> Vec<(i32, String)> {
    let Some(threads) = threads else {
        return Vec::new();
    };
    threads
        .threads
        .iter()
        .filter(|t| {
            t.frames.iter().any(|f| {
                f.functions.iter().any(|func| {
                    func.name
                        .as_deref()
                        .is_some_and(|n| n.contains("multi_thread") && n.ends_with("trace_core"))
                        || func
                            .file
                            .as_deref()
                            .is_some_and(|p| p.ends_with("multi_thread/worker/taskdump.rs"))
                }) || f
                    .symbol
                    .as_deref()
                    .is_some_and(|n| n.contains("multi_thread") && n.contains("trace_core"))
            })
        })
        .map(|t| (t.tid, t.name.clone()))
        .collect()
}

/// The reason given when threads are in tokio's dump machinery.
#[cfg_attr(not(all(feature = "taskdump", tokio_unstable)), allow(dead_code))]
pub(super) fn stuck_in_dump_reason(stuck: &[(i32, String)]) -> String {
    let list: Vec<String> = stuck
        .iter()
        .map(|(tid, name)| format!("{tid} \"{name}\""))
        .collect();
    format!(
        "no task dump requested: thread{} {} {} inside tokio's own task-dump machinery (Handle::trace_core, waiting on its dump barrier; see the Threads section): an earlier task dump left {} there (tokio's barrier bug, tokio#8370), not the application; another dump could make it worse",
        if list.len() == 1 { "" } else { "s" },
        list.join(", "),
        if list.len() == 1 { "is" } else { "are" },
        if list.len() == 1 { "it" } else { "them" },
    )
}

/// Groups tasks with identical traces (in first-seen order) and symbolizes
/// each distinct trace once.
// Used by the real `dump` module (and the tests) only.
#[allow(dead_code)]
pub(super) fn group_and_symbolize(
    state: &mut ReporterState,
    raw: Vec<(String, Vec<RawTrace>)>,
    modules: Option<&ModuleSet>,
    stats: &mut Stats,
) -> Vec<TaskGroup> {
    let mut index: HashMap<Vec<RawTrace>, usize> = HashMap::new();
    let mut groups: Vec<(Vec<String>, Vec<RawTrace>)> = Vec::new();
    for (id, traces) in raw {
        match index.get(&traces) {
            Some(&i) => groups[i].0.push(id),
            None => {
                index.insert(traces.clone(), groups.len());
                groups.push((vec![id], traces));
            }
        }
    }
    groups
        .into_iter()
        .map(|(mut ids, traces)| TaskGroup {
            task_ids: {
                ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.clone()));
                ids
            },
            root_call_found: traces.iter().map(|t| t.root_call).collect(),
            traces: traces
                .iter()
                .map(|t| symbolize(state, &t.frames, modules, stats))
                .collect(),
        })
        .collect()
}

fn symbolize(
    state: &mut ReporterState,
    frames: &[u64],
    modules: Option<&ModuleSet>,
    stats: &mut Stats,
) -> Vec<Frame> {
    let none = || crate::symbols::Symbolized {
        functions: std::sync::Arc::from([]),
        symbol: None,
        module: None,
    };
    let Some(modules) = modules else {
        return frames
            .iter()
            .enumerate()
            .map(|(n, &address)| frame(n, address, None, none()))
            .collect();
    };
    let symbolized = state
        .symbolizer
        .symbolize_return_addresses(modules, frames, stats);
    frames
        .iter()
        .zip(symbolized)
        .enumerate()
        .map(|(n, (&address, mut s))| {
            let module = s.module.take();
            frame(n, address, module, s)
        })
        .collect()
}
