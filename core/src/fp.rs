//! Frame-pointer unwinding: the smallest unwinder there is, for
//! [`crate::Options::frame_pointers_only`]. No unwind tables, no cache, a few
//! hundred bytes of stack.
//!
//! Both supported architectures keep a *frame record* when code is built with
//! frame pointers: the frame pointer (rbp / x29) points at two words, the
//! caller's frame pointer and the return address into the caller. Walking
//! that linked list gives the stack.
//!
//! What it cannot see (documented in `docs/constrained.md`):
//! - code built without frame pointers (x86_64 Rust release builds unless
//!   `-C force-frame-pointers=yes`; most of glibc and musl on x86_64): such a
//!   function's frame is skipped or, if it reuses rbp as a general register,
//!   the walk stops there;
//! - the caller of an interrupted function that has not (yet) built its frame
//!   record — a leaf, or a prologue. On aarch64 the link register gives that
//!   caller back (see [`unwind`]); on x86_64 it is lost.
//!
//! The walk is pure: stack memory is read through a callback (bounds-checked
//! by the caller), so it is tested with arrays here.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use crate::slots::StackEnd;

/// aarch64 Linux user addresses fit in 48 bits; the bits above may carry a
/// pointer-authentication code (or a top-byte tag) and are cleared from
/// return addresses.
pub const AARCH64_ADDRESS_MASK: u64 = (1 << 48) - 1;

/// How far below the interrupted pc the link register may point and still be
/// taken for a return address *into the same function* (a call that already
/// returned), in which case it is not a caller frame.
const SAME_FUNCTION_WINDOW: u64 = 1024;

/// Registers the walk starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// Interrupted program counter (already recorded as frame 0 by the caller).
    pub pc: u64,
    /// Frame pointer (rbp / x29).
    pub fp: u64,
    /// Link register (aarch64: x30), `None` on x86_64.
    pub lr: Option<u64>,
}

/// Walks the frame-record chain from `start`, calling `push` with each return
/// address (innermost first, frame 0 excluded) until it returns false
/// (capacity reached). `read` reads one 8-byte word of stack (or fails without
/// touching memory); `is_code` says whether an address is in executable
/// memory. Returns why the walk ended and a detail (the unreadable address).
///
/// aarch64: when the interrupted function has not stored its link register in
/// a frame record yet (a leaf, or a prologue), `lr` is its caller; it is taken
/// when it points into code, differs from the return address in the frame
/// record `fp` points at, and is not just below `pc` (then it is the return
/// address of a call the function already made).
///
/// # Async-signal safety
/// Pure: arithmetic and the two callbacks.
pub fn unwind(
    start: Start,
    address_mask: u64,
    mut read: impl FnMut(u64) -> Result<u64, ()>,
    is_code: impl Fn(u64) -> bool,
    mut push: impl FnMut(u64) -> bool,
) -> (StackEnd, u64) {
    let mut fp = start.fp;
    if let Some(lr) = start.lr.map(|lr| lr & address_mask) {
        let saved = fp
            .checked_add(8)
            .and_then(|at| read(at).ok())
            .map(|ra| ra & address_mask);
        let in_same_function = lr <= start.pc && start.pc - lr < SAME_FUNCTION_WINDOW;
        if lr != 0 && is_code(lr) && saved != Some(lr) && !in_same_function && !push(lr) {
            return (StackEnd::Truncated, 0);
        }
    }
    loop {
        if fp == 0 {
            return (StackEnd::Root, 0);
        }
        if !fp.is_multiple_of(8) {
            return (StackEnd::UnwindFailed, fp);
        }
        let Some(ra_at) = fp.checked_add(8) else {
            return (StackEnd::UnwindFailed, fp);
        };
        let Ok(next) = read(fp) else {
            return (StackEnd::UnreadableStack, fp);
        };
        let Ok(ra) = read(ra_at) else {
            return (StackEnd::UnreadableStack, ra_at);
        };
        let ra = ra & address_mask;
        if ra == 0 {
            return (StackEnd::NullReturnAddress, 0);
        }
        if !is_code(ra) {
            // Not a return address: this frame pointer was a general register.
            return (StackEnd::UnwindFailed, 0);
        }
        if !push(ra) {
            return (StackEnd::Truncated, 0);
        }
        if next == 0 {
            return (StackEnd::Root, 0);
        }
        // Stacks grow down: each caller's record is above its callee's. This
        // also guarantees the walk ends.
        if next <= fp {
            return (StackEnd::DidNotAdvance, 0);
        }
        fp = next;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// A fake stack at 0x1000: `words[i]` lives at 0x1000 + 8 i. Code is
    /// 0x40_0000..0x50_0000.
    fn walk(words: &[u64], start: Start, cap: usize) -> (Vec<u64>, StackEnd, u64) {
        let base = 0x1000u64;
        let read = |a: u64| {
            let i = a.checked_sub(base).ok_or(())? / 8;
            words.get(i as usize).copied().ok_or(())
        };
        let is_code = |a: u64| (0x40_0000..0x50_0000).contains(&a);
        let mut out = Vec::new();
        let (end, detail) = unwind(start, AARCH64_ADDRESS_MASK, read, is_code, |ra| {
            if out.len() == cap {
                return false;
            }
            out.push(ra);
            true
        });
        (out, end, detail)
    }

    #[test]
    fn follows_the_chain_to_the_root() {
        // Record at 0x1000 -> 0x1020 -> 0x1040 (outermost, prev fp 0).
        let words = [
            0x1020, 0x40_1000, 0, 0, // frame 1
            0x1040, 0x40_2000, 0, 0, // frame 2
            0, 0x40_3000, // frame 3
        ];
        let start = Start {
            pc: 0x40_0100,
            fp: 0x1000,
            lr: None,
        };
        let (frames, end, _) = walk(&words, start, 64);
        assert_eq!(frames, [0x40_1000, 0x40_2000, 0x40_3000]);
        assert_eq!(end, StackEnd::Root);
        let (frames, end, _) = walk(&words, start, 2);
        assert_eq!(frames.len(), 2);
        assert_eq!(end, StackEnd::Truncated);
    }

    #[test]
    fn garbage_never_loops_or_reads_outside() {
        // A record pointing at itself, one pointing backwards, a misaligned one,
        // a non-code return address, an unreadable one.
        let looping = [0x1000, 0x40_1000];
        let s = |fp| Start {
            pc: 0x40_0000,
            fp,
            lr: None,
        };
        assert_eq!(walk(&looping, s(0x1000), 64).1, StackEnd::DidNotAdvance);
        assert_eq!(walk(&looping, s(0x1003), 64).1, StackEnd::UnwindFailed);
        let not_code = [0x1010, 0x1234];
        assert_eq!(walk(&not_code, s(0x1000), 64).1, StackEnd::UnwindFailed);
        let (_, end, at) = walk(&[0x2000, 0x40_1000], s(0x1000), 64);
        assert_eq!((end, at), (StackEnd::UnreadableStack, 0x2000));
        assert_eq!(walk(&[], s(0), 64).1, StackEnd::Root);
        assert_eq!(walk(&[0, 0], s(0x1000), 64).1, StackEnd::NullReturnAddress);
        // Arbitrary words: the walk always ends, within the stack.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let words: Vec<u64> = (0..32)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match x % 3 {
                        0 => 0x1000 + (x >> 8) % 0x100,
                        1 => 0x40_0000 + (x >> 8) % 0x10_0000,
                        _ => x,
                    }
                })
                .collect();
            let (frames, _, _) = walk(&words, s(0x1000 + (x % 32) * 8), 1000);
            assert!(frames.len() <= 32);
        }
    }

    #[test]
    fn aarch64_leaf_caller_comes_from_the_link_register() {
        // The leaf has no record: fp is its caller's record, whose saved lr is
        // the caller's caller. lr is the caller.
        let words = [0, 0x40_2000];
        let leaf = Start {
            pc: 0x40_0100,
            fp: 0x1000,
            lr: Some(0x40_1000),
        };
        assert_eq!(walk(&words, leaf, 64).0, [0x40_1000, 0x40_2000]);
        // A function with its own record: lr was saved there, not repeated.
        let framed = Start {
            lr: Some(0x40_2000),
            ..leaf
        };
        assert_eq!(walk(&words, framed, 64).0, [0x40_2000]);
        // lr just below pc: a call this function already made; not a caller.
        let stale = Start {
            lr: Some(0x40_00f0),
            ..leaf
        };
        assert_eq!(walk(&words, stale, 64).0, [0x40_2000]);
        // Pointer-authentication bits are stripped.
        let signed = Start {
            lr: Some(0x002a_0000_0040_1000),
            ..leaf
        };
        assert_eq!(walk(&words, signed, 64).0, [0x40_1000, 0x40_2000]);
    }
}
