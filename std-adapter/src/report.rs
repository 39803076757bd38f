//! Producing one report as model data ([`crate::model::Report`]): a capture
//! round (the core), symbolization, then every section in DESIGN.md order,
//! each isolated so that one failing part is shown as a failed section and
//! the rest still comes out. It knows nothing of formats: the model renders
//! itself (text in `model::text`, JSON as its serde form).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guru_core::format::{signal_name, write_escaped, write_utc};
use guru_core::render::{write_errno, write_stack_end_reason, write_unresponsive_thread};
use guru_core::write::{Dropped, write_reason};
use guru_core::{ModuleSet, RoundSummary, ThreadCapture, Trigger};

use crate::config::{self, Redactor};
use crate::frames::frame;
use crate::model::{self, Data, Kind};
use crate::package::Package;
use crate::procinfo;
use crate::sections::{self, Job, Outcome, panic_message};
pub(crate) use crate::state::ReporterState;
use crate::symbols;

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
    /// The watchdog: a missed heartbeat or a stalled tokio worker.
    Watchdog(Box<model::Stall>),
    /// A `guru dump` client asked on the dump socket (its pid and uid from
    /// `SO_PEERCRED`).
    Dump { pid: i32, uid: u32 },
    /// A fatal signal (the core's crash helper captured the round).
    Crash(guru_core::crash::CrashInfo),
    /// A panic (the panic hook, in the panicking thread).
    Panic(Box<PanicInfo>),
}

/// What the panic hook knows of a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PanicInfo {
    pub(crate) message: String,
    /// `file:line:column`, empty if unknown.
    pub(crate) location: String,
    pub(crate) tid: i32,
    pub(crate) thread: String,
    /// Panics not reported (rate limit) since the last panic report.
    pub(crate) unreported_before: u64,
    /// The panic reports' rate limit.
    pub(crate) interval: Duration,
}

/// A report as produced: the model, and what the round's summary said of
/// output dropped earlier (the writer acknowledges it once this report is
/// written whole).
#[derive(Debug, Clone)]
pub(crate) struct Produced {
    pub(crate) report: model::Report,
    pub(crate) output_dropped: Option<Dropped>,
}

/// What the trigger side (the reporter) tells this report.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Notes {
    /// File-trigger touches ignored since the last report (another user's
    /// file), and that file's owner.
    pub(crate) ignored_file_touches: (u64, Option<u32>),
    /// The thread that installed guru blocked the capture signal.
    pub(crate) capture_blocked_at_install: bool,
}

/// Everything copied out of a capture round.
pub(crate) struct Round {
    summary: RoundSummary,
    modules: &'static ModuleSet,
    capacity: usize,
    triggers: Vec<Trigger>,
    /// Threads without frames, and each one's raw return addresses.
    threads: Vec<(model::Thread, Vec<u64>)>,
}

impl Round {
    /// Moves thread `tid` first and marks it (the thread whose crash or
    /// panic made the report); `false` if the round does not have it.
    fn put_first(&mut self, tid: i32, mark: model::ThreadMark) -> bool {
        let Some(i) = self.threads.iter().position(|(t, _)| t.tid == tid) else {
            return false;
        };
        let (mut thread, frames) = self.threads.remove(i);
        if matches!(mark, model::ThreadMark::Crashed { .. }) {
            // Unwound by the crash helper from its saved registers.
            thread.state = "crashed".into();
            thread.writing_report = false;
        }
        thread.mark = Some(mark);
        self.threads.insert(0, (thread, frames));
        true
    }

    /// The crashed thread first, marked with its crash (a crash round).
    pub(crate) fn mark_crashed(&mut self, c: &guru_core::crash::CrashInfo) {
        let words = c.words();
        self.put_first(
            c.tid,
            model::ThreadMark::Crashed {
                signal: c.signal,
                signal_name: signal_name(c.signal).map(str::to_string),
                si_code: c.code,
                si_code_name: guru_core::crash::code_name(c.signal, c.code).map(str::to_string),
                fault_address: words.address.map(model::Hex),
            },
        );
    }
}

fn name_text(raw: &[u8]) -> String {
    let len = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let mut s = String::new();
    let _ = write_escaped(&mut s, &raw[..len]);
    s
}

fn utc(ns: u64) -> String {
    let mut s = String::new();
    let _ = write_utc(&mut s, ns);
    s
}

/// How long `collect` retries when another round (core-only
/// `guru_core::write_report`) is running.
const ROUND_BUSY_WAIT: Duration = Duration::from_secs(1);

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
        let result = guru_core::capture(trigger, |round| copy_round(engine, round, role));
        match result {
            Ok(round) => return Ok(round),
            Err(guru_core::Error::RoundInProgress) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The symbol warm-up that [`Builder::prewarm_symbols`](crate::Builder::prewarm_symbols)
/// runs at install, after the debug-info index: captures every thread once,
/// as a report would (a round that takes no report number and records no
/// trigger, `guru_core::capture_unnumbered`), and symbolizes every frame
/// into the symbolizer's cache, writing nothing. The line tables and
/// inlining trees a report parses on first use are then parsed already for
/// what the first report will show most of: guru's own threads, the
/// threads running at install, and the standard library's thread-start,
/// parking and channel code that threads started later share.
///
/// `report_path` (with this module's `collect_with`, `collect` and
/// `capture`) are the entry addresses of the functions on the
/// report-writing thread's own stack in every report, which the warm-up's
/// round, started from elsewhere, does not have on its stack: resolving an
/// address anywhere in a function parses that function's inlining tree.
///
/// Returns the frames symbolized; 0 if a round was running (a report asked
/// for at install: it pays for the parsing itself).
pub(crate) fn warm_symbols(
    state: &mut ReporterState,
    engine: &'static guru_core::Engine,
    report_path: &[usize],
) -> usize {
    let _unblocked = crate::sys::unblock_for_now(&[engine.capture_signal()]);
    let Ok(round) = guru_core::capture_unnumbered(|r| copy_round(engine, r, "the reporter")) else {
        return 0;
    };
    let mut stats = symbols::Stats::default();
    for (_, addresses) in &round.threads {
        state
            .symbolizer
            .symbolize_stack_in_batch(round.modules, addresses, &mut stats);
    }
    let own = [
        collect_with as *const () as usize,
        collect as *const () as usize,
        capture as *const () as usize,
    ];
    for &entry in report_path.iter().chain(&own) {
        // One at a time: the first address of a batch is not a return
        // address, and an entry point is not one.
        state
            .symbolizer
            .symbolize_stack_in_batch(round.modules, &[entry as u64], &mut stats);
    }
    stats.frames
}

/// Copies a finished round out of the core: each thread without frames
/// (symbolized later) and its raw addresses. `role` names what the thread
/// running the round is doing (`the reporter`, `the crash helper`, …).
pub(crate) fn copy_round(
    engine: &'static guru_core::Engine,
    round: &guru_core::CapturedRound<'_, '_>,
    role: &str,
) -> Round {
    let summary = *round.summary();
    let deadline_ms = round.deadline_ms();
    let mut triggers = Vec::new();
    round.for_each_recent_trigger(|t| triggers.push(*t));
    let threads = round
        .threads()
        .map(|t| match t {
            ThreadCapture::Captured(view) => {
                let initiator = view.tid == summary.initiator_tid;
                let mut state = String::new();
                if initiator {
                    // The thread running the round is not waiting in
                    // the system call it happens to be in (reading
                    // `/proc`): it is writing this report.
                    state = format!("{role}, writing this report");
                } else {
                    let _ = guru_core::capture::describe_syscall(view.summary.syscall, &mut state);
                }
                let mut end = String::new();
                let _ = write_stack_end_reason(&mut end, &view);
                let thread = model::Thread {
                    tid: view.tid,
                    name: name_text(&view.summary.name),
                    captured: true,
                    state,
                    pause_ns: view.summary.pause_ns,
                    writing_report: initiator,
                    frames: Vec::new(),
                    stack_end: (!end.is_empty()).then_some(end),
                    frames_scanned_from: (view.summary.scanned_from > 0)
                        .then_some(view.summary.scanned_from),
                    unresponsive: None,
                    elided: Vec::new(),
                    cpu_ns: (view.summary.cpu_ns != 0).then_some(view.summary.cpu_ns),
                    stack_hash: None,
                    same_stack: None,
                    stalled: false,
                    mark: None,
                    context: round
                        .context(&view)
                        .filter(|c| !c.is_empty())
                        .map(|c| context_of(&c)),
                };
                (thread, view.frames().collect())
            }
            ThreadCapture::Missing { tid, phase } => {
                let mut block = String::new();
                let _ = write_unresponsive_thread(&mut block, tid, phase, deadline_ms);
                let name = block.split('"').nth(1).unwrap_or("").to_string();
                let thread = model::Thread::not_captured(tid, name, block.trim().to_string());
                (thread, Vec::new())
            }
        })
        .collect();
    Round {
        summary,
        // The engine never frees a module set, and only the reporter lock's
        // holder refreshes them (the crash helper, whose round the reporter
        // copies, never does), so the current set is the one the round
        // used.
        modules: engine.module_set(),
        capacity: round.capacity(),
        triggers,
        threads,
    }
}

/// The model's copy of a thread's context as its capture handler copied
/// it (unmasked: `redact::redact_sections` masks it with the rest).
fn context_of(v: &guru_core::context::ContextView<'_>) -> model::ThreadContext {
    let label = |(key, value): (&str, &str)| model::Label {
        key: key.to_string(),
        value: value.to_string(),
    };
    if v.being_updated() {
        return model::ThreadContext {
            being_updated: true,
            ..model::ThreadContext::default()
        };
    }
    model::ThreadContext {
        being_updated: false,
        labels: v.labels().map(label).collect(),
        labels_not_kept: u64::from(v.labels_not_kept()),
        spans: v
            .spans()
            .map(|s| model::Span {
                name: s.name().to_string(),
                fields: s.fields().map(label).collect(),
            })
            .collect(),
        spans_not_kept: u64::from(v.spans_not_kept()),
        breadcrumbs: v
            .breadcrumbs()
            .map(|(age_ns, text)| model::Breadcrumb {
                age_ns,
                text: text.to_string(),
            })
            .collect(),
        breadcrumbs_dropped: v.breadcrumbs_dropped(),
    }
}

/// The model's trigger for what asked for the report.
fn trigger_of(source: &Source) -> model::Trigger {
    match source {
        Source::Signal(t) => model::Trigger::Signal {
            signal: t.signal,
            signal_name: signal_name(t.signal).map(str::to_string),
            si_code: t.code,
            sender_pid: t.sender_pid,
            sender_uid: t.sender_uid,
            time: utc(t.unix_ns),
        },
        Source::File(p) => model::Trigger::File {
            path: p.display().to_string(),
        },
        Source::Call => model::Trigger::Call,
        Source::Watchdog(stall) => model::Trigger::Watchdog((**stall).clone()),
        Source::Crash(c) => {
            let words = c.words();
            model::Trigger::Crash {
                signal: c.signal,
                signal_name: signal_name(c.signal).map(str::to_string),
                si_code: c.code,
                si_code_name: guru_core::crash::code_name(c.signal, c.code).map(str::to_string),
                fault_address: words.address.map(model::Hex),
                sender_pid: words.address.is_none().then_some(c.sender_pid),
                thread: c.tid,
                thread_name: name_text(&c.name),
                then_signal: (c.then_signal != 0).then_some(c.then_signal),
                then_signal_name: signal_name(c.then_signal).map(str::to_string),
                time: utc(c.unix_ns),
            }
        }
        Source::Panic(p) => model::Trigger::Panic {
            message: p.message.clone(),
            location: p.location.clone(),
            thread: p.tid,
            thread_name: p.thread.clone(),
            unreported_panics_before: p.unreported_before,
            min_interval_ms: u64::try_from(p.interval.as_millis()).unwrap_or(u64::MAX),
        },
        Source::Dump { pid, uid } => model::Trigger::Dump {
            client_pid: *pid,
            client_uid: *uid,
        },
    }
}

/// `None`, or why the core could not read a `/proc` file this round
/// (`"EMFILE (this process has no file descriptor left)"`).
fn proc_error(errno: i32) -> Option<String> {
    (errno != 0).then(|| {
        let mut text = String::new();
        let _ = write_errno(&mut text, errno);
        text
    })
}

/// The model's figures of a capture round.
fn round_figures(r: &RoundSummary) -> model::Round {
    let d = &r.output_dropped;
    model::Round {
        sequence: r.sequence,
        threads_listed: r.threads_listed,
        threads_captured: r.threads_captured,
        threads_unresponsive: r.threads_unresponsive,
        threads_not_signalled: r.threads_not_signalled,
        threads_left_out: r.threads_left_out,
        capture_ns: r.capture_ns,
        fanout_ns: r.fanout_ns,
        max_pause_ns: r.max_pause_ns,
        max_pause_tid: r.max_pause_tid,
        coalesced_triggers: r.coalesced_triggers,
        mappings_dropped: r.mappings_dropped,
        output_dropped: d.any().then(|| {
            let mut reason = String::new();
            let _ = write_reason(&mut reason, d.reason);
            model::OutputDropped {
                bytes: d.bytes,
                reports: d.reports,
                last_sequence: d.last_sequence,
                reason,
            }
        }),
        thread_list_error: proc_error(r.task_list_errno),
        thread_list_writer_shown: r.task_list_errno != 0 && r.initiator_added,
        maps_error: proc_error(r.maps_errno),
    }
}

/// The Modules section's data.
fn modules_data(set: &ModuleSet) -> model::Modules {
    model::Modules {
        modules: set
            .modules
            .iter()
            .map(|m| model::Module {
                path: String::from_utf8_lossy(&m.path).into_owned(),
                start: model::Hex(m.start),
                end: model::Hex(m.end),
                bias: Some(model::Hex(m.bias)),
                build_id: (!m.build_id.is_empty()).then(|| {
                    // One string, not one per byte.
                    const DIGITS: &[u8; 16] = b"0123456789abcdef";
                    let mut hex = String::with_capacity(2 * m.build_id.len());
                    for &b in m.build_id.iter() {
                        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
                        hex.push(char::from(DIGITS[usize::from(b & 0xf)]));
                    }
                    hex
                }),
                symbols: m.symbols.len(),
            })
            .collect(),
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
    notes: Notes,
) -> Produced {
    collect_with(state, settings, source, notes, None)
}

/// [`collect`], with the round already captured (`pre`: a crash round,
/// copied by [`copy_round`] from the core's crash helper).
pub(crate) fn collect_with(
    state: &mut ReporterState,
    settings: Option<&Settings>,
    source: Source,
    notes: Notes,
    pre: Option<Round>,
) -> Produced {
    let t0 = Instant::now();
    state.symbolizer.heavy_debug_info = settings.is_some_and(|s| s.heavy_debug_info);
    let engine = guru_core::engine().filter(|_| settings.is_some());
    // A report without a signal says what asked for it, in the recent
    // triggers as in "requested by".
    let request = |code| Trigger {
        unix_ns: guru_core::sys::realtime_ns(),
        code,
        ..Trigger::default()
    };
    let trigger = Some(match &source {
        Source::Signal(t) => *t,
        Source::File(_) => request(guru_core::trigger::CODE_FILE_TRIGGER),
        Source::Call => request(guru_core::trigger::CODE_CALL),
        Source::Watchdog(_) => request(guru_core::trigger::CODE_WATCHDOG),
        Source::Crash(c) => c.trigger(),
        Source::Panic(_) => request(guru_core::trigger::CODE_PANIC),
        Source::Dump { pid, uid } => Trigger {
            sender_pid: *pid,
            sender_uid: *uid,
            ..request(guru_core::trigger::CODE_DUMP)
        },
    });
    let role = match &source {
        Source::Call => "calling guru::report",
        // The panic hook writes the report in the panicking thread (its
        // state reads "panicking, writing this report").
        Source::Panic(_) => "panicking",
        _ => "the reporter",
    };
    let mut round = match (engine, pre) {
        (_, Some(pre)) => Ok(pre),
        (Some(e), None) => {
            e.refresh_modules();
            // Triggers the signal action could not put into the full pipe
            // were accepted all the same: count them into this report.
            guru_core::note_coalesced(crate::sys::take_pipe_overflow());
            capture(e, trigger, role).map(|mut r| {
                if let Source::Panic(p) = &source {
                    r.put_first(p.tid, model::ThreadMark::Panicking);
                }
                r
            })
        }
        (None, None) => {
            Err("guru is not installed: call guru::setup_autorun or guru::Builder::install".into())
        }
    };

    // Symbolize outside the round: other threads already run on. The raw
    // threads are moved out of the round, not copied.
    let mut sym_stats = symbols::Stats::default();
    let (sym_t0, sym_cpu0) = (Instant::now(), guru_core::sys::thread_cpu_ns());
    let mut threads = round.as_mut().map_err(|e| e.clone()).map(|r| {
        let modules = r.modules;
        let raw = std::mem::take(&mut r.threads);
        model::Threads {
            capacity: r.capacity,
            left_out: r.summary.threads_left_out,
            threads: raw
                .into_iter()
                .map(|(mut thread, addresses)| {
                    let symbolized = state.symbolizer.symbolize_stack_in_batch(
                        modules,
                        &addresses,
                        &mut sym_stats,
                    );
                    thread.frames = addresses
                        .iter()
                        .zip(symbolized)
                        .enumerate()
                        .map(|(n, (&address, mut s))| {
                            let module = s.module.take();
                            frame(n, address, module, s)
                        })
                        .collect();
                    thread
                })
                .collect(),
        }
    });
    sym_stats.ns += ns_since(sym_t0);
    sym_stats.cpu_ns += guru_core::sys::thread_cpu_ns().saturating_sub(sym_cpu0);
    // Compared with the previous report (stuck and spinning threads); an
    // automatic report's stalled thread first.
    if let (Ok(t), Ok(r)) = (threads.as_mut(), round.as_ref()) {
        state.stuck.annotate(
            &mut t.threads,
            r.summary.sequence,
            guru_core::sys::monotonic_ns(),
        );
        if let Source::Watchdog(stall) = &source {
            stalled_first(&mut t.threads, stall);
        }
    }
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

    out.push(model::Section::new(
        "Package",
        Kind::Package,
        match settings {
            Some(s) => Ok(Data::Package(Box::new(s.package.section(&s.service)))),
            None => Err(not_installed()),
        },
    ));
    out.push(model::Section::new(
        "Threads",
        Kind::Threads,
        threads.map(Data::Threads),
    ));
    #[cfg(feature = "tokio")]
    {
        // The Threads section just pushed: Green Threads reads it (a worker
        // stuck in tokio's dump machinery) and says how much later its own
        // figures were read.
        let threads = out.last().and_then(|s| match &s.content {
            model::Content::Ok(Data::Threads(t)) => Some(t),
            _ => None,
        });
        let captured = round.as_ref().ok().map(|r| r.summary.started_unix_ns);
        let green = crate::tokio::section(
            state,
            engine.map(|e| e.module_set()),
            &mut sym_stats,
            threads,
            captured,
        );
        out.extend(green);
    }
    let redactor = settings.map(|s| s.redactor.clone()).unwrap_or_default();
    let own = procinfo::Own::read();
    out.push(model::Section::new(
        "Processes",
        Kind::Processes,
        guarded(|| {
            let mut processes = procinfo::processes(&own)?;
            for e in &mut processes {
                e.cmdline = redactor.redact_command_line(&e.cmdline);
            }
            Ok(Data::Processes(model::Processes { processes }))
        }),
    ));

    let t_sections = Instant::now();
    let mut budget = settings.map_or(Duration::from_secs(2), |s| s.section_timeout);
    if matches!(source, Source::Crash(_)) {
        // The process dies after this report: sections get less.
        budget = budget.min(crate::crash::CRASH_SECTION_BUDGET);
    }
    // The configuration's `Serialize` and the registered sections go to the
    // section worker in one batch (one hand-off per report, not per section).
    let config_job = settings.and_then(|s| s.config.clone());
    let registered = sections::registered();
    let jobs: Vec<Arc<Job>> = config_job.iter().cloned().chain(registered).collect();
    let mut outcomes = state.runner.run_all(&jobs, budget).into_iter();
    let config_outcome = config_job.as_ref().and_then(|_| outcomes.next());
    out.push(model::Section::new(
        "Configuration",
        Kind::Configuration,
        match settings {
            Some(s) => configuration(s, config_outcome),
            None => Err(not_installed()),
        },
    ));
    let custom = jobs.iter().skip(usize::from(config_job.is_some()));
    for (job, outcome) in custom.zip(outcomes) {
        let data = match outcome {
            Outcome::Ok(text) => Ok(Data::Custom(model::Custom { text })),
            Outcome::Failed(why) => Err(why),
        };
        out.push(model::Section::new(&job.name, Kind::Custom, data));
    }
    let sections_ns = ns_since(t_sections);

    out.push(model::Section::new(
        "Process",
        Kind::Process,
        guarded(|| {
            let uptime = engine.map_or(0, |e| e.uptime_ns());
            Ok(Data::Process(Box::new(procinfo::process_info(
                uptime, &own,
            ))))
        }),
    ));
    out.push(model::Section::new(
        "Modules",
        Kind::Modules,
        match &round {
            Ok(r) => Ok(Data::Modules(modules_data(r.modules))),
            Err(e) => Err(e.clone()),
        },
    ));
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
    let blocking_tids = capture_signal.map_or_else(Vec::new, |sig| {
        unresponsive_tids
            .iter()
            .copied()
            .filter(|&tid| {
                crate::sys::task_blocked_mask(tid)
                    .is_some_and(|m| (1..=64).contains(&sig) && m & (1u64 << (sig - 1)) != 0)
            })
            .collect()
    });
    let (ignored, owner_uid) = notes.ignored_file_touches;
    let figures = model::Figures {
        requested_by: Some(trigger_of(&source)),
        round: round.as_ref().ok().map(|r| round_figures(&r.summary)),
        capacity: round.as_ref().map_or(0, |r| r.capacity),
        recent_triggers: recent_triggers
            .iter()
            .map(|t| model::RecentTrigger {
                time: utc(t.unix_ns),
                signal: t.signal,
                si_code: t.code,
                sender_pid: t.sender_pid,
                sender_uid: t.sender_uid,
                started_report: t.started_report,
            })
            .collect(),
        unresponsive_threads: unresponsive_tids,
        symbolization: Some(model::Symbolization {
            frames: sym_stats.frames,
            cached: sym_stats.cached,
            modules_examined_now: sym_stats.modules_loaded,
            modules_with_debug_info: sym_stats.modules_with_debug_info,
            ns: sym_stats.ns,
            cpu_ns: sym_stats.cpu_ns,
            rss_growth_bytes: sym_stats.rss_growth,
            no_debug_info: state.symbolizer.unavailable(),
        }),
        sections_ns: Some(sections_ns),
        total_ns: Some(ns_since(t0)),
        trigger_settings: settings.map(|s| model::TriggerSettings {
            signal: s.trigger_signal,
            min_interval_ns: u64::try_from(s.min_interval.as_nanos()).unwrap_or(u64::MAX),
        }),
        ignored_file_touches: (ignored > 0).then_some(model::IgnoredTouches {
            count: ignored,
            owner_uid,
        }),
        blocking_capture: capture_signal
            .filter(|_| !blocking_tids.is_empty())
            .map(|signal| model::BlockingCapture {
                signal,
                rtmin_offset: signal - guru_core::sys::sigrtmin(),
                blocked_at_install: notes.capture_blocked_at_install,
                tids: blocking_tids,
            }),
        watchdog: crate::watchdog::take_notes(matches!(source, Source::Watchdog(_))),
    };
    out.push(model::Section::new(
        "Report",
        Kind::Report,
        Ok(Data::Report(Box::new(figures))),
    ));

    // Registered sections' text, every section's error and the threads'
    // context are application text too: masked like the configuration.
    crate::redact::redact_sections(&mut out, &redactor);

    Produced {
        report: model::Report {
            schema: model::SCHEMA.to_string(),
            pid,
            sequence,
            time: utc(started),
            time_unix_ns: started,
            trigger: trigger_of(&source),
            sections: out,
            read_from_text: false,
        },
        output_dropped: round.as_ref().ok().map(|r| r.summary.output_dropped),
    }
}

/// Puts the stalled thread first and marks it.
fn stalled_first(threads: &mut Vec<model::Thread>, stall: &model::Stall) {
    let Some(tid) = stall.tid else { return };
    if let Some(i) = threads.iter().position(|t| t.tid == tid) {
        let mut t = threads.remove(i);
        t.stalled = true;
        threads.insert(0, t);
    }
}

/// The Configuration section from the outcome of the configuration's job
/// (its `Serialize` runs on the section worker: it is application code and
/// may panic or block), `None` without a configuration.
fn configuration(s: &Settings, outcome: Option<Outcome>) -> Result<Data, String> {
    let mut groups = None;
    if let Some(outcome) = outcome {
        let text = match outcome {
            Outcome::Ok(text) => text,
            Outcome::Failed(why) => return Err(why),
        };
        groups = Some(
            serde_json::from_str::<Vec<model::ConfigGroup>>(&text).map_err(|e| e.to_string())?,
        );
    }
    if s.environment {
        groups
            .get_or_insert_with(Vec::new)
            .push(config::environment_group(&s.redactor));
    }
    Ok(Data::Configuration(model::Configuration { groups }))
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
