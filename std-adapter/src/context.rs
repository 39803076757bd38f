//! Thread context: what each thread is working on, in every report.
//!
//! A stack says where a thread is; [`label`], [`breadcrumb`] and the
//! tracing layer (`guru::tracing::layer`, feature `tracing`) say what
//! for: which request, which job, and what it did just before. Each thread
//! with any gets these lines under its header (only those it has):
//!
//! ```text
//! ------ Thread 4242 "worker-3" (in syscall read; paused 3.1 µs) ------
//!   labels: request="GET /users/42" tenant="acme"
//!   spans: http_request{method=GET path=/users/42} > db_query{table=users}
//!   breadcrumbs (oldest first, 3 older dropped): -1.204 s accepted conn 17 | -0.002 s query sent
//! ```
//!
//! (quoted where the text needs it to read back whole:
//! `docs/report-format.md`), and in the report model (and so in JSON) a
//! [`ThreadContext`](crate::model::ThreadContext) on the thread
//! ([`crate::model::Thread::context`]).
//! Secrets are masked with the configuration's rules ([`crate::redact`]):
//! a label or span field whose name is secret shows `***`, and every label
//! value, span field and breadcrumb is scanned for credential shapes.
//!
//! # Cost
//!
//! Measured by `examples/src/bin/bench_context.rs` (BENCHMARKS.md, "Thread
//! context"): a `label` set and dropped, a `breadcrumb`, a span entered and
//! left through the layer each cost tens of nanoseconds, with no allocation
//! after the thread's first use (the first use takes a record, ~7 KiB, from
//! the engine; `tests/tests/thread_context.rs` counts allocations).
//!
//! # Limits
//!
//! - Capacities are [`guru_core::context`]'s: 8 labels of 64-byte values,
//!   8 spans of 128 bytes (name and fields), the 16 most recent breadcrumbs
//!   of 96 bytes; [`guru_core::context::ContextOptions`] (through
//!   [`Builder::core_options`](crate::Builder::core_options)) lowers them.
//!   Longer text is cut at a character boundary and ends with `…`; labels
//!   and spans beyond the count are counted (`(+2 not kept)`), older
//!   breadcrumbs are counted as dropped.
//! - Until guru is installed these calls record nothing. A thread that finds
//!   every record in use (default 1024 threads at once) records nothing.
//! - A report taken while the thread was in the middle of changing its
//!   record (a few nanoseconds of copying) shows `context: being updated`
//!   for that thread instead of its context: a torn value is never shown.
//! - A label's value is formatted when it is set; later changes to what it
//!   was formatted from are not seen.

use std::cell::Cell;
use std::fmt::Display;

use guru_core::context::{LabelId, ThreadContext};

#[derive(Clone, Copy)]
enum State {
    /// Not asked for yet (or guru was not installed then).
    Unset,
    Active(ThreadContext),
    /// Every record was in use: this thread records nothing.
    NoRecord,
}

struct Local {
    state: Cell<State>,
}

impl Drop for Local {
    fn drop(&mut self) {
        if let State::Active(c) = self.state.replace(State::NoRecord) {
            c.release();
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local { state: Cell::new(State::Unset) } };
}

/// The calling thread's context handle, made on its first use.
fn current() -> Option<ThreadContext> {
    LOCAL
        .try_with(|l| match l.state.get() {
            State::Active(c) => Some(c),
            State::NoRecord => None,
            State::Unset => {
                guru_core::engine()?;
                match ThreadContext::current() {
                    Some(c) => {
                        l.state.set(State::Active(c));
                        Some(c)
                    }
                    None => {
                        l.state.set(State::NoRecord);
                        None
                    }
                }
            }
        })
        .ok()
        .flatten()
}

/// Sets a label on the calling thread until the guard drops: every report
/// shows it under the thread's header (`labels: request="GET /users/42"`).
///
/// Labels nest; setting the same key again shadows the outer value until
/// the inner guard drops. `value` is formatted now, into the thread's
/// fixed record (no allocation after the thread's first use).
///
/// ```
/// let _guard = guru::setup_autorun(guru::package!())?;
/// let request = guru::label("request", "GET /users/42");
/// {
///     let _tenant = guru::label("tenant", "acme");
///     let _retry = guru::label("request", format_args!("{} (retry {})", "GET /users/42", 2));
///     // a report now shows: labels: tenant="acme" request="GET /users/42 (retry 2)"
/// }
/// drop(request); // and now no labels at all
/// # Ok::<(), guru::Error>(())
/// ```
pub fn label(key: &'static str, value: impl Display) -> LabelGuard {
    LabelGuard {
        inner: current().map(|c| (c, c.set_label(key, value))),
    }
}

/// Removes its label from the calling thread when dropped (see [`label`]).
/// Not `Send`: it belongs to the thread that set the label.
#[must_use = "the label is removed when the guard drops: bind it (`let _request = ...`)"]
#[derive(Debug)]
pub struct LabelGuard {
    inner: Option<(ThreadContext, LabelId)>,
}

impl Drop for LabelGuard {
    fn drop(&mut self) {
        if let Some((c, id)) = self.inner.take() {
            c.remove_label(id);
        }
    }
}

/// Leaves a breadcrumb on the calling thread: reports show its 16 most
/// recent ones, oldest first, each with how long before the report it was
/// left (`breadcrumbs (oldest first, 3 older dropped): -0.311 s parsed
/// headers | -0.002 s query sent`).
///
/// ```
/// let _guard = guru::setup_autorun(guru::package!())?;
/// guru::breadcrumb("accepted conn 17");
/// guru::breadcrumb(format_args!("parsed {} headers", 12));
/// # Ok::<(), guru::Error>(())
/// ```
pub fn breadcrumb(text: impl Display) {
    if let Some(c) = current() {
        c.breadcrumb(text);
    }
}

/// The tracing layer's enter: `text` is the span's name and fields.
#[cfg(feature = "tracing")]
pub(crate) fn enter_span(id: u64, text: &str) {
    if let Some(c) = current() {
        c.enter_span(id, text);
    }
}

/// The tracing layer's exit.
#[cfg(feature = "tracing")]
pub(crate) fn exit_span(id: u64) {
    if let Some(c) = current() {
        c.exit_span(id);
    }
}
