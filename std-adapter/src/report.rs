//! Producing one report: a capture round (the core), symbolization, then every
//! section in DESIGN.md order, each isolated so that one failing part is shown
//! as a failed section and the rest still comes out. Rendering to text or
//! JSON is in [`crate::text`] and [`crate::json`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guru_core::format::write_escaped;
use guru_core::render::{write_stack_end, write_thread_header, write_unresponsive_thread};
use guru_core::{ModuleSet, RoundSummary, ThreadCapture, Trigger};

use crate::config::{self, Group, Redactor};
use crate::package::Package;
use crate::procinfo::{self, ProcessEntry, ProcessInfo};
use crate::sections::{self, Job, Outcome, Runner, panic_message};
use crate::symbols::{self, Symbolized, Symbolizer};

/// What a report shows, fixed at install.
pub(crate) struct Settings {
    pub(crate) package: Package,
    pub(crate) service: String,
    /// Produces the configuration's groups as JSON (secrets already masked);
    /// made once at install, so a `Serialize` that hangs is not started again
    /// while it still runs.
    pub(crate) config: Option<Arc<Job>>,
    pub(crate) redactor: Redactor,
    pub(crate) environment: bool,
    pub(crate) section_timeout: Duration,
    pub(crate) heavy_debug_info: bool,
    /// The trigger signal, if any.
    pub(crate) trigger_signal: Option<i32>,
    /// The rate limit of triggered reports.
    pub(crate) min_interval: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("package", &self.package)
            .field("service", &self.service)
            .field("config", &self.config.is_some())
            .field("environment", &self.environment)
            .field("section_timeout", &self.section_timeout)
            .finish_non_exhaustive()
    }
}

/// What asked for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A signal (sender from siginfo).
    Signal(Trigger),
    /// The file trigger was touched.
    File(PathBuf),
    /// [`crate::report`] was called.
    Call,
    /// A `guru dump` client asked on the dump socket (its pid and uid from
    /// `SO_PEERCRED`).
    Dump { pid: i32, uid: u32 },
}

/// One frame, resolved.
#[derive(Debug, Clone)]
pub(crate) struct FrameData {
    pub(crate) address: u64,
    /// Module file name and the address's offset in it.
    pub(crate) module: Option<(String, u64)>,
    pub(crate) symbolized: Symbolized,
}

/// One thread of the Threads section.
#[derive(Debug, Clone)]
pub(crate) struct ThreadData {
    pub(crate) tid: i32,
    pub(crate) name: String,
    /// The header line as the core writes it (with newline).
    pub(crate) header: String,
    /// The state part of the header (`running`, `in syscall futex`, ...).
    pub(crate) state: String,
    pub(crate) pause_ns: u64,
    pub(crate) writing_report: bool,
    pub(crate) frames: Vec<FrameData>,
    /// How the stack ends, if not at its root (with newline).
    pub(crate) end: Option<String>,
    /// Index of the first frame found by scanning the stack (0: none).
    pub(crate) scanned_from: u16,
    /// For a thread that did not answer: the core's block for it.
    pub(crate) unresponsive: Option<String>,
}

/// The Threads section.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadsData {
    pub(crate) threads: Vec<ThreadData>,
    pub(crate) left_out: usize,
    pub(crate) capacity: usize,
}

/// The Report section: the report's own cost.
#[derive(Debug, Clone)]
pub(crate) struct Figures {
    pub(crate) round: Option<RoundSummary>,
    pub(crate) capacity: usize,
    pub(crate) recent_triggers: Vec<Trigger>,
    pub(crate) source: Source,
    pub(crate) unresponsive_tids: Vec<i32>,
    pub(crate) symbols: symbols::Stats,
    /// Modules without usable debug info, and why.
    pub(crate) no_debug_info: Vec<String>,
    pub(crate) sections_ns: u64,
    pub(crate) total_ns: u64,
    /// The installed trigger signal and rate limit (None: not installed).
    pub(crate) trigger: Option<(Option<i32>, Duration)>,
    /// Unresponsive threads that block the capture signal.
    pub(crate) blocking_capture: Vec<i32>,
    /// The capture signal, and whether the installing thread blocked it.
    pub(crate) capture_signal: Option<(i32, bool)>,
    /// File-trigger touches ignored since the last report (another user's
    /// file), and that file's owner.
    pub(crate) ignored_file_touches: (u64, Option<u32>),
}

/// A section's content.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Package(Box<Package>, String),
    Threads(ThreadsData),
    Processes(Vec<ProcessEntry>),
    Configuration(Option<Vec<Group>>),
    Text(String),
    Process(Box<ProcessInfo>),
    Modules(&'static ModuleSet),
    Report(Box<Figures>),
    /// Registered tokio runtimes (feature `tokio`).
    #[cfg(feature = "tokio")]
    GreenThreads(Box<crate::tokio::GreenThreads>),
}

/// One section: its title, machine name, and content or why it failed.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) kind: &'static str,
    pub(crate) body: Result<Body, String>,
}

/// A whole report, ready to render.
#[derive(Debug, Clone)]
pub(crate) struct Collected {
    pub(crate) pid: i32,
    pub(crate) sequence: u64,
    pub(crate) started_unix_ns: u64,
    pub(crate) source: Source,
    /// The round's summary (for the begin and end lines), if a round ran.
    pub(crate) round: Option<RoundSummary>,
    pub(crate) sections: Vec<Section>,
}

impl Collected {
    /// A summary for the begin/end lines even when no round ran.
    pub(crate) fn line_summary(&self) -> RoundSummary {
        self.round.unwrap_or(RoundSummary {
            sequence: self.sequence,
            pid: self.pid,
            started_unix_ns: self.started_unix_ns,
            ..RoundSummary::default()
        })
    }
}

/// State kept across reports.
#[derive(Debug, Default)]
pub(crate) struct ReporterState {
    pub(crate) symbolizer: Symbolizer,
    pub(crate) runner: Runner,
}

/// Everything copied out of a capture round.
struct Round {
    summary: RoundSummary,
    modules: &'static ModuleSet,
    capacity: usize,
    triggers: Vec<Trigger>,
    threads: Vec<RawThread>,
}

struct RawThread {
    tid: i32,
    name: String,
    header: String,
    state: String,
    pause_ns: u64,
    writing_report: bool,
    frames: Vec<u64>,
    end: Option<String>,
    scanned_from: u16,
    unresponsive: Option<String>,
}

fn name_text(raw: &[u8]) -> String {
    let len = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let mut s = String::new();
    let _ = write_escaped(&mut s, &raw[..len]);
    s
}

/// How long `collect` retries when another round (core-only
/// `guru_core::write_report`) is running.
const ROUND_BUSY_WAIT: Duration = Duration::from_secs(1);

/// The header of the thread that runs the round: it is not waiting in the
/// system call it happens to be in (reading `/proc`), it is writing this
/// report.
fn initiator_header(tid: i32, name: &str, pause_ns: u64, role: &str) -> String {
    let mut h = format!("------ Thread {tid} \"{name}\" ({role}, writing this report; paused ");
    let _ = guru_core::format::write_duration(&mut h, pause_ns);
    h.push_str(") ------\n");
    h
}

fn capture(
    engine: &'static guru_core::Engine,
    trigger: Option<Trigger>,
    role: &str,
) -> Result<Round, String> {
    let deadline = Instant::now() + ROUND_BUSY_WAIT;
    // The thread running the round captures itself like every other: it
    // must not block the capture signal, whatever mask it has (an
    // application thread inside guru::report may block every signal).
    let _unblocked = crate::sys::unblock_for_now(&[engine.capture_signal()]);
    loop {
        let result = guru_core::capture(trigger, |round| {
            let summary = *round.summary();
            let deadline_ms = round.deadline_ms();
            let mut triggers = Vec::new();
            round.for_each_recent_trigger(|t| triggers.push(*t));
            let threads = round
                .threads()
                .map(|t| match t {
                    ThreadCapture::Captured(view) => {
                        let initiator = view.tid == summary.initiator_tid;
                        let name = name_text(&view.summary.name);
                        let mut header = String::new();
                        let mut state = String::new();
                        if initiator {
                            header = initiator_header(view.tid, &name, view.summary.pause_ns, role);
                            state = format!("{role}, writing this report");
                        } else {
                            let _ = write_thread_header(&mut header, &view, false);
                            let _ = guru_core::capture::describe_syscall(
                                view.summary.syscall,
                                &mut state,
                            );
                        }
                        let mut end = String::new();
                        let _ = write_stack_end(&mut end, &view);
                        RawThread {
                            tid: view.tid,
                            name,
                            header,
                            state,
                            pause_ns: view.summary.pause_ns,
                            writing_report: initiator,
                            frames: view.frames().collect(),
                            end: (!end.is_empty()).then_some(end),
                            scanned_from: view.summary.scanned_from,
                            unresponsive: None,
                        }
                    }
                    ThreadCapture::Missing { tid, phase } => {
                        let mut block = String::new();
                        let _ = write_unresponsive_thread(&mut block, tid, phase, deadline_ms);
                        let name = block.split('"').nth(1).unwrap_or("").to_string();
                        RawThread {
                            tid,
                            name,
                            header: String::new(),
                            state: "not captured".into(),
                            pause_ns: 0,
                            writing_report: false,
                            frames: Vec::new(),
                            end: None,
                            scanned_from: 0,
                            unresponsive: Some(block),
                        }
                    }
                })
                .collect();
            Round {
                summary,
                // The engine never frees a module set, and only this thread
                // (holding the reporter lock) refreshes them, so the current
                // set is the one the round used.
                modules: engine.module_set(),
                capacity: round.capacity(),
                triggers,
                threads,
            }
        });
        match result {
            Ok(round) => return Ok(round),
            Err(guru_core::Error::RoundInProgress) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Runs a built-in section, turning a panic into a failed section.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(format!("panicked: {}", panic_message(p.as_ref()))),
    }
}

fn ns_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Produces a report now. `settings` is `None` when guru is not installed
/// (the report then says so instead of showing threads).
pub(crate) fn collect(
    state: &mut ReporterState,
    settings: Option<&Settings>,
    source: Source,
) -> Collected {
    let t0 = Instant::now();
    state.symbolizer.heavy_debug_info = settings.is_some_and(|s| s.heavy_debug_info);
    let engine = guru_core::engine().filter(|_| settings.is_some());
    let trigger = match &source {
        Source::Signal(t) => Some(*t),
        _ => None,
    };
    let role = match &source {
        Source::Call => "calling guru::report",
        _ => "the reporter",
    };
    let mut round = match engine {
        Some(e) => {
            e.refresh_modules();
            // Triggers the signal action could not put into the full pipe
            // were accepted all the same: count them into this report.
            guru_core::note_coalesced(crate::sys::take_pipe_overflow());
            capture(e, trigger, role)
        }
        None => {
            Err("guru is not installed: call guru::setup_autorun or guru::Builder::install".into())
        }
    };

    // Symbolize outside the round: other threads already run on. The raw
    // threads are moved out of the round, not copied.
    let mut sym_stats = symbols::Stats::default();
    let threads = round.as_mut().map_err(|e| e.clone()).map(|r| {
        let modules = r.modules;
        let raw = std::mem::take(&mut r.threads);
        ThreadsData {
            capacity: r.capacity,
            left_out: r.summary.threads_left_out,
            threads: raw
                .into_iter()
                .map(|t| {
                    let symbolized =
                        state
                            .symbolizer
                            .symbolize_stack(modules, &t.frames, &mut sym_stats);
                    let frames = t
                        .frames
                        .iter()
                        .zip(symbolized)
                        .enumerate()
                        .map(|(n, (&address, symbolized))| FrameData {
                            address,
                            module: modules.resolve(address, n > 0).map(|res| {
                                let mut name = String::new();
                                let _ = write_escaped(&mut name, res.module.short_name());
                                (name, res.module_offset)
                            }),
                            symbolized,
                        })
                        .collect();
                    ThreadData {
                        tid: t.tid,
                        name: t.name,
                        header: t.header,
                        state: t.state,
                        pause_ns: t.pause_ns,
                        writing_report: t.writing_report,
                        frames,
                        end: t.end,
                        scanned_from: t.scanned_from,
                        unresponsive: t.unresponsive,
                    }
                })
                .collect(),
        }
    });
    let capture_signal = engine.map(|e| e.capture_signal());
    let unresponsive_tids: Vec<i32> = threads
        .as_ref()
        .map(|t| {
            t.threads
                .iter()
                .filter(|t| t.unresponsive.is_some())
                .map(|t| t.tid)
                .collect()
        })
        .unwrap_or_default();

    let (pid, sequence, started) = match &round {
        Ok(r) => (r.summary.pid, r.summary.sequence, r.summary.started_unix_ns),
        Err(_) => (std::process::id() as i32, 0, guru_core::sys::realtime_ns()),
    };
    let mut out = Vec::new();
    let not_installed = || "guru is not installed".to_string();

    out.push(Section {
        title: "Package".into(),
        kind: "package",
        body: match settings {
            Some(s) => Ok(Body::Package(
                Box::new(s.package.clone()),
                s.service.clone(),
            )),
            None => Err(not_installed()),
        },
    });
    out.push(Section {
        title: "Threads".into(),
        kind: "threads",
        body: threads.map(Body::Threads),
    });
    #[cfg(feature = "tokio")]
    out.extend(crate::tokio::section(
        state,
        engine.map(|e| e.module_set()),
        &mut sym_stats,
    ));
    let redactor = settings.map(|s| s.redactor.clone()).unwrap_or_default();
    out.push(Section {
        title: "Processes".into(),
        kind: "processes",
        body: guarded(|| {
            let mut p = procinfo::processes()?;
            for e in &mut p {
                e.cmdline = redactor.redact_command_line(&e.cmdline);
            }
            Ok(Body::Processes(p))
        }),
    });

    let t_sections = Instant::now();
    let budget = settings.map_or(Duration::from_secs(2), |s| s.section_timeout);
    // The configuration's `Serialize` and the registered sections go to the
    // section worker in one batch (one hand-off per report, not per section).
    let config_job = settings.and_then(|s| s.config.clone());
    let registered = sections::registered();
    let jobs: Vec<Arc<Job>> = config_job.iter().cloned().chain(registered).collect();
    let mut outcomes = state.runner.run_all(&jobs, budget).into_iter();
    let config_outcome = config_job.as_ref().and_then(|_| outcomes.next());
    out.push(Section {
        title: "Configuration".into(),
        kind: "configuration",
        body: match settings {
            Some(s) => configuration(s, config_outcome),
            None => Err(not_installed()),
        },
    });
    let custom = jobs.iter().skip(usize::from(config_job.is_some()));
    for (job, outcome) in custom.zip(outcomes) {
        let body = match outcome {
            Outcome::Ok(text) => Ok(Body::Text(text)),
            Outcome::Failed(why) => Err(why),
        };
        out.push(Section {
            title: job.name.clone(),
            kind: "custom",
            body,
        });
    }
    let sections_ns = ns_since(t_sections);

    out.push(Section {
        title: "Process".into(),
        kind: "process",
        body: guarded(|| {
            let uptime = engine.map_or(0, |e| e.uptime_ns());
            Ok(Body::Process(Box::new(procinfo::process_info(uptime))))
        }),
    });
    out.push(Section {
        title: "Modules".into(),
        kind: "modules",
        body: match &round {
            Ok(r) => Ok(Body::Modules(r.modules)),
            Err(e) => Err(e.clone()),
        },
    });
    if sym_stats.cached < sym_stats.frames {
        // This report parsed DWARF: give the mapped debug sections' pages back.
        state.symbolizer.release_pages();
    }
    // Listed by time: the trigger that started a report held by the rate
    // limit is recorded after the ones coalesced into it.
    let mut recent_triggers = round
        .as_mut()
        .map(|r| std::mem::take(&mut r.triggers))
        .unwrap_or_default();
    recent_triggers.sort_by_key(|t| t.unix_ns);
    let blocking_capture = capture_signal.map_or_else(Vec::new, |sig| {
        unresponsive_tids
            .iter()
            .copied()
            .filter(|&tid| {
                crate::sys::task_blocked_mask(tid)
                    .is_some_and(|m| (1..=64).contains(&sig) && m & (1u64 << (sig - 1)) != 0)
            })
            .collect()
    });
    let figures = Figures {
        round: round.as_ref().ok().map(|r| r.summary),
        capacity: round.as_ref().map_or(0, |r| r.capacity),
        recent_triggers,
        source: source.clone(),
        trigger: settings.map(|s| (s.trigger_signal, s.min_interval)),
        blocking_capture,
        capture_signal: capture_signal.map(|s| (s, crate::reporter::capture_blocked_at_install())),
        ignored_file_touches: crate::reporter::take_ignored_file_touches(),
        unresponsive_tids,
        symbols: sym_stats,
        no_debug_info: state.symbolizer.unavailable(),
        sections_ns,
        total_ns: ns_since(t0),
    };
    out.push(Section {
        title: "Report".into(),
        kind: "report",
        body: Ok(Body::Report(Box::new(figures))),
    });

    // Registered sections' text and every section's error are application
    // text too: scanned for credential shapes like the configuration.
    crate::redact::redact_sections(&mut out, &redactor);

    Collected {
        pid,
        sequence,
        started_unix_ns: started,
        source,
        round: round.as_ref().ok().map(|r| r.summary),
        sections: out,
    }
}

/// The Configuration section from the outcome of the configuration's job
/// (its `Serialize` runs on the section worker: it is application code and
/// may panic or block), `None` without a configuration.
fn configuration(s: &Settings, outcome: Option<Outcome>) -> Result<Body, String> {
    let mut groups = None;
    if let Some(outcome) = outcome {
        let text = match outcome {
            Outcome::Ok(text) => text,
            Outcome::Failed(why) => return Err(why),
        };
        groups = Some(serde_json::from_str::<Vec<Group>>(&text).map_err(|e| e.to_string())?);
    }
    if s.environment {
        groups
            .get_or_insert_with(Vec::new)
            .push(config::environment_group(&s.redactor));
    }
    Ok(Body::Configuration(groups))
}

/// The job that renders a configuration value into groups (JSON text).
pub(crate) fn config_job<T: serde::Serialize + Send + Sync + 'static>(
    value: T,
    redactor: Redactor,
) -> Arc<Job> {
    Job::new("Configuration", move || {
        let tree = config::to_value(&value)?;
        let groups = config::groups(&tree, &redactor);
        serde_json::to_string(&groups).map_err(|e| e.to_string())
    })
}
