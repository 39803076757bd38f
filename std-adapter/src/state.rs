//! What the reporter keeps from one report to the next: the symbolizer (its
//! caches), the section worker, and each thread's stack and CPU time in the
//! last report (for stuck and spinning threads: [`crate::stuck`]).

use crate::sections::Runner;
use crate::symbols::Symbolizer;

/// State kept across reports.
#[derive(Debug, Default)]
pub(crate) struct ReporterState {
    pub(crate) symbolizer: Symbolizer,
    pub(crate) runner: Runner,
    /// Each thread's stack and CPU time in the last report.
    pub(crate) stuck: crate::stuck::History,
}
