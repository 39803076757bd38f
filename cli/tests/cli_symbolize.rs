//! `guru symbolize` on a report of a stripped copy of the fixture, with its
//! debug info split off into a `.build-id` tree, compared with the report
//! of the unstripped build; a debug file with another build-id is never
//! used. `guru summarize` and `guru diff` on real reports.
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use guru::model::{Content, Data, Report};

fn tool_ok(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// The build-id of `path` as hex, from the report's Modules section.
fn build_id(r: &Report, file: &str) -> String {
    r.sections
        .iter()
        .find_map(|s| match &s.content {
            Content::Ok(Data::Modules(m)) => m
                .modules
                .iter()
                .find(|m| m.path.ends_with(file))
                .and_then(|m| m.build_id.clone()),
            _ => None,
        })
        .expect("the fixture module with a build-id")
}

/// The parked threads' frames in the fixture module: (function names,
/// file:line) per frame.
fn parked_frames(r: &Report, module: &str) -> Vec<Vec<String>> {
    let t = r
        .sections
        .iter()
        .find_map(|s| match &s.content {
            Content::Ok(Data::Threads(t)) => Some(t),
            _ => None,
        })
        .expect("threads");
    let th = t
        .threads
        .iter()
        .find(|t| t.name == "parked")
        .expect("a parked thread");
    th.frames
        .iter()
        .filter(|f| f.module.as_deref() == Some(module))
        .map(|f| {
            f.functions
                .iter()
                .map(|func| {
                    format!(
                        "{} {}:{}",
                        func.name.as_deref().unwrap_or("??"),
                        func.file.as_deref().unwrap_or("?"),
                        func.line.unwrap_or(0)
                    )
                })
                .collect()
        })
        .collect()
}

fn dump_json(xdg: &Path, program: &Path) -> Report {
    watchdog(Duration::from_secs(600));
    let mut f = Fixture::spawn_with_env(
        program.to_str().unwrap(),
        &["--threads", "1"],
        &[("XDG_RUNTIME_DIR", xdg.to_str().unwrap())],
    );
    f.wait_for_line("ready pid=", Duration::from_secs(60));
    let r = Report::from_json(dump_ok(f.pid(), true).trim()).expect("JSON");
    drop(f);
    r
}

struct Builds {
    dir: PathBuf,
    stripped: PathBuf,
    debug_dir: PathBuf,
}

/// A stripped copy of the fixture and its debug info under
/// `debug/.build-id/ab/cdef….debug`; None (SKIPPED) without binutils.
fn builds(name: &str, id: &str) -> Option<Builds> {
    if !tool_ok(Command::new("strip").arg("--version"))
        || !tool_ok(Command::new("objcopy").arg("--version"))
    {
        println!("SKIPPED: needs strip and objcopy (binutils)");
        return None;
    }
    let dir = test_dir(name);
    let stripped = dir.join("dump_fixture");
    assert!(
        Command::new("strip")
            .args(["--strip-all", "-o"])
            .arg(&stripped)
            .arg(fixture_path())
            .status()
            .unwrap()
            .success()
    );
    let debug_dir = dir.join("debug");
    let d = debug_dir.join(".build-id").join(&id[..2]);
    std::fs::create_dir_all(&d).unwrap();
    assert!(
        Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(fixture_path())
            .arg(d.join(format!("{}.debug", &id[2..])))
            .status()
            .unwrap()
            .success()
    );
    Some(Builds {
        dir,
        stripped,
        debug_dir,
    })
}

fn symbolize(input: &str, args: &[&str]) -> (String, String) {
    use std::io::Write as _;
    let mut child = Command::new(GURU)
        .arg("symbolize")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    (stdout(&o), stderr(&o))
}

#[test]
fn a_stripped_report_symbolizes_like_the_unstripped_build() {
    let xdg = test_dir("sym-xdg");
    let unstripped = dump_json(&xdg, &fixture_path());
    let id = build_id(&unstripped, "/dump_fixture");
    let Some(b) = builds("sym", &id) else { return };
    let stripped = dump_json(&xdg, &b.stripped);
    assert_eq!(
        build_id(&stripped, "/dump_fixture"),
        id,
        "strip keeps the build-id"
    );
    let want = parked_frames(&unstripped, "dump_fixture");
    let before = parked_frames(&stripped, "dump_fixture");
    assert!(
        want.iter()
            .flatten()
            .any(|f| f.contains("dump_fixture_parked ")),
        "{want:?}"
    );
    assert!(
        before.iter().all(Vec::is_empty),
        "stripped already has functions: {before:?}"
    );

    let debug = b.debug_dir.to_str().unwrap();
    // JSON in, JSON out.
    let (out, err) = symbolize(&stripped.to_json(), &["-", "--debug-dir", debug]);
    let resolved = Report::from_json(out.trim()).expect("JSON out");
    assert_eq!(parked_frames(&resolved, "dump_fixture"), want, "{err}");
    assert!(!err.contains("dump_fixture (build-id"), "{err}");
    // Text in (the model's text of the same report), text out.
    let (out, _) = symbolize(&stripped.to_text(), &["--debug-dir", debug]);
    assert!(out.starts_with("==== Guru Meditation ===="), "{out}");
    assert!(out.contains("dump_fixture_parked at "), "{out}");
    let resolved = Report::from_text(&out).expect("text out");
    // The text prints toolchain and registry paths short (`std/src/…`) and
    // folds the runtime start-up frames once they have names: the
    // unstripped report's text is what the symbolized text must match.
    let unstripped_text = Report::from_text(&unstripped.to_text()).expect("text");
    assert_eq!(
        parked_frames(&resolved, "dump_fixture"),
        parked_frames(&unstripped_text, "dump_fixture")
    );
    // --binary with the unstripped file works the same.
    let bin = fixture_path();
    let (out, _) = symbolize(
        &stripped.to_json(),
        &[
            "--debug-dir",
            "/nonexistent",
            "--binary",
            bin.to_str().unwrap(),
        ],
    );
    let resolved = Report::from_json(out.trim()).unwrap();
    assert_eq!(parked_frames(&resolved, "dump_fixture"), want);
    let _ = std::fs::remove_dir_all(&b.dir);
}

#[test]
fn a_debug_file_with_another_build_id_is_never_used() {
    let xdg = test_dir("mismatch-xdg");
    let unstripped = dump_json(&xdg, &fixture_path());
    let id = build_id(&unstripped, "/dump_fixture");
    let Some(b) = builds("mismatch", &id) else {
        return;
    };
    let stripped = dump_json(&xdg, &b.stripped);
    // Put another binary's debug info (the guru tool's) under this build-id.
    let path = b
        .debug_dir
        .join(".build-id")
        .join(&id[..2])
        .join(format!("{}.debug", &id[2..]));
    std::fs::copy(GURU, &path).unwrap();
    // And give the unstripped file as --binary under another name: its
    // build-id matches, but we test the mismatch without it. The module's
    // own path is the stripped copy (no DWARF).
    let (out, err) = symbolize(
        &stripped.to_json(),
        &[
            "--debug-dir",
            b.debug_dir.to_str().unwrap(),
            "--binary",
            GURU,
        ],
    );
    let left = Report::from_json(out.trim()).unwrap();
    assert!(
        parked_frames(&left, "dump_fixture")
            .iter()
            .all(Vec::is_empty),
        "a mismatched file was used"
    );
    assert!(
        err.contains("unresolved:")
            && err.contains("dump_fixture (build-id")
            && err.contains("is not the module's"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&b.dir);
}

#[test]
fn summarize_and_diff_real_reports() {
    let xdg = test_dir("summarize");
    let mut f = start(&xdg, &["--threads", "5", "--min-interval-ms", "0"]);
    let pid = f.pid();
    let dir = test_dir("summarize-files");
    let a = dir.join("a.json");
    std::fs::write(&a, dump_ok(pid, true)).unwrap();
    f.send_line("spawn");
    let spawned: i32 = f
        .wait_for_line("spawned ", Duration::from_secs(30))
        .trim_start_matches("spawned ")
        .parse()
        .unwrap();
    f.send_line("stop");
    let stopped: i32 = f
        .wait_for_line("stopped ", Duration::from_secs(30))
        .trim_start_matches("stopped ")
        .parse()
        .unwrap();
    assert_eq!(spawned, stopped, "the last one spawned is stopped");
    f.send_line("stop");
    let gone: i32 = f
        .wait_for_line("stopped ", Duration::from_secs(30))
        .trim_start_matches("stopped ")
        .parse()
        .unwrap();
    f.send_line("spawn");
    let new: i32 = f
        .wait_for_line("spawned ", Duration::from_secs(30))
        .trim_start_matches("spawned ")
        .parse()
        .unwrap();
    for _ in 0..1000 {
        if !Path::new(&format!("/proc/{pid}/task/{gone}")).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let b = dir.join("b.txt");
    std::fs::write(
        &b,
        Report::from_json(dump_ok(pid, true).trim())
            .unwrap()
            .to_text(),
    )
    .unwrap();

    let o = guru(&["summarize", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(
        s.contains("5 threads, same stack, in syscall futex: "),
        "{s}"
    );
    assert!(s.contains("Functions most threads are in"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.trim_start().starts_with("5  ") && l.contains("dump_fixture_parked")),
        "{s}"
    );

    let o = guru(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d = stdout(&o);
    let part = |title: &str| {
        let start = d.find(title).unwrap_or_else(|| panic!("{title} in {d}"));
        let rest = &d[start..];
        rest[..rest[1..].find("\n\n").map_or(rest.len(), |e| e + 1)].to_string()
    };
    let same = part("Same stack in both (");
    // Both reports carry each thread's CPU clock: a parked thread's delta
    // is its capture handler's few microseconds.
    assert!(
        same.contains("\"parked\" (in syscall futex, cpu +0.00"),
        "{d}"
    );
    assert!(!d.contains("per-thread CPU time is not"), "{d}");
    assert!(
        part("Appeared (").contains(&format!("{new} \"parked\"")),
        "{d}"
    );
    assert!(
        part("Vanished (").contains(&format!("{gone} \"parked\"")),
        "{d}"
    );
}

#[test]
fn bad_input_is_one_line_and_a_failure() {
    let dir = test_dir("bad-input");
    let p = dir.join("x.txt");
    std::fs::write(&p, "hello\n").unwrap();
    for args in [
        vec!["summarize", p.to_str().unwrap()],
        vec!["diff", p.to_str().unwrap(), p.to_str().unwrap()],
        vec!["symbolize", p.to_str().unwrap()],
        vec!["summarize", "/nonexistent/report.txt"],
    ] {
        let o = guru(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(e.starts_with("guru: ") && e.lines().count() == 1, "{e}");
    }
}
