//! The frame tokio's task trace leaves out: the call in the task's root
//! future.
//!
//! tokio's trace of a task (`Trace::capture`) keeps the frames between its
//! leaf future and the task's root future (`tokio::runtime::task::trace::
//! Root<T>::poll`, `#[inline(never)]`), and drops the root's own frame. In
//! an optimized build the compiler inlines the task's `async fn`s into that
//! root frame — so the one frame naming them is the one tokio drops, and a
//! release trace shows only `Sleep::poll`. Its return address is not in the
//! trace, but it can be found in the code: the outermost traced frame's
//! function (tokio gives its start address) is called from the root
//! future's `poll` of the task's future type, at a call instruction whose
//! return address symbolizes — with its inlined frames — to the `async fn`s
//! and their `file:line`.
//!
//! So, per module, the machine code of every `Root<T>::poll` (ELF symbols
//! whose demangled name is `<tokio::runtime::task::trace::Root<T> as
//! core::future::future::Future>::poll`) is read from the module's file
//! once, and searched for calls to the traced function: x86_64 `call
//! rel32` and `call *slot(%rip)` (the GOT slot read from this process's
//! memory through `/proc/self/mem`; rustc calls other crates' functions
//! that way), aarch64 `bl` only (a call through the GOT there is `adrp`,
//! `ldr`, `blr`: not followed, so such a frame stays missing). The call sites found give the missing frame when
//! they all symbolize to the same inlined functions and lines (one `.await`
//! is often compiled into two calls: the future's first poll and its
//! resumption); none (an indirect call, a stripped binary, no debug info)
//! or sites that differ (two task types await the same leaf directly, or
//! one awaits it at two places) give none, and the trace stays as tokio
//! took it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use guru_core::ModuleSet;

/// The `Root<T>::poll` functions of one module: ELF virtual address and
/// code bytes.
#[derive(Debug, Default)]
struct RootPolls {
    functions: Vec<(u64, Vec<u8>)>,
}

/// Per module path, read once (a module's code does not change).
static CACHE: Mutex<Option<HashMap<Vec<u8>, Arc<RootPolls>>>> = Mutex::new(None);

fn root_polls(path: &[u8]) -> Arc<RootPolls> {
    let mut cache = super::lock(&CACHE);
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(r) = map.get(path) {
        return r.clone();
    }
    let r = Arc::new(read_root_polls(path).unwrap_or_default());
    map.insert(path.to_vec(), r.clone());
    r
}

fn read_root_polls(path: &[u8]) -> Option<RootPolls> {
    use object::{Object, ObjectSection, ObjectSymbol};
    use std::os::unix::ffi::OsStrExt;
    let data = std::fs::read(std::ffi::OsStr::from_bytes(path)).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let mut functions = Vec::new();
    for sym in file.symbols() {
        if sym.kind() != object::SymbolKind::Text || sym.size() == 0 {
            continue;
        }
        let Ok(raw) = sym.name_bytes() else { continue };
        // Cheap filter before demangling: both manglings spell the words.
        if !contains(raw, b"Root") || !contains(raw, b"poll") {
            continue;
        }
        let Ok(name) = std::str::from_utf8(raw) else {
            continue;
        };
        let demangled = format!("{:#}", rustc_demangle::demangle(name));
        if !(demangled.starts_with("<tokio::runtime::task::trace::Root<")
            && demangled.ends_with(">::poll"))
        {
            continue;
        }
        let Some(section) = sym
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
        else {
            continue;
        };
        let Ok(bytes) = section.data() else { continue };
        let start = sym.address().checked_sub(section.address());
        let code = start.and_then(|s| {
            let s = usize::try_from(s).ok()?;
            let e = s.checked_add(usize::try_from(sym.size()).ok()?)?;
            bytes.get(s..e)
        });
        if let Some(code) = code {
            functions.push((sym.address(), code.to_vec()));
        }
    }
    Some(RootPolls { functions })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Return addresses (ELF virtual) of calls to `target` in `code` at
/// `start`: direct calls, and on x86_64 calls through a GOT slot (`got`
/// reads the slot at an ELF virtual address and gives the function's ELF
/// virtual address: rustc calls other crates' functions that way).
fn call_sites(
    start: u64,
    code: &[u8],
    target: u64,
    got: &mut dyn FnMut(u64) -> Option<u64>,
) -> Vec<u64> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    for (i, w) in code.windows(6).enumerate() {
        // call rel32: E8 and a little-endian displacement from the next
        // instruction.
        if let [0xE8, a, b, c, d, _] = *w {
            let rel = i64::from(i32::from_le_bytes([a, b, c, d]));
            let next = start.wrapping_add(i as u64 + 5);
            if next.wrapping_add_signed(rel) == target {
                out.push(next);
            }
        }
        // call *disp32(%rip): FF 15 and the slot's displacement.
        if let [0xFF, 0x15, a, b, c, d] = *w {
            let rel = i64::from(i32::from_le_bytes([a, b, c, d]));
            let next = start.wrapping_add(i as u64 + 6);
            if got(next.wrapping_add_signed(rel)) == Some(target) {
                out.push(next);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    for (i, w) in code.chunks_exact(4).enumerate() {
        // bl imm26: 0b100101 and a signed word offset from this instruction.
        let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        if word & 0xFC00_0000 == 0x9400_0000 {
            let imm = i64::from(((word & 0x03FF_FFFF) << 6) as i32 >> 6) * 4;
            let pc = start.wrapping_add(i as u64 * 4);
            if pc.wrapping_add_signed(imm) == target {
                out.push(pc + 4);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = &got;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = (start, code, target);
    out
}

/// At most this many call sites are considered (more: none is chosen).
const MAX_SITES: usize = 16;

/// The runtime return addresses of the calls in `Root<T>::poll`s to the
/// function starting at `function` (a runtime address); empty when there
/// are none or more than [`MAX_SITES`]. The caller keeps a site only when
/// every one of them symbolizes to the same functions and lines (one
/// `.await` compiled into two call sites: a future's first poll and its
/// resumption).
pub(super) fn candidates(modules: &ModuleSet, function: u64) -> Vec<u64> {
    let Some(module) = modules.module_for(function) else {
        return Vec::new();
    };
    let target = function.wrapping_sub(module.bias);
    let polls = root_polls(module.path_bytes());
    // GOT slots are read from this process's memory (relocated by the
    // loader): through /proc/self/mem, which cannot fault.
    let mem = std::fs::File::open("/proc/self/mem").ok();
    let bias = module.bias;
    let mut got = |slot: u64| -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8; 8];
        mem.as_ref()?
            .read_exact_at(&mut b, slot.wrapping_add(bias))
            .ok()?;
        Some(u64::from_le_bytes(b).wrapping_sub(bias))
    };
    let sites: Vec<u64> = polls
        .functions
        .iter()
        .flat_map(|(start, code)| call_sites(*start, code, target, &mut got))
        .take(MAX_SITES + 1)
        .map(|site| site.wrapping_add(module.bias))
        .collect();
    if sites.len() > MAX_SITES {
        return Vec::new();
    }
    sites
}

#[cfg(test)]
mod tests {
    use super::call_sites;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn direct_calls_to_the_target_are_found() {
        // 0x1000: nop; call 0x1010 (rel 0x0a from 0x1006); nop; call 0x2000;
        // call *0x100(%rip) (slot 0x1112, holding 0x3000); nop.
        let code = [
            0x90, 0xE8, 0x0a, 0, 0, 0, 0x90, 0xE8, 0xf4, 0x0f, 0, 0, 0xFF, 0x15, 0x00, 0x01, 0, 0,
            0x90,
        ];
        let mut got = |slot: u64| (slot == 0x1112).then_some(0x3000);
        assert_eq!(call_sites(0x1000, &code, 0x1010, &mut got), [0x1006]);
        assert_eq!(call_sites(0x1000, &code, 0x2000, &mut got), [0x100c]);
        assert_eq!(call_sites(0x1000, &code, 0x3000, &mut got), [0x1012]);
        assert!(call_sites(0x1000, &code, 0x4000, &mut got).is_empty());
    }
}
