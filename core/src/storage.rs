//! Where the engine's preallocated tables live: on the heap (the default,
//! [`crate::install`]) or in static memory the application reserved at build
//! time ([`crate::install_static`], no heap at all).
//!
//! [`Store`] and [`StoreMut`] are a fixed-size slice from either source;
//! everything that reads them sees a plain `[T]`. A [`StaticArena`] is a
//! `static` byte array that [`crate::install_static`] carves the tables out
//! of, once; its size is computed at compile time by
//! [`crate::Options::static_bytes`].
//!
//! # Async-signal safety
//! Reading a `Store` is reading a slice. Carving happens at setup only.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::mem::{MaybeUninit, align_of, size_of};
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A fixed-size, read-mostly table: a heap allocation made at setup, or a
/// slice of static memory.
pub enum Store<T: 'static> {
    /// Allocated at setup by [`crate::install`].
    Heap(Box<[T]>),
    /// Carved from a [`StaticArena`] by [`crate::install_static`].
    Static(&'static [T]),
}

impl<T> Deref for Store<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Store::Heap(b) => b,
            Store::Static(s) => s,
        }
    }
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store::Static(&[])
    }
}

impl<T> From<Vec<T>> for Store<T> {
    fn from(v: Vec<T>) -> Self {
        Store::Heap(v.into_boxed_slice())
    }
}

impl<'a, T> IntoIterator for &'a Store<T> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A fixed-size buffer written by the holder of the round flag: heap or static.
pub enum StoreMut<T: 'static> {
    /// Allocated at setup by [`crate::install`].
    Heap(Box<[T]>),
    /// Carved from a [`StaticArena`] by [`crate::install_static`].
    Static(&'static mut [T]),
}

impl<T> Deref for StoreMut<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            StoreMut::Heap(b) => b,
            StoreMut::Static(s) => s,
        }
    }
}

impl<T> DerefMut for StoreMut<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            StoreMut::Heap(b) => b,
            StoreMut::Static(s) => s,
        }
    }
}

impl<T> From<Vec<T>> for StoreMut<T> {
    fn from(v: Vec<T>) -> Self {
        StoreMut::Heap(v.into_boxed_slice())
    }
}

impl<T> core::fmt::Debug for StoreMut<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StoreMut")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Static memory for [`crate::install_static`]: `N` bytes in `.bss`, handed
/// out once. Size it with [`crate::Options::static_bytes`]:
///
/// ```
/// use guru_core::{Options, StaticArena};
/// const OPTIONS: Options = Options::SMALLEST.with_capacity(16, 32);
/// static ARENA: StaticArena<{ OPTIONS.static_bytes() }> = StaticArena::new();
/// # let _ = &ARENA;
/// ```
pub struct StaticArena<const N: usize> {
    taken: AtomicBool,
    bytes: UnsafeCell<[MaybeUninit<u8>; N]>,
}

// SAFETY: the bytes are only reachable through `take`, which hands them out at
// most once (guarded by the `taken` flag), so no two threads ever share them
// through the arena.
unsafe impl<const N: usize> Sync for StaticArena<N> {}

impl<const N: usize> Default for StaticArena<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Debug for StaticArena<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StaticArena")
            .field("bytes", &N)
            .field("taken", &self.taken.load(Ordering::Relaxed))
            .finish()
    }
}

impl<const N: usize> StaticArena<N> {
    /// An unused arena (all of it in `.bss`: it costs no file size).
    pub const fn new() -> Self {
        StaticArena {
            taken: AtomicBool::new(false),
            bytes: UnsafeCell::new([MaybeUninit::uninit(); N]),
        }
    }

    /// Its size in bytes.
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether it has no bytes.
    pub const fn is_empty(&self) -> bool {
        N == 0
    }

    /// The whole arena, the first time only.
    pub(crate) fn take(&'static self) -> Option<Carver> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `taken` was false and is now true, so this is the only
        // reference ever made to the bytes; they live for 'static.
        let bytes: &'static mut [MaybeUninit<u8>; N] = unsafe { &mut *self.bytes.get() };
        Some(Carver { rest: bytes })
    }
}

/// Hands out typed, initialised slices from the front of an arena.
#[derive(Debug)]
pub(crate) struct Carver {
    rest: &'static mut [MaybeUninit<u8>],
}

impl Carver {
    /// Bytes not yet handed out.
    #[cfg(test)]
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Room for `len` values of `T`, or `None` if the arena is too small.
    fn uninit<T>(&mut self, len: usize) -> Option<&'static mut [MaybeUninit<T>]> {
        let rest = core::mem::take(&mut self.rest);
        let pad = rest.as_ptr().align_offset(align_of::<T>());
        let needed = len
            .checked_mul(size_of::<T>())
            .and_then(|bytes| bytes.checked_add(pad));
        let Some(needed) = needed.filter(|&n| n <= rest.len()) else {
            self.rest = rest;
            return None;
        };
        let (head, tail) = rest.split_at_mut(needed);
        self.rest = tail;
        let start = head.get_mut(pad..)?.as_mut_ptr().cast::<MaybeUninit<T>>();
        // SAFETY: `start` is aligned for T (`align_offset` above), the region
        // `[start, start + len * size_of::<T>())` lies inside `head` (checked
        // against `needed`), `head` is exclusively ours for 'static, and
        // MaybeUninit<T> needs no initialisation.
        Some(unsafe { core::slice::from_raw_parts_mut(start, len) })
    }

    /// `len` values made by `init`, or `None` if the arena is too small.
    pub(crate) fn slice<T>(
        &mut self,
        len: usize,
        mut init: impl FnMut(usize) -> T,
    ) -> Option<&'static mut [T]> {
        let uninit = self.uninit::<T>(len)?;
        for (i, slot) in uninit.iter_mut().enumerate() {
            slot.write(init(i));
        }
        // SAFETY: every element was written just above, so the slice is fully
        // initialised; MaybeUninit<T> has the layout of T.
        Some(unsafe { &mut *(core::ptr::from_mut(uninit) as *mut [T]) })
    }

    /// One value, or `None` if the arena is too small.
    pub(crate) fn one<T>(&mut self, value: T) -> Option<&'static mut T> {
        Some(self.uninit::<T>(1)?.first_mut()?.write(value))
    }
}

/// Bytes `len` values of `T` take in an arena, alignment padding included.
pub const fn bytes_for<T>(len: usize) -> usize {
    len.saturating_mul(size_of::<T>())
        .saturating_add(align_of::<T>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn carves_aligned_slices_once() {
        static ARENA: StaticArena<256> = StaticArena::new();
        let mut c = ARENA.take().unwrap();
        assert!(ARENA.take().is_none());
        let a: &mut [u8] = c.slice(3, |i| i as u8).unwrap();
        assert_eq!(a, [0, 1, 2]);
        let b: &mut [u64] = c.slice(4, |i| i as u64 * 10).unwrap();
        assert_eq!(b.as_ptr() as usize % align_of::<u64>(), 0);
        assert_eq!(b[3], 30);
        assert!(c.slice::<u64>(1000, |_| 0).is_none());
        let before = c.remaining();
        assert!(c.remaining() > 0);
        let one = c.one(7u32).unwrap();
        assert_eq!(*one, 7);
        assert!(c.remaining() < before);
    }

    #[test]
    fn store_reads_like_a_slice() {
        let s: Store<u8> = alloc::vec![1, 2, 3].into();
        assert_eq!(&s[..], [1, 2, 3]);
        assert_eq!((&s).into_iter().count(), 3);
        static DATA: [u8; 2] = [4, 5];
        let t: Store<u8> = Store::Static(&DATA);
        assert_eq!(t.len(), 2);
    }
}
