//! Modules and their function symbols, prepared at setup, looked up in the
//! handler by binary search.
//!
//! A [`ModuleSet`] is immutable once published: refreshing after `dlopen`
//! builds a new set and publishes it; the old one is never freed, because a
//! handler may still be reading it.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use alloc::vec::Vec;

use crate::arch::NativeUnwinder;

/// One function symbol: where it starts (relative to the module's load bias),
/// how long it is, and where its name lives in the table's name blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SymbolEntry {
    start: u64,
    size: u32,
    name_start: u32,
    name_len: u32,
}

/// Sizes for symbols whose ELF size is 0 (hand-written assembly): assume they
/// extend to the next symbol, but no further than this.
const UNSIZED_SYMBOL_LIMIT: u64 = 4096;

/// Sorted function symbols of one module.
#[derive(Debug, Default)]
pub struct SymbolTable {
    entries: Vec<SymbolEntry>,
    names: Vec<u8>,
}

/// A resolved symbol: raw (mangled) name and the offset of the address into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolHit<'a> {
    /// Raw symbol name bytes.
    pub name: &'a [u8],
    /// Address minus the symbol's start.
    pub offset: u64,
}

impl SymbolTable {
    /// Builds a table from an ELF image's `.symtab`/`.dynsym` (setup only).
    pub fn from_elf(image: &[u8]) -> SymbolTable {
        let mut table = SymbolTable::default();
        crate::elf::for_each_function_symbol(image, |sym| {
            table.push(sym.address, sym.size, sym.name)
        });
        table.finish();
        table
    }

    /// Adds a symbol (setup only). Names longer than 64 KiB are skipped.
    pub fn push(&mut self, start: u64, size: u64, name: &[u8]) {
        let (Ok(name_start), Ok(name_len)) =
            (u32::try_from(self.names.len()), u32::try_from(name.len()))
        else {
            return;
        };
        if name_len > 65_536 {
            return;
        }
        self.names.extend_from_slice(name);
        self.entries.push(SymbolEntry {
            start,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            name_start,
            name_len,
        });
    }

    /// Sorts, removes duplicate addresses (`.symtab` and `.dynsym` overlap) and
    /// sizes unsized symbols (setup only).
    pub fn finish(&mut self) {
        self.entries
            .sort_by_key(|e| (e.start, core::cmp::Reverse(e.size)));
        self.entries.dedup_by_key(|e| e.start);
        let starts: Vec<u64> = self.entries.iter().map(|e| e.start).collect();
        for (i, e) in self.entries.iter_mut().enumerate() {
            if e.size == 0 {
                let next = starts.get(i + 1).copied().unwrap_or(u64::MAX);
                let span = next.saturating_sub(e.start).min(UNSIZED_SYMBOL_LIMIT);
                e.size = span as u32;
            }
        }
        self.entries.shrink_to_fit();
        self.names.shrink_to_fit();
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Heap bytes used.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<SymbolEntry>() + self.names.capacity()
    }

    /// The function containing `address` (relative to the load bias).
    ///
    /// # Async-signal safety
    /// Binary search over memory prepared at setup; no allocation.
    pub fn lookup(&self, address: u64) -> Option<SymbolHit<'_>> {
        let i = self
            .entries
            .partition_point(|e| e.start <= address)
            .checked_sub(1)?;
        let e = self.entries.get(i)?;
        let offset = address.checked_sub(e.start)?;
        if offset >= u64::from(e.size) {
            return None;
        }
        let start = e.name_start as usize;
        let name = self
            .names
            .get(start..start.checked_add(e.name_len as usize)?)?;
        Some(SymbolHit { name, offset })
    }
}

/// A loaded module: where it is, what it is, and its symbols.
#[derive(Debug)]
pub struct ModuleInfo {
    /// Path on disk (or the loader's name, e.g. `linux-vdso.so.1`).
    pub path: Vec<u8>,
    /// Lowest mapped address of the image.
    pub start: u64,
    /// One past the highest mapped address.
    pub end: u64,
    /// Load bias: runtime address minus ELF virtual address.
    pub bias: u64,
    /// GNU build-id bytes (empty when the module has none).
    pub build_id: Vec<u8>,
    /// Function symbols.
    pub symbols: SymbolTable,
    /// Path and build-id kept in static memory instead of `path` and
    /// `build_id` ([`crate::install_static`]: no heap).
    pub(crate) fixed: FixedIdentity,
    /// The module's unwind tables, to tell code with unwind information from
    /// code without (`None`: no usable `.eh_frame_hdr` search table).
    pub(crate) cfi: Option<CfiTables>,
}

/// A module's `.eh_frame_hdr` search table and `.eh_frame`, zero-copy over
/// the loaded image: answers whether an address has an FDE, which framehop
/// does not tell (it silently falls back to guessing where there is none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CfiTables {
    /// `.eh_frame_hdr` bytes and their ELF virtual address.
    pub(crate) hdr: &'static [u8],
    pub(crate) hdr_svma: u64,
    /// `.eh_frame` bytes and their ELF virtual address.
    pub(crate) eh_frame: &'static [u8],
    pub(crate) eh_frame_svma: u64,
    /// ELF virtual address of the executable segment.
    pub(crate) text_svma: u64,
}

impl CfiTables {
    /// Whether an FDE covers `svma` (an address relative to the module's
    /// ELF virtual addresses); `None` if the tables cannot be searched.
    ///
    /// # Async-signal safety
    /// gimli's zero-copy parsing of loaded, read-only memory: a binary search
    /// of the header table and one FDE and CIE parse; no allocation.
    pub(crate) fn covers(&self, svma: u64) -> Option<bool> {
        let bases = gimli::BaseAddresses::default()
            .set_eh_frame_hdr(self.hdr_svma)
            .set_eh_frame(self.eh_frame_svma)
            .set_text(self.text_svma);
        let hdr = gimli::EhFrameHdr::new(self.hdr, gimli::NativeEndian)
            .parse(&bases, core::mem::size_of::<usize>() as u8)
            .ok()?;
        let table = hdr.table()?;
        let eh_frame = gimli::EhFrame::new(self.eh_frame, gimli::NativeEndian);
        Some(
            table
                .fde_for_address(&eh_frame, &bases, svma, |section, bases, offset| {
                    gimli::UnwindSection::cie_from_offset(section, bases, offset)
                })
                .is_ok(),
        )
    }
}

/// A module's path and build-id in static memory.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FixedIdentity {
    pub(crate) path: &'static [u8],
    pub(crate) build_id: &'static [u8],
}

impl ModuleInfo {
    /// The file name part of the path.
    ///
    /// # Async-signal safety
    /// Slices setup-time memory.
    pub fn short_name(&self) -> &[u8] {
        let path = self.path_bytes();
        match path.iter().rposition(|&c| c == b'/') {
            Some(i) => path.get(i + 1..).unwrap_or(path),
            None => path,
        }
    }

    /// The path, wherever it is stored.
    ///
    /// # Async-signal safety
    /// Reads fields.
    pub fn path_bytes(&self) -> &[u8] {
        if self.path.is_empty() {
            self.fixed.path
        } else {
            &self.path
        }
    }

    /// The GNU build-id (empty if none), wherever it is stored.
    ///
    /// # Async-signal safety
    /// Reads fields.
    pub fn build_id_bytes(&self) -> &[u8] {
        if self.build_id.is_empty() {
            self.fixed.build_id
        } else {
            &self.build_id
        }
    }
}

/// Everything the handler needs to unwind and name frames.
pub struct ModuleSet {
    /// framehop unwinder over all modules (zero-copy).
    pub unwinder: NativeUnwinder,
    /// Modules sorted by start address.
    pub modules: crate::storage::Store<ModuleInfo>,
    /// The loader's (adds, subs) counters when this set was built.
    pub loader_counters: (u64, u64),
}

impl core::fmt::Debug for ModuleSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ModuleSet")
            .field("modules", &self.modules)
            .field("loader_counters", &self.loader_counters)
            .finish_non_exhaustive()
    }
}

/// A frame address, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The module containing the address.
    pub module: &'a ModuleInfo,
    /// Address minus the module's load bias (what `addr2line -e <module>` takes).
    pub module_offset: u64,
    /// The enclosing function, if the module has symbols for it.
    pub symbol: Option<SymbolHit<'a>>,
}

impl ModuleSet {
    /// The module containing `address`.
    ///
    /// # Async-signal safety
    /// Binary search over memory prepared at setup.
    pub fn module_for(&self, address: u64) -> Option<&ModuleInfo> {
        let i = self
            .modules
            .partition_point(|m| m.start <= address)
            .checked_sub(1)?;
        let m = self.modules.get(i)?;
        (address < m.end).then_some(m)
    }

    /// Whether `address` lies in code that has unwind information (an FDE):
    /// `Some(false)` for code in a module with searchable unwind tables that
    /// do not cover it (hand-written assembly, C built without unwind
    /// tables, as in static musl), `None` where that cannot be told (no
    /// module, no tables).
    ///
    /// # Async-signal safety
    /// As `CfiTables::covers`, after a binary search of the module list.
    pub fn has_unwind_info(&self, address: u64) -> Option<bool> {
        let module = self.module_for(address)?;
        module.cfi?.covers(address.wrapping_sub(module.bias))
    }

    /// Resolves a frame. `is_return_address` frames are looked up one byte
    /// earlier, so a call at the very end of a function is attributed to it;
    /// the first frame (the interrupted pc) is not adjusted.
    ///
    /// # Async-signal safety
    /// Binary searches over memory prepared at setup.
    pub fn resolve(&self, address: u64, is_return_address: bool) -> Option<Resolved<'_>> {
        let lookup = if is_return_address {
            address.saturating_sub(1)
        } else {
            address
        };
        let module = self.module_for(lookup)?;
        let relative = lookup.wrapping_sub(module.bias);
        Some(Resolved {
            module,
            module_offset: address.wrapping_sub(module.bias),
            symbol: module.symbols.lookup(relative),
        })
    }

    /// Heap bytes used by symbol tables.
    pub fn symbol_memory_bytes(&self) -> usize {
        self.modules
            .iter()
            .map(|m| m.symbols.memory_bytes() + m.path.capacity() + m.build_id.capacity())
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_enclosing_function() {
        let mut t = SymbolTable::default();
        t.push(0x2000, 0x10, b"b");
        t.push(0x1000, 0x100, b"a");
        t.push(0x3000, 0, b"asm");
        t.push(0x1000, 0x100, b"a_alias");
        t.finish();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.lookup(0x1010).map(|h| (h.offset, h.name.len())),
            Some((0x10, 1))
        );
        assert!(t.lookup(0x1100).is_none());
        assert!(t.lookup(0x0fff).is_none());
        assert_eq!(t.lookup(0x200f).map(|h| h.name), Some(&b"b"[..]));
        assert_eq!(t.lookup(0x3ff0).map(|h| h.name), Some(&b"asm"[..]));
        assert!(t.lookup(0x4000).is_none());
    }
}
