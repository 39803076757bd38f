//! Built without task dumps: metrics only, and why.

use ::tokio::runtime::Handle;
use guru_core::ModuleSet;

use super::Registered;
use crate::model::{TaskDump, Threads};
use crate::state::ReporterState;
use crate::symbols::Stats;

#[derive(Debug)]
pub(super) struct DumpJob;

impl DumpJob {
    pub(super) fn new(_: &str, _: &Handle) -> DumpJob {
        DumpJob
    }
}

pub(super) fn take(
    _: &mut ReporterState,
    _: &Registered,
    _: Option<&ModuleSet>,
    _: &mut Stats,
    _: Option<&Threads>,
) -> TaskDump {
    let how = if cfg!(not(feature = "taskdump")) {
        "build guru with feature `taskdump` and the application with RUSTFLAGS=\"--cfg tokio_unstable\""
    } else if cfg!(not(tokio_unstable)) {
        "build the application with RUSTFLAGS=\"--cfg tokio_unstable\" (guru's feature `taskdump` is on)"
    } else {
        "tokio's task dumps need Linux on x86_64 or aarch64"
    };
    not_taken(format!("not built in: {how}"))
}

fn not_taken(reason: String) -> TaskDump {
    TaskDump::NotTaken { reason }
}
