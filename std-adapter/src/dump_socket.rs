//! The dump socket: `guru dump <pid>` asks a running process for a fresh
//! report over a per-process unix socket, and gets it on its own terminal.
//!
//! # Where
//! `$XDG_RUNTIME_DIR/guru/<pid>.sock` when `XDG_RUNTIME_DIR` names an
//! absolute directory owned by this process's effective uid, else
//! `/tmp/guru-<euid>/<pid>.sock` ([`socket_dir`]). The directory is created
//! mode 0700 and, before anything is bound in it, checked with `lstat`: a
//! directory (not a symbolic link), owned by the effective uid, with no
//! group or other permission bits. If it is not, the socket is not created
//! and one line on stderr says why: another user who made
//! `/tmp/guru-<uid>` first cannot intercept requests.
//!
//! # Who
//! Only a client of the same effective uid as the process, or root, is
//! served: the directory keeps other users out, and every connection's
//! `SO_PEERCRED` is checked too. A refused client gets one
//! `error refused: ...` line; the process notes refusals on stderr at most
//! once a minute (`guru: refused N dump request(s) ...`).
//!
//! # Protocol ([`PROTOCOL`])
//! The client sends one line, `guru-dump/1 text` or `guru-dump/1 json`
//! (at most [`MAX_REQUEST`] bytes). The answer is `ok <bytes>\n` followed by
//! the report in that format, or one line `error <why>\n`; then the process
//! closes the connection.
//!
//! # Cost and bounds
//! The listening socket is one more descriptor in the `poll` of the
//! `guru-reporter` thread: no thread, no timer, nothing while idle.
//! Connections are non-blocking and each has a deadline: [`READ_TIMEOUT`] to
//! send its request, [`WRITE_TIMEOUT`] to take the answer; a client that
//! sends nothing, sends garbage or never reads is dropped at its deadline or
//! at once, and never holds the reporter thread: the answer is written as
//! the client's socket takes it, between the thread's other work. At most
//! [`MAX_CONNECTIONS`] are open at once: a new one makes room by closing the
//! oldest that has not sent its request yet (so a flood of idle connections
//! cannot lock real clients out); when all are waiting for or taking a
//! report, it is answered `error busy` and closed (`guru dump` retries).
//!
//! # Reports
//! A request is a trigger like `SIGUSR2`: it shares the rate limit
//! ([`Builder::min_interval`](crate::Builder::min_interval)) and coalesces
//! with other triggers (requests that arrive together get the same report;
//! the first starts it, the others are counted as coalesced). Its report
//! goes to the clients only: the process's usual output (stderr,
//! `log_dir`, journald) gets no report for a dump, unless a signal or file
//! trigger asked for the same report. The report says `requested by: guru
//! dump from pid P (uid U)`.
//!
//! # Lifetime
//! Created at install ([`Builder::dump_socket`](crate::Builder::dump_socket),
//! on by default), removed when the [`Guard`](crate::Guard) drops or the
//! process exits through `exit(3)` (an `atexit` handler). A process killed
//! by a signal leaves its socket behind: at install, sockets in the
//! directory whose pid no longer exists and that nobody listens on are
//! removed, and `guru dump` tells a stale socket from a live one.
//!
//! # Limits
//! A forked child does not serve the socket (it has no reporter thread); it
//! stays its parent's. A process whose pid is reused while a live process of
//! another pid namespace sharing the same directory holds `<pid>.sock` gets
//! no socket (one line on stderr says so). Unix socket paths are limited to
//! 107 bytes: a longer `XDG_RUNTIME_DIR` gets no socket.

use std::ffi::OsStr;
use std::io::{self, Read as _};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Format, sys};

/// The request line's protocol word.
pub const PROTOCOL: &str = "guru-dump/1";
/// The longest request line, newline included.
pub const MAX_REQUEST: usize = 64;
/// How long a client has to send its request after connecting.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the whole answer once it is ready.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for its report at most (the rate limit holds
/// it up to `min_interval`).
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Connections served at once at most.
pub const MAX_CONNECTIONS: usize = 64;
/// How often refusals are noted on stderr at most.
const REFUSAL_NOTE_EVERY: Duration = Duration::from_secs(60);

/// The directory of dump sockets of a process whose environment has
/// `xdg_runtime_dir` (its `XDG_RUNTIME_DIR`, if any) and whose effective
/// uid is `uid`: `$XDG_RUNTIME_DIR/guru` when that is an absolute path, else
/// `/tmp/guru-<uid>`. (The process also falls back to `/tmp/guru-<uid>`
/// when its `XDG_RUNTIME_DIR` is not a directory it owns; `guru dump` looks
/// in both.)
pub fn socket_dir(xdg_runtime_dir: Option<&OsStr>, uid: u32) -> PathBuf {
    match xdg_runtime_dir.map(Path::new).filter(|p| p.is_absolute()) {
        Some(x) => x.join("guru"),
        None => fallback_dir(uid),
    }
}

/// `/tmp/guru-<uid>`.
pub fn fallback_dir(uid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/guru-{uid}"))
}

/// The socket's file name for process `pid` (its pid in its own namespace).
pub fn socket_name(pid: i32) -> String {
    format!("{pid}.sock")
}

/// Who connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    pub(crate) pid: i32,
    pub(crate) uid: u32,
}

enum State {
    /// Reading the request line.
    Reading(Vec<u8>),
    /// Waiting for the report.
    Waiting(Format),
    /// Writing the answer from this offset.
    Writing(Vec<u8>, usize),
    /// An error line was sent and our side shut down: what the client
    /// still sends is read and dropped until it closes (closing with its
    /// data unread would reset the connection before it reads the line).
    Closing,
}

struct Conn {
    stream: UnixStream,
    client: Client,
    deadline: Instant,
    state: State,
}

/// The listening socket and its connections; lives in the reporter thread.
pub(crate) struct Server {
    listener: UnixListener,
    path: PathBuf,
    inode: (u64, u64),
    conns: Vec<Conn>,
    euid: u32,
    refused: u64,
    refused_last: Option<Client>,
    refusal_noted: Option<Instant>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("path", &self.path)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

/// The socket path to remove at exit, and the pid that made it.
static AT_EXIT: Mutex<Option<ExitRemoval>> = Mutex::new(None);

/// The socket's path, its (device, inode), and the pid that bound it.
type ExitRemoval = (PathBuf, (u64, u64), i32);

extern "C" fn remove_at_exit() {
    if let Ok(mut g) = AT_EXIT.try_lock()
        && let Some((path, inode, pid)) = g.take()
        && pid == guru_core::sys::getpid()
    {
        remove_if_ours(&path, inode);
    }
}

fn remove_if_ours(path: &Path, inode: (u64, u64)) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == inode) {
        let _ = std::fs::remove_file(path);
    }
}

/// Creates (if missing) and checks the socket directory.
fn prepare_dir(dir: &Path, euid: u32) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = std::fs::symlink_metadata(dir)?;
    let why = if !m.file_type().is_dir() {
        Some("is not a directory (or is a symbolic link)".to_string())
    } else if m.uid() != euid {
        Some(format!("is owned by uid {}, not {euid}", m.uid()))
    } else if m.mode() & 0o077 != 0 {
        Some(format!("has mode {:o}, not 0700", m.mode() & 0o777))
    } else {
        None
    };
    match why {
        Some(w) => Err(io::Error::new(io::ErrorKind::PermissionDenied, w)),
        None => Ok(()),
    }
}

/// Whether a socket file is stale: nobody accepts connections on it.
fn nobody_listens(path: &Path) -> bool {
    matches!(
        UnixStream::connect(path).map_err(|e| e.raw_os_error()),
        Err(Some(libc::ECONNREFUSED | libc::ENOENT))
    )
}

/// Removes sockets of processes that no longer exist and that nobody
/// listens on.
fn clean_stale(dir: &Path, me: i32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".sock"))
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let path = e.path();
        if pid != me && pid > 0 && !sys::process_exists(pid) && nobody_listens(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Where this process's socket goes: its `XDG_RUNTIME_DIR` if that is an
/// absolute directory it owns, else `/tmp/guru-<euid>`.
fn choose_dir(euid: u32) -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| {
        std::fs::metadata(x).is_ok_and(|m| m.is_dir() && m.uid() == euid)
            && Path::new(x).is_absolute()
    });
    socket_dir(xdg.as_deref(), euid)
}

impl Server {
    /// Creates the socket (see the module docs); an error says why there
    /// is none.
    pub(crate) fn start() -> Result<Server, String> {
        let (euid, _) = sys::uids();
        let me = guru_core::sys::getpid();
        let dir = choose_dir(euid);
        prepare_dir(&dir, euid).map_err(|e| format!("{}: {e}", dir.display()))?;
        clean_stale(&dir, me);
        let path = dir.join(socket_name(me));
        if path.as_os_str().len() > 107 {
            return Err(format!(
                "{}: path too long for a unix socket",
                path.display()
            ));
        }
        if std::fs::symlink_metadata(&path).is_ok() {
            if !nobody_listens(&path) {
                return Err(format!(
                    "{}: another live process listens there (same pid in another pid namespace?)",
                    path.display()
                ));
            }
            // An earlier process with our pid left it behind.
            let _ = std::fs::remove_file(&path);
        }
        let listener = UnixListener::bind(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let m = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let inode = (m.dev(), m.ino());
        static AT_EXIT_ONCE: std::sync::Once = std::sync::Once::new();
        AT_EXIT_ONCE.call_once(|| sys::at_exit(remove_at_exit));
        *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()) = Some((path.clone(), inode, me));
        Ok(Server {
            listener,
            path,
            inode,
            conns: Vec::new(),
            euid,
            refused: 0,
            refused_last: None,
            refusal_noted: None,
        })
    }

    /// The descriptors to poll and their events: the listener first, then
    /// each connection.
    pub(crate) fn poll_set(&self) -> Vec<(RawFd, i16)> {
        let mut v = vec![(self.listener.as_raw_fd(), libc::POLLIN)];
        v.extend(self.conns.iter().map(|c| {
            let ev = match c.state {
                State::Reading(_) | State::Waiting(_) | State::Closing => libc::POLLIN,
                State::Writing(..) => libc::POLLOUT,
            };
            (c.stream.as_raw_fd(), ev)
        }));
        v
    }

    /// Milliseconds until the earliest connection deadline (-1: none).
    pub(crate) fn timeout_ms(&self) -> i32 {
        self.conns
            .iter()
            .map(|c| c.deadline)
            .min()
            .map_or(-1, crate::reporter::ms_until)
    }

    /// Serves what `poll` found (`revents` in [`Server::poll_set`]'s order)
    /// and drops connections past their deadline. Returns the clients whose
    /// request came in now: each is a trigger.
    pub(crate) fn service(&mut self, revents: &[i16]) -> Vec<Client> {
        self.service_expiring(revents, true)
    }

    /// [`Server::service`]; `expire`: drop connections past their deadline
    /// (only right after a `poll`, which saw whether they were ready).
    fn service_expiring(&mut self, revents: &[i16], expire: bool) -> Vec<Client> {
        let mut new = Vec::new();
        let now = Instant::now();
        let mut keep = Vec::with_capacity(self.conns.len());
        for (i, mut c) in std::mem::take(&mut self.conns).into_iter().enumerate() {
            let mut ev = revents.get(i + 1).copied().unwrap_or(0);
            if expire && ev == 0 && c.deadline <= now && matches!(c.state, State::Reading(_)) {
                // Its request may have come since the poll: one last look.
                ev = libc::POLLIN;
            }
            let alive = if ev != 0 {
                self.advance(&mut c, ev, &mut new)
            } else {
                true
            };
            if alive && (!expire || c.deadline > now) {
                keep.push(c);
            }
        }
        self.conns = keep;
        if revents.first().is_some_and(|&e| e != 0) {
            self.accept_all();
        }
        self.note_refusals();
        new
    }

    /// One connection's step; false when it is done.
    fn advance(&mut self, c: &mut Conn, ev: i16, new: &mut Vec<Client>) -> bool {
        match &mut c.state {
            State::Reading(buf) => {
                let mut chunk = [0u8; MAX_REQUEST];
                match c.stream.read(&mut chunk) {
                    Ok(0) => false,
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        match parse_request(buf) {
                            Request::Incomplete => true,
                            Request::Bad => {
                                let line = format!(
                                    "error bad request: send one line `{PROTOCOL} text` or `{PROTOCOL} json`\n"
                                );
                                close_with(c, &line);
                                true
                            }
                            Request::Dump(format) => {
                                c.state = State::Waiting(format);
                                c.deadline = Instant::now() + REPORT_TIMEOUT;
                                new.push(c.client);
                                true
                            }
                        }
                    }
                    Err(e) => e.kind() == io::ErrorKind::WouldBlock,
                }
            }
            // The client hung up (or sent more): it will not read the answer.
            State::Waiting(_) => {
                ev & (libc::POLLHUP | libc::POLLERR) == 0 && {
                    let mut chunk = [0u8; 16];
                    c.stream.read(&mut chunk).is_err()
                }
            }
            State::Closing => {
                let mut chunk = [0u8; 512];
                loop {
                    match c.stream.read(&mut chunk) {
                        Ok(0) => return false,
                        Ok(_) => {}
                        Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
                    }
                }
            }
            State::Writing(bytes, off) => {
                if ev & (libc::POLLHUP | libc::POLLERR) != 0 {
                    return false;
                }
                while let Some(rest) = bytes.get(*off..).filter(|r| !r.is_empty()) {
                    match sys::send_nonblocking(c.stream.as_raw_fd(), rest) {
                        Ok(n) if n > 0 => *off += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                        _ => return false,
                    }
                }
                false
            }
        }
    }

    fn accept_all(&mut self) {
        // Bounded work per wake-up: the rest wait in the backlog.
        for _ in 0..MAX_CONNECTIONS * 2 {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return, // WouldBlock, or out of descriptors: try later
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let fd = stream.as_raw_fd();
            let Ok((pid, uid, _)) = sys::peer_cred(fd) else {
                continue;
            };
            let client = Client { pid, uid };
            let mut conn = Conn {
                stream,
                client,
                deadline: Instant::now() + READ_TIMEOUT,
                state: State::Reading(Vec::new()),
            };
            // Full: the oldest connection that has not sent its request yet
            // makes room (an idle flood cannot lock real clients out).
            if self.conns.len() >= MAX_CONNECTIONS
                && let Some(oldest) = self
                    .conns
                    .iter()
                    .position(|c| matches!(c.state, State::Reading(_)))
            {
                self.conns.remove(oldest);
            }
            let full = self.conns.len() >= MAX_CONNECTIONS;
            if uid != self.euid && uid != 0 {
                self.refused += 1;
                self.refused_last = Some(client);
                let line = format!(
                    "error refused: uid {uid} is neither this process's user (uid {}) nor root\n",
                    self.euid
                );
                close_with(&mut conn, &line);
            } else if full {
                close_with(
                    &mut conn,
                    "error busy: too many dump requests at once; try again\n",
                );
            }
            // Past the limit a connection is answered and closed at once;
            // below it, one being closed lingers until the client closes.
            if !full {
                self.conns.push(conn);
            }
        }
    }

    /// One stderr line about refused clients, at most once a minute.
    fn note_refusals(&mut self) {
        if self.refused == 0
            || self
                .refusal_noted
                .is_some_and(|t| t.elapsed() < REFUSAL_NOTE_EVERY)
        {
            return;
        }
        let last = self.refused_last.unwrap_or(Client { pid: 0, uid: 0 });
        let line = format!(
            "guru: refused {} dump request(s) from other users (last: pid {} uid {}) on {}\n",
            self.refused,
            last.pid,
            last.uid,
            self.path.display()
        );
        let deadline = guru_core::sys::monotonic_ns().saturating_add(100_000_000);
        let _ = guru_core::write::write_bounded(2, line.as_bytes(), deadline);
        self.refused = 0;
        self.refusal_noted = Some(Instant::now());
    }

    /// Whether a client waits for a report, and in which formats.
    pub(crate) fn waiting_formats(&self) -> (bool, bool) {
        let mut text = false;
        let mut json = false;
        for c in &self.conns {
            match c.state {
                State::Waiting(Format::Text) => text = true,
                State::Waiting(Format::Json) => json = true,
                _ => {}
            }
        }
        (text, json)
    }

    /// Hands the report to every waiting client (written as their sockets
    /// take it, from the next `poll` on; the first part right now).
    pub(crate) fn deliver(&mut self, text: Option<&str>, json: Option<&str>) {
        let now = Instant::now();
        for c in &mut self.conns {
            let body = match c.state {
                State::Waiting(Format::Text) => text,
                State::Waiting(Format::Json) => json,
                _ => continue,
            };
            let Some(body) = body else { continue };
            let mut bytes = format!("ok {}\n", body.len()).into_bytes();
            bytes.extend_from_slice(body.as_bytes());
            c.state = State::Writing(bytes, 0);
            c.deadline = now + WRITE_TIMEOUT;
        }
        let revents: Vec<i16> = std::iter::once(0)
            .chain(self.conns.iter().map(|c| match c.state {
                State::Writing(..) => libc::POLLOUT,
                _ => 0,
            }))
            .collect();
        let _ = self.service_expiring(&revents, false);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        remove_if_ours(&self.path, self.inode);
        if let Ok(mut g) = AT_EXIT.lock() {
            *g = None;
        }
    }
}

/// The reporter's poll timeout shortened to the earliest connection
/// deadline, and the server's descriptors to poll.
pub(crate) fn add_to_poll(server: Option<&Server>, timeout: i32) -> (i32, Vec<(RawFd, i16)>) {
    let Some(s) = server else {
        return (timeout, Vec::new());
    };
    let t = match (timeout, s.timeout_ms()) {
        (-1, d) => d,
        (t, -1) => t,
        (t, d) => t.min(d),
    };
    (t, s.poll_set())
}

/// One `poll` over the reporter's descriptors (readable) and the server's:
/// which of the first are ready, and the server's `revents`.
pub(crate) fn poll(
    fds: &[RawFd],
    server_fds: &[(RawFd, i16)],
    timeout: i32,
) -> io::Result<(Vec<bool>, Vec<i16>)> {
    let all: Vec<(RawFd, i16)> = fds
        .iter()
        .map(|&fd| (fd, libc::POLLIN))
        .chain(server_fds.iter().copied())
        .collect();
    let mut revents = sys::poll_events(&all, timeout)?;
    let server = revents.split_off(fds.len());
    Ok((revents.into_iter().map(|r| r != 0).collect(), server))
}

/// A dump request as a trigger: it starts the next report if none is held,
/// else it is counted as coalesced into the held one.
pub(crate) fn hold(held: &mut Option<crate::report::Source>, client: Client) {
    if held.is_none() {
        *held = Some(crate::report::Source::Dump {
            pid: client.pid,
            uid: client.uid,
        });
    } else {
        guru_core::note_trigger(&guru_core::Trigger {
            unix_ns: guru_core::sys::realtime_ns(),
            code: guru_core::trigger::CODE_DUMP,
            sender_pid: client.pid,
            sender_uid: client.uid,
            ..guru_core::Trigger::default()
        });
    }
}

/// Renders `report` in the formats the waiting clients asked for and hands
/// it to them.
pub(crate) fn deliver(server: &mut Server, report: &crate::model::Report) {
    let (text, json) = server.waiting_formats();
    let text = text.then(|| report.render(Format::Text));
    let json = json.then(|| report.render(Format::Json));
    server.deliver(text.as_deref(), json.as_deref());
}

/// Sends one error line, shuts our side down, and leaves the connection
/// to linger (reading what the client still sends) until its deadline.
fn close_with(c: &mut Conn, line: &str) {
    let _ = sys::send_nonblocking(c.stream.as_raw_fd(), line.as_bytes());
    let _ = c.stream.shutdown(std::net::Shutdown::Write);
    c.state = State::Closing;
    c.deadline = Instant::now() + READ_TIMEOUT;
}

enum Request {
    Incomplete,
    Bad,
    Dump(Format),
}

fn parse_request(buf: &[u8]) -> Request {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_REQUEST {
            Request::Bad
        } else {
            Request::Incomplete
        };
    };
    let line = &buf[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line
        .strip_prefix(PROTOCOL.as_bytes())
        .and_then(|r| r.strip_prefix(b" "))
    {
        Some(b"text") => Request::Dump(Format::Text),
        Some(b"json") => Request::Dump(Format::Json),
        _ => Request::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert!(matches!(
            parse_request(b"guru-dump/1 text\n"),
            Request::Dump(Format::Text)
        ));
        assert!(matches!(
            parse_request(b"guru-dump/1 json\r\n"),
            Request::Dump(Format::Json)
        ));
        assert!(matches!(
            parse_request(b"guru-dump/1 te"),
            Request::Incomplete
        ));
        assert!(matches!(parse_request(b"GET / HTTP/1.1\r\n"), Request::Bad));
        assert!(matches!(parse_request(&[b'x'; 64]), Request::Bad));
        assert!(matches!(parse_request(b"guru-dump/1 xml\n"), Request::Bad));
    }

    #[test]
    fn directories() {
        assert_eq!(
            socket_dir(Some(OsStr::new("/run/user/7")), 7),
            Path::new("/run/user/7/guru")
        );
        assert_eq!(
            socket_dir(Some(OsStr::new("rel")), 7),
            Path::new("/tmp/guru-7")
        );
        assert_eq!(socket_dir(None, 0), Path::new("/tmp/guru-0"));
    }
}
