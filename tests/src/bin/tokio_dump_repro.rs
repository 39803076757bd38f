//! The tokio task-dump wedge with tokio alone (no guru): the minimal program
//! of `docs/tokio-taskdump-wedge.md`.
//!
//! A `multi_thread` runtime with 2 workers runs an accept loop on 127.0.0.1
//! (a client thread connects and exchanges a line every 20 ms) and four
//! ticking tasks; every `--interval-ms` (default 1000) the main thread calls
//! `Handle::dump()` — awaited to the end, or with `--timeout-ms N` under
//! `tokio::time::timeout` (dropped when it runs out) — `--dumps` times
//! (default 20). After each dump it prints the dump's time and the longest
//! gap between two ticks of any task since the previous line; at the end it
//! shuts the runtime down with `shutdown_timeout(1 s)` and says whether the
//! workers ended (`--hold`: when they did not, it waits 60 s before
//! exiting, for `gdb -batch -p PID -ex 'thread apply all bt'`).
//!
//! Build with `RUSTFLAGS="--cfg tokio_unstable"` (without it, it says so
//! and exits 2).

#[cfg(tokio_unstable)]
mod repro {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    /// Milliseconds since `start`, as a u64.
    fn ms_since(start: Instant) -> u64 {
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// One ticking task: sleeps 10 ms in a loop and records the longest gap
    /// between two of its ticks in `max_gap_ms`.
    async fn ticker(start: Instant, max_gap_ms: Arc<AtomicU64>) {
        let mut last = ms_since(start);
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = ms_since(start);
            max_gap_ms.fetch_max(now.saturating_sub(last), Ordering::Relaxed);
            last = now;
        }
    }

    /// The accept loop: echoes each line back on each connection.
    async fn accept_loop(listener: tokio::net::TcpListener) {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = tokio::io::BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    }

    fn arg(name: &str) -> Option<u64> {
        let args: Vec<String> = std::env::args().collect();
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1)?.parse().ok()
    }

    pub fn run() {
        let dumps = arg("--dumps").unwrap_or(20);
        let interval = Duration::from_millis(arg("--interval-ms").unwrap_or(1000));
        let timeout = arg("--timeout-ms").map(Duration::from_millis);
        let start = Instant::now();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("repro-worker")
            .enable_all()
            .build()
            .expect("runtime");
        let max_gap = Arc::new(AtomicU64::new(0));
        for _ in 0..4 {
            rt.spawn(ticker(start, max_gap.clone()));
        }
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let listener = {
            let _enter = rt.enter();
            tokio::net::TcpListener::from_std(std_listener).expect("listener")
        };
        rt.spawn(accept_loop(listener));
        let stop = Arc::new(AtomicBool::new(false));
        let client = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                    return;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut line = String::new();
                while !stop.load(Ordering::Relaxed) {
                    if s.write_all(b"ping\n").is_err() {
                        return;
                    }
                    line.clear();
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        println!(
            "tokio_dump_repro pid={} dumps={dumps} interval={} ms timeout={}",
            std::process::id(),
            interval.as_millis(),
            timeout.map_or_else(|| "none".to_string(), |t| format!("{} ms", t.as_millis()))
        );
        // The dumps are awaited on a current_thread runtime of the main thread
        // (it drives the timeout's timer), as a reporter thread would.
        let requester = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("requester runtime");
        let handle = rt.handle().clone();
        for n in 1..=dumps {
            std::thread::sleep(interval);
            let t = Instant::now();
            let outcome = requester.block_on(async {
                match timeout {
                    Some(d) => match tokio::time::timeout(d, handle.dump()).await {
                        Ok(dump) => format!("{} tasks", dump.tasks().iter().count()),
                        Err(_) => "timed out (the dump future was dropped)".to_string(),
                    },
                    None => {
                        let dump = handle.dump().await;
                        format!("{} tasks", dump.tasks().iter().count())
                    }
                }
            });
            println!(
                "dump {n}: {outcome} in {} ms; longest tick gap since the last line {} ms",
                t.elapsed().as_millis(),
                max_gap.swap(0, Ordering::Relaxed)
            );
        }
        stop.store(true, Ordering::Relaxed);
        let t = Instant::now();
        // `shutdown_timeout` returns as soon as the workers ended, or after the
        // timeout with the workers left behind.
        rt.shutdown_timeout(Duration::from_secs(1));
        let _ = client.join();
        let took = t.elapsed();
        println!(
            "shutdown: {} in {} ms",
            if took < Duration::from_millis(1000) {
                "ended"
            } else {
                "did not end within 1 s (a worker is stuck)"
            },
            took.as_millis()
        );
        if took >= Duration::from_millis(1000) && std::env::args().any(|a| a == "--hold") {
            // Lets a debugger see the stuck worker (gdb -p PID).
            println!("holding 60 s (--hold)");
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

fn main() {
    #[cfg(tokio_unstable)]
    repro::run();
    #[cfg(not(tokio_unstable))]
    {
        eprintln!(
            "tokio_dump_repro: build with RUSTFLAGS=\"--cfg tokio_unstable\" (Handle::dump is tokio's unstable API)"
        );
        std::process::exit(2);
    }
}
