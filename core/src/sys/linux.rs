//! Linux system calls and loader queries used by the core.
//!
//! Functions in the first half are reachable from signal handlers and are raw
//! system calls (or `libc` wrappers that are plain system calls on glibc and
//! musl); each says so. Functions under "Setup only" allocate or take loader
//! locks and must never be called from a signal handler.
#![allow(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use core::ffi::{c_int, c_void};
use core::sync::atomic::AtomicU32;

use crate::arch::Registers;

/// A raw `errno` value.
pub type Errno = i32;

/// The signal handler signature used with `SA_SIGINFO`.
pub type SigInfoHandler = extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void);

fn errno() -> Errno {
    // SAFETY: `__errno_location` returns the calling thread's errno slot, valid for
    // the life of the thread (glibc and musl).
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: Errno) {
    // SAFETY: as in `errno`: the pointer is the calling thread's own errno slot.
    unsafe { *libc::__errno_location() = value }
}

/// Saves the interrupted code's `errno` and puts it back when dropped.
///
/// # Async-signal safety
/// Reads and writes the calling thread's errno slot only.
#[derive(Debug)]
pub struct ErrnoGuard(Errno);

impl ErrnoGuard {
    /// Saves the current errno.
    pub fn save() -> Self {
        ErrnoGuard(errno())
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        set_errno(self.0);
    }
}

/// The calling thread's kernel thread id.
///
/// # Async-signal safety
/// One `gettid` system call.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    tid as i32
}

/// The process id.
///
/// # Async-signal safety
/// One `getpid` system call (no caching wrapper is involved on glibc ≥ 2.25 or musl).
pub fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_getpid) as i32 }
}

/// `write(2)` once. Returns the number of bytes written or the errno.
///
/// # Async-signal safety
/// One `write` system call.
pub fn write(fd: i32, bytes: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `bytes` is a valid readable slice for its whole length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// `read(2)` once. Returns the number of bytes read or the errno.
///
/// # Async-signal safety
/// One `read` system call.
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid writable slice for its whole length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// A mapping as `PROCMAP_QUERY` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueriedMapping {
    /// First address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// `PROT_READ`.
    pub readable: bool,
    /// `PROT_EXEC`.
    pub executable: bool,
}

/// `struct procmap_query` of `<linux/fs.h>` (Linux 6.11), 104 bytes.
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

const PROCMAP_QUERY_VMA_READABLE: u64 = 0x01;
const PROCMAP_QUERY_VMA_EXECUTABLE: u64 = 0x04;
const PROCMAP_QUERY_COVERING_OR_NEXT_VMA: u64 = 0x10;
/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: u64 =
    (3 << 30) | ((core::mem::size_of::<ProcmapQuery>() as u64) << 16) | ((b'f' as u64) << 8) | 17;

/// Which mappings [`procmap_query`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingQuery {
    /// The readable mapping that contains the address.
    ReadableCovering,
    /// The mapping that contains the address, or else the first above it,
    /// whatever its permissions (the next one: the kernel skips nothing).
    AnyFromHere,
}

/// Asks the kernel about one mapping of this process with the
/// `PROCMAP_QUERY` ioctl on a `/proc/self/maps` descriptor (Linux 6.11 and
/// later): no text is formatted or parsed, and the answer is the mapping as
/// it is at the moment of the call. `ENOENT`: no such mapping; `ENOTTY` or
/// `EINVAL`: the kernel (or an emulator serving `/proc`, as qemu-user does)
/// has no such ioctl.
///
/// # Async-signal safety
/// One `ioctl` system call on a preallocated stack struct. The kernel takes
/// the address space's lock for reading (or the one mapping's lock), as a
/// page fault does.
pub fn procmap_query(fd: i32, address: u64, query: MappingQuery) -> Result<QueriedMapping, Errno> {
    let mut q = ProcmapQuery {
        size: core::mem::size_of::<ProcmapQuery>() as u64,
        query_flags: match query {
            MappingQuery::ReadableCovering => PROCMAP_QUERY_VMA_READABLE,
            MappingQuery::AnyFromHere => PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
        },
        query_addr: address,
        ..ProcmapQuery::default()
    };
    // SAFETY: `q` is a properly sized and initialised `procmap_query` that
    // lives across the call; no name or build-id buffer is passed (their
    // sizes are 0), so the kernel writes into `q` only.
    let r = unsafe { libc::ioctl(fd, PROCMAP_QUERY as _, &raw mut q) };
    if r < 0 {
        return Err(errno());
    }
    if q.vma_end <= q.vma_start {
        return Err(libc::EINVAL);
    }
    Ok(QueriedMapping {
        start: q.vma_start,
        end: q.vma_end,
        readable: q.vma_flags & PROCMAP_QUERY_VMA_READABLE != 0,
        executable: q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE != 0,
    })
}

/// Whether this kernel answers `PROCMAP_QUERY` on `/proc/self/maps` (for
/// tests and benchmarks that say which path the rounds take).
///
/// # Async-signal safety
/// Not meant for a handler: `open`, one `ioctl`, `close`.
pub fn maps_query_available() -> bool {
    let Ok(maps) = open_readonly(b"/proc/self/maps\0", false) else {
        return false;
    };
    let marker = 0u8;
    let address = core::ptr::addr_of!(marker) as u64;
    procmap_query(maps.raw(), address, MappingQuery::ReadableCovering).is_ok()
}

/// `getauxval(AT_EXECFN)`: the address of the program's file name, which
/// the kernel writes at the top of the main thread's `[stack]` (so it marks
/// that mapping whatever its current low end), or 0.
pub fn main_stack_marker() -> u64 {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_EXECFN) }
}

/// An owned file descriptor, closed on drop.
#[derive(Debug)]
pub struct Fd(i32);

impl Fd {
    /// The raw descriptor.
    pub fn raw(&self) -> i32 {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor; it is closed exactly once.
        unsafe { libc::close(self.0) };
    }
}

/// Opens a path read-only (`O_RDONLY | O_CLOEXEC`, plus `O_DIRECTORY` when asked).
/// `path` must end with a NUL byte.
///
/// # Async-signal safety
/// One `open` system call; the descriptor is closed by `close(2)` on drop.
pub fn open_readonly(path: &[u8], directory: bool) -> Result<Fd, Errno> {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    let mut flags = libc::O_RDONLY | libc::O_CLOEXEC;
    if directory {
        flags |= libc::O_DIRECTORY;
    }
    // SAFETY: `path` is NUL-terminated (checked above) and outlives the call.
    let fd = unsafe { libc::open(path.as_ptr().cast(), flags) };
    if fd < 0 { Err(errno()) } else { Ok(Fd(fd)) }
}

/// Reads as much of a file as fits into `buf`; returns the length read.
/// `path` must end with a NUL byte.
///
/// # Async-signal safety
/// `open`, `read` (retried on EINTR), `close`.
pub fn read_file(path: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
    let fd = open_readonly(path, false)?;
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match read(fd.raw(), rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `getdents64(2)` on a directory descriptor: fills `buf` with `linux_dirent64`
/// records and returns the number of bytes used (0 at the end of the directory).
///
/// # Async-signal safety
/// One `getdents64` system call.
pub fn getdents64(fd: &Fd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for `buf.len()` bytes; the kernel writes at most that.
    let n = unsafe { libc::syscall(libc::SYS_getdents64, fd.raw(), buf.as_mut_ptr(), buf.len()) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// Sends `signal` to thread `tid` of process `pid`, carrying `value` in
/// `si_value`, with `rt_tgsigqueueinfo(2)`. The receiving handler reads the value
/// back with `siginfo_value`. Unlike `tgkill`, the payload lets a handler tell
/// which round and slot the signal belongs to.
///
/// # Async-signal safety
/// One `rt_tgsigqueueinfo` system call; the `siginfo_t` is built on the stack.
pub fn send_signal_with_value(pid: i32, tid: i32, signal: i32, value: usize) -> Result<(), Errno> {
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { core::mem::zeroed() };
    info.si_signo = signal;
    info.si_code = libc::SI_QUEUE;
    // Layout of the `_rt` member of the kernel's siginfo union, which follows the
    // three leading ints (signo, errno, code) and padding to 8 bytes on 64-bit:
    // pid (i32), uid (u32), sigval (pointer-sized).
    #[repr(C)]
    struct RtFields {
        pid: i32,
        uid: u32,
        value: usize,
    }
    let fields = RtFields { pid, uid: 0, value };
    let base = (&raw mut info).cast::<u8>();
    // SAFETY: siginfo_t is 128 bytes; the union starts at offset 16 on 64-bit Linux
    // (3 ints + padding) and `RtFields` is 16 bytes, well inside. Unaligned write is
    // used so no alignment assumption is needed.
    unsafe {
        base.add(16).cast::<RtFields>().write_unaligned(fields);
    }
    // SAFETY: `info` is a fully initialised siginfo_t that lives across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid,
            tid,
            signal,
            &raw const info,
        )
    };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// What a handler learns from its `siginfo_t`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SigInfo {
    /// `si_signo`.
    pub signal: i32,
    /// `si_code` (e.g. `SI_USER` for `kill`, `SI_QUEUE` for `sigqueue`).
    pub code: i32,
    /// Sender pid (meaningful for `SI_USER`, `SI_QUEUE`, `SI_TKILL`).
    pub pid: i32,
    /// Sender real uid.
    pub uid: u32,
    /// `si_value` as an integer (meaningful for `SI_QUEUE`).
    pub value: usize,
}

/// Reads the fields of a `siginfo_t` delivered to a `SA_SIGINFO` handler.
///
/// # Safety
/// `info` must be null or the pointer the kernel passed to the handler.
///
/// # Async-signal safety
/// Reads memory the kernel prepared on the handler's stack.
pub unsafe fn read_siginfo(info: *const libc::siginfo_t) -> SigInfo {
    if info.is_null() {
        return SigInfo::default();
    }
    // SAFETY: `info` is the kernel-provided siginfo (caller's contract).
    let info = unsafe { &*info };
    let base = core::ptr::from_ref(info).cast::<u8>();
    // SAFETY: same layout argument as in `send_signal_with_value`: pid at +16, uid
    // at +20, sigval at +24, all inside the 128-byte siginfo_t.
    let (pid, uid, value) = unsafe {
        (
            base.add(16).cast::<i32>().read_unaligned(),
            base.add(20).cast::<u32>().read_unaligned(),
            base.add(24).cast::<usize>().read_unaligned(),
        )
    };
    SigInfo {
        signal: info.si_signo,
        code: info.si_code,
        pid,
        uid,
        value,
    }
}

/// Whether thread `tid` of process `pid` still exists: `tgkill` with signal 0
/// checks without sending anything. A thread that is exiting counts as alive
/// until the kernel has released it, which follows within microseconds.
///
/// # Async-signal safety
/// One `tgkill` system call with signal 0.
pub fn thread_exists(pid: i32, tid: i32) -> bool {
    // SAFETY: signal 0 sends nothing; the call only looks the thread up.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, 0) };
    rc == 0 || errno() != libc::ESRCH
}

/// Waits while `*word == expected`, at most `timeout_ns` nanoseconds.
/// Returns early on wake-up, signal or value change.
///
/// # Async-signal safety
/// One `futex(FUTEX_WAIT_PRIVATE)` system call.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as _,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; the
    // timeout is a valid relative timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &raw const ts,
        );
    }
}

/// Wakes every waiter on `word`.
///
/// # Async-signal safety
/// One `futex(FUTEX_WAKE_PRIVATE)` system call.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only reads its address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock ids used here exist on
    // Linux, except a thread's CPU clock once the thread is gone (EINVAL:
    // `ts` stays zero, read as 0).
    let ret = unsafe { libc::syscall(libc::SYS_clock_gettime, clock, &raw mut ts) };
    if ret != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC` in nanoseconds.
///
/// # Async-signal safety
/// One raw `clock_gettime` system call (the vDSO is bypassed on purpose so no
/// libc state is touched).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds, by a raw system call (for the
/// capture handler: the clock breadcrumbs are stamped with).
///
/// # Async-signal safety
/// One raw `clock_gettime` system call.
pub fn monotonic_coarse_ns_syscall() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds, through libc's
/// `clock_gettime` (the vDSO: a few nanoseconds, no `rdtsc`; resolution one
/// kernel tick, 1–10 ms), for the thread-context write path (breadcrumb
/// times), which runs in normal context. A coarse reading trails
/// [`monotonic_ns`] by up to one tick.
///
/// # Async-signal safety
/// `clock_gettime` is async-signal-safe (POSIX); not used in handlers anyway.
#[inline]
pub fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC_COARSE exists on
    // every Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch.
///
/// # Async-signal safety
/// One raw `clock_gettime` system call.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// CPU time consumed by the calling thread, in nanoseconds.
///
/// # Async-signal safety
/// One raw `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` system call.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time consumed by thread `tid` of this process, in nanoseconds; 0
/// when it cannot be read (no such thread). Its clock id is the one
/// `pthread_getcpuclockid` gives for that thread, computed from the tid as
/// the kernel defines it (`MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)`:
/// `(!tid << 3) | 6`), so no `pthread_t` is needed: the crash helper, which
/// knows the crashed thread by its tid only, reads that thread's clock.
///
/// # Async-signal safety
/// One raw `clock_gettime` system call on the thread's clock id.
pub fn thread_cpu_ns_of(tid: i32) -> u64 {
    if tid <= 0 {
        return 0;
    }
    clock_ns(((!tid) << 3) | 6)
}

/// The room left below `sp` on the calling thread's alternate signal
/// stack, when it runs on it; `None` when it does not (or has none).
///
/// # Async-signal safety
/// One `sigaltstack` query (async-signal-safe, POSIX) into a stack value.
pub fn alt_stack_room(sp: usize) -> Option<usize> {
    // SAFETY: stack_t is plain data; zeroed is a valid value to overwrite.
    let mut ss: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: a null new stack only queries; `ss` is a valid out-pointer.
    let r = unsafe { libc::sigaltstack(core::ptr::null(), &raw mut ss) };
    if r != 0 || ss.ss_flags & libc::SS_ONSTACK == 0 {
        return None;
    }
    Some(sp.saturating_sub(ss.ss_sp as usize))
}

/// The kernel's smallest signal frame for this CPU (`AT_MINSIGSTKSZ`: its
/// extended register state included; about 3 KiB on current x86_64), or
/// 2 KiB when the kernel does not say.
///
/// Setup only (`getauxval`; the crash handlers read a copy).
pub fn min_signal_frame() -> usize {
    // SAFETY: getauxval reads the process's auxiliary vector; no
    // preconditions.
    let v = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) };
    if v == 0 { 2048 } else { v as usize }
}

/// The calling thread's name (`prctl(PR_GET_NAME)`), NUL-padded.
///
/// # Async-signal safety
/// One `prctl` system call writing into a 16-byte stack buffer.
pub fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes into the buffer.
    unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    name
}

/// Gives up the CPU once.
///
/// # Async-signal safety
/// One `sched_yield` system call.
pub fn sched_yield() {
    // SAFETY: no preconditions.
    unsafe { libc::sched_yield() };
}

/// Whether `signal` is blocked in the calling thread's signal mask.
///
/// # Async-signal safety
/// One `rt_sigprocmask` query.
pub fn signal_is_blocked(signal: i32) -> bool {
    // SAFETY: sigset_t is plain data; zeroed is a valid empty set.
    let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: a null new-set only queries the mask into `set`.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &raw mut set) };
    // SAFETY: `set` is initialised; sigismember only reads it.
    unsafe { libc::sigismember(&raw const set, signal) == 1 }
}

/// The stack pointer of the caller, approximately (the address of a local).
///
/// # Async-signal safety
/// Takes the address of a stack variable.
#[inline(always)]
pub fn approximate_stack_pointer() -> u64 {
    let marker = 0u8;
    core::ptr::addr_of!(marker) as u64
}

/// A thread's alternate signal stack: `[low, high)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AltStack {
    low: u64,
    high: u64,
}

impl AltStack {
    /// The calling thread's alternate signal stack if it is running on it
    /// right now, asked of the kernel (`sigaltstack`).
    ///
    /// # Async-signal safety
    /// One `sigaltstack` system call (query only).
    pub fn query() -> Option<AltStack> {
        // SAFETY: `stack_t` is plain data; an all-zero value is valid to pass.
        let mut current: libc::stack_t = unsafe { core::mem::zeroed() };
        // SAFETY: sigaltstack(2) with a null new stack only fills `current`.
        let r = unsafe { libc::sigaltstack(core::ptr::null(), &mut current) };
        if r != 0 || current.ss_flags & libc::SS_ONSTACK == 0 {
            return None;
        }
        AltStack::of(&current)
    }

    /// The alternate signal stack the kernel saved in a handler's
    /// `ucontext_t` (`uc_stack`, written at delivery: the same bounds
    /// `sigaltstack` reports, without the system call; also right for a
    /// stack set up with `SS_AUTODISARM`, which `sigaltstack` reports as
    /// disabled while its handler runs). `None` when the thread has none.
    ///
    /// # Safety
    /// `ucontext` must be null or the third argument the kernel passed to a
    /// `SA_SIGINFO` handler that is still running.
    ///
    /// # Async-signal safety
    /// Reads the kernel-written signal frame on this thread's stack.
    pub unsafe fn from_ucontext(ucontext: *const c_void) -> Option<AltStack> {
        if ucontext.is_null() {
            return None;
        }
        // SAFETY: the caller guarantees a live kernel-written ucontext_t.
        let uc = unsafe { &*ucontext.cast::<libc::ucontext_t>() };
        if uc.uc_stack.ss_flags & libc::SS_DISABLE != 0 {
            return None;
        }
        AltStack::of(&uc.uc_stack)
    }

    fn of(stack: &libc::stack_t) -> Option<AltStack> {
        let low = stack.ss_sp as u64;
        let high = low.checked_add(stack.ss_size as u64)?;
        (stack.ss_size > 0).then_some(AltStack { low, high })
    }

    /// The stack's low end if `sp` lies on it.
    ///
    /// A handler without `SA_ONSTACK` that interrupts code already running
    /// on the alternate stack runs there too; that stack may be a small
    /// buffer inside a larger (heap) mapping, so only these bounds are its
    /// real ones.
    ///
    /// # Async-signal safety
    /// Comparisons.
    pub fn low_if_on(self, sp: u64) -> Option<u64> {
        (self.low <= sp && sp < self.high).then_some(self.low)
    }
}

/// Reads the interrupted registers out of a handler's `ucontext_t`.
///
/// # Safety
/// `ucontext` must be the third argument the kernel passed to a `SA_SIGINFO`
/// handler that is still running.
///
/// # Async-signal safety
/// Reads the kernel-written signal frame on this thread's stack.
pub unsafe fn registers_from_ucontext(ucontext: *const c_void) -> Option<Registers> {
    if ucontext.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a live kernel-written ucontext_t.
    let uc = unsafe { &*ucontext.cast::<libc::ucontext_t>() };
    Some(crate::arch::registers_from_mcontext(&uc.uc_mcontext))
}

/// How the capture and trigger handlers are installed.
#[derive(Debug, Clone, Copy)]
pub struct HandlerSpec {
    /// The signal number.
    pub signal: i32,
    /// The handler.
    pub handler: SigInfoHandler,
    /// A signal to block while the handler runs (besides the handler's own).
    pub block: Option<i32>,
}

/// Installs a `SA_SIGINFO | SA_RESTART` handler with raw `sigaction`; no
/// `SA_ONSTACK` (the capture handler needs more stack than Rust's alternate
/// signal stack has). Returns the errno on failure.
///
/// Setup only (not async-signal-safe by contract, though it is one system call).
pub fn install_handler(spec: HandlerSpec) -> Result<(), Errno> {
    // SAFETY: sigaction is plain data; zeroed is a valid starting value.
    let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
    action.sa_sigaction = spec.handler as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: `sa_mask` is a valid sigset_t owned by `action`.
    unsafe { libc::sigemptyset(&raw mut action.sa_mask) };
    if let Some(s) = spec.block {
        // SAFETY: as above; `s` is a signal number.
        unsafe { libc::sigaddset(&raw mut action.sa_mask, s) };
    }
    // SAFETY: `action` is fully initialised; a null old-action is allowed.
    let r = unsafe { libc::sigaction(spec.signal, &raw const action, core::ptr::null_mut()) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// Whether a signal currently has a handler other than the default or ignore.
///
/// Setup only.
pub fn signal_has_handler(signal: i32) -> bool {
    // SAFETY: sigaction is plain data.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: a null new-action only queries.
    let r = unsafe { libc::sigaction(signal, core::ptr::null(), &raw mut old) };
    r == 0 && old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN
}

/// `SIGRTMIN()` at run time (libc reserves a few real-time signals).
///
/// # Async-signal safety
/// A libc accessor returning a constant.
pub fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

/// `SIGRTMAX()` at run time.
///
/// # Async-signal safety
/// A libc accessor returning a constant.
pub fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// Registers `child` to run in the child after `fork()` (setup only).
pub fn at_fork_child(child: extern "C" fn()) {
    // SAFETY: registering a plain extern "C" function with no captured state.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

/// Opens a path read-only and keeps the raw descriptor (no [`Fd`] guard):
/// for descriptors the engine holds for its whole life (see
/// [`crate::round`]'s kept `/proc` descriptors). `None` on failure.
///
/// Setup (or round holder) only; one `open` system call.
pub fn open_kept(path: &[u8], directory: bool) -> Option<i32> {
    let fd = open_readonly(path, directory).ok()?;
    let raw = fd.0;
    core::mem::forget(fd);
    Some(raw)
}

/// Closes a descriptor the engine kept (see [`open_kept`]).
///
/// # Async-signal safety
/// One `close` system call.
pub fn close_kept(fd: i32) {
    if fd >= 0 {
        // SAFETY: the caller owns `fd` (it came from `open_kept` and was
        // verified with `identity` to still be that file).
        unsafe { libc::close(fd) };
    }
}

/// The identity (device, inode) of the file open on `fd`, to check that a
/// descriptor kept since install still refers to the same file (the
/// application may have closed it and reused the number).
///
/// # Async-signal safety
/// One `fstat` system call into a stack buffer.
pub fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: `stat` is plain data; all-zero is a valid value to overwrite.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat(2) writes at most one `stat` into the valid pointer.
    let r = unsafe { libc::fstat(fd, &mut st) };
    (r == 0).then_some((st.st_dev, st.st_ino))
}

/// Moves `fd` back to its start (`lseek(fd, 0, SEEK_SET)`): a kept
/// directory descriptor is listed again from its first entry, a kept
/// `/proc` file is generated afresh.
///
/// # Async-signal safety
/// One `lseek` system call.
pub fn rewind(fd: i32) -> Result<(), Errno> {
    // SAFETY: lseek(2) on a descriptor the caller owns; no memory is touched.
    let r = unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// `getdents64(2)` on a raw directory descriptor (see [`getdents64`]).
///
/// # Async-signal safety
/// One `getdents64` system call.
pub fn getdents64_raw(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for `buf.len()` bytes; the kernel writes at most that.
    let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// Whether this process can read the 8 bytes at `address`, asked of the
/// kernel with one `process_vm_readv` on itself (which fails instead of
/// faulting). The smallest possible stack frame: it runs on stacks that may
/// be nearly exhausted. `Err` if the call itself is refused.
///
/// # Async-signal safety
/// One `process_vm_readv` system call; two iovecs and 8 bytes on the stack.
#[inline(never)]
pub fn readable_word(address: u64) -> Result<bool, Errno> {
    let mut word = 0u64;
    let local = libc::iovec {
        iov_base: core::ptr::addr_of_mut!(word).cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: address as *mut c_void,
        iov_len: 8,
    };
    // SAFETY: `local` describes `word`, writable for 8 bytes; the remote
    // range is only read by the kernel, which fails on an unreadable page
    // instead of faulting this process.
    let n = unsafe { libc::process_vm_readv(getpid(), &local, 1, &remote, 1, 0) };
    match n {
        8 => Ok(true),
        n if n >= 0 => Ok(false),
        _ if errno() == libc::EFAULT => Ok(false),
        _ => Err(errno()),
    }
}

/// How many bytes from `start` (page-aligned; at most `len`) this process
/// can read, asked of the kernel with `process_vm_readv` on itself: it copies
/// remote pieces in order and stops at the first one on a page that is
/// unmapped or not readable (a guard page) instead of faulting. Each remote
/// piece is one `scratch`-sized block, so the answer is exact to that
/// granularity even where the kernel only reports whole iovecs. `scratch`
/// receives the copied bytes (every local iovec points at it; its contents
/// are meaningless afterwards). `Err` if the call itself is refused (a
/// seccomp filter, `ENOSYS`).
///
/// # Async-signal safety
/// `process_vm_readv` system calls; two iovec arrays on the stack.
#[inline(never)]
pub fn readable_bytes(start: u64, len: u64, scratch: &mut [u8]) -> Result<u64, Errno> {
    const IOVECS: usize = 64;
    let chunk = scratch.len() as u64;
    if chunk == 0 {
        return Err(libc::EINVAL);
    }
    let local: [libc::iovec; IOVECS] = core::array::from_fn(|_| libc::iovec {
        iov_base: scratch.as_mut_ptr().cast(),
        iov_len: scratch.len(),
    });
    let mut done = 0u64;
    while done < len {
        let pieces = ((len - done).div_ceil(chunk) as usize).min(IOVECS);
        let base = start.wrapping_add(done);
        let remote: [libc::iovec; IOVECS] = core::array::from_fn(|i| libc::iovec {
            iov_base: base.wrapping_add(i as u64 * chunk) as *mut c_void,
            iov_len: scratch.len(),
        });
        let want = pieces as u64 * chunk;
        // SAFETY: every local iovec describes `scratch`, writable for its whole
        // length (the kernel writes it several times over; it is a sink); the
        // remote ranges are only read by the kernel, which fails or stops short
        // at unreadable pages instead of faulting this process.
        let n = unsafe {
            libc::process_vm_readv(
                getpid(),
                local.as_ptr(),
                pieces as libc::c_ulong,
                remote.as_ptr(),
                pieces as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            let e = errno();
            // EFAULT: the first piece is already unreadable.
            return if e == libc::EFAULT {
                Ok(done.min(len))
            } else {
                Err(e)
            };
        }
        // Whole pieces only: a piece the kernel copied in part is not trusted.
        let n = (n as u64 / chunk) * chunk;
        done = done.saturating_add(n);
        if n < want {
            break;
        }
    }
    Ok(done.min(len))
}

/// Number of online CPUs (setup only).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 { 1 } else { n as usize }
}

// ---------------------------------------------------------------------------
// Setup only: loader queries and file mapping. Never call from a handler.
// ---------------------------------------------------------------------------

/// One program header of a loaded module, copied out of the loader's table.
#[derive(Debug, Clone, Copy)]
pub struct ProgramHeader {
    /// `p_type`.
    pub kind: u32,
    /// `p_flags`.
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
}

/// A module as `dl_iterate_phdr` reports it.
#[derive(Debug, Clone)]
pub struct LoadedModule {
    /// The loader's name for it (empty for the main executable).
    pub name: alloc::vec::Vec<u8>,
    /// Load bias (`dlpi_addr`).
    pub bias: u64,
    /// Its program headers.
    pub headers: alloc::vec::Vec<ProgramHeader>,
}

/// Lists the loaded modules with `dl_iterate_phdr` (takes the loader lock:
/// setup and refresh only, never in a handler).
///
/// Also returns the loader's (adds, subs) counters so a caller can tell cheaply
/// whether anything changed since the last call.
pub fn loaded_modules() -> (alloc::vec::Vec<LoadedModule>, (u64, u64)) {
    struct Collect {
        modules: alloc::vec::Vec<LoadedModule>,
        counters: (u64, u64),
    }
    extern "C" fn callback(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
        // SAFETY: `data` is the `&mut Collect` passed below; the loader calls us
        // synchronously on the same thread.
        let collect = unsafe { &mut *data.cast::<Collect>() };
        if info.is_null() {
            return 0;
        }
        // SAFETY: the loader passes a valid dl_phdr_info for the duration of the call.
        let info = unsafe { &*info };
        if size >= core::mem::size_of::<libc::dl_phdr_info>() {
            collect.counters = (info.dlpi_adds, info.dlpi_subs);
        }
        let name = if info.dlpi_name.is_null() {
            alloc::vec::Vec::new()
        } else {
            // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
            unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }
                .to_bytes()
                .to_vec()
        };
        let mut headers = alloc::vec::Vec::with_capacity(info.dlpi_phnum as usize);
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            headers.push(ProgramHeader {
                kind: ph.p_type,
                flags: ph.p_flags,
                offset: ph.p_offset,
                vaddr: ph.p_vaddr,
                filesz: ph.p_filesz,
                memsz: ph.p_memsz,
            });
        }
        collect.modules.push(LoadedModule {
            name,
            bias: info.dlpi_addr,
            headers,
        });
        0
    }
    let mut collect = Collect {
        modules: alloc::vec::Vec::new(),
        counters: (0, 0),
    };
    // SAFETY: the callback matches the expected signature and only touches `collect`.
    unsafe { libc::dl_iterate_phdr(Some(callback), (&raw mut collect).cast()) };
    (collect.modules, collect.counters)
}

/// A view of module memory mapped by the loader.
///
/// # Safety
/// `[address, address + len)` must be mapped readable for as long as the returned
/// slice is used (true for the segments of a loaded module until it is unloaded).
pub unsafe fn loaded_memory(address: u64, len: u64) -> &'static [u8] {
    if address == 0 || len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { core::slice::from_raw_parts(address as *const u8, len as usize) }
}

/// `getauxval(AT_SYSINFO_EHDR)`: where the vDSO's ELF header is mapped, or 0.
pub fn vdso_base() -> u64 {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) }
}

/// One module as the loader reports it, borrowed for the duration of a
/// [`for_each_loaded_module`] callback.
#[derive(Debug, Clone, Copy)]
pub struct LoadedModuleRef<'a> {
    /// The loader's name for it (empty for the main executable; musl's static
    /// `dl_iterate_phdr` says `/proc/self/exe`).
    pub name: &'a [u8],
    /// Load bias (`dlpi_addr`).
    pub bias: u64,
    /// Its program headers, in the loader's memory.
    pub headers: &'a [libc::Elf64_Phdr],
}

/// Calls `f` for each loaded module without allocating (setup only: takes
/// the loader lock). In a static binary (musl or glibc `-static-pie`) the
/// loader reports just the executable, found through the auxiliary vector.
/// Returns the loader's (adds, subs) counters.
pub fn for_each_loaded_module(mut f: impl FnMut(LoadedModuleRef<'_>)) -> (u64, u64) {
    struct Visit<'f> {
        f: &'f mut dyn FnMut(LoadedModuleRef<'_>),
        counters: (u64, u64),
    }
    extern "C" fn callback(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
        // SAFETY: `data` is the `&mut Visit` passed below; the loader calls us
        // synchronously on the same thread.
        let visit = unsafe { &mut *data.cast::<Visit<'_>>() };
        if info.is_null() {
            return 0;
        }
        // SAFETY: the loader passes a valid dl_phdr_info for the duration of the call.
        let info = unsafe { &*info };
        if size >= core::mem::size_of::<libc::dl_phdr_info>() {
            visit.counters = (info.dlpi_adds, info.dlpi_subs);
        }
        let name: &[u8] = if info.dlpi_name.is_null() {
            &[]
        } else {
            // SAFETY: dlpi_name is a NUL-terminated string owned by the loader,
            // valid during the callback.
            unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes()
        };
        let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
            &[]
        } else {
            // SAFETY: dlpi_phdr points to dlpi_phnum program headers that stay
            // valid during the callback.
            unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        (visit.f)(LoadedModuleRef {
            name,
            bias: info.dlpi_addr,
            headers,
        });
        0
    }
    let mut visit = Visit {
        f: &mut f,
        counters: (0, 0),
    };
    // SAFETY: the callback matches the expected signature and only touches `visit`.
    unsafe { libc::dl_iterate_phdr(Some(callback), (&raw mut visit).cast()) };
    visit.counters
}

/// `readlink("/proc/self/exe")` into `buf`; the length written (truncated to
/// the buffer), or 0. Setup only; allocates nothing.
pub fn read_self_exe_path(buf: &mut [u8]) -> usize {
    // SAFETY: the path is NUL-terminated; `buf` is writable for its length.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    usize::try_from(n).unwrap_or(0)
}

/// `readlink("/proc/self/exe")`, setup only.
pub fn self_exe_path() -> Option<alloc::vec::Vec<u8>> {
    let mut buf = alloc::vec![0u8; 4096];
    // SAFETY: the path is NUL-terminated; `buf` is writable for its length.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// The path the program was started with (`AT_EXECFN` from the auxiliary
/// vector), for when `/proc/self/exe` cannot be read (no `/proc`, no
/// descriptor free). It may be relative to the working directory at start.
/// Setup only (allocates).
pub fn exec_fn_path() -> Option<alloc::vec::Vec<u8>> {
    // SAFETY: getauxval has no preconditions; 0 means "not present".
    let p = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const core::ffi::c_char;
    if p.is_null() {
        return None;
    }
    // SAFETY: AT_EXECFN points at a NUL-terminated string the kernel put on
    // the initial stack, valid for the life of the process.
    let bytes = unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes();
    (!bytes.is_empty()).then(|| bytes.to_vec())
}

/// A read-only private mapping of a whole file, unmapped on drop (setup only).
#[derive(Debug)]
pub struct MappedFile {
    ptr: *mut c_void,
    len: usize,
}

impl MappedFile {
    /// Maps `path` (NUL-terminated) read-only.
    pub fn open(path: &[u8]) -> Result<MappedFile, Errno> {
        let fd = open_readonly(path, false)?;
        // SAFETY: stat is plain data.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: `st` is a valid out-pointer; fd is open.
        if unsafe { libc::fstat(fd.raw(), &raw mut st) } < 0 {
            return Err(errno());
        }
        if (st.st_mode & libc::S_IFMT) != libc::S_IFREG || st.st_size <= 0 {
            return Err(libc::EINVAL);
        }
        let len = st.st_size as usize;
        // SAFETY: a fresh private read-only mapping of an open regular file.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd.raw(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(errno());
        }
        Ok(MappedFile { ptr, len })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes long and lives as long as `self`.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: we own this mapping and unmap it once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Waits up to `timeout_ms` (0: do not wait) for `fd` to accept output
/// (`poll(2)` for `POLLOUT`). `Ok(true)`: writable now; `Ok(false)`: the
/// time ran out; `Err(EPIPE)`: the reader is gone (`POLLERR`/`POLLHUP`);
/// `Err(EBADF)`: not an open descriptor (`POLLNVAL`). `EINTR` is returned as
/// is (the caller retries with the time left).
///
/// # Async-signal safety
/// One `poll` system call (async-signal-safe by POSIX).
pub fn poll_writable(fd: i32, timeout_ms: i32) -> Result<bool, Errno> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `p` is one valid, initialised pollfd that outlives the call.
    let n = unsafe { libc::poll(&raw mut p, 1, timeout_ms) };
    if n < 0 {
        return Err(errno());
    }
    if n == 0 {
        return Ok(false);
    }
    if p.revents & libc::POLLNVAL != 0 {
        return Err(libc::EBADF);
    }
    if p.revents & libc::POLLOUT != 0 {
        return Ok(true);
    }
    // POLLERR or POLLHUP without POLLOUT: a write would fail (EPIPE).
    Err(libc::EPIPE)
}

// ---- Crash reports (see `crate::crash`) ----

/// A saved signal disposition (`struct sigaction`), copied at setup.
pub type SavedAction = libc::sigaction;

/// Installs `handler` for the fatal signal `signal` with `SA_SIGINFO |
/// SA_ONSTACK` (a thread that overflowed its stack can only run a handler on
/// its alternate stack), `block` (if > 0) blocked while it runs, and returns
/// the disposition it replaced. At setup, and by the crash handler to put
/// itself back.
///
/// # Async-signal safety
/// `sigemptyset`/`sigaddset` on a local set and one `sigaction` call (all
/// async-signal-safe, POSIX).
pub fn install_crash_handler(
    signal: i32,
    handler: SigInfoHandler,
    block: i32,
) -> Result<SavedAction, Errno> {
    // SAFETY: sigaction is plain data; zeroed is a valid starting value.
    let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid sigset_t owned by `action`.
    unsafe { libc::sigemptyset(&raw mut action.sa_mask) };
    if block > 0 {
        // SAFETY: as above; an invalid signal number only makes it fail.
        unsafe { libc::sigaddset(&raw mut action.sa_mask, block) };
    }
    // SAFETY: sigaction is plain data.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let r = unsafe { libc::sigaction(signal, &raw const action, &raw mut old) };
    if r < 0 { Err(errno()) } else { Ok(old) }
}

/// The handler address currently installed for `signal` (`SIG_DFL` = 0,
/// `SIG_IGN` = 1, else a function).
///
/// # Async-signal safety
/// One `sigaction(2)` query.
pub fn current_handler(signal: i32) -> usize {
    // SAFETY: sigaction is plain data.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: a null new-action only queries.
    let r = unsafe { libc::sigaction(signal, core::ptr::null(), &raw mut old) };
    if r == 0 { old.sa_sigaction } else { 0 }
}

/// Puts back a disposition saved by [`install_crash_handler`].
///
/// # Async-signal safety
/// One `sigaction(2)`.
pub fn restore_action(signal: i32, action: &SavedAction) {
    // SAFETY: `action` is a complete sigaction returned by the kernel.
    unsafe { libc::sigaction(signal, core::ptr::from_ref(action), core::ptr::null_mut()) };
}

/// Calls the handler of a saved disposition as the kernel would have: with
/// siginfo and ucontext if it was installed with `SA_SIGINFO`, else with the
/// signal number only. Does nothing for `SIG_DFL` and `SIG_IGN`.
///
/// # Safety
/// `info` and `ucontext` must be the arguments the kernel gave the running
/// handler; `action` must be a disposition the kernel returned.
///
/// # Async-signal safety
/// An indirect call of a signal handler, which is made for this context.
pub unsafe fn call_saved_handler(
    action: &SavedAction,
    signal: i32,
    info: *mut libc::siginfo_t,
    ucontext: *mut c_void,
) {
    let h = action.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    if action.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the kernel returned this address as an SA_SIGINFO handler.
        let f: SigInfoHandler = unsafe { core::mem::transmute::<usize, SigInfoHandler>(h) };
        f(signal, info, ucontext);
    } else {
        // SAFETY: the kernel returned this address as a plain handler.
        let f: extern "C" fn(c_int) =
            unsafe { core::mem::transmute::<usize, extern "C" fn(c_int)>(h) };
        f(signal);
    }
}

/// Sends `signal` to the calling thread (`tgkill`); while its handler runs
/// the signal is blocked, so it is delivered when the handler returns.
///
/// # Async-signal safety
/// One `tgkill` system call.
pub fn raise_in_this_thread(signal: i32) {
    // SAFETY: tgkill on our own pid and tid with a valid signal number.
    unsafe { libc::syscall(libc::SYS_tgkill, getpid(), gettid(), signal) };
}

/// The fault address (`si_addr`; for SIGSYS `si_call_addr`), at offset 16
/// of `siginfo_t` on Linux.
///
/// # Safety
/// `info` must be null or the kernel's siginfo for the running handler.
///
/// # Async-signal safety
/// One read of the kernel-written siginfo.
pub unsafe fn fault_address(info: *const libc::siginfo_t) -> u64 {
    if info.is_null() {
        return 0;
    }
    // SAFETY: offset 16 lies inside the 128-byte siginfo_t (caller's contract).
    unsafe { info.cast::<u8>().add(16).cast::<u64>().read_unaligned() }
}

/// Starts a detached thread running `main` with a stack of `stack_bytes`,
/// every signal blocked except `allow` (the capture signal, and the fatal
/// signals so that a fault in it still kills the process).
///
/// Setup only (`pthread_create` allocates the thread's stack with `mmap`
/// and its TLS with libc's `malloc`).
pub fn spawn_thread(
    main: extern "C" fn(*mut c_void) -> *mut c_void,
    stack_bytes: usize,
    allow: &[i32],
) -> Result<(), Errno> {
    // SAFETY: plain data; initialised by the calls below before use.
    let mut attr: libc::pthread_attr_t = unsafe { core::mem::zeroed() };
    // SAFETY: `attr` is valid storage.
    let r = unsafe { libc::pthread_attr_init(&raw mut attr) };
    if r != 0 {
        return Err(r);
    }
    // SAFETY: `attr` was initialised above.
    unsafe {
        libc::pthread_attr_setstacksize(&raw mut attr, stack_bytes);
        libc::pthread_attr_setdetachstate(&raw mut attr, libc::PTHREAD_CREATE_DETACHED);
    }
    // The new thread inherits the creating thread's mask: block everything
    // around the create, then put the old mask back.
    // SAFETY: sigset_t is plain data; filled by sigfillset.
    let mut all: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: valid sets.
    unsafe {
        libc::sigfillset(&raw mut all);
        for &s in allow {
            libc::sigdelset(&raw mut all, s);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
    }
    // SAFETY: plain data written by pthread_create.
    let mut thread: libc::pthread_t = unsafe { core::mem::zeroed() };
    // SAFETY: `attr` is initialised, `main` has the required signature and
    // takes no argument.
    let r = unsafe {
        libc::pthread_create(
            &raw mut thread,
            &raw const attr,
            main,
            core::ptr::null_mut(),
        )
    };
    // SAFETY: restores the mask saved above; destroys the initialised attr.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, core::ptr::null_mut());
        libc::pthread_attr_destroy(&raw mut attr);
    }
    if r != 0 { Err(r) } else { Ok(()) }
}

/// Names the calling thread (`prctl(PR_SET_NAME)`; at most 15 bytes).
///
/// Setup only.
pub fn set_thread_name(name: &core::ffi::CStr) {
    // SAFETY: a NUL-terminated name; the kernel copies at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}
