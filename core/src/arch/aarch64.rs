//! aarch64: pc/sp/fp/lr from the ucontext; framehop's aarch64 unwinder.
//!
//! The leaf frame is kept: the first frame is the interrupted pc, and lr is only
//! handed to framehop as a register (it is the return address of a leaf function
//! that has not saved it yet), never used as the pc.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use super::{Registers, SyscallState};

/// The framehop unwinder used on this architecture (zero-copy module data).
#[cfg(target_arch = "aarch64")]
pub type NativeUnwinder =
    framehop::aarch64::UnwinderAarch64<&'static [u8], framehop::MustNotAllocateDuringUnwind>;

/// The framehop cache used on this architecture (never allocates while unwinding).
#[cfg(target_arch = "aarch64")]
pub type NativeCache = framehop::aarch64::CacheAarch64<framehop::MustNotAllocateDuringUnwind>;

/// framehop's register set on this architecture.
#[cfg(target_arch = "aarch64")]
pub type UnwindRegs = framehop::aarch64::UnwindRegsAarch64;

/// framehop's register set for the first frame. Return addresses are masked
/// to 48 bits: on CPUs with pointer authentication (ARMv8.3+, and qemu's
/// default CPU) code built with `-mbranch-protection` signs the link register
/// it saves, and the signature lives in the bits above the address.
///
/// # Async-signal safety
/// Pure function.
#[cfg(target_arch = "aarch64")]
pub fn unwind_regs(regs: &Registers) -> framehop::aarch64::UnwindRegsAarch64 {
    framehop::aarch64::UnwindRegsAarch64::new_with_ptr_auth_mask(
        framehop::aarch64::PtrAuthMask(crate::fp::AARCH64_ADDRESS_MASK),
        regs.lr,
        regs.sp,
        regs.fp,
    )
}

/// Stack scanning is not used on aarch64: a return address found on the
/// stack does not tell where the caller's stack pointer was (the saved
/// frame record sits anywhere in the caller's frame), and the link register
/// already gives the leaf's caller.
#[cfg(target_arch = "aarch64")]
pub fn caller_regs_from_scan(
    _return_address: u64,
    _slot: u64,
    _callee: &framehop::aarch64::UnwindRegsAarch64,
) -> Option<framehop::aarch64::UnwindRegsAarch64> {
    None
}

/// Whether the four code bytes right before a candidate return address are
/// a branch with link: `bl`, `blr`, or a pointer-authenticating `blra*`.
///
/// # Async-signal safety
/// Pure.
pub fn follows_call(before: [u8; 8]) -> bool {
    let insn = u32::from_le_bytes([before[4], before[5], before[6], before[7]]);
    insn & 0xfc00_0000 == 0x9400_0000
        || insn & 0xffff_fc1f == 0xd63f_0000
        || insn & 0xfeff_f800 == 0xd63f_0800
}

/// The target of a `bl` right before `return_address` (`None` for other
/// calls).
///
/// # Async-signal safety
/// Pure.
pub fn direct_call_target(before: [u8; 8], return_address: u64) -> Option<u64> {
    let insn = u32::from_le_bytes([before[4], before[5], before[6], before[7]]);
    if insn & 0xfc00_0000 != 0x9400_0000 {
        return None;
    }
    // imm26, sign-extended, in units of four bytes, from the bl itself.
    let offset = i64::from(((insn << 6) as i32) >> 6) * 4;
    return_address.checked_sub(4)?.checked_add_signed(offset)
}

/// PLT stubs are not followed on aarch64 (no stack scanning there).
///
/// # Async-signal safety
/// Pure.
pub fn plt_slot(_code: [u8; 16], _address: u64) -> Option<u64> {
    None
}

/// Copies the registers out of the kernel's machine context.
///
/// # Async-signal safety
/// Reads the signal frame only.
#[cfg(target_arch = "aarch64")]
pub fn registers_from_mcontext(mc: &libc::mcontext_t) -> Registers {
    let x = |i: usize| mc.regs.get(i).copied().unwrap_or(0);
    Registers {
        pc: mc.pc,
        sp: mc.sp,
        fp: x(29),
        lr: x(30),
        syscall_reg: x(8),
        ret_reg: x(0),
    }
}

/// Length of the system call instruction.
pub const SYSCALL_INSN_LEN: usize = 4;
/// `svc #0` is `d4000001`, little-endian.
const SVC_INSN: [u8; SYSCALL_INSN_LEN] = [0x01, 0x00, 0x00, 0xd4];
/// `-EINTR` as the kernel leaves it in x0.
const MINUS_EINTR: u64 = (-4i64) as u64;

/// Tells from the registers and the code bytes around pc whether the thread was
/// in a system call (see the x86_64 version; here the instruction is 4 bytes and
/// the number lives in x8).
///
/// # Async-signal safety
/// Pure function.
pub fn interrupted_syscall(
    regs: &Registers,
    at_pc: Option<[u8; SYSCALL_INSN_LEN]>,
    before_pc: Option<[u8; SYSCALL_INSN_LEN]>,
) -> SyscallState {
    if at_pc == Some(SVC_INSN) && regs.syscall_reg < 1024 {
        return SyscallState::InSyscall(regs.syscall_reg);
    }
    if before_pc == Some(SVC_INSN) && regs.ret_reg == MINUS_EINTR {
        return SyscallState::Interrupted;
    }
    SyscallState::Running
}

/// The name of an aarch64 (generic table) system call number, for the ~100
/// a thread is usually found in (blocking I/O, waits, file and memory
/// management, process control); others print as `#<number>`.
///
/// # Async-signal safety
/// Pure function over a static table.
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    Some(match nr {
        17 => "getcwd",
        19 => "eventfd2",
        20 => "epoll_create1",
        21 => "epoll_ctl",
        22 => "epoll_pwait",
        23 => "dup",
        24 => "dup3",
        25 => "fcntl",
        29 => "ioctl",
        32 => "flock",
        34 => "mkdirat",
        35 => "unlinkat",
        38 => "renameat",
        40 => "mount",
        46 => "ftruncate",
        47 => "fallocate",
        48 => "faccessat",
        56 => "openat",
        57 => "close",
        59 => "pipe2",
        61 => "getdents64",
        62 => "lseek",
        63 => "read",
        64 => "write",
        65 => "readv",
        66 => "writev",
        67 => "pread64",
        68 => "pwrite64",
        69 => "preadv",
        70 => "pwritev",
        71 => "sendfile",
        72 => "pselect6",
        73 => "ppoll",
        74 => "signalfd4",
        76 => "splice",
        78 => "readlinkat",
        79 => "newfstatat",
        80 => "fstat",
        82 => "fsync",
        83 => "fdatasync",
        85 => "timerfd_create",
        93 => "exit",
        94 => "exit_group",
        95 => "waitid",
        98 => "futex",
        101 => "nanosleep",
        113 => "clock_gettime",
        115 => "clock_nanosleep",
        117 => "ptrace",
        124 => "sched_yield",
        128 => "restart_syscall",
        129 => "kill",
        130 => "tkill",
        131 => "tgkill",
        133 => "rt_sigsuspend",
        134 => "rt_sigaction",
        135 => "rt_sigprocmask",
        137 => "rt_sigtimedwait",
        172 => "getpid",
        178 => "gettid",
        198 => "socket",
        200 => "bind",
        201 => "listen",
        202 => "accept",
        203 => "connect",
        206 => "sendto",
        207 => "recvfrom",
        210 => "shutdown",
        211 => "sendmsg",
        212 => "recvmsg",
        214 => "brk",
        215 => "munmap",
        216 => "mremap",
        220 => "clone",
        221 => "execve",
        222 => "mmap",
        226 => "mprotect",
        227 => "msync",
        233 => "madvise",
        242 => "accept4",
        243 => "recvmmsg",
        260 => "wait4",
        269 => "sendmmsg",
        278 => "getrandom",
        279 => "memfd_create",
        285 => "copy_file_range",
        286 => "preadv2",
        287 => "pwritev2",
        291 => "statx",
        424 => "pidfd_send_signal",
        425 => "io_uring_setup",
        426 => "io_uring_enter",
        434 => "pidfd_open",
        435 => "clone3",
        437 => "openat2",
        441 => "epoll_pwait2",
        449 => "futex_waitv",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn before(insn: u32) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[4..].copy_from_slice(&insn.to_le_bytes());
        out
    }

    #[test]
    fn bl_targets_are_decoded() {
        // bl +0x40 and bl -0x40 at 0x0ffc, returning to 0x1000.
        assert_eq!(
            direct_call_target(before(0x9400_0010), 0x1000),
            Some(0x103c)
        );
        assert_eq!(
            direct_call_target(before(0x97ff_fff0), 0x1000),
            Some(0x0fbc)
        );
        assert_eq!(direct_call_target(before(0xd63f_0060), 0x1000), None);
    }

    #[test]
    fn branches_with_link_are_calls() {
        assert!(follows_call(before(0x9400_0010))); // bl +0x40
        assert!(follows_call(before(0x97ff_fff0))); // bl -0x40
        assert!(follows_call(before(0xd63f_0060))); // blr x3
        assert!(follows_call(before(0xd73f_087f))); // blraa x3, sp
        assert!(follows_call(before(0xd63f_0bff))); // blraaz
        assert!(!follows_call(before(0x1400_0010))); // b +0x40
        assert!(!follows_call(before(0xd61f_0060))); // br x3
        assert!(!follows_call(before(0xd65f_03c0))); // ret
        assert!(!follows_call(before(0xd503_201f))); // nop
    }

    #[test]
    fn restarted_svc_is_recognised() {
        let regs = Registers {
            syscall_reg: 98,
            ret_reg: 3,
            ..Default::default()
        };
        assert_eq!(
            interrupted_syscall(&regs, Some(SVC_INSN), None),
            SyscallState::InSyscall(98)
        );
        assert_eq!(syscall_name(98), Some("futex"));
        assert_eq!(syscall_name(63), Some("read"));
        assert_eq!(syscall_name(100_000), None);
    }

    #[test]
    fn eintr_after_svc_is_recognised() {
        let regs = Registers {
            syscall_reg: 101,
            ret_reg: MINUS_EINTR,
            ..Default::default()
        };
        assert_eq!(
            interrupted_syscall(&regs, Some([0x1f, 0x20, 0x03, 0xd5]), Some(SVC_INSN)),
            SyscallState::Interrupted
        );
    }

    #[test]
    fn other_code_is_running() {
        let regs = Registers {
            syscall_reg: 98,
            ret_reg: 0,
            ..Default::default()
        };
        // `nop` at pc, `ret` before it.
        assert_eq!(
            interrupted_syscall(
                &regs,
                Some([0x1f, 0x20, 0x03, 0xd5]),
                Some([0xc0, 0x03, 0x5f, 0xd6])
            ),
            SyscallState::Running
        );
        assert_eq!(
            interrupted_syscall(&regs, None, None),
            SyscallState::Running
        );
        // A syscall number that cannot be one is not taken for a syscall.
        let junk = Registers {
            syscall_reg: u64::MAX,
            ..regs
        };
        assert_eq!(
            interrupted_syscall(&junk, Some(SVC_INSN), None),
            SyscallState::Running
        );
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn registers_come_from_the_machine_context() {
        // SAFETY: mcontext_t is plain data; all-zero is a valid value.
        #[allow(unsafe_code)]
        let mut mc: libc::mcontext_t = unsafe { core::mem::zeroed() };
        mc.pc = 0x40_1000;
        mc.sp = 0x7fff_0000;
        mc.regs[8] = 98;
        mc.regs[0] = 5;
        mc.regs[29] = 0x7fff_0040;
        mc.regs[30] = 0x40_2000;
        let r = registers_from_mcontext(&mc);
        assert_eq!(
            (r.pc, r.sp, r.fp, r.lr, r.syscall_reg, r.ret_reg),
            (0x40_1000, 0x7fff_0000, 0x7fff_0040, 0x40_2000, 98, 5)
        );
        // The leaf frame is kept: framehop starts at pc with lr as a register.
        let u = unwind_regs(&r);
        assert_eq!(
            (u.lr(), u.sp(), u.fp()),
            (0x40_2000, 0x7fff_0000, 0x7fff_0040)
        );
    }

    /// Every name in the table matches libc's number for it.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn syscall_table_matches_libc() {
        let table: &[(libc::c_long, &str)] = &[
            (libc::SYS_getcwd, "getcwd"),
            (libc::SYS_eventfd2, "eventfd2"),
            (libc::SYS_epoll_create1, "epoll_create1"),
            (libc::SYS_epoll_ctl, "epoll_ctl"),
            (libc::SYS_epoll_pwait, "epoll_pwait"),
            (libc::SYS_dup, "dup"),
            (libc::SYS_dup3, "dup3"),
            (libc::SYS_fcntl, "fcntl"),
            (libc::SYS_ioctl, "ioctl"),
            (libc::SYS_flock, "flock"),
            (libc::SYS_mkdirat, "mkdirat"),
            (libc::SYS_unlinkat, "unlinkat"),
            (libc::SYS_mount, "mount"),
            (libc::SYS_ftruncate, "ftruncate"),
            (libc::SYS_fallocate, "fallocate"),
            (libc::SYS_faccessat, "faccessat"),
            (libc::SYS_openat, "openat"),
            (libc::SYS_close, "close"),
            (libc::SYS_pipe2, "pipe2"),
            (libc::SYS_getdents64, "getdents64"),
            (libc::SYS_lseek, "lseek"),
            (libc::SYS_read, "read"),
            (libc::SYS_write, "write"),
            (libc::SYS_readv, "readv"),
            (libc::SYS_writev, "writev"),
            (libc::SYS_pread64, "pread64"),
            (libc::SYS_pwrite64, "pwrite64"),
            (libc::SYS_preadv, "preadv"),
            (libc::SYS_pwritev, "pwritev"),
            (libc::SYS_sendfile, "sendfile"),
            (libc::SYS_pselect6, "pselect6"),
            (libc::SYS_ppoll, "ppoll"),
            (libc::SYS_signalfd4, "signalfd4"),
            (libc::SYS_splice, "splice"),
            (libc::SYS_readlinkat, "readlinkat"),
            (libc::SYS_newfstatat, "newfstatat"),
            (libc::SYS_fstat, "fstat"),
            (libc::SYS_fsync, "fsync"),
            (libc::SYS_fdatasync, "fdatasync"),
            (libc::SYS_timerfd_create, "timerfd_create"),
            (libc::SYS_exit, "exit"),
            (libc::SYS_exit_group, "exit_group"),
            (libc::SYS_waitid, "waitid"),
            (libc::SYS_futex, "futex"),
            (libc::SYS_nanosleep, "nanosleep"),
            (libc::SYS_clock_gettime, "clock_gettime"),
            (libc::SYS_clock_nanosleep, "clock_nanosleep"),
            (libc::SYS_ptrace, "ptrace"),
            (libc::SYS_sched_yield, "sched_yield"),
            (libc::SYS_restart_syscall, "restart_syscall"),
            (libc::SYS_kill, "kill"),
            (libc::SYS_tkill, "tkill"),
            (libc::SYS_tgkill, "tgkill"),
            (libc::SYS_rt_sigsuspend, "rt_sigsuspend"),
            (libc::SYS_rt_sigaction, "rt_sigaction"),
            (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
            (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
            (libc::SYS_getpid, "getpid"),
            (libc::SYS_gettid, "gettid"),
            (libc::SYS_socket, "socket"),
            (libc::SYS_bind, "bind"),
            (libc::SYS_listen, "listen"),
            (libc::SYS_accept, "accept"),
            (libc::SYS_connect, "connect"),
            (libc::SYS_sendto, "sendto"),
            (libc::SYS_recvfrom, "recvfrom"),
            (libc::SYS_shutdown, "shutdown"),
            (libc::SYS_sendmsg, "sendmsg"),
            (libc::SYS_recvmsg, "recvmsg"),
            (libc::SYS_brk, "brk"),
            (libc::SYS_munmap, "munmap"),
            (libc::SYS_mremap, "mremap"),
            (libc::SYS_clone, "clone"),
            (libc::SYS_execve, "execve"),
            (libc::SYS_mmap, "mmap"),
            (libc::SYS_mprotect, "mprotect"),
            (libc::SYS_msync, "msync"),
            (libc::SYS_madvise, "madvise"),
            (libc::SYS_accept4, "accept4"),
            (libc::SYS_recvmmsg, "recvmmsg"),
            (libc::SYS_wait4, "wait4"),
            (libc::SYS_sendmmsg, "sendmmsg"),
            (libc::SYS_getrandom, "getrandom"),
            (libc::SYS_memfd_create, "memfd_create"),
            (libc::SYS_copy_file_range, "copy_file_range"),
            (libc::SYS_preadv2, "preadv2"),
            (libc::SYS_pwritev2, "pwritev2"),
            (libc::SYS_statx, "statx"),
            (libc::SYS_pidfd_send_signal, "pidfd_send_signal"),
            (libc::SYS_io_uring_setup, "io_uring_setup"),
            (libc::SYS_io_uring_enter, "io_uring_enter"),
            (libc::SYS_pidfd_open, "pidfd_open"),
            (libc::SYS_clone3, "clone3"),
            (libc::SYS_openat2, "openat2"),
            (libc::SYS_epoll_pwait2, "epoll_pwait2"),
            (libc::SYS_futex_waitv, "futex_waitv"),
        ];
        for &(nr, name) in table {
            assert_eq!(syscall_name(nr as u64), Some(name), "#{nr}");
        }
        assert!(table.len() >= 60);
    }
}
