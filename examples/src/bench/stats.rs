//! Summary statistics for the benchmark: median and spread of a few runs,
//! percentiles of pooled samples, and human-readable durations.

/// Median and spread of a set of samples (nanoseconds or any unit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p99: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        Some(Stats {
            n: v.len(),
            median: quantile_sorted(&v, 0.5),
            min: v[0],
            max: v[v.len() - 1],
            p99: quantile_sorted(&v, 0.99),
        })
    }
}

/// Nearest-rank quantile of sorted samples (median interpolated for even n).
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    if q == 0.5 && v.len().is_multiple_of(2) {
        return (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0;
    }
    let rank = ((v.len() as f64) * q).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// "1.23 ms", "456 µs", "2.1 s" for a duration in nanoseconds.
pub fn dur(ns: f64) -> String {
    if !ns.is_finite() {
        return "–".into();
    }
    if ns < 0.0 {
        return format!("−{}", dur(-ns));
    }
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// "median (min–max, n=5)".
pub fn spread(s: &Option<Stats>) -> String {
    match s {
        Some(s) if s.n > 1 => format!(
            "{} ({}–{}, n={})",
            dur(s.median),
            dur(s.min),
            dur(s.max),
            s.n
        ),
        Some(s) => format!("{} (n=1)", dur(s.median)),
        None => "–".into(),
    }
}

/// "1.5 MiB", "48.0 KiB", "512 B".
pub fn bytes(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else if b.abs() >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// "123×" for peer / ours, or "–".
pub fn ratio(peer: &Option<Stats>, ours: &Option<Stats>) -> String {
    match (peer, ours) {
        (Some(p), Some(o)) if o.median > 0.0 => format!("{:.0}×", p.median / o.median),
        _ => "–".into(),
    }
}
