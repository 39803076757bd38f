//! Where reports go: stderr, or one new file per report in `log_dir`.
//!
//! # Bounded output
//! Every write — to stderr or to a report file — goes through the core's
//! bounded writer ([`guru_core::write::write_bounded`]): the descriptor is
//! polled for room with the time left, never written past the deadline
//! ([`Builder::output_timeout`](crate::Builder::output_timeout), default
//! [`DEFAULT_OUTPUT_TIMEOUT`]). A non-blocking stderr whose reader is slow is
//! waited for within that bound (not given up at the first `EAGAIN`); a
//! stderr nobody reads costs the reporter thread that long, then the rest of
//! the report is dropped. A report that was not written whole ends with a
//! line `guru: report #N not written whole: ...` if stderr takes it without
//! waiting, and the next report says in its Report section how many bytes of
//! how many reports were dropped and why (`output dropped: ...`), so nothing
//! is lost silently. Stderr is written with `write(2)` on descriptor 2, not
//! through `std::io::stderr()`: a thread of the application blocked in
//! `eprintln!` on the same full pipe holds that lock, and the reporter must
//! not wait for it. (So a report may interleave with the application's own
//! stderr lines at 4 KiB boundaries.)
//!
//! # Report files
//! With `log_dir`, the directory is created if missing (mode 0700, parents
//! too) and opened once at install with `O_DIRECTORY | O_NOFOLLOW`; every
//! report file is created with `openat` on that descriptor, so renaming the
//! directory or putting a symlink in its place after install does not
//! redirect reports: they go on into the directory opened at install.
//! Files are named `{service}_gurumeditation_{UTC yyyymmddHHMMSS}_{pid}_{seq}.{txt|json}`.
//! A report is first written whole to a file without a name
//! (`openat(O_TMPFILE)`, mode 0600) in that directory, `fsync`ed, then
//! linked in under its final name (`linkat` of `/proc/self/fd/N`, which never
//! replaces a file). Where the file system has no `O_TMPFILE` or `/proc` is
//! missing, a hidden temporary file (`.{name}.tmp`, `O_CREAT | O_EXCL |
//! O_NOFOLLOW`, mode 0600) is written, `fsync`ed and renamed with
//! `renameat2(RENAME_NOREPLACE)` (or `linkat` + `unlinkat` where the file
//! system lacks it). Either way a file under a final name is always
//! complete. If any step fails (disk full, file size limit, quota, the
//! directory removed), nothing is left behind (the unnamed file vanishes, the
//! temporary file is removed), one line on stderr says why, and the report
//! follows on stderr. After each report file, one
//! line on stderr says where it went (`guru: report #N written to PATH`).
//!
//! # Limits
//! See [`guru_core::write`] (# Limits) for descriptors that poll writable
//! but still block (a stopped terminal, a hung NFS mount). A directory that
//! is removed after install cannot take files; reports then come on stderr.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use guru_core::write::{DROPS, Dropped, write_bounded, write_cut_note};

use crate::model::Format;
use crate::sys;

/// How long writing one report may take at most (3 s): see the module docs.
pub const DEFAULT_OUTPUT_TIMEOUT: Duration = Duration::from_secs(3);

/// Makes a service name safe as a file-name part: anything but ASCII
/// letters, digits, `.`, `_` and `-` becomes `_`, and it cannot start with `.`.
pub(crate) fn sanitize_service(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    s
}

/// The file name of a report.
pub(crate) fn file_name(service: &str, unix_ns: u64, pid: i32, seq: u64, format: Format) -> String {
    let (y, mo, d, h, mi, s) = guru_core::format::utc_parts(unix_ns);
    let ext = match format {
        Format::Text => "txt",
        Format::Json => "json",
    };
    format!("{service}_gurumeditation_{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}_{pid}_{seq}.{ext}")
}

/// The log directory, opened once at install.
#[derive(Debug)]
pub(crate) struct LogDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl LogDir {
    /// Creates `dir` if it is missing (mode 0700, parents too), opens it
    /// with `O_DIRECTORY | O_NOFOLLOW` and checks that files can be created
    /// in it.
    pub(crate) fn open(dir: &Path) -> io::Result<LogDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::path::absolute(dir)?;
        match std::fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)?,
            Err(e) => return Err(e),
        }
        let fd = sys::open_dir_nofollow(&path).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link (name the directory itself)",
            ),
            Some(libc::ENOTDIR) => io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            _ => e,
        })?;
        sys::can_create_in(&path)?;
        Ok(LogDir { fd, path })
    }

    /// Where the opened directory is now (it may have been renamed since
    /// install): `/proc/self/fd/N`'s link, or the path given at install.
    fn current_path(&self) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
            .ok()
            // A removed directory reads "PATH (deleted)": name it as installed.
            .filter(|p| {
                p.is_absolute() && !p.as_os_str().as_encoded_bytes().ends_with(b" (deleted)")
            })
            .unwrap_or_else(|| self.path.clone())
    }

    /// Writes `bytes` as file `name`, visible only once whole and never
    /// replacing a file: an unnamed `O_TMPFILE` file linked in with `linkat`,
    /// or (file system without `O_TMPFILE`, no `/proc`) a hidden temporary
    /// file renamed with `renameat2(RENAME_NOREPLACE)` and removed on failure.
    /// Returns the final path.
    pub(crate) fn write_file(
        &self,
        name: &str,
        bytes: &[u8],
        deadline_ns: u64,
    ) -> io::Result<PathBuf> {
        match self.write_unnamed(name, bytes, deadline_ns) {
            Ok(()) => {}
            Err(Attempt::Unsupported) => self.write_named(name, bytes, deadline_ns)?,
            Err(Attempt::Failed(e)) => return Err(e),
        }
        // Make the new name durable too; a failure here loses nothing now.
        let _ = sys::fsync(&self.fd);
        Ok(self.current_path().join(name))
    }

    fn write_unnamed(&self, name: &str, bytes: &[u8], deadline_ns: u64) -> Result<(), Attempt> {
        // EISDIR: a kernel without O_TMPFILE; EOPNOTSUPP: a file system without it.
        let file = sys::create_unnamed_at(&self.fd, 0o600).map_err(|e| match e.raw_os_error() {
            Some(libc::EISDIR | libc::EOPNOTSUPP | libc::EINVAL) => Attempt::Unsupported,
            _ => Attempt::Failed(e),
        })?;
        write_whole(&file, bytes, deadline_ns).map_err(Attempt::Failed)?;
        // EEXIST: never replace. Anything else (no /proc): the named way.
        sys::link_unnamed_at(&file, &self.fd, name).map_err(|e| match e.raw_os_error() {
            Some(libc::EEXIST) => Attempt::Failed(e),
            _ => Attempt::Unsupported,
        })
    }

    fn write_named(&self, name: &str, bytes: &[u8], deadline_ns: u64) -> io::Result<()> {
        let tmp = format!(".{name}.tmp");
        let file = sys::create_exclusive_at(&self.fd, &tmp, 0o600)?;
        let result = write_whole(&file, bytes, deadline_ns)
            .and_then(|()| sys::rename_noreplace_at(&self.fd, &tmp, name));
        drop(file);
        if result.is_err() {
            let _ = sys::unlink_at(&self.fd, &tmp);
        }
        result
    }
}

/// How an attempt to write a report file went wrong.
enum Attempt {
    /// This way is not available here: try the other.
    Unsupported,
    /// A real failure (full disk, size limit, name taken): give up.
    Failed(io::Error),
}

/// Writes all of `bytes` to `file` within the deadline, then `fsync`s it.
fn write_whole(file: &std::fs::File, bytes: &[u8], deadline_ns: u64) -> io::Result<()> {
    write_bounded(file.as_raw_fd(), bytes, deadline_ns).map_err(|cut| {
        let e = io::Error::from_raw_os_error(cut.errno);
        io::Error::new(
            e.kind(),
            format!("{e} after {} of {} bytes", cut.written, bytes.len()),
        )
    })?;
    file.sync_all()
}

/// Writes `bytes` to stderr within `deadline_ns`. On a cut, counts what was
/// dropped for the next report and adds the "not written whole" line if
/// stderr takes it now. Returns whether all was written.
fn to_stderr(bytes: &[u8], sequence: u64, deadline_ns: u64) -> bool {
    match write_bounded(2, bytes, deadline_ns) {
        Ok(()) => true,
        Err(cut) => {
            let dropped = bytes.len().saturating_sub(cut.written) as u64;
            DROPS.record(dropped, cut.errno, sequence);
            write_cut_note(2, sequence, dropped, cut.errno);
            false
        }
    }
}

/// Writes one rendered report, within `timeout`. `seen` is what the report
/// says of output dropped before it: once it is written whole, that is
/// cleared. Returns the file it went to, if any.
pub(crate) fn emit(
    log_dir: Option<&LogDir>,
    name: impl FnOnce() -> String,
    rendered: &str,
    sequence: u64,
    seen: Option<Dropped>,
    timeout: Duration,
) -> Option<PathBuf> {
    let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let deadline = guru_core::sys::monotonic_ns().saturating_add(timeout_ns);
    let mut bytes = rendered.as_bytes().to_vec();
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    let acknowledge = || {
        if let Some(seen) = &seen {
            DROPS.acknowledge(seen);
        }
    };
    if let Some(dir) = log_dir {
        let name = name();
        match dir.write_file(&name, &bytes, deadline) {
            Ok(path) => {
                acknowledge();
                let line = format!("guru: report #{sequence} written to {}\n", path.display());
                let _ = write_bounded(2, line.as_bytes(), deadline);
                return Some(path);
            }
            Err(e) => {
                let line = format!(
                    "guru: cannot write report file {}: {e}; the report follows on stderr\n",
                    dir.current_path().join(&name).display()
                );
                let _ = write_bounded(2, line.as_bytes(), deadline);
            }
        }
    }
    if to_stderr(&bytes, sequence, deadline) {
        acknowledge();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names() {
        assert_eq!(sanitize_service("my daemon/../x"), "my_daemon_.._x");
        assert_eq!(sanitize_service(".hidden"), "_hidden");
        let ns = 1_795_999_999_123_000_000;
        assert_eq!(
            file_name("svc", ns, 42, 7, Format::Json),
            "svc_gurumeditation_20261130005319_42_7.json"
        );
        assert_ne!(
            file_name("svc", ns, 42, 7, Format::Text),
            file_name("svc", ns, 42, 8, Format::Text)
        );
    }

    #[test]
    fn files_are_created_whole_and_never_replaced() {
        let dir = std::env::temp_dir().join(format!("guru-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Missing: created, mode 0700.
        let log = LogDir::open(&dir.join("sub")).unwrap();
        assert_eq!(
            std::fs::metadata(dir.join("sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let p = log.write_file("a.txt", b"one", u64::MAX).unwrap();
        assert_eq!(p, dir.join("sub/a.txt"));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Never replaced, and the temporary file is gone.
        assert!(log.write_file("a.txt", b"two", u64::MAX).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.txt"]);
        // The named way (no O_TMPFILE, no /proc) behaves the same.
        log.write_named("b.txt", b"three", u64::MAX).unwrap();
        assert!(log.write_named("b.txt", b"four", u64::MAX).is_err());
        assert_eq!(std::fs::read(dir.join("sub/b.txt")).unwrap(), b"three");
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
        // A symlink as the directory is refused at open.
        std::os::unix::fs::symlink(dir.join("sub"), dir.join("link")).unwrap();
        assert!(LogDir::open(&dir.join("link")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
