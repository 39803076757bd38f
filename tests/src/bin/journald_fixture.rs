//! Fixture of `tests/tests/journald.rs`: installs guru with
//! `Builder::journald_socket(<path>)` (the test's socket), no rate limit,
//! prints `ready pid=<pid>` and waits for stdin to close.
//!
//! Flags: `--socket PATH` (required), `--big` (a registered section of
//! 400 KB, so the entry does not fit in a datagram), `--json`.

use std::io::Read as _;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let socket = value("--socket").expect("--socket PATH");
    if args.iter().any(|a| a == "--big") {
        guru::register_section("Big", || {
            (0..8000)
                .map(|i| format!("line {i:05} of a large section, padded to fifty bytes"))
                .collect::<Vec<_>>()
                .join("\n")
        });
    }
    let mut b = guru::Builder::new(guru::package!())
        .service_name("journald-fixture")
        .journald_socket(socket)
        .min_interval(std::time::Duration::ZERO);
    if args.iter().any(|a| a == "--json") {
        b = b.format(guru::Format::Json);
    }
    let _guard = b.install().expect("install guru");
    println!("ready pid={}", std::process::id());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}
