//! Thread-context costs, per call, in nanoseconds (issue 13; BENCHMARKS.md,
//! "Thread context"): `guru::label` set + drop, `guru::breadcrumb`, and a
//! span entered and left through `guru::tracing::layer()` against the same
//! through a registry without it (the layer's overhead is the difference).
//! Each figure is the median of 15 runs of 200 000 calls, after warm-up,
//! timed in thread-CPU time (`CLOCK_THREAD_CPUTIME_ID`), so that time the
//! thread spends descheduled on a busy machine is not counted; the load
//! average is printed with the figures.
//!
//! `cargo run --release -p guru-examples --bin bench_context`

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
    let _guard = guru::Builder::new(guru::package!())
        .install()
        .expect("install guru");
    let n = black_box(42u32);
    let label = per_call(|| drop(black_box(guru::label("request", n))));
    let label_str = per_call(|| drop(black_box(guru::label("request", "GET /users/42"))));
    let crumb = per_call(|| guru::breadcrumb(black_box("parsed headers")));
    let crumb_fmt = per_call(|| guru::breadcrumb(format_args!("accepted conn {n}")));
    let without = tracing::subscriber::with_default(tracing_subscriber::registry(), span_enter_exit);
    let with = tracing::subscriber::with_default(
        tracing_subscriber::registry().with(guru::tracing::layer()),
        span_enter_exit,
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "thread context, thread-CPU ns per call (median of {RUNS} runs of {CALLS}; load average {}):",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("  label set+drop (u32 value):        {label:6.1}");
    println!("  label set+drop (&str value):       {label_str:6.1}");
    println!("  breadcrumb (&str):                 {crumb:6.1}");
    println!("  breadcrumb (format_args!):         {crumb_fmt:6.1}");
    println!("  span enter+exit, registry only:    {without:6.1}");
    println!("  span enter+exit, with guru layer:  {with:6.1}");
    println!("  layer overhead per enter+exit:     {:6.1}", with - without);
}
