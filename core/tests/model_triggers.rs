//! Model check of the recent-trigger ring (`guru_core::trigger::TriggerLog`):
//! trigger handlers on several threads record at once (a storm delivers the
//! trigger signal to every thread that does not block it) while the
//! initiator lists the recent triggers for its report.
//!
//! Every trigger listed must be one that was recorded, whole: never the time
//! of one with the sender of another. Under `RUSTFLAGS="--cfg loom"` the ring
//! has 2 entries (so writers collide on an entry with a few records) and loom
//! explores every interleaving; in an ordinary `cargo test` the same scenario
//! runs many times on real threads with the ring's normal size.
#![allow(clippy::unwrap_used)]

mod common;

use guru_core::trigger::{Trigger, TriggerLog};

#[cfg(loom)]
use loom::{sync::Arc, thread};
#[cfg(not(loom))]
use std::{sync::Arc, thread};

/// A trigger whose every field is derived from `id`.
fn trigger(id: u32) -> Trigger {
    Trigger {
        unix_ns: u64::from(id) * 1_000,
        signal: id as i32,
        code: -(id as i32),
        sender_pid: 100 + id as i32,
        sender_uid: 1000 + id,
        started_report: id & 1 == 0,
    }
}

fn whole(t: &Trigger) -> bool {
    let id = (t.unix_ns / 1_000) as u32;
    *t == trigger(id) && (1..=4).contains(&id)
}

fn listed(log: &TriggerLog) -> Vec<Trigger> {
    let mut seen = Vec::new();
    log.for_each_recent(|t| seen.push(*t));
    seen
}

fn writers_and_reader() {
    let log = Arc::new(TriggerLog::new());
    let a = log.clone();
    let ha = thread::spawn(move || a.record(&trigger(1)));
    let b = log.clone();
    let hb = thread::spawn(move || {
        b.record(&trigger(2));
        b.record(&trigger(3));
    });
    // The initiator lists the ring while the handlers record.
    for t in listed(&log) {
        assert!(whole(&t), "torn trigger while recording: {t:?}");
    }
    ha.join().unwrap();
    hb.join().unwrap();
    log.record(&trigger(4));
    for t in listed(&log) {
        assert!(whole(&t), "torn trigger at rest: {t:?}");
    }
    assert_eq!(log.total(), 4);
    // Triggers 1 and 3 did not start a report.
    assert_eq!(log.take_coalesced(), 2);
}

#[cfg(loom)]
#[test]
fn loom_writers_and_reader() {
    common::explore("writers_and_reader", writers_and_reader);
}

#[cfg(not(loom))]
#[test]
fn randomized_writers_and_reader() {
    for _ in 0..2_000 {
        writers_and_reader();
    }
}
