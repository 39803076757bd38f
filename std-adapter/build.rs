//! Records facts about the build for `guru::package!()`: the target triple,
//! the rustc version and the optimisation level. They are the same for the
//! application, since cargo builds every crate of a program with one rustc
//! for one target.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let target = std::env::var("TARGET").unwrap_or_default();
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_default();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=GURU_BUILD_TARGET={target}");
    println!("cargo:rustc-env=GURU_BUILD_OPT_LEVEL={opt_level}");
    println!("cargo:rustc-env=GURU_BUILD_RUSTC={version}");
}
