//! An axum-shaped server for the task-dump storm
//! (`tests/tests/tokio_taskdump_storm.rs`): an accept loop on 127.0.0.1 that
//! spawns one task per connection serving HTTP/1 with hyper (what
//! `axum::serve` does), ticking tasks, and a client thread sending
//! keep-alive requests (light traffic), all measured.
//!
//! Runtimes: "server" (`multi_thread`, `--workers N`, default 2) runs the
//! accept loop, the connections and four `storm_ticker` tasks; "single"
//! (`multi_thread`, 1 worker) runs two `storm_ticker` tasks, one
//! `storm_channel_wait` and one `storm_lock_wait` (timers, channels, locks).
//! Both are registered with guru (`TaskDumps::Auto`; `--always`: "server"
//! with `TaskDumps::Always`, which is what guru did by default before it
//! knew of tokio's dump-barrier wedge).
//!
//! Prints `ready pid=<pid> port=<port>` once everything runs. Each `stats`
//! line on stdin prints `stats max_tick_gap_ms=<n> ticks=<n>
//! max_request_ms=<n> requests=<n>`: the longest time any ticking task went
//! without a tick (each sleeps 10 ms) and the slowest request since `ready`.
//! When stdin closes (or on a `quit` line) it stops the client, shuts both runtimes down with
//! `shutdown_timeout(1 s)` and prints `shutdown <runtime>: <stopped> of
//! <started> threads ended` (counted by `on_thread_start`/`on_thread_stop`:
//! a worker stuck for good never ends), then exits 0.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The fixture's progress figures.
#[derive(Default)]
struct Progress {
    ticks: AtomicU64,
    max_tick_gap_ms: AtomicU64,
    requests: AtomicU64,
    max_request_ms: AtomicU64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Sleeps 10 ms in a loop; records the longest gap between two ticks.
async fn storm_ticker(p: Arc<Progress>) {
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = Instant::now();
        p.max_tick_gap_ms
            .fetch_max(ms(now - last), Ordering::Relaxed);
        p.ticks.fetch_add(1, Ordering::Relaxed);
        last = now;
    }
}

/// Waits on a channel that is never sent on.
async fn storm_channel_wait(mut rx: tokio::sync::mpsc::Receiver<u32>) {
    while rx.recv().await.is_some() {}
}

/// Waits on a lock held by the fixture's main thread for good.
async fn storm_lock_wait(m: Arc<tokio::sync::Mutex<()>>) {
    let _g = m.lock().await;
}

/// The request handler (axum's handler function).
async fn storm_handle(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
}

/// The accept loop: one task per connection, served by hyper.
async fn storm_accept_loop(listener: tokio::net::TcpListener) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(sock), hyper::service::service_fn(storm_handle))
                .await;
        });
    }
}

/// A runtime whose threads are counted as they start and stop.
fn runtime(workers: usize, name: &str) -> (tokio::runtime::Runtime, Arc<(AtomicU64, AtomicU64)>) {
    let count: Arc<(AtomicU64, AtomicU64)> = Arc::default();
    let (a, b) = (count.clone(), count.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .on_thread_start(move || {
            a.0.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_stop(move || {
            b.1.fetch_add(1, Ordering::SeqCst);
        })
        .enable_all()
        .build()
        .expect("runtime");
    (rt, count)
}

/// Keep-alive HTTP/1.1 requests every 20 ms; records the slowest.
fn client(port: u16, stop: Arc<AtomicBool>, p: Arc<Progress>) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        eprintln!("axum_fixture: client cannot connect");
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return;
        }
        // Status line, headers, then the 3-byte body "ok\n".
        let mut length = 0;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        p.max_request_ms
            .fetch_max(ms(t.elapsed()), Ordering::Relaxed);
        p.requests.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workers = args
        .iter()
        .position(|a| a == "--workers")
        .and_then(|i| args.get(i + 1))
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let always = args.iter().any(|a| a == "--always");

    let (server, server_threads) = runtime(workers, "server-worker");
    let (single, single_threads) = runtime(1, "single-worker");
    let progress = Arc::new(Progress::default());
    for _ in 0..4 {
        server.spawn(storm_ticker(progress.clone()));
    }
    for _ in 0..2 {
        single.spawn(storm_ticker(progress.clone()));
    }
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    single.spawn(storm_channel_wait(rx));
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    let held = lock.clone().try_lock_owned().expect("fresh lock");
    single.spawn(storm_lock_wait(lock));

    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let port = std_listener.local_addr().expect("addr").port();
    let listener = {
        let _enter = server.enter();
        tokio::net::TcpListener::from_std(std_listener).expect("listener")
    };
    server.spawn(storm_accept_loop(listener));

    let dumps = if always {
        guru::tokio::TaskDumps::Always
    } else {
        guru::tokio::TaskDumps::Auto
    };
    guru::tokio::register_with("server", server.handle().clone(), dumps);
    guru::tokio::register("single", single.handle().clone());
    let _guard = guru::Builder::new(guru::package!())
        .service_name("axum-fixture")
        .install()
        .expect("install guru");

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, p) = (stop.clone(), progress.clone());
        std::thread::Builder::new()
            .name("http-client".into())
            .spawn(move || client(port, stop, p))
            .expect("spawn client")
    };
    // Ready once the first request came back and the tickers ticked; the
    // figures count from here.
    while progress.requests.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    progress.max_tick_gap_ms.store(0, Ordering::Relaxed);
    progress.max_request_ms.store(0, Ordering::Relaxed);
    println!("ready pid={} port={port}", std::process::id());

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "quit" {
            break;
        }
        if line.trim() == "stats" {
            println!(
                "stats max_tick_gap_ms={} ticks={} max_request_ms={} requests={}",
                progress.max_tick_gap_ms.load(Ordering::Relaxed),
                progress.ticks.load(Ordering::Relaxed),
                progress.max_request_ms.load(Ordering::Relaxed),
                progress.requests.load(Ordering::Relaxed),
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = client.join();
    drop(held);
    for (name, rt, threads) in [
        ("server", server, server_threads),
        ("single", single, single_threads),
    ] {
        rt.shutdown_timeout(Duration::from_secs(1));
        // Threads stop shortly after the runtime lets them go: give the
        // counters a moment, not the workers (a stuck one never stops).
        let deadline = Instant::now() + Duration::from_millis(200);
        while threads.1.load(Ordering::SeqCst) < threads.0.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        println!(
            "shutdown {name}: {} of {} threads ended",
            threads.1.load(Ordering::SeqCst),
            threads.0.load(Ordering::SeqCst)
        );
    }
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}
