//! `guru symbolize`: resolves the frames of a report from a stripped build
//! with debug info found **by build-id** only, with the std adapter's DWARF
//! reader (`guru::symbols::DebugFile`).
//!
//! For each module of the report's Modules section that has a build-id,
//! the first of these whose build-id matches is used:
//! 1. `<dir>/.build-id/ab/cdef….debug` for each `--debug-dir` (default
//!    `/usr/lib/debug`);
//! 2. each `--binary` file;
//! 3. the module's own path (an unstripped binary on this machine);
//! 4. `$DEBUGINFOD_CACHE_PATH/<build-id>/debuginfo` (default
//!    `~/.cache/debuginfod_client`).
//!
//! A file whose build-id differs is never used. A frame that already has
//! functions is left as it is; a frame of a module without a matching file
//! too, and that module is listed at the end (on stderr).
//!
//! Text out ([`text`]) is the text the std adapter writes for an unstripped
//! build: a thread whose input text folded no frames has them all, and once
//! they have names its runtime start-up frames fold into one
//! `... runtime start-up frames` line, as they do in a report of the
//! unstripped binary; ranges the input already folded stay folded (their
//! frames are not in the input, so they stay unresolved).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use guru::model::{Content, Data, Frame, Module, Report};
use guru::symbols::{DebugFile, build_id_of};

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn debuginfod_cache() -> Option<PathBuf> {
    std::env::var_os("DEBUGINFOD_CACHE_PATH")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/debuginfod_client"))
        })
}

/// A module's debug file, or why there is none.
struct Resolver {
    file: Result<DebugFile, String>,
    /// Frames left unresolved.
    missed: usize,
}

fn find(
    m: &Module,
    id: &[u8],
    dirs: &[PathBuf],
    binaries: &[(PathBuf, Option<Vec<u8>>)],
) -> Result<DebugFile, String> {
    let hex = m.build_id.clone().unwrap_or_default();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let (Some(first), Some(rest)) = (hex.get(..2), hex.get(2..)) {
        for d in dirs {
            candidates.push(
                d.join(".build-id")
                    .join(first)
                    .join(format!("{rest}.debug")),
            );
        }
    }
    candidates.extend(
        binaries
            .iter()
            .filter(|(_, b)| b.as_deref() == Some(id))
            .map(|(p, _)| p.clone()),
    );
    if m.path.starts_with('/') {
        candidates.push(PathBuf::from(&m.path));
    }
    if let Some(c) = debuginfod_cache() {
        candidates.push(c.join(&hex).join("debuginfo"));
    }
    let mut why = Vec::new();
    for c in &candidates {
        if !c.is_file() {
            continue;
        }
        match DebugFile::open(c, id) {
            Ok(f) => return Ok(f),
            Err(e) => why.push(e),
        }
    }
    if why.is_empty() {
        why.push("no file with its build-id found".into());
    }
    Err(why.join("; "))
}

/// Resolves what it can in `r`; returns one line per module left
/// unresolved.
pub(crate) fn symbolize(
    r: &mut Report,
    debug_dirs: &[PathBuf],
    binaries: &[PathBuf],
) -> Vec<String> {
    let dirs: Vec<PathBuf> = if debug_dirs.is_empty() {
        vec![PathBuf::from("/usr/lib/debug")]
    } else {
        debug_dirs.to_vec()
    };
    let binaries: Vec<(PathBuf, Option<Vec<u8>>)> = binaries
        .iter()
        .map(|b| (b.clone(), build_id_of(b).ok().flatten()))
        .collect();
    let mut unreadable: Vec<String> = binaries
        .iter()
        .filter(|(_, id)| id.is_none())
        .map(|(p, _)| {
            format!(
                "--binary {}: no readable GNU build-id; not used",
                p.display()
            )
        })
        .collect();
    let modules: Vec<Module> = r
        .sections
        .iter()
        .find_map(|s| match &s.content {
            Content::Ok(Data::Modules(m)) => Some(m.modules.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let mut resolvers: HashMap<usize, Resolver> = HashMap::new();
    let mut resolve = |f: &mut Frame, is_return: bool| {
        if !f.functions.is_empty() {
            return;
        }
        let Some(i) = module_of(&modules, f) else {
            return;
        };
        let m = &modules[i];
        let res = resolvers.entry(i).or_insert_with(|| Resolver {
            file: match m.build_id.as_deref().and_then(unhex) {
                Some(id) if !id.is_empty() => find(m, &id, &dirs, &binaries),
                _ => Err("the report has no build-id for it".into()),
            },
            missed: 0,
        });
        let Ok(file) = &res.file else {
            res.missed += 1;
            return;
        };
        let offset = f.module_offset.map_or(0, |o| o.0);
        let functions = file.functions(offset, is_return);
        if functions.is_empty() {
            res.missed += 1;
            return;
        }
        if f.symbol.is_none() {
            f.symbol = file.symbol(offset, is_return);
        }
        f.functions = functions.into();
    };
    for s in &mut r.sections {
        match &mut s.content {
            Content::Ok(Data::Threads(t)) => {
                for th in &mut t.threads {
                    for f in &mut th.frames {
                        let is_return = f.index > 0;
                        resolve(f, is_return);
                    }
                }
            }
            Content::Ok(Data::GreenThreads(g)) => {
                for rt in &mut g.runtimes {
                    if let guru::model::TaskDump::Taken { groups, .. } = &mut rt.task_dump {
                        for trace in groups.iter_mut().flat_map(|g| g.traces.iter_mut()) {
                            for f in trace {
                                resolve(f, true);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut out: Vec<(usize, String)> = resolvers
        .into_iter()
        .filter(|(_, r)| r.file.is_err() && r.missed > 0)
        .map(|(i, res)| {
            let m = &modules[i];
            (
                i,
                format!(
                    "{} (build-id {}): {} frame(s): {}",
                    m.path,
                    m.build_id.as_deref().unwrap_or("none"),
                    res.missed,
                    res.file.err().unwrap_or_default()
                ),
            )
        })
        .collect();
    out.sort();
    unreadable.extend(out.into_iter().map(|(_, s)| s));
    unreadable
}

/// The module a frame belongs to: by address range, else by file name.
fn module_of(modules: &[Module], f: &Frame) -> Option<usize> {
    let name = f.module.as_deref()?;
    let base = |p: &str| {
        Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    modules
        .iter()
        .position(|m| m.start.0 <= f.address.0 && f.address.0 < m.end.0)
        .or_else(|| {
            modules
                .iter()
                .position(|m| base(&m.path).as_deref() == Some(name) || m.path == name)
        })
}

/// The text report of a symbolized `r` (see the module docs): a model read
/// from text renders the frames it listed and the ranges it folded; threads
/// without folded ranges have every frame, so they are rendered as the std
/// adapter renders a fresh report (start-up frames and runs of one return
/// address folded).
pub(crate) fn text(r: &Report) -> String {
    if !r.read_from_text {
        return r.to_text();
    }
    let mut fresh = r.clone();
    fresh.read_from_text = false;
    fresh.to_text()
}
