//! The slot table (the preallocated ring of per-thread capture records) under
//! several writers and stale rounds, checked against a simple model.
//!
//! The fuzz input is the *scheduler*: it picks which actor takes the next
//! step — the initiator (begin a round: list threads, arm slots, signal them;
//! the deadline: abandon what did not answer, read what did), one of up to six
//! capturing threads (take the next pending signal and claim; push one frame;
//! publish), or the world (a forged or stale signal arrives, a thread exits, a
//! thread appears, possibly reusing a tid, the process forks). A writer can be
//! interrupted between any two of its operations, so late writers from old
//! rounds overlap new rounds exactly as in a real process. Every real method
//! result and every slot's observable state is compared with the model after
//! every step. (Interleavings *inside* one method are loom's job: see
//! `tests/tests/model_slots.rs`.)
#![no_main]

use std::collections::VecDeque;

use guru_core::arch::SyscallState;
use guru_core::slots::{CaptureSummary, Phase, SlotTable, SlotWriter, StackEnd};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    slots: u8,
    frames: u8,
    threads: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    /// The initiator starts a round (finishing the open one first); bit `t` of
    /// `unsignalled` makes thread `t`'s signal fail (thread gone, queue full;
    /// or, with bit `t` of `still_pending`, an earlier signal still pending).
    BeginRound { unsignalled: u8, still_pending: u8 },
    /// Thread `thread` runs one step of its handler.
    Step { thread: u8 },
    /// A signal with an arbitrary value reaches a thread next.
    Forged { thread: u8, back: u8, index: u8 },
    /// A thread exits (only between handlers: a handler runs to completion).
    Exit { thread: u8 },
    /// A thread appears where a dead one was, with a fresh or a reused tid.
    Spawn { thread: u8, reuse_tid: bool },
    /// The round's deadline: abandon, tally, read.
    Deadline,
    /// fork(): in the child only the forking thread remains.
    Fork,
}

#[derive(Debug, Clone, PartialEq)]
struct ModelSlot {
    generation: u32,
    phase: Phase,
    tid: i32,
    frames: Vec<u64>,
}

struct Writing<'t> {
    writer: SlotWriter<'t>,
    index: usize,
    generation: u32,
    planned: usize,
    written: Vec<u64>,
}

struct Thread<'t> {
    tid: i32,
    alive: bool,
    pending: VecDeque<(u32, usize)>,
    writing: Option<Writing<'t>>,
}

fn frame_tag(generation: u32, tid: i32, k: usize) -> u64 {
    (u64::from(generation) << 40) | ((tid as u64 & 0xff_ffff) << 16) | k as u64
}

fn name_of(tid: i32) -> [u8; 16] {
    let mut name = [0u8; 16];
    name[..4].copy_from_slice(&tid.to_le_bytes());
    name
}

struct Sim<'t> {
    table: &'t SlotTable,
    model: Vec<ModelSlot>,
    threads: Vec<Thread<'t>>,
    generation: u32,
    round_open: bool,
    used: Vec<usize>,
    next_tid: i32,
}

impl<'t> Sim<'t> {
    fn check_all(&self) {
        for (i, m) in self.model.iter().enumerate() {
            assert_eq!(
                self.table.phase(i, m.generation),
                m.phase,
                "slot {i} phase, model {m:?}"
            );
            if m.phase != Phase::Free {
                assert_eq!(self.table.tid(i), m.tid, "slot {i} tid");
            }
            let view = self.table.read(i, m.generation);
            assert_eq!(view.is_some(), m.phase == Phase::Done, "slot {i} readable");
            if let Some(v) = view {
                assert_eq!(v.tid, m.tid);
                assert_eq!(v.frames().collect::<Vec<_>>(), m.frames, "slot {i} frames");
                assert_eq!(v.summary.name, name_of(m.tid));
                assert_eq!(v.summary.pause_ns, u64::from(m.generation));
                assert_eq!(v.summary.cpu_ns, u64::from(m.generation));
            }
            // A slot of another round never reads as published.
            assert!(self.table.read(i, m.generation.wrapping_add(1)).is_none());
        }
        for t in &self.threads {
            if t.alive {
                let writing_elsewhere = self
                    .threads
                    .iter()
                    .any(|o| o.tid == t.tid && o.writing.is_some());
                assert_eq!(self.table.is_writing(t.tid), writing_elsewhere);
            }
        }
    }

    fn begin_round(&mut self, unsignalled: u8, still_pending: u8) {
        if self.round_open {
            self.deadline();
        }
        self.generation = self.generation.wrapping_add(1);
        let g = self.generation;
        self.round_open = true;
        self.used.clear();
        let mut cursor = 0;
        for t in 0..self.threads.len() {
            if !self.threads[t].alive {
                continue;
            }
            let tid = self.threads[t].tid;
            while cursor < self.model.len() {
                let index = cursor;
                cursor += 1;
                let expected = self.model[index].phase != Phase::Writing;
                let got = self.table.arm(index, g, tid);
                assert_eq!(got, expected, "arm slot {index}: {:?}", self.model[index]);
                if got {
                    self.model[index] = ModelSlot {
                        generation: g,
                        phase: Phase::Armed,
                        tid,
                        frames: Vec::new(),
                    };
                    self.used.push(index);
                    if unsignalled & (1 << t) != 0 {
                        let why = if still_pending & (1 << t) != 0 {
                            Phase::StillPending
                        } else {
                            Phase::NotSignalled
                        };
                        self.table.mark_not_signalled(index, g, why);
                        self.model[index].phase = why;
                    } else {
                        self.threads[t].pending.push_back((g, index));
                    }
                    break;
                }
            }
        }
    }

    fn step(&mut self, t: usize) {
        let capacity = self.table.frames_per_slot();
        let thread = &mut self.threads[t];
        if !thread.alive {
            return;
        }
        if let Some(w) = thread.writing.as_mut() {
            if w.written.len() < w.planned {
                let value = frame_tag(w.generation, thread.tid, w.written.len());
                let fits = w.written.len() < capacity;
                assert_eq!(w.writer.push_frame(value), fits);
                if fits {
                    w.written.push(value);
                }
                assert_eq!(w.writer.frame_count(), w.written.len());
                return;
            }
            let Some(w) = thread.writing.take() else {
                return;
            };
            let m = &mut self.model[w.index];
            assert_eq!(
                (m.generation, m.phase, m.tid),
                (w.generation, Phase::Writing, thread.tid),
                "nobody may touch a slot being written"
            );
            w.writer.publish(CaptureSummary {
                name: name_of(thread.tid),
                end: StackEnd::Root,
                end_detail: 0,
                syscall: SyscallState::Running,
                pause_ns: u64::from(w.generation),
                cpu_ns: u64::from(w.generation),
                scanned_from: 0,
            });
            m.phase = Phase::Done;
            m.frames = w.written;
            return;
        }
        let Some((g, index)) = thread.pending.pop_front() else {
            return;
        };
        let expected = self
            .model
            .get(index)
            .is_some_and(|m| m.generation == g && m.phase == Phase::Armed && m.tid == thread.tid);
        let claimed = self.table.claim(index, g, thread.tid);
        assert_eq!(
            claimed.is_some(),
            expected,
            "claim ({g}, {index}) by {}",
            thread.tid
        );
        if let Some(writer) = claimed {
            self.model[index].phase = Phase::Writing;
            let planned = (thread.tid as usize + g as usize) % (capacity + 2);
            thread.writing = Some(Writing {
                writer,
                index,
                generation: g,
                planned,
                written: Vec::new(),
            });
        }
    }

    fn deadline(&mut self) {
        if !self.round_open {
            return;
        }
        let g = self.generation;
        for &index in &self.used {
            let m = &mut self.model[index];
            assert_eq!(m.generation, g);
            let phase = self.table.phase(index, g);
            assert_eq!(phase, m.phase);
            if phase == Phase::Armed {
                assert_eq!(self.table.abandon(index, g), Phase::Abandoned);
                m.phase = Phase::Abandoned;
            } else {
                // Abandoning anything but an armed slot changes nothing.
                assert_eq!(self.table.abandon(index, g), phase);
            }
        }
        for &index in &self.used {
            let m = &self.model[index];
            match self.table.read(index, g) {
                Some(v) => {
                    assert_eq!(m.phase, Phase::Done);
                    assert_eq!(v.frames().collect::<Vec<_>>(), m.frames);
                    assert!(v.frames().all(|f| f >> 40 == u64::from(g)), "stale frames");
                }
                None => assert_ne!(m.phase, Phase::Done),
            }
        }
        self.round_open = false;
    }
}

fuzz_target!(|input: Input| {
    let slots = usize::from(input.slots % 6) + 1;
    let frames = usize::from(input.frames % 5) + 1;
    let threads = usize::from(input.threads % 6) + 1;
    let table = SlotTable::new(slots, frames);
    let mut sim = Sim {
        table: &table,
        model: vec![
            ModelSlot {
                generation: 0,
                phase: Phase::Free,
                tid: 0,
                frames: Vec::new(),
            };
            slots
        ],
        threads: (0..threads)
            .map(|t| Thread {
                tid: 100 + t as i32,
                alive: true,
                pending: VecDeque::new(),
                writing: None,
            })
            .collect(),
        generation: 0,
        round_open: false,
        used: Vec::new(),
        next_tid: 100 + threads as i32,
    };
    for op in input.ops.iter().take(256) {
        match *op {
            Op::BeginRound {
                unsignalled,
                still_pending,
            } => sim.begin_round(unsignalled, still_pending),
            Op::Step { thread } => sim.step(usize::from(thread) % threads),
            Op::Forged {
                thread,
                back,
                index,
            } => {
                let t = &mut sim.threads[usize::from(thread) % threads];
                if t.alive {
                    let g = sim.generation.wrapping_sub(u32::from(back % 4));
                    let index = usize::from(index % 8);
                    t.pending.push_front((g, index));
                }
            }
            Op::Exit { thread } => {
                let t = &mut sim.threads[usize::from(thread) % threads];
                if t.writing.is_none() {
                    t.alive = false;
                    t.pending.clear();
                }
            }
            Op::Spawn { thread, reuse_tid } => {
                let next = sim.next_tid;
                let t = &mut sim.threads[usize::from(thread) % threads];
                if !t.alive {
                    t.alive = true;
                    if !reuse_tid {
                        t.tid = next;
                        sim.next_tid += 1;
                    }
                }
            }
            Op::Deadline => sim.deadline(),
            Op::Fork => {
                // Writers in other threads vanish with their threads: drop them
                // unpublished, as a forked child never sees them finish.
                for t in &mut sim.threads {
                    t.writing = None;
                    t.pending.clear();
                    t.alive = false;
                }
                table.reset_all();
                for m in &mut sim.model {
                    *m = ModelSlot {
                        generation: 0,
                        phase: Phase::Free,
                        tid: 0,
                        frames: Vec::new(),
                    };
                }
                sim.threads[0].alive = true;
                sim.threads[0].tid = sim.next_tid;
                sim.next_tid += 1;
                sim.round_open = false;
                sim.used.clear();
            }
        }
        sim.check_all();
    }
    sim.deadline();
    sim.check_all();
});
