//! What the process is: the Package section, captured at compile time by
//! [`package!`](crate::package).

use serde::Serialize;

/// The calling crate's identity, for the Package section. Build it with
/// [`guru::package!()`](crate::package), which reads cargo's environment in
/// *your* crate (name, version, authors, repository) and adds the target, the
/// rustc version and the build profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Crate name (`CARGO_PKG_NAME`).
    pub name: String,
    /// Crate version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Authors or vendor (`CARGO_PKG_AUTHORS`, `:`-separated by cargo).
    pub authors: Vec<String>,
    /// Repository URL (`CARGO_PKG_REPOSITORY`), if set.
    pub repository: Option<String>,
    /// Target triple the program was built for.
    pub target: String,
    /// `release` when built without debug assertions, else `debug`.
    pub profile: String,
    /// Optimisation level of the build (`OPT_LEVEL` seen by guru's build script).
    pub opt_level: String,
    /// `rustc --version` of the compiler that built guru (and the program).
    pub rustc: Option<String>,
    /// Source revision, from the first of `GURU_GIT_COMMIT`, `VERGEN_GIT_SHA`,
    /// `GIT_COMMIT`, `GIT_HASH` set at compile time, or [`Package::git_commit`].
    pub git_commit: Option<String>,
    /// Whether the work tree had uncommitted changes when it was built, from
    /// `GURU_GIT_DIRTY` or `VERGEN_GIT_DIRTY` (`true`/`false`) set at compile
    /// time, or [`Package::git_dirty`]; `None` when unknown.
    pub git_dirty: Option<bool>,
}

impl Package {
    /// The Package section's data for this package and service name.
    pub(crate) fn section(&self, service: &str) -> crate::model::Package {
        crate::model::Package {
            name: self.name.clone(),
            version: self.version.clone(),
            service: service.to_string(),
            authors: self.authors.clone(),
            repository: self.repository.clone(),
            target: self.target.clone(),
            profile: self.profile.clone(),
            opt_level: self.opt_level.clone(),
            rustc: self.rustc.clone(),
            git_commit: self.git_commit.clone(),
            git_dirty: self.git_dirty,
        }
    }

    /// A package with just a name and version (the rest from this build).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            authors: Vec::new(),
            repository: None,
            target: BUILD_TARGET.to_string(),
            profile: String::from(if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }),
            opt_level: BUILD_OPT_LEVEL.to_string(),
            rustc: non_empty(BUILD_RUSTC),
            git_commit: None,
            git_dirty: None,
        }
    }

    /// Sets the source revision shown in the report.
    pub fn git_commit(mut self, commit: impl Into<String>) -> Package {
        self.git_commit = non_empty(&commit.into());
        self
    }

    /// Says whether the build had uncommitted changes (shown as `(dirty)`).
    pub fn git_dirty(mut self, dirty: bool) -> Package {
        self.git_dirty = Some(dirty);
        self
    }

    /// Sets the authors or vendor.
    pub fn authors<S: Into<String>>(mut self, authors: impl IntoIterator<Item = S>) -> Package {
        self.authors = authors.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the repository URL.
    pub fn repository(mut self, url: impl Into<String>) -> Package {
        self.repository = non_empty(&url.into());
        self
    }
}

/// Target triple guru was built for.
pub const BUILD_TARGET: &str = env!("GURU_BUILD_TARGET");
/// Optimisation level guru was built with.
pub const BUILD_OPT_LEVEL: &str = env!("GURU_BUILD_OPT_LEVEL");
/// `rustc --version` of the compiler, empty if unknown.
pub const BUILD_RUSTC: &str = env!("GURU_BUILD_RUSTC");

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[doc(hidden)]
pub fn __from_env(
    name: &str,
    version: &str,
    authors: &str,
    repository: &str,
    debug_assertions: bool,
    git_commit: Option<&str>,
    git_dirty: Option<&str>,
) -> Package {
    let mut p = Package::new(name, version);
    p.authors = authors
        .split(':')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    p.repository = non_empty(repository);
    p.profile = String::from(if debug_assertions { "debug" } else { "release" });
    p.git_commit = git_commit.and_then(non_empty);
    p.git_dirty = git_dirty.and_then(parse_flag);
    p
}

/// `true`/`false` as vergen and the documented build script write them
/// (also `1`/`0`, `yes`/`no`); anything else is unknown.
fn parse_flag(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Captures the calling crate's [`Package`]: name, version, authors and
/// repository from cargo, the build profile of the calling crate, the target
/// and rustc version, and a git commit if one of `GURU_GIT_COMMIT`,
/// `VERGEN_GIT_SHA`, `GIT_COMMIT` or `GIT_HASH` was set when it was compiled,
/// with `(dirty)` when `GURU_GIT_DIRTY` or `VERGEN_GIT_DIRTY` says the work
/// tree had uncommitted changes.
///
/// Cargo itself passes no git information to a crate. Projects that use
/// [vergen](https://docs.rs/vergen) (`VERGEN_GIT_SHA`, `VERGEN_GIT_DIRTY`)
/// get it as they are; otherwise these build-script lines (a `build.rs` next
/// to your `Cargo.toml`; guru's own examples use them) set it, and leave it
/// unknown outside a git checkout or without `git`:
///
/// ```no_run
/// // build.rs
/// use std::process::Command;
///
/// fn git(args: &[&str]) -> Option<String> {
///     let out = Command::new("git").args(args).output().ok()?;
///     out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
/// }
///
/// fn main() {
///     if let Some(sha) = git(&["rev-parse", "HEAD"]) {
///         println!("cargo:rustc-env=GURU_GIT_COMMIT={sha}");
///         let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
///             .is_some_and(|changes| !changes.is_empty());
///         println!("cargo:rustc-env=GURU_GIT_DIRTY={dirty}");
///     }
///     // Build again when HEAD moves (a checkout, or a commit on the branch)
///     // or the index changes.
///     let mut watched = vec!["HEAD".to_string(), "index".to_string(), "packed-refs".to_string()];
///     watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
///     for name in watched {
///         let path = git(&["rev-parse", "--path-format=absolute", "--git-path", &name]);
///         // Only files that exist: a missing one would rerun this every build.
///         if let Some(path) = path.filter(|p| std::path::Path::new(p).exists()) {
///             println!("cargo:rerun-if-changed={path}");
///         }
///     }
/// }
/// ```
///
/// ```
/// let package = guru::package!();
/// assert_eq!(package.name, "guru");
/// ```
#[macro_export]
macro_rules! package {
    () => {
        $crate::__package_from_env(
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
            ::core::env!("CARGO_PKG_AUTHORS"),
            ::core::env!("CARGO_PKG_REPOSITORY"),
            ::core::cfg!(debug_assertions),
            ::core::option_env!("GURU_GIT_COMMIT")
                .or(::core::option_env!("VERGEN_GIT_SHA"))
                .or(::core::option_env!("GIT_COMMIT"))
                .or(::core::option_env!("GIT_HASH")),
            ::core::option_env!("GURU_GIT_DIRTY").or(::core::option_env!("VERGEN_GIT_DIRTY")),
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_splits_authors_and_drops_empty_fields() {
        let p = __from_env("x", "1.2.3", "A <a@x>: B", "", false, Some(" "), Some(""));
        assert_eq!(p.authors, ["A <a@x>", "B"]);
        assert_eq!(p.repository, None);
        assert_eq!(p.git_commit, None);
        assert_eq!(p.git_dirty, None);
        assert_eq!(p.profile, "release");
        assert!(!p.target.is_empty());
    }

    #[test]
    fn dirty_flag_reads_vergen_and_build_script_spellings() {
        let dirty = |v| __from_env("x", "1", "", "", false, Some("abc"), Some(v)).git_dirty;
        assert_eq!(dirty("true"), Some(true));
        assert_eq!(dirty(" TRUE\n"), Some(true));
        assert_eq!(dirty("false"), Some(false));
        assert_eq!(dirty("0"), Some(false));
        assert_eq!(dirty("maybe"), None);
    }
}
