//! Stuck and spinning threads across reports.
//!
//! Every report compares each captured thread with the previous report of
//! the same process: its CPU time (its thread-CPU clock, which its capture
//! handler reads on entry anyway, so it costs nothing extra) and a hash of
//! its stack. A thread whose stack is the
//! same as in the previous report gets a line under its header:
//!
//! ```text
//! ------ Thread 1234 "reader" (in syscall read; paused 4 µs; cpu 0.010 s) ------
//!   same stack as report #3 (12.4 s ago), CPU +0 ms
//! ```
//!
//! `CPU +0 ms` means stuck (blocked, waiting); CPU growing by about the
//! time between the reports means spinning in place. The report named is
//! the first of the run of reports that saw this stack. A thread that moved
//! on gets no line. Every thread's header shows its total CPU time.
//!
//! The stack hash covers every frame's return address, except the innermost
//! frame, which counts by its function (its name from the debug info, else
//! its ELF symbol's start address, else the address itself), so a loop inside
//! one function is the same stack wherever the signal caught it. Limits: a
//! spinning loop that calls other (not inlined) functions is seen as having
//! moved on when two reports catch it in different callees; a thread id reused by a new thread between two reports is
//! compared with the old thread's stack (a match is then unlikely); threads
//! that did not answer the capture signal are not compared.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::model::{Frame, Hex, SameStack, Thread};

/// What the last report saw of one thread.
#[derive(Debug, Clone, Copy)]
struct Seen {
    hash: u64,
    /// The first report of the run that saw this stack, its time
    /// (monotonic ns) and the thread's CPU time then.
    since_report: u64,
    since_ns: u64,
    since_cpu_ns: Option<u64>,
}

/// Kept across reports (in the reporter state).
#[derive(Debug, Default)]
pub(crate) struct History {
    threads: HashMap<i32, Seen>,
}

/// The hash of a stack (see the module docs).
pub(crate) fn stack_hash(frames: &[Frame]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (n, f) in frames.iter().enumerate() {
        // The innermost frame by its function: its DWARF name, else its ELF
        // symbol's start, else the address.
        let physical = f.functions.last().and_then(|func| func.name.as_deref());
        match (n, physical, f.symbol_offset) {
            (0, Some(name), _) => name.hash(&mut h),
            (0, None, Some(off)) => f.address.0.wrapping_sub(off.0).hash(&mut h),
            _ => f.address.0.hash(&mut h),
        }
    }
    frames.len().hash(&mut h);
    h.finish()
}

impl History {
    /// Compares each captured thread's stack and CPU time with the last
    /// report; remembers this report for the next.
    pub(crate) fn annotate(&mut self, threads: &mut [Thread], sequence: u64, now_ns: u64) {
        let mut next = HashMap::with_capacity(threads.len());
        for t in threads.iter_mut() {
            if t.unresponsive.is_some() || t.frames.is_empty() {
                continue;
            }
            let hash = stack_hash(&t.frames);
            t.stack_hash = Some(Hex(hash));
            let seen = match self.threads.get(&t.tid) {
                Some(prev) if prev.hash == hash && !t.writing_report => {
                    t.same_stack = Some(SameStack {
                        as_report: prev.since_report,
                        ago_ns: now_ns.saturating_sub(prev.since_ns),
                        cpu_delta_ns: match (t.cpu_ns, prev.since_cpu_ns) {
                            (Some(now), Some(then)) => Some(now.saturating_sub(then)),
                            _ => None,
                        },
                    });
                    *prev
                }
                _ => Seen {
                    hash,
                    since_report: sequence,
                    since_ns: now_ns,
                    since_cpu_ns: t.cpu_ns,
                },
            };
            next.insert(t.tid, seen);
        }
        self.threads = next;
    }
}
