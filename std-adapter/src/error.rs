//! The adapter's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Errors from installing guru. Reports themselves never fail as a whole: a
/// part that cannot be produced is shown as a failed section, and output that
/// cannot be written goes to stderr instead.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// guru is already installed in this process (signal handlers are
    /// process-wide, so there is one reporter per process). Drop the existing
    /// [`Guard`](crate::Guard) first.
    AlreadyInstalled,
    /// The core engine was installed directly with `guru_core::install`
    /// (core-only mode); the adapter cannot run beside it.
    CoreInstalledElsewhere,
    /// The core engine refused to install.
    Core(guru_core::Error),
    /// The trigger signal cannot be used (it is uncatchable, a synchronous
    /// fault signal, or the core's capture signal).
    InvalidSignal(i32),
    /// A builder option is invalid; the text says which and why.
    InvalidOption(&'static str),
    /// The log directory cannot be created, is not a directory (or is a
    /// symbolic link), or is not writable.
    LogDir {
        /// The directory as configured.
        path: PathBuf,
        /// Why it cannot be used.
        source: io::Error,
    },
    /// The file-trigger path cannot be watched (its directory is missing, or
    /// inotify is unavailable).
    FileTrigger {
        /// The path as configured.
        path: PathBuf,
        /// Why it cannot be watched.
        source: io::Error,
    },
    /// The configuration cannot be serialized (checked once at install).
    Config(String),
    /// A system call failed while installing.
    Io {
        /// What was being done.
        operation: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyInstalled => write!(
                f,
                "guru is already installed in this process (drop the existing guard first)"
            ),
            Error::CoreInstalledElsewhere => write!(
                f,
                "guru_core was installed directly (core-only mode); the guru adapter cannot run beside it"
            ),
            Error::Core(e) => write!(f, "cannot install the capture engine: {e}"),
            Error::InvalidSignal(s) => write!(
                f,
                "signal {s} cannot trigger reports (uncatchable, a fault signal, or the capture signal)"
            ),
            Error::InvalidOption(what) => write!(f, "invalid option: {what}"),
            Error::LogDir { path, source } => write!(
                f,
                "log directory {} cannot be used: {source}",
                path.display()
            ),
            Error::FileTrigger { path, source } => write!(
                f,
                "file trigger {} cannot be watched: {source}",
                path.display()
            ),
            Error::Config(e) => write!(f, "the configuration cannot be serialized: {e}"),
            Error::Io { operation, source } => write!(f, "{operation} failed: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Core(e) => Some(e),
            Error::LogDir { source, .. }
            | Error::FileTrigger { source, .. }
            | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<guru_core::Error> for Error {
    fn from(e: guru_core::Error) -> Self {
        match e {
            guru_core::Error::AlreadyInstalled => Error::CoreInstalledElsewhere,
            other => Error::Core(other),
        }
    }
}
