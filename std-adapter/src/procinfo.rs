//! The Processes section (this process and its descendants, like oslo's) and
//! the Process section (uptime, resource usage, memory, descriptors, limits),
//! read from `/proc` and `getrusage` in the reporter thread, as model data
//! ([`crate::model::Processes`], [`crate::model::Process`]).

use std::collections::HashMap;
use std::fs;

use crate::model::{Limit, Process, ProcessEntry, Usage};

/// Fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) comm: String,
    pub(crate) state: char,
    pub(crate) ppid: i32,
    pub(crate) num_threads: i64,
    /// Start time in clock ticks after boot.
    pub(crate) start_ticks: u64,
}

/// Parses `/proc/<pid>/stat` (the name may hold spaces and parentheses: it
/// ends at the last `)`).
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    Some(Stat {
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        num_threads: rest.get(17)?.parse().ok()?,
        start_ticks: rest.get(19)?.parse().ok()?,
    })
}

pub(crate) fn state_name(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "disk sleep",
        'T' => "stopped",
        't' => "tracing stop",
        'Z' => "zombie",
        'X' => "dead",
        'I' => "idle",
        'P' => "parked",
        'W' => "waking",
        _ => "unknown",
    }
}

/// The real uid from `/proc/<pid>/status`.
pub(crate) fn parse_status_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|u| u.parse().ok())
}

/// A `kB` field (`VmRSS:  1234 kB`) of `/proc/<pid>/status`, in bytes.
pub(crate) fn status_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// User names by uid from `/etc/passwd` (no NSS: nothing gets loaded into
/// the process to answer). Parsed once and kept while the file's inode,
/// size and modification time stay the same (one `stat` a report instead
/// of reading and parsing the file).
fn user_names() -> std::sync::Arc<HashMap<u32, String>> {
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex, PoisonError};
    type Cached = ((u64, u64, u64, i64, i64), Arc<HashMap<u32, String>>);
    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);
    const PATH: &str = "/etc/passwd";
    let key = fs::metadata(PATH)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let (Some(k), Some((cached, names))) = (key, cache.as_ref())
        && k == *cached
    {
        return names.clone();
    }
    let names: Arc<HashMap<u32, String>> = Arc::new(
        fs::read_to_string(PATH)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let uid = f.nth(1)?.parse().ok()?;
                Some((uid, name.to_string()))
            })
            .collect(),
    );
    *cache = key.map(|k| (k, names.clone()));
    names
}

/// This process's `/proc/self/status`, read once a report for both the
/// Processes and the Process section; the fields of `/proc/self/stat` they
/// show come from it too (state, parent, threads: the same values), the
/// start time from one read of `stat` kept for the process's life (it never
/// changes), so a report opens one file instead of two, twice.
#[derive(Debug, Default)]
pub(crate) struct Own {
    status: Option<String>,
}

impl Own {
    pub(crate) fn read() -> Own {
        Own {
            status: fs::read_to_string("/proc/self/status").ok(),
        }
    }

    /// The fields of `/proc/self/stat` we use, but the name (empty: only
    /// shown for a process without a command line, then read from `stat`).
    fn stat(&self) -> Option<Stat> {
        let status = self.status.as_deref()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        Some(Stat {
            comm: String::new(),
            state: field("State")?.chars().next()?,
            ppid: field("PPid")?.parse().ok()?,
            num_threads: field("Threads")?.parse().ok()?,
            start_ticks: start_ticks()?,
        })
    }
}

/// This process's start time in clock ticks after boot (`stat` field 22),
/// read once.
fn start_ticks() -> Option<u64> {
    static TICKS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_stat(&s))
            .map(|s| s.start_ticks)
    })
}

/// This process's `stat` fields: from `own`, else from the file.
fn own_stat(own: &Own) -> Option<Stat> {
    own.stat().or_else(|| {
        fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_stat(&s))
    })
}

fn read_process(pid: i32, own: &Own) -> Option<(Stat, Option<u32>, Vec<String>)> {
    let me = pid == std::process::id() as i32;
    let mut stat = match me {
        true => own_stat(own)?,
        false => parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?,
    };
    let uid = match (me, &own.status) {
        (true, Some(text)) => parse_status_uid(text),
        _ => fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| parse_status_uid(&s)),
    };
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut cmdline: Vec<String> = raw
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    while cmdline.last().is_some_and(String::is_empty) {
        cmdline.pop();
    }
    if cmdline.is_empty() {
        if stat.comm.is_empty()
            && let Some(fresh) = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
        {
            stat.comm = fresh.comm;
        }
        cmdline.push(format!("[{}]", stat.comm));
    }
    Some((stat, uid, cmdline))
}

/// This process and its descendants, depth-first, children by pid.
pub(crate) fn processes(own: &Own) -> Result<Vec<ProcessEntry>, String> {
    let me = std::process::id() as i32;
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    // Finding children means reading every process's stat file (about a
    // third of a warm report's CPU on a machine with 150 processes); a
    // process without children skips that scan.
    let scan = !crate::sys::has_no_children();
    let dir = if scan {
        Some(fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?)
    } else {
        None
    };
    let mut infos = HashMap::new();
    for entry in dir.into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // Only stat is read for every process; the rest only for ours.
        let Some(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        else {
            continue;
        };
        children.entry(stat.ppid).or_default().push(pid);
        infos.insert(pid, stat.ppid);
    }
    let users = user_names();
    let mut out = Vec::new();
    let mut stack = vec![(me, 0usize)];
    while let Some((pid, depth)) = stack.pop() {
        let Some((stat, uid, cmdline)) = read_process(pid, own) else {
            continue;
        };
        out.push(ProcessEntry {
            pid,
            ppid: stat.ppid,
            uid,
            user: uid.and_then(|u| users.get(&u).cloned()),
            state: stat.state.to_string(),
            state_name: state_name(stat.state).to_string(),
            cmdline,
            depth,
        });
        if let Some(kids) = children.get_mut(&pid) {
            kids.sort_unstable();
            // Deepest-first stack: push in reverse so the lowest pid comes next.
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
        if out.len() > 4096 {
            break;
        }
    }
    if out.is_empty() {
        return Err("cannot read /proc/self".into());
    }
    Ok(out)
}

/// Parses `/proc/<pid>/limits` (columns are aligned to its header line).
pub(crate) fn parse_limits(text: &str) -> Vec<Limit> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let (Some(soft_at), Some(hard_at), Some(units_at)) = (
        header.find("Soft Limit"),
        header.find("Hard Limit"),
        header.find("Units"),
    ) else {
        return Vec::new();
    };
    let col =
        |l: &str, a: usize, b: usize| l.get(a..b.min(l.len())).unwrap_or("").trim().to_string();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| Limit {
            name: col(l, 0, soft_at),
            soft: col(l, soft_at, hard_at),
            hard: col(l, hard_at, units_at),
            units: col(l, units_at, usize::MAX),
        })
        .collect()
}

/// This process's limits from `getrlimit` (as `/proc/self/limits` shows
/// them, without opening it).
fn own_limits() -> Option<Vec<Limit>> {
    let limits = crate::sys::resource_limits()?;
    Some(
        limits
            .into_iter()
            .map(|(name, soft, hard, units)| Limit {
                name: name.to_string(),
                soft,
                hard,
                units: units.to_string(),
            })
            .collect(),
    )
}

fn tv_us(tv: libc::timeval) -> u64 {
    u64::try_from(tv.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(tv.tv_usec).unwrap_or(0)
}

fn to_u64(v: libc::c_long) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Process uptime from its start time (ticks after boot) and `/proc/uptime`.
fn uptime_ns(start_ticks: u64) -> Option<u64> {
    // `/proc/uptime` is `CLOCK_BOOTTIME` in seconds: read the clock (no
    // file to open), the file only if the clock says nothing.
    let boot_uptime: f64 = match crate::sys::boottime_ns() {
        0 => fs::read_to_string("/proc/uptime")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?,
        ns => ns as f64 / 1e9,
    };
    let ticks = crate::sys::clock_ticks_per_second()?;
    let started = start_ticks as f64 / ticks as f64;
    Some(((boot_uptime - started).max(0.0) * 1e9) as u64)
}

pub(crate) fn process_info(guru_uptime_ns: u64, own: &Own) -> Process {
    let stat = own_stat(own);
    let status = own.status.as_deref().unwrap_or_default();
    let limits = own_limits().unwrap_or_else(|| {
        fs::read_to_string("/proc/self/limits")
            .map(|t| parse_limits(&t))
            .unwrap_or_default()
    });
    let usage = crate::sys::rusage_self()
        .map(|r| Usage {
            user_cpu_us: tv_us(r.ru_utime),
            system_cpu_us: tv_us(r.ru_stime),
            max_rss_bytes: to_u64(r.ru_maxrss) * 1024,
            minor_faults: to_u64(r.ru_minflt),
            major_faults: to_u64(r.ru_majflt),
            voluntary_switches: to_u64(r.ru_nvcsw),
            involuntary_switches: to_u64(r.ru_nivcsw),
            block_inputs: to_u64(r.ru_inblock),
            block_outputs: to_u64(r.ru_oublock),
        })
        .unwrap_or_default();
    // read_dir holds one descriptor of its own while listing.
    let open_fds = fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1));
    let fd_limit = limits
        .iter()
        .find(|l| l.name == "Max open files")
        .map(|l| format!("{} soft, {} hard", l.soft, l.hard));
    Process {
        pid: std::process::id() as i32,
        ppid: stat.as_ref().map_or(0, |s| s.ppid),
        executable: fs::read_link("/proc/self/exe")
            .ok()
            .map(|p| p.display().to_string()),
        working_directory: std::env::current_dir()
            .ok()
            .map(|p| p.display().to_string()),
        uptime_ns: stat.as_ref().and_then(|s| uptime_ns(s.start_ticks)),
        guru_uptime_ns,
        threads: stat.as_ref().map(|s| s.num_threads),
        usage,
        rss_bytes: status_kb(status, "VmRSS"),
        peak_rss_bytes: status_kb(status, "VmHWM"),
        virtual_bytes: status_kb(status, "VmSize"),
        open_fds,
        fd_limit,
        limits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_tricky_name() {
        let s = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 5 0 12345 1000 100";
        let st = parse_stat(s).unwrap();
        assert_eq!(st.comm, "a) b (c)");
        assert_eq!(
            (st.state, st.ppid, st.num_threads, st.start_ticks),
            ('S', 7, 5, 12345)
        );
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) S").is_none());
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tx\nUid:\t1000\t1000\t1000\t1000\nVmRSS:\t   2048 kB\n";
        assert_eq!(parse_status_uid(s), Some(1000));
        assert_eq!(status_kb(s, "VmRSS"), Some(2048 * 1024));
        assert_eq!(status_kb(s, "VmHWM"), None);
    }

    #[test]
    fn limits_table() {
        let t = "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max cpu time              unlimited            unlimited            seconds   \n\
                 Max open files            1024                 524288               files     \n";
        let l = parse_limits(t);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].name, "Max open files");
        assert_eq!((l[1].soft.as_str(), l[1].hard.as_str()), ("1024", "524288"));
        assert_eq!(l[1].units, "files");
    }

    #[test]
    fn limits_and_stat_without_their_files_read_alike() {
        let file = parse_limits(&fs::read_to_string("/proc/self/limits").unwrap());
        assert_eq!(own_limits().unwrap(), file);
        let from_status = Own::read().stat().unwrap();
        let file = parse_stat(&fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert_eq!(
            (from_status.ppid, from_status.start_ticks),
            (file.ppid, file.start_ticks)
        );
        assert!(from_status.num_threads > 0);
        assert_ne!(from_status.state, ' ');
    }

    #[test]
    fn this_process_is_first() {
        let own = Own::read();
        let p = processes(&own).unwrap();
        assert_eq!(p[0].pid, std::process::id() as i32);
        assert_eq!(p[0].depth, 0);
        assert!(!p[0].cmdline.is_empty());
        let info = process_info(0, &own);
        assert!(info.open_fds.unwrap() >= 3);
        assert!(info.rss_bytes.unwrap() > 0);
        assert!(!info.limits.is_empty());
    }
}
