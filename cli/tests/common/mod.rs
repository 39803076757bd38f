//! Shared by the CLI's process tests: where the `guru` binary and the
//! fixture are, a private `XDG_RUNTIME_DIR` per test, running `guru`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub use guru_tests::{Fixture, watchdog};

pub const GURU: &str = env!("CARGO_BIN_EXE_guru");

/// `target/<profile>/dump_fixture`, next to `guru`: a binary of the
/// `guru-tests` package (`tests/src/bin/dump_fixture.rs`), which the
/// workspace's test command builds. Not an example of this package: with
/// `--all-targets` cargo builds examples as test harnesses only.
pub fn fixture_path() -> PathBuf {
    Path::new(GURU)
        .parent()
        .expect("target dir")
        .join("dump_fixture")
}

/// A fresh directory for one test (its `XDG_RUNTIME_DIR`), mode 0700.
pub fn test_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let d = std::env::temp_dir().join(format!("guru-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("test dir");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    d
}

/// Starts the fixture with `XDG_RUNTIME_DIR=xdg` and waits for `ready`.
pub fn start(xdg: &Path, args: &[&str]) -> Fixture {
    watchdog(Duration::from_secs(600));
    let program = fixture_path();
    assert!(
        program.is_file(),
        "{} missing: run the workspace's tests (`cargo test --workspace --all-targets`), or build it first: `cargo build -p guru-tests --bin dump_fixture`",
        program.display()
    );
    let mut f = Fixture::spawn_with_env(
        program.to_str().expect("utf-8 path"),
        args,
        &[("XDG_RUNTIME_DIR", xdg.to_str().expect("utf-8 path"))],
    );
    f.wait_for_line("ready pid=", Duration::from_secs(60));
    f
}

/// The fixture's socket.
pub fn socket_of(xdg: &Path, pid: i32) -> PathBuf {
    xdg.join("guru").join(format!("{pid}.sock"))
}

/// Runs `guru` with `args`, killed after 120 s.
pub fn guru(args: &[&str]) -> Output {
    run(Command::new(GURU).args(args))
}

/// Runs a command, killed after 120 s (a hang fails, never stalls).
pub fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            // SAFETY: kill(2) of our own child.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGKILL)
            };
        }
    });
    let out = child.wait_with_output().expect("wait");
    let _ = tx.send(());
    let _ = killer.join();
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `guru dump` of `pid`; panics with its stderr unless it succeeds.
pub fn dump_ok(pid: i32, json: bool) -> String {
    let pid_s = pid.to_string();
    let mut args = vec!["dump", pid_s.as_str(), "--timeout", "110"];
    if json {
        args.push("--json");
    }
    let o = guru(&args);
    assert!(o.status.success(), "guru dump failed: {}", stderr(&o));
    stdout(&o)
}

/// Whether we are root (tests that switch users need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let uid = unsafe { libc::geteuid() };
    uid == 0
}
