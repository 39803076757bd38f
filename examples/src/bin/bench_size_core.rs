//! Binary-size probe for the benchmark: `bench_size_base` plus
//! `guru_core::install` (SIGUSR2 → report from the signal handler).

fn main() {
    if let Err(e) = guru_core::install(guru_core::Options::default()) {
        eprintln!("cannot install guru-core: {e}");
    }
    let t = std::thread::spawn(|| std::thread::park_timeout(std::time::Duration::from_millis(1)));
    let _ = t.join();
    println!("pid {}", std::process::id());
}
