//! Values as the text renderer writes them — numbers without leading zeros,
//! lowercase hex, UTC times, durations, sizes, trigger wording — read back
//! only in that form, so that what parses renders back the same.

use std::str::FromStr;

use guru_core::crash::{code_name, fault_code_name};
use guru_core::format::{signal_name, write_duration, write_utc};

use super::super::text::{mib, seconds};
use super::super::{Hex, ThreadMark, Trigger};

/// A number as the renderer writes it (so it renders back the same).
pub(super) fn num<T: FromStr + ToString>(s: &str) -> Option<T> {
    let v: T = s.parse().ok()?;
    (v.to_string() == s).then_some(v)
}

/// `0x`-prefixed lowercase hex without leading zeros.
pub(in crate::model) fn hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    let v = u64::from_str_radix(digits, 16).ok()?;
    (format!("{v:x}") == digits).then_some(v)
}

/// `0x` and 16 hex digits, as frame addresses and module ranges are written.
pub(super) fn hex16(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    let v = u64::from_str_radix(digits, 16).ok()?;
    (format!("{v:016x}") == digits).then_some(v)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An ISO 8601 UTC time as `write_utc` writes it, in nanoseconds (to the ms).
pub(in crate::model) fn utc_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24 || b.get(23) != Some(&b'Z') {
        return None;
    }
    let field = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (field(0, 4)?, field(5, 7)?, field(8, 10)?);
    let (h, mi, sec, ms) = (
        field(11, 13)?,
        field(14, 16)?,
        field(17, 19)?,
        field(20, 23)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days.checked_mul(86_400)? + h * 3600 + mi * 60 + sec;
    let ns = u64::try_from(secs).ok()?.checked_mul(1_000_000_000)?;
    let ns = ns.checked_add(u64::try_from(ms).ok()? * 1_000_000)?;
    let mut back = String::new();
    let _ = write_utc(&mut back, ns);
    (back == s).then_some(ns)
}

/// `a.b` with exactly `places` decimals, scaled: `("1.5", 1, 100)` is 150.
pub(super) fn decimal(s: &str, places: usize, unit: u64) -> Option<u64> {
    let (int, frac) = s.split_once('.')?;
    if frac.len() != places || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int: u64 = num(int)?;
    let frac: u64 = frac.parse().ok()?;
    int.checked_mul(unit.checked_mul(10u64.checked_pow(places as u32)?)?)?
        .checked_add(frac.checked_mul(unit)?)
}

/// A duration as `write_duration` writes it, in ns at text precision.
pub(super) fn duration(s: &str) -> Option<u64> {
    let ns = if let Some(v) = s.strip_suffix(" µs") {
        if v.contains('.') {
            // `{:.1} µs` is written below 10 µs: "10.0 µs" is 9 999 ns.
            decimal(v, 1, 100)?.min(9_999)
        } else {
            num::<u64>(v)?.checked_mul(1000)?
        }
    } else {
        decimal(s.strip_suffix(" ms")?, 1, 100_000)?
    };
    let mut back = String::new();
    let _ = write_duration(&mut back, ns);
    (back == s).then_some(ns)
}

/// `1.234 s` in ns.
pub(super) fn seconds_ns(s: &str) -> Option<u64> {
    let ns = decimal(s.strip_suffix(" s")?, 3, 1_000_000)?;
    (seconds(ns) == s).then_some(ns)
}

/// `30.2 MiB` as the nearest byte count that is written the same.
pub(super) fn mib_bytes(s: &str) -> Option<u64> {
    let tenths = decimal(s.strip_suffix(" MiB")?, 1, 1)?;
    let bytes = (tenths as f64 / 10.0 * 1024.0 * 1024.0).round() as u64;
    (mib(bytes) == s).then_some(bytes)
}

/// `-` or a value written by `text::opt`.
pub(super) fn opt_num<T: FromStr + ToString>(s: &str) -> Option<Option<T>> {
    if s == "-" {
        Some(None)
    } else {
        num(s).map(Some)
    }
}

pub(super) fn signal_number(name: &str) -> Option<i32> {
    if let Some(n) = name.strip_prefix("signal ") {
        return num(n);
    }
    (1..=64).find(|&s| signal_name(s) == Some(name))
}

/// What `write_trigger_source` wrote: (signal, si_code, sender pid, uid).
pub(super) fn trigger_source(s: &str) -> Option<(i32, i32, i32, u32)> {
    match s {
        "a request without a signal" => return Some((0, 0, 0, 0)),
        "file trigger" => return Some((0, guru_core::trigger::CODE_FILE_TRIGGER, 0, 0)),
        "a call to guru::report" => return Some((0, guru_core::trigger::CODE_CALL, 0, 0)),
        "the watchdog" => return Some((0, guru_core::trigger::CODE_WATCHDOG, 0, 0)),
        "a panic" => return Some((0, guru_core::trigger::CODE_PANIC, 0, 0)),
        _ => {}
    }
    if let Some(rest) = s.strip_prefix("guru dump from pid ") {
        let (pid, uid) = rest.strip_suffix(')')?.split_once(" (uid ")?;
        return Some((0, guru_core::trigger::CODE_DUMP, num(pid)?, num(uid)?));
    }
    if let Some((name, rest)) = s.split_once(" from pid ") {
        let (pid, uid) = rest.strip_suffix(')')?.split_once(" (uid ")?;
        return Some((signal_number(name)?, libc::SI_USER, num(pid)?, num(uid)?));
    }
    if let Some(name) = s.strip_suffix(" from the kernel") {
        return Some((signal_number(name)?, libc::SI_KERNEL, 0, 0));
    }
    let (name, code) = s.strip_suffix(')')?.rsplit_once(" (")?;
    let signal = signal_number(name)?;
    let Some(code) = code.strip_prefix("si_code ") else {
        // A crash signal's fault: its code in words.
        let code = code_number(signal, code)?;
        return fault_code_name(signal, code).map(|_| (signal, code, 0, 0));
    };
    let code: i32 = num(code)?;
    // Those codes are written "from pid" or in words: this wording never
    // has them.
    if [
        libc::SI_USER,
        libc::SI_QUEUE,
        libc::SI_TKILL,
        libc::SI_KERNEL,
    ]
    .contains(&code)
        || fault_code_name(signal, code).is_some()
    {
        return None;
    }
    Some((signal, code, 0, 0))
}

/// The `si_code` that `guru_core::crash::code_name` words `name` for `signal`.
pub(super) fn code_number(signal: i32, name: &str) -> Option<i32> {
    (-8..=0x80).find(|&c| code_name(signal, c) == Some(name))
}

/// `si_code <n>` (a code without a name) or the code's name.
fn code_word(signal: i32, word: &str) -> Option<i32> {
    match word.strip_prefix("si_code ") {
        Some(n) => num(n).filter(|&c| code_name(signal, c).is_none()),
        None => code_number(signal, word),
    }
}

/// What `guru_core::crash::write_crash_words` wrote: `SIGSEGV (SEGV_MAPERR)
/// at address 0x0 in thread 12 "name"[, then SIGABRT]`, or `… from pid <p> …`
/// for a signal the process sent itself; `time` is when it happened.
pub(super) fn crash_trigger(s: &str, time: &str) -> Option<Trigger> {
    let (s, then_signal) = if s.ends_with('"') {
        (s, None)
    } else {
        let (head, then) = s.rsplit_once(", then ")?;
        (head, Some(signal_number(then)?))
    };
    let (cause, thread) = s.split_once(" in thread ")?;
    let (tid, name) = thread.split_once(" \"")?;
    let name = name.strip_suffix('"')?;
    let (signal_code, fault_address, sender_pid) = match cause.rsplit_once(" at address ") {
        Some((head, address)) => (head, Some(Hex(hex(address)?)), None),
        None => {
            let (head, pid) = cause.rsplit_once(" from pid ")?;
            (head, None, Some(num(pid)?))
        }
    };
    let (signal, code) = signal_code.strip_suffix(')')?.rsplit_once(" (")?;
    let signal = signal_number(signal)?;
    let si_code = code_word(signal, code)?;
    Some(Trigger::Crash {
        signal,
        signal_name: signal_name(signal).map(str::to_string),
        si_code,
        si_code_name: code_name(signal, si_code).map(str::to_string),
        fault_address,
        sender_pid,
        thread: num(tid)?,
        thread_name: name.to_string(),
        then_signal,
        then_signal_name: then_signal.and_then(signal_name).map(str::to_string),
        time: time.to_string(),
    })
}

/// A crashed thread's state in its header: `crashed: SIGSEGV SEGV_MAPERR at
/// address 0x0` (`guru_core::crash::write_crash_mark`).
pub(super) fn crash_mark(s: &str) -> Option<ThreadMark> {
    let rest = s.strip_prefix("crashed: ")?;
    let (rest, fault_address) = match rest.rsplit_once(" at address ") {
        Some((head, address)) => (head, Some(Hex(hex(address)?))),
        None => (rest, None),
    };
    let (signal, code) = match rest.rsplit_once(" si_code ") {
        Some((signal, n)) => (signal, format!("si_code {n}")),
        None => {
            let (signal, name) = rest.rsplit_once(' ')?;
            (signal, name.to_string())
        }
    };
    let signal = signal_number(signal)?;
    let si_code = code_word(signal, &code)?;
    Some(ThreadMark::Crashed {
        signal,
        signal_name: signal_name(signal).map(str::to_string),
        si_code,
        si_code_name: code_name(signal, si_code).map(str::to_string),
        fault_address,
    })
}

pub(super) fn signal_trigger(s: &str, time: &str) -> Option<Trigger> {
    let (signal, si_code, sender_pid, sender_uid) = trigger_source(s)?;
    Some(Trigger::Signal {
        signal,
        signal_name: signal_name(signal).map(str::to_string),
        si_code,
        sender_pid,
        sender_uid,
        time: time.to_string(),
    })
}
