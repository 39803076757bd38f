//! ELF / symbol-table parsing of arbitrary bytes: function symbols from
//! `.symtab`/`.dynsym`, the GNU build-id note, the `.eh_frame_hdr` pointer,
//! and the sorted symbol table built from them. Nothing may panic, loop or
//! read outside the input; every name handed out lies inside the input; every
//! lookup hit really encloses the address.
//!
//! Odd first bytes put a valid ELF64 header (section headers right after it)
//! in front of the rest, so the fuzzer spends its time in the section and
//! symbol parsing instead of rediscovering the magic.
#![no_main]

use guru_core::elf;
use guru_core::symbolize::SymbolTable;
use libfuzzer_sys::fuzz_target;

fn with_header(rest: &[u8], shnum: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(b"\x7fELF\x02\x01");
    f[0x28..0x30].copy_from_slice(&64u64.to_le_bytes()); // e_shoff
    f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    f[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes()); // e_shnum
    f.extend_from_slice(rest);
    f
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let owned;
    let file: &[u8] = if mode & 1 == 1 {
        owned = with_header(rest, u16::from(mode >> 1) % 16);
        &owned
    } else {
        data
    };
    let range = file.as_ptr_range();
    let mut seen = Vec::new();
    let n = elf::for_each_function_symbol(file, |s| {
        let r = s.name.as_ptr_range();
        assert!(
            range.start <= r.start && r.end <= range.end,
            "name outside the input"
        );
        assert!(!s.name.is_empty() && !s.name.contains(&0));
        assert_ne!(s.address, 0);
        seen.push((s.address, s.size));
    });
    assert_eq!(n, seen.len());

    if let Some(id) = elf::build_id_from_notes(data) {
        let r = id.as_ptr_range();
        let d = data.as_ptr_range();
        assert!(
            d.start <= r.start && r.end <= d.end,
            "build-id outside the input"
        );
    }
    let _ = guru_core::setup::eh_frame_svma_from_hdr(data, 0x1000);

    let table = SymbolTable::from_elf(file);
    assert!(table.len() <= seen.len());
    for &(address, _) in seen.iter().take(64) {
        for probe in [address, address.wrapping_add(1), address.wrapping_sub(1)] {
            if let Some(hit) = table.lookup(probe) {
                assert!(hit.offset <= probe, "symbol starts above the address");
                assert!(hit.offset < 1 << 32, "sizes are u32");
                assert!(!hit.name.is_empty());
            }
        }
    }
    let _ = table.lookup(0);
    let _ = table.lookup(u64::MAX);
});
