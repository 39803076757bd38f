//! The adapter's only `unsafe`: thin wrappers over the system calls it needs
//! (self-pipe, poll, inotify, getrusage, waitid, madvise, signal masks and
//! dispositions, `pthread_atfork`), the signal action and the per-process
//! reporter state.
//!
//! Size: just over 600 lines; it is the one place with `unsafe`, kept whole
//! so that every libc call can be reviewed together.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A pipe: (read end, write end), both close-on-exec and non-blocking.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by us alone.
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, for the write end.
    let write = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok((read, write))
}

/// `write(2)` once.
///
/// # Async-signal safety
/// One system call.
pub(crate) fn write_raw(fd: RawFd, bytes: &[u8]) -> isize {
    // SAFETY: `bytes` is valid for `len` bytes; a bad fd only makes write fail.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }
}

/// `read(2)` once; `Ok(0)` at end of file, `WouldBlock` when empty.
pub(crate) fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `len` bytes; fd is open.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Waits until one of `fds` is readable (no timeout when `timeout_ms` < 0).
/// Returns which ones are.
pub(crate) fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `p` is a valid array of `len` pollfd structures.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        if r >= 0 {
            return Ok(p.iter().map(|q| q.revents != 0).collect());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// An inotify instance (close-on-exec, non-blocking).
pub(crate) fn inotify_init() -> io::Result<OwnedFd> {
    // SAFETY: no pointers involved.
    let fd = check(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })?;
    // SAFETY: inotify_init1 returned a fresh descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Watches `dir` for `mask` events.
pub(crate) fn inotify_watch(fd: &OwnedFd, dir: &Path, mask: u32) -> io::Result<i32> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string; fd is an inotify descriptor.
    check(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) })
}

/// Removes watch `wd` (errors ignored: it may be gone already).
pub(crate) fn inotify_unwatch(fd: &OwnedFd, wd: i32) {
    // SAFETY: no pointers; a stale wd only makes the call fail.
    unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
}

/// `access(path, W_OK | X_OK)`: may we create files in this directory?
pub(crate) fn can_create_in(dir: &Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    check(unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) }).map(|_| ())
}

/// `getrusage(RUSAGE_SELF)`.
pub(crate) fn rusage_self() -> Option<libc::rusage> {
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a valid out-pointer.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut r) } == 0;
    ok.then_some(r)
}

/// This process's resource limits as `/proc/self/limits` lists them, in
/// its order: (name, soft, hard, units) with `unlimited` for
/// `RLIM_INFINITY`, from `getrlimit` (no file to open). `None` if any call
/// fails.
#[cfg(target_os = "linux")]
pub(crate) fn resource_limits() -> Option<Vec<(&'static str, String, String, &'static str)>> {
    // The kernel's table (fs/proc/base.c, `lnames`), in resource order.
    let table = [
        (libc::RLIMIT_CPU, "Max cpu time", "seconds"),
        (libc::RLIMIT_FSIZE, "Max file size", "bytes"),
        (libc::RLIMIT_DATA, "Max data size", "bytes"),
        (libc::RLIMIT_STACK, "Max stack size", "bytes"),
        (libc::RLIMIT_CORE, "Max core file size", "bytes"),
        (libc::RLIMIT_RSS, "Max resident set", "bytes"),
        (libc::RLIMIT_NPROC, "Max processes", "processes"),
        (libc::RLIMIT_NOFILE, "Max open files", "files"),
        (libc::RLIMIT_MEMLOCK, "Max locked memory", "bytes"),
        (libc::RLIMIT_AS, "Max address space", "bytes"),
        (libc::RLIMIT_LOCKS, "Max file locks", "locks"),
        (libc::RLIMIT_SIGPENDING, "Max pending signals", "signals"),
        (libc::RLIMIT_MSGQUEUE, "Max msgqueue size", "bytes"),
        (libc::RLIMIT_NICE, "Max nice priority", ""),
        (libc::RLIMIT_RTPRIO, "Max realtime priority", ""),
        (libc::RLIMIT_RTTIME, "Max realtime timeout", "us"),
    ];
    let value = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    table
        .iter()
        .map(|&(resource, name, units)| {
            let mut r = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `r` is a valid out-pointer; a bad resource only fails.
            let ok = unsafe { libc::getrlimit(resource, &raw mut r) } == 0;
            ok.then(|| (name, value(r.rlim_cur), value(r.rlim_max), units))
        })
        .collect()
}

/// No `/proc/self/limits` table elsewhere.
#[cfg(not(target_os = "linux"))]
pub(crate) fn resource_limits() -> Option<Vec<(&'static str, String, String, &'static str)>> {
    None
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub(crate) fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0)
}

/// The page size (`sysconf(_SC_PAGESIZE)`), 4096 if unknown.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Signals that must never be taken over as a trigger: uncatchable ones,
/// synchronous fault signals (a real fault would then only write a byte and
/// return into the faulting instruction) and `SIGABRT`.
pub(crate) fn is_forbidden_trigger(signal: i32) -> bool {
    signal <= 0
        || signal > guru_core::sys::sigrtmax()
        || signal_hook_registry::FORBIDDEN.contains(&signal)
        || [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGTRAP,
            libc::SIGSYS,
            libc::SIGABRT,
        ]
        .contains(&signal)
}

/// One trigger, as the signal action writes it into the self-pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TriggerRecord {
    pub(crate) unix_ns: u64,
    pub(crate) signal: i32,
    pub(crate) code: i32,
    pub(crate) sender_pid: i32,
    pub(crate) sender_uid: u32,
    /// The pid of the process whose action wrote it (a forked child shares
    /// the pipe; its records are not ours).
    pub(crate) receiver_pid: i32,
}

/// Size of a record in the pipe (well under `PIPE_BUF`, so writes are atomic).
pub(crate) const RECORD_LEN: usize = 28;

impl TriggerRecord {
    /// Encodes the record.
    ///
    /// # Async-signal safety
    /// Copies into a stack array.
    pub(crate) fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&self.unix_ns.to_le_bytes());
        b[8..12].copy_from_slice(&self.signal.to_le_bytes());
        b[12..16].copy_from_slice(&self.code.to_le_bytes());
        b[16..20].copy_from_slice(&self.sender_pid.to_le_bytes());
        b[20..24].copy_from_slice(&self.sender_uid.to_le_bytes());
        b[24..28].copy_from_slice(&self.receiver_pid.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<TriggerRecord> {
        let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
        Some(TriggerRecord {
            unix_ns: u64::from_le_bytes(b.get(0..8)?.try_into().ok()?),
            signal: u32_at(8)? as i32,
            code: u32_at(12)? as i32,
            sender_pid: u32_at(16)? as i32,
            sender_uid: u32_at(20)?,
            receiver_pid: u32_at(24)? as i32,
        })
    }
}

/// Registers the trigger action: on `signal` it writes one [`TriggerRecord`]
/// (who sent it, when) to `pipe_write` and does nothing else. It chains with
/// other users of the signal through `signal-hook-registry`.
pub(crate) fn register_trigger(
    signal: i32,
    pipe_write: RawFd,
) -> io::Result<signal_hook_registry::SigId> {
    let action = move |info: &libc::siginfo_t| {
        // SAFETY: si_pid/si_uid read the union members the kernel fills for
        // user-sent signals; for other codes they hold whatever the kernel
        // left (plain integers), which we only report.
        let (pid, uid) = unsafe { (info.si_pid(), info.si_uid()) };
        let record = TriggerRecord {
            unix_ns: guru_core::sys::realtime_ns(),
            signal,
            code: info.si_code,
            sender_pid: pid,
            sender_uid: uid,
            receiver_pid: guru_core::sys::getpid(),
        };
        // A full pipe means the reporter has plenty to wake up for already,
        // but the trigger was accepted: count it, the reporter adds it to the
        // next report's coalesced triggers.
        if write_raw(pipe_write, &record.encode()) != RECORD_LEN as isize {
            PIPE_OVERFLOW.fetch_add(1, Ordering::Relaxed);
        }
    };
    // SAFETY: the action is async-signal-safe: clock_gettime, getpid, one
    // write(2) on a non-blocking pipe and an atomic add, no allocation, no locks, no panics
    // (the fixed-size copies in `encode` cannot fail). signal-hook-registry
    // saves and restores errno around it. `signal` was checked against the
    // forbidden list by the caller.
    unsafe { signal_hook_registry::register_sigaction(signal, action) }
}

/// Triggers the signal action could not write into the full wake-up pipe.
static PIPE_OVERFLOW: AtomicU64 = AtomicU64::new(0);

/// Takes (and resets) the count of triggers that found the pipe full.
pub(crate) fn take_pipe_overflow() -> u64 {
    PIPE_OVERFLOW.swap(0, Ordering::Relaxed)
}

/// A signal's disposition, as `sigaction(2)` reports it.
#[derive(Clone, Copy)]
pub(crate) struct Disposition(libc::sigaction);

impl std::fmt::Debug for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Disposition({:#x})", self.0.sa_sigaction)
    }
}

impl Disposition {
    /// Whether both name the same handler (or default/ignore).
    pub(crate) fn same_handler(&self, other: &Disposition) -> bool {
        self.0.sa_sigaction == other.0.sa_sigaction
    }
}

/// The current disposition of `signal`.
pub(crate) fn disposition(signal: i32) -> io::Result<Disposition> {
    // SAFETY: sigaction is plain data; all-zero is a valid value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is a valid out-pointer.
    check(unsafe { libc::sigaction(signal, std::ptr::null(), &raw mut old) })?;
    Ok(Disposition(old))
}

/// Sets the disposition of `signal` back to `d`.
pub(crate) fn set_disposition(signal: i32, d: &Disposition) -> io::Result<()> {
    // SAFETY: `d` is a disposition the kernel gave us for this signal.
    check(unsafe { libc::sigaction(signal, &raw const d.0, std::ptr::null_mut()) }).map(|_| ())
}

/// Whether the calling thread blocks `signal`.
pub(crate) fn thread_blocks(signal: i32) -> bool {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new set only queries the calling thread's mask.
    let ok = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &raw mut set) } == 0;
    // SAFETY: `set` was filled in by pthread_sigmask.
    ok && unsafe { libc::sigismember(&raw const set, signal) } == 1
}

fn sigset_of(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned here.
    unsafe { libc::sigemptyset(&raw mut set) };
    for &s in signals.iter().filter(|&&s| s > 0) {
        // SAFETY: as above; an invalid number only makes sigaddset fail.
        unsafe { libc::sigaddset(&raw mut set, s) };
    }
    set
}

/// Unblocks `signals` in the calling thread (guru's own threads must answer
/// the capture signal and take the trigger whatever mask they inherited).
pub(crate) fn unblock_in_this_thread(signals: &[i32]) {
    let set = sigset_of(signals);
    // SAFETY: `set` is a valid sigset_t; a null old set is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut()) };
}

/// While alive, the calling thread does not block the given signals; the
/// mask it had is restored on drop.
pub(crate) struct Unblocked(Option<libc::sigset_t>);

impl std::fmt::Debug for Unblocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unblocked")
    }
}

/// Unblocks `signals` in the calling thread until the result is dropped.
pub(crate) fn unblock_for_now(signals: &[i32]) -> Unblocked {
    let set = sigset_of(signals);
    // SAFETY: sigset_t is plain data.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are valid for the call.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &raw const set, &raw mut old) };
    Unblocked((r == 0).then_some(old))
}

impl Drop for Unblocked {
    fn drop(&mut self) {
        if let Some(old) = self.0.take() {
            // SAFETY: `old` is the mask pthread_sigmask gave us.
            unsafe {
                libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut())
            };
        }
    }
}

/// Which of the signals `0..64` thread `tid` of this process blocks
/// (`SigBlk` of `/proc/self/task/<tid>/status`, bit `n - 1` for signal `n`).
pub(crate) fn task_blocked_mask(tid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("SigBlk:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Registers `pthread_atfork` handlers.
pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: plain extern "C" functions without captured state.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// The effective and real uid of this process.
pub(crate) fn uids() -> (u32, u32) {
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    // SAFETY: as above, for getuid.
    let uid = unsafe { libc::getuid() };
    (euid, uid)
}

/// Waits up to `timeout_ms` for `fd` to take a small write without blocking.
pub(crate) fn writable_soon(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&raw mut p, 1, timeout_ms) };
    r == 1 && p.revents & libc::POLLOUT != 0
}

/// The reporter's state of one process: a forked child gets its own (the
/// parent's may be locked by a thread the child does not have).
#[derive(Debug)]
struct PerProcess<T> {
    pid: i32,
    value: Mutex<Option<T>>,
}

/// A `Mutex<Option<T>>` of which every process has its own: in a forked
/// child, the first use finds the parent's (whose lock a thread that did not
/// survive the fork may hold, and whose content it may have been changing)
/// and replaces it with a fresh, empty one. The parent's is left alone (not
/// freed: it may be mid-change).
#[derive(Debug)]
pub(crate) struct ProcessLocal<T> {
    current: AtomicPtr<PerProcess<T>>,
}

impl<T> ProcessLocal<T> {
    /// Empty until first locked.
    pub(crate) const fn new() -> ProcessLocal<T> {
        ProcessLocal {
            current: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Locks this process's value.
    pub(crate) fn lock(&'static self) -> MutexGuard<'static, Option<T>> {
        let me = guru_core::sys::getpid();
        loop {
            let p = self.current.load(Ordering::Acquire);
            // SAFETY: every pointer stored here comes from `Box::leak` below
            // and is never freed, so it is valid for 'static.
            if let Some(s) = unsafe { p.as_ref() }
                && s.pid == me
            {
                return s.value.lock().unwrap_or_else(|e| e.into_inner());
            }
            let fresh = Box::into_raw(Box::new(PerProcess {
                pid: me,
                value: Mutex::new(None),
            }));
            if self
                .current
                .compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: `fresh` was never published; we still own it.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
    }
}

/// Drops the resident pages of `bytes`, a read-only private file mapping
/// that is never written: the memory stays mapped, and a later read faults
/// the same file contents back in (from the page cache).
pub(crate) fn release_file_pages(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: `bytes` is a whole mapping from mmap (page-aligned start) with
    // PROT_READ and MAP_PRIVATE of a file, never written: there are no
    // private copies to lose, so MADV_DONTNEED only unmaps pages that are
    // repopulated from the file on the next access; every Rust reference into
    // the mapping reads the same bytes before and after.
    unsafe {
        libc::madvise(
            bytes.as_ptr().cast_mut().cast(),
            bytes.len(),
            libc::MADV_DONTNEED,
        );
    }
}

/// Gives the heap pages a report freed back to the system. glibc keeps
/// freed memory of its arenas mapped and resident (a report of 1024
/// threads allocates and frees ~10 MiB of model, symbols and text, which
/// then stayed in the process's RSS); `malloc_trim(0)` returns the free
/// pages of every arena (`MADV_DONTNEED`), keeping what is still in use.
/// The next report faults those pages back in: measured at 1024 threads,
/// ~10 ms more reporter-thread CPU per report (no application thread
/// waits for it) against ~11 MiB less RSS between reports.
/// Elsewhere (musl, whose allocator returns freed pages itself) it does
/// nothing. Normal context only: it takes the allocator's arena locks.
pub(crate) fn release_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions; it only releases memory the
    // allocator holds free (no live allocation moves or changes).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Whether this process has no child process at all (running, stopped or
/// zombie): `waitid` fails with `ECHILD`. `WNOWAIT` reaps nothing and
/// `WNOHANG` never blocks, so the application's own waiting is unaffected.
pub(crate) fn has_no_children() -> bool {
    // SAFETY: an all-zero `siginfo_t` is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL;
    // SAFETY: `info` is a valid out-parameter for the call's duration; with
    // WNOWAIT no child changes state.
    let r = unsafe { libc::waitid(libc::P_ALL, 0, &raw mut info, options) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

fn c_path(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Opens a directory to create report files in:
/// `O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC` (a symlink as its last
/// component is refused; the descriptor keeps naming this directory whatever
/// later happens to the path).
pub(crate) fn open_dir_nofollow(dir: &Path) -> io::Result<OwnedFd> {
    let c = c_path(dir.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: open succeeded; the descriptor is ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)`:
/// a new file in `dir`, never an existing one, never through a symlink.
pub(crate) fn create_exclusive_at(
    dir: &OwnedFd,
    name: &str,
    mode: libc::mode_t,
) -> io::Result<std::fs::File> {
    let c = c_path(name.as_bytes())?;
    // SAFETY: `c` is NUL-terminated; `dir` is an open directory descriptor.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    })?;
    // SAFETY: openat succeeded; the descriptor is ours alone.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// `openat(dir, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode)`: a new file in
/// `dir` without a name (nothing is visible until [`link_unnamed_at`]; it
/// vanishes when closed unlinked).
pub(crate) fn create_unnamed_at(dir: &OwnedFd, mode: libc::mode_t) -> io::Result<std::fs::File> {
    // SAFETY: a static NUL-terminated string; `dir` is an open directory.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    })?;
    // SAFETY: openat succeeded; the descriptor is ours alone.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Gives the unnamed file `file` (from [`create_unnamed_at`]) the name `name`
/// in `dir`: `linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW)`, which fails with
/// `EEXIST` rather than replace a file.
pub(crate) fn link_unnamed_at(file: &std::fs::File, dir: &OwnedFd, name: &str) -> io::Result<()> {
    let from = c_path(format!("/proc/self/fd/{}", file.as_raw_fd()).as_bytes())?;
    let to = c_path(name.as_bytes())?;
    // SAFETY: both strings are NUL-terminated; `dir` is an open directory.
    check(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(|_| ())
}

/// Renames `from` to `to`, both in `dir`, failing if `to` exists:
/// `renameat2(RENAME_NOREPLACE)`, or `linkat` + `unlinkat` on file systems
/// without it (`EINVAL`; `linkat` refuses an existing name too).
pub(crate) fn rename_noreplace_at(dir: &OwnedFd, from: &str, to: &str) -> io::Result<()> {
    let f = c_path(from.as_bytes())?;
    let t = c_path(to.as_bytes())?;
    let d = dir.as_raw_fd();
    // SAFETY: both names are NUL-terminated; `d` is an open directory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            d,
            f.as_ptr(),
            d,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
        return Err(e);
    }
    // SAFETY: as above.
    check(unsafe { libc::linkat(d, f.as_ptr(), d, t.as_ptr(), 0) })?;
    unlink_at(dir, from)
}

/// `unlinkat(dir, name, 0)`.
pub(crate) fn unlink_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    let c = c_path(name.as_bytes())?;
    // SAFETY: `c` is NUL-terminated; `dir` is an open directory descriptor.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
}

/// `fsync(fd)` (for a directory: makes a rename in it durable).
pub(crate) fn fsync(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor.
    check(unsafe { libc::fsync(fd.as_raw_fd()) }).map(|_| ())
}

/// `clock_gettime(clock)` in nanoseconds (0 if the clock is not there).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; a bad clock id only makes it fail.
    if unsafe { libc::clock_gettime(clock, &raw mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC_COARSE` (the vDSO's last tick: a few ns to read, one
/// jiffy of resolution), the clock of heartbeats.
#[inline]
pub(crate) fn coarse_monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// `CLOCK_BOOTTIME`: like `CLOCK_MONOTONIC`, plus the time suspended.
pub(crate) fn boottime_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

/// The resolution of `CLOCK_MONOTONIC_COARSE` (one jiffy), in ns.
pub(crate) fn coarse_resolution_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    if unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) } != 0 {
        return 4_000_000;
    }
    (ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64).max(1)
}

/// Like [`poll_readable`] with each descriptor's own events (`POLLIN`,
/// `POLLOUT`); returns each one's `revents`.
pub(crate) fn poll_events(fds: &[(RawFd, i16)], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `p` is a valid array of `len` pollfd structures.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        if r >= 0 {
            return Ok(p.iter().map(|q| q.revents).collect());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The credentials of a unix socket's peer (`SO_PEERCRED`): pid, uid, gid,
/// as the kernel recorded them at `connect`.
pub(crate) fn peer_cred(fd: RawFd) -> io::Result<(i32, u32, u32)> {
    let mut c = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `c` is a valid ucred and `len` its size, as SO_PEERCRED needs.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut c).cast(),
            &raw mut len,
        )
    })?;
    Ok((c.pid, c.uid, c.gid))
}

/// `send(2)` once, never blocking and never raising `SIGPIPE`
/// (`MSG_DONTWAIT | MSG_NOSIGNAL`).
pub(crate) fn send_nonblocking(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `bytes` is valid for `len` bytes; a bad fd only makes send fail.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether process `pid` exists (in this pid namespace): `kill(pid, 0)`
/// fails with `ESRCH` only when it does not.
pub(crate) fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Registers `f` to run at `exit(3)`.
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: a plain extern "C" function without captured state.
    unsafe { libc::atexit(f) };
}

/// A sealed memfd holding `bytes` (`memfd_create(MFD_ALLOW_SEALING)`, written,
/// then sealed against writes, growth, shrinking and further seals), as the
/// journal's native protocol wants for an entry too big for a datagram.
pub(crate) fn sealed_memfd(name: &str, bytes: &[u8]) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `name` is a valid C string; the flags are valid.
    let fd = check(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: memfd_create succeeded: the descriptor is open and ours alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut done = 0usize;
    while let Some(rest) = bytes.get(done..).filter(|r| !r.is_empty()) {
        let n = write_raw(fd.as_raw_fd(), rest);
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        done += n as usize;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS on our own memfd with valid seal flags.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(fd)
}

/// Sends one datagram to the unix socket at `path` from `sock`, either
/// `payload` itself or, with `pass`, no payload and the descriptor `pass` in
/// an `SCM_RIGHTS` message. Never blocks (`MSG_DONTWAIT`).
pub(crate) fn send_datagram(
    sock: RawFd,
    path: &Path,
    payload: &[u8],
    pass: Option<RawFd>,
) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr_un is a valid (empty) address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let p = path.as_os_str().as_bytes();
    if p.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(p) {
        *d = *s as libc::c_char;
    }
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // Room for one cmsghdr carrying one int, aligned for cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut addr).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = pass {
        msg.msg_iovlen = 0;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as _;
        // SAFETY: msg_control points at `control`, large enough for one header
        // (CMSG_SPACE(4) = 24 <= 32 bytes), so the first header is in bounds.
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
        if cmsg.is_null() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: `cmsg` points into `control` (checked non-null above).
        unsafe {
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        }
        // SAFETY: CMSG_DATA of a valid header has room for the one int
        // that CMSG_LEN(4) announced.
        unsafe { std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd) };
    }
    loop {
        // SAFETY: `msg` and everything it points at live until the call returns.
        let r = unsafe {
            libc::sendmsg(
                sock,
                &raw const msg,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Unblocks the capture signal in the calling thread (for guru's own
/// threads, which must answer it whatever mask they inherited).
pub(crate) fn unblock_capture_signal() {
    if let Some(e) = guru_core::engine() {
        unblock_in_this_thread(&[e.capture_signal()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = TriggerRecord {
            unix_ns: 1_795_999_999_123_000_000,
            signal: libc::SIGUSR2,
            code: libc::SI_USER,
            sender_pid: 4242,
            sender_uid: 1000,
            receiver_pid: 7,
        };
        assert_eq!(TriggerRecord::decode(&r.encode()), Some(r));
        assert_eq!(TriggerRecord::decode(&[0u8; 5]), None);
    }

    #[test]
    fn forbidden_signals() {
        for s in [0, -1, libc::SIGKILL, libc::SIGSEGV, libc::SIGABRT, 1000] {
            assert!(is_forbidden_trigger(s), "{s}");
        }
        for s in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGQUIT, libc::SIGHUP] {
            assert!(!is_forbidden_trigger(s), "{s}");
        }
    }
}
