//! Writing the report: a fixed buffer that flushes to a file descriptor with
//! `write(2)`, retrying short writes and `EINTR`.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use core::fmt;

use crate::sys;

/// How often a write that would block is retried (with `sched_yield`) before
/// the report is abandoned with `EAGAIN`.
const MAX_WOULD_BLOCK_RETRIES: u32 = 10_000;

/// A `core::fmt::Write` sink over a caller-provided buffer that flushes to
/// `fd` whenever the buffer fills. A write error is remembered and later output
/// is dropped (the report must never block or crash the process).
///
/// # Async-signal safety
/// Copies into the buffer and calls `write(2)`; no allocation, no locks.
#[derive(Debug)]
pub struct FdSink<'b> {
    fd: i32,
    buf: &'b mut [u8],
    len: usize,
    written: usize,
    error: Option<sys::Errno>,
}

impl<'b> FdSink<'b> {
    /// A sink writing to `fd` through `buf`.
    ///
    /// # Async-signal safety
    /// Constructs a value.
    pub fn new(fd: i32, buf: &'b mut [u8]) -> FdSink<'b> {
        FdSink {
            fd,
            buf,
            len: 0,
            written: 0,
            error: None,
        }
    }

    /// Writes all of `bytes` to `fd`, looping on short writes and `EINTR`.
    ///
    /// # Async-signal safety
    /// `write(2)` only.
    pub fn write_all_fd(fd: i32, mut bytes: &[u8]) -> Result<(), sys::Errno> {
        // A non-blocking descriptor whose reader has gone quiet must not keep a
        // thread spinning in a signal handler forever.
        let mut would_block = 0u32;
        while !bytes.is_empty() {
            match sys::write(fd, bytes) {
                Ok(0) => return Err(libc::EIO),
                Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
                Err(libc::EINTR) => continue,
                Err(libc::EAGAIN) if would_block < MAX_WOULD_BLOCK_RETRIES => {
                    // A non-blocking descriptor that is full: give the reader a
                    // moment rather than dropping the report at once.
                    would_block += 1;
                    sys::sched_yield();
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends buffered bytes to the descriptor.
    ///
    /// # Async-signal safety
    /// `write(2)`.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        if self.error.is_none() {
            let pending = self.buf.get(..self.len).unwrap_or(&[]);
            match Self::write_all_fd(self.fd, pending) {
                Ok(()) => self.written += self.len,
                Err(e) => self.error = Some(e),
            }
        }
        self.len = 0;
    }

    /// Raw bytes (not necessarily UTF-8).
    ///
    /// # Async-signal safety
    /// Copies into the buffer; may call `write(2)`.
    pub fn write_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len >= self.buf.len() {
                self.flush();
                if self.buf.is_empty() {
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

    /// The first write error, if any.
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

    #[test]
    fn flushes_in_chunks_through_a_pipe() {
        let mut fds = [0i32; 2];
        // SAFETY: test-only pipe creation into a valid array.
        #[allow(unsafe_code)]
        let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(r, 0);
        let mut buf = [0u8; 7];
        let mut sink = FdSink::new(fds[1], &mut buf);
        let tail = "and more text";
        write!(sink, "hello {} world {tail}", 42).unwrap();
        sink.flush();
        let expected = b"hello 42 world and more text";
        assert_eq!(sink.bytes_written(), expected.len());
        let mut out = [0u8; 64];
        let n = sys::read(fds[0], &mut out).unwrap();
        assert_eq!(&out[..n], expected);
    }
}
