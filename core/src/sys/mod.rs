//! The only place in `guru-core` that talks to the operating system.
//!
//! Every other module is safe Rust over byte slices and atomics; everything that
//! needs `unsafe` and `libc` lives here, behind small wrappers that state their
//! async-signal safety. One module per platform; today only Linux is supported.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("guru-core supports Linux only (see the crate docs, # Portability)");
