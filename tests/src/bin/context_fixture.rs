//! Fixture for the thread-context tests (`tests/tests/thread_context.rs`):
//! labels, breadcrumbs and tracing spans (plain threads and a tokio runtime
//! with `#[instrument]`ed async functions), under the strict allocation guard
//! (any heap use in a capture handler aborts the process).
//!
//! Modes (first argument):
//! - `basic`: threads with labels (nested, shadowed, one dropped, one too
//!   long, secrets), breadcrumbs (overflowing the ring, too long, secrets),
//!   spans on a plain thread and on tokio workers blocked inside their
//!   span; prints `thread <name> <tid>` lines and `ready pid=<pid>`, then
//!   obeys `drop` (the labels thread drops its outer labels and says
//!   `dropped`) and `allocs` (counts allocations of 10 000 label set+drop,
//!   breadcrumbs and span enter+exit after first use: `allocs label=N
//!   breadcrumb=N span=N`) until stdin closes. `--json` for JSON reports.
//!   A thread `awkward` holds text the report must quote (a key with a
//!   space, empty values, a span name with a space, field values with
//!   `}` and spaces, breadcrumbs with `|`, padding, quotes, a tab).
//! - `core`: guru-core alone (its handler writes the report on SIGUSR2);
//!   a thread `ctx-core` with labels, two spans and 19 breadcrumbs set
//!   through `guru_core::context::ThreadContext`.
//! - `storm`: one thread rewrites its label in a tight loop while the main
//!   thread takes 1 000 reports (`guru::report()`); every `value="…"` shown
//!   must be one of the values written, whole. Prints `storm reports=N
//!   shown=N being_updated=N bad=N` (and the first bad line).
//! - `threads`: 1 000 threads with a label `me=<own tid>`, one report:
//!   prints `threads labelled=N wrong=N`; then threads that set their label
//!   and exit at once, in churn, during 50 reports: `churn reports=N
//!   shown=N wrong=N` (a label under another thread's header is wrong).
//!
//! Every secret it holds contains `S3CRET`.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use guru_tests::alloc_guard::{self, GuardedAlloc};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[global_allocator]
static GLOBAL: GuardedAlloc = GuardedAlloc;

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    #[allow(unsafe_code)]
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    tid as i32
}

fn install(json: bool, threads: usize) -> guru::Guard {
    let mut options = guru_core::Options::default().with_capacity(threads, 64);
    options.context = options.context.with_records(threads);
    let guard = guru::Builder::new(guru::package!())
        .service_name("context-fixture")
        .format(if json {
            guru::Format::Json
        } else {
            guru::Format::Text
        })
        .core_options(options)
        .min_interval(Duration::ZERO)
        .install()
        .unwrap_or_else(|e| {
            eprintln!("context_fixture: install failed: {e}");
            std::process::exit(2)
        });
    let engine = guru_core::engine().expect("installed");
    alloc_guard::wrap_installed_handler(libc::SIGUSR2);
    alloc_guard::wrap_installed_handler(engine.capture_signal());
    guard
}

fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

#[tracing::instrument]
async fn handle_connection(conn: u32, password: &str) {
    let _ = password;
    query(conn).await;
}

#[tracing::instrument]
async fn query(conn: u32) {
    // Blocks its worker inside both spans: a report finds the worker there.
    std::thread::sleep(Duration::from_secs(3600));
}

fn basic(json: bool) {
    let _guard = install(json, 256);
    tracing_subscriber::registry()
        .with(guru::tracing::layer())
        .init();
    let (tx, rx) = std::sync::mpsc::channel::<(String, i32)>();
    let (drop_tx, drop_rx) = std::sync::mpsc::channel::<()>();
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();

    let t = tx.clone();
    std::thread::Builder::new()
        .name("labels".into())
        .spawn(move || {
            let outer = guru::label("request", "GET /users/42");
            let gone = guru::label("gone", "set and dropped before the report");
            drop(gone);
            let _tenant = guru::label("tenant", "acme");
            let inner = guru::label("request", format_args!("{} (retry {})", "GET /users/42", 2));
            let _long = guru::label("long", "x".repeat(200));
            let _quote = guru::label("quoted", "say \"hi\"\nnext");
            let _secret = guru::label("api_token", "S3CRET-label-token");
            let _dsn = guru::label("dsn", "postgres://app:S3CRET-label-dsn@db/x");
            t.send(("labels".into(), gettid())).unwrap();
            drop_rx.recv().unwrap();
            drop(inner);
            drop(outer);
            dropped_tx.send(()).unwrap();
            park_forever();
        })
        .unwrap();

    let t = tx.clone();
    std::thread::Builder::new()
        .name("crumbs".into())
        .spawn(move || {
            for i in 0..20 {
                guru::breadcrumb(format_args!("step {i}"));
            }
            t.send(("crumbs".into(), gettid())).unwrap();
            park_forever();
        })
        .unwrap();

    let t = tx.clone();
    std::thread::Builder::new()
        .name("longcrumb".into())
        .spawn(move || {
            guru::breadcrumb("y".repeat(300));
            guru::breadcrumb("sent Authorization: Bearer S3CRETabc123XYZtoken");
            guru::breadcrumb("connected to redis://:S3CRET-crumb@cache:6379");
            t.send(("longcrumb".into(), gettid())).unwrap();
            park_forever();
        })
        .unwrap();

    let t = tx.clone();
    std::thread::Builder::new()
        .name("spans".into())
        .spawn(move || {
            let outer = tracing::info_span!("http_request", method = "GET", path = "/users/42");
            let _o = outer.enter();
            let done = tracing::info_span!("finished_already");
            drop(done.enter());
            let inner = tracing::info_span!("db_query", table = "users", password = "S3CRET-span");
            let _i = inner.enter();
            t.send(("spans".into(), gettid())).unwrap();
            park_forever();
        })
        .unwrap();

    let t = tx.clone();
    std::thread::Builder::new()
        .name("awkward".into())
        .spawn(move || {
            // Text the report must quote to read back whole
            // (tests/tests/report_model_context.rs).
            let _k = guru::label("two words", "v");
            let _e = guru::label("empty", "");
            let span =
                tracing::info_span!("awkward span", list = ?vec![1, 2], note = "a}b", empty = "");
            let _s = span.enter();
            for crumb in [
                "a | b",
                "",
                " padded ",
                "pipe|end",
                "\"quoted\" start",
                "tab\there",
            ] {
                guru::breadcrumb(crumb);
            }
            t.send(("awkward".into(), gettid())).unwrap();
            park_forever();
        })
        .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ctx-worker")
        .build()
        .unwrap();
    let (conn_tx, conn_rx) = std::sync::mpsc::channel::<i32>();
    for conn in [7u32, 8] {
        let conn_tx = conn_tx.clone();
        rt.spawn(async move {
            conn_tx.send(gettid()).unwrap();
            handle_connection(conn, "S3CRET-arg").await;
        });
    }
    for _ in 0..2 {
        let tid = conn_rx.recv().unwrap();
        println!("worker {tid}");
    }
    drop(tx);
    for (name, tid) in rx.iter().take(5) {
        println!("thread {name} {tid}");
    }
    // The workers enter their spans right after announcing themselves;
    // wait until both are sleeping inside them.
    std::thread::sleep(Duration::from_millis(200));
    println!("ready pid={}", std::process::id());

    for line in std::io::stdin().lock().lines() {
        match line.unwrap_or_default().trim() {
            "drop" => {
                drop_tx.send(()).unwrap();
                dropped_rx.recv().unwrap();
                println!("dropped");
            }
            "allocs" => count_allocations(),
            _ => {}
        }
    }
    std::process::exit(0);
}

/// Allocations of the context paths after this thread's first use.
fn count_allocations() {
    let span = tracing::info_span!("counted", n = 1);
    // First use: the record, the thread-local, the span's text.
    drop(guru::label("warm", 0));
    guru::breadcrumb("warm");
    drop(span.enter());
    let count = |f: &dyn Fn()| {
        let before = alloc_guard::thread_allocations();
        for _ in 0..10_000 {
            f();
        }
        alloc_guard::thread_allocations() - before
    };
    let label = count(&|| drop(guru::label("request", format_args!("GET /{}", 42))));
    let crumb = count(&|| guru::breadcrumb(format_args!("step {}", 7)));
    let spans = count(&|| drop(span.enter()));
    println!("allocs label={label} breadcrumb={crumb} span={spans}");
}

const STORM_VALUES: [&str; 4] = [
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
    "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC",
    "D",
];

fn storm() {
    let _guard = install(false, 64);
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let writer = std::thread::Builder::new()
        .name("rewriter".into())
        .spawn(move || {
            let mut i = 0usize;
            while !s.load(Ordering::Relaxed) {
                let _l = guru::label("value", STORM_VALUES[i % STORM_VALUES.len()]);
                guru::breadcrumb(STORM_VALUES[(i + 1) % STORM_VALUES.len()]);
                i = i.wrapping_add(1);
            }
        })
        .unwrap();
    let (mut shown, mut being_updated, mut bad, mut first_bad) = (0, 0, 0, String::new());
    let reports = 1000;
    for _ in 0..reports {
        let text = guru::report();
        let Some(block) = text
            .split("------ Thread ")
            .find(|b| b.contains("\"rewriter\""))
        else {
            continue;
        };
        for line in block.lines() {
            let line = line.trim();
            if line.starts_with("context: being updated") {
                being_updated += 1;
            }
            if let Some(rest) = line.strip_prefix("labels: value=") {
                shown += 1;
                let value = rest.trim_matches('"');
                if !STORM_VALUES.contains(&value) {
                    bad += 1;
                    if first_bad.is_empty() {
                        first_bad = line.to_string();
                    }
                }
            }
            if let Some(rest) = line.strip_prefix("breadcrumbs (oldest first") {
                let crumbs = rest.split_once("): ").map_or("", |(_, c)| c);
                for c in crumbs.split(" | ") {
                    let text = c.splitn(3, ' ').nth(2).unwrap_or("");
                    if !STORM_VALUES.contains(&text) {
                        bad += 1;
                        if first_bad.is_empty() {
                            first_bad = line.to_string();
                        }
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    println!("storm reports={reports} shown={shown} being_updated={being_updated} bad={bad}");
    if !first_bad.is_empty() {
        println!("first bad: {first_bad}");
    }
    std::process::exit(0);
}

/// (tid in the header, `me` label) for every labelled thread of a report.
fn labelled(text: &str) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for block in text.split("------ Thread ").skip(1) {
        let tid: i32 = block
            .split(' ')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        for line in block.lines() {
            if let Some(rest) = line.trim().strip_prefix("labels: me=") {
                out.push((tid, rest.trim_matches('"').parse().unwrap_or(-1)));
            }
        }
    }
    out
}

fn threads() {
    let _guard = install(false, 1100);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..1000 {
        let tx = tx.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let _me = guru::label("me", gettid());
                tx.send(()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .unwrap();
    }
    for _ in 0..1000 {
        rx.recv().unwrap();
    }
    let found = labelled(&guru::report());
    let wrong = found.iter().filter(|(tid, me)| tid != me).count();
    println!("threads labelled={} wrong={wrong}", found.len());
    stop.store(true, Ordering::Relaxed);

    // Churn: threads that label themselves and exit at once, while reports
    // read their records.
    let churning = Arc::new(AtomicBool::new(true));
    let c = churning.clone();
    let spawner = std::thread::spawn(move || {
        while c.load(Ordering::Relaxed) {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(|| {
                            let _me = guru::label("me", gettid());
                            guru::breadcrumb("about to exit");
                            // Long enough to be listed by some rounds,
                            // short enough to exit during others.
                            std::thread::sleep(Duration::from_micros(300));
                        })
                        .unwrap()
                })
                .collect();
            for h in handles {
                let _ = h.join();
            }
        }
    });
    let (mut shown, mut wrong) = (0, 0);
    let reports = 50;
    for _ in 0..reports {
        let found = labelled(&guru::report());
        shown += found.len();
        wrong += found.iter().filter(|(tid, me)| tid != me).count();
    }
    churning.store(false, Ordering::Relaxed);
    spawner.join().unwrap();
    println!("churn reports={reports} shown={shown} wrong={wrong}");
    std::process::exit(0);
}

/// guru-core alone (SIGUSR2 → the core's report on stderr, from its
/// handler), one thread with context set through the core's API.
fn core_only() {
    use guru_core::context::{FIELD_SEPARATOR as F, VALUE_SEPARATOR as V};
    let engine = guru_core::install(guru_core::Options::default()).unwrap_or_else(|e| {
        eprintln!("context_fixture: install failed: {e}");
        std::process::exit(2)
    });
    // The trigger handler renders the report itself: both handlers run
    // under the allocation guard.
    alloc_guard::wrap_installed_handler(libc::SIGUSR2);
    alloc_guard::wrap_installed_handler(engine.capture_signal());
    let (tx, rx) = std::sync::mpsc::channel::<i32>();
    std::thread::Builder::new()
        .name("ctx-core".into())
        .spawn(move || {
            let ctx = guru_core::context::ThreadContext::current().expect("a context record");
            let _job = ctx.set_label("job", format_args!("{}", 42));
            let _q = ctx.set_label("quoted key", "say \"hi\"");
            ctx.enter_span(1, &format!("fetch{F}table{V}users{F}filter{V}age > 3"));
            ctx.enter_span(2, "decode");
            for i in 0..18 {
                ctx.breadcrumb(format_args!("row {i}"));
            }
            ctx.breadcrumb("a | b");
            tx.send(gettid()).unwrap();
            park_forever();
        })
        .unwrap();
    let tid = rx.recv().unwrap();
    println!("thread ctx-core {tid}");
    println!("ready pid={}", std::process::id());
    for _ in std::io::stdin().lock().lines() {}
    std::process::exit(0);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("basic") => basic(args.iter().any(|a| a == "--json")),
        Some("core") => core_only(),
        Some("storm") => storm(),
        Some("threads") => threads(),
        _ => {
            eprintln!("usage: context_fixture basic [--json] | core | storm | threads");
            std::process::exit(2);
        }
    }
}
