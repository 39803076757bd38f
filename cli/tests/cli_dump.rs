//! `guru dump <pid>` against the fixture process (`tests/src/bin/dump_fixture.rs`):
//! a fresh report on the caller's stdout, the process's own output left
//! alone, other users refused, hostile clients bounded, sockets cleaned up.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use guru::model::{Content, Data, Report, Trigger};

const END: &str = "==== End of Guru Meditation ====";

fn threads_of(r: &Report) -> &guru::model::Threads {
    r.sections
        .iter()
        .find_map(|s| match &s.content {
            Content::Ok(Data::Threads(t)) => Some(t),
            _ => None,
        })
        .expect("a Threads section")
}

fn parked_with_function(r: &Report) -> usize {
    threads_of(r)
        .threads
        .iter()
        .filter(|t| {
            t.name == "parked"
                && t.frames.iter().any(|f| {
                    f.functions.iter().any(|func| {
                        func.name
                            .as_deref()
                            .is_some_and(|n| n.ends_with("dump_fixture_parked"))
                    })
                })
        })
        .count()
}

/// Waits until `n` threads of `pid` sit in `futex` (parked threads may
/// still be on their way there when the fixture says ready).
fn wait_parked(pid: i32, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let parked = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("syscall"))
                    .is_ok_and(|s| s.split_whitespace().next() == Some("202"))
            })
            .count();
        if parked >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {parked} of {n} threads parked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dump_text_and_json_as_the_same_user() {
    let xdg = test_dir("same-user");
    let f = start(&xdg, &["--threads", "3"]);
    let pid = f.pid();
    assert!(socket_of(&xdg, pid).exists(), "no socket");

    let text = dump_ok(pid, false);
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with(&format!("==== Guru Meditation ==== pid {pid} report #"))
            && first.ends_with(" on request"),
        "{first}"
    );
    assert!(
        text.trim_end().ends_with(&format!("pid {pid} report #1")),
        "{text}"
    );
    assert!(
        text.contains("  requested by: guru dump from pid "),
        "{text}"
    );
    assert!(text.contains("dump_fixture_parked at "), "{text}");

    let json = dump_ok(pid, true);
    let r = Report::from_json(json.trim()).expect("one JSON document");
    assert_eq!(r.pid, pid);
    assert!(matches!(r.trigger, Trigger::Dump { .. }), "{:?}", r.trigger);
    assert_eq!(parked_with_function(&r), 3);
    // The process's own output got no report, and it runs on.
    let err = f.stderr_text();
    assert!(
        !err.contains("Guru Meditation"),
        "stderr got a report:\n{err}"
    );
    let mut f = f;
    assert!(f.is_alive());
}

#[test]
fn another_user_is_refused() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        println!("SKIPPED: needs root and setpriv to run guru dump as another user");
        return;
    }
    let xdg = test_dir("refusal");
    let f = start(&xdg, &["--threads", "1"]);
    let pid = f.pid().to_string();
    let as_nobody = |extra: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            GURU,
            "dump",
            "--timeout",
            "110",
        ])
        .args(extra)
        .arg(&pid);
        run(&mut c)
    };
    // The tool itself refuses: the process is another user's.
    let o = as_nobody(&[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("refused") && stderr(&o).contains("only that user or root"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
    // With the directory and socket opened up, the process refuses on
    // SO_PEERCRED and notes it on its stderr.
    use std::os::unix::fs::PermissionsExt as _;
    let sock = socket_of(&xdg, f.pid());
    for (p, mode) in [(&xdg, 0o711), (&xdg.join("guru"), 0o711), (&sock, 0o777)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let o = as_nobody(&["--socket", sock.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("refused: uid 65534 is neither"),
        "{}",
        stderr(&o)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f
        .stderr_text()
        .contains("guru: refused 1 dump request(s) from other users")
    {
        assert!(
            Instant::now() < deadline,
            "no refusal note:\n{}",
            f.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!f.stderr_text().contains("Guru Meditation"));
}

#[test]
fn dump_during_a_sigusr2_storm() {
    let xdg = test_dir("storm");
    let mut f = start(&xdg, &["--threads", "2", "--min-interval-ms", "0"]);
    let pid = f.pid();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let storm = std::thread::spawn(move || {
        let mut sent = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: kill(2) of our own child.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGUSR2)
            };
            sent += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        sent
    });
    for i in 0..5 {
        let json = i % 2 == 1;
        let out = dump_ok(pid, json);
        if json {
            Report::from_json(out.trim()).expect("whole JSON");
        } else {
            assert!(
                out.trim_end().lines().last().unwrap_or("").starts_with(END),
                "{out}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = storm.join().unwrap();
    assert!(sent > 0);
    assert!(f.is_alive());
    // The signals' reports still went to stderr, framed.
    let reports = f.wait_for_reports(1, Duration::from_secs(30));
    assert!(!reports.is_empty());
}

#[test]
fn fifty_concurrent_dumps() {
    let xdg = test_dir("fifty");
    let mut f = start(&xdg, &["--threads", "4"]);
    let pid = f.pid();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || (i, guru(&["dump", &pid.to_string(), "--timeout", "60"])))
        })
        .collect();
    let mut sequences = std::collections::BTreeSet::new();
    for h in handles {
        let (i, o) = h.join().unwrap();
        assert!(o.status.success(), "dump {i}: {}", stderr(&o));
        let text = stdout(&o);
        let last = text.trim_end().lines().last().unwrap_or("").to_string();
        assert!(last.starts_with(END), "dump {i} cut: {last}");
        sequences.insert(last);
    }
    assert!(f.is_alive());
    // Requests coalesce: far fewer reports than requests were produced.
    println!("50 dumps were answered by {} reports", sequences.len());
}

#[test]
fn a_client_that_never_reads_does_not_hold_the_process() {
    let xdg = test_dir("never-reads");
    // Enough threads that the report does not fit in a socket buffer.
    let f = start(&xdg, &["--threads", "300", "--min-interval-ms", "0"]);
    let pid = f.pid();
    let mut stuck = UnixStream::connect(socket_of(&xdg, pid)).unwrap();
    stuck.write_all(b"guru-dump/1 text\n").unwrap();
    // It never reads. Another dump and a signal's report still come.
    std::thread::sleep(Duration::from_millis(200));
    let text = dump_ok(pid, false);
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap_or("")
            .starts_with(END)
    );
    f.signal(libc::SIGUSR2);
    let reports = f.wait_for_reports(1, Duration::from_secs(60));
    assert_eq!(reports.len(), 1);
    // The stuck client got at most a part of its answer, and is dropped
    // at the write deadline (the process closes its end).
    stuck
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut got = Vec::new();
    let r = stuck.read_to_end(&mut got);
    assert!(r.is_ok() || !got.is_empty(), "{r:?}");
}

#[test]
fn garbage_and_idle_connections_are_bounded() {
    let xdg = test_dir("garbage");
    let mut f = start(&xdg, &["--threads", "2", "--min-interval-ms", "0"]);
    let pid = f.pid();
    let path = socket_of(&xdg, pid);
    // Garbage: one error line, then closed.
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xffu8; 200][..],
        b"guru-dump/1 xml\n",
    ] {
        let mut s = UnixStream::connect(&path).unwrap();
        let _ = s.write_all(garbage);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("error bad request"), "{answer:?}");
    }
    // 100 connections that send nothing, at once.
    let idle: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    // A real dump still gets its report (the idle ones are dropped after
    // their read deadline; the tool retries while the process is busy).
    let text = dump_ok(pid, false);
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap_or("")
            .starts_with(END)
    );
    f.signal(libc::SIGUSR2);
    f.wait_for_reports(1, Duration::from_secs(60));
    // Each idle connection is closed by the process (EOF), none hangs.
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf);
        assert!(r.is_ok(), "an idle connection was not closed: {r:?}");
    }
    assert!(f.is_alive());
}

#[test]
fn dump_of_a_process_with_1000_threads() {
    let xdg = test_dir("thousand");
    let f = start(&xdg, &["--threads", "1000"]);
    wait_parked(f.pid(), 1000);
    let json = guru(&["dump", &f.pid().to_string(), "--json", "--timeout", "120"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let r = Report::from_json(stdout(&json).trim()).expect("JSON");
    let t = threads_of(&r);
    assert!(t.threads.len() >= 1000, "{} threads", t.threads.len());
    // Each parked thread is shown in its function, or (the round's
    // deadline passed on a loaded machine) listed as not answering.
    let unanswered = t
        .threads
        .iter()
        .filter(|t| t.name == "parked" && !t.captured)
        .count();
    assert_eq!(
        parked_with_function(&r) + unanswered,
        1000,
        "{unanswered} did not answer"
    );
}

#[test]
fn stale_sockets_are_cleaned_and_reported() {
    let xdg = test_dir("stale");
    let dir = xdg.join("guru");
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A socket of a pid that does not exist, nobody listening.
    let dead = (4_000_000..4_100_000)
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let dead_sock = dir.join(format!("{dead}.sock"));
    drop(std::os::unix::net::UnixListener::bind(&dead_sock).unwrap());
    assert!(dead_sock.exists());
    // A live process without guru whose pid has a stale socket.
    let mut sleeper = Command::new("sleep")
        .arg("600")
        .env("XDG_RUNTIME_DIR", &xdg)
        .spawn()
        .unwrap();
    // `spawn` returns when the child's exec has passed its point of no
    // return, before the kernel has laid out the new image's environment:
    // for a moment `/proc/<pid>/environ` reads empty, and `guru dump` would
    // look only in the fallback directory. Wait until it is there.
    let environ = format!("/proc/{}/environ", sleeper.id());
    let until = Instant::now() + Duration::from_secs(30);
    while !std::fs::read(&environ)
        .unwrap_or_default()
        .split(|&b| b == 0)
        .any(|kv| kv.starts_with(b"XDG_RUNTIME_DIR="))
    {
        assert!(
            Instant::now() < until,
            "{environ} never showed XDG_RUNTIME_DIR"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let live_sock = dir.join(format!("{}.sock", sleeper.id()));
    drop(std::os::unix::net::UnixListener::bind(&live_sock).unwrap());

    // guru dump of the live one: the stale socket is not used, but removed.
    let o = guru(&["dump", &sleeper.id().to_string()]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("has no guru dump socket") && e.contains("removed stale socket"),
        "{e}"
    );
    assert!(e.contains(&format!("kill -USR2 {}", sleeper.id())), "{e}");
    assert!(!live_sock.exists());

    // A guru process starting up removes the dead pid's socket.
    let f = start(&xdg, &["--threads", "1"]);
    assert!(!dead_sock.exists(), "stale socket left");
    let mine = socket_of(&xdg, f.pid());
    assert!(mine.exists());
    // And its own is removed when it exits.
    let mut f = f;
    f.send_line("exit");
    let status = f.finish(Duration::from_secs(30));
    assert!(status.success());
    assert!(!mine.exists(), "socket left after exit");
}

#[test]
fn a_process_without_the_socket_is_told_plainly() {
    let xdg = test_dir("no-socket");
    let f = start(&xdg, &["--threads", "1", "--no-socket"]);
    assert!(!socket_of(&xdg, f.pid()).exists());
    let o = guru(&["dump", &f.pid().to_string()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("has no guru dump socket"), "{e}");
    assert!(e.contains(&format!("kill -USR2 {}", f.pid())), "{e}");
    assert!(e.contains("Builder::dump_socket(false)"), "{e}");
    // No such process at all.
    let o = guru(&["dump", "2147483647"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no process 2147483647"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_guard_dropping_removes_the_socket() {
    let xdg = test_dir("guard-drop");
    let f = start(&xdg, &["--threads", "1"]);
    let sock = socket_of(&xdg, f.pid());
    assert!(sock.exists());
    // EOF on stdin: the fixture drops its guard and returns from main.
    let status = f.finish(Duration::from_secs(30));
    assert!(status.success());
    assert!(!sock.exists());
}

#[test]
fn a_process_in_another_mount_namespace_is_reached_through_proc_root() {
    if !is_root()
        || !Command::new("unshare")
            .args(["-m", "--propagation", "private", "true"])
            .status()
            .is_ok_and(|s| s.success())
    {
        println!("SKIPPED: needs root and unshare -m (a private mount namespace)");
        return;
    }
    let xdg = test_dir("mount-ns");
    let x = xdg.to_str().unwrap();
    let script = format!(
        "mount -t tmpfs -o mode=0700 none {x} && exec {} --threads 1",
        fixture_path().display()
    );
    watchdog(Duration::from_secs(600));
    let mut f = Fixture::spawn_with_env(
        "unshare",
        &["-m", "--propagation", "private", "sh", "-c", &script],
        &[("XDG_RUNTIME_DIR", x)],
    );
    let ready = f.wait_for_line("ready pid=", Duration::from_secs(60));
    let pid: i32 = ready.trim_start_matches("ready pid=").parse().unwrap();
    // Its socket is in its own tmpfs: not visible here under that name.
    assert!(!socket_of(&xdg, pid).exists());
    let text = dump_ok(pid, false);
    assert!(
        text.starts_with(&format!("==== Guru Meditation ==== pid {pid} ")),
        "{text}"
    );
    assert!(text.contains("dump_fixture_parked"), "{text}");
}
