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

/// framehop's register set for the first frame.
#[cfg(target_arch = "x86_64")]
pub fn unwind_regs(regs: &Registers) -> framehop::x86_64::UnwindRegsX86_64 {
    framehop::x86_64::UnwindRegsX86_64::new(regs.pc, regs.sp, regs.fp)
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

/// The name of an x86_64 system call number, for the ones a stuck thread is
/// usually found in.
///
/// # Async-signal safety
/// Pure function over a static table.
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    Some(match nr {
        0 => "read",
        1 => "write",
        7 => "poll",
        17 => "pread64",
        18 => "pwrite64",
        19 => "readv",
        20 => "writev",
        23 => "select",
        34 => "pause",
        35 => "nanosleep",
        43 => "accept",
        44 => "sendto",
        45 => "recvfrom",
        46 => "sendmsg",
        47 => "recvmsg",
        61 => "wait4",
        74 => "fsync",
        128 => "rt_sigtimedwait",
        130 => "rt_sigsuspend",
        202 => "futex",
        219 => "restart_syscall",
        230 => "clock_nanosleep",
        232 => "epoll_wait",
        247 => "waitid",
        270 => "pselect6",
        271 => "ppoll",
        281 => "epoll_pwait",
        288 => "accept4",
        299 => "recvmmsg",
        426 => "io_uring_enter",
        441 => "epoll_pwait2",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

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
}
