//! Thread-context costs, per call, in nanoseconds (issue 13; BENCHMARKS.md,
//! "Thread context"): `guru::label` set + drop, `guru::breadcrumb`, and a
//! span entered and left through `guru::tracing::layer()` against the same
//! through a registry without it (the layer's overhead is the difference).
//! Each figure is the median of 15 runs of 200 000 calls, after warm-up,
//! timed in thread-CPU time (`CLOCK_THREAD_CPUTIME_ID`), so that time the
//! thread spends descheduled on a busy machine is not counted; the load
//! average is printed with the figures.
//!
//! `cargo run --release -p guru-examples --bin bench_context [-- --write]`:
//! `--write` puts the figures into BENCHMARKS.md's "Thread context" section
//! (which `bench` keeps when it rewrites the file).

use std::hint::black_box;

use tracing_subscriber::layer::SubscriberExt;

const CALLS: u32 = 200_000;
const RUNS: usize = 15;

fn per_call(mut f: impl FnMut()) -> f64 {
    for _ in 0..CALLS / 10 {
        f();
    }
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = thread_cpu_ns();
            for _ in 0..CALLS {
                f();
            }
            (thread_cpu_ns() - t) as f64 / f64::from(CALLS)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock always exists on Linux.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts)
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn span_enter_exit() -> f64 {
    let span = tracing::info_span!("http_request", method = "GET", path = "/users/42");
    per_call(|| drop(black_box(span.enter())))
}

fn main() {
    // Installed for the whole run (the process exits at the end).
    guru::Builder::new(guru::package!())
        .install()
        .expect("install guru")
        .keep();
    let n = black_box(42u32);
    let label = per_call(|| drop(black_box(guru::label("request", n))));
    let label_str = per_call(|| drop(black_box(guru::label("request", "GET /users/42"))));
    let crumb = per_call(|| guru::breadcrumb(black_box("parsed headers")));
    let crumb_fmt = per_call(|| guru::breadcrumb(format_args!("accepted conn {n}")));
    let without =
        tracing::subscriber::with_default(tracing_subscriber::registry(), span_enter_exit);
    let with = tracing::subscriber::with_default(
        tracing_subscriber::registry().with(guru::tracing::layer()),
        span_enter_exit,
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "thread context, thread-CPU ns per call (median of {RUNS} runs of {CALLS}; load average {}):",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("  label set+drop (u32 value):        {label:6.1}");
    println!("  label set+drop (&str value):       {label_str:6.1}");
    println!("  breadcrumb (&str):                 {crumb:6.1}");
    println!("  breadcrumb (format_args!):         {crumb_fmt:6.1}");
    println!("  span enter+exit, registry only:    {without:6.1}");
    println!("  span enter+exit, with guru layer:  {with:6.1}");
    println!(
        "  layer overhead per enter+exit:     {:6.1}",
        with - without
    );
    if std::env::args().any(|a| a == "--write") {
        let rows = [
            ("`guru::label` set + drop (u32 value)", label, "≤ 50"),
            ("`guru::label` set + drop (&str value)", label_str, "≤ 50"),
            ("`guru::breadcrumb` (&str)", crumb, "≤ 100"),
            ("`guru::breadcrumb` (`format_args!`)", crumb_fmt, "≤ 100"),
            ("span enter + exit, registry only", without, ""),
            (
                "span enter + exit, registry + `guru::tracing::layer()`",
                with,
                "",
            ),
            (
                "the layer's overhead per enter + exit",
                with - without,
                "≤ 150",
            ),
        ];
        let mut section = format!(
            "## Thread context\n\nWritten by `cargo run --release -p guru-examples --bin bench_context -- --write` \
             ({}, load average {}): thread-CPU nanoseconds per call, median of {RUNS} runs of {CALLS} calls \
             after warm-up. No allocation on these paths after a thread's first use \
             (`tests/tests/thread_context.rs::no_allocation_on_the_write_paths_after_first_use`).\n\n\
             | call | ns | target |\n|---|---:|---|\n",
            utc_now(),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
        for (what, ns, target) in rows {
            section.push_str(&format!("| {what} | {ns:.1} | {target} |\n"));
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md");
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let text = match old.find("\n## Thread context") {
            Some(start) => {
                let rest = &old[start + 1..];
                let end = rest[1..].find("\n## ").map_or(rest.len(), |e| e + 2);
                format!("{}{}{}", &old[..start + 1], section, &rest[end..])
            }
            None => format!("{}\n\n{section}", old.trim_end()),
        };
        match std::fs::write(path, text) {
            Ok(()) => eprintln!("bench_context: wrote {path}"),
            Err(e) => eprintln!("bench_context: cannot write {path}: {e}"),
        }
    }
}

/// `yyyy-mm-dd HH:MM UTC` now.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
