//! Architecture-specific parts: registers from the ucontext, the framehop
//! unwinder and cache types, and how to tell that a thread sits in a system call.
//!
//! Each architecture module compiles on every host (so its pure logic is tested
//! everywhere); only the `Native*` aliases are chosen by `cfg`.
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

pub mod aarch64;
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use self::x86_64::{
    NativeCache, NativeUnwinder, SYSCALL_INSN_LEN, UnwindRegs, caller_regs_from_scan,
    direct_call_target, follows_call, interrupted_syscall, plt_slot, registers_from_mcontext,
    syscall_name, unwind_regs,
};

#[cfg(target_arch = "aarch64")]
pub use self::aarch64::{
    NativeCache, NativeUnwinder, SYSCALL_INSN_LEN, UnwindRegs, caller_regs_from_scan,
    direct_call_target, follows_call, interrupted_syscall, plt_slot, registers_from_mcontext,
    syscall_name, unwind_regs,
};

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("guru-core supports x86_64 and aarch64 (see the crate docs, # Portability)");

/// The interrupted registers a thread needs to unwind itself.
///
/// On x86_64: `pc` = rip, `sp` = rsp, `fp` = rbp, `lr` unused, `syscall_reg` = rax.
/// On aarch64: `pc`, `sp`, `fp` = x29, `lr` = x30, `syscall_reg` = x8, `ret_reg` = x0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registers {
    /// Program counter of the interrupted instruction.
    pub pc: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer.
    pub fp: u64,
    /// Link register (aarch64 only; 0 on x86_64).
    pub lr: u64,
    /// The register holding the system call number (rax / x8).
    pub syscall_reg: u64,
    /// The register holding a system call's return value (rax / x0).
    pub ret_reg: u64,
}

/// Where a thread was when it was interrupted, as far as the registers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallState {
    /// Not at a system call instruction: running user code.
    Running,
    /// Blocked in system call `nr`; the kernel will restart it (`SA_RESTART`).
    InSyscall(u64),
    /// A system call that returned `EINTR` because of the signal (no restart).
    Interrupted,
}
