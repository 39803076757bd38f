//! Binary-size probe for the benchmark: `bench_size_base` plus the std
//! adapter (`guru::setup_autorun`: reporter thread, DWARF symbolization,
//! sections).

fn main() {
    let _guard = match guru::setup_autorun(guru::package!()) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("cannot install guru: {e}");
            None
        }
    };
    let t = std::thread::spawn(|| std::thread::park_timeout(std::time::Duration::from_millis(1)));
    let _ = t.join();
    println!("pid {}", std::process::id());
}
