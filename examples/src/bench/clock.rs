//! Thread-CPU clocks for the benchmark binaries (included with `#[path]`).

/// CPU time of the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of thread `tid` of this process, through its per-thread CPU
/// clock: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) = (~tid << 3) | 6.
#[allow(dead_code)] // used by bench_fixture only
pub fn thread_cpu_ns_of(tid: i32) -> u64 {
    clock_ns(((!tid) << 3) | 6)
}

/// `clock`'s time in nanoseconds; 0 if the clock does not exist.
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for clock_gettime; a clock id that
    // does not exist only makes it fail with EINVAL (then 0 is returned).
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
