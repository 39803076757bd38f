//! The module table in static memory, for [`crate::install_static`]: which
//! modules are loaded, where, and their build-ids, recorded without the heap.
//!
//! No symbols and no unwind tables are kept: frames of a static engine are
//! printed as `module+0xoffset`, and the Modules section gives each module's
//! path, address range and build-id so a report can be symbolized offline
//! (`addr2line -f -e <path> <offset>`, or a debuginfod lookup by build-id).
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use crate::arch::NativeUnwinder;
use crate::storage::{Carver, Store, bytes_for};
use crate::symbolize::{FixedIdentity, ModuleInfo, ModuleSet, SymbolTable};
use crate::sys;

/// Most modules recorded (more are left out of the list; their frames print
/// `?? (no module)`).
pub const MAX_MODULES: usize = 32;
/// Bytes of path kept per module (longer paths keep their first bytes).
pub const PATH_BYTES: usize = 256;
/// Bytes of build-id kept per module (GNU build-ids are 20).
pub const BUILD_ID_BYTES: usize = 32;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;

/// Static bytes [`module_set_in`] takes.
pub const fn static_bytes() -> usize {
    bytes_for::<ModuleSet>(1)
        .saturating_add(bytes_for::<ModuleInfo>(MAX_MODULES))
        .saturating_add(bytes_for::<u8>(MAX_MODULES * (PATH_BYTES + BUILD_ID_BYTES)))
}

fn empty_module() -> ModuleInfo {
    ModuleInfo {
        path: alloc::vec::Vec::new(),
        start: 0,
        end: 0,
        bias: 0,
        build_id: alloc::vec::Vec::new(),
        symbols: SymbolTable::default(),
        fixed: FixedIdentity::default(),
        cfi: None,
    }
}

/// Copies `src` into the front of `dst`, truncating; returns the copy.
fn copy_into(dst: &'static mut [u8], src: &[u8]) -> &'static [u8] {
    let n = src.len().min(dst.len());
    let (head, _) = dst.split_at_mut(n);
    if let Some(src) = src.get(..n) {
        head.copy_from_slice(src);
    }
    head
}

/// Records the loaded modules in `carver`'s memory (setup only: takes the
/// loader lock; allocates nothing). `None` if the arena is too small.
pub(crate) fn module_set_in(carver: &mut Carver) -> Option<&'static ModuleSet> {
    let infos: &'static mut [ModuleInfo] = carver.slice(MAX_MODULES, |_| empty_module())?;
    let mut paths: &'static mut [u8] = carver.slice(MAX_MODULES * PATH_BYTES, |_| 0u8)?;
    let mut ids: &'static mut [u8] = carver.slice(MAX_MODULES * BUILD_ID_BYTES, |_| 0u8)?;
    let mut count = 0usize;
    let mut index = 0usize;
    let counters = sys::for_each_loaded_module(|m| {
        let is_main = index == 0;
        index += 1;
        let loads = || m.headers.iter().filter(|h| h.p_type == PT_LOAD);
        if !loads().any(|h| h.p_flags & PF_X != 0) {
            return;
        }
        let (Some(lo), Some(hi)) = (
            loads().map(|h| h.p_vaddr).min(),
            loads().map(|h| h.p_vaddr.saturating_add(h.p_memsz)).max(),
        ) else {
            return;
        };
        let Some(info) = infos.get_mut(count) else {
            return;
        };
        let (path_room, rest) = core::mem::take(&mut paths).split_at_mut(PATH_BYTES);
        paths = rest;
        let path: &'static [u8] = if is_main || m.name.is_empty() {
            let n = sys::read_self_exe_path(path_room);
            let (head, _) = path_room.split_at_mut(n);
            head
        } else {
            copy_into(path_room, m.name)
        };
        let (id_room, rest) = core::mem::take(&mut ids).split_at_mut(BUILD_ID_BYTES);
        ids = rest;
        let mut build_id: &'static [u8] = &[];
        for note in m.headers.iter().filter(|h| h.p_type == PT_NOTE) {
            // SAFETY: PT_NOTE segments lie inside the module's loaded segments.
            #[allow(unsafe_code)]
            let notes =
                unsafe { sys::loaded_memory(m.bias.wrapping_add(note.p_vaddr), note.p_filesz) };
            if let Some(id) = crate::elf::build_id_from_notes(notes) {
                build_id = copy_into(id_room, id);
                break;
            }
        }
        info.start = m.bias.wrapping_add(lo);
        info.end = m.bias.wrapping_add(hi);
        info.bias = m.bias;
        info.fixed = FixedIdentity { path, build_id };
        count += 1;
    });
    let (listed, _) = infos.split_at_mut(count);
    listed.sort_unstable_by_key(|m| m.start);
    let set = carver.one(ModuleSet {
        unwinder: NativeUnwinder::new(),
        modules: Store::Static(listed),
        loader_counters: counters,
    })?;
    Some(set)
}
