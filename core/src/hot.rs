//! What the capture handler would otherwise ask the kernel for on every
//! signal (each system call is ~0.1–0.3 µs of a pause of a few µs).
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use core::sync::atomic::{AtomicI32, Ordering};

use crate::sys;

/// This process's id as last asked (0: not yet).
static PID: AtomicI32 = AtomicI32::new(0);

/// Whether `pid` (a signal's sender) is this process. Compared with the pid
/// cached at the last check; the kernel is asked only when they differ (the
/// first signal, and the first in a forked child, whose own signals carry
/// its new pid), so a capture makes no `getpid` call.
///
/// Limit: in a forked child a signal that claims the parent's pid is taken
/// as the child's own until the child's first genuine one. The check is a
/// sanity check, not a defence (any process may send `SI_QUEUE` signals
/// with a pid of its choice); the slot generation and tid checks stay.
///
/// # Async-signal safety
/// Atomics, and on a miss one `getpid`.
#[inline]
pub(crate) fn is_own_pid(pid: i32) -> bool {
    if pid != 0 && PID.load(Ordering::Relaxed) == pid {
        return true;
    }
    let real = sys::getpid();
    PID.store(real, Ordering::Relaxed);
    pid == real
}
