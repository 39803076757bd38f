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
//! # Thread context
//!
//! What each thread is working on, under its header in every report:
//! [`label`] (`request="GET /users/42"`, until its guard drops; nested,
//! shadowing), [`breadcrumb`] (its 16 most recent, with their age) and,
//! with feature `tracing`, the spans it has entered
//! (`tracing_subscriber::registry().with(guru::tracing::layer())`; on a
//! tokio worker, those of the task being polled). Costs, measured in
//! BENCHMARKS.md ("Thread context", thread-CPU time on the shared 2-CPU
//! test machine): label set + drop 33–36 ns, breadcrumb 32–42 ns, the
//! layer's overhead per span enter + exit 66 ns at load average 3.7 (51–60,
//! 50–80 and 90 ns at load 16); no allocation after a thread's
//! first use, which takes a ~7 KiB record. Masked like configuration;
//! capacities and limits in [`context`].
//!
//! ```
//! let _guard = guru::setup_autorun(guru::package!())?;
//! let _request = guru::label("request", "GET /users/42");
//! guru::breadcrumb("parsed headers");
//! // a report now shows, under this thread's header:
//! //   labels: request="GET /users/42"
//! //   breadcrumbs (oldest first): -0.000 s parsed headers
//! # Ok::<(), guru::Error>(())
//! ```
//!
//! # Output
//!
//! stderr by default. With [`Builder::log_dir`] (created, mode 0700, if
//! missing; opened once at install with `O_DIRECTORY|O_NOFOLLOW`, so a
//! symlink put in its place later does not redirect reports) each report is
//! a new file `{service}_gurumeditation_{UTC yyyymmddHHMMSS}_{pid}_{seq}.{txt|json}`,
//! mode 0600, written unnamed (`O_TMPFILE`; or to a hidden temporary file)
//! and linked in without replacing anything, so a file under its final name
//! is always complete; one line on stderr says where each report went, or
//! why it could not be written (the report then follows on stderr).
//!
//! Every write is bounded by [`Builder::output_timeout`] (default 3 s):
//! stderr is `poll`ed with the time left and written 4 KiB at a time with
//! `write(2)` on fd 2 (not through `std::io::stderr()`'s lock, which an
//! application thread stuck in `eprintln!` may hold), so a pipe nobody reads
//! or a slow non-blocking reader never holds the reporter longer. What could
//! not be written is counted; a cut report ends with `guru: report #N not
//! written whole: ...` when stderr takes that line, and the next report says
//! `output dropped: ...` in its Report section. Limits: a descriptor that
//! polls writable but then blocks on a 4 KiB write (a terminal stopped with
//! `^S`, a hung NFS mount) still blocks (see [`guru_core::write`]); reports
//! may interleave with the application's own stderr output at 4 KiB
//! boundaries.
//! JSON reports are one document per report, schema `guru-report/1`,
//! documented in `docs/json-schema.md`.
//!
//! # Symbols
//!
//! Frames are symbolized with `addr2line` in the reporter thread. Right after
//! installation that thread opens every loaded module's DWARF, builds its
//! index of compilation units, then captures every thread once (a round
//! that writes nothing and takes no report number) and resolves those
//! stacks, so the line tables and inlining trees of guru's own threads, of
//! the threads alive at install and of the standard library's thread-start
//! and parking code are parsed before anyone asks for a report (on the
//! benchmark fixture the first report's CPU drops from 16 to 5 ms: see
//! [`Builder::prewarm_symbols`] to turn it off). A module loaded later is
//! opened the first time one of its addresses appears in a report. Any
//! other unit's line table and inlining tree are parsed on first use, and
//! every resolved address is cached. Build with at least
//! `debug = "line-tables-only"` in the release profile for `file:line`;
//! without debug info, frames still show the ELF symbol and `module+0xoffset`.
//!
//! # Memory after a report
//!
//! What a report allocates (the report model, its text or JSON) is freed
//! when it has been written or returned, and on glibc the freed pages go
//! back to the system (`malloc_trim(0)`): glibc keeps freed memory of its
//! arenas resident otherwise, ~11 MiB after a report of 1024 threads. What
//! stays is the symbol cache (parsed line tables, resolved addresses) and
//! the pages of the capture path itself (the slot table, and the stack
//! pages each thread's handler used). The price is that the next report
//! faults those pages in again: about 10 ms more of the reporting thread's
//! CPU at 1024 threads (no application thread waits for it). musl's
//! allocator returns freed pages by itself.
//!
//! # A report interrupts blocking calls
//!
//! Every thread runs guru's capture handler for a few microseconds during a
//! report, so a thread blocked in `nanosleep`, `poll`, `epoll_wait`,
//! `sigtimedwait`, or a `read`/`recv` with a timeout returns `EINTR` once
//! per report (Linux does so for those calls whatever `SA_RESTART` says).
//! Rust's standard library retries where it should (`std::thread::sleep`,
//! std's I/O types); code that calls libc directly must handle `EINTR`, as
//! it must for any signal.
//!
//! # Rate limit
//!
//! Reports from triggers (signal and file) start at least
//! [`Builder::min_interval`] apart (default [`DEFAULT_MIN_INTERVAL`], 1 s).
//! A trigger that comes sooner is held: when the interval has passed, one
//! report comes for all the held triggers, the first starting it and the
//! others counted as coalesced. Nothing is dropped silently. Calls to
//! [`report`] are not limited (they are the application's own; limit the
//! endpoint that makes them).
//!
//! Standard signals (`SIGUSR2`, ...) merge in the kernel: one sent while
//! another is still pending is never delivered, so guru cannot see or count
//! it. Real-time signals (`Builder::signal(libc::SIGRTMIN() + n)`) queue, and
//! every one the kernel accepts is reported or counted.
//!
//! # File trigger
//!
//! The named file is watched itself (attribute change, close after
//! writing); its directory only for entries created or moved in (inotify
//! cannot watch a name that does not exist yet), filtered by name. Touches
//! of a file not owned by this process's effective or real uid, nor by root
//! (`lstat`: a symbolic link counts as its own owner), are ignored and
//! counted in the next report, so another local user who can write the
//! directory cannot trigger reports.
//!
//! # fork
//!
//! A child forked from a process with guru installed is a guru process of
//! its own, without an exec: its trigger signal is served by the core in the
//! signal handler (a `pthread_atfork` child handler points the signal at
//! `guru_core`'s trigger handler; the reporter thread did not survive the
//! fork), so `kill -USR2 <child>` writes the child's core text report —
//! threads with ELF symbols, modules, report figures, but no sections and no
//! `file:line` — to stderr, whatever format and log directory the parent
//! uses. [`report`] works in the child (with its own fresh reporter state:
//! the parent's may have been locked by a thread the child does not have),
//! and dropping the [`Guard`] in the child neither waits for the parent's
//! reporter thread nor panics. The file trigger is not watched in the
//! child. Other users of the trigger signal that chained through
//! `signal-hook-registry` are not called in the child. Limits: the child's
//! signal-triggered reports are not rate-limited (the core coalesces only
//! triggers that arrive while a round runs); a trigger that reaches the
//! child between `fork()` and the child handler goes to the parent's pipe
//! and is lost; a fork while another thread is inside
//! [`register_section`] leaves that lock held in the child, so its
//! [`report`] would wait for it.
//!
//! # Blocked signals
//!
//! An application that blocks every signal before installing (the
//! `sigwait`/`signalfd` daemon pattern) passes the mask on to every thread
//! it starts, and a thread that blocks the capture signal cannot capture
//! itself. [`Builder::install`] warns on stderr when the installing thread
//! blocks the capture signal; guru's own threads (the reporter, the section
//! worker, a thread inside [`report`] for the length of the capture) unblock
//! the capture signal and the reporter the trigger signal too, so a blocked
//! `SIGUSR2` is still taken by the reporter. A report whose threads do not
//! answer because they block the capture signal says so and names the
//! inherited mask as the likely cause.
//!
//! # Secrets
//!
//! A report never shows a [`Secret`]; configuration keys, environment
//! variables and command-line flags with secret names are masked (names are
//! matched by words: `db_pass`, `apiKey` and `MYSQL_PWD` are secret,
//! `keyspace` is not), and every string is scanned for credential shapes
//! (URL passwords, tokens, auth headers, PEM keys). The rules and their
//! limits: [`redact`]. Section titles, bodies and errors are escaped, so no
//! line inside a report starts like its begin or end line.
//!
//! The text report prints source paths short, as a reader needs them: the
//! toolchain's `/rustc/<commit>/library/std/src/…` as `std/src/…` (also
//! `core/`, `alloc/`), a dependency's
//! `~/.cargo/registry/src/index.crates.io-<hash>/axum-0.8.9/src/…` as
//! `axum-0.8.9/src/…`, a git dependency's `~/.cargo/git/checkouts/…` from
//! the checkout's directory on; the application's own paths as DWARF has
//! them. The JSON report always has the full path.
//!
//! # Watchdog
//!
//! A hang should produce a report by itself. Register a [`heartbeat`] on
//! each loop that must keep turning and [`beat`](Heartbeat::beat) it every
//! turn:
//!
//! ```no_run
//! # use std::time::Duration;
//! let _guard = guru::setup_autorun(guru::package!())?;
//! let hb = guru::heartbeat("event-loop", Duration::from_millis(500));
//! loop {
//!     hb.beat();
//!     // ... one turn ...
//! #   break;
//! }
//! # Ok::<(), guru::Error>(())
//! ```
//!
//! When it misses its deadline, guru makes one automatic report whose begin
//! line and Report section say
//! `watchdog: heartbeat "event-loop" missed its 500 ms deadline (last beat 0.73 s ago, thread 1234 "event-loop")`,
//! with that thread first in Threads, marked `stalled`; the next report
//! after it beats again says it recovered and after how long. The watchdog
//! runs on guru's own reporter thread, so it fires whether the heartbeat's
//! thread is blocked in a system call, spinning, or holding a lock others
//! wait for. Automatic reports share one rate limit
//! ([`Builder::watchdog_min_interval`], default
//! [`DEFAULT_WATCHDOG_MIN_INTERVAL`], 30 s); stalls it holds back until
//! they end are counted in the next report. A machine suspend is not a
//! stall. Costs: `beat()` is one coarse clock read and one relaxed atomic
//! store (about 10 ns of thread-CPU measured, BENCHMARKS.md); with no
//! heartbeat the reporter sleeps without a timeout (0 wake-ups, 0 CPU);
//! with heartbeats it sleeps
//! until the earliest deadline — about one wake-up per second for ten
//! heartbeats of 1 s that keep beating — and once per deadline while one is
//! stalled. Details and limits: [`watchdog`].
//!
//! # Tokio stall detection
//!
//! With feature `tokio`, `Builder::tokio_stall_threshold` (opt-in) makes
//! an automatic report when a worker of a registered `multi_thread` runtime
//! has not come back to its scheduler for longer than the threshold — a
//! task blocking its worker inside one poll. guru sees it in tokio's
//! metrics: the worker's park and busy figures stop moving while it is not
//! parked. The report names the worker and its thread (first in Threads,
//! marked stalled), and Green Threads says which worker and for how long.
//! It needs sampling: while on, the reporter wakes four times per threshold
//! (8 wake-ups a second for 500 ms; atomic loads only), and spawns a tiny
//! probe task (at most one a second, only until every worker's thread is
//! known) that notes `tokio::runtime::worker_index()` and its thread id; a
//! worker no probe ran on is found by elimination (the one thread with a
//! worker's name not waiting in `futex`/`epoll_wait`), else the report says
//! "thread not known". Limits: only `multi_thread` runtimes are watched; a
//! threshold below 61 × the longest legitimate poll can flag a busy worker
//! (tokio publishes a busy worker's figures every 61 scheduler ticks: keep
//! it in the hundreds of ms); a runtime dropped while still registered can
//! look stalled (unregister it first); after `block_in_place` the noted
//! thread may be the worker's old one.
//!
//! # Stuck threads
//!
//! Every report (manual, crash, automatic) compares each captured thread
//! with the previous report of the process: its CPU time (its thread-CPU
//! clock, read by its capture handler on entry) and a hash of its stack (every return address; the
//! innermost frame by its function, so a loop inside one function matches
//! wherever it was caught). Every thread header shows its total CPU time
//! (`; cpu 0.010 s`), and a thread whose stack did not change gets
//! `same stack as report #3 (12.4 s ago), CPU +0 ms` (stuck) or
//! `..., CPU +11.9 s` (spinning in place) under its header — the jstack
//! "three dumps and compare them" routine in one look. Costs: none beyond
//! the capture (the handler reads its CPU clock anyway). Limits: a spinning loop that calls other non-inlined functions
//! is seen as having moved on when two reports catch it in different
//! callees; threads that did not answer are not compared; a reused thread
//! id is compared with the old thread's stack.
//!
//! # Crash and panic reports
//!
//! On by default. **A fatal signal** (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
//! SIGABRT, SIGSYS) makes a report, then the process dies exactly as it
//! would have without guru: same terminating signal, same exit status, a
//! core dump where one would have been written. Its begin line and Report
//! section name the signal, its `si_code` in words (`SEGV_MAPERR`,
//! `BUS_ADRERR`, `ILL_ILLOPN`, `FPE_INTDIV`, …), the fault address and the
//! crashing thread, which comes first in Threads, marked `(crashed: …)`,
//! unwound from the fault's registers (its first frame is the faulting
//! instruction). Package, Configuration (masked), the registered sections
//! (each at most [`CRASH_SECTION_BUDGET`]), Process and Modules follow;
//! a section that cannot come in time is listed as failed, with the reason.
//! The report goes where reports go (stderr, or a new file in
//! [`Builder::log_dir`], `fsync`ed), in the installed format.
//!
//! How: the crashing thread only saves its registers and wakes guru's crash
//! helper thread (`guru-crash`, started at install, idle on a futex), which
//! captures every thread and hands the round to the reporter thread. The
//! whole crash report has a deadline ([`Builder::crash_deadline`], default
//! 3 s): if the reporter has not started writing within two thirds of it
//! (it is blocked: the allocator's lock held by a thread that will never
//! let go, a section that never returns), the core writes its own report to
//! stderr (no allocation: frames with symbols and `module+0xoffset`, the
//! crashed thread first; Package, Configuration and Process listed as
//! failed sections saying why) and the process dies on time. Handlers installed
//! before guru are chained: Rust's stack-overflow handler still prints
//! `thread '…' has overflowed its stack` and aborts as Rust makes it abort
//! (the report, made before Rust's handler runs, shows the overflow's
//! SIGSEGV; Rust's message follows it); a fault an
//! earlier handler recovers from makes no report. A fatal signal sent by
//! another process (`kill -SEGV`) is not a crash and behaves as before. One
//! crash report per process: a second fatal signal while it runs makes none
//! (a second crashing thread waits in its handler, listed in Threads as not
//! answering: the crash handlers block the capture signal).
//! Details and limits: [`guru_core::crash`].
//!
//! **A panic** makes a report from a panic hook, chained after the previous
//! hook (whose `thread '…' panicked at …` message still comes first): the
//! panic's message and location in the Report section, the panicking thread
//! first, marked `(panicking, …)`. With `panic = "unwind"` the program goes
//! on; with `panic = "abort"` the abort that follows makes no second report.
//! Panic reports are rate-limited: at most one per [`Builder::min_interval`]
//! (default 1 s; at least [`MIN_PANIC_INTERVAL`]), and the next panic report
//! counts the panics that were not reported. Panics in guru's own threads
//! make none.
//!
//! Off: [`Builder::crash_reports(false)`](Builder::crash_reports),
//! [`Builder::panic_reports(false)`](Builder::panic_reports); in the core,
//! `guru_core::Options::crash_reports = false`.
//!
//! Limits: a thread without an alternate signal stack (threads started by C
//! code; Rust gives its threads one) that overflows its stack cannot run any
//! handler, and the kernel kills the process without a report. A stack
//! overflow is reported when Rust's handler recognises it (a fault in the
//! guard page it knows of), in `main` and spawned threads alike. When the
//! deadline passes, the process dies with what was written (a report
//! without its end line is incomplete); the core's fallback report always
//! goes to stderr, not to `log_dir`. A crash while a manual report holds the
//! capture round waits for it, within the deadline.
//!
//! # Portability
//!
//! Linux (x86_64 and aarch64, glibc or musl), like `guru-core`.
#![doc(test(attr(deny(warnings))))]

mod config;
pub mod context;
mod crash;
pub mod dump_socket;
mod error;
mod frames;
pub mod journald;
pub mod model;
mod output;
mod package;
mod procinfo;
pub mod redact;
mod report;
mod reporter;
mod secret;
mod sections;
mod state;
mod stuck;
pub mod symbols;
mod sys;
#[cfg(feature = "tokio")]
pub mod tokio;
#[cfg(feature = "tracing")]
pub mod tracing;
pub mod watchdog;

pub use config::DEFAULT_SECRET_KEYS;
pub use context::{LabelGuard, breadcrumb, label};
pub use crash::{CRASH_SECTION_BUDGET, MIN_PANIC_INTERVAL};
pub use error::Error;
pub use model::SCHEMA;
pub use package::Package;
pub use reporter::{
    Builder, DEFAULT_MIN_INTERVAL, Format, GUARD_DROP_WAIT, Guard, report, report_as, setup_autorun,
};
pub use secret::{MASK, Secret};
pub use sections::{SectionOutput, register_section};
pub use watchdog::{DEFAULT_WATCHDOG_MIN_INTERVAL, Heartbeat, heartbeat};

/// The capture engine, for its options and figures.
pub use guru_core as core;

#[doc(hidden)]
pub use package::__from_env as __package_from_env;

/// The README's Rust blocks, compiled as doctests (`cargo test --doc`), so the
/// snippets a newcomer copies keep compiling.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
