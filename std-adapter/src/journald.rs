//! Reports as journal entries ([`Builder::journald`](crate::Builder::journald)):
//! each report is **one** entry, sent with the journal's native protocol, so
//! `journalctl GURU_SEQUENCE=3 -o cat` prints it whole instead of a
//! 2 000-line report becoming 2 000 entries interleaved with other logs.
//!
//! # Fields
//! - `MESSAGE`: the report as rendered (text unless
//!   [`Builder::format`](crate::Builder::format) chose JSON); its newlines
//!   make it go in the protocol's binary-safe form
//!   (`MESSAGE\n<u64 little-endian length><bytes>\n`).
//! - `PRIORITY=6` (info), `SYSLOG_IDENTIFIER` (the service name).
//! - `GURU_PID`, `GURU_SEQUENCE` (the report number), `GURU_SERVICE`,
//!   `GURU_TRIGGER` (`SIGUSR2`, … for a signal, `file`, `call`, `dump`,
//!   `watchdog`, `crash SIGSEGV`, … for a fatal signal, `panic`),
//!   `GURU_FORMAT` (`text` or `json`).
//!
//! # Transport
//! One datagram to the journal socket ([`JOURNAL_SOCKET`] or
//! [`Builder::journald_socket`](crate::Builder::journald_socket)), sent
//! without blocking. A report too big for a datagram (`EMSGSIZE`, `ENOBUFS`)
//! goes as the protocol specifies: written into a `memfd`, sealed against
//! changes, and the descriptor passed in an `SCM_RIGHTS` message with no
//! payload. A full socket buffer is waited for up to 1 s.
//!
//! # Fallback
//! When the socket is absent or refuses the entry, the report goes to the
//! configured output (stderr or `log_dir`) after one stderr line
//! `guru: journald: ...` saying why.
//!
//! # Limits
//! journald itself caps an entry's size (`journald.conf`'s limits; 768 MiB
//! for a memfd entry by default) and may rate-limit a service's entries; what
//! it drops after accepting the datagram is not seen here.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use crate::model::{Report, Trigger};
use crate::sys;

/// The journal's native socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Appends one field in the native protocol: `KEY=value\n`, or the
/// binary-safe `KEY\n<u64 le length>value\n` when the value has a newline.
pub fn push_field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn trigger_word(t: &Trigger) -> String {
    match t {
        Trigger::Signal {
            signal,
            signal_name,
            ..
        } => signal_name
            .clone()
            .unwrap_or_else(|| format!("signal {signal}")),
        Trigger::File { .. } => "file".into(),
        Trigger::Call => "call".into(),
        Trigger::Dump { .. } => "dump".into(),
        Trigger::Watchdog(_) => "watchdog".into(),
        Trigger::Crash {
            signal,
            signal_name,
            ..
        } => format!(
            "crash {}",
            signal_name
                .clone()
                .unwrap_or_else(|| format!("signal {signal}"))
        ),
        Trigger::Panic { .. } => "panic".into(),
    }
}

/// The entry of one report.
pub(crate) fn entry(service: &str, r: &Report, rendered: &str) -> Vec<u8> {
    let mut e = Vec::with_capacity(rendered.len() + 256);
    let format = if rendered.starts_with('{') {
        "json"
    } else {
        "text"
    };
    push_field(&mut e, "MESSAGE", rendered.as_bytes());
    push_field(&mut e, "PRIORITY", b"6");
    push_field(&mut e, "SYSLOG_IDENTIFIER", one_line(service).as_bytes());
    push_field(&mut e, "GURU_PID", r.pid.to_string().as_bytes());
    push_field(&mut e, "GURU_SEQUENCE", r.sequence.to_string().as_bytes());
    push_field(&mut e, "GURU_SERVICE", one_line(service).as_bytes());
    push_field(&mut e, "GURU_TRIGGER", trigger_word(&r.trigger).as_bytes());
    push_field(&mut e, "GURU_FORMAT", format.as_bytes());
    e
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// Sends `entry` to the socket at `path`: a datagram, or a sealed memfd when
/// too big.
pub(crate) fn send(path: &Path, entry: &[u8]) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let fd = sock.as_raw_fd();
    let mut tries = 0;
    loop {
        match sys::send_datagram(fd, path, entry, None) {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMSGSIZE | libc::ENOBUFS)) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries == 0 => {
                tries += 1;
                sys::writable_soon(fd, 1000);
            }
            Err(e) => return Err(e),
        }
    }
    let memfd = sys::sealed_memfd("guru-report", entry)?;
    sys::send_datagram(fd, path, &[], Some(memfd.as_raw_fd()))
}

/// Sends one report as a journal entry; false (after one stderr line saying
/// why) when it must go to the configured output instead.
pub(crate) fn emit(path: &Path, service: &str, r: &Report, rendered: &str) -> bool {
    match send(path, &entry(service, r, rendered)) {
        Ok(()) => true,
        Err(e) => {
            let line = format!(
                "guru: journald: cannot send report #{} to {}: {e}; it follows on the configured output\n",
                r.sequence,
                path.display()
            );
            let deadline = guru_core::sys::monotonic_ns().saturating_add(100_000_000);
            let _ = guru_core::write::write_bounded(2, line.as_bytes(), deadline);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_use_the_binary_form_for_newlines() {
        let mut e = Vec::new();
        push_field(&mut e, "A", b"one");
        push_field(&mut e, "MESSAGE", b"x\ny");
        let mut want = b"A=one\nMESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"x\ny\n");
        assert_eq!(e, want);
    }
}
