//! Builds the shared library the dlopen test loads (`tests/dl/guru_dl_test.c`)
//! with the system C compiler (`$CC`, else `cc`), and tells the tests where it
//! is through `GURU_DL_TEST_LIB`; and passes the git commit to the fixtures
//! (the examples' `git_info.rs`), so their Package section shows it.
use std::path::PathBuf;

include!("../examples/git_info.rs");

fn main() {
    emit_git_info();
    let source = "dl/guru_dl_test.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let lib = out.join("libguru_dl_test.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-g",
            "-fomit-frame-pointer",
            "-o",
        ])
        .arg(&lib)
        .arg(source)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?} for {source}: {e}"));
    assert!(status.success(), "{cc} failed to build {source}");
    println!("cargo:rustc-env=GURU_DL_TEST_LIB={}", lib.display());
}
