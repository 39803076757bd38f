//! Installation ([`Builder`], [`setup_autorun`]), the reporter thread and
//! on-demand reports ([`report`]).
//!
//! The trigger signal's action (registered with `signal-hook-registry`, so
//! it chains with other users of the signal) only writes a 28-byte record —
//! signal, sender pid/uid, time — into a non-blocking self-pipe; when the
//! pipe is full it counts the trigger instead, and the count is added to the
//! next report's coalesced triggers. The `guru-reporter` thread sleeps in
//! `poll(2)` on that pipe and, if a file trigger is configured, on an
//! inotify descriptor: no timer, no wake-up, no CPU while idle. When woken
//! it drains every pending record (the first starts the report, the others
//! are counted as coalesced), runs a capture round through the core,
//! symbolizes, produces the sections and writes the report.
//!
//! The rate limit, the file trigger's rules, `fork` and blocked signal
//! masks are described in the crate docs.
//!
//! Size: over 600 lines because installation, its validation and the
//! reporter thread's loop share one state (`INSTALLED`, the pipe, the
//! rate limit); about a third is its unit tests.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{self, Redactor};
use crate::error::Error;
pub use crate::model::Format;
use crate::output;
use crate::package::Package;
use crate::report::{self, Notes, ReporterState, Settings, Source};
use crate::sections::Job;
use crate::sys::{self, RECORD_LEN, TriggerRecord};

/// Installed configuration and output settings.
#[derive(Debug)]
struct Installed {
    settings: Arc<Settings>,
    format: Format,
    log_dir: Option<Arc<output::LogDir>>,
    file_service: String,
    output_timeout: Duration,
    /// The journal socket, with `Builder::journald`.
    journald: Option<PathBuf>,
}

/// Set while a [`Guard`] lives.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether this adapter installed the core engine (it is never uninstalled;
/// a later `install` reuses it).
static CORE_OURS: AtomicBool = AtomicBool::new(false);
static INSTALLED: Mutex<Option<Installed>> = Mutex::new(None);
/// Held while a report is produced: reports are serialized. Each process
/// has its own (a forked child must not wait for a lock that a thread of its
/// parent held at the fork).
static STATE: sys::ProcessLocal<ReporterState> = sys::ProcessLocal::new();
/// The trigger signal of the live guard (0: none), for the fork child
/// handler.
static TRIGGER_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Whether the thread that installed guru blocked the capture signal.
static CAPTURE_BLOCKED_AT_INSTALL: AtomicBool = AtomicBool::new(false);
/// File-trigger touches ignored since the last report (file not ours).
static FILE_TOUCHES_IGNORED: AtomicU64 = AtomicU64::new(0);
/// Owner uid of the last ignored trigger file (`u64::MAX`: none).
static FILE_IGNORED_OWNER: AtomicU64 = AtomicU64::new(u64::MAX);
/// Dispositions of trigger signals from before guru, to restore.
static SAVED_ACTIONS: Mutex<Vec<SavedAction>> = Mutex::new(Vec::new());

/// The default of [`Builder::min_interval`].
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How long dropping a [`Guard`] waits for the reporter thread to stop
/// (it finishes the report in progress first); after that the thread is
/// left to finish on its own, with a note on stderr.
pub const GUARD_DROP_WAIT: Duration = Duration::from_secs(3);

/// A guard dropped sooner than this after install was most likely dropped
/// by mistake (`let _ = install()?`): its drop says so on stderr.
const EARLY_DROP: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct SavedAction {
    signal: i32,
    /// What handled the signal before guru first registered it.
    previous: sys::Disposition,
    /// signal-hook-registry's handler (it installs it only once per signal).
    registry: sys::Disposition,
}

thread_local! {
    /// The `INSTALLED` lock, held across `fork()` by the forking thread.
    static FORK_HELD: RefCell<Option<MutexGuard<'static, Option<Installed>>>> =
        const { RefCell::new(None) };
}

/// `pthread_atfork` prepare: hold `INSTALLED` (only ever held briefly) so
/// the child's copy is not locked by a thread it does not have.
extern "C" fn before_fork() {
    let g = lock(&INSTALLED);
    let _ = FORK_HELD.try_with(|h| *h.borrow_mut() = Some(g));
}

extern "C" fn after_fork_parent() {
    let _ = FORK_HELD.try_with(|h| drop(h.borrow_mut().take()));
}

/// `pthread_atfork` child: release `INSTALLED`, and point the trigger signal
/// at the core's own handler: the reporter thread does not exist here, and
/// the signal action's pipe is the parent's.
extern "C" fn after_fork_child() {
    let _ = FORK_HELD.try_with(|h| drop(h.borrow_mut().take()));
    let signal = TRIGGER_SIGNAL.load(Ordering::Acquire);
    if signal != 0 {
        let _ = guru_core::serve_trigger_in_core(signal);
    }
}

/// Whether the installing thread blocked the capture signal.
fn capture_blocked_at_install() -> bool {
    CAPTURE_BLOCKED_AT_INSTALL.load(Ordering::Relaxed)
}

/// Takes the count of ignored file-trigger touches and the last file owner.
fn take_ignored_file_touches() -> (u64, Option<u32>) {
    let n = FILE_TOUCHES_IGNORED.swap(0, Ordering::Relaxed);
    let owner = FILE_IGNORED_OWNER.load(Ordering::Relaxed);
    (n, u32::try_from(owner).ok().filter(|_| n > 0))
}

/// Registers the trigger action, remembering what handled the signal before
/// so that dropping the guard can put it back.
fn register_trigger(signal: i32, pipe_write: i32) -> std::io::Result<signal_hook_registry::SigId> {
    let before = sys::disposition(signal)?;
    let id = sys::register_trigger(signal, pipe_write)?;
    let now = sys::disposition(signal)?;
    let mut saved = lock(&SAVED_ACTIONS);
    match saved.iter_mut().find(|s| s.signal == signal) {
        None => saved.push(SavedAction {
            signal,
            previous: before,
            registry: now,
        }),
        Some(s) if !now.same_handler(&s.registry) => {
            // An earlier guard put the previous disposition back, and the
            // registry installs its handler only once per signal: put it in
            // place again (what is there now is what to restore next time).
            s.previous = now;
            if let Err(e) = sys::set_disposition(signal, &s.registry) {
                signal_hook_registry::unregister(id);
                return Err(e);
            }
        }
        Some(_) => {}
    }
    Ok(id)
}

/// Puts back what handled `signal` before guru (unless something else
/// replaced guru's handler since, except in a forked child, where guru put
/// the core's handler there itself).
fn restore_disposition(signal: i32, in_child: bool) {
    let saved = lock(&SAVED_ACTIONS);
    let Some(s) = saved.iter().find(|s| s.signal == signal) else {
        return;
    };
    let ours = sys::disposition(signal).is_ok_and(|now| now.same_handler(&s.registry));
    if (ours || in_child) && !s.previous.same_handler(&s.registry) {
        let _ = sys::set_disposition(signal, &s.previous);
    }
}

type ConfigMaker = Box<dyn FnOnce(Redactor) -> Result<Arc<Job>, Error> + Send>;

/// Configures and installs guru. Everything is optional; the defaults are
/// those of [`setup_autorun`]: SIGUSR2, text, stderr.
///
/// ```no_run
/// #[derive(serde::Serialize)]
/// struct Settings { listen: String, db_password: guru::Secret<String> }
///
/// let settings = Settings { listen: "0.0.0.0:8080".into(), db_password: guru::Secret::new("hunter2".into()) };
/// let _guard = guru::Builder::new(guru::package!())
///     .service_name("my-daemon")
///     .config(settings)
///     .log_dir("/var/log/my-daemon")
///     .format(guru::Format::Json)
///     .install()?;
/// # Ok::<(), guru::Error>(())
/// ```
pub struct Builder {
    package: Package,
    service: Option<String>,
    config: Option<ConfigMaker>,
    log_dir: Option<PathBuf>,
    output_timeout: Duration,
    format: Format,
    signal: Option<i32>,
    file_trigger: Option<PathBuf>,
    section_timeout: Duration,
    secret_keys: Vec<String>,
    environment: bool,
    heavy_debug_info: bool,
    prewarm_symbols: bool,
    min_interval: Duration,
    watchdog_min_interval: Duration,
    core: guru_core::Options,
    panic_reports: bool,
    dump_socket: bool,
    journald: Option<PathBuf>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("package", &self.package)
            .field("service", &self.service)
            .field("config", &self.config.is_some())
            .field("log_dir", &self.log_dir)
            .field("format", &self.format)
            .field("signal", &self.signal)
            .field("file_trigger", &self.file_trigger)
            .field("section_timeout", &self.section_timeout)
            .field("secret_keys", &self.secret_keys)
            .field("environment", &self.environment)
            .field("min_interval", &self.min_interval)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A builder for `package` (use [`guru::package!()`](crate::package)).
    pub fn new(package: Package) -> Builder {
        Builder {
            package,
            service: None,
            config: None,
            log_dir: None,
            output_timeout: output::DEFAULT_OUTPUT_TIMEOUT,
            format: Format::Text,
            signal: Some(libc::SIGUSR2),
            file_trigger: None,
            section_timeout: Duration::from_secs(2),
            secret_keys: config::DEFAULT_SECRET_KEYS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            environment: false,
            heavy_debug_info: false,
            prewarm_symbols: true,
            min_interval: DEFAULT_MIN_INTERVAL,
            watchdog_min_interval: crate::watchdog::DEFAULT_WATCHDOG_MIN_INTERVAL,
            dump_socket: true,
            journald: None,
            core: guru_core::Options {
                trigger_signal: None,
                ..guru_core::Options::default()
            },
            panic_reports: true,
        }
    }

    /// The service name in the Package section and in report file names
    /// (default: the package name).
    pub fn service_name(mut self, name: impl Into<String>) -> Builder {
        self.service = Some(name.into());
        self
    }

    /// The configuration shown in the Configuration section: any
    /// `serde::Serialize` value, serialized afresh for each report (so a
    /// value with interior mutability shows its current state). Use
    /// [`Secret`](crate::Secret) for secrets; keys matching the secret-key
    /// rules are masked too. It is serialized once at `install`, and an
    /// error there is returned as [`Error::Config`].
    ///
    /// Configuration the application shares or changes at run time is
    /// passed as it is kept: `Arc<Settings>` (guru turns on serde's `rc`
    /// feature, so `Arc<T>` and `Rc<T>` serialize as `T`), or
    /// `Arc<RwLock<Settings>>` / `Arc<Mutex<Settings>>` for settings that
    /// are reloaded — each report then shows the values of that moment,
    /// taking the read lock in the reporter thread only while it serializes
    /// (a poisoned lock makes the section fail, with the reason).
    ///
    /// ```
    /// use std::sync::{Arc, RwLock};
    ///
    /// #[derive(serde::Serialize)]
    /// struct Settings { workers: u32, api_token: guru::Secret<String> }
    ///
    /// let settings = Arc::new(RwLock::new(Settings {
    ///     workers: 4,
    ///     api_token: guru::Secret::new("t0k3n".into()),
    /// }));
    /// let guard = guru::Builder::new(guru::package!())
    ///     .without_signal()
    ///     .config(Arc::clone(&settings))
    ///     .install()?;
    /// assert!(guru::report().contains("workers = 4"));
    ///
    /// settings.write().unwrap().workers = 16; // a reload
    /// let report = guru::report();
    /// assert!(report.contains("workers = 16"), "{report}");
    /// assert!(!report.contains("t0k3n"));
    /// guard.uninstall();
    /// # Ok::<(), guru::Error>(())
    /// ```
    pub fn config<T: Serialize + Send + Sync + 'static>(mut self, config: T) -> Builder {
        self.config = Some(Box::new(move |redactor: Redactor| {
            // Checked once here; a `Serialize` that panics is an error too.
            let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                config::to_value(&config)
            }));
            match check {
                Ok(Ok(_)) => Ok(report::config_job(config, redactor)),
                Ok(Err(e)) => Err(Error::Config(e)),
                Err(p) => Err(Error::Config(format!(
                    "its Serialize panicked: {}",
                    crate::sections::panic_message(p.as_ref())
                ))),
            }
        }));
        self
    }

    /// Write each report to a new file in `dir` instead of stderr. A
    /// missing directory is created at `install` (mode 0700, parents too);
    /// it must be writable, and is opened once there: replacing the path
    /// later (say, by a symlink) does not redirect reports. One line on
    /// stderr says where each report went.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.log_dir = Some(dir.into());
        self
    }

    /// The longest time writing one report may take, to stderr or to a
    /// file (default 3 s, between 1 ms and 1 hour). A reader that does not
    /// drain stderr in that time gets the rest of the report dropped; the
    /// next report says how much and why. A report being written when the
    /// [`Guard`] is dropped is waited for at most this long for its output.
    pub fn output_timeout(mut self, timeout: Duration) -> Builder {
        self.output_timeout = timeout;
        self
    }

    /// Text (default) or JSON.
    pub fn format(mut self, format: Format) -> Builder {
        self.format = format;
        self
    }

    /// The trigger signal (default `SIGUSR2`).
    pub fn signal(mut self, signal: i32) -> Builder {
        self.signal = Some(signal);
        self
    }

    /// No trigger signal: reports come only from the file trigger or
    /// [`report`].
    pub fn without_signal(mut self) -> Builder {
        self.signal = None;
        self
    }

    /// Touching `path` (creating it, writing it, changing its time stamp or
    /// moving a file onto it) triggers a report, like oslo's
    /// `file_event_handler`. Watched with inotify (the file itself, and its
    /// directory for the file's creation); the directory must exist at
    /// `install`, the file need not. Touches of a file owned by another user
    /// (not this process's uid, nor root) are ignored and counted; reports
    /// are rate-limited ([`Builder::min_interval`]). Put it in a directory
    /// other users cannot write (e.g. under `$XDG_RUNTIME_DIR` or a 0700
    /// directory): in `/tmp` anyone can create the name first.
    pub fn file_trigger(mut self, path: impl Into<PathBuf>) -> Builder {
        self.file_trigger = Some(path.into());
        self
    }

    /// Time budget of each registered section and of the configuration's
    /// serialization (default 2 s). One that overruns is shown as failed.
    pub fn section_timeout(mut self, timeout: Duration) -> Builder {
        self.section_timeout = timeout;
        self
    }

    /// Replaces the secret-name rules (default
    /// [`DEFAULT_SECRET_KEYS`](crate::DEFAULT_SECRET_KEYS)): a configuration
    /// key, environment variable, command-line flag or `name=value`
    /// parameter whose name matches one of them by words, ignoring case
    /// (`api_key` matches `apiKey` and `X-API-KEY`, not `keyspace`; a rule
    /// ending in `$` only at the end of the name), is shown as `***`.
    /// Extend the defaults with
    /// `.secret_keys(guru::DEFAULT_SECRET_KEYS.iter().chain(&["pin$"]))`.
    /// Values are scanned for credential shapes whatever the rules.
    pub fn secret_keys<S: AsRef<str>>(mut self, rules: impl IntoIterator<Item = S>) -> Builder {
        self.secret_keys = rules.into_iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// Also show the environment variables (off by default), redacted like
    /// the configuration.
    pub fn environment(mut self, show: bool) -> Builder {
        self.environment = show;
        self
    }

    /// Also symbolize from separate debug files (`/usr/lib/debug/.build-id`)
    /// and compressed DWARF (off by default). Their first use decompresses
    /// or parses whole sections: hundreds of milliseconds and tens of MB for
    /// a distribution's libc, paid by the first report that shows one of its
    /// frames. Without it those frames show the ELF symbol and offset.
    pub fn heavy_debug_info(mut self, enable: bool) -> Builder {
        self.heavy_debug_info = enable;
        self
    }

    /// Warm the symbols up in the reporter thread right after installation
    /// (on by default), so the first report does not pay for it:
    ///
    /// 1. index the loaded modules' debug info (addr2line's table of
    ///    compilation units and their address ranges);
    /// 2. capture every thread once — a round like a report's (each thread
    ///    gets the capture signal and unwinds itself, microseconds each) that
    ///    writes nothing, takes no report number and records no trigger —
    ///    and resolve every frame, which parses the line tables and inlining
    ///    trees of the units on those stacks: guru's own threads, the
    ///    threads alive at install, and the standard library's thread-start,
    ///    parking and channel code that threads started later share.
    ///
    /// On the benchmark fixture (64 threads) this takes about 30 ms of the
    /// reporter thread's CPU and 9 MiB at install, and the first report's CPU
    /// drops from 16 ms to 5 ms (BENCHMARKS.md has this run's figures); the
    /// mapped debug sections' pages are given back afterwards, as after a
    /// report. Units no warm-up stack touched are parsed on first use. A
    /// report asked for while the warm-up runs waits for it. Turn it off
    /// where startup CPU or memory matters more than the first report's
    /// latency, or where no thread may see a signal before the first report.
    pub fn prewarm_symbols(mut self, enable: bool) -> Builder {
        self.prewarm_symbols = enable;
        self
    }

    /// The least time between the starts of two reports asked for by a
    /// trigger (signal or file; default [`DEFAULT_MIN_INTERVAL`], 1 s; at
    /// most 1 hour; `Duration::ZERO` for none). Triggers that come sooner
    /// are held, and one report comes for them when the interval has
    /// passed: the first starts it, the others are counted as coalesced
    /// (see [the rate limit](crate#rate-limit)). [`report`] is not limited.
    pub fn min_interval(mut self, interval: Duration) -> Builder {
        self.min_interval = interval;
        self
    }

    /// The least time between the starts of two automatic reports (missed
    /// heartbeats, stalled tokio workers; default
    /// [`DEFAULT_WATCHDOG_MIN_INTERVAL`](crate::DEFAULT_WATCHDOG_MIN_INTERVAL),
    /// 30 s; at most 1 hour). Shared by every automatic trigger; an
    /// automatic report also waits for [`Builder::min_interval`] after any
    /// triggered report. A stall that ends before the limit lets its report
    /// start is counted as suppressed in the next report (see
    /// [the watchdog](crate::watchdog#rate-limit)).
    pub fn watchdog_min_interval(mut self, interval: Duration) -> Builder {
        self.watchdog_min_interval = interval;
        self
    }

    /// Crash reports (default on): a fatal signal (SIGSEGV, SIGBUS, SIGILL,
    /// SIGFPE, SIGABRT, SIGSYS) makes a report before the process dies as
    /// it would have (see [crash reports](crate#crash-and-panic-reports)).
    /// Sets `guru_core::Options::crash_reports`: it takes effect at the
    /// first install in a process only.
    pub fn crash_reports(mut self, enable: bool) -> Builder {
        self.core.crash_reports = enable;
        self
    }

    /// The most a crash report may take before the process dies anyway
    /// (default 3 s; 10 ms to 10 min). The std adapter's report gets two
    /// thirds of it; the core's report (no allocation) the rest.
    pub fn crash_deadline(mut self, deadline: Duration) -> Builder {
        self.core.crash_deadline_ms = u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX);
        self
    }

    /// Panic reports (default on): a panic hook, chained after the previous
    /// one, makes a report with the panic's message and location (see
    /// [panic reports](crate#crash-and-panic-reports)).
    pub fn panic_reports(mut self, enable: bool) -> Builder {
        self.panic_reports = enable;
        self
    }

    /// Serve `guru dump <pid>` on a per-process unix socket (on by
    /// default): see [`dump_socket`](crate::dump_socket) for where, who may
    /// connect and the bounds. `false`: no socket; `guru dump` then says how
    /// else to get a report.
    pub fn dump_socket(mut self, enable: bool) -> Builder {
        self.dump_socket = enable;
        self
    }

    /// Write each report as one journal entry through the journal's native
    /// protocol (off by default) instead of the configured output: see
    /// [`journald`](crate::journald). Where the journal socket is absent,
    /// reports go to the configured output with one line saying why.
    pub fn journald(mut self, enable: bool) -> Builder {
        self.journald = if enable {
            Some(PathBuf::from(crate::journald::JOURNAL_SOCKET))
        } else {
            None
        };
        self
    }

    /// [`Builder::journald`] to another socket than
    /// `/run/systemd/journal/socket` (a test's, a container's bind mount).
    pub fn journald_socket(mut self, path: impl Into<PathBuf>) -> Builder {
        self.journald = Some(path.into());
        self
    }

    /// Options of the capture engine (round deadline, thread and frame
    /// capacity, capture signal). `trigger_signal` is ignored: the adapter
    /// installs its own trigger. They take effect at the first install in a
    /// process only (the engine is never uninstalled).
    pub fn core_options(mut self, options: guru_core::Options) -> Builder {
        self.core = guru_core::Options {
            trigger_signal: None,
            crash_reports: self.core.crash_reports && options.crash_reports,
            ..options
        };
        self
    }

    /// Installs guru: the capture engine, the trigger signal's action, the
    /// file trigger and the reporter thread. Returns a guard that uninstalls
    /// them when dropped: bind it for the life of the program
    /// (`let _guard = ...`; `let _ = ...` drops it at once, which the drop
    /// then reports on stderr), or call [`Guard::keep`]. A second install
    /// while a guard lives is [`Error::AlreadyInstalled`].
    ///
    /// If the installing thread blocks the capture signal (an application
    /// that blocks every signal for `sigwait`/`signalfd` first), a warning
    /// on stderr says so: threads started from it inherit the mask and do
    /// not answer (see [blocked signals](crate#blocked-signals)).
    #[must_use = "the Guard uninstalls guru when dropped: bind it (`let _guard = ...`) or call `.keep()`"]
    pub fn install(self) -> Result<Guard, Error> {
        if ACTIVE
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::AlreadyInstalled);
        }
        match self.install_inner() {
            Ok(g) => Ok(g),
            Err(e) => {
                // Taken out under the lock, dropped outside it (the lock
                // is also taken around fork(): never hold it while
                // application code, such as a configuration's Drop, runs).
                let installed = lock(&INSTALLED).take();
                drop(installed);
                ACTIVE.store(false, Ordering::Release);
                Err(e)
            }
        }
    }

    fn install_inner(self) -> Result<Guard, Error> {
        if self.section_timeout.is_zero() || self.section_timeout > Duration::from_secs(3600) {
            return Err(Error::InvalidOption(
                "section_timeout must be between 1 ns and 1 hour",
            ));
        }
        if self.min_interval > Duration::from_secs(3600) {
            return Err(Error::InvalidOption("min_interval must be at most 1 hour"));
        }
        if self.watchdog_min_interval > Duration::from_secs(3600) {
            return Err(Error::InvalidOption(
                "watchdog_min_interval must be at most 1 hour",
            ));
        }
        if self.output_timeout < Duration::from_millis(1)
            || self.output_timeout > Duration::from_secs(3600)
        {
            return Err(Error::InvalidOption(
                "output_timeout must be between 1 ms and 1 hour",
            ));
        }
        let service = self
            .service
            .clone()
            .unwrap_or_else(|| self.package.name.clone());
        let file_service = output::sanitize_service(&service);
        if file_service.is_empty() {
            return Err(Error::InvalidOption("service_name must not be empty"));
        }
        if let Some(s) = self.signal.filter(|&s| sys::is_forbidden_trigger(s)) {
            return Err(Error::InvalidSignal(s));
        }
        let log_dir = self.log_dir.as_deref().map(check_log_dir).transpose()?;
        let watch = self.file_trigger.as_deref().map(watch_file).transpose()?;
        let redactor = Redactor::new(&self.secret_keys);
        let config = self.config.map(|make| make(redactor.clone())).transpose()?;

        let engine = match guru_core::engine() {
            Some(e) if CORE_OURS.load(Ordering::Acquire) => e,
            Some(_) => return Err(Error::CoreInstalledElsewhere),
            None => {
                let e = guru_core::install(self.core)?;
                CORE_OURS.store(true, Ordering::Release);
                e
            }
        };
        if self.signal == Some(engine.capture_signal()) {
            return Err(Error::InvalidSignal(engine.capture_signal()));
        }
        static AT_FORK: Once = Once::new();
        AT_FORK.call_once(|| sys::at_fork(before_fork, after_fork_parent, after_fork_child));
        let capture_signal = engine.capture_signal();
        let blocked = sys::thread_blocks(capture_signal);
        CAPTURE_BLOCKED_AT_INSTALL.store(blocked, Ordering::Relaxed);
        if blocked {
            eprintln!(
                "guru: warning: the thread installing guru blocks the capture signal {} \
                 (signal {capture_signal}); threads it starts inherit the mask and will not \
                 answer, so reports will list them as unresponsive. Unblock it in the \
                 application's threads (pthread_sigmask), or install guru before blocking \
                 signals, or choose another Options::capture_signal.",
                signal_label(capture_signal)
            );
        }

        let settings = Arc::new(Settings {
            package: self.package,
            service,
            config,
            redactor,
            environment: self.environment,
            section_timeout: self.section_timeout,
            heavy_debug_info: self.heavy_debug_info,
            trigger_signal: self.signal,
            min_interval: self.min_interval,
        });
        *lock(&INSTALLED) = Some(Installed {
            settings,
            format: self.format,
            log_dir,
            file_service,
            output_timeout: self.output_timeout,
            journald: self.journald.clone(),
        });

        let (pipe_read, pipe_write) = sys::pipe().map_err(|source| Error::Io {
            operation: "pipe2 (reporter wake-up pipe)",
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let done = Arc::new(Done::default());
        let thread_done = done.clone();
        let prewarm = self.prewarm_symbols;
        let trigger_signal = self.signal.unwrap_or(0);
        let min_interval = self.min_interval;
        let watchdog_interval = self.watchdog_min_interval;
        crate::watchdog::set_wake_fd(pipe_write.as_raw_fd());
        let dump = if self.dump_socket {
            match crate::dump_socket::Server::start() {
                Ok(s) => Some(s),
                Err(why) => {
                    eprintln!(
                        "guru: no dump socket (guru dump will not reach this process): {why}"
                    );
                    None
                }
            }
        } else {
            None
        };
        // guru's own section worker starts now, not during the first report
        // (which would then count one thread more in Process than it lists).
        // If it cannot start, the first report tries again and says why.
        let _ = STATE
            .lock()
            .get_or_insert_with(ReporterState::default)
            .runner
            .start();
        let (crash_reports, panic_reports) = (self.core.crash_reports, self.panic_reports);
        let thread = std::thread::Builder::new()
            .name("guru-reporter".into())
            .spawn(move || {
                let _done = SetOnDrop(thread_done);
                // Whatever mask this thread inherited: it must capture
                // itself, and it takes the trigger signal if every
                // application thread blocks it.
                sys::unblock_in_this_thread(&[capture_signal, trigger_signal]);
                if prewarm {
                    prewarm_symbols(engine);
                }
                let hook = crate::watchdog::Hook::new(watchdog_interval, min_interval);
                reporter_loop(&pipe_read, watch, &thread_stop, min_interval, &hook, dump)
            })
            .map_err(|source| {
                // Taken out under the lock, dropped outside it (the lock
                // is also taken around fork(): never hold it while
                // application code, such as a configuration's Drop, runs).
                let installed = lock(&INSTALLED).take();
                drop(installed);
                crate::watchdog::clear_wake_fd();
                Error::Io {
                    operation: "spawn guru-reporter",
                    source,
                }
            })?;
        let mut guard = Guard {
            signal: None,
            pipe_write,
            stop,
            done,
            thread: Some(thread),
            owner_pid: guru_core::sys::getpid(),
            installed_at: Instant::now(),
            quiet: true,
        };
        if let Some(signal) = self.signal {
            let id = register_trigger(signal, guard.pipe_write.as_raw_fd()).map_err(|source| {
                Error::Io {
                    operation: "sigaction (trigger signal)",
                    source,
                }
            })?;
            guard.signal = Some((signal, id));
            TRIGGER_SIGNAL.store(signal, Ordering::Release);
        }
        crate::crash::install(guard.pipe_write.as_raw_fd(), crash_reports, panic_reports);
        guard.quiet = false;
        Ok(guard)
    }
}

/// Installs guru with the defaults: `SIGUSR2` writes a text report to
/// stderr. The oslo.reports entry point:
///
/// ```no_run
/// let _guard = guru::setup_autorun(guru::package!())?;
/// // ... the daemon's main loop ...
/// # Ok::<(), guru::Error>(())
/// ```
///
/// Calling it again while the guard lives returns
/// [`Error::AlreadyInstalled`] instead of installing a second handler.
pub fn setup_autorun(package: Package) -> Result<Guard, Error> {
    Builder::new(package).install()
}

/// Keeps guru installed; dropping it removes the signal action and the file
/// trigger, puts back what handled the trigger signal before (its default
/// action, usually), and stops the reporter thread after the report in
/// progress, if any — waiting at most [`GUARD_DROP_WAIT`]: a reporter still
/// busy then (a blocked output, a section that ignores its time budget) is
/// left to finish on its own, and a line on stderr says so (a later
/// install's reports then wait until it has finished). The capture
/// engine stays (signal handlers may still run), and a later `install`
/// reuses it.
///
/// Dropped less than a second after install (`let _ = install()?` drops it
/// at once), it says on stderr that guru is uninstalled again. Use
/// [`Guard::keep`] to stay installed for the life of the process, and
/// [`Guard::uninstall`] to uninstall on purpose without that line.
///
/// Putting back the previous disposition assumes guru is the only user of
/// the signal through `signal-hook-registry`: an action someone else
/// registered on the same signal through it after guru is not called any
/// more once the guard is dropped.
///
/// In a forked child (see [fork](crate#fork)) dropping the parent's guard
/// only uninstalls the child's trigger; it does not wait for the parent's
/// reporter thread, which the child does not have.
#[must_use = "dropping the guard uninstalls guru at once: bind it (`let _guard = ...`) or call `.keep()`"]
#[derive(Debug)]
pub struct Guard {
    signal: Option<(i32, signal_hook_registry::SigId)>,
    pipe_write: OwnedFd,
    stop: Arc<AtomicBool>,
    done: Arc<Done>,
    thread: Option<JoinHandle<()>>,
    owner_pid: i32,
    installed_at: Instant,
    quiet: bool,
}

/// Set when the reporter thread ends.
#[derive(Debug, Default)]
struct Done {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Done {
    /// Waits up to `limit`; whether the thread ended.
    fn wait(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut done = lock(&self.done);
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = self
                .cv
                .wait_timeout(done, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Sets [`Done`] when dropped (the thread ends, even by a panic).
struct SetOnDrop(Arc<Done>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        *lock(&self.0.done) = true;
        self.0.cv.notify_all();
    }
}

impl Guard {
    /// Keeps guru installed for the life of the process (like tracing's
    /// `init()`): the guard is forgotten, never dropped.
    pub fn keep(self) {
        std::mem::forget(self);
    }

    /// Uninstalls guru now (what dropping the guard does), without the
    /// stderr line of an early drop.
    pub fn uninstall(mut self) {
        self.quiet = true;
    }
}

/// Writes `line` to stderr only if that cannot block (stderr may be a pipe
/// nobody reads: that may be why the reporter is stuck).
fn note_on_stderr(line: &str) {
    if sys::writable_soon(2, 100) {
        let _ = sys::write_raw(2, line.as_bytes());
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let in_child = guru_core::sys::getpid() != self.owner_pid;
        // Heartbeats created from now on do not write to the pipe (closed
        // when the guard's fields are dropped).
        crate::watchdog::clear_wake_fd();
        crate::crash::uninstall();
        if let Some((signal, id)) = self.signal.take() {
            TRIGGER_SIGNAL.store(0, Ordering::Release);
            // After this returns no handler runs the action any more, so the
            // pipe may be closed.
            signal_hook_registry::unregister(id);
            restore_disposition(signal, in_child);
        }
        if let Some(t) = self.thread.take() {
            if in_child {
                // The parent's reporter thread does not exist here: joining
                // or detaching its handle would act on a dead thread.
                std::mem::forget(t);
            } else {
                self.stop.store(true, Ordering::Release);
                let _ = sys::write_raw(self.pipe_write.as_raw_fd(), &[0u8; RECORD_LEN]);
                if self.done.wait(GUARD_DROP_WAIT) {
                    let _ = t.join();
                } else {
                    note_on_stderr(&format!(
                        "guru: the reporter thread did not stop within {} s of dropping the guard \
                         (a report is still being produced or written); it is left to finish on its own\n",
                        GUARD_DROP_WAIT.as_secs()
                    ));
                    drop(t);
                }
            }
        }
        let installed = lock(&INSTALLED).take();
        drop(installed);
        ACTIVE.store(false, Ordering::Release);
        if !self.quiet && !in_child && self.installed_at.elapsed() < EARLY_DROP {
            note_on_stderr(&format!(
                "guru: the Guard was dropped {:.3} s after install, so guru is uninstalled again: \
                 bind it for the life of the program (`let _guard = ...`, not `let _ = ...`) \
                 or call Guard::keep()\n",
                self.installed_at.elapsed().as_secs_f64()
            ));
        }
    }
}

fn signal_label(signal: i32) -> String {
    let min = guru_core::sys::sigrtmin();
    match guru_core::format::signal_name(signal) {
        Some(name) => name.to_string(),
        None if signal >= min => format!("SIGRTMIN+{}", signal - min),
        None => format!("signal {signal}"),
    }
}

fn check_log_dir(dir: &Path) -> Result<Arc<output::LogDir>, Error> {
    output::LogDir::open(dir)
        .map(Arc::new)
        .map_err(|source| Error::LogDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// The inotify side of the file trigger: a watch on the file itself (when
/// it exists) and one on its directory for the file's creation.
#[derive(Debug)]
struct Watch {
    fd: OwnedFd,
    dir_wd: i32,
    /// The watch on the file (-1: none, the file does not exist).
    file_wd: i32,
    name: Vec<u8>,
    path: PathBuf,
}

/// Directory events: only entries appearing (filtered by name).
const DIR_MASK: u32 = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_ONLYDIR;
/// Events on the file itself (not following a symbolic link).
const FILE_MASK: u32 =
    libc::IN_ATTRIB | libc::IN_CLOSE_WRITE | libc::IN_MOVE_SELF | libc::IN_DONT_FOLLOW;

fn watch_file(path: &Path) -> Result<Watch, Error> {
    let err = |source| Error::FileTrigger {
        path: path.to_path_buf(),
        source,
    };
    let abs = std::path::absolute(path).map_err(err)?;
    let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        )));
    };
    let fd = sys::inotify_init().map_err(err)?;
    let dir_wd = sys::inotify_watch(&fd, dir, DIR_MASK).map_err(err)?;
    let mut w = Watch {
        fd,
        dir_wd,
        file_wd: -1,
        name: name.as_encoded_bytes().to_vec(),
        path: abs.clone(),
    };
    w.watch_the_file();
    Ok(w)
}

/// One inotify event: (watch descriptor, mask, name).
fn parse_events(buf: &[u8]) -> Vec<(i32, u32, &[u8])> {
    let mut off = 0usize;
    let mut out = Vec::new();
    // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
    while let Some(header) = buf.get(off..off + 16) {
        let wd = i32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
        let mask = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
        let len = u32::from_ne_bytes([header[12], header[13], header[14], header[15]]) as usize;
        let Some(raw) = buf.get(off + 16..off + 16 + len) else {
            break;
        };
        let n = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
        out.push((wd, mask, &raw[..n]));
        off += 16 + len;
    }
    out
}

/// Whether a buffer of inotify events holds one for `name`.
#[cfg(test)]
fn events_name(buf: &[u8], name: &[u8]) -> bool {
    parse_events(buf).iter().any(|(_, _, n)| *n == name)
}

impl Watch {
    /// (Re)watches the file itself, if it exists now.
    fn watch_the_file(&mut self) {
        if let Ok(wd) = sys::inotify_watch(&self.fd, &self.path, FILE_MASK) {
            if self.file_wd >= 0 && self.file_wd != wd {
                sys::inotify_unwatch(&self.fd, self.file_wd);
            }
            self.file_wd = wd;
        }
    }

    /// Reads every pending inotify event; true if the file was touched and
    /// is ours (another user's file is ignored and counted).
    fn drain(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let mut touched = false;
        let mut rewatch = false;
        while let Ok(n) = sys::read(&self.fd, &mut buf) {
            if n == 0 {
                break;
            }
            for (wd, mask, name) in parse_events(&buf[..n]) {
                if wd == self.dir_wd && name == self.name.as_slice() {
                    touched = true;
                    rewatch = true;
                } else if wd == self.file_wd && wd >= 0 {
                    if mask & (libc::IN_ATTRIB | libc::IN_CLOSE_WRITE) != 0 {
                        touched = true;
                    }
                    if mask & (libc::IN_MOVE_SELF | libc::IN_IGNORED) != 0 {
                        // Moved away or removed: not the named file any more.
                        if mask & libc::IN_IGNORED == 0 {
                            sys::inotify_unwatch(&self.fd, wd);
                        }
                        self.file_wd = -1;
                    }
                }
            }
        }
        if rewatch {
            self.watch_the_file();
        }
        touched && self.owned_by_us()
    }

    /// Whether the trigger file is owned by this process's uid or root;
    /// counts the touch as ignored otherwise.
    fn owned_by_us(&self) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let (euid, uid) = sys::uids();
        let owner = std::fs::symlink_metadata(&self.path).map(|m| m.uid());
        match owner {
            Ok(o) if o == euid || o == uid || o == 0 => true,
            Ok(o) => {
                FILE_TOUCHES_IGNORED.fetch_add(1, Ordering::Relaxed);
                FILE_IGNORED_OWNER.store(u64::from(o), Ordering::Relaxed);
                false
            }
            // Gone again before we could check its owner: not a trigger.
            Err(_) => false,
        }
    }
}

/// Reads every pending trigger record of this process.
fn drain_pipe(fd: &OwnedFd) -> Vec<TriggerRecord> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let mut buf = [0u8; RECORD_LEN * 64];
    while let Ok(n) = sys::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend(
            buf[..n]
                .chunks_exact(RECORD_LEN)
                .filter_map(TriggerRecord::decode)
                .filter(|r| r.receiver_pid == me),
        );
    }
    out
}

fn to_trigger(r: &TriggerRecord, started: bool) -> guru_core::Trigger {
    guru_core::Trigger {
        unix_ns: r.unix_ns,
        signal: r.signal,
        code: r.code,
        sender_pid: r.sender_pid,
        sender_uid: r.sender_uid,
        started_report: started,
    }
}

/// How long file events are merged after the first one (a `touch` makes
/// several: open, attrib, close-write). Only after a trigger: idle costs
/// nothing.
const FILE_SETTLE_MS: i32 = 50;

/// Milliseconds until `t` (rounded up), for `poll`.
pub(crate) fn ms_until(t: Instant) -> i32 {
    let left = t.saturating_duration_since(Instant::now());
    i32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
}

fn reporter_loop(
    pipe: &OwnedFd,
    mut watch: Option<Watch>,
    stop: &AtomicBool,
    min_interval: Duration,
    hook: &crate::watchdog::Hook,
    mut dump: Option<crate::dump_socket::Server>,
) {
    let mut fds = vec![pipe.as_raw_fd()];
    if let Some(w) = &watch {
        fds.push(w.fd.as_raw_fd());
    }
    // The start of the last report, and the report held back by the rate
    // limit (its first trigger; later ones are counted as coalesced).
    let mut last_start: Option<Instant> = None;
    let mut held: Option<Source> = None;
    // Whether the held report goes to the usual output (a trigger other
    // than a dump request asked for it).
    let mut usual = false;
    loop {
        let timeout = match (&held, last_start) {
            (None, _) => -1,
            (Some(_), None) => 0,
            (Some(_), Some(t)) => ms_until(t + min_interval),
        };
        // The watchdog's next deadline (-1 with no heartbeat: no wake-up).
        let timeout = match (timeout, hook.timeout_ms(last_start)) {
            (-1, w) => w,
            (t, -1) => t,
            (t, w) => t.min(w),
        };
        let (timeout, dump_fds) = crate::dump_socket::add_to_poll(dump.as_ref(), timeout);
        let (ready, dump_ready) = match crate::dump_socket::poll(&fds, &dump_fds, timeout) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("guru: the reporter thread stops: poll failed: {e}");
                return;
            }
        };
        if stop.load(Ordering::Acquire) {
            return;
        }
        let records = if ready.first() == Some(&true) {
            drain_pipe(pipe)
        } else {
            Vec::new()
        };
        let mut file_hit = false;
        if let (Some(w), Some(true)) = (watch.as_mut(), ready.get(1)) {
            file_hit = w.drain();
            while sys::poll_readable(&[w.fd.as_raw_fd()], FILE_SETTLE_MS)
                .is_ok_and(|r| r.first() == Some(&true))
            {
                file_hit |= w.drain();
            }
        }
        usual |= !records.is_empty() || file_hit;
        if let Some(d) = dump.as_mut() {
            for client in d.service(&dump_ready) {
                crate::dump_socket::hold(&mut held, client);
            }
        }
        // The first trigger with none held starts the next report; every
        // other one is counted as coalesced into it.
        for r in &records {
            if r.signal == crate::crash::MARKER {
                crate::crash::serve_crash();
                continue;
            }
            if held.is_none() {
                held = Some(Source::Signal(to_trigger(r, true)));
            } else {
                guru_core::note_trigger(&to_trigger(r, false));
            }
        }
        if let (true, Some(w)) = (file_hit, &watch) {
            if held.is_none() {
                held = Some(Source::File(w.path.clone()));
            } else {
                guru_core::note_trigger(&guru_core::Trigger {
                    unix_ns: guru_core::sys::realtime_ns(),
                    code: guru_core::trigger::CODE_FILE_TRIGGER,
                    ..guru_core::Trigger::default()
                });
            }
        }
        let due = last_start.is_none_or(|t| t.elapsed() >= min_interval);
        if due && let Some(source) = held.take() {
            last_start = Some(Instant::now());
            produce_and_emit(source, std::mem::take(&mut usual), dump.as_mut());
        }
        if let Some(stall) = hook.due(last_start) {
            last_start = Some(Instant::now());
            // An automatic report goes to the usual output only; `guru dump`
            // clients waiting get the report their request holds.
            produce_and_emit(Source::Watchdog(Box::new(stall)), true, None);
        }
    }
}

/// Indexes the debug info of the modules loaded now and resolves the
/// stacks of the threads running now (see [`Builder::prewarm_symbols`]).
/// Holds the report lock meanwhile, so a report asked for at the same time
/// waits for it rather than doing the same work again.
fn prewarm_symbols(engine: &'static guru_core::Engine) {
    let heavy = lock(&INSTALLED)
        .as_ref()
        .is_some_and(|i| i.settings.heavy_debug_info);
    let mut state = STATE.lock();
    let state = state.get_or_insert_with(ReporterState::default);
    state.symbolizer.heavy_debug_info = heavy;
    state.symbolizer.prewarm(engine.module_set());
    // This module's functions on the report-writing thread's stack: the
    // reporter thread's (SIGUSR2, file, dump, watchdog) and an
    // application thread's calling guru::report.
    let report_path = [
        reporter_loop as *const () as usize,
        emit_report as *const () as usize,
        report_as as *const () as usize,
    ];
    report::warm_symbols(state, engine, &report_path);
    state.symbolizer.release_pages();
}

/// Produces a report and writes it where the installation says (`usual`)
/// and to the dump clients waiting for one.
fn produce_and_emit(source: Source, usual: bool, dump: Option<&mut crate::dump_socket::Server>) {
    emit_report(source, None, usual, dump);
}

/// The installed rate limit (the default when not installed).
pub(crate) fn min_interval() -> Duration {
    lock(&INSTALLED)
        .as_ref()
        .map_or(DEFAULT_MIN_INTERVAL, |i| i.settings.min_interval)
}

/// [`produce_and_emit`] to the usual output, with the round already
/// captured (a crash) or not (a panic).
pub(crate) fn produce_and_emit_with(source: Source, pre: Option<crate::report::Round>) {
    emit_report(source, pre, true, None);
}

fn emit_report(
    source: Source,
    pre: Option<crate::report::Round>,
    usual: bool,
    dump: Option<&mut crate::dump_socket::Server>,
) {
    let crash = matches!(source, Source::Crash(_));
    let _reporting = crate::crash::Reporting::begin();
    let mut state = STATE.lock();
    let Some((settings, format, log_dir, file_service, output_timeout, journald)) =
        lock(&INSTALLED).as_ref().map(|i| {
            (
                i.settings.clone(),
                i.format,
                i.log_dir.clone(),
                i.file_service.clone(),
                i.output_timeout,
                i.journald.clone(),
            )
        })
    else {
        return;
    };
    let produced = report::collect_with(
        state.get_or_insert_with(ReporterState::default),
        Some(&settings),
        source,
        notes(),
        pre,
    );
    drop(state);
    let report = &produced.report;
    if let Some(d) = dump {
        crate::dump_socket::deliver(d, report);
    }
    if !usual {
        return;
    }
    let rendered = report.render(format);
    let output_timeout = if crash {
        output_timeout.min(crate::crash::CRASH_OUTPUT_TIMEOUT)
    } else {
        output_timeout
    };
    // The core writes its own report if this one comes too late: only one
    // of them may write.
    if crash && !guru_core::crash::begin_output() {
        return;
    }
    if let Some(socket) = &journald
        && crate::journald::emit(socket, &settings.service, report, &rendered)
    {
        return;
    }
    output::emit(
        log_dir.as_deref(),
        || {
            output::file_name(
                &file_service,
                report.time_unix_ns,
                report.pid,
                report.sequence,
                format,
            )
        },
        &rendered,
        report.sequence,
        produced.output_dropped,
        output_timeout,
    );
    drop((rendered, produced));
    sys::release_freed_heap();
}

/// What the trigger side has to tell the next report.
fn notes() -> Notes {
    Notes {
        ignored_file_touches: take_ignored_file_touches(),
        capture_blocked_at_install: capture_blocked_at_install(),
    }
}

/// Produces a report now and returns it (in the installed format: text
/// unless [`Builder::format`] chose JSON), without writing it anywhere — for
/// a `/debug` endpoint, a test, or a log line. The calling thread is in the
/// report (its stack shows this call). Without installation the report says
/// so in its sections instead of listing threads. It waits for a report in
/// progress to finish. Not for signal handlers (it allocates and locks).
pub fn report() -> String {
    let format = lock(&INSTALLED).as_ref().map_or(Format::Text, |i| i.format);
    report_as(format)
}

/// Like [`report`], in the given format.
pub fn report_as(format: Format) -> String {
    let _reporting = crate::crash::Reporting::begin();
    let mut state = STATE.lock();
    let settings = lock(&INSTALLED).as_ref().map(|i| i.settings.clone());
    let produced = report::collect(
        state.get_or_insert_with(ReporterState::default),
        settings.as_deref(),
        Source::Call,
        notes(),
    );
    let text = produced.report.render(format);
    drop((produced, state));
    sys::release_freed_heap();
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect_err(b: Builder) -> Error {
        match b.install() {
            Ok(_) => panic!("install should fail"),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_options_are_typed_errors() {
        let b = || Builder::new(crate::package!());
        assert!(matches!(
            expect_err(b().signal(libc::SIGKILL)),
            Error::InvalidSignal(s) if s == libc::SIGKILL
        ));
        assert!(matches!(
            expect_err(b().signal(libc::SIGSEGV)),
            Error::InvalidSignal(_)
        ));
        assert!(matches!(
            expect_err(b().service_name("")),
            Error::InvalidOption(_)
        ));
        assert!(matches!(
            expect_err(b().section_timeout(Duration::ZERO)),
            Error::InvalidOption(_)
        ));
        assert!(matches!(
            expect_err(b().output_timeout(Duration::ZERO)),
            Error::InvalidOption(_)
        ));
        let missing = std::env::temp_dir().join("guru-no-such-dir/x/y");
        let e = expect_err(b().file_trigger(missing.join("trigger")));
        assert!(matches!(e, Error::FileTrigger { .. }), "{e}");
        let not_a_dir = std::env::current_exe().unwrap();
        assert!(matches!(
            expect_err(b().log_dir(&not_a_dir)),
            Error::LogDir { .. }
        ));
        // A missing log directory is created, but not under a file.
        let e = expect_err(b().log_dir(not_a_dir.join("logs")));
        assert!(matches!(e, Error::LogDir { .. }), "{e}");
        assert!(e.to_string().contains("logs"), "{e}");

        let mut bad_keys = std::collections::HashMap::new();
        bad_keys.insert((1u8, 2u8), 3u8);
        let e = expect_err(b().config(bad_keys));
        assert!(matches!(e, Error::Config(_)), "{e}");

        struct Explodes;
        impl Serialize for Explodes {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                panic!("bad serializer")
            }
        }
        let e = expect_err(b().config(Explodes));
        assert!(e.to_string().contains("panicked: bad serializer"), "{e}");
        // Failed installs leave nothing behind.
        assert!(!ACTIVE.load(Ordering::Acquire));
        assert!(lock(&INSTALLED).is_none());
    }

    fn event(name: &[u8], padded: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1i32.to_ne_bytes());
        b.extend_from_slice(&libc::IN_ATTRIB.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(padded as u32).to_ne_bytes());
        let mut n = name.to_vec();
        n.resize(padded, 0);
        b.extend_from_slice(&n);
        b
    }

    #[test]
    fn inotify_events_are_matched_by_name() {
        let mut buf = event(b"other", 16);
        assert!(!events_name(&buf, b"trigger"));
        buf.extend(event(b"trigger", 16));
        assert!(events_name(&buf, b"trigger"));
        // Truncated or garbage input is not a match and does not panic.
        assert!(!events_name(&buf[..20], b"trigger"));
        assert!(!events_name(&[0xff; 17], b"trigger"));
        assert!(!events_name(&event(b"trigger-2", 16), b"trigger"));
    }
}
