//! Just enough ELF64 (little-endian) to name functions and identify modules:
//! function symbols from `.symtab`/`.dynsym`, and the GNU build-id note.
//!
//! Everything here is safe code over untrusted byte slices: every offset is
//! checked, nothing panics, and malformed input yields fewer symbols, never a
//! fault. It runs at setup (symbols) and is fuzzed with arbitrary bytes.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
const NT_GNU_BUILD_ID: u32 = 3;
const SYM_SIZE: usize = 24;
const SHDR_SIZE: usize = 64;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([*s.first()?, *s.get(1)?]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

/// A function symbol as found in the file: its address as stated in the file
/// (SVMA), its size, and its name bytes (borrowed from the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSymbol<'a> {
    /// Stated virtual address.
    pub address: u64,
    /// Size in bytes (0 when the file does not say).
    pub size: u64,
    /// Raw (possibly mangled) name.
    pub name: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct SectionHeader {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
    entsize: u64,
}

fn section_header(file: &[u8], shoff: u64, shentsize: u16, index: usize) -> Option<SectionHeader> {
    let base = usize::try_from(shoff)
        .ok()?
        .checked_add(index.checked_mul(usize::from(shentsize))?)?;
    Some(SectionHeader {
        kind: u32_at(file, base.checked_add(4)?)?,
        offset: u64_at(file, base.checked_add(24)?)?,
        size: u64_at(file, base.checked_add(32)?)?,
        link: u32_at(file, base.checked_add(40)?)?,
        entsize: u64_at(file, base.checked_add(56)?)?,
    })
}

fn slice_of(file: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    file.get(start..end)
}

fn name_at(strtab: &[u8], offset: u32) -> Option<&[u8]> {
    let rest = strtab.get(usize::try_from(offset).ok()?..)?;
    let len = rest.iter().position(|&c| c == 0)?;
    rest.get(..len)
}

/// Calls `sink` for every defined function symbol in the `.symtab` and
/// `.dynsym` sections of an ELF64 little-endian image (a file, or an image
/// mapped whole such as the vDSO). Returns the number of symbols reported.
/// Malformed input is tolerated: whatever can be read safely is reported.
pub fn for_each_function_symbol<'a>(
    file: &'a [u8],
    mut sink: impl FnMut(FunctionSymbol<'a>),
) -> usize {
    let Some(ident) = file.get(..16) else {
        return 0;
    };
    if ident.get(..4) != Some(ELF_MAGIC.as_slice())
        || ident.get(4) != Some(&ELFCLASS64)
        || ident.get(5) != Some(&ELFDATA2LSB)
    {
        return 0;
    }
    let (Some(shoff), Some(shentsize), Some(shnum)) =
        (u64_at(file, 0x28), u16_at(file, 0x3a), u16_at(file, 0x3c))
    else {
        return 0;
    };
    if usize::from(shentsize) < SHDR_SIZE {
        return 0;
    }
    let mut reported = 0;
    for index in 0..usize::from(shnum) {
        let Some(sh) = section_header(file, shoff, shentsize, index) else {
            break;
        };
        if sh.kind != SHT_SYMTAB && sh.kind != SHT_DYNSYM {
            continue;
        }
        let Some(strtab_header) = section_header(file, shoff, shentsize, sh.link as usize) else {
            continue;
        };
        let Some(strtab) = slice_of(file, strtab_header.offset, strtab_header.size) else {
            continue;
        };
        let Some(symbols) = slice_of(file, sh.offset, sh.size) else {
            continue;
        };
        let entsize = usize::try_from(sh.entsize).unwrap_or(0);
        if entsize < SYM_SIZE {
            continue;
        }
        for entry in symbols.chunks_exact(entsize) {
            let (Some(name_off), Some(&info), Some(shndx), Some(value), Some(size)) = (
                u32_at(entry, 0),
                entry.get(4),
                u16_at(entry, 6),
                u64_at(entry, 8),
                u64_at(entry, 16),
            ) else {
                continue;
            };
            let kind = info & 0xf;
            if (kind != STT_FUNC && kind != STT_GNU_IFUNC) || shndx == 0 || value == 0 {
                continue;
            }
            let Some(name) = name_at(strtab, name_off) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            sink(FunctionSymbol {
                address: value,
                size,
                name,
            });
            reported += 1;
        }
    }
    reported
}

/// Finds the GNU build-id in the contents of a `PT_NOTE` segment.
pub fn build_id_from_notes(notes: &[u8]) -> Option<&[u8]> {
    let mut off = 0usize;
    loop {
        let namesz = usize::try_from(u32_at(notes, off)?).ok()?;
        let descsz = usize::try_from(u32_at(notes, off.checked_add(4)?)?).ok()?;
        let kind = u32_at(notes, off.checked_add(8)?)?;
        let name_start = off.checked_add(12)?;
        let desc_start = name_start.checked_add(namesz.checked_add(3)? & !3)?;
        let next = desc_start.checked_add(descsz.checked_add(3)? & !3)?;
        let name = notes.get(name_start..name_start.checked_add(namesz)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return notes.get(desc_start..desc_start.checked_add(descsz)?);
        }
        if next <= off {
            return None;
        }
        off = next;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn build_id_note_is_found_after_other_notes() {
        let mut notes = Vec::new();
        // An ABI tag note first.
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&16u32.to_le_bytes());
        notes.extend_from_slice(&1u32.to_le_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[0u8; 16]);
        // Then the build-id.
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&5u32.to_le_bytes());
        notes.extend_from_slice(&3u32.to_le_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(build_id_from_notes(&notes), Some(&[1u8, 2, 3, 4, 5][..]));
    }

    #[test]
    fn garbage_yields_nothing() {
        assert_eq!(build_id_from_notes(&[0xff; 40]), None);
        assert_eq!(for_each_function_symbol(&[0u8; 100], |_| {}), 0);
        let mut fake = Vec::from(&b"\x7fELF\x02\x01\x01"[..]);
        fake.resize(64, 0xff);
        assert_eq!(for_each_function_symbol(&fake, |_| {}), 0);
    }

    #[test]
    fn reads_our_own_test_binary() {
        let path = std::env::current_exe().expect("current exe");
        let bytes = std::fs::read(path).expect("read exe");
        let mut names = Vec::new();
        for_each_function_symbol(&bytes, |s| names.push(s.name.to_vec()));
        assert!(names.len() > 100, "a test binary has many functions");
        assert!(
            names
                .iter()
                .any(|n| n.windows(25).any(|w| w == b"reads_our_own_test_binary"))
        );
    }
}
