//! Writing the report: a fixed buffer that flushes to a file descriptor with
//! `write(2)`, bounded in time, and the tally of output that could not be
//! written.
//!
//! # Bounded writes
//! A report is written by a signal handler (core-only mode) or by the std
//! reporter thread, to a descriptor guru does not own: a pipe to a log
//! collector that may stall, a terminal, a file. No write may wait past its
//! deadline. Before each write the descriptor is `poll(2)`ed for `POLLOUT`
//! with the time left; once it is writable, at most [`CHUNK`] bytes are
//! written at once (a pipe that polls writable has room for at least one page,
//! so such a write does not block even on a blocking descriptor). `EINTR` and
//! `EAGAIN` (a non-blocking descriptor) wait again in `poll`. When the
//! deadline passes with the descriptor still full, the rest of the report is
//! dropped: its size, the report's number and why are added to [`DROPS`]
//! (preallocated atomics), and the next report says so in its Report section
//! ([`crate::render::write_output_dropped`]). A line saying that the report
//! was not written whole is added at once if the descriptor takes it without
//! waiting.
//!
//! # Limits
//! - A descriptor that polls writable but then blocks on a write of one chunk
//!   still blocks: a terminal stopped with `^S`, a pipe another thread of the
//!   process fills between our `poll` and our `write`, a socket whose send
//!   buffer is nearly full, a file on a hung NFS mount. Pipes and FIFOs with
//!   only guru writing, regular files on local disks and unix sockets do not.
//! - A pipe whose reader has gone away raises `SIGPIPE` on the write (the
//!   process's disposition decides; Rust programs ignore it and get `EPIPE`).
//! - Several reports cut in a row are added up; the reason kept is the last
//!   one's.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use core::fmt;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::sys;

/// Most bytes given to one `write(2)`: `PIPE_BUF` on Linux, one page. A pipe
/// that polls writable accepts this much without blocking.
pub const CHUNK: usize = 4096;

/// The reason recorded when the deadline passed with the descriptor full.
pub const TIMED_OUT: sys::Errno = libc::ETIMEDOUT;

/// How long [`FdSink::write_all_fd`] waits at most for the descriptor (100 ms).
pub const DEFAULT_BUDGET_NS: u64 = 100_000_000;

/// A write that stopped before the end of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Bytes that were written before it stopped.
    pub written: usize,
    /// Why: an errno, or [`TIMED_OUT`].
    pub errno: sys::Errno,
}

/// Writes `bytes` to `fd` until done or until the monotonic clock passes
/// `deadline_ns` with the descriptor still not writable (see the module docs,
/// # Bounded writes). Short writes, `EINTR` and `EAGAIN` are retried.
///
/// # Async-signal safety
/// `poll(2)`, `write(2)` and raw `clock_gettime`; no allocation, no locks.
pub fn write_bounded(fd: i32, bytes: &[u8], deadline_ns: u64) -> Result<(), Cut> {
    let mut written = 0usize;
    while written < bytes.len() {
        let now = sys::monotonic_ns();
        // Round up so that a wait never ends a little before the deadline.
        let left_ms = deadline_ns.saturating_sub(now).div_ceil(1_000_000);
        let timeout = i32::try_from(left_ms).unwrap_or(i32::MAX);
        match sys::poll_writable(fd, timeout) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Cut {
                    written,
                    errno: TIMED_OUT,
                });
            }
            Err(libc::EINTR) => continue,
            Err(errno) => return Err(Cut { written, errno }),
        }
        let end = written.saturating_add(CHUNK).min(bytes.len());
        let chunk = bytes.get(written..end).unwrap_or(&[]);
        match sys::write(fd, chunk) {
            Ok(0) => {
                return Err(Cut {
                    written,
                    errno: libc::EIO,
                });
            }
            Ok(n) => written = written.saturating_add(n),
            // Someone else filled the descriptor after our poll, or a signal
            // came: wait again in poll, within the same deadline.
            Err(libc::EINTR) | Err(libc::EAGAIN) => continue,
            Err(errno) => return Err(Cut { written, errno }),
        }
    }
    Ok(())
}

/// What could not be written, since the last report written whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Bytes of reports that were not written.
    pub bytes: u64,
    /// Reports that were not written whole.
    pub reports: u64,
    /// Why the last one was cut: an errno, or [`TIMED_OUT`].
    pub reason: sys::Errno,
    /// Sequence number of the last report cut.
    pub last_sequence: u64,
}

impl Dropped {
    /// Whether anything was dropped.
    ///
    /// # Async-signal safety
    /// Reads fields.
    pub fn any(&self) -> bool {
        self.bytes > 0 || self.reports > 0
    }
}

/// Says why a write stopped, for the report ("the reader did not drain ...").
///
/// # Async-signal safety
/// Formats into the caller's writer; no allocation.
pub fn write_reason(w: &mut impl fmt::Write, errno: sys::Errno) -> fmt::Result {
    match errno {
        TIMED_OUT => write!(
            w,
            "the output stayed full until the write deadline: a pipe or terminal nobody reads fast enough"
        ),
        libc::EPIPE => write!(w, "the reader of the output is gone (EPIPE)"),
        libc::ENOSPC => write!(w, "no space left on the device (ENOSPC)"),
        libc::EFBIG => write!(w, "the file size limit was reached (EFBIG)"),
        libc::EBADF => write!(w, "the output descriptor is not open for writing (EBADF)"),
        libc::EIO => write!(w, "input/output error (EIO)"),
        e => write!(w, "write failed with errno {e}"),
    }
}

/// The tally of output dropped by bounded writes (one per process, in
/// static memory, so nothing is allocated to count).
#[derive(Debug)]
pub struct DropLog {
    bytes: AtomicU64,
    reports: AtomicU64,
    reason: AtomicI32,
    last_sequence: AtomicU64,
}

/// The process's tally of dropped output: core-only reports and the std
/// adapter's reporter both add to it; every report shows it (Report section)
/// until a report is written whole, which subtracts what it showed.
pub static DROPS: DropLog = DropLog::new();

impl DropLog {
    /// An empty tally.
    ///
    /// # Async-signal safety
    /// Constructs a value.
    pub const fn new() -> DropLog {
        DropLog {
            bytes: AtomicU64::new(0),
            reports: AtomicU64::new(0),
            reason: AtomicI32::new(0),
            last_sequence: AtomicU64::new(0),
        }
    }

    /// Counts one report of which `bytes` were not written, and why.
    ///
    /// # Async-signal safety
    /// Atomics only.
    pub fn record(&self, bytes: u64, reason: sys::Errno, sequence: u64) {
        self.reason.store(reason, Ordering::Relaxed);
        self.last_sequence.store(sequence, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.reports.fetch_add(1, Ordering::Release);
    }

    /// What is counted now.
    ///
    /// # Async-signal safety
    /// Atomics only.
    pub fn snapshot(&self) -> Dropped {
        let reports = self.reports.load(Ordering::Acquire);
        Dropped {
            bytes: self.bytes.load(Ordering::Relaxed),
            reports,
            reason: self.reason.load(Ordering::Relaxed),
            last_sequence: self.last_sequence.load(Ordering::Relaxed),
        }
    }

    /// A report that showed `seen` was written whole: those drops have been
    /// told. Drops counted since `seen` was taken stay for the next report.
    ///
    /// # Async-signal safety
    /// Atomics only.
    pub fn acknowledge(&self, seen: &Dropped) {
        let sub = |a: &AtomicU64, n: u64| {
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        };
        sub(&self.bytes, seen.bytes);
        sub(&self.reports, seen.reports);
    }
}

impl Default for DropLog {
    fn default() -> Self {
        DropLog::new()
    }
}

/// Writes, without waiting, the line that says report `sequence` was not
/// written whole — if the descriptor takes it now; otherwise the next report
/// says so.
///
/// # Async-signal safety
/// Formats into a stack buffer; `poll(2)` with no wait, `write(2)`.
pub fn write_cut_note(fd: i32, sequence: u64, dropped: u64, reason: sys::Errno) {
    use fmt::Write as _;
    let mut buf = [0u8; 256];
    let mut w = crate::format::SliceWriter::new(&mut buf);
    let _ = write!(
        w,
        "\nguru: report #{sequence} not written whole: {dropped} bytes dropped: "
    );
    let _ = write_reason(&mut w, reason);
    let _ = writeln!(w);
    if sys::poll_writable(fd, 0) == Ok(true) {
        let _ = write_bounded(fd, w.as_str().as_bytes(), 0);
    }
}

/// A `core::fmt::Write` sink over a caller-provided buffer that flushes to
/// `fd` whenever the buffer fills, each flush bounded by the sink's deadline
/// (see [`write_bounded`]). After a write error or the deadline, later output
/// is counted as dropped instead of written (the report must never block or
/// crash the process).
///
/// # Async-signal safety
/// Copies into the buffer and calls `poll(2)`/`write(2)`; no allocation, no
/// locks.
#[derive(Debug)]
pub struct FdSink<'b> {
    fd: i32,
    buf: &'b mut [u8],
    len: usize,
    written: usize,
    dropped: usize,
    deadline_ns: u64,
    error: Option<sys::Errno>,
}

impl<'b> FdSink<'b> {
    /// A sink writing to `fd` through `buf`, giving up on output the
    /// descriptor has not taken when the monotonic clock passes `deadline_ns`.
    ///
    /// # Async-signal safety
    /// Constructs a value.
    pub fn new(fd: i32, buf: &'b mut [u8], deadline_ns: u64) -> FdSink<'b> {
        FdSink {
            fd,
            buf,
            len: 0,
            written: 0,
            dropped: 0,
            deadline_ns,
            error: None,
        }
    }

    /// Writes all of `bytes` to `fd` within [`DEFAULT_BUDGET_NS`] from now
    /// (see [`write_bounded`]).
    ///
    /// # Async-signal safety
    /// `poll(2)`, `write(2)`, `clock_gettime`.
    pub fn write_all_fd(fd: i32, bytes: &[u8]) -> Result<(), sys::Errno> {
        let deadline = sys::monotonic_ns().saturating_add(DEFAULT_BUDGET_NS);
        write_bounded(fd, bytes, deadline).map_err(|cut| cut.errno)
    }

    /// Sends buffered bytes to the descriptor (or counts them as dropped
    /// after an error or the deadline).
    ///
    /// # Async-signal safety
    /// `poll(2)`, `write(2)`.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        if self.error.is_none() {
            let pending = self.buf.get(..self.len).unwrap_or(&[]);
            match write_bounded(self.fd, pending, self.deadline_ns) {
                Ok(()) => self.written += self.len,
                Err(cut) => {
                    self.written += cut.written;
                    self.dropped += self.len.saturating_sub(cut.written);
                    self.error = Some(cut.errno);
                }
            }
        } else {
            self.dropped += self.len;
        }
        self.len = 0;
    }

    /// Raw bytes (not necessarily UTF-8).
    ///
    /// # Async-signal safety
    /// Copies into the buffer; may call `poll(2)`/`write(2)`.
    pub fn write_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len >= self.buf.len() {
                self.flush();
                if self.buf.is_empty() {
                    self.dropped += bytes.len();
                    return;
                }
            }
            let room = self.buf.len() - self.len;
            let n = room.min(bytes.len());
            if let (Some(dst), Some(src)) =
                (self.buf.get_mut(self.len..self.len + n), bytes.get(..n))
            {
                dst.copy_from_slice(src);
            }
            self.len += n;
            bytes = bytes.get(n..).unwrap_or(&[]);
        }
    }

    /// Total bytes handed to the descriptor so far.
    ///
    /// # Async-signal safety
    /// Reads a field.
    pub fn bytes_written(&self) -> usize {
        self.written
    }

    /// Bytes that were not written (after an error or the deadline).
    ///
    /// # Async-signal safety
    /// Reads a field.
    pub fn bytes_dropped(&self) -> usize {
        self.dropped
    }

    /// The first write error ([`TIMED_OUT`] for the deadline), if any.
    ///
    /// # Async-signal safety
    /// Reads a field.
    pub fn error(&self) -> Option<sys::Errno> {
        self.error
    }
}

impl fmt::Write for FdSink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use core::fmt::Write as _;

    fn pipe() -> [i32; 2] {
        let mut fds = [0i32; 2];
        // SAFETY: test-only pipe creation into a valid array.
        #[allow(unsafe_code)]
        let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(r, 0);
        fds
    }

    #[test]
    fn flushes_in_chunks_through_a_pipe() {
        let fds = pipe();
        let mut buf = [0u8; 7];
        let mut sink = FdSink::new(fds[1], &mut buf, u64::MAX);
        let tail = "and more text";
        write!(sink, "hello {} world {tail}", 42).unwrap();
        sink.flush();
        let expected = b"hello 42 world and more text";
        assert_eq!(sink.bytes_written(), expected.len());
        assert_eq!(sink.bytes_dropped(), 0);
        let mut out = [0u8; 64];
        let n = sys::read(fds[0], &mut out).unwrap();
        assert_eq!(&out[..n], expected);
    }

    #[test]
    fn a_full_blocking_pipe_is_given_up_at_the_deadline() {
        let fds = pipe();
        // The smallest pipe: one page.
        // SAFETY: fcntl on a descriptor we own.
        #[allow(unsafe_code)]
        let size = unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 4096) };
        assert!(size >= 4096);
        let bytes = [b'x'; 3 * 65536];
        let deadline = sys::monotonic_ns() + 20_000_000;
        // A blocking descriptor nobody reads: the old loop blocked forever.
        let cut = write_bounded(fds[1], &bytes, deadline).unwrap_err();
        assert_eq!(cut.errno, TIMED_OUT);
        assert_eq!(cut.written, size as usize);
        assert!(sys::monotonic_ns() >= deadline);
    }

    #[test]
    fn the_tally_counts_until_acknowledged() {
        let log = DropLog::new();
        log.record(100, TIMED_OUT, 3);
        let seen = log.snapshot();
        log.record(5, libc::EPIPE, 4);
        log.acknowledge(&seen);
        let left = log.snapshot();
        assert_eq!((left.bytes, left.reports), (5, 1));
        assert_eq!((left.reason, left.last_sequence), (libc::EPIPE, 4));
    }
}
