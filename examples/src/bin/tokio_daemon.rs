//! A tokio daemon with guru installed and two runtimes registered: a
//! `multi_thread` runtime "api" (one worker) whose tasks wait in distinct, named async
//! functions (a request queue, a timer, a shutdown notification, a
//! semaphore, a lock), and a `current_thread` runtime "background" on its
//! own thread. It shows one report by itself shortly after it starts, then
//! waits for yours:
//!
//! ```text
//! cargo run --release -p guru-examples --bin tokio_daemon
//! kill -USR2 <pid>
//! ```
//!
//! The "Green Threads" section shows each runtime's metrics. For each
//! task's trace (the chain of async functions it waits in), build with
//! tokio's unstable API — guru's `taskdump` feature is on in this package:
//!
//! ```text
//! RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/tokio-unstable \
//!     cargo run --release -p guru-examples --bin tokio_daemon
//! ```
//!
//! Options: `--report-after-ms N` (the self-triggered report, default 500;
//! 0 = none), `--exit-after-ms N` (exit after N ms; default: run until
//! killed).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify, Semaphore, mpsc};

/// A request the API would serve.
#[derive(Debug)]
struct Request(u64);

#[inline(never)]
async fn wait_for_request(rx: &mut mpsc::Receiver<Request>) -> Option<Request> {
    rx.recv().await
}

async fn serve_requests(mut rx: mpsc::Receiver<Request>) {
    while let Some(req) = wait_for_request(&mut rx).await {
        println!("tokio_daemon: served request {}", req.0);
    }
}

#[inline(never)]
async fn sleep_until_next_tick(period: Duration) {
    tokio::time::sleep(period).await;
}

async fn publish_metrics() {
    loop {
        sleep_until_next_tick(Duration::from_secs(3600)).await;
    }
}

#[inline(never)]
async fn wait_for_shutdown_signal(shutdown: &Notify) {
    shutdown.notified().await;
}

async fn watch_shutdown(shutdown: Arc<Notify>) {
    wait_for_shutdown_signal(&shutdown).await;
    println!("tokio_daemon: shutting down");
}

#[inline(never)]
async fn acquire_worker_slot(slots: &Semaphore) {
    // The pool has no free slot: every job waits here.
    if let Ok(permit) = slots.acquire().await {
        permit.forget();
    }
}

async fn run_job(id: u32, slots: Arc<Semaphore>) {
    acquire_worker_slot(&slots).await;
    println!("tokio_daemon: job {id} runs");
}

#[inline(never)]
async fn sleep_while_holding_lock(period: Duration) {
    tokio::time::sleep(period).await;
}

async fn hold_config_lock(config: Arc<Mutex<String>>) {
    let _guard = config.lock().await;
    sleep_while_holding_lock(Duration::from_secs(3600)).await;
}

#[inline(never)]
async fn wait_for_config_lock(config: &Mutex<String>) -> usize {
    config.lock().await.len()
}

async fn reload_config(config: Arc<Mutex<String>>) {
    let len = wait_for_config_lock(&config).await;
    println!("tokio_daemon: reloaded {len} bytes of configuration");
}

#[inline(never)]
async fn sleep_until_flush(period: Duration) {
    tokio::time::sleep(period).await;
}

async fn flush_logs_periodically() {
    loop {
        sleep_until_flush(Duration::from_secs(3600)).await;
    }
}

#[inline(never)]
async fn wait_for_compaction_request(rx: &mut mpsc::Receiver<u32>) -> Option<u32> {
    rx.recv().await
}

async fn compact_store(mut rx: mpsc::Receiver<u32>) {
    while let Some(level) = wait_for_compaction_request(&mut rx).await {
        println!("tokio_daemon: compacting level {level}");
    }
}

/// Thread context on tokio: an `#[instrument]`ed task whose blocking part
/// runs on the blocking pool inside the task's span, with a label and a
/// breadcrumb per batch — the pool thread's report block shows
/// `spans: export_table{table=users}`, `labels: export="users.csv"` and
/// its recent batches.
#[tracing::instrument(skip_all, fields(table = "users"))]
async fn export_table(batch_period: Duration) {
    let span = tracing::Span::current();
    let _ = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let _export = guru::label("export", "users.csv");
        for batch in 0u64.. {
            guru::breadcrumb(format_args!("wrote batch {batch}"));
            std::thread::sleep(batch_period);
        }
    })
    .await;
}

fn arg_ms(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("tokio_daemon: {what}: {e}");
    std::process::exit(1);
}

fn main() {
    let pid = std::process::id();
    // One worker: guru dumps a 1-worker multi_thread runtime by default;
    // with two or more, tokio's dump can keep a worker forever, so guru
    // shows their metrics only (see guru::tokio, "What is safe on which
    // tokio version").
    let api = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("api-worker")
        .enable_time()
        .build()
        .unwrap_or_else(|e| fail("cannot build the api runtime", e));

    let _guard = guru::Builder::new(guru::package!())
        .service_name("tokio-daemon")
        .tokio_runtime("api", api.handle().clone())
        .install()
        .unwrap_or_else(|e| fail("cannot install guru", e));
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(guru::tracing::layer())
            .init();
    }

    let (_requests, requests_rx) = mpsc::channel::<Request>(64);
    let shutdown = Arc::new(Notify::new());
    let slots = Arc::new(Semaphore::new(0));
    let config = Arc::new(Mutex::new(String::from("listen = \"[::]:8080\"")));
    api.spawn(serve_requests(requests_rx));
    api.spawn(export_table(Duration::from_millis(500)));
    api.spawn(publish_metrics());
    api.spawn(watch_shutdown(shutdown.clone()));
    for id in 0..3 {
        api.spawn(run_job(id, slots.clone()));
    }
    api.spawn(hold_config_lock(config.clone()));
    api.spawn(reload_config(config));

    // A current_thread runtime on a thread of its own. Its futures only wait
    // on tokio's own leaf futures (they never wake a waker while polled), so
    // its task dumps are safe to take: opt in (see guru::tokio::TaskDumps).
    let (_compaction, compaction_rx) = mpsc::channel::<u32>(8);
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("background".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap_or_else(|e| fail("cannot build the background runtime", e));
            let _ = handle_tx.send(rt.handle().clone());
            rt.block_on(async move {
                tokio::spawn(flush_logs_periodically());
                compact_store(compaction_rx).await;
            });
        });
    if let Err(e) = spawned {
        fail("cannot start the background thread", e);
    }
    match handle_rx.recv() {
        Ok(handle) => {
            guru::tokio::register_with("background", handle, guru::tokio::TaskDumps::Always)
        }
        Err(e) => fail("the background runtime did not start", e),
    }

    println!("tokio_daemon: pid {pid}: runtimes \"api\" and \"background\" registered with guru");
    println!("tokio_daemon: for a report run   kill -USR2 {pid}");

    let report_after = arg_ms("--report-after-ms", 500);
    if report_after > 0 {
        std::thread::sleep(Duration::from_millis(report_after));
        println!("tokio_daemon: sending itself SIGUSR2 for a first report");
        // SAFETY: sending a signal to our own process.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(libc::getpid(), libc::SIGUSR2)
        };
    }
    match std::env::args()
        .position(|a| a == "--exit-after-ms")
        .map(|_| arg_ms("--exit-after-ms", 0))
    {
        Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    shutdown.notify_waiters();
}
