// The git commit (and whether the work tree was dirty) for the reports'
// Package section: the build-script lines documented at `guru::package!`,
// shared by the examples' and the tests' build scripts (`include!`d).
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Prints the `cargo:` lines that pass the commit and dirty flag.
fn emit_git_info() {
    if let Some(sha) = git(&["rev-parse", "HEAD"]) {
        println!("cargo:rustc-env=GURU_GIT_COMMIT={sha}");
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|changes| !changes.is_empty());
        println!("cargo:rustc-env=GURU_GIT_DIRTY={dirty}");
    }
    // Build again when HEAD moves (a checkout, or a commit on the branch)
    // or the index changes.
    let mut watched = vec![
        "HEAD".to_string(),
        "index".to_string(),
        "packed-refs".to_string(),
    ];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        let path = git(&["rev-parse", "--path-format=absolute", "--git-path", &name]);
        // Only files that exist: a missing one would rerun this every build.
        if let Some(path) = path.filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
