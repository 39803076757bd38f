//! Process-level test harness for guru.
//!
//! Signal tests never signal the test process itself: they start a fixture
//! binary, wait for its readiness line on stdout (no sleeps), send it signals,
//! and read complete reports from its stderr. Every wait has a deadline, and a
//! [`Fixture`] kills its child when dropped, so a hang fails fast instead of
//! stalling CI. [`watchdog`] additionally aborts the whole test binary if a
//! test runs far past any reasonable time.
#![allow(unsafe_code)]

pub mod alloc_guard;
pub mod model_round_trip;
pub mod stress;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// Aborts the test process after `limit` (once per process): a last line of
/// defence against a hang that the per-wait deadlines did not catch.
pub fn watchdog(limit: Duration) {
    static START: Once = Once::new();
    START.call_once(|| {
        std::thread::Builder::new()
            .name("test-watchdog".into())
            .spawn(move || {
                std::thread::sleep(limit);
                eprintln!("watchdog: test process still running after {limit:?}; aborting");
                std::process::abort();
            })
            .expect("spawn watchdog");
    });
}

/// Waits until thread `tid` of process `pid` sits in system call `call`
/// (`libc::SYS_*`), as `/proc/<pid>/task/<tid>/syscall` tells. Fixtures
/// announce their threads once started; on a loaded machine a thread may not
/// have reached its blocking call yet when a test wants to see it there.
pub fn wait_in_syscall(pid: i32, tid: i32, call: libc::c_long, timeout: Duration) {
    let path = format!("/proc/{pid}/task/{tid}/syscall");
    let deadline = Instant::now() + timeout;
    loop {
        let now = std::fs::read_to_string(&path).unwrap_or_default();
        if now.split_whitespace().next() == Some(call.to_string().as_str()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "thread {tid} never entered system call {call}: {path} says {now:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A running fixture process.
#[derive(Debug)]
pub struct Fixture {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout_lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Lines of stdout seen so far.
    pub stdout_seen: Vec<String>,
}

impl Fixture {
    /// Starts `program` with `args`, stdin/stdout/stderr piped.
    pub fn spawn(program: &str, args: &[&str]) -> Fixture {
        Self::spawn_with_env(program, args, &[])
    }

    /// Starts `program` with `args` and extra environment variables.
    pub fn spawn_with_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Fixture {
        watchdog(Duration::from_secs(300));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]),
                }
            }
        });
        let stdin = child.stdin.take();
        Fixture {
            child,
            stdin,
            stdout_lines: rx,
            stderr,
            stdout_seen: Vec::new(),
        }
    }

    /// Starts `program` with `args` and the given stderr (a pipe the test
    /// controls, say); stdin and stdout are piped as in [`Fixture::spawn`].
    /// [`Fixture::stderr_text`] stays empty: the caller reads stderr itself.
    pub fn spawn_with_stderr(program: &str, args: &[&str], stderr: Stdio) -> Fixture {
        watchdog(Duration::from_secs(300));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Fixture {
            child,
            stdin,
            stdout_lines: rx,
            stderr: Arc::new(Mutex::new(Vec::new())),
            stdout_seen: Vec::new(),
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Asks a core fixture (`allocs` on stdin) how many allocations its
    /// guard has counted, and returns the count.
    pub fn allocations(&mut self, timeout: Duration) -> u64 {
        self.send_line("allocs");
        let line = self.wait_for_line("allocs ", timeout);
        line["allocs ".len()..]
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("allocation count in {line:?}: {e}"))
    }

    /// Waits for a stdout line starting with `prefix` and returns it.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout_seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stdout line starting with {prefix:?} within {timeout:?}\nstdout so far: {:#?}\nstderr so far:\n{}",
                    self.stdout_seen,
                    self.stderr_text()
                ),
            }
        }
    }

    /// The `thread <name> <tid>` lines the fixture printed so far, as a map
    /// from name to tid (fixtures announce their threads before `ready`).
    pub fn announced_threads(&self) -> std::collections::BTreeMap<String, i32> {
        let mut threads = std::collections::BTreeMap::new();
        for line in &self.stdout_seen {
            let mut parts = line.split_whitespace();
            if parts.next() == Some("thread") {
                let name = parts.next().expect("thread name").to_string();
                let tid = parts
                    .next()
                    .and_then(|t| t.parse().ok())
                    .expect("thread tid");
                threads.insert(name, tid);
            }
        }
        threads
    }

    /// Sends a line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.write_all(b"\n"))
            .expect("write to fixture stdin");
        stdin.flush().expect("flush");
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(r, 0, "kill({}, {signal})", self.pid());
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Waits until stderr holds at least `count` complete reports (begin and end
    /// lines) and returns them all.
    pub fn wait_for_reports(&self, count: usize, timeout: Duration) -> Vec<Report> {
        let deadline = Instant::now() + timeout;
        loop {
            let reports = parse_reports(&self.stderr_text());
            if reports.len() >= count {
                return reports;
            }
            if Instant::now() >= deadline {
                panic!(
                    "expected {count} complete reports within {timeout:?}, found {}\nstderr:\n{}",
                    reports.len(),
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the child is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the child to die by itself (a crash: stdin
    /// stays open, so its end is not what stops it), lets the stderr reader
    /// take the last bytes, and returns the exit status and all of stderr.
    /// Kills it and panics with its stderr if it is still alive.
    pub fn wait_for_death(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        while self.is_alive() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "fixture still alive after {timeout:?}\nstderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Let the stderr reader catch up with the dead process's last bytes.
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr_text();
        (self.finish(timeout), stderr)
    }

    /// Closes stdin and waits up to `timeout` for the child to exit; returns
    /// its exit status (kills it and panics if it does not exit).
    pub fn finish(mut self, timeout: Duration) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "fixture did not exit within {timeout:?}\nstderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One thread block of a text report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadBlock {
    /// Thread id.
    pub tid: i32,
    /// Name between the quotes.
    pub name: String,
    /// The whole header line.
    pub header: String,
    /// Frame lines (`#n ...`), without leading spaces.
    pub frames: Vec<String>,
    /// Other lines in the block (stack end notes, folded runs).
    pub notes: Vec<String>,
}

impl ThreadBlock {
    /// Index of the first frame mentioning `needle`.
    pub fn frame_index(&self, needle: &str) -> Option<usize> {
        self.frames.iter().position(|f| f.contains(needle))
    }

    /// Asserts that `needles` appear in this order, innermost first (each
    /// strictly after the previous one).
    pub fn assert_frames_in_order(&self, needles: &[&str]) {
        let mut last: Option<usize> = None;
        for needle in needles {
            let found = self
                .frames
                .iter()
                .enumerate()
                .skip(last.map_or(0, |l| l + 1))
                .find(|(_, f)| f.contains(needle))
                .map(|(i, _)| i);
            match found {
                Some(i) => last = Some(i),
                None => panic!(
                    "thread {} {:?}: {needle:?} not found after frame {last:?}; frames:\n{}",
                    self.tid,
                    self.name,
                    self.frames.join("\n")
                ),
            }
        }
    }
}

/// A complete text report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The whole text, begin line to end line.
    pub text: String,
    /// pid from the begin line.
    pub pid: i32,
    /// Sequence number from the begin line.
    pub sequence: u64,
    /// Section titles in order.
    pub sections: Vec<String>,
    /// Thread blocks in order.
    pub threads: Vec<ThreadBlock>,
}

impl Report {
    /// A figure from a report line of the form `<line> a N, b M, ...`: the
    /// number before `label` (e.g. `figure("threads:", "unresponsive")`).
    /// Panics, with the report, if there is none.
    pub fn figure(&self, line: &str, label: &str) -> u64 {
        let suffix = format!(" {label}");
        self.text
            .lines()
            .find_map(|l| l.trim().strip_prefix(line))
            .and_then(|l| {
                l.split(", ")
                    .find_map(|part| part.trim().strip_suffix(suffix.as_str()))
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line:?} figure {label:?} in:\n{}", self.text))
    }

    /// The thread block with this name.
    pub fn thread_named(&self, name: &str) -> &ThreadBlock {
        self.threads
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no thread named {name:?} in report:\n{}", self.text))
    }

    /// The body of section `title` (lines between its banner and the next).
    pub fn section(&self, title: &str) -> Option<String> {
        let lines: Vec<&str> = self.text.lines().collect();
        let start = lines
            .iter()
            .position(|l| is_banner_title(l) && banner_title(l) == title)?;
        let body: Vec<&str> = lines[start + 2..]
            .iter()
            .take_while(|l| {
                !(l.starts_with("==== End of") || l.starts_with("========") && l.len() == 72)
            })
            .copied()
            .collect();
        Some(body.join("\n"))
    }
}

fn is_banner_title(line: &str) -> bool {
    line.chars().count() == 72
        && line.starts_with("====")
        && line.ends_with("====")
        && !line.starts_with("=====")
}

fn banner_title(line: &str) -> String {
    line.trim_matches('=').trim().to_string()
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Finds every complete report (begin line … matching end line) in `text`.
/// Incomplete or interleaved fragments are ignored.
pub fn parse_reports(text: &str) -> Vec<Report> {
    let lines: Vec<&str> = text.lines().collect();
    let mut reports = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("==== Guru Meditation ====") {
            let pid = number_after(line, "pid ").unwrap_or(0) as i32;
            let sequence = number_after(line, "report #").unwrap_or(0);
            let end_marker =
                format!("==== End of Guru Meditation ==== pid {pid} report #{sequence}");
            if let Some(rel_end) = lines[i..].iter().position(|l| *l == end_marker) {
                let block = &lines[i..=i + rel_end];
                reports.push(parse_one(block, pid, sequence));
                i += rel_end + 1;
                continue;
            }
        }
        i += 1;
    }
    reports
}

fn parse_one(block: &[&str], pid: i32, sequence: u64) -> Report {
    let mut sections = Vec::new();
    let mut threads: Vec<ThreadBlock> = Vec::new();
    let mut in_threads = false;
    for line in block {
        if is_banner_title(line) {
            let title = banner_title(line);
            in_threads = title == "Threads";
            sections.push(title);
            continue;
        }
        if !in_threads {
            continue;
        }
        if line.starts_with("------") && line.contains("Thread ") {
            let tid = number_after(line, "Thread ").unwrap_or(0) as i32;
            let name = line.split('"').nth(1).unwrap_or("").to_string();
            threads.push(ThreadBlock {
                tid,
                name,
                header: line.to_string(),
                frames: Vec::new(),
                notes: Vec::new(),
            });
        } else if let Some(t) = threads.last_mut() {
            let trimmed = line.trim_start();
            if trimmed.starts_with('#') {
                t.frames.push(trimmed.to_string());
            } else if !trimmed.is_empty() {
                t.notes.push(trimmed.to_string());
            }
        }
    }
    Report {
        text: block.join("\n"),
        pid,
        sequence,
        sections,
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_reports_and_skips_fragments() {
        let banner = |t: &str| {
            let inner = 64;
            let left = (inner - t.len()) / 2;
            let right = inner - t.len() - left;
            format!(
                "{}\n===={}{}{}====\n{}",
                "=".repeat(72),
                " ".repeat(left),
                t,
                " ".repeat(right),
                "=".repeat(72)
            )
        };
        let text = format!(
            "noise\n==== Guru Meditation ==== pid 7 report #1 at x\n{}\n------ Thread 8 \"w\" (running) ------\n  #0 0x1 a\n  #1 0x2 b\n  -- end\n{}\n  m\n==== End of Guru Meditation ==== pid 7 report #1\n==== Guru Meditation ==== pid 7 report #2 at y\n",
            banner("Threads"),
            banner("Modules")
        );
        let r = parse_reports(&text);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].sections, ["Threads", "Modules"]);
        assert_eq!(r[0].threads[0].tid, 8);
        assert_eq!(r[0].threads[0].name, "w");
        r[0].threads[0].assert_frames_in_order(&["a", "b"]);
        assert_eq!(r[0].section("Modules").as_deref(), Some("  m"));
    }
}
