//! x86_64: rip/rsp/rbp from the ucontext; framehop's x86_64 unwinder.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use super::{Registers, SyscallState};

/// The framehop unwinder used on this architecture (zero-copy module data).
#[cfg(target_arch = "x86_64")]
pub type NativeUnwinder =
    framehop::x86_64::UnwinderX86_64<&'static [u8], framehop::MustNotAllocateDuringUnwind>;

/// The framehop cache used on this architecture (never allocates while unwinding).
#[cfg(target_arch = "x86_64")]
pub type NativeCache = framehop::x86_64::CacheX86_64<framehop::MustNotAllocateDuringUnwind>;

/// framehop's register set on this architecture.
#[cfg(target_arch = "x86_64")]
pub type UnwindRegs = framehop::x86_64::UnwindRegsX86_64;

/// framehop's register set for the first frame.
#[cfg(target_arch = "x86_64")]
pub fn unwind_regs(regs: &Registers) -> framehop::x86_64::UnwindRegsX86_64 {
    framehop::x86_64::UnwindRegsX86_64::new(regs.pc, regs.sp, regs.fp)
}

/// The caller's registers when a return address `return_address` was found by
/// scanning the stack at `slot`: `ret` pops it, so the caller resumes with
/// `rsp = slot + 8`; rbp is callee-saved, so it is taken over unchanged.
#[cfg(target_arch = "x86_64")]
pub fn caller_regs_from_scan(
    return_address: u64,
    slot: u64,
    callee: &framehop::x86_64::UnwindRegsX86_64,
) -> Option<framehop::x86_64::UnwindRegsX86_64> {
    Some(framehop::x86_64::UnwindRegsX86_64::new(
        return_address,
        slot.checked_add(8)?,
        callee.bp(),
    ))
}

/// Whether the eight code bytes right before a candidate return address end
/// with a call instruction: `call rel32` (`e8`), or `call r/m64` (`ff /2`,
/// any addressing form, with or without a REX prefix).
///
/// # Async-signal safety
/// Pure.
pub fn follows_call(before: [u8; 8]) -> bool {
    if before[3] == 0xe8 {
        return true;
    }
    // `ff /2` is 2 to 7 bytes long depending on its ModRM (and SIB) byte; the
    // length it implies must end exactly at the return address.
    (2..=7usize).any(|len| {
        let at = 8 - len;
        let (Some(&0xff), Some(&modrm)) = (before.get(at), before.get(at + 1)) else {
            return false;
        };
        let sib = before.get(at + 2).copied();
        modrm >> 3 & 7 == 2 && indirect_call_len(modrm, sib) == Some(len)
    })
}

/// The target of the call that ends right before `return_address`, if it is
/// a direct `call rel32` (and not an indirect call whose last bytes merely
/// look like one).
///
/// # Async-signal safety
/// Pure.
pub fn direct_call_target(before: [u8; 8], return_address: u64) -> Option<u64> {
    let indirect = (2..=7usize).any(|len| {
        let at = 8 - len;
        before.get(at) == Some(&0xff)
            && before.get(at + 1).is_some_and(|&modrm| {
                modrm >> 3 & 7 == 2
                    && indirect_call_len(modrm, before.get(at + 2).copied()) == Some(len)
            })
    });
    if indirect || before[3] != 0xe8 {
        return None;
    }
    let rel = i32::from_le_bytes([before[4], before[5], before[6], before[7]]);
    Some(return_address.wrapping_add_signed(i64::from(rel)))
}

/// If the code at `address` is a PLT stub (`jmp *slot(%rip)`, optionally
/// after `endbr64` and with a `bnd` prefix, as in `.plt`, `.plt.sec` and
/// `.plt.got`), the address of the GOT slot it jumps through.
///
/// # Async-signal safety
/// Pure.
pub fn plt_slot(code: [u8; 16], address: u64) -> Option<u64> {
    let mut at = 0usize;
    if code.get(..4) == Some(&[0xf3, 0x0f, 0x1e, 0xfa]) {
        at += 4;
    }
    if code.get(at) == Some(&0xf2) {
        at += 1;
    }
    if code.get(at..at + 2) != Some(&[0xff, 0x25]) {
        return None;
    }
    let disp = i32::from_le_bytes(code.get(at + 2..at + 6)?.try_into().ok()?);
    let next = address.checked_add(at as u64 + 6)?;
    Some(next.wrapping_add_signed(i64::from(disp)))
}

/// Length of an `ff /2` instruction (opcode, ModRM, SIB, displacement) from
/// its ModRM byte and the byte after it.
fn indirect_call_len(modrm: u8, sib: Option<u8>) -> Option<usize> {
    let (mode, rm) = (modrm >> 6, modrm & 7);
    let sib_len = usize::from(mode != 3 && rm == 4);
    let disp = match (mode, rm) {
        (3, _) => 0,
        (0, 5) => 4,
        (0, 4) => {
            // A SIB whose base is rbp/r13 takes a 32-bit displacement.
            if sib? & 7 == 5 { 4 } else { 0 }
        }
        (0, _) => 0,
        (1, _) => 1,
        _ => 4,
    };
    Some(2 + sib_len + disp)
}

/// Copies the registers out of the kernel's machine context.
///
/// # Async-signal safety
/// Reads the signal frame only.
#[cfg(target_arch = "x86_64")]
pub fn registers_from_mcontext(mc: &libc::mcontext_t) -> Registers {
    let reg = |i: i32| mc.gregs.get(i as usize).copied().unwrap_or(0) as u64;
    Registers {
        pc: reg(libc::REG_RIP),
        sp: reg(libc::REG_RSP),
        fp: reg(libc::REG_RBP),
        lr: 0,
        syscall_reg: reg(libc::REG_RAX),
        ret_reg: reg(libc::REG_RAX),
    }
}

/// Length of the system call instruction.
pub const SYSCALL_INSN_LEN: usize = 2;
/// `syscall` is `0f 05`.
const SYSCALL_INSN: [u8; SYSCALL_INSN_LEN] = [0x0f, 0x05];
/// `-EINTR` as the kernel leaves it in rax.
const MINUS_EINTR: u64 = (-4i64) as u64;

/// Tells from the registers and the code bytes around pc whether the thread was
/// in a system call. `at_pc` are the two bytes at pc, `before_pc` the two bytes
/// before it (either may be unknown).
///
/// With `SA_RESTART` the kernel rewinds rip to the `syscall` instruction and puts
/// the call number back in rax; a call that is not restarted returns `-EINTR`
/// with rip just after the instruction.
///
/// # Async-signal safety
/// Pure function.
pub fn interrupted_syscall(
    regs: &Registers,
    at_pc: Option<[u8; SYSCALL_INSN_LEN]>,
    before_pc: Option<[u8; SYSCALL_INSN_LEN]>,
) -> SyscallState {
    if at_pc == Some(SYSCALL_INSN) && regs.syscall_reg < 1024 {
        return SyscallState::InSyscall(regs.syscall_reg);
    }
    if before_pc == Some(SYSCALL_INSN) && regs.ret_reg == MINUS_EINTR {
        return SyscallState::Interrupted;
    }
    SyscallState::Running
}

/// The name of an x86_64 system call number, for the ~110 a thread is
/// usually found in (blocking I/O, waits, file and memory management,
/// process control); others print as `#<number>`.
///
/// # Async-signal safety
/// Pure function over a static table.
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    Some(match nr {
        0 => "read",
        1 => "write",
        2 => "open",
        3 => "close",
        4 => "stat",
        5 => "fstat",
        6 => "lstat",
        7 => "poll",
        8 => "lseek",
        9 => "mmap",
        10 => "mprotect",
        11 => "munmap",
        12 => "brk",
        13 => "rt_sigaction",
        14 => "rt_sigprocmask",
        16 => "ioctl",
        17 => "pread64",
        18 => "pwrite64",
        19 => "readv",
        20 => "writev",
        21 => "access",
        22 => "pipe",
        23 => "select",
        24 => "sched_yield",
        25 => "mremap",
        26 => "msync",
        28 => "madvise",
        32 => "dup",
        33 => "dup2",
        34 => "pause",
        35 => "nanosleep",
        39 => "getpid",
        40 => "sendfile",
        41 => "socket",
        42 => "connect",
        43 => "accept",
        44 => "sendto",
        45 => "recvfrom",
        46 => "sendmsg",
        47 => "recvmsg",
        48 => "shutdown",
        49 => "bind",
        50 => "listen",
        56 => "clone",
        57 => "fork",
        58 => "vfork",
        59 => "execve",
        60 => "exit",
        61 => "wait4",
        62 => "kill",
        72 => "fcntl",
        73 => "flock",
        74 => "fsync",
        75 => "fdatasync",
        77 => "ftruncate",
        78 => "getdents",
        82 => "rename",
        83 => "mkdir",
        87 => "unlink",
        89 => "readlink",
        101 => "ptrace",
        128 => "rt_sigtimedwait",
        130 => "rt_sigsuspend",
        186 => "gettid",
        200 => "tkill",
        202 => "futex",
        217 => "getdents64",
        219 => "restart_syscall",
        228 => "clock_gettime",
        230 => "clock_nanosleep",
        231 => "exit_group",
        232 => "epoll_wait",
        233 => "epoll_ctl",
        234 => "tgkill",
        247 => "waitid",
        257 => "openat",
        262 => "newfstatat",
        270 => "pselect6",
        271 => "ppoll",
        275 => "splice",
        281 => "epoll_pwait",
        283 => "timerfd_create",
        285 => "fallocate",
        288 => "accept4",
        289 => "signalfd4",
        290 => "eventfd2",
        291 => "epoll_create1",
        292 => "dup3",
        293 => "pipe2",
        295 => "preadv",
        296 => "pwritev",
        299 => "recvmmsg",
        307 => "sendmmsg",
        318 => "getrandom",
        319 => "memfd_create",
        326 => "copy_file_range",
        327 => "preadv2",
        328 => "pwritev2",
        332 => "statx",
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
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// `bytes` right-aligned in the eight bytes before a return address,
    /// after filler that is no call.
    fn ending_with(bytes: &[u8]) -> [u8; 8] {
        let mut out = [0x90u8; 8];
        out[8 - bytes.len()..].copy_from_slice(bytes);
        out
    }

    #[test]
    fn calls_are_recognised_before_return_addresses() {
        for call in [
            &[0xe8, 0x10, 0x20, 0x30, 0x40][..],         // call rel32
            &[0xff, 0xd3],                               // call *%rbx
            &[0x41, 0xff, 0xd4],                         // call *%r12
            &[0xff, 0x10],                               // call *(%rax)
            &[0xff, 0x50, 0x08],                         // call *8(%rax)
            &[0xff, 0x14, 0x24],                         // call *(%rsp)
            &[0xff, 0x54, 0x24, 0x08],                   // call *8(%rsp)
            &[0xff, 0x90, 0x00, 0x01, 0x00, 0x00],       // call *0x100(%rax)
            &[0xff, 0x15, 0x00, 0x10, 0x00, 0x00],       // call *0x1000(%rip)
            &[0xff, 0x14, 0xc5, 0x00, 0x10, 0x00, 0x00], // call *0x1000(,%rax,8)
            &[0xff, 0x94, 0xc8, 0x00, 0x01, 0x00, 0x00], // call *0x100(%rax,%rcx,8)
        ] {
            assert!(follows_call(ending_with(call)), "{call:x?}");
        }
    }

    #[test]
    fn direct_call_targets_are_decoded() {
        // call +0x40 and call -0x10, returning to 0x1000.
        let forward = ending_with(&[0xe8, 0x40, 0x00, 0x00, 0x00]);
        assert_eq!(direct_call_target(forward, 0x1000), Some(0x1040));
        let backward = ending_with(&[0xe8, 0xf0, 0xff, 0xff, 0xff]);
        assert_eq!(direct_call_target(backward, 0x1000), Some(0x0ff0));
        // Indirect calls have no target here, even when a byte 0xe8 sits
        // where a `call rel32` would start.
        assert_eq!(direct_call_target(ending_with(&[0xff, 0xd3]), 0x1000), None);
        let indirect = [0x90, 0x90, 0x90, 0xe8, 0x90, 0xff, 0x14, 0x24];
        assert_eq!(direct_call_target(indirect, 0x1000), None);
    }

    #[test]
    fn plt_stubs_are_followed_to_their_got_slots() {
        fn code(bytes: &[u8]) -> [u8; 16] {
            let mut out = [0xccu8; 16];
            out[..bytes.len()].copy_from_slice(bytes);
            out
        }
        // .plt: jmp *0x2fe2(%rip) at 0x1030 (next instruction at 0x1036).
        let plain = code(&[0xff, 0x25, 0xe2, 0x2f, 0x00, 0x00]);
        assert_eq!(plt_slot(plain, 0x1030), Some(0x4018));
        // .plt.sec with IBT: endbr64; bnd jmp *-0x10(%rip).
        let ibt = code(&[
            0xf3, 0x0f, 0x1e, 0xfa, 0xf2, 0xff, 0x25, 0xf0, 0xff, 0xff, 0xff,
        ]);
        assert_eq!(plt_slot(ibt, 0x2000), Some(0x2000 + 11 - 0x10));
        // An ordinary function prologue is no stub.
        assert_eq!(plt_slot(code(&[0x55, 0x48, 0x89, 0xe5]), 0x1000), None);
        assert_eq!(plt_slot(code(&[0xff, 0x24, 0x25]), 0x1000), None);
    }

    #[test]
    fn non_calls_are_not_taken_for_calls() {
        for other in [
            &[0x90, 0x90][..],               // nops
            &[0xff, 0xe3],                   // jmp *%rbx (ff /4)
            &[0xff, 0xc0],                   // inc %eax (ff /0)
            &[0xe9, 0x10, 0x20, 0x30, 0x40], // jmp rel32
            &[0xff, 0x50],                   // ff /2 missing its disp8
            &[0xff, 0x15, 0x00, 0x10, 0x00], // rip-relative, one byte short
            &[0x48, 0x89, 0xc7],             // mov %rax, %rdi
        ] {
            assert!(!follows_call(ending_with(other)), "{other:x?}");
        }
    }

    #[test]
    fn restarted_syscall_is_recognised() {
        let regs = Registers {
            syscall_reg: 202,
            ret_reg: 202,
            ..Default::default()
        };
        assert_eq!(
            interrupted_syscall(&regs, Some(SYSCALL_INSN), None),
            SyscallState::InSyscall(202)
        );
        assert_eq!(syscall_name(202), Some("futex"));
    }

    #[test]
    fn eintr_return_is_recognised() {
        let regs = Registers {
            syscall_reg: MINUS_EINTR,
            ret_reg: MINUS_EINTR,
            ..Default::default()
        };
        assert_eq!(
            interrupted_syscall(&regs, Some([0x48, 0x3d]), Some(SYSCALL_INSN)),
            SyscallState::Interrupted
        );
    }

    #[test]
    fn user_code_is_running() {
        let regs = Registers {
            syscall_reg: 5,
            ret_reg: 5,
            ..Default::default()
        };
        assert_eq!(
            interrupted_syscall(&regs, Some([0x90, 0x90]), Some([0x48, 0x89])),
            SyscallState::Running
        );
        assert_eq!(
            interrupted_syscall(&regs, None, None),
            SyscallState::Running
        );
    }

    /// Every name in the table matches libc's number for it.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn syscall_table_matches_libc() {
        let table: &[(libc::c_long, &str)] = &[
            (libc::SYS_read, "read"),
            (libc::SYS_write, "write"),
            (libc::SYS_open, "open"),
            (libc::SYS_close, "close"),
            (libc::SYS_stat, "stat"),
            (libc::SYS_fstat, "fstat"),
            (libc::SYS_lstat, "lstat"),
            (libc::SYS_poll, "poll"),
            (libc::SYS_lseek, "lseek"),
            (libc::SYS_mmap, "mmap"),
            (libc::SYS_mprotect, "mprotect"),
            (libc::SYS_munmap, "munmap"),
            (libc::SYS_brk, "brk"),
            (libc::SYS_rt_sigaction, "rt_sigaction"),
            (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
            (libc::SYS_ioctl, "ioctl"),
            (libc::SYS_pread64, "pread64"),
            (libc::SYS_pwrite64, "pwrite64"),
            (libc::SYS_readv, "readv"),
            (libc::SYS_writev, "writev"),
            (libc::SYS_access, "access"),
            (libc::SYS_pipe, "pipe"),
            (libc::SYS_select, "select"),
            (libc::SYS_sched_yield, "sched_yield"),
            (libc::SYS_mremap, "mremap"),
            (libc::SYS_msync, "msync"),
            (libc::SYS_madvise, "madvise"),
            (libc::SYS_dup, "dup"),
            (libc::SYS_dup2, "dup2"),
            (libc::SYS_pause, "pause"),
            (libc::SYS_nanosleep, "nanosleep"),
            (libc::SYS_getpid, "getpid"),
            (libc::SYS_sendfile, "sendfile"),
            (libc::SYS_socket, "socket"),
            (libc::SYS_connect, "connect"),
            (libc::SYS_accept, "accept"),
            (libc::SYS_sendto, "sendto"),
            (libc::SYS_recvfrom, "recvfrom"),
            (libc::SYS_sendmsg, "sendmsg"),
            (libc::SYS_recvmsg, "recvmsg"),
            (libc::SYS_shutdown, "shutdown"),
            (libc::SYS_bind, "bind"),
            (libc::SYS_listen, "listen"),
            (libc::SYS_clone, "clone"),
            (libc::SYS_fork, "fork"),
            (libc::SYS_vfork, "vfork"),
            (libc::SYS_execve, "execve"),
            (libc::SYS_exit, "exit"),
            (libc::SYS_wait4, "wait4"),
            (libc::SYS_kill, "kill"),
            (libc::SYS_fcntl, "fcntl"),
            (libc::SYS_flock, "flock"),
            (libc::SYS_fsync, "fsync"),
            (libc::SYS_fdatasync, "fdatasync"),
            (libc::SYS_ftruncate, "ftruncate"),
            (libc::SYS_getdents, "getdents"),
            (libc::SYS_rename, "rename"),
            (libc::SYS_mkdir, "mkdir"),
            (libc::SYS_unlink, "unlink"),
            (libc::SYS_readlink, "readlink"),
            (libc::SYS_ptrace, "ptrace"),
            (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
            (libc::SYS_rt_sigsuspend, "rt_sigsuspend"),
            (libc::SYS_gettid, "gettid"),
            (libc::SYS_tkill, "tkill"),
            (libc::SYS_futex, "futex"),
            (libc::SYS_getdents64, "getdents64"),
            (libc::SYS_restart_syscall, "restart_syscall"),
            (libc::SYS_clock_gettime, "clock_gettime"),
            (libc::SYS_clock_nanosleep, "clock_nanosleep"),
            (libc::SYS_exit_group, "exit_group"),
            (libc::SYS_epoll_wait, "epoll_wait"),
            (libc::SYS_epoll_ctl, "epoll_ctl"),
            (libc::SYS_tgkill, "tgkill"),
            (libc::SYS_waitid, "waitid"),
            (libc::SYS_openat, "openat"),
            (libc::SYS_newfstatat, "newfstatat"),
            (libc::SYS_pselect6, "pselect6"),
            (libc::SYS_ppoll, "ppoll"),
            (libc::SYS_splice, "splice"),
            (libc::SYS_epoll_pwait, "epoll_pwait"),
            (libc::SYS_timerfd_create, "timerfd_create"),
            (libc::SYS_fallocate, "fallocate"),
            (libc::SYS_accept4, "accept4"),
            (libc::SYS_signalfd4, "signalfd4"),
            (libc::SYS_eventfd2, "eventfd2"),
            (libc::SYS_epoll_create1, "epoll_create1"),
            (libc::SYS_dup3, "dup3"),
            (libc::SYS_pipe2, "pipe2"),
            (libc::SYS_preadv, "preadv"),
            (libc::SYS_pwritev, "pwritev"),
            (libc::SYS_recvmmsg, "recvmmsg"),
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
