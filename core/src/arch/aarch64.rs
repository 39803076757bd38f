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

/// The name of an aarch64 (generic table) system call number.
///
/// # Async-signal safety
/// Pure function over a static table.
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    Some(match nr {
        22 => "epoll_pwait",
        63 => "read",
        64 => "write",
        65 => "readv",
        66 => "writev",
        67 => "pread64",
        68 => "pwrite64",
        72 => "pselect6",
        73 => "ppoll",
        82 => "fsync",
        98 => "futex",
        101 => "nanosleep",
        115 => "clock_nanosleep",
        128 => "restart_syscall",
        133 => "rt_sigsuspend",
        137 => "rt_sigtimedwait",
        202 => "accept",
        206 => "sendto",
        207 => "recvfrom",
        211 => "sendmsg",
        212 => "recvmsg",
        242 => "accept4",
        243 => "recvmmsg",
        260 => "wait4",
        426 => "io_uring_enter",
        441 => "epoll_pwait2",
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
}
