//! Where reports go: stderr, or one new file per report in `log_dir`.
//!
//! Files are named `{service}_gurumeditation_{UTC yyyymmddHHMMSS}_{pid}_{seq}.{txt|json}`
//! and created with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600: never
//! overwritten, never written through a symlink. If the file cannot be
//! created, one line on stderr says why and the report follows on stderr, so
//! nothing is lost.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Format;

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

/// Creates `path` exclusively (never overwrites, never follows a symlink)
/// with mode 0600 and writes `bytes`.
pub(crate) fn create_exclusive(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

fn to_stderr(bytes: &[u8]) {
    let mut e = io::stderr().lock();
    let _ = e.write_all(bytes);
    let _ = e.flush();
}

/// Writes one rendered report. Returns where it went.
pub(crate) fn emit(
    log_dir: Option<&Path>,
    name: impl FnOnce() -> String,
    rendered: &str,
) -> Option<PathBuf> {
    let mut bytes = rendered.as_bytes().to_vec();
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    if let Some(dir) = log_dir {
        let path = dir.join(name());
        match create_exclusive(&path, &bytes) {
            Ok(()) => return Some(path),
            Err(e) => to_stderr(
                format!(
                    "guru: cannot write report file {}: {e}; the report follows on stderr\n",
                    path.display()
                )
                .as_bytes(),
            ),
        }
    }
    to_stderr(&bytes);
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
    fn exclusive_creation() {
        let dir = std::env::temp_dir().join(format!("guru-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.txt");
        let _ = std::fs::remove_file(&p);
        create_exclusive(&p, b"one").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Never overwritten.
        assert!(create_exclusive(&p, b"two").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        // Never through a symlink.
        let link = dir.join("link.txt");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(dir.join("target.txt"), &link).unwrap();
        assert!(create_exclusive(&link, b"x").is_err());
        assert!(!dir.join("target.txt").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
