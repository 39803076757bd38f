//! Fixture of the `guru` CLI's process tests (`cli/tests/*.rs`; it lives
//! here, with the other fixtures, because an example built by
//! `cargo test --all-targets` is a test harness, not this program): installs
//! guru (text output on stderr, no self-triggered report), starts
//! `--threads N` threads parked in `dump_fixture_parked`, prints
//! `ready pid=<pid>`, then obeys stdin: `spawn` (one more parked thread,
//! prints `spawned <tid>`), `stop` (the last parked thread ends, prints
//! `stopped <tid>`), `exit` (exits through `exit(3)`). EOF on stdin exits too.
//!
//! Flags: `--threads N` (default 4), `--no-socket` (`Builder::dump_socket(false)`),
//! `--min-interval-ms N` (default 1000), `--json` (reports on stderr in JSON).

use std::io::BufRead as _;
use std::sync::mpsc;
use std::time::Duration;

#[inline(never)]
fn dump_fixture_parked(rx: &mpsc::Receiver<()>) {
    // Parked in a futex until told to stop.
    let _ = std::hint::black_box(rx.recv());
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    #[allow(unsafe_code)]
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    tid as i32
}

fn park() -> (mpsc::Sender<()>, i32) {
    let (tx, rx) = mpsc::channel();
    let (tid_tx, tid_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("parked".into())
        .spawn(move || {
            let _ = tid_tx.send(gettid());
            dump_fixture_parked(&rx);
        })
        .expect("spawn");
    (tx, tid_rx.recv().expect("tid"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let threads = value("--threads").unwrap_or(4) as usize;
    let mut b = guru::Builder::new(guru::package!())
        .service_name("dump-fixture")
        .dump_socket(!flag("--no-socket"))
        .min_interval(Duration::from_millis(
            value("--min-interval-ms").unwrap_or(1000),
        ));
    if flag("--json") {
        b = b.format(guru::Format::Json);
    }
    let guard = b.install().expect("install guru");
    let mut parked: Vec<(mpsc::Sender<()>, i32)> = (0..threads).map(|_| park()).collect();
    println!("ready pid={}", std::process::id());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "spawn" => {
                let p = park();
                println!("spawned {}", p.1);
                parked.push(p);
            }
            "stop" => {
                if let Some((tx, tid)) = parked.pop() {
                    let _ = tx.send(());
                    println!("stopped {tid}");
                }
            }
            "exit" => {
                guard.keep();
                std::process::exit(0);
            }
            _ => {}
        }
    }
    drop(guard);
}
