//! The typed report model: plain data for one report (trigger, sections,
//! threads, frames with their inlined functions, failed sections), whose serde
//! form is the JSON document `guru-report/1` (`docs/json-schema.md`, schema
//! generated into `docs/guru-report.schema.json`), rendered to the text
//! report by [`Report::to_text`] and read back from either format by
//! [`Report::from_text`] and [`Report::from_json`].
//!
//! ```
//! # let text = "==== Guru Meditation ==== pid 7 report #1 at 2026-11-25T01:02:53.630Z on request\n\
//! #              ==== End of Guru Meditation ==== pid 7 report #1\n";
//! let report = guru::model::Report::from_text(text)?;
//! assert_eq!(report.pid, 7);
//! assert_eq!(report.to_text(), text);
//! # Ok::<(), guru::model::ParseError>(())
//! ```
//!
//! # Text and JSON carry different things
//!
//! A model read from JSON holds everything the JSON document has; rendering
//! it to text gives the text report of the same report. A model read from
//! text renders back to the same text byte for byte, but the text does not
//! carry everything, so such a model has [`Report::read_from_text`] set (its JSON
//! form says `"read_from_text": true`) and:
//!
//! - **Folded frames are absent**: a thread's
//!   `... #a..#b: k more frames of the same function` and
//!   `... #a..#b: runtime start-up frames` lines become [`Elided`] ranges in
//!   [`Thread::elided`]; the frames listed keep their real
//!   [`Frame::index`].
//! - **Durations, sizes and times are at text precision**: `12.3 ms` is read
//!   as 12 300 000 ns, `30.2 MiB` as the nearest byte count, times to the
//!   millisecond, CPU seconds to the millisecond.
//! - **Fields the text does not show** come out empty: [`Frame::symbol`] and
//!   `symbol_offset` of a frame with DWARF functions (null), a function's
//!   `line` without a file, [`Module::bias`] (absent), `max_rss_bytes` in
//!   Process usage (0), a signal trigger's arrival `time` (the report's
//!   time) and `si_code` beyond what the wording says (`from pid` reads as
//!   `SI_USER`, 0), `git_dirty` when not dirty (null), Threads `capacity`
//!   (taken from the Report section), a runtime's task dump status among
//!   `not_taken`/`blocked`/`failed` (told apart by their wording), a
//!   thread's [`Thread::stack_hash`] (absent), [`Figures::watchdog`] when
//!   the text has none of its lines (absent, not empty), the watchdog's
//!   deadlines as the text rounds them (`500 ms`, `1.5 s`) and its other
//!   seconds to 10 ms (`0.73 s`; a same-stack line's to 100 ms), a crash
//!   trigger's `time` in a std report (the report's time; the core's crash
//!   report shows it and it is read), a crashed thread's `pause_ns` (0).
//!   A panic trigger's `message` and `location` are read from the Report
//!   section (the begin line names only the thread).
//! - **Source paths are as the text shortens them**: `/rustc/<commit>/library/std/src/…`
//!   reads as `std/src/…`, a cargo registry or git checkout path from the
//!   crate's directory on (the JSON has the full path).
//! - **Strings are as the text escapes them**: control characters and
//!   invalid UTF-8 are `\xNN` (the text renderer leaves such escapes as they
//!   are, so they round-trip); a command line is split on spaces. Thread
//!   context ([`Thread::context`]) is the exception: its text quotes and
//!   escapes reversibly, so labels, span fields and breadcrumbs read back
//!   whole; only breadcrumb ages are cut to the millisecond.
//!
//! # Limits
//!
//! [`Report::from_text`] reads reports of this format version (the std
//! adapter's and the core's, whose text has only Threads, Modules and Report;
//! a core report's frames read as frames without DWARF functions). It
//! rejects, with the line number and what was expected, any line it does not
//! recognize (unlike the skipping reader `docs/report-format.md` allows: a
//! skipped line could not be rendered back), so a report from a newer guru
//! with new lines needs a newer `guru`; it never panics, whatever the input.
//! A section whose title is not a built-in one reads as a registered
//! (`custom`) section; a registered section titled like a built-in one
//! (`Process`, …) does not read back.
//!
//! # Adding to the report
//!
//! A new piece of data is a field (`Option<_>` or a `Vec<_>`, with
//! `#[serde(default, skip_serializing_if = …)]` so older documents still
//! read) on the type it belongs to, or a new variant of [`Data`] (with a
//! [`Kind`]) or [`Trigger`]; its words go in `text` (the renderer), the
//! reading back in `parse`, and `docs/guru-report.schema.json` is
//! regenerated. Producers in the std adapter fill the field; nothing else
//! knows formats.
//!
//! Size: this file is over 600 lines because it is the model's type
//! definitions, one documented struct per JSON object; rendering and
//! parsing are in submodules.

use std::borrow::Cow;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod parse;
#[cfg(test)]
mod tests;
mod text;

pub use parse::{ParseError, ParseErrorKind};

/// The schema name and version carried by every document (`schema`).
pub const SCHEMA: &str = "guru-report/1";

fn is_false(b: &bool) -> bool {
    !*b
}

/// An address or offset: JSON carries it as a string of lowercase hex with a
/// `0x` prefix (a 64-bit value does not survive a JSON double).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{:x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hex, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        parse::hex(&s)
            .map(Hex)
            .ok_or_else(|| serde::de::Error::custom(format!("not a 0x-prefixed hex number: {s:?}")))
    }
}

impl JsonSchema for Hex {
    fn schema_name() -> Cow<'static, str> {
        "Hex".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^0x[0-9a-f]+$",
            "description": "A 64-bit address or offset in lowercase hex with a 0x prefix.",
        })
    }
}

/// One report: the JSON document's top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Process id.
    pub pid: i32,
    /// Report number in this process (1, 2, …); 0 if no capture round ran.
    pub sequence: u64,
    /// UTC start of the report, ISO 8601 with milliseconds.
    pub time: String,
    /// The same, nanoseconds since the Unix epoch.
    pub time_unix_ns: u64,
    /// What asked for the report.
    pub trigger: Trigger,
    /// In report order.
    pub sections: Vec<Section>,
    /// True when read from a text report: some fields are not carried by
    /// text (see the module docs). Absent from JSON otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_from_text: bool,
}

/// What asked for a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// A signal.
    Signal {
        /// Signal number.
        signal: i32,
        /// Its name (`SIGUSR2`), null if unknown.
        signal_name: Option<String>,
        /// The signal's `si_code` (0 = `SI_USER`, sent with `kill`).
        si_code: i32,
        /// Sender pid, from `siginfo`.
        sender_pid: i32,
        /// Sender uid, from `siginfo`.
        sender_uid: u32,
        /// When the signal arrived.
        time: String,
    },
    /// The file trigger was touched.
    File {
        /// The trigger file.
        path: String,
    },
    /// `guru::report()` was called.
    Call,
    /// A `guru dump` client asked on the dump socket (the text's begin line
    /// says `on request`; its Report section says who).
    Dump {
        /// The client's pid (`SO_PEERCRED`, in the process's pid namespace).
        client_pid: i32,
        /// The client's uid.
        client_uid: u32,
    },
    /// The watchdog: a heartbeat missed its deadline or a tokio worker did
    /// not come back to its scheduler (an automatic report).
    Watchdog(Stall),
    /// A fatal signal: the process dies after this report (issue 12).
    Crash {
        /// Signal number.
        signal: i32,
        /// Its name (`SIGSEGV`), null if unknown.
        signal_name: Option<String>,
        /// The signal's `si_code`.
        si_code: i32,
        /// `si_code` in words (`SEGV_MAPERR`, `BUS_ADRERR`, `SI_TKILL`, …),
        /// null for a code without a name.
        si_code_name: Option<String>,
        /// The fault address (`si_addr`); null for a signal the process sent
        /// itself (`abort`, `raise`: `si_code` ≤ 0).
        fault_address: Option<Hex>,
        /// The sender of such a signal; null for a fault.
        sender_pid: Option<i32>,
        /// The crashing thread's id.
        thread: i32,
        /// Its name (escaped as in the text).
        thread_name: String,
        /// A later signal of the same thread this report covers (the
        /// `SIGABRT` after Rust's stack-overflow message), null if none.
        #[serde(default)]
        then_signal: Option<i32>,
        /// Its name, null if none or unknown.
        then_signal_name: Option<String>,
        /// When the fault happened.
        time: String,
    },
    /// A panic (the panic hook; with `panic = "unwind"` the process lives
    /// on).
    Panic {
        /// The panic's message (`Box<dyn Any>` payloads that are not a
        /// string are described as such).
        message: String,
        /// `file:line:column`, empty when unknown.
        location: String,
        /// The panicking thread's id.
        thread: i32,
        /// Its name (`<unnamed>` for a thread without one).
        thread_name: String,
        /// Panics the rate limit held back since the last panic report.
        unreported_panics_before: u64,
        /// The panic reports' rate limit (at most one per this many ms).
        min_interval_ms: u64,
    },
}

/// A stall the watchdog made an automatic report for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stall {
    /// What stalled (`stalled` is `heartbeat` or `tokio_worker`).
    #[serde(flatten)]
    pub what: Stalled,
    /// The heartbeat's deadline, or the tokio stall threshold.
    pub deadline_ns: u64,
    /// How long it had been silent when the watchdog saw it (heartbeat:
    /// since its last beat; worker: since its figures last moved).
    pub silent_ns: u64,
    /// The stalled thread (the heartbeat's last beat's, or the worker's);
    /// null when not known.
    pub tid: Option<i32>,
    /// That thread's name (escaped as in the text); null when not known.
    pub thread_name: Option<String>,
}

/// What the watchdog saw stalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "stalled", rename_all = "snake_case")]
pub enum Stalled {
    /// A heartbeat (`guru::heartbeat`) that missed its deadline.
    Heartbeat {
        /// The heartbeat's name.
        heartbeat: String,
    },
    /// A worker of a registered tokio runtime that has not come back to its
    /// scheduler (a task blocking it inside one poll).
    TokioWorker {
        /// The runtime's registered name.
        runtime: String,
        /// The worker's index.
        worker: usize,
    },
}

/// One section: its banner title and its data or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Section {
    /// The banner title (`"Threads"`, or the registered name).
    pub title: String,
    /// `status` `ok` with `kind` and `data`, or `failed` with `kind` and `error`.
    #[serde(flatten)]
    pub content: Content,
}

/// A section's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Content {
    /// The section's data (`kind` and `data`).
    Ok(Data),
    /// The section failed.
    Failed {
        /// Which section it was.
        kind: Kind,
        /// Why: `"panicked: …"`, `"returned an error: …"`, `"timed out: …"`, …
        error: String,
    },
}

/// A section's machine name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Kind {
    Package,
    Threads,
    GreenThreads,
    Processes,
    Configuration,
    Custom,
    Process,
    Modules,
    Report,
}

/// A section's data, by kind (the larger ones boxed: a report holds a few
/// of each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Data {
    /// What was built.
    Package(Box<Package>),
    /// Every thread's stack.
    Threads(Threads),
    /// Registered tokio runtimes.
    GreenThreads(GreenThreads),
    /// This process and its descendants.
    Processes(Processes),
    /// The configuration, secrets masked.
    Configuration(Configuration),
    /// A registered section's text.
    Custom(Custom),
    /// Resource usage.
    Process(Box<Process>),
    /// Loaded modules.
    Modules(Modules),
    /// The report's own figures.
    Report(Box<Figures>),
}

impl Data {
    /// The section kind of this data.
    pub fn kind(&self) -> Kind {
        match self {
            Data::Package(_) => Kind::Package,
            Data::Threads(_) => Kind::Threads,
            Data::GreenThreads(_) => Kind::GreenThreads,
            Data::Processes(_) => Kind::Processes,
            Data::Configuration(_) => Kind::Configuration,
            Data::Custom(_) => Kind::Custom,
            Data::Process(_) => Kind::Process,
            Data::Modules(_) => Kind::Modules,
            Data::Report(_) => Kind::Report,
        }
    }
}

impl Section {
    /// A section titled `title`: its data, or failed (as `kind`) with why.
    pub fn new(title: impl Into<String>, kind: Kind, data: Result<Data, String>) -> Section {
        Section {
            title: title.into(),
            content: match data {
                Ok(d) => Content::Ok(d),
                Err(error) => Content::Failed { kind, error },
            },
        }
    }

    /// The section's kind, ok or failed.
    pub fn kind(&self) -> Kind {
        match &self.content {
            Content::Ok(d) => d.kind(),
            Content::Failed { kind, .. } => *kind,
        }
    }
}

/// The Package section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub service: String,
    pub authors: Vec<String>,
    pub repository: Option<String>,
    /// Target triple.
    pub target: String,
    /// `release` or `debug`.
    pub profile: String,
    pub opt_level: String,
    pub rustc: Option<String>,
    pub git_commit: Option<String>,
    /// The work tree had uncommitted changes when built.
    pub git_dirty: Option<bool>,
}

/// The Threads section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Threads {
    /// In capture order.
    pub threads: Vec<Thread>,
    /// Threads not captured for lack of slots.
    pub left_out: usize,
    /// Slot table size.
    pub capacity: usize,
}

/// One thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Thread {
    /// Thread id.
    pub tid: i32,
    /// `comm` (escaped as in the text).
    pub name: String,
    /// False when it did not answer in time.
    pub captured: bool,
    /// `running`, `in syscall futex`, … or `not captured`.
    pub state: String,
    /// Thread-CPU time the thread spent capturing itself.
    pub pause_ns: u64,
    /// This thread produced the report.
    pub writing_report: bool,
    /// Innermost first.
    pub frames: Vec<Frame>,
    /// Why the stack ends early (`stack truncated: …`); null at its root.
    pub stack_end: Option<String>,
    /// Index of the first frame found by scanning the stack.
    pub frames_scanned_from: Option<u16>,
    /// For a thread that did not answer: what `/proc` says (the text block).
    pub unresponsive: Option<String>,
    /// Frames the text folded and does not carry (read from text only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elided: Vec<Elided>,
    /// Its total CPU time before this report (its thread-CPU clock, read by
    /// its capture handler on entry); absent when not read (a thread that
    /// did not answer, a core report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns: Option<u64>,
    /// The hash its stack is compared by across reports; absent when read
    /// from text (the text does not show it) and where `cpu_ns` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_hash: Option<Hex>,
    /// Its stack is the same as in the previous report: stuck (no CPU
    /// used since) or spinning in place. Absent when it moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_stack: Option<SameStack>,
    /// The thread of the stall that made this automatic report (the
    /// report's [`Trigger::Watchdog`]); it comes first.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stalled: bool,
    /// The thread whose crash or panic made this report (it comes first);
    /// absent for every other thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<ThreadMark>,
    /// What the thread was working on: its labels, entered spans and
    /// breadcrumbs (`guru::label`, `guru::breadcrumb`, the tracing layer),
    /// masked; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ThreadContext>,
}

impl Thread {
    /// A listed thread that did not answer the capture signal: `block` is its
    /// text (the header giving why, then `  -- not captured`), kept whole.
    pub(crate) fn not_captured(tid: i32, name: String, block: String) -> Thread {
        Thread {
            tid,
            name,
            captured: false,
            state: "not captured".into(),
            pause_ns: 0,
            writing_report: false,
            frames: Vec::new(),
            stack_end: None,
            frames_scanned_from: None,
            unresponsive: Some(block),
            elided: Vec::new(),
            cpu_ns: None,
            stack_hash: None,
            same_stack: None,
            stalled: false,
            mark: None,
            context: None,
        }
    }
}

/// Why a thread is singled out: its crash or its panic made the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ThreadMark {
    /// It crashed: unwound by guru's crash helper from the fault's saved
    /// registers (frame 0 is the faulting instruction; `pause_ns` is 0: it
    /// did not capture itself). Its `state` is `crashed`.
    Crashed {
        /// Signal number.
        signal: i32,
        /// Its name, null if unknown.
        signal_name: Option<String>,
        /// The signal's `si_code`.
        si_code: i32,
        /// `si_code` in words, null for a code without a name.
        si_code_name: Option<String>,
        /// The fault address; null for a signal the process sent itself.
        fault_address: Option<Hex>,
    },
    /// It panicked and is writing this report from its panic hook.
    Panicking,
}

/// A thread's context as its capture handler copied it (`guru::context`),
/// masked with the configuration's rules. In text, the `labels:`, `spans:`
/// and `breadcrumbs` lines under the thread's header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadContext {
    /// The handler interrupted a write to the record: nothing else is
    /// shown (a torn value never is).
    #[serde(default)]
    pub being_updated: bool,
    /// The labels in effect, oldest first (a shadowed one left out).
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Labels set but not kept (beyond the record's capacity).
    #[serde(default)]
    pub labels_not_kept: u64,
    /// The spans entered, outermost first.
    #[serde(default)]
    pub spans: Vec<Span>,
    /// Spans entered but not kept (deeper than the record's capacity).
    #[serde(default)]
    pub spans_not_kept: u64,
    /// The most recent breadcrumbs, oldest first.
    #[serde(default)]
    pub breadcrumbs: Vec<Breadcrumb>,
    /// Breadcrumbs left before those shown, not kept.
    #[serde(default)]
    pub breadcrumbs_dropped: u64,
}

/// A label (`guru::label`), or a span's field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Label {
    /// Its key (a field's name).
    pub key: String,
    /// Its value (`"***"` when masked; cut at its capacity, ending in `…`).
    pub value: String,
}

/// An entered tracing span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Span {
    /// The span's name.
    pub name: String,
    /// Its fields as recorded (`Debug` of each value, strings unquoted).
    #[serde(default)]
    pub fields: Vec<Label>,
}

/// A breadcrumb (`guru::breadcrumb`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Breadcrumb {
    /// How long before the capture it was left (the coarse monotonic
    /// clock: one kernel tick of resolution; milliseconds when read from
    /// text).
    pub age_ns: u64,
    /// Its text.
    pub text: String,
}

/// A thread whose stack did not change since an earlier report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SameStack {
    /// The first report of the run of reports that saw this stack.
    pub as_report: u64,
    /// How long before this report that one was made.
    pub ago_ns: u64,
    /// CPU time the thread used since then; null when not known.
    pub cpu_delta_ns: Option<u64>,
}

/// A range of frames a text report folded into one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Elided {
    /// First folded frame index.
    pub first: usize,
    /// Last folded frame index.
    pub last: usize,
    /// Why they were folded.
    pub why: ElidedWhy,
}

/// Why a text report folded frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ElidedWhy {
    /// More frames of the same return address (deep recursion), after three.
    Recursion,
    /// The runtime's start-up frames (std::rt, std::thread, libc).
    RuntimeStartUp,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Frame {
    /// 0 is the interrupted instruction, the rest are return addresses.
    pub index: usize,
    /// Absolute address.
    pub address: Hex,
    // The strings of frames are shared (`Arc<str>`): a report's frames share
    // their module's name, and a warm report the symbolized frames' strings
    // with the reporter's cache, instead of copying each one.
    /// Module file name.
    pub module: Option<Arc<str>>,
    /// Address minus the module's load bias.
    pub module_offset: Option<Hex>,
    /// ELF symbol (demangled).
    pub symbol: Option<Arc<str>>,
    /// Offset into the symbol.
    pub symbol_offset: Option<Hex>,
    // Shared with the reporter's cache (a warm report's frame costs no
    // allocation).
    /// From DWARF: innermost inlined call first, the real function last.
    pub functions: Arc<[Function]>,
}

/// A function of a frame, from DWARF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct Function {
    pub name: Option<Arc<str>>,
    pub file: Option<Arc<str>>,
    pub line: Option<u32>,
    /// Inlined into the next function of the frame.
    pub inlined: bool,
}

/// The Green Threads section (tokio runtimes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GreenThreads {
    /// In registration order.
    pub runtimes: Vec<Runtime>,
}

/// One registered tokio runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct Runtime {
    pub name: String,
    /// `multi_thread` or `current_thread`.
    pub flavor: String,
    pub workers: usize,
    pub alive_tasks: usize,
    pub global_queue_depth: usize,
    pub worker_figures: Vec<WorkerFigures>,
    /// With `--cfg tokio_unstable`.
    pub unstable: Option<UnstableFigures>,
    /// How long after the Threads section's capture these figures were
    /// read (two snapshots); null without a capture round.
    #[serde(default)]
    pub read_after_capture_ns: Option<u64>,
    pub task_dump: TaskDump,
    /// Workers the tokio stall watch sees stalled now
    /// (`Builder::tokio_stall_threshold`); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stalled_workers: Vec<StalledWorker>,
}

/// A worker that has not come back to its scheduler for longer than the
/// stall threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StalledWorker {
    /// The worker's index.
    pub worker: usize,
    /// Since its figures last moved.
    pub silent_ns: u64,
    /// Its thread; null when not known.
    pub tid: Option<i32>,
}

/// One worker's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct WorkerFigures {
    pub index: usize,
    pub parked: Option<bool>,
    pub busy_ns: Option<u64>,
    pub park_count: Option<u64>,
    pub park_unpark_count: Option<u64>,
    pub poll_count: Option<u64>,
    pub local_queue_depth: Option<usize>,
    pub steal_count: Option<u64>,
    pub mean_poll_ns: Option<u64>,
}

/// Runtime-wide figures tokio gives only with `--cfg tokio_unstable`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct UnstableFigures {
    pub blocking_threads: usize,
    pub idle_blocking_threads: usize,
    pub blocking_queue_depth: usize,
    pub spawned_tasks: Option<u64>,
    pub remote_schedules: Option<u64>,
    pub budget_forced_yields: Option<u64>,
}

/// The outcome of a runtime's task dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskDump {
    /// The dump was taken.
    Taken {
        /// Tasks in the dump.
        tasks: usize,
        /// Tasks beyond those traced.
        left_out: usize,
        /// The dump itself.
        dump_ns: u64,
        /// tokio's backtrace resolution.
        resolve_ns: u64,
        /// Tasks with identical traces share a group.
        groups: Vec<TaskGroup>,
    },
    /// The dump did not finish in time.
    TimedOut {
        /// The timeout.
        timeout_ms: u64,
        /// What happened to it.
        reason: String,
    },
    /// Not requested: a worker looked blocked.
    Blocked {
        /// Why.
        reason: String,
    },
    /// Not built in, turned off, or a `current_thread` runtime not opted in.
    NotTaken {
        /// Why.
        reason: String,
    },
    /// It failed.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Tasks whose traces are identical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskGroup {
    /// tokio task ids.
    pub task_ids: Vec<String>,
    /// One stack per leaf future, from its poll outward.
    pub traces: Vec<Vec<Frame>>,
    /// One per trace: its last frame is the call in the task's root future,
    /// which tokio's trace leaves out and guru found in the code.
    #[serde(default)]
    pub root_call_found: Vec<bool>,
}

/// The Processes section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Processes {
    /// This process first, then its descendants depth-first.
    pub processes: Vec<ProcessEntry>,
}

/// One process of the Processes section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct ProcessEntry {
    pub pid: i32,
    pub ppid: i32,
    pub uid: Option<u32>,
    pub user: Option<String>,
    /// The `/proc/<pid>/stat` letter.
    pub state: String,
    pub state_name: String,
    /// Arguments, secret flags masked.
    pub cmdline: Vec<String>,
    /// 0 for this process, 1 for its children, …
    pub depth: usize,
}

/// The Configuration section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Configuration {
    /// Null when no configuration was given.
    pub groups: Option<Vec<ConfigGroup>>,
}

/// A configuration group (`DEFAULT`, a top-level table, `environment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct ConfigGroup {
    pub name: String,
    pub entries: Vec<ConfigEntry>,
}

/// One configuration entry (`"***"` when masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
}

/// A registered section's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Custom {
    /// What its generator returned.
    pub text: String,
}

/// The Process section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    pub executable: Option<String>,
    pub working_directory: Option<String>,
    pub uptime_ns: Option<u64>,
    pub guru_uptime_ns: u64,
    pub threads: Option<i64>,
    pub usage: Usage,
    pub rss_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<usize>,
    pub fd_limit: Option<String>,
    pub limits: Vec<Limit>,
}

/// `getrusage` figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct Usage {
    pub user_cpu_us: u64,
    pub system_cpu_us: u64,
    pub max_rss_bytes: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub block_inputs: u64,
    pub block_outputs: u64,
}

/// One line of `/proc/self/limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct Limit {
    pub name: String,
    pub soft: String,
    pub hard: String,
    pub units: String,
}

/// The Modules section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Modules {
    /// In address order.
    pub modules: Vec<Module>,
}

/// One loaded module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Module {
    /// Its path.
    pub path: String,
    /// First address.
    pub start: Hex,
    /// End address.
    pub end: Hex,
    /// Load bias; absent when read from text (the text does not show it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<Hex>,
    /// GNU build-id in hex, null when the module has none.
    pub build_id: Option<String>,
    /// ELF function symbols the core loaded.
    pub symbols: usize,
}

/// The Report section: the report's own figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Figures {
    /// As the report's `trigger`. Absent only when read from a core-only
    /// text report (its Report section has only the round's figures); so
    /// are `symbolization`, `sections_ns` and `total_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<Trigger>,
    /// The capture round, null if none ran.
    pub round: Option<Round>,
    /// Slot table size.
    pub capacity: usize,
    /// The last triggers, oldest first.
    pub recent_triggers: Vec<RecentTrigger>,
    /// Tids that did not answer.
    pub unresponsive_threads: Vec<i32>,
    /// What symbolization cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbolization: Option<Symbolization>,
    /// Time in Configuration and the registered sections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sections_ns: Option<u64>,
    /// The whole report until the Report section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ns: Option<u64>,
    /// The installed trigger signal and rate limit; absent when guru is not
    /// installed (and in a core report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_settings: Option<TriggerSettings>,
    /// File-trigger touches ignored since the last report; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_file_touches: Option<IgnoredTouches>,
    /// Unresponsive threads that block the capture signal; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_capture: Option<BlockingCapture>,
    /// The watchdog's notes: heartbeats, stalls that ended, automatic
    /// reports the rate limit held back; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<WatchdogNotes>,
}

/// What the watchdog tells a report (`guru::watchdog`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WatchdogNotes {
    /// Stalls that ended since the last report.
    pub recovered: Vec<Recovery>,
    /// Stalls that got no report since the last report: the automatic-report
    /// rate limit held them back until they ended.
    pub suppressed_reports: u64,
    /// The automatic-report rate limit; null when guru is not installed.
    pub min_interval_ns: Option<u64>,
    /// The registered heartbeats, in registration order.
    pub heartbeats: Vec<HeartbeatState>,
}

/// A stall that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Recovery {
    /// What had stalled (`stalled` is `heartbeat` or `tokio_worker`).
    #[serde(flatten)]
    pub what: Stalled,
    /// How long it was silent: heartbeat, between the beats before and
    /// after the stall; worker, until its figures moved again.
    pub silent_ns: u64,
    /// The heartbeat's deadline, or the tokio stall threshold.
    pub deadline_ns: u64,
    /// Its stall got an automatic report (false: the rate limit held it
    /// back, and it is counted in `suppressed_reports`).
    pub reported: bool,
    /// A worker's runtime was unregistered while it was stalled: the stall
    /// is no longer watched rather than over.
    #[serde(default, skip_serializing_if = "is_false")]
    pub runtime_unregistered: bool,
}

/// A registered heartbeat when the report was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeartbeatState {
    /// Its name.
    pub name: String,
    /// Its deadline.
    pub deadline_ns: u64,
    /// Time since its last beat (about 1 ms resolution).
    pub since_last_beat_ns: u64,
    /// The thread that beat last (creating it counts as a beat).
    pub tid: i32,
    /// It is in a stall now.
    pub stalled: bool,
}

/// A capture round's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct Round {
    pub sequence: u64,
    pub threads_listed: usize,
    pub threads_captured: usize,
    pub threads_unresponsive: usize,
    pub threads_not_signalled: usize,
    pub threads_left_out: usize,
    pub capture_ns: u64,
    pub fanout_ns: u64,
    pub max_pause_ns: u64,
    pub max_pause_tid: i32,
    /// Triggers folded into this report.
    pub coalesced_triggers: u64,
    pub mappings_dropped: usize,
    /// Output dropped since the last report written whole, null when none.
    #[serde(default)]
    pub output_dropped: Option<OutputDropped>,
    /// Why `/proc/self/task` could not be listed (`"EMFILE (…)"`), null when
    /// it could.
    #[serde(default)]
    pub thread_list_error: Option<String>,
    /// With `thread_list_error`: the thread writing the report was shown
    /// all the same.
    #[serde(default, skip_serializing_if = "is_false")]
    pub thread_list_writer_shown: bool,
    /// Why `/proc/self/maps` could not be read, null when it could.
    #[serde(default)]
    pub maps_error: Option<String>,
}

/// Output of earlier reports that was not written (a full pipe, a gone
/// reader, a full disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OutputDropped {
    /// Bytes not written.
    pub bytes: u64,
    /// Reports not written whole.
    pub reports: u64,
    /// Sequence number of the last report cut.
    pub last_sequence: u64,
    /// Why the last one was cut.
    pub reason: String,
}

/// The installed trigger: the signal and the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerSettings {
    /// The trigger signal; null when there is none, or (read from text)
    /// when it is a real-time signal (the text names only a standard one).
    pub signal: Option<i32>,
    /// Reports are at least this far apart (0: no rate limit).
    pub min_interval_ns: u64,
}

/// File-trigger touches ignored since the last report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IgnoredTouches {
    /// How many.
    pub count: u64,
    /// The trigger file's owner, when it is another user.
    pub owner_uid: Option<u32>,
}

/// Threads that block the capture signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockingCapture {
    /// The capture signal.
    pub signal: i32,
    /// `signal - SIGRTMIN` where the report was made.
    pub rtmin_offset: i32,
    /// The thread that installed guru blocked it too.
    pub blocked_at_install: bool,
    /// The threads.
    pub tids: Vec<i32>,
}

/// One of the recent triggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct RecentTrigger {
    pub time: String,
    /// 0 for a request without a signal.
    pub signal: i32,
    /// The signal's `si_code`; without a signal, what asked: 1 the file
    /// trigger, 2 a call to `guru::report`, 3 a `guru dump` request (the
    /// sender is the client, from `SO_PEERCRED`), 0 anything else.
    pub si_code: i32,
    pub sender_pid: i32,
    pub sender_uid: u32,
    /// False: coalesced into a running report.
    pub started_report: bool,
}

/// Symbolization figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub struct Symbolization {
    pub frames: usize,
    /// Answered from the cache.
    pub cached: usize,
    pub modules_examined_now: usize,
    pub modules_with_debug_info: usize,
    /// Wall time.
    pub ns: u64,
    /// Reporter thread CPU time.
    pub cpu_ns: u64,
    pub rss_growth_bytes: u64,
    /// Modules without usable debug info, and why.
    pub no_debug_info: Vec<String>,
}

/// Why [`Report::from_json`] failed.
#[derive(Debug)]
pub struct JsonError(serde_json::Error);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not a guru-report/1 JSON document: {} (check the input is one whole report)",
            self.0
        )
    }
}

impl std::error::Error for JsonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Report format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// The text report (`docs/report-format.md`), oslo-style banners.
    #[default]
    Text,
    /// One JSON document per report, schema `guru-report/1`
    /// (`docs/json-schema.md`).
    Json,
}

impl Report {
    /// The report in `format`: [`Report::to_text`] or [`Report::to_json`].
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Json => self.to_json(),
        }
    }

    /// Reads a JSON report (one document, schema `guru-report/1`).
    pub fn from_json(json: &str) -> Result<Report, JsonError> {
        serde_json::from_str(json).map_err(JsonError)
    }

    /// The JSON document (one line, no trailing newline).
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Renders the text report (see `docs/report-format.md`).
    pub fn to_text(&self) -> String {
        text::render(self)
    }

    /// Reads a text report back (see the module docs for what it carries).
    pub fn from_text(text: &str) -> Result<Report, ParseError> {
        parse::report(text)
    }

    /// The section with this title, if any.
    pub fn section(&self, title: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.title == title)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// The JSON Schema of [`Report`] (what `docs/guru-report.schema.json`
/// holds), pretty-printed with a trailing newline.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Report);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
