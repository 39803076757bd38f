//! Fixture for `tests/tests/hardening_secrets.rs` and
//! `tests/tests/hardening_framing.rs`: installs `guru` (text on stderr, the
//! environment shown) with a configuration full of secrets in every shape
//! the masking rules know, next to look-alikes that must stay visible;
//! starts three children whose command lines carry secrets (`mysql -p…`,
//! `curl -u user:…`, and itself with `--pass …`, `--auth=…`, `KEY=…`); with
//! `--evil`, registers sections whose titles, bodies and errors try to forge
//! the report's framing. Prints `ready pid=<pid>`, then obeys stdin:
//! `json` prints `json <document>` (a report in JSON, one line) on stdout;
//! `exit` (or stdin closing) ends it.
//!
//! Every secret value contains `S3CRET`; every look-alike contains
//! `visible`. With `--sleep-child` anywhere in its arguments it is a child:
//! it waits until its stdin closes.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use serde::Serialize;

#[derive(Serialize)]
struct Database {
    url: String,
    db_pass: String,
    #[serde(rename = "sessionCookie")]
    session_cookie: String,
    dsn: String,
    options: String,
    keyspace: String,
    monkey_count: u32,
    key_path: String,
}

#[derive(Serialize)]
struct Config {
    listen: String,
    passwd: String,
    pwd: String,
    auth: String,
    bearer: String,
    otp: String,
    api_key: String,
    callback: String,
    header: String,
    upstream: String,
    private_key: String,
    tls_cert: String,
    github: String,
    slack: String,
    aws: String,
    stripe: String,
    gitlab: String,
    claims: String,
    homepage: String,
    max_tokens: u32,
    pairs: Vec<(String, String)>,
    pools: BTreeMap<String, u32>,
    database: Database,
}

fn config() -> Config {
    let mut pools = BTreeMap::new();
    pools.insert("postgres://pool:S3CRET-mapkey@db2/x".to_string(), 4);
    pools.insert("visible-pool".to_string(), 2);
    Config {
        listen: "127.0.0.1:8080".into(),
        passwd: "S3CRET-passwd".into(),
        pwd: "S3CRET-pwd".into(),
        auth: "S3CRET-auth".into(),
        bearer: "S3CRET-bearer".into(),
        otp: "S3CRET-otp".into(),
        api_key: "S3CRET-api-key".into(),
        callback: "https://api.example/cb?user=visible-user&password=S3CRET-query&x=1".into(),
        header: "Authorization: Bearer S3CRET-header-token".into(),
        upstream: "admin:S3CRET-bare@db.internal:5432".into(),
        private_key: "-----BEGIN EC PRIVATE KEY-----\nS3CRET-pem\n-----END EC PRIVATE KEY-----"
            .into(),
        tls_cert: "-----BEGIN CERTIFICATE-----\nvisible-cert\n-----END CERTIFICATE-----".into(),
        github: "ghp_S3CRET0123456789abcdefghijklmnopq".into(),
        slack: "xoxb-1234-S3CRET-abcdefgh".into(),
        aws: "AKIAS3CRET0123456789".into(),
        stripe: "sk_live_S3CRET0123456789abcd".into(),
        gitlab: "glpat-S3CRET0123456789abcd".into(),
        claims: "eyJhbGciOiJIUzI1NiJ9.eyJTM0NSRVQiOiJTM0NSRVQifQ.S3CRET-sig".into(),
        homepage: "https://example.com/visible-docs?page=2".into(),
        max_tokens: 4096,
        pairs: vec![
            ("user".into(), "visible-pair-user".into()),
            ("password".into(), "S3CRET-tuple".into()),
        ],
        pools,
        database: Database {
            url: "postgres://app:S3CRET/with#odd chars@db.example:5432/app".into(),
            db_pass: "S3CRET-db-pass".into(),
            session_cookie: "S3CRET-cookie".into(),
            dsn: "https://S3CRET0123456789abcdef0123456789@o42.ingest.sentry.io/7".into(),
            options: "Server=db;User Id=visible-sql-user;Password=S3CRET-connstr;".into(),
            keyspace: "visible-keyspace".into(),
            monkey_count: 12,
            key_path: "/etc/visible/key.pem".into(),
        },
    }
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn child(arg0: &str, args: &[&str]) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        .arg0(arg0)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child")
}

fn register_evil_sections() {
    guru::register_section(
        "Evil\n==== End of Guru Meditation ==== pid 1 report #1\n\x1b[2J",
        || "evil title, plain body",
    );
    // A long title that would sit flush against the banner's `====`.
    guru::register_section(
        " Guru Meditation ==== pid 1 report #1 at 1970-01-01T00:00:00Z on request xx",
        || "long title",
    );
    guru::register_section(
        "Evil body",
        || "first\n==== End of Guru Meditation ==== pid 1 report #1\n\x1b[2J\rcarriage\n==== Guru Meditation ==== pid 1 report #2 at x\n\u{9b}31mred\u{2028}==== End of Guru Meditation ==== pid 1 report #2",
    );
    guru::register_section("Evil error", || -> Result<String, String> {
        Err("cannot connect to postgres://u:S3CRET-err@db/x\n==== End of Guru Meditation ==== pid 1 report #1\x1b[0m".into())
    });
    guru::register_section(
        "Secret body",
        || "connecting with password=S3CRET-body and ghp_S3CRET0123456789abcdefghijklmn; visible-body",
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if flag(&args, "--sleep-child") {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        return;
    }
    if flag(&args, "--evil") {
        register_evil_sections();
        // A thread whose name carries a control byte (the kernel keeps 15).
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("ev\x1b[2J\nil".into())
            .spawn(move || {
                let _ = rx.recv();
            })
            .expect("spawn named thread");
        std::mem::forget(tx);
    }
    let _guard = guru::Builder::new(guru::package!())
        .service_name("secrets-fixture")
        .config(config())
        .environment(true)
        .install()
        .expect("install guru");

    let mut children = vec![
        child("mysql", &["-uroot", "-pS3CRET-mysql", "--sleep-child"]),
        child("curl", &["-u", "bob:S3CRET-curl", "--sleep-child"]),
        child(
            "secrets_fixture",
            &[
                "--sleep-child",
                "--pass",
                "S3CRET-pass",
                "--auth=S3CRET-auth-flag",
                "DB_TOKEN=S3CRET-kv",
                "--password=S3CRET-pw",
                "--keyspace",
                "visible-keyspace-arg",
            ],
        ),
    ];
    println!("ready pid={}", std::process::id());

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "json" => println!("json {}", guru::report_as(guru::Format::Json)),
            "exit" => break,
            _ => {}
        }
    }
    for c in &mut children {
        drop(c.stdin.take());
        let _ = c.wait();
    }
}
