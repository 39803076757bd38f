//! Binary-size probe for the benchmark: a program that spawns a thread and
//! waits, without guru. Compare with `bench_size_core` and `bench_size_std`.

fn main() {
    let t = std::thread::spawn(|| std::thread::park_timeout(std::time::Duration::from_millis(1)));
    let _ = t.join();
    println!("pid {}", std::process::id());
}
