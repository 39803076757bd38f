//! Setup (normal context only): enumerate loaded modules, hand their unwind
//! sections to framehop zero-copy, and build the per-module symbol tables.
//!
//! Nothing here may run in a signal handler: it takes the loader lock
//! (`dl_iterate_phdr`), allocates, and maps files.
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::ops::Range;

use framehop::{ExplicitModuleSectionInfo, Module, Unwinder};

use crate::arch::NativeUnwinder;
use crate::symbolize::{CfiTables, ModuleInfo, ModuleSet, SymbolTable};
use crate::sys;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PT_GNU_EH_FRAME: u32 = 0x6474_e550;
const PF_X: u32 = 1;

/// Reads a DWARF EH pointer (as used in `.eh_frame_hdr`) at `offset` of `hdr`,
/// whose first byte is at stated address `hdr_svma`.
fn read_eh_pointer(hdr: &[u8], offset: usize, encoding: u8, hdr_svma: u64) -> Option<u64> {
    let bytes = hdr.get(offset..)?;
    let (value, _) = match encoding & 0x0f {
        0x00 | 0x04 => (u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?), 8),
        0x03 => (
            u64::from(u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?)),
            4,
        ),
        0x0b => (
            i64::from(i32::from_le_bytes(bytes.get(..4)?.try_into().ok()?)) as u64,
            4,
        ),
        0x0c => (
            i64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as u64,
            8,
        ),
        _ => return None,
    };
    match encoding & 0x70 {
        0x00 => Some(value),
        0x10 => Some(hdr_svma.wrapping_add(offset as u64).wrapping_add(value)),
        0x30 => Some(hdr_svma.wrapping_add(value)),
        _ => None,
    }
}

/// The stated address of `.eh_frame`, from the header at `hdr_svma`.
pub fn eh_frame_svma_from_hdr(hdr: &[u8], hdr_svma: u64) -> Option<u64> {
    if hdr.first() != Some(&1) {
        return None;
    }
    read_eh_pointer(hdr, 4, *hdr.get(1)?, hdr_svma)
}

fn vdso_like(name: &[u8]) -> bool {
    name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate") || name == b"[vdso]"
}

fn with_nul(path: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + 1);
    p.extend_from_slice(path);
    p.push(0);
    p
}

/// Builds one module's description and framehop module. Returns `None` for a
/// module without executable code.
fn prepare_module(
    loaded: &sys::LoadedModule,
    is_main: bool,
    want_symbols: bool,
) -> Option<(ModuleInfo, Module<&'static [u8]>)> {
    let bias = loaded.bias;
    let loads: Vec<&sys::ProgramHeader> = loaded
        .headers
        .iter()
        .filter(|h| h.kind == PT_LOAD)
        .collect();
    let image_start = loads.iter().map(|h| h.vaddr).min()?;
    let image_end = loads
        .iter()
        .map(|h| h.vaddr.saturating_add(h.memsz))
        .max()?;
    let text = loads.iter().find(|h| h.flags & PF_X != 0)?;
    let text_svma: Range<u64> = text.vaddr..text.vaddr.saturating_add(text.memsz);

    // SAFETY: the loader mapped this executable segment readable; it stays mapped
    // until the module is unloaded, which is when we drop it from the set.
    let text_bytes = unsafe { sys::loaded_memory(bias.wrapping_add(text_svma.start), text.memsz) };

    let mut cfi = None;
    let mut info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: Some(text_svma.clone()),
        text: Some(text_bytes),
        ..Default::default()
    };
    if let Some(hdr) = loaded.headers.iter().find(|h| h.kind == PT_GNU_EH_FRAME) {
        // SAFETY: PT_GNU_EH_FRAME lies inside a loaded read-only segment.
        let hdr_bytes = unsafe { sys::loaded_memory(bias.wrapping_add(hdr.vaddr), hdr.memsz) };
        if let Some(eh_svma) = eh_frame_svma_from_hdr(hdr_bytes, hdr.vaddr) {
            // `.eh_frame` has no program header of its own; it runs at most to the
            // end of the segment that contains it, which bounds the slice.
            if let Some(seg) = loads
                .iter()
                .find(|h| h.vaddr <= eh_svma && eh_svma < h.vaddr.saturating_add(h.memsz))
            {
                let len = seg.vaddr.saturating_add(seg.memsz).saturating_sub(eh_svma);
                // SAFETY: `[eh_svma, segment end)` is inside a loaded segment.
                let eh_bytes = unsafe { sys::loaded_memory(bias.wrapping_add(eh_svma), len) };
                info.eh_frame_hdr_svma = Some(hdr.vaddr..hdr.vaddr.saturating_add(hdr.memsz));
                info.eh_frame_hdr = Some(hdr_bytes);
                info.eh_frame_svma = Some(eh_svma..eh_svma.saturating_add(len));
                info.eh_frame = Some(eh_bytes);
                cfi = Some(CfiTables {
                    hdr: hdr_bytes,
                    hdr_svma: hdr.vaddr,
                    eh_frame: eh_bytes,
                    eh_frame_svma: eh_svma,
                    text_svma: text_svma.start,
                });
            }
        }
    }

    let mut build_id = Vec::new();
    for note in loaded.headers.iter().filter(|h| h.kind == PT_NOTE) {
        // SAFETY: PT_NOTE segments lie inside loaded segments.
        let notes = unsafe { sys::loaded_memory(bias.wrapping_add(note.vaddr), note.filesz) };
        if let Some(id) = crate::elf::build_id_from_notes(notes) {
            build_id = id.to_vec();
            break;
        }
    }

    let is_vdso = vdso_like(&loaded.name);
    let path = if is_main || loaded.name.is_empty() {
        if is_main {
            sys::self_exe_path()
                .or_else(sys::exec_fn_path)
                .unwrap_or_default()
        } else {
            loaded.name.clone()
        }
    } else {
        loaded.name.clone()
    };

    let symbols = if !want_symbols {
        SymbolTable::default()
    } else if is_vdso {
        // The vDSO is mapped whole, section headers included.
        let first = loads.iter().find(|h| h.offset == 0);
        match first {
            Some(h) => {
                // The kernel maps the image page-rounded; its section headers sit
                // inside that last page.
                let len = h.memsz.max(h.filesz).saturating_add(4095) & !4095;
                // SAFETY: the vDSO image is mapped whole (page-rounded) for the
                // life of the process.
                let image = unsafe { sys::loaded_memory(bias.wrapping_add(h.vaddr), len) };
                SymbolTable::from_elf(image)
            }
            None => SymbolTable::default(),
        }
    } else {
        match sys::MappedFile::open(&with_nul(&path)) {
            Ok(file) => SymbolTable::from_elf(file.bytes()),
            Err(_) => SymbolTable::default(),
        }
    };

    let avma = bias.wrapping_add(text_svma.start)..bias.wrapping_add(text_svma.end);
    let name = alloc::string::String::from_utf8_lossy(&path).into_owned();
    let module = Module::new(name, avma, bias, info);
    let module_info = ModuleInfo {
        path,
        start: bias.wrapping_add(image_start),
        end: bias.wrapping_add(image_end),
        bias,
        build_id,
        symbols,
        fixed: Default::default(),
        cfi,
    };
    Some((module_info, module))
}

/// Builds the module set from what the loader has loaded now.
pub fn build_module_set(want_symbols: bool) -> ModuleSet {
    let (loaded, counters) = sys::loaded_modules();
    let mut unwinder = NativeUnwinder::new();
    let mut modules = Vec::with_capacity(loaded.len());
    for (i, m) in loaded.iter().enumerate() {
        if let Some((info, module)) = prepare_module(m, i == 0, want_symbols) {
            unwinder.add_module(module);
            modules.push(info);
        }
    }
    modules.sort_by_key(|m| m.start);
    ModuleSet {
        unwinder,
        modules: modules.into(),
        loader_counters: counters,
    }
}

/// The loader's current (adds, subs) counters, to decide whether a refresh is
/// needed without rebuilding anything.
pub fn loader_counters() -> (u64, u64) {
    sys::loaded_modules().1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eh_frame_pointer_pcrel_sdata4() {
        // version 1, eh_frame_ptr_enc = pcrel|sdata4, fde_count_enc, table_enc,
        // then -0x100 relative to the field at hdr+4.
        let mut hdr = [1u8, 0x1b, 0x03, 0x3b, 0, 0, 0, 0];
        hdr[4..8].copy_from_slice(&(-0x100i32).to_le_bytes());
        assert_eq!(
            eh_frame_svma_from_hdr(&hdr, 0x2000),
            Some(0x2000 + 4 - 0x100)
        );
        assert_eq!(
            eh_frame_svma_from_hdr(&[2, 0x1b, 0, 0, 0, 0, 0, 0], 0),
            None
        );
        assert_eq!(eh_frame_svma_from_hdr(&[1, 0x1b], 0), None);
    }
}
