//! Passes the git commit (and whether the work tree was dirty) to the
//! examples, so their reports' Package section shows it.
include!("git_info.rs");

fn main() {
    emit_git_info();
    println!("cargo:rerun-if-changed=git_info.rs");
}
