//! Unwinding over arbitrary stack bytes and registers, through the very code
//! a capture handler runs (`capture::capture_self`): the fuzz bytes become a
//! thread's stack, the readable-range table lists only that buffer, and the
//! unwinder is framehop over this binary's real modules (real `.eh_frame`),
//! so return addresses can land in real code with real unwind rules.
//!
//! It must always terminate (the frame capacity and framehop's checks bound
//! it) and never read outside the given memory: the buffer is an exact-size
//! heap allocation, so AddressSanitizer (cargo fuzz's default) reports any
//! read past either end.
//!
//! Input: `flags`, `pc: u32`, `sp: u16`, `fp: u16`, then the stack bytes.
//! Stack words whose top byte is `0xaa` are relocated into this binary's code
//! (so the fuzzer can build call chains), `0xbb` into the stack buffer itself
//! (saved frame pointers); everything else is used as it is. Flag bit 0x40
//! lists the text as a readable, executable range too (stack scanning).
#![no_main]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::sync::OnceLock;

use guru_core::arch::Registers;
use guru_core::capture::{CachePool, CaptureContext, capture_self};
use guru_core::procfs::Mapping;
use guru_core::ranges::RangeTable;
use guru_core::slots::SlotTable;
use guru_core::symbolize::ModuleSet;
use libfuzzer_sys::fuzz_target;

const MAX_FRAMES: usize = 128;

struct Fixed {
    modules: &'static ModuleSet,
    caches: CachePool,
    text: (u64, u64),
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let modules: &'static ModuleSet =
            Box::leak(Box::new(guru_core::setup::build_module_set(false)));
        // This binary's own code: the executable mapping holding this
        // function (not the whole image: listing data as code would let the
        // scan read ASan's poisoned red zones around globals).
        let here = fixed as *const () as u64;
        assert!(
            modules.module_for(here).is_some(),
            "the fuzz binary is a module"
        );
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        let text = maps
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (range, perms) = (fields.next()?, fields.next()?);
                let (start, end) = range.split_once('-')?;
                let start = u64::from_str_radix(start, 16).ok()?;
                let end = u64::from_str_radix(end, 16).ok()?;
                (perms.starts_with("r-x") && (start..end).contains(&here))
                    .then_some((start, end - start))
            })
            .next()
            .expect("the executable mapping of this function");
        Fixed {
            modules,
            caches: CachePool::new(1),
            text,
        }
    })
}

/// An exact-size, page-aligned heap buffer (the range table wants
/// page-aligned starts, ASan wants exact ends).
struct Stack {
    ptr: *mut u8,
    layout: Layout,
}

impl Stack {
    fn new(len: usize) -> Stack {
        let layout = Layout::from_size_align(len.max(1), 4096).expect("layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Stack { ptr, layout }
    }
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of `layout.size()` bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
    fn base(&self) -> u64 {
        self.ptr as u64
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    for (i, x) in w.iter_mut().enumerate() {
        *x = b.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(w)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let fixed = fixed();
    let (flags, pc_sel, sp_off, fp_off) = (
        data[0],
        u32::from_le_bytes([data[1], data[2], data[3], data[4]]),
        u16::from_le_bytes([data[5], data[6]]),
        u16::from_le_bytes([data[7], data[8]]),
    );
    let bytes = &data[9..];
    let len = bytes.len().min(64 * 1024);
    let mut stack = Stack::new(len.max(8));
    let base = stack.base();
    let size = stack.layout.size() as u64;
    let (text_start, text_len) = fixed.text;
    {
        let buf = stack.bytes();
        buf[..len].copy_from_slice(&bytes[..len]);
        for chunk in buf.chunks_exact_mut(8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let relocated = match w >> 56 {
                0xaa => text_start + (w & 0xffff_ffff) % text_len,
                0xbb => base + (w & 0xffff) % size,
                _ => continue,
            };
            chunk.copy_from_slice(&relocated.to_le_bytes());
        }
    }
    let regs = Registers {
        pc: match flags & 3 {
            0 | 1 => text_start + u64::from(pc_sel) % text_len,
            2 => base + u64::from(pc_sel) % size,
            _ => u64::from(pc_sel) | (word(bytes, 0) & !0xffff_ffff),
        },
        // A stack pointer outside the buffer is sent to an address that is
        // never mapped: the core probes a stack missing from its table with
        // process_vm_readv, which would find the heap around the buffer
        // readable (as real memory is) and read ASan's red zones there.
        sp: {
            let sp = if flags & 4 == 0 {
                base + u64::from(sp_off) % (size + 16)
            } else {
                word(bytes, 8)
            };
            if (base..base + size).contains(&sp) {
                sp
            } else {
                0x10
            }
        },
        fp: if flags & 8 == 0 {
            base + u64::from(fp_off) % (size + 16)
        } else {
            word(bytes, 16)
        },
        lr: 0,
        syscall_reg: u64::from(flags >> 4),
        ret_reg: (-4i64) as u64,
    };

    let ranges = RangeTable::new(4);
    let mut w = ranges.writer();
    let stack_mapping = Mapping {
        start: base,
        end: base + size,
        readable: true,
        executable: flags & 0x10 != 0,
        name: if flags & 0x20 != 0 { b"[stack]" } else { b"" },
    };
    // With flag 0x40 the real code is listed too: stack scanning (for pcs in
    // code without unwind information, like the padding between functions)
    // then reads candidate call sites and PLT stubs in it. The table is
    // sorted by address, as /proc/self/maps is.
    let text_mapping = (flags & 0x40 != 0).then_some(Mapping {
        start: text_start,
        end: text_start + text_len,
        readable: true,
        executable: true,
        name: b"",
    });
    let mut mappings: Vec<&Mapping<'_>> = vec![&stack_mapping];
    mappings.extend(text_mapping.as_ref());
    mappings.sort_by_key(|m| m.start);
    for m in mappings {
        w.add(m);
    }
    w.finish();

    let table = SlotTable::new(1, MAX_FRAMES);
    let tid = guru_core::sys::gettid();
    assert!(table.arm(0, 1, tid));
    let writer = table.claim(0, 1, tid).expect("armed for us");
    let ctx = CaptureContext {
        ranges: &ranges,
        caches: &fixed.caches,
        modules: fixed.modules,
        walk_stack: true,
    };
    capture_self(ctx, &regs, writer, 0, guru_core::sys::AltStack::query());
    let view = table.read(0, 1).expect("capture_self always publishes");
    let frames: Vec<u64> = view.frames().collect();
    assert!(!frames.is_empty() && frames.len() <= MAX_FRAMES);
    assert_eq!(frames[0], regs.pc, "the first frame is the interrupted pc");
    assert_eq!(view.tid, tid);
});
