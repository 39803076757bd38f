//! The core's text report, rendered into a fixed buffer and written to a file
//! descriptor: begin line, Threads, Modules, Report (the round's own cost),
//! end line. The format is the contract in DESIGN.md ("Report text format").
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use core::fmt::{self, Write};

use crate::capture::describe_syscall;
use crate::format::{
    SliceWriter, signal_name, write_banner, write_demangled, write_duration, write_escaped,
    write_hex_bytes, write_utc,
};
use crate::procfs::{self, TaskSyscall};
use crate::round::{RoundGuard, RoundSummary};
use crate::slots::{Phase, SlotView, StackEnd};
use crate::symbolize::ModuleSet;
use crate::sys;
use crate::trigger::{CODE_CALL, CODE_DUMP, CODE_FILE_TRIGGER, CODE_PANIC, CODE_WATCHDOG, Trigger};
use crate::write::{DROPS, Dropped, FdSink, write_cut_note, write_reason};

/// Writes the first line of a report.
///
/// # Async-signal safety
/// Formats into the caller's writer; no allocation.
pub fn write_begin_line(w: &mut impl Write, s: &RoundSummary) -> fmt::Result {
    write!(
        w,
        "==== Guru Meditation ==== pid {} report #{} at ",
        s.pid, s.sequence
    )?;
    write_utc(w, s.started_unix_ns)?;
    match &s.trigger {
        Some(t) if t.signal != 0 => {
            write!(w, " triggered by ")?;
            write_trigger_source(w, t)?;
        }
        _ => write!(w, " on request")?,
    }
    writeln!(w)
}

/// Writes the last line of a report.
///
/// # Async-signal safety
/// Formats into the caller's writer; no allocation.
pub fn write_end_line(w: &mut impl Write, s: &RoundSummary) -> fmt::Result {
    writeln!(
        w,
        "==== End of Guru Meditation ==== pid {} report #{}",
        s.pid, s.sequence
    )
}

/// "SIGUSR2 from pid 123 (uid 1000)"; a fault of a crash signal with its
/// `si_code` in words, "SIGSEGV (SEGV_MAPERR)"; for a trigger with signal 0,
/// what asked: "file trigger" (the std adapter's), "a call to
/// guru::report", "the watchdog" (the std adapter's automatic reports),
/// "guru dump from pid 12 (uid 1000)" (the std adapter's dump socket), "a
/// panic", or "a request without a signal" (any other).
/// The words depend on the trigger alone (a crash report's begin line says
/// more: [`crate::crash::write_crash_begin_line`]).
///
/// # Async-signal safety
/// Formats into the caller's writer; no allocation.
pub fn write_trigger_source(w: &mut impl Write, t: &Trigger) -> fmt::Result {
    if t.signal == 0 {
        return match t.code {
            CODE_FILE_TRIGGER => write!(w, "file trigger"),
            CODE_CALL => write!(w, "a call to guru::report"),
            CODE_WATCHDOG => write!(w, "the watchdog"),
            CODE_PANIC => write!(w, "a panic"),
            CODE_DUMP => write!(
                w,
                "guru dump from pid {} (uid {})",
                t.sender_pid, t.sender_uid
            ),
            _ => write!(w, "a request without a signal"),
        };
    }
    match signal_name(t.signal) {
        Some(name) => write!(w, "{name}")?,
        None => write!(w, "signal {}", t.signal)?,
    }
    if t.code == libc::SI_USER || t.code == libc::SI_QUEUE || t.code == libc::SI_TKILL {
        write!(w, " from pid {} (uid {})", t.sender_pid, t.sender_uid)
    } else if t.code == libc::SI_KERNEL {
        write!(w, " from the kernel")
    } else if let Some(name) = crate::crash::fault_code_name(t.signal, t.code) {
        write!(w, " ({name})")
    } else {
        write!(w, " (si_code {})", t.code)
    }
}

/// Writes one frame line: `  #n 0xADDR function+0xOFF (module+0xOFFSET)`, or
/// `  #n 0xADDR module+0xOFFSET` when no symbol is known.
///
/// # Async-signal safety
/// Binary searches over setup-time tables, then formats; no allocation.
pub fn write_frame(w: &mut impl Write, modules: &ModuleSet, n: usize, address: u64) -> fmt::Result {
    write!(w, "  #{n} 0x{address:016x} ")?;
    match modules.resolve(address, n > 0) {
        Some(r) => {
            if let Some(sym) = r.symbol {
                write_demangled(w, sym.name)?;
                // Offsets of return addresses are shown as the return address
                // itself, one past the looked-up byte.
                let off = if n > 0 { sym.offset + 1 } else { sym.offset };
                write!(w, "+0x{off:x} (")?;
                write_escaped(w, r.module.short_name())?;
                writeln!(w, "+0x{:x})", r.module_offset)
            } else {
                write_escaped(w, r.module.short_name())?;
                writeln!(w, "+0x{:x}", r.module_offset)
            }
        }
        None => writeln!(w, "?? (no module)"),
    }
}

/// # Async-signal safety
/// Formats into the caller's writer; no allocation.
fn write_name(w: &mut impl Write, name: &[u8]) -> fmt::Result {
    let len = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    write_escaped(w, name.get(..len).unwrap_or(&[]))
}

/// Writes a captured thread's header line:
/// `------ Thread <tid> "<name>" (<state>; paused <t>) ------`.
///
/// # Async-signal safety
/// Reads a published slot's summary and formats; no allocation.
pub fn write_thread_header(
    w: &mut impl Write,
    view: &SlotView<'_>,
    is_initiator: bool,
) -> fmt::Result {
    write!(w, "------ Thread {} \"", view.tid)?;
    write_name(w, &view.summary.name)?;
    write!(w, "\" (")?;
    describe_syscall(view.summary.syscall, w)?;
    if is_initiator {
        write!(w, "; writing this report")?;
    }
    write!(w, "; paused ")?;
    write_duration(w, view.summary.pause_ns)?;
    writeln!(w, ") ------")
}

/// Writes the note on how a captured stack ends (nothing when it reached
/// its root): `  -- <reason>` and a newline.
///
/// # Async-signal safety
/// Formats a published slot's summary; no allocation.
pub fn write_stack_end(w: &mut impl Write, view: &SlotView<'_>) -> fmt::Result {
    if view.summary.end == StackEnd::Root {
        return Ok(());
    }
    write!(w, "  -- ")?;
    write_stack_end_reason(w, view)?;
    writeln!(w)
}

/// Writes why a captured stack ends early (`stack truncated: …`), without
/// the note's indent and newline; nothing when it reached its root.
///
/// # Async-signal safety
/// Formats a published slot's summary; no allocation.
pub fn write_stack_end_reason(w: &mut impl Write, view: &SlotView<'_>) -> fmt::Result {
    match view.summary.end {
        StackEnd::Root => Ok(()),
        StackEnd::UnreadableStack => write!(
            w,
            "{} at 0x{:x}",
            view.summary.end.describe(),
            view.summary.end_detail
        ),
        StackEnd::StackNearlyExhausted => write!(
            w,
            "{} ({} bytes left below the stack pointer)",
            view.summary.end.describe(),
            view.summary.end_detail
        ),
        other => write!(w, "{}", other.describe()),
    }
}

/// Says which frames were found by scanning the stack (nothing if none were):
/// they are likely, not certain, callers.
///
/// # Async-signal safety
/// Formats only.
pub fn write_scan_note(w: &mut impl Write, scanned_from: u16) -> fmt::Result {
    if scanned_from == 0 {
        return Ok(());
    }
    writeln!(
        w,
        "  -- #{scanned_from} and later frames were found by scanning the stack \
         (#{} has no unwind information)",
        scanned_from - 1
    )
}

/// Writes a captured thread: header line, frames, how the stack ends.
///
/// # Async-signal safety
/// Reads a published slot (atomics) and formats; no allocation.
pub fn write_captured_thread(
    w: &mut impl Write,
    modules: &ModuleSet,
    view: &SlotView<'_>,
    is_initiator: bool,
) -> fmt::Result {
    write_thread_header(w, view, is_initiator)?;
    write_thread_context(w, view)?;
    // Runs of one return address (deep recursion) are folded after three lines.
    let mut previous = None;
    let mut run = 0usize;
    let count = view.frames().len();
    for (n, address) in view.frames().enumerate() {
        run = if previous == Some(address) {
            run + 1
        } else {
            0
        };
        previous = Some(address);
        if run < 3 {
            write_frame(w, modules, n, address)?;
            continue;
        }
        let next_same = view.frames().nth(n + 1) == Some(address);
        if !next_same || n + 1 == count {
            writeln!(
                w,
                "  ... #{}..#{}: {} more frames of the same function",
                n + 1 - (run - 2),
                n,
                run - 2
            )?;
        }
    }
    write_scan_note(w, view.summary.scanned_from)?;
    write_stack_end(w, view)
}

/// Writes a captured thread's context lines (labels, spans, breadcrumbs;
/// nothing when it has none), see [`crate::context`].
///
/// # Async-signal safety
/// Atomic loads and formatting of the thread's snapshot.
pub fn write_thread_context(w: &mut impl Write, view: &SlotView<'_>) -> fmt::Result {
    let Some(engine) = crate::engine() else {
        return Ok(());
    };
    match engine
        .contexts
        .read(view.context, view.tid, view.generation)
    {
        Some(c) if !c.is_empty() => crate::context::write_context_lines(w, &c),
        _ => Ok(()),
    }
}

/// Builds `/proc/self/task/<tid>/<file>\0` in `buf`.
///
/// # Async-signal safety
/// Formats into a stack buffer.
fn task_path<'b>(buf: &'b mut [u8; 64], tid: i32, file: &str) -> &'b [u8] {
    let mut w = SliceWriter::new(buf);
    let _ = write!(w, "/proc/self/task/{tid}/{file}\0");
    let len = w.as_str().len();
    buf.get(..len).unwrap_or(&[])
}

/// The name and meaning of an errno the core meets reading `/proc`.
///
/// # Async-signal safety
/// A match on constants.
pub fn errno_text(errno: i32) -> (&'static str, &'static str) {
    match errno {
        libc::EMFILE => ("EMFILE", "this process has no file descriptor left"),
        libc::ENFILE => ("ENFILE", "the system has no file descriptor left"),
        libc::ENOENT => ("ENOENT", "not found: is /proc mounted?"),
        libc::EACCES => ("EACCES", "permission denied"),
        libc::EPERM => ("EPERM", "operation not permitted"),
        libc::ENOTDIR => ("ENOTDIR", "not a directory: /proc is not procfs"),
        libc::ENOMEM => ("ENOMEM", "out of kernel memory"),
        libc::EBADF => ("EBADF", "bad file descriptor"),
        libc::ESRCH => ("ESRCH", "no such thread"),
        libc::EIO => ("EIO", "input/output error"),
        _ => ("errno", "unexpected error"),
    }
}

/// `EMFILE (this process has no file descriptor left)`, or
/// `errno 5 (unexpected error)` for one without a name here.
///
/// # Async-signal safety
/// Formats only.
pub fn write_errno(w: &mut impl Write, errno: i32) -> fmt::Result {
    match errno_text(errno) {
        ("errno", what) => write!(w, "errno {errno} ({what})"),
        (name, what) => write!(w, "{name} ({what})"),
    }
}

/// What a state letter of `/proc/<pid>/task/<tid>/stat` means (see
/// `proc(5)`): `t` is a thread stopped by a tracer (ptrace), `T` one stopped
/// by a signal (SIGSTOP, job control).
///
/// # Async-signal safety
/// A match on constants.
pub fn task_state_text(state: u8) -> &'static str {
    match state {
        b'R' => "running",
        b'S' => "sleeping",
        b'D' => "in uninterruptible sleep",
        b'T' => "stopped (SIGSTOP or job control)",
        b't' => "stopped by a tracer (ptrace)",
        b'Z' => "zombie: exited, not yet reaped",
        b'X' | b'x' => "dead",
        b'I' => "idle",
        b'P' => "parked",
        b'W' => "waking",
        b'K' => "killed while sleeping",
        _ => "unknown state",
    }
}

/// Writes a thread that did not capture itself, with what `/proc` says of it.
///
/// # Async-signal safety
/// Reads two small `/proc` files with `open`/`read`/`close` into stack buffers.
pub fn write_unresponsive_thread(
    w: &mut impl Write,
    tid: i32,
    phase: Phase,
    deadline_ms: u64,
) -> fmt::Result {
    let mut path = [0u8; 64];
    let mut stat = [0u8; 512];
    let stat_read = sys::read_file(task_path(&mut path, tid, "stat"), &mut stat);
    let parsed = stat_read
        .ok()
        .and_then(|n| procfs::parse_task_stat(stat.get(..n).unwrap_or(&[])));
    write!(w, "------ Thread {tid} \"")?;
    if let Some(s) = &parsed {
        write_escaped(w, s.name)?;
    }
    write!(w, "\" (")?;
    // Stopped threads run no handler until they are continued: their state
    // says why, not a blocked signal.
    let stopped = parsed.is_some_and(|s| s.state == b't' || s.state == b'T');
    match (phase, &parsed, stat_read) {
        (_, None, Err(e)) if e != libc::ENOENT && e != libc::ESRCH => {
            write!(w, "state unknown: cannot read its /proc stat: ")?;
            write_errno(w, e)?;
        }
        (_, None, _) => write!(w, "exited during the report")?,
        (Phase::NotSignalled, Some(_), _) => write!(w, "could not be signalled")?,
        (Phase::StillPending, Some(s), _) if stopped => write!(
            w,
            "unresponsive: state {}, {}; an earlier capture signal is still pending",
            s.state as char,
            task_state_text(s.state)
        )?,
        (Phase::StillPending, Some(s), _) => write!(
            w,
            "unresponsive: state {}, an earlier capture signal is still pending (the thread blocks it)",
            s.state as char
        )?,
        (Phase::Writing, Some(_), _) => {
            write!(w, "unresponsive: capture still in progress at the deadline")?
        }
        (_, Some(s), _) => {
            write!(
                w,
                "unresponsive after {deadline_ms} ms: state {}, {}",
                s.state as char,
                task_state_text(s.state)
            )?;
            let mut sc = [0u8; 256];
            if let Ok(n) = sys::read_file(task_path(&mut path, tid, "syscall"), &mut sc) {
                match procfs::parse_task_syscall(sc.get(..n).unwrap_or(&[])) {
                    TaskSyscall::Blocked(nr) => match crate::arch::syscall_name(nr) {
                        Some(name) => write!(w, ", in syscall {name}")?,
                        None => write!(w, ", in syscall #{nr}")?,
                    },
                    TaskSyscall::Running => write!(w, ", on a CPU")?,
                    TaskSyscall::Unknown => {}
                }
            }
            if s.state == b'S' || s.state == b'R' {
                write!(w, "; the capture signal may be blocked")?;
            }
        }
    }
    writeln!(w, ") ------")?;
    writeln!(w, "  -- not captured")
}

/// Writes the Modules section body.
///
/// # Async-signal safety
/// Formats setup-time module data; no allocation.
pub fn write_modules(w: &mut impl Write, modules: &ModuleSet) -> fmt::Result {
    for m in &modules.modules {
        write!(w, "  0x{:016x}-0x{:016x} ", m.start, m.end)?;
        write_escaped(w, m.path_bytes())?;
        if m.build_id_bytes().is_empty() {
            write!(w, " build-id none")?;
        } else {
            write!(w, " build-id ")?;
            write_hex_bytes(w, m.build_id_bytes())?;
        }
        writeln!(w, " symbols {}", m.symbols.len())?;
    }
    Ok(())
}

/// Writes the Report section body: the round's own cost and recent triggers.
///
/// # Async-signal safety
/// Reads atomics and formats; no allocation.
pub fn write_round_figures(
    w: &mut impl Write,
    s: &RoundSummary,
    capacity: usize,
    recent: impl FnOnce(&mut dyn FnMut(&Trigger)),
) -> fmt::Result {
    writeln!(
        w,
        "  threads: {} listed, {} captured, {} unresponsive, {} not signalled, {} left out (capacity {capacity})",
        s.threads_listed,
        s.threads_captured,
        s.threads_unresponsive,
        s.threads_not_signalled,
        s.threads_left_out
    )?;
    write!(w, "  round: capture ")?;
    write_duration(w, s.capture_ns)?;
    write!(w, " (fan-out ")?;
    write_duration(w, s.fanout_ns)?;
    write!(w, "); longest thread pause ")?;
    write_duration(w, s.max_pause_ns)?;
    writeln!(w, " (thread {})", s.max_pause_tid)?;
    if s.task_list_errno != 0 {
        write!(w, "  thread list incomplete: cannot list /proc/self/task: ")?;
        write_errno(w, s.task_list_errno)?;
        if s.initiator_added {
            write!(w, "; shown: the thread writing this report")?;
        }
        writeln!(w)?;
    }
    writeln!(w, "  coalesced triggers: {}", s.coalesced_triggers)?;
    write_output_dropped(w, &s.output_dropped)?;
    if s.maps_errno != 0 {
        write!(
            w,
            "  readable mappings unknown: cannot read /proc/self/maps: "
        )?;
        write_errno(w, s.maps_errno)?;
        writeln!(w, "; stacks were probed with process_vm_readv")?;
    }
    if s.mappings_dropped > 0 {
        writeln!(
            w,
            "  readable mappings not tracked (table full): {} (code and thread stacks were kept first)",
            s.mappings_dropped
        )?;
    }
    let mut result = Ok(());
    recent(&mut |t: &Trigger| {
        if result.is_err() {
            return;
        }
        result = (|| {
            write!(w, "  trigger at ")?;
            write_utc(w, t.unix_ns)?;
            write!(w, ": ")?;
            write_trigger_source(w, t)?;
            writeln!(w, "{}", if t.started_report { "" } else { " (coalesced)" })
        })();
    });
    result
}

/// Writes the Report section's line on output dropped since the last report
/// written whole (nothing when nothing was dropped):
/// `  output dropped: 61440 bytes of 2 reports not written (last #2: <why>)`.
///
/// # Async-signal safety
/// Formats only.
pub fn write_output_dropped(w: &mut impl Write, d: &Dropped) -> fmt::Result {
    if !d.any() {
        return Ok(());
    }
    write!(
        w,
        "  output dropped: {} bytes of {} {} not written (last #{}: ",
        d.bytes,
        d.reports,
        if d.reports == 1 { "report" } else { "reports" },
        d.last_sequence
    )?;
    write_reason(w, d.reason)?;
    writeln!(w, ")")
}

/// Renders the whole core report of a finished round to `fd`. Returns the
/// number of bytes written, or the first write error ([`crate::write::TIMED_OUT`]
/// when `fd` stayed full).
///
/// Writing is bounded like the round: it gives up on what `fd` has not taken
/// one round deadline (`Options::round_deadline_ms`) after rendering began
/// (see [`crate::write`], # Bounded writes). What was dropped is counted in
/// [`DROPS`] and told by the next report; one written whole clears what it
/// told.
///
/// # Async-signal safety
/// Formats into the round's preallocated output buffer; `poll(2)`,
/// `write(2)`; reads small `/proc` files for unresponsive threads.
pub fn write_text_report(round: &mut RoundGuard<'_>, fd: i32) -> Result<usize, sys::Errno> {
    let engine = round.engine;
    let modules = round.modules;
    let summary = round.summary;
    let generation = summary.generation;
    let deadline_ms = engine.deadline_ns / 1_000_000;
    let scratch = &mut *round.scratch;
    let deadline = sys::monotonic_ns().saturating_add(engine.deadline_ns);
    let mut sink = FdSink::new(fd, &mut scratch.out, deadline);
    let used = scratch.used.get(..scratch.used_len).unwrap_or(&[]);
    let _ = (|| -> fmt::Result {
        write_begin_line(&mut sink, &summary)?;
        write_banner(&mut sink, "Threads")?;
        for &index in used {
            let index = index as usize;
            match engine.slots.read(index, generation) {
                Some(view) => write_captured_thread(
                    &mut sink,
                    modules,
                    &view,
                    view.tid == summary.initiator_tid,
                )?,
                None => write_unresponsive_thread(
                    &mut sink,
                    engine.slots.tid(index),
                    engine.slots.phase(index, generation),
                    deadline_ms,
                )?,
            }
            writeln!(sink)?;
        }
        if summary.threads_left_out > 0 {
            writeln!(
                sink,
                "------ {} more threads left out: the slot table holds {} (raise Options::max_threads) ------\n",
                summary.threads_left_out,
                engine.slots.capacity()
            )?;
        }
        write_banner(&mut sink, "Modules")?;
        write_modules(&mut sink, modules)?;
        write_banner(&mut sink, "Report")?;
        write_round_figures(&mut sink, &summary, engine.slots.capacity(), |f| {
            engine.triggers.for_each_recent(f)
        })?;
        write_end_line(&mut sink, &summary)
    })();
    sink.flush();
    match sink.error() {
        Some(e) => {
            let dropped = sink.bytes_dropped() as u64;
            DROPS.record(dropped, e, summary.sequence);
            write_cut_note(fd, summary.sequence, dropped, e);
            Err(e)
        }
        None => {
            DROPS.acknowledge(&summary.output_dropped);
            Ok(sink.bytes_written())
        }
    }
}
