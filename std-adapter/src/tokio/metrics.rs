//! A runtime's figures from tokio's `RuntimeMetrics`, as model data: its
//! flavor, each worker's figures and, with `--cfg tokio_unstable`, the
//! runtime-wide ones.

use std::time::Duration;

use ::tokio::runtime::{RuntimeFlavor, RuntimeMetrics};

use crate::model::{UnstableFigures, WorkerFigures};

pub(super) fn flavor_name(f: RuntimeFlavor) -> String {
    match f {
        RuntimeFlavor::CurrentThread => "current_thread".into(),
        RuntimeFlavor::MultiThread => "multi_thread".into(),
        other => format!("{other:?}"),
    }
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(super) fn worker_figures(m: &RuntimeMetrics, w: usize) -> WorkerFigures {
    #[allow(unused_mut)]
    let mut f = WorkerFigures {
        index: w,
        ..WorkerFigures::default()
    };
    #[cfg(target_has_atomic = "64")]
    {
        let pu = m.worker_park_unpark_count(w);
        f.parked = Some(!pu.is_multiple_of(2));
        f.park_unpark_count = Some(pu);
        f.park_count = Some(m.worker_park_count(w));
        f.busy_ns = Some(nanos(m.worker_total_busy_duration(w)));
    }
    #[cfg(tokio_unstable)]
    {
        f.local_queue_depth = Some(m.worker_local_queue_depth(w));
        #[cfg(target_has_atomic = "64")]
        {
            f.poll_count = Some(m.worker_poll_count(w));
            f.steal_count = Some(m.worker_steal_count(w));
            f.mean_poll_ns = Some(nanos(m.worker_mean_poll_time(w)));
        }
    }
    let _ = m;
    f
}

#[cfg(tokio_unstable)]
pub(super) fn unstable_figures(m: &RuntimeMetrics) -> Option<UnstableFigures> {
    #[allow(unused_mut)]
    let mut u = UnstableFigures {
        blocking_threads: m.num_blocking_threads(),
        idle_blocking_threads: m.num_idle_blocking_threads(),
        blocking_queue_depth: m.blocking_queue_depth(),
        ..UnstableFigures::default()
    };
    #[cfg(target_has_atomic = "64")]
    {
        u.spawned_tasks = Some(m.spawned_tasks_count());
        u.remote_schedules = Some(m.remote_schedule_count());
        u.budget_forced_yields = Some(m.budget_forced_yield_count());
    }
    Some(u)
}

#[cfg(not(tokio_unstable))]
pub(super) fn unstable_figures(_: &RuntimeMetrics) -> Option<UnstableFigures> {
    None
}
