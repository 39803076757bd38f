//! Parsers for the `/proc` text the initiator reads during a round:
//! `/proc/self/maps` (readable ranges), `/proc/self/task/<tid>/stat` (state)
//! and `/proc/self/task/<tid>/syscall`, and `linux_dirent64` records.
//!
//! All of them are pure functions over byte slices: no allocation, no panics,
//! arbitrary input tolerated (they are fuzzed).
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

/// One line of `/proc/self/maps`, as far as the core needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping<'a> {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `r` permission.
    pub readable: bool,
    /// `x` permission.
    pub executable: bool,
    /// The path or pseudo-name (`[stack]`, `[vdso]`, …), possibly empty.
    pub name: &'a [u8],
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// Parses a decimal number (at most 19 digits).
pub fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Parses one `/proc/self/maps` line (without its newline).
pub fn parse_maps_line(line: &[u8]) -> Option<Mapping<'_>> {
    let mut fields = line.splitn(6, |&c| c == b' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    let name = fields.next().unwrap_or(&[]);
    let dash = range.iter().position(|&c| c == b'-')?;
    let start = parse_hex(range.get(..dash)?)?;
    let end = parse_hex(range.get(dash.checked_add(1)?..)?)?;
    if end <= start {
        return None;
    }
    let name_start = name.iter().position(|&c| c != b' ').unwrap_or(name.len());
    Some(Mapping {
        start,
        end,
        readable: perms.first() == Some(&b'r'),
        executable: perms.get(2) == Some(&b'x'),
        name: name.get(name_start..).unwrap_or(&[]),
    })
}

/// Feeds every complete line of `chunk` to `sink` and returns how many bytes
/// were consumed (up to and including the last newline). The caller keeps the
/// unconsumed tail and prepends it to the next read.
pub fn parse_maps_chunk<'a>(chunk: &'a [u8], mut sink: impl FnMut(Mapping<'a>)) -> usize {
    let Some(last_newline) = chunk.iter().rposition(|&c| c == b'\n') else {
        return 0;
    };
    let complete = chunk.get(..last_newline).unwrap_or(&[]);
    for line in complete.split(|&c| c == b'\n') {
        if let Some(m) = parse_maps_line(line) {
            sink(m);
        }
    }
    last_newline + 1
}

/// What `/proc/<pid>/task/<tid>/stat` says of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskStat<'a> {
    /// The name between the parentheses.
    pub name: &'a [u8],
    /// The state letter (`R`, `S`, `D`, `T`, `Z`, …).
    pub state: u8,
}

/// Parses a `stat` line. The name may itself contain `)` and spaces, so the
/// state is found after the *last* `)`.
pub fn parse_task_stat(stat: &[u8]) -> Option<TaskStat<'_>> {
    let open = stat.iter().position(|&c| c == b'(')?;
    let close = stat.iter().rposition(|&c| c == b')')?;
    if close <= open {
        return None;
    }
    let name = stat.get(open.checked_add(1)?..close)?;
    let state = *stat.get(close.checked_add(2)?)?;
    if !state.is_ascii_alphabetic() {
        return None;
    }
    Some(TaskStat { name, state })
}

/// What `/proc/<pid>/task/<tid>/syscall` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSyscall {
    /// Blocked in this system call number.
    Blocked(u64),
    /// On a CPU in user space.
    Running,
    /// Not in a system call, or unreadable.
    Unknown,
}

/// Parses the first field of a `syscall` file.
pub fn parse_task_syscall(text: &[u8]) -> TaskSyscall {
    let first = text
        .split(|&c| c == b' ' || c == b'\n')
        .next()
        .unwrap_or(&[]);
    if first == b"running" {
        return TaskSyscall::Running;
    }
    match parse_decimal(first) {
        Some(nr) => TaskSyscall::Blocked(nr),
        None => TaskSyscall::Unknown,
    }
}

/// The pending-signal masks (`SigPnd` for the thread, `ShdPnd` for the
/// process) from a `/proc/<pid>/task/<tid>/status` text, OR-ed together. Bit
/// `n - 1` stands for signal `n`.
pub fn parse_status_pending(status: &[u8]) -> Option<u64> {
    let mut found = None;
    for line in status.split(|&c| c == b'\n') {
        let rest = line
            .strip_prefix(b"SigPnd:")
            .or_else(|| line.strip_prefix(b"ShdPnd:"));
        if let Some(rest) = rest {
            let start = rest
                .iter()
                .position(|&c| c != b'\t' && c != b' ')
                .unwrap_or(rest.len());
            let mask = parse_hex(rest.get(start..).unwrap_or(&[]))?;
            found = Some(found.unwrap_or(0) | mask);
        }
    }
    found
}

/// Iterates the thread ids in a buffer of `linux_dirent64` records (skipping
/// `.` and `..` and anything that is not a number).
pub fn for_each_dirent_number(buf: &[u8], mut sink: impl FnMut(u64)) {
    let mut off = 0usize;
    while let Some(header) = buf.get(off..).and_then(|b| b.get(..19)) {
        let Some(reclen) = header
            .get(16..18)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| usize::from(u16::from_le_bytes(b)))
        else {
            return;
        };
        if reclen < 19 {
            return;
        }
        let Some(record) = off.checked_add(reclen).and_then(|end| buf.get(off..end)) else {
            return;
        };
        let name = record.get(19..).unwrap_or(&[]);
        let name = name
            .get(..name.iter().position(|&c| c == 0).unwrap_or(name.len()))
            .unwrap_or(&[]);
        if let Some(n) = parse_decimal(name) {
            sink(n);
        }
        off += reclen;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let m = parse_maps_line(
            b"7ffd5f1e0000-7ffd5f201000 rw-p 00000000 00:00 0                          [stack]",
        )
        .unwrap();
        assert_eq!(
            (m.start, m.end, m.readable, m.executable),
            (0x7ffd5f1e0000, 0x7ffd5f201000, true, false)
        );
        assert_eq!(m.name, b"[stack]");
        let m = parse_maps_line(
            b"55d4c0a00000-55d4c0b00000 r-xp 00001000 fd:01 123 /usr/bin/my daemon",
        )
        .unwrap();
        assert!(m.executable);
        assert_eq!(m.name, b"/usr/bin/my daemon");
        let m = parse_maps_line(b"7f0000000000-7f0000001000 ---p 00000000 00:00 0").unwrap();
        assert!(!m.readable);
        assert_eq!(m.name, b"");
        assert!(parse_maps_line(b"zz-10 r--p").is_none());
        assert!(parse_maps_line(b"20-10 r--p 0 0 0").is_none());
    }

    #[test]
    fn maps_chunks_keep_partial_lines() {
        let text = b"1000-2000 r--p 0 0 0 a\n3000-4000 r-xp 0 0 0 b\n5000-60";
        let mut seen = 0;
        let used = parse_maps_chunk(text, |_| seen += 1);
        assert_eq!(seen, 2);
        assert_eq!(&text[used..], b"5000-60");
    }

    #[test]
    fn stat_with_parentheses_in_name() {
        let s = parse_task_stat(b"1234 (evil) name) S 1 2 3").unwrap();
        assert_eq!(s.name, b"evil) name");
        assert_eq!(s.state, b'S');
        assert!(parse_task_stat(b"1234 (x)").is_none());
        assert!(parse_task_stat(b")(").is_none());
    }

    #[test]
    fn syscall_file() {
        assert_eq!(
            parse_task_syscall(b"202 0x1 0x2\n"),
            TaskSyscall::Blocked(202)
        );
        assert_eq!(parse_task_syscall(b"running\n"), TaskSyscall::Running);
        assert_eq!(parse_task_syscall(b""), TaskSyscall::Unknown);
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
    }

    #[test]
    fn pending_masks() {
        let status = b"Name:\tx\nSigQ:\t3/95000\nSigPnd:\t0000000000000000\nShdPnd:\t0000000400000000\nSigBlk:\tffffffffffffffff\n";
        assert_eq!(parse_status_pending(status), Some(1 << 34));
        assert_eq!(parse_status_pending(b"Name: x\n"), None);
        assert_eq!(parse_status_pending(b"SigPnd:\tzz\n"), None);
    }

    #[test]
    fn dirents() {
        let mut buf = [0u8; 64];
        let mut put = |off: usize, name: &[u8]| {
            let reclen = 24usize;
            buf[off + 16..off + 18].copy_from_slice(&(reclen as u16).to_le_bytes());
            buf[off + 19..off + 19 + name.len()].copy_from_slice(name);
            off + reclen
        };
        let o = put(0, b".");
        let o = put(o, b"4242");
        let end = o;
        let mut seen = [0u64; 4];
        let mut n = 0;
        for_each_dirent_number(&buf[..end], |t| {
            seen[n] = t;
            n += 1;
        });
        assert_eq!(&seen[..n], &[4242]);
        for_each_dirent_number(&[0xff; 40], |_| {});
    }
}
