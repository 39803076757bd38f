//! A small daemon with guru installed: worker threads that compute, wait on
//! a queue, sleep and read a pipe; a configuration holding a `Secret`; a
//! registered section. It shows one report by itself shortly after it
//! starts, then waits for yours:
//!
//! ```text
//! cargo run --release -p guru-examples --bin demo
//! kill -USR2 <pid>              # another report on stderr
//! touch $XDG_RUNTIME_DIR/guru-demo/trigger-<pid>   # the file trigger does the same
//! ```
//!
//! The trigger file lives in a directory only its user can write:
//! `$XDG_RUNTIME_DIR/guru-demo` when that is set, else
//! `/tmp/guru-demo-<uid>`, created with mode 0700 (and refused if it exists
//! with another owner or looser permissions).
//!
//! Options: `--json` (JSON reports), `--log-dir DIR` (one file per report),
//! `--report-after-ms N` (the self-triggered report, default 300; 0 = none),
//! `--exit-after-ms N` (exit after N ms; default: run until killed).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde::Serialize;

#[derive(Serialize)]
struct Database {
    url: String,
    user: String,
    password: guru::Secret<String>,
    pool_size: u32,
}

#[derive(Serialize)]
struct Settings {
    listen: String,
    workers: usize,
    log_level: String,
    features: Vec<String>,
    api_token: guru::Secret<String>,
    database: Database,
}

/// Jobs done by the workers, shown in the "Work queue" section.
static JOBS_DONE: AtomicU64 = AtomicU64::new(0);
static JOBS_QUEUED: AtomicU64 = AtomicU64::new(0);
/// Jobs sent by the ticker that the consumer has not taken yet.
static QUEUE_DEPTH: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn mix(acc: u64, i: u64) -> u64 {
    black_box(acc.rotate_left(5) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[inline(never)]
fn checksum_block(seed: u64) -> u64 {
    let mut acc = seed;
    for i in 0..200_000u64 {
        acc = mix(acc, i);
    }
    acc
}

#[inline(never)]
fn compute_worker() {
    let mut x = 1u64;
    let _role = guru::label("role", "checksum");
    for block in 0u64.. {
        // Thread context (guru::label, guru::breadcrumb): reports show which
        // block each worker is on and what it finished last.
        let _block = guru::label("block", block);
        x = black_box(checksum_block(x));
        JOBS_DONE.fetch_add(1, Ordering::Relaxed);
        if block % 64 == 0 {
            guru::breadcrumb(format_args!("block {block} done, checksum {x:x}"));
        }
    }
}

#[inline(never)]
fn queue_consumer(rx: Receiver<u64>) {
    while let Ok(job) = rx.recv() {
        QUEUE_DEPTH.fetch_sub(1, Ordering::Relaxed);
        // A tracing span (guru::tracing::layer): reports show it as
        // `spans: consume{job=N}` while the job runs.
        let span = tracing::info_span!("consume", job);
        let _entered = span.enter();
        black_box(checksum_block(job));
        JOBS_DONE.fetch_add(1, Ordering::Relaxed);
        guru::breadcrumb(format_args!("consumed job {job}"));
    }
}

#[inline(never)]
fn ticker(tx: std::sync::mpsc::Sender<u64>) {
    let mut n = 0u64;
    loop {
        std::thread::sleep(Duration::from_secs(5));
        n += 1;
        JOBS_QUEUED.fetch_add(1, Ordering::Relaxed);
        QUEUE_DEPTH.fetch_add(1, Ordering::Relaxed);
        if tx.send(n).is_err() {
            return;
        }
        guru::breadcrumb(format_args!("queued job {n}"));
    }
}

#[inline(never)]
fn wait_for_input(fd: i32) -> isize {
    let mut buf = [0u8; 64];
    // SAFETY: reading into a valid stack buffer from a pipe we own.
    #[allow(unsafe_code)]
    unsafe {
        libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
    }
}

#[inline(never)]
fn io_reader(fd: i32) {
    // The span it waits in: every report shows `spans: read_input{fd=N}`
    // under this thread.
    let span = tracing::info_span!("read_input", fd);
    let _entered = span.enter();
    while wait_for_input(fd) > 0 {}
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn arg_ms(name: &str, default: u64) -> u64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
        eprintln!("demo: cannot start thread {name}: {e}");
        std::process::exit(1);
    }
}

/// A directory for the trigger file that no other user can write:
/// `$XDG_RUNTIME_DIR/guru-demo` or `/tmp/guru-demo-<uid>`, mode 0700, ours.
fn private_trigger_dir() -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    // SAFETY: getuid cannot fail.
    #[allow(unsafe_code)]
    let uid = unsafe { libc::getuid() };
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => std::path::PathBuf::from(runtime).join("guru-demo"),
        None => std::env::temp_dir().join(format!("guru-demo-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "{} exists but is not a directory of uid {uid} with mode 0700",
            dir.display()
        )));
    }
    Ok(dir)
}

fn main() {
    let pid = std::process::id();
    let settings = Settings {
        listen: "127.0.0.1:8080".into(),
        workers: 2,
        log_level: "info".into(),
        features: vec!["metrics".into(), "tracing".into()],
        api_token: guru::Secret::new("tok-3f9a0c7e".into()),
        database: Database {
            url: "postgres://demo:db-pass-1234@localhost:5432/demo".into(),
            user: "demo".into(),
            password: guru::Secret::new("db-pass-1234".into()),
            pool_size: 8,
        },
    };

    guru::register_section("Work queue", || {
        format!(
            "jobs done: {}\njobs queued by the ticker: {}\nqueue depth: {}",
            JOBS_DONE.load(Ordering::Relaxed),
            JOBS_QUEUED.load(Ordering::Relaxed),
            QUEUE_DEPTH.load(Ordering::Relaxed)
        )
    });

    let trigger_dir = match private_trigger_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo: no private directory for the trigger file: {e}");
            std::process::exit(1);
        }
    };
    let trigger_file = trigger_dir.join(format!("trigger-{pid}"));
    let mut builder = guru::Builder::new(guru::package!())
        .service_name("guru-demo")
        .config(settings)
        .file_trigger(&trigger_file);
    if std::env::args().any(|a| a == "--json") {
        builder = builder.format(guru::Format::Json);
    }
    if let Some(dir) = arg("--log-dir") {
        builder = builder.log_dir(dir);
    }
    let _guard = match builder.install() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("demo: cannot install guru: {e}");
            std::process::exit(1);
        }
    };
    {
        // Spans entered on each thread show in its report block.
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(guru::tracing::layer())
            .init();
    }

    for i in 0..2 {
        spawn(&format!("worker-{i}"), compute_worker);
    }
    let (tx, rx) = channel();
    spawn("queue-consumer", move || queue_consumer(rx));
    spawn("ticker", move || ticker(tx));
    let mut fds = [0i32; 2];
    // SAFETY: pipe() writes two descriptors into the array.
    #[allow(unsafe_code)]
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    if r != 0 {
        eprintln!("demo: pipe failed");
        std::process::exit(1);
    }
    let read_end = fds[0];
    spawn("io-reader", move || io_reader(read_end));

    println!("demo: pid {pid}: a daemon with guru installed");
    println!("demo: for a report run   kill -USR2 {pid}");
    println!("demo: or                 touch {}", trigger_file.display());
    println!(
        "demo: reports go to {}",
        arg("--log-dir").unwrap_or_else(|| "stderr".into())
    );

    let report_after = arg_ms("--report-after-ms", 300);
    if report_after > 0 {
        std::thread::sleep(Duration::from_millis(report_after));
        println!("demo: sending itself SIGUSR2 for a first report");
        // SAFETY: sending a signal to our own process.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(libc::getpid(), libc::SIGUSR2)
        };
    }
    match arg("--exit-after-ms").and_then(|v| v.parse().ok()) {
        Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    let _ = std::fs::remove_file(&trigger_file);
}
