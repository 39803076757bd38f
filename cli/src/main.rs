//! `guru`: the operator's tool for Guru Meditation Reports.
//!
//! - `guru dump <pid> [--json] [--timeout <secs>]`: a fresh report of a
//!   running process that uses the std adapter, on this terminal.
//! - `guru symbolize [<report>|-] [--debug-dir <dir>]... [--binary <path>]...`:
//!   a stripped build's report with every frame resolved, by build-id.
//! - `guru summarize <report>`: hundreds of threads at a glance.
//! - `guru diff <older> <newer>`: what changed between two reports.
//!
//! Reports are read and written with the std adapter's typed model
//! (`guru::model`), text or JSON (told apart by the first character).
//! Exit status: 0 on success, 1 on failure (one line on stderr says what to
//! do next), 2 on bad usage.

mod analyze;
mod dump;
mod symbolize;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use guru::model::Report;

#[derive(Parser, Debug)]
#[command(
    name = "guru",
    version,
    about = "The operator's tool for Guru Meditation Reports"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a fresh report of a running process (one that uses the std
    /// adapter `guru`) on stdout. The process keeps running; its own output
    /// gets no report.
    ///
    /// Example: guru dump 4242 --json > report.json
    Dump {
        /// The process id (as this shell sees it; a container's process is
        /// reached through /proc/<pid>/root when run as root).
        pid: i32,
        /// One JSON document (schema guru-report/1) instead of text.
        #[arg(long)]
        json: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Connect to this socket instead of looking for the process's.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Resolve every frame of a stripped build's report — function, inlined
    /// frames, file:line — from debug info found by build-id, and write it
    /// back in the same format. Modules left unresolved are listed on stderr.
    ///
    /// Example: guru symbolize report.txt --debug-dir ./debug > resolved.txt
    Symbolize {
        /// The report (text or JSON); `-` or nothing for stdin.
        report: Option<PathBuf>,
        /// A directory with a `.build-id/ab/cdef….debug` tree (default
        /// /usr/lib/debug); may be given several times.
        #[arg(long = "debug-dir", value_name = "DIR")]
        debug_dirs: Vec<PathBuf>,
        /// An unstripped binary or debug file, used for the module whose
        /// build-id it carries; may be given several times.
        #[arg(long = "binary", value_name = "PATH")]
        binaries: Vec<PathBuf>,
    },
    /// Threads grouped by identical stack, counts by state, the functions
    /// most threads are in.
    ///
    /// Example: guru summarize report.txt
    Summarize {
        /// The report (text or JSON); `-` for stdin.
        report: PathBuf,
    },
    /// Two reports of the same process: threads whose stack did not change
    /// (stuck candidates) first, then threads that appeared or vanished.
    ///
    /// Example: guru diff before.txt after.txt
    Diff {
        /// The earlier report.
        older: PathBuf,
        /// The later report.
        newer: PathBuf,
    },
}

/// A failure: what to say on stderr.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl<T: std::fmt::Display> From<T> for Failure {
    fn from(e: T) -> Failure {
        Failure(e.to_string())
    }
}

/// How a report was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
}

/// Reads a report from `path` (`-`: stdin), text or JSON.
pub(crate) fn read_report(path: Option<&std::path::Path>) -> Result<(Report, Format), Failure> {
    use std::io::Read as _;
    let (name, input) = match path {
        None => ("stdin".to_string(), read_stdin()?),
        Some(p) if p.as_os_str() == "-" => ("stdin".to_string(), read_stdin()?),
        Some(p) => {
            let mut s = String::new();
            std::fs::File::open(p)
                .and_then(|mut f| f.read_to_string(&mut s))
                .map_err(|e| Failure(format!("cannot read {}: {e}", p.display())))?;
            (p.display().to_string(), s)
        }
    };
    parse_report(&name, &input)
}

fn read_stdin() -> Result<String, Failure> {
    use std::io::Read as _;
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Failure(format!("cannot read stdin: {e}")))?;
    Ok(s)
}

/// Parses a text or JSON report (JSON when it starts with `{`).
pub(crate) fn parse_report(name: &str, input: &str) -> Result<(Report, Format), Failure> {
    if input.trim_start().starts_with('{') {
        Report::from_json(input.trim())
            .map(|r| (r, Format::Json))
            .map_err(|e| Failure(format!("{name}: {e}")))
    } else {
        Report::from_text(input)
            .map(|r| (r, Format::Text))
            .map_err(|e| Failure(format!("{name}: not a guru text report: {e}")))
    }
}

/// Writes `s` to stdout; a closed stdout (`| head`) is not an error.
pub(crate) fn print(s: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure(format!("cannot write to stdout: {e}"))),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Dump {
            pid,
            json,
            timeout,
            socket,
        } => {
            if !(timeout > 0.0 && timeout <= 86_400.0) {
                return Err(Failure(
                    "--timeout must be more than 0 and at most 86400 seconds".into(),
                ));
            }
            let body = dump::dump(
                pid,
                json,
                std::time::Duration::from_secs_f64(timeout),
                socket.as_deref(),
            )?;
            print(&body)?;
            if !body.ends_with('\n') {
                print("\n")?;
            }
            Ok(())
        }
        Command::Symbolize {
            report,
            debug_dirs,
            binaries,
        } => {
            let (mut r, format) = read_report(report.as_deref())?;
            let unresolved = symbolize::symbolize(&mut r, &debug_dirs, &binaries);
            match format {
                Format::Text => print(&symbolize::text(&r))?,
                Format::Json => {
                    print(&r.to_json())?;
                    print("\n")?;
                }
            }
            for line in unresolved {
                eprintln!("guru symbolize: unresolved: {line}");
            }
            Ok(())
        }
        Command::Summarize { report } => {
            let (r, _) = read_report(Some(&report))?;
            print(&analyze::summarize(&r))
        }
        Command::Diff { older, newer } => {
            let (a, _) = read_report(Some(&older))?;
            let (b, _) = read_report(Some(&newer))?;
            print(&analyze::diff(&a, &b))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(why)) => {
            eprintln!("guru: {why}");
            ExitCode::FAILURE
        }
    }
}
