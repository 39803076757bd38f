//! Fixture for the Green Threads tests (`tests/tests/std_tokio.rs`): installs
//! guru, registers tokio runtimes whose tasks wait in named async functions,
//! prints `ready pid=<pid>` once every task waits, then runs until stdin
//! closes.
//!
//! Always: runtime "api" (`multi_thread`, 1 worker: guru dumps it by
//! default) with four tasks (`fixture_wait_for_request`,
//! `fixture_sleep_until_tick`, `fixture_wait_for_shutdown` twice), runtime
//! "side" (`current_thread`, dumps opted in) with one task
//! (`fixture_side_sleep`) and runtime "pool" (`multi_thread`, 2 workers:
//! guru does not dump it by default) with one task (`fixture_pool_sleep`).
//!
//! Flags: `--json`; `--blocked` adds runtimes that cannot take a dump:
//! "stuck" (`multi_thread`, 1 worker, blocked in a task), "wedge"
//! (`multi_thread`, 2 workers, dumps opted in, one worker blocked) and
//! "stalled" (`current_thread`, dumps opted in, its thread blocked inside
//! `block_on`).

use std::future::Future;
use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc as tmpsc};

#[inline(never)]
async fn fixture_wait_for_request(rx: &mut tmpsc::Receiver<u32>) -> Option<u32> {
    rx.recv().await
}

#[inline(never)]
async fn fixture_sleep_until_tick() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[inline(never)]
async fn fixture_wait_for_shutdown(n: &Notify) {
    n.notified().await;
}

#[inline(never)]
async fn fixture_pool_sleep() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[inline(never)]
async fn fixture_side_sleep() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// Runs `f`, sending on `started` once its first poll has returned
/// `Pending` (it then waits in its named function).
fn announced<F: Future + Send + 'static>(
    started: mpsc::Sender<()>,
    f: F,
) -> impl Future<Output = F::Output> + Send + 'static {
    let mut f = Box::pin(f);
    let mut started = Some(started);
    std::future::poll_fn(move |cx| {
        let r = f.as_mut().poll(cx);
        if r.is_pending()
            && let Some(s) = started.take()
        {
            let _ = s.send(());
        }
        r
    })
}

/// Blocks the calling worker thread until the process exits.
fn block_thread_forever(started: mpsc::Sender<()>) {
    let _ = started.send(());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn multi(workers: usize, name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_time()
        .build()
        .expect("runtime")
}

/// A current_thread runtime on its own thread, driven by `block_on(main)`.
fn current_thread<F>(thread: &str, main: F) -> tokio::runtime::Handle
where
    F: FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()>>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            tx.send(rt.handle().clone()).expect("send handle");
            rt.block_on(main());
        })
        .expect("spawn");
    rx.recv().expect("handle")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    // No rate limit: tests send triggers back to back.
    let mut builder = guru::Builder::new(guru::package!())
        .service_name("tokio-fixture")
        .min_interval(Duration::ZERO);
    if has("--json") {
        builder = builder.format(guru::Format::Json);
    }

    // Tasks report that they started; the fixture is ready once every one
    // has (each then waits at once in its named function).
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let mut expected = 0;

    let api = multi(1, "api-worker");
    builder = builder.tokio_runtime("api", api.handle().clone());
    let (_requests, mut requests_rx) = tmpsc::channel::<u32>(4);
    let shutdown = std::sync::Arc::new(Notify::new());
    {
        api.spawn(announced(started_tx.clone(), async move {
            while fixture_wait_for_request(&mut requests_rx).await.is_some() {}
        }));
        api.spawn(announced(started_tx.clone(), async {
            loop {
                fixture_sleep_until_tick().await;
            }
        }));
        for _ in 0..2 {
            let n = shutdown.clone();
            api.spawn(announced(started_tx.clone(), async move {
                fixture_wait_for_shutdown(&n).await;
            }));
        }
        expected += 4;
    }

    let s = started_tx.clone();
    let side = current_thread("side-runtime", move || {
        Box::pin(async move {
            tokio::spawn(announced(s, fixture_side_sleep()));
            std::future::pending::<()>().await;
        })
    });
    expected += 1;
    guru::tokio::register_with("side", side, guru::tokio::TaskDumps::Always);

    let pool = multi(2, "pool-worker");
    pool.spawn(announced(started_tx.clone(), fixture_pool_sleep()));
    expected += 1;
    guru::tokio::register("pool", pool.handle().clone());

    // Kept alive until the process exits.
    let mut blocked_runtimes = Vec::new();
    if has("--blocked") {
        let stuck = multi(1, "stuck-worker");
        let s = started_tx.clone();
        stuck.spawn(async move { block_thread_forever(s) });
        builder = builder.tokio_runtime("stuck", stuck.handle().clone());
        blocked_runtimes.push(stuck);

        let wedge = multi(2, "wedge-worker");
        let s = started_tx.clone();
        wedge.spawn(async move { block_thread_forever(s) });
        // Opted in, so that guru's blocked-worker probe is what declines.
        guru::tokio::register_with(
            "wedge",
            wedge.handle().clone(),
            guru::tokio::TaskDumps::Always,
        );
        blocked_runtimes.push(wedge);

        let s = started_tx.clone();
        let stalled = current_thread("stalled-rt", move || {
            Box::pin(async move { block_thread_forever(s) })
        });
        guru::tokio::register_with("stalled", stalled, guru::tokio::TaskDumps::Always);
        expected += 3;
    }
    drop(started_tx);

    let _guard = builder.install().expect("install guru");
    for _ in 0..expected {
        started_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a task did not start");
    }
    println!("ready pid={}", std::process::id());

    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    // Runtimes with blocked workers cannot shut down: leave without waiting.
    std::process::exit(0);
}
