//! Values as the text renderer writes them — numbers without leading zeros,
//! lowercase hex, UTC times, durations, sizes, trigger wording — read back
//! only in that form, so that what parses renders back the same.

use std::str::FromStr;

use guru_core::format::{signal_name, write_duration, write_utc};

use super::super::Trigger;
use super::super::text::{mib, seconds};

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
    let (name, code) = s.strip_suffix(')')?.rsplit_once(" (si_code ")?;
    let code: i32 = num(code)?;
    // Those codes are written "from pid": this wording never has them.
    if [
        libc::SI_USER,
        libc::SI_QUEUE,
        libc::SI_TKILL,
        libc::SI_KERNEL,
    ]
    .contains(&code)
    {
        return None;
    }
    Some((signal_number(name)?, code, 0, 0))
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
