//! Binary-size probe for the benchmark: `bench_size_base` plus the std
//! adapter (`guru`): reporter thread, DWARF symbolization, sections.
//!
//! Until the std adapter's entry point lands this links the same as
//! `bench_size_core`, through `guru`'s re-export of the core.

fn main() {
    if let Err(e) = guru::core::install(guru::core::Options::default()) {
        eprintln!("cannot install guru: {e}");
    }
    let t = std::thread::spawn(|| std::thread::park_timeout(std::time::Duration::from_millis(1)));
    let _ = t.join();
    println!("pid {}", std::process::id());
}
