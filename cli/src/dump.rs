//! `guru dump`: asks a process for a report over its dump socket
//! (`guru::dump_socket`, which describes the protocol and the bounds).
//!
//! The socket is looked for where the process puts it: its
//! `XDG_RUNTIME_DIR` (read from `/proc/<pid>/environ`) `/guru/`, then
//! `/tmp/guru-<uid>/`, named by the process's pid in its own pid namespace
//! (`NSpid` in `/proc/<pid>/status`). A process in another mount namespace
//! (a container) is reached through `/proc/<pid>/root/…`, which takes root
//! (or the right to ptrace it). A socket nobody listens on is stale (an
//! earlier process with this pid died without removing it): it is removed
//! and not used.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guru::dump_socket::{PROTOCOL, fallback_dir, socket_dir, socket_name};

use crate::Failure;

/// What `/proc/<pid>/status` says.
struct Status {
    euid: u32,
    /// The pid in the process's own (innermost) pid namespace.
    ns_pid: i32,
    name: String,
}

fn status(pid: i32) -> Result<Status, Failure> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure(format!(
                "no process {pid} (check the pid with `ps -p {pid}`)"
            ))
        } else {
            Failure(format!("cannot read /proc/{pid}/status: {e}"))
        }
    })?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    let euid = field("Uid:")
        .split_whitespace()
        .nth(1)
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| Failure(format!("/proc/{pid}/status has no Uid line")))?;
    let ns_pid = field("NSpid:")
        .split_whitespace()
        .last()
        .and_then(|p| p.parse().ok())
        .unwrap_or(pid);
    Ok(Status {
        euid,
        ns_pid,
        name: field("Name:"),
    })
}

#[allow(unsafe_code)] // one call without preconditions
fn my_euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// The process's `XDG_RUNTIME_DIR`, if it has one and we may read it.
fn xdg_of(pid: i32) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt as _;
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"XDG_RUNTIME_DIR="))
        .map(|v| std::ffi::OsStr::from_bytes(v).to_os_string())
}

/// Whether `pid` lives in our mount namespace (unknown: assume so).
fn same_mount_ns(pid: i32) -> bool {
    match (
        std::fs::read_link("/proc/self/ns/mnt"),
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => true,
    }
}

/// Where the process's socket may be, in the order to try.
fn candidates(pid: i32, st: &Status) -> Vec<PathBuf> {
    let root = if same_mount_ns(pid) {
        PathBuf::from("/")
    } else {
        PathBuf::from(format!("/proc/{pid}/root"))
    };
    let mut dirs = vec![socket_dir(xdg_of(pid).as_deref(), st.euid)];
    let fallback = fallback_dir(st.euid);
    if !dirs.contains(&fallback) {
        dirs.push(fallback);
    }
    dirs.iter()
        .map(|d| {
            root.join(d.strip_prefix("/").unwrap_or(d))
                .join(socket_name(st.ns_pid))
        })
        .collect()
}

/// Where the process's stderr goes, for the no-socket message.
fn stderr_of(pid: i32) -> String {
    match std::fs::read_link(format!("/proc/{pid}/fd/2")) {
        Ok(p) => format!("its stderr is {}", p.display()),
        Err(_) => "it goes to its stderr or its log directory".into(),
    }
}

/// Asks `pid` for a report; returns the report as the process wrote it.
pub(crate) fn dump(
    pid: i32,
    json: bool,
    timeout: Duration,
    socket: Option<&Path>,
) -> Result<String, Failure> {
    let deadline = Instant::now() + timeout;
    if let Some(path) = socket {
        let stream = UnixStream::connect(path)
            .map_err(|e| Failure(format!("cannot connect to {}: {e}", path.display())))?;
        return request_retrying(stream, path, json, deadline, pid);
    }
    if pid <= 0 {
        return Err(Failure(format!("{pid} is not a process id")));
    }
    let st = status(pid)?;
    let me = my_euid();
    if me != 0 && me != st.euid {
        return Err(Failure(format!(
            "refused: process {pid} ({}) runs as uid {}, you are uid {me}: only that user or \
             root can get its report (run guru dump as that user, or with sudo)",
            st.name, st.euid
        )));
    }
    let tried = candidates(pid, &st);
    let mut stale = Vec::new();
    for path in &tried {
        match UnixStream::connect(path) {
            Ok(stream) => return request_retrying(stream, path, json, deadline, pid),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                // Nobody listens: left behind by a dead process.
                let _ = std::fs::remove_file(path);
                stale.push(path.display().to_string());
            }
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                return Err(Failure(format!(
                    "refused: cannot enter {} ({e}): only the process's user or root can get its report",
                    path.parent().unwrap_or(path).display()
                )));
            }
            Err(_) => {}
        }
    }
    let looked: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    let stale_note = if stale.is_empty() {
        String::new()
    } else {
        format!(" (removed stale socket {})", stale.join(", "))
    };
    Err(Failure(format!(
        "process {pid} ({}) has no guru dump socket (looked for {}){stale_note}: it does not use \
         the std adapter `guru`, uses guru-core only, or turned the socket off \
         (Builder::dump_socket(false)). Get a report with `kill -USR2 {pid}`: {}",
        st.name,
        looked.join(" and "),
        stderr_of(pid)
    )))
}

/// [`request`], again while the process answers `busy` (too many
/// connections at once) and time is left.
fn request_retrying(
    stream: UnixStream,
    path: &Path,
    json: bool,
    deadline: Instant,
    pid: i32,
) -> Result<String, Failure> {
    let mut stream = stream;
    loop {
        match request(stream, json, deadline, pid) {
            Err(Failure(why)) if why.contains("says: busy") && left(deadline).is_ok() => {
                std::thread::sleep(Duration::from_millis(100).min(left(deadline)?));
                stream = UnixStream::connect(path)
                    .map_err(|e| Failure(format!("cannot connect to {}: {e}", path.display())))?;
            }
            other => return other,
        }
    }
}

fn left(deadline: Instant) -> Result<Duration, Failure> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(Failure(
            "timed out waiting for the report (try a longer --timeout)".into(),
        ))
    } else {
        Ok(d)
    }
}

fn request(
    mut stream: UnixStream,
    json: bool,
    deadline: Instant,
    pid: i32,
) -> Result<String, Failure> {
    let timeout_err = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            Failure(format!(
                "timed out waiting for process {pid}'s report (try a longer --timeout)"
            ))
        } else {
            Failure(format!("the connection to process {pid} failed: {e}"))
        }
    };
    stream.set_write_timeout(Some(left(deadline)?))?;
    let line = format!("{PROTOCOL} {}\n", if json { "json" } else { "text" });
    // A process that refuses may answer and shut down before reading the
    // request: read its answer whatever the write says.
    let written = stream.write_all(line.as_bytes());
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        stream.set_read_timeout(Some(left(deadline)?))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if !answer.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                break;
            }
            Err(e) => return Err(timeout_err(e)),
        }
    }
    if answer.is_empty()
        && let Err(e) = written
    {
        return Err(timeout_err(e));
    }
    let nl = answer.iter().position(|&b| b == b'\n').ok_or_else(|| {
        Failure(format!(
            "process {pid} closed the connection without an answer"
        ))
    })?;
    let head = String::from_utf8_lossy(&answer[..nl]).into_owned();
    let body = &answer[nl + 1..];
    if let Some(why) = head.strip_prefix("error ") {
        return Err(Failure(format!("process {pid} says: {why}")));
    }
    let len: usize = head
        .strip_prefix("ok ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Failure(format!("process {pid} answered {head:?}, not a report")))?;
    if body.len() != len {
        return Err(Failure(format!(
            "process {pid}'s report was cut: {} of {len} bytes",
            body.len()
        )));
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| Failure(format!("process {pid}'s report is not UTF-8")))
}
