//! `Builder::journald`: each report is one journal entry in the native
//! protocol, sent to a socket this test binds and parses (datagram; sealed
//! memfd passed with `SCM_RIGHTS` when too big); without the socket,
//! reports fall back to stderr with one line saying why.
#![cfg(target_os = "linux")]
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use guru_tests::Fixture;

const FIXTURE: &str = env!("CARGO_BIN_EXE_journald_fixture");

fn socket_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("guru-journal-{name}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// One received entry: the datagram's bytes, or the passed memfd's content;
/// and whether it came as a memfd.
fn receive(sock: &UnixDatagram) -> (Vec<u8>, bool) {
    let mut buf = vec![0u8; 1 << 20];
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at live buffers for the length of the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &raw mut msg, 0) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: msg_control was filled by recvmsg.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
    if cmsg.is_null() {
        buf.truncate(n as usize);
        return (buf, false);
    }
    // SAFETY: a non-null header inside `control`.
    let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
    assert_eq!((level, kind), (libc::SOL_SOCKET, libc::SCM_RIGHTS));
    assert_eq!(n, 0, "a memfd entry has no payload");
    // SAFETY: SCM_RIGHTS data holds the passed descriptor.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>()) };
    // SAFETY: the kernel gave us this descriptor; we own it now.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: F_GET_SEALS on a descriptor we own.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    assert!(
        seals & libc::F_SEAL_WRITE != 0 && seals & libc::F_SEAL_SHRINK != 0,
        "memfd not sealed: {seals:#x}"
    );
    let mut f = std::fs::File::from(fd);
    let mut out = Vec::new();
    use std::io::{Read as _, Seek as _};
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut out).unwrap();
    (out, true)
}

/// Parses the native protocol: `KEY=value\n` or `KEY\n<u64 le><bytes>\n`.
fn parse(mut b: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    while !b.is_empty() {
        let nl = b
            .iter()
            .position(|&c| c == b'\n')
            .expect("field ends with newline");
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            out.insert(
                String::from_utf8(line[..eq].to_vec()).unwrap(),
                line[eq + 1..].to_vec(),
            );
            b = &b[nl + 1..];
        } else {
            let key = String::from_utf8(line.to_vec()).unwrap();
            let rest = &b[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = rest[8..8 + len].to_vec();
            assert_eq!(rest[8 + len], b'\n', "binary field {key} ends with newline");
            out.insert(key, value);
            b = &rest[8 + len + 1..];
        }
    }
    out
}

fn field(e: &BTreeMap<String, Vec<u8>>, k: &str) -> String {
    String::from_utf8_lossy(
        e.get(k)
            .unwrap_or_else(|| panic!("no field {k}: {:?}", e.keys())),
    )
    .into_owned()
}

fn bind(name: &str) -> (UnixDatagram, PathBuf) {
    let path = socket_path(name);
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    (sock, path)
}

#[test]
fn one_entry_per_report_with_its_fields() {
    let (sock, path) = bind("fields");
    let mut f = Fixture::spawn(FIXTURE, &["--socket", path.to_str().unwrap()]);
    f.wait_for_line("ready pid=", Duration::from_secs(60));
    for seq in 1..=2u64 {
        f.signal(libc::SIGUSR2);
        let (bytes, memfd) = receive(&sock);
        assert!(!memfd, "a small report goes in a datagram");
        let e = parse(&bytes);
        let msg = field(&e, "MESSAGE");
        let pid = f.pid();
        assert!(
            msg.starts_with(&format!(
                "==== Guru Meditation ==== pid {pid} report #{seq} "
            )),
            "{msg}"
        );
        assert!(msg.trim_end().ends_with(&format!(
            "==== End of Guru Meditation ==== pid {pid} report #{seq}"
        )));
        assert_eq!(field(&e, "GURU_PID"), pid.to_string());
        assert_eq!(field(&e, "GURU_SEQUENCE"), seq.to_string());
        assert_eq!(field(&e, "GURU_SERVICE"), "journald-fixture");
        assert_eq!(field(&e, "SYSLOG_IDENTIFIER"), "journald-fixture");
        assert_eq!(field(&e, "GURU_TRIGGER"), "SIGUSR2");
        assert_eq!(field(&e, "GURU_FORMAT"), "text");
        assert_eq!(field(&e, "PRIORITY"), "6");
    }
    // Nothing of the reports on stderr.
    assert!(
        !f.stderr_text().contains("Guru Meditation"),
        "{}",
        f.stderr_text()
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_large_report_goes_through_a_sealed_memfd() {
    let (sock, path) = bind("memfd");
    let mut f = Fixture::spawn(FIXTURE, &["--socket", path.to_str().unwrap(), "--big"]);
    f.wait_for_line("ready pid=", Duration::from_secs(60));
    f.signal(libc::SIGUSR2);
    let (bytes, memfd) = receive(&sock);
    assert!(
        memfd,
        "a {} byte entry should not fit a datagram",
        bytes.len()
    );
    let e = parse(&bytes);
    let msg = field(&e, "MESSAGE");
    assert!(msg.len() > 400_000, "{}", msg.len());
    assert!(msg.contains("line 07999 of a large section"));
    assert!(
        msg.trim_end()
            .ends_with(&format!("pid {} report #1", f.pid()))
    );
    assert_eq!(field(&e, "GURU_SEQUENCE"), "1");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn without_the_socket_reports_fall_back_with_one_line() {
    let path = socket_path("absent");
    let mut f = Fixture::spawn(FIXTURE, &["--socket", path.to_str().unwrap()]);
    f.wait_for_line("ready pid=", Duration::from_secs(60));
    f.signal(libc::SIGUSR2);
    let reports = f.wait_for_reports(1, Duration::from_secs(60));
    assert_eq!(reports.len(), 1);
    let err = f.stderr_text();
    let why: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("guru: journald: cannot send report #1"))
        .collect();
    assert_eq!(why.len(), 1, "{err}");
    assert!(
        why[0].contains("it follows on the configured output"),
        "{err}"
    );
}
