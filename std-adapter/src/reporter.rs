//! Installation ([`Builder`], [`setup_autorun`]), the reporter thread and
//! on-demand reports ([`report`]).
//!
//! The trigger signal's action (registered with `signal-hook-registry`, so
//! it chains with other users of the signal) only writes a 28-byte record —
//! signal, sender pid/uid, time — into a non-blocking self-pipe. The
//! `guru-reporter` thread sleeps in `poll(2)` on that pipe and, if a file
//! trigger is configured, on an inotify descriptor: no timer, no wake-up, no
//! CPU while idle. When woken it drains every pending record (the first
//! starts the report, the others are counted as coalesced), runs a capture
//! round through the core, symbolizes, produces the sections and writes the
//! report.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::config::{self, Redactor};
use crate::error::Error;
use crate::output;
use crate::package::Package;
use crate::report::{self, Collected, ReporterState, Settings, Source};
use crate::sections::Job;
use crate::sys::{self, RECORD_LEN, TriggerRecord};

/// Report format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// The text report (DESIGN.md "Report text format"), oslo-style banners.
    #[default]
    Text,
    /// One JSON document per report, schema `guru-report/1`
    /// (`docs/json-schema.md`).
    Json,
}

/// Installed configuration and output settings.
#[derive(Debug)]
struct Installed {
    settings: Arc<Settings>,
    format: Format,
    log_dir: Option<PathBuf>,
    file_service: String,
}

/// Set while a [`Guard`] lives.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether this adapter installed the core engine (it is never uninstalled;
/// a later `install` reuses it).
static CORE_OURS: AtomicBool = AtomicBool::new(false);
static INSTALLED: Mutex<Option<Installed>> = Mutex::new(None);
/// Held while a report is produced: reports are serialized.
static STATE: Mutex<Option<ReporterState>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    format: Format,
    signal: Option<i32>,
    file_trigger: Option<PathBuf>,
    section_timeout: Duration,
    secret_keys: Vec<String>,
    environment: bool,
    heavy_debug_info: bool,
    prewarm_symbols: bool,
    core: guru_core::Options,
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
            core: guru_core::Options {
                trigger_signal: None,
                ..guru_core::Options::default()
            },
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

    /// Write each report to a new file in `dir` instead of stderr. The
    /// directory must exist and be writable at `install`.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.log_dir = Some(dir.into());
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
    /// `file_event_handler`. Watched with inotify on its directory, which
    /// must exist at `install`; the file need not.
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

    /// Index the loaded modules' debug info in the reporter thread right
    /// after installation (on by default), so the first report does not pay
    /// for it. The index is addr2line's table of compilation units and their
    /// address ranges: on the benchmark fixture about a third of the first
    /// report's symbolization work, done once in the background (see
    /// BENCHMARKS.md for its cost); the mapped debug sections' pages are
    /// given back afterwards, as after a report. Line tables and inlining
    /// trees are still parsed on first use, for the units a report touches.
    /// Turn it off where startup CPU or memory matters more than the first
    /// report's latency.
    pub fn prewarm_symbols(mut self, enable: bool) -> Builder {
        self.prewarm_symbols = enable;
        self
    }

    /// Options of the capture engine (round deadline, thread and frame
    /// capacity, capture signal). `trigger_signal` is ignored: the adapter
    /// installs its own trigger. They take effect at the first install in a
    /// process only (the engine is never uninstalled).
    pub fn core_options(mut self, options: guru_core::Options) -> Builder {
        self.core = guru_core::Options {
            trigger_signal: None,
            ..options
        };
        self
    }

    /// Installs guru: the capture engine, the trigger signal's action, the
    /// file trigger and the reporter thread. Returns a guard that uninstalls
    /// them when dropped (keep it for the life of the program). A second
    /// install while a guard lives is [`Error::AlreadyInstalled`].
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
                *lock(&INSTALLED) = None;
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

        let settings = Arc::new(Settings {
            package: self.package,
            service,
            config,
            redactor,
            environment: self.environment,
            section_timeout: self.section_timeout,
            heavy_debug_info: self.heavy_debug_info,
        });
        *lock(&INSTALLED) = Some(Installed {
            settings,
            format: self.format,
            log_dir,
            file_service,
        });

        let (pipe_read, pipe_write) = sys::pipe().map_err(|source| Error::Io {
            operation: "pipe2 (reporter wake-up pipe)",
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let prewarm = self.prewarm_symbols;
        let thread = std::thread::Builder::new()
            .name("guru-reporter".into())
            .spawn(move || {
                if prewarm {
                    prewarm_symbols(engine);
                }
                reporter_loop(&pipe_read, watch, &thread_stop)
            })
            .map_err(|source| {
                *lock(&INSTALLED) = None;
                Error::Io {
                    operation: "spawn guru-reporter",
                    source,
                }
            })?;
        let mut guard = Guard {
            signal: None,
            pipe_write,
            stop,
            thread: Some(thread),
        };
        if let Some(signal) = self.signal {
            let id =
                sys::register_trigger(signal, guard.pipe_write.as_raw_fd()).map_err(|source| {
                    Error::Io {
                        operation: "sigaction (trigger signal)",
                        source,
                    }
                })?;
            guard.signal = Some(id);
        }
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
/// trigger and stops the reporter thread (after the report in progress, if
/// any). The capture engine stays (signal handlers may still run), and a
/// later `install` reuses it. After the drop the trigger signal is ignored
/// (signal-hook-registry does not restore the default action).
#[must_use = "dropping the guard uninstalls guru at once"]
#[derive(Debug)]
pub struct Guard {
    signal: Option<signal_hook_registry::SigId>,
    pipe_write: OwnedFd,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(id) = self.signal.take() {
            // After this returns no handler runs the action any more, so the
            // pipe may be closed.
            signal_hook_registry::unregister(id);
        }
        self.stop.store(true, Ordering::Release);
        let _ = sys::write_raw(self.pipe_write.as_raw_fd(), &[0u8; RECORD_LEN]);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        *lock(&INSTALLED) = None;
        ACTIVE.store(false, Ordering::Release);
    }
}

fn check_log_dir(dir: &Path) -> Result<PathBuf, Error> {
    let err = |source| Error::LogDir {
        path: dir.to_path_buf(),
        source,
    };
    let abs = std::path::absolute(dir).map_err(err)?;
    let meta = std::fs::metadata(&abs).map_err(err)?;
    if !meta.is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    sys::can_create_in(&abs).map_err(err)?;
    Ok(abs)
}

/// The inotify side of the file trigger.
#[derive(Debug)]
struct Watch {
    fd: OwnedFd,
    name: Vec<u8>,
    path: PathBuf,
}

const WATCH_MASK: u32 =
    libc::IN_ATTRIB | libc::IN_CLOSE_WRITE | libc::IN_CREATE | libc::IN_MOVED_TO;

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
    sys::inotify_watch(&fd, dir, WATCH_MASK).map_err(err)?;
    Ok(Watch {
        fd,
        name: name.as_encoded_bytes().to_vec(),
        path: abs.clone(),
    })
}

/// Whether a buffer of inotify events holds one for `name`.
fn events_name(buf: &[u8], name: &[u8]) -> bool {
    let mut off = 0usize;
    let mut hit = false;
    // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
    while let Some(header) = buf.get(off..off + 16) {
        let len = u32::from_ne_bytes([header[12], header[13], header[14], header[15]]) as usize;
        let Some(raw) = buf.get(off + 16..off + 16 + len) else {
            break;
        };
        let n = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
        hit |= &raw[..n] == name;
        off += 16 + len;
    }
    hit
}

/// Reads every pending inotify event; true if one concerns the file.
fn drain_inotify(w: &Watch) -> bool {
    let mut buf = [0u8; 4096];
    let mut hit = false;
    while let Ok(n) = sys::read(&w.fd, &mut buf) {
        if n == 0 {
            break;
        }
        hit |= events_name(&buf[..n], &w.name);
    }
    hit
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

fn reporter_loop(pipe: &OwnedFd, watch: Option<Watch>, stop: &AtomicBool) {
    let mut fds = vec![pipe.as_raw_fd()];
    if let Some(w) = &watch {
        fds.push(w.fd.as_raw_fd());
    }
    loop {
        let ready = match sys::poll_readable(&fds, -1) {
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
        if let (Some(w), Some(true)) = (&watch, ready.get(1)) {
            file_hit = drain_inotify(w);
            if file_hit {
                while sys::poll_readable(&[w.fd.as_raw_fd()], FILE_SETTLE_MS)
                    .is_ok_and(|r| r.first() == Some(&true))
                {
                    drain_inotify(w);
                }
            }
        }
        let source = match (records.first(), &watch) {
            (Some(first), _) => {
                for extra in records.iter().skip(1) {
                    guru_core::note_trigger(&to_trigger(extra, false));
                }
                if file_hit {
                    // The file touch is coalesced into the signal's report.
                    guru_core::note_trigger(&guru_core::Trigger {
                        unix_ns: guru_core::sys::realtime_ns(),
                        ..guru_core::Trigger::default()
                    });
                }
                Source::Signal(to_trigger(first, true))
            }
            (None, Some(w)) if file_hit => Source::File(w.path.clone()),
            _ => continue,
        };
        produce_and_emit(source);
    }
}

/// Indexes the debug info of the modules loaded now (see
/// [`Builder::prewarm_symbols`]). Holds the report lock meanwhile, so a
/// report asked for at the same time waits for it rather than doing the
/// same work again.
fn prewarm_symbols(engine: &'static guru_core::Engine) {
    let heavy = lock(&INSTALLED)
        .as_ref()
        .is_some_and(|i| i.settings.heavy_debug_info);
    let mut state = lock(&STATE);
    let state = state.get_or_insert_with(ReporterState::default);
    state.symbolizer.heavy_debug_info = heavy;
    state.symbolizer.prewarm(engine.module_set());
}

/// Produces a report and writes it where the installation says.
fn produce_and_emit(source: Source) {
    let mut state = lock(&STATE);
    let Some((settings, format, log_dir, file_service)) = lock(&INSTALLED).as_ref().map(|i| {
        (
            i.settings.clone(),
            i.format,
            i.log_dir.clone(),
            i.file_service.clone(),
        )
    }) else {
        return;
    };
    let collected = report::collect(
        state.get_or_insert_with(ReporterState::default),
        Some(&settings),
        source,
    );
    let rendered = render(&collected, format);
    drop(state);
    output::emit(
        log_dir.as_deref(),
        || {
            output::file_name(
                &file_service,
                collected.started_unix_ns,
                collected.pid,
                collected.sequence,
                format,
            )
        },
        &rendered,
    );
}

fn render(c: &Collected, format: Format) -> String {
    match format {
        Format::Text => crate::text::render(c),
        Format::Json => crate::json::render(c),
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
    let mut state = lock(&STATE);
    let settings = lock(&INSTALLED).as_ref().map(|i| i.settings.clone());
    let collected = report::collect(
        state.get_or_insert_with(ReporterState::default),
        settings.as_deref(),
        Source::Call,
    );
    render(&collected, format)
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
        let missing = std::env::temp_dir().join("guru-no-such-dir/x/y");
        let e = expect_err(b().log_dir(&missing));
        assert!(matches!(e, Error::LogDir { .. }), "{e}");
        assert!(e.to_string().contains("guru-no-such-dir"), "{e}");
        let e = expect_err(b().file_trigger(missing.join("trigger")));
        assert!(matches!(e, Error::FileTrigger { .. }), "{e}");
        let not_a_dir = std::env::current_exe().unwrap();
        assert!(matches!(
            expect_err(b().log_dir(not_a_dir)),
            Error::LogDir { .. }
        ));

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
