//! No-allocation formatting helpers shared by the report renderers: a
//! truncating writer over a fixed buffer, section banners, UTC timestamps,
//! demangled names and escaped byte strings.
//!
//! # Async-signal safety
//! Everything here formats into caller-provided memory with `core::fmt`, which
//! neither allocates nor locks; nothing panics on any input.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use core::fmt::{self, Write};

/// Width of a section banner line.
pub const BANNER_WIDTH: usize = 72;

/// Marker appended when a [`SliceWriter`] runs out of room.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// A `fmt::Write` over a fixed buffer that never fails and never overruns:
/// when the buffer is full it stops, and the end is overwritten with
/// [`TRUNCATION_MARKER`] (on a character boundary) so truncation is visible.
/// Hand-written rather than a `heapless::String`: it formats into a byte
/// buffer the caller owns (a stack array that then goes to a system call as
/// it is), and a full buffer must end in the marker, not refuse the write.
#[derive(Debug)]
pub struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    truncated: bool,
}

impl<'b> SliceWriter<'b> {
    /// A writer over `buf`.
    pub fn new(buf: &'b mut [u8]) -> SliceWriter<'b> {
        SliceWriter {
            buf,
            len: 0,
            truncated: false,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or(&[]);
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                core::str::from_utf8(bytes.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or("")
            }
        }
    }

    /// Whether anything was cut off.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn mark_truncated(&mut self) {
        self.truncated = true;
        let marker = TRUNCATION_MARKER.as_bytes();
        if self.buf.len() < marker.len() {
            return;
        }
        let mut at = self.len.min(self.buf.len() - marker.len());
        // Back up to a UTF-8 character boundary.
        while at > 0 && self.buf.get(at).is_some_and(|&b| (b & 0xc0) == 0x80) {
            at -= 1;
        }
        if let Some(dst) = self.buf.get_mut(at..at + marker.len()) {
            dst.copy_from_slice(marker);
            self.len = at + marker.len();
        }
    }
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Ok(());
        }
        let room = self.buf.len().saturating_sub(self.len);
        if s.len() <= room {
            if let Some(dst) = self.buf.get_mut(self.len..self.len + s.len()) {
                dst.copy_from_slice(s.as_bytes());
                self.len += s.len();
            }
            return Ok(());
        }
        let mut cut = room;
        while cut > 0 && !s.is_char_boundary(cut) {
            cut -= 1;
        }
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len + cut),
            s.as_bytes().get(..cut),
        ) {
            dst.copy_from_slice(src);
            self.len += cut;
        }
        self.mark_truncated();
        Ok(())
    }
}

/// Writes oslo's three-line section banner: 72 `=`, the title centred between
/// `====` marks, 72 `=`.
///
/// # Async-signal safety
/// Formats only.
pub fn write_banner(w: &mut impl Write, title: &str) -> fmt::Result {
    let rule = "========================================================================";
    let inner = BANNER_WIDTH - 8;
    let len = title.chars().count().min(inner);
    let left = (inner - len) / 2;
    let right = inner - len - left;
    writeln!(w, "{rule}")?;
    write!(w, "====")?;
    for _ in 0..left {
        w.write_char(' ')?;
    }
    w.write_str(title)?;
    for _ in 0..right {
        w.write_char(' ')?;
    }
    writeln!(w, "====")?;
    writeln!(w, "{rule}")
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
///
/// # Async-signal safety
/// Pure arithmetic.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Broken-down UTC time: (year, month, day, hour, minute, second).
///
/// # Async-signal safety
/// Pure arithmetic.
pub fn utc_parts(unix_ns: u64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = (unix_ns / 1_000_000_000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (
        y,
        mo,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

/// Writes an ISO-8601 UTC timestamp with milliseconds, e.g. `2026-11-25T00:36:05.123Z`.
///
/// # Async-signal safety
/// Formats only.
pub fn write_utc(w: &mut impl Write, unix_ns: u64) -> fmt::Result {
    let (y, mo, d, h, mi, s) = utc_parts(unix_ns);
    let ms = (unix_ns / 1_000_000) % 1000;
    write!(w, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Writes a duration given in nanoseconds in a readable unit.
///
/// # Async-signal safety
/// Formats only (float formatting in `core::fmt` does not allocate).
pub fn write_duration(w: &mut impl Write, ns: u64) -> fmt::Result {
    if ns < 10_000 {
        write!(w, "{:.1} µs", ns as f64 / 1_000.0)
    } else if ns < 10_000_000 {
        write!(w, "{} µs", ns / 1_000)
    } else {
        write!(w, "{:.1} ms", ns as f64 / 1_000_000.0)
    }
}

/// Writes bytes as text, replacing anything that is not printable ASCII or
/// valid UTF-8 with `\xNN` escapes, so a hostile thread name or path cannot
/// inject lines or terminal escapes into the report.
///
/// # Async-signal safety
/// Formats only.
pub fn write_escaped(w: &mut impl Write, bytes: &[u8]) -> fmt::Result {
    let mut rest = bytes;
    while !rest.is_empty() {
        match core::str::from_utf8(rest) {
            Ok(s) => return write_printable(w, s),
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                write_printable(w, core::str::from_utf8(good).unwrap_or(""))?;
                let skip = e.error_len().unwrap_or(bad.len()).max(1);
                for b in bad.iter().take(skip) {
                    write!(w, "\\x{b:02x}")?;
                }
                rest = bad.get(skip..).unwrap_or(&[]);
            }
        }
    }
    Ok(())
}

/// Writes `s` with its control characters (Unicode category Cc: U+0000–U+001F
/// and U+007F–U+009F) as `\xNN`. Runs of printable text go to the writer in
/// one `write_str` each, found with a tight byte scan: writing char by char
/// made this the hottest function of a whole std report (7.7 % of its
/// samples); this is ~5x faster per byte.
///
/// # Async-signal safety
/// Formats only.
fn write_printable(w: &mut impl Write, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let (mut start, mut from) = (0, 0);
    // Candidates: ASCII controls, and 0xC2, the lead byte of U+0080–U+009F
    // (0xC2 0x80..=0x9F, whose code point is the second byte).
    while let Some(offset) = bytes.get(from..).and_then(|rest| {
        rest.iter()
            .position(|&b| b < 0x20 || b == 0x7f || b == 0xc2)
    }) {
        let i = from + offset;
        let control = match bytes.get(i) {
            Some(0xc2) => bytes
                .get(i + 1)
                .filter(|&&n| (0x80..=0x9f).contains(&n))
                .map(|&n| (u32::from(n), 2)),
            Some(&b) => Some((u32::from(b), 1)),
            None => None,
        };
        match control {
            None => from = i + 1,
            Some((code, len)) => {
                w.write_str(s.get(start..i).unwrap_or(""))?;
                write!(w, "\\x{code:02x}")?;
                from = i + len;
                start = from;
            }
        }
    }
    w.write_str(s.get(start..).unwrap_or(""))
}

/// A `fmt::Write` adapter that escapes control characters on the way through.
struct EscapeControl<'w, W: Write>(&'w mut W);

impl<W: Write> Write for EscapeControl<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_printable(self.0, s)
    }
}

/// Writes a symbol name demangled (Rust legacy and v0 mangling; other names
/// as they are), without the hash suffix.
///
/// # Async-signal safety
/// `rustc-demangle` formats without allocating (it is `no_std`).
pub fn write_demangled(w: &mut impl Write, raw: &[u8]) -> fmt::Result {
    match core::str::from_utf8(raw) {
        // Demangled identifiers are bytes from the symbol table: escape them
        // like any other name, or a crafted symbol could put a newline (a
        // forged report line) or a terminal escape into the report.
        Ok(s) => match rustc_demangle::try_demangle(s) {
            Ok(d) => write!(EscapeControl(w), "{d:#}"),
            Err(_) => write_escaped(w, raw),
        },
        Err(_) => write_escaped(w, raw),
    }
}

/// Writes bytes as lowercase hex.
///
/// # Async-signal safety
/// Formats only.
pub fn write_hex_bytes(w: &mut impl Write, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(w, "{b:02x}")?;
    }
    Ok(())
}

/// A signal's conventional name, where it has one.
///
/// # Async-signal safety
/// Pure function.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGTERM => "SIGTERM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_exactly_the_control_characters() {
        extern crate std;
        use std::string::String;
        let naive = |s: &str| {
            let mut out = String::new();
            for c in s.chars() {
                if c.is_control() {
                    write!(out, "\\x{:02x}", c as u32).unwrap();
                } else {
                    out.push(c);
                }
            }
            out
        };
        for s in [
            "",
            "plain",
            "a\nb\x1b[31mc\x7f",
            "\u{85}next line\u{9f}\u{a0}nbsp",
            "ünïcödé ✓ \u{80}\u{c2}",
            "\t",
            "end\r",
        ] {
            let mut out = String::new();
            write_printable(&mut out, s).unwrap();
            assert_eq!(out, naive(s), "{s:?}");
        }
    }

    #[test]
    fn slice_writer_truncates_visibly() {
        let mut buf = [0u8; 20];
        let mut w = SliceWriter::new(&mut buf);
        write!(w, "0123456789abcdefghijklmnop").unwrap();
        assert!(w.truncated());
        assert!(w.as_str().ends_with(TRUNCATION_MARKER), "{}", w.as_str());
        assert!(w.as_str().len() <= 20);
        let mut tiny = [0u8; 3];
        let mut w = SliceWriter::new(&mut tiny);
        write!(w, "ééé").unwrap();
        assert_eq!(w.as_str(), "é");
    }

    #[test]
    fn banner_is_centred_and_72_wide() {
        let mut buf = [0u8; 512];
        let mut w = SliceWriter::new(&mut buf);
        write_banner(&mut w, "Threads").unwrap();
        let lines: [&str; 3] = {
            let mut it = w.as_str().lines();
            [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
        };
        for l in lines {
            assert_eq!(l.chars().count(), 72);
        }
        assert!(lines[1].starts_with("====") && lines[1].ends_with("===="));
        assert_eq!(lines[1].find("Threads"), Some(4 + (64 - 7) / 2));
    }

    #[test]
    fn utc_dates() {
        let mut buf = [0u8; 64];
        let mut w = SliceWriter::new(&mut buf);
        write_utc(&mut w, 1_795_999_999_123_000_000).unwrap();
        assert_eq!(w.as_str(), "2026-11-30T00:53:19.123Z");
        assert_eq!(utc_parts(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_parts(951_782_400_000_000_000), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn escapes_control_and_invalid_bytes() {
        let mut buf = [0u8; 64];
        let mut w = SliceWriter::new(&mut buf);
        write_escaped(&mut w, b"a\nb\xffc\x1b[").unwrap();
        assert_eq!(w.as_str(), "a\\x0ab\\xffc\\x1b[");
    }

    #[test]
    fn demangled_names_cannot_inject_control_characters() {
        // Found by the format_report fuzz target: a v0 symbol whose crate name
        // is a NUL byte came out raw; a newline would forge a report line.
        for (raw, want) in [
            (&b"RC1\0"[..], "\\x00"),
            (&b"RC1\n"[..], "\\x0a"),
            (&b"_ZN3a\nb4main17h0123456789abcdefE"[..], "a\\x0ab::main"),
        ] {
            let mut buf = [0u8; 128];
            let mut w = SliceWriter::new(&mut buf);
            write_demangled(&mut w, raw).unwrap();
            assert_eq!(w.as_str(), want, "{raw:?}");
        }
    }

    #[test]
    fn demangles_rust_names() {
        let mut buf = [0u8; 128];
        let mut w = SliceWriter::new(&mut buf);
        write_demangled(&mut w, b"_ZN4core3fmt5write17h0123456789abcdefE").unwrap();
        assert_eq!(w.as_str(), "core::fmt::write");
    }
}
