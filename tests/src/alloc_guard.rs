//! A strict allocation guard for fixture processes: proves that no path
//! through guru's signal handlers touches the heap.
//!
//! [`GuardedAlloc`] (install it as `#[global_allocator]`) aborts the process
//! with a message on stderr when an allocation, reallocation or free happens
//!
//! * while the calling thread is inside any handler wrapped by
//!   [`wrap_installed_handler`] — every path, including the ones where guru
//!   decides to do nothing (a stale capture signal, a coalesced trigger, a
//!   signal from another process), or
//! * where [`guru_core::in_capture_context`] says the thread is capturing or
//!   initiating a round (this also covers a round's initiator outside a
//!   wrapped handler).
//!
//! The wrapper keeps the original `sigaction` (flags and mask) and only
//! replaces the function with one that raises a per-thread depth counter
//! around the original call. The counter is a `const`-initialised
//! `thread_local!` `Cell` without a destructor: reading it never allocates.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Allocations (and reallocations) since the process started.
pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static HANDLER_DEPTH: Cell<u32> = const { Cell::new(0) };
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Allocations (and reallocations) made by the calling thread so far.
pub fn thread_allocations() -> u64 {
    THREAD_ALLOCATIONS.with(Cell::get)
}

fn count_thread_allocation() {
    let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

/// Original handlers, by signal number.
static ORIGINAL: [AtomicUsize; 65] = [const { AtomicUsize::new(0) }; 65];

/// Writes `msg` to stderr and aborts (async-signal-safe).
pub fn die(msg: &[u8]) -> ! {
    // SAFETY: write(2) of a valid buffer, then abort(3); both async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::abort()
    }
}

/// Whether the calling thread is inside a wrapped handler.
pub fn in_wrapped_handler() -> bool {
    HANDLER_DEPTH.with(|d| d.get() > 0)
}

fn check(what: &[u8]) {
    if in_wrapped_handler() || guru_core::in_capture_context() {
        die(what);
    }
}

/// The guarding allocator (delegates to the system allocator).
#[derive(Debug)]
pub struct GuardedAlloc;

// SAFETY: delegates to the system allocator; the extra bookkeeping (an atomic
// counter, a thread-local read, lock-free checks) neither allocates nor unwinds.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        count_thread_allocation();
        check(b"alloc_guard: ALLOCATION IN A SIGNAL HANDLER\n");
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        check(b"alloc_guard: DEALLOCATION IN A SIGNAL HANDLER\n");
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        count_thread_allocation();
        check(b"alloc_guard: REALLOCATION IN A SIGNAL HANDLER\n");
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

type SigAction = extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void);

extern "C" fn wrapper(signal: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(slot) = ORIGINAL.get(signal as usize) else {
        return;
    };
    let f = slot.load(Ordering::Acquire);
    if f == 0 {
        return;
    }
    HANDLER_DEPTH.with(|d| d.set(d.get() + 1));
    // SAFETY: `f` was read from this signal's SA_SIGINFO sigaction by
    // `wrap_installed_handler`, so it is a three-argument handler.
    let original: SigAction = unsafe { std::mem::transmute::<usize, SigAction>(f) };
    original(signal, info, context);
    HANDLER_DEPTH.with(|d| d.set(d.get() - 1));
}

/// Replaces the `SA_SIGINFO` handler installed for `signal` with a wrapper
/// that marks the thread as "in a handler" for the allocator and calls the
/// original. Panics if the signal has no `SA_SIGINFO` handler.
pub fn wrap_installed_handler(signal: i32) {
    // SAFETY: sigaction(2) reads the current action into a zeroed struct we own,
    // then installs a copy with only the handler replaced.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut action), 0);
        assert!(
            action.sa_flags & libc::SA_SIGINFO != 0
                && action.sa_sigaction != libc::SIG_DFL
                && action.sa_sigaction != libc::SIG_IGN,
            "signal {signal} has no SA_SIGINFO handler to wrap"
        );
        ORIGINAL[signal as usize].store(action.sa_sigaction, Ordering::Release);
        action.sa_sigaction = wrapper as SigAction as usize;
        assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
    }
}

/// Installs `handler` for `signal` through the same wrapper (for the guard's
/// own self-test: a handler that allocates must abort the process).
pub fn install_wrapped(signal: i32, handler: SigAction, flags: i32) {
    // SAFETY: installs a SA_SIGINFO handler with an empty mask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | flags;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
    }
    wrap_installed_handler(signal);
}
