//! A lock-free latency histogram (log-linear buckets, ~1.6 % precision) that
//! many threads record into and one thread reads.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two: 2^SUB.
const SUB: u32 = 6;
const BUCKETS: usize = 64 * 60;

static COUNTS: [AtomicU64; BUCKETS] = [const { AtomicU64::new(0) }; BUCKETS];
static MAX: AtomicU64 = AtomicU64::new(0);
static SUM: AtomicU64 = AtomicU64::new(0);

fn index(v: u64) -> usize {
    if v < (1 << SUB) {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let shift = e - SUB;
    let m = (v >> shift) as usize;
    (((shift as usize) + 1) << SUB) + (m - (1 << SUB))
}

fn value(i: usize) -> u64 {
    if i < (1 << SUB) {
        return i as u64;
    }
    let shift = (i >> SUB) as u32 - 1;
    let m = (i & ((1 << SUB) - 1)) as u64 + (1 << SUB);
    (m << shift) + ((1u64 << shift) >> 1)
}

/// Records one duration in nanoseconds.
pub fn record(ns: u64) {
    if let Some(c) = COUNTS.get(index(ns)) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    MAX.fetch_max(ns, Ordering::Relaxed);
    SUM.fetch_add(ns, Ordering::Relaxed);
}

/// Forgets everything recorded so far.
pub fn reset() {
    for c in &COUNTS {
        c.store(0, Ordering::Relaxed);
    }
    MAX.store(0, Ordering::Relaxed);
    SUM.store(0, Ordering::Relaxed);
}

/// `ok count=… p50_ns=… p99_ns=… p999_ns=… max_ns=… mean_ns=…`.
pub fn summary_line() -> String {
    let counts: Vec<u64> = COUNTS.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = counts.iter().sum();
    let quantile = |q: f64| -> u64 {
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value(i);
            }
        }
        MAX.load(Ordering::Relaxed)
    };
    let max = MAX.load(Ordering::Relaxed);
    format!(
        "ok count={total} p50_ns={} p99_ns={} p999_ns={} max_ns={max} mean_ns={}",
        quantile(0.50),
        quantile(0.99),
        quantile(0.999).min(max),
        SUM.load(Ordering::Relaxed).checked_div(total).unwrap_or(0)
    )
}
