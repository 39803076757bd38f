//! What the reporter keeps from one report to the next: the symbolizer (its
//! caches) and the section worker.

use crate::sections::Runner;
use crate::symbols::Symbolizer;

/// State kept across reports.
#[derive(Debug, Default)]
pub(crate) struct ReporterState {
    pub(crate) symbolizer: Symbolizer,
    pub(crate) runner: Runner,
}
