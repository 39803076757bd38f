//! # guru
//!
//! Guru Meditation Reports for Rust processes: `kill -USR2 <pid>` makes a
//! running daemon print what it is doing — every thread's stack with function
//! names, inlined calls and `file:line`, its package, its processes, its
//! configuration with secrets masked, sections the application registers, its
//! resource usage and loaded modules — and then carry on as if nothing
//! happened. The idea and the entry points come from OpenStack's
//! oslo.reports:
//!
//! ```no_run
//! # fn pool_len() -> usize { 3 }
//! guru::register_section("Connections", || format!("{} open", pool_len()));
//! let _guard = guru::setup_autorun(guru::package!())?; // SIGUSR2 → report on stderr
//! # Ok::<(), guru::Error>(())
//! ```
//!
//! or, with everything [`Builder`] offers:
//!
//! ```no_run
//! #[derive(serde::Serialize)]
//! struct Settings { listen: String, api_token: guru::Secret<String> }
//! # let settings = Settings { listen: "[::]:80".into(), api_token: guru::Secret::new("t".into()) };
//! let _guard = guru::Builder::new(guru::package!())
//!     .service_name("my-daemon")
//!     .config(settings)                  // any serde::Serialize
//!     .log_dir("/var/log/my-daemon")     // one new file per report instead of stderr
//!     .format(guru::Format::Json)        // or Text (default)
//!     .file_trigger("/run/my-daemon/report-now")
//!     .install()?;
//! let _text: String = guru::report();    // a report on demand
//! # Ok::<(), guru::Error>(())
//! ```
//!
//! # How it works
//!
//! Each thread's stack is captured by `guru-core` from a per-thread signal
//! handler, in microseconds, into preallocated memory — no thread is stopped
//! for the whole report. Everything else happens in the `guru-reporter`
//! thread, which sleeps on a self-pipe (and inotify, for the file trigger)
//! and costs nothing while idle: the trigger signal's action, registered
//! through `signal-hook-registry`, only writes a small record to the pipe.
//! The reporter then symbolizes the frames from DWARF (`addr2line`, cached
//! across reports; see [`symbols`](crate#symbols)), produces the sections and
//! writes the report.
//!
//! # Sections
//!
//! In this order: **Package**, **Threads**, **Green Threads** (feature
//! `tokio`: the registered tokio runtimes' metrics and, with feature
//! `taskdump` and `--cfg tokio_unstable`, each task's trace; see
//! `guru::tokio`), **Processes** (this process and
//! its descendants: pid, parent, user, state, command line with secrets
//! masked), **Configuration**, the registered sections, **Process** (uptime,
//! CPU, memory, faults, open descriptors, limits), **Modules** (path, address
//! range, build-id), **Report** (who triggered it, the round's cost,
//! coalesced triggers, unresponsive threads, symbolization cost).
//!
//! A registered section (or the configuration's `Serialize`) that panics,
//! returns an error or overruns its time budget is shown as a failed section
//! with the reason; the rest of the report still comes out and the process
//! lives on.
//!
//! # Output
//!
//! stderr by default, written in one piece. With [`Builder::log_dir`] each
//! report is a new file `{service}_gurumeditation_{UTC yyyymmddHHMMSS}_{pid}_{seq}.{txt|json}`
//! created with `O_CREAT|O_EXCL|O_NOFOLLOW` and mode 0600; if it cannot be
//! created, one line on stderr says why and the report follows on stderr.
//! JSON reports are one document per report, schema `guru-report/1`,
//! documented in `docs/json-schema.md`.
//!
//! # Symbols
//!
//! Frames are symbolized with `addr2line` in the reporter thread. Right after
//! installation that thread opens every loaded module's DWARF and builds
//! its index of compilation units (a third of a first report's work on the
//! benchmark fixture: see [`Builder::prewarm_symbols`] to turn it off); a
//! module loaded later is opened the first time one of its addresses
//! appears in a report. Each unit's line table and inlining tree are parsed
//! on first use, and every resolved address is cached. Build with at least
//! `debug = "line-tables-only"` in the release profile for `file:line`;
//! without debug info, frames still show the ELF symbol and `module+0xoffset`.
//!
//! The text report prints source paths short, as a reader needs them: the
//! toolchain's `/rustc/<commit>/library/std/src/…` as `std/src/…` (also
//! `core/`, `alloc/`), a dependency's
//! `~/.cargo/registry/src/index.crates.io-<hash>/axum-0.8.9/src/…` as
//! `axum-0.8.9/src/…`, a git dependency's `~/.cargo/git/checkouts/…` from
//! the checkout's directory on; the application's own paths as DWARF has
//! them. The JSON report always has the full path.
//!
//! # Portability
//!
//! Linux (x86_64 and aarch64, glibc or musl), like `guru-core`.
#![doc(test(attr(deny(warnings))))]

mod config;
mod error;
mod json;
mod output;
mod package;
mod procinfo;
mod report;
mod reporter;
mod secret;
mod sections;
mod symbols;
mod sys;
mod text;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use config::DEFAULT_SECRET_KEYS;
pub use error::Error;
pub use json::SCHEMA;
pub use package::Package;
pub use reporter::{Builder, Format, Guard, report, report_as, setup_autorun};
pub use secret::{MASK, Secret};
pub use sections::{SectionOutput, register_section};

/// The capture engine, for its options and figures.
pub use guru_core as core;

#[doc(hidden)]
pub use package::__from_env as __package_from_env;
