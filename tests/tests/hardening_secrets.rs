//! Issue 10, item 10: secrets never show in a report, in text or JSON —
//! not in the configuration (by name or by shape), the environment, this
//! process's or its children's command lines, nor registered sections' text
//! — while look-alikes (`keyspace`, `monkey_count`, plain URLs) stay visible.

use std::time::Duration;

use guru_tests::Fixture;

const WAIT: Duration = Duration::from_secs(30);

fn fixture() -> String {
    env!("CARGO_BIN_EXE_secrets_fixture").to_string()
}

fn start() -> Fixture {
    let mut fx = Fixture::spawn_with_env(
        &fixture(),
        &["--token", "S3CRET-own-flag", "--evil"],
        &[
            ("MYSQL_PWD", "S3CRET-env-mysql"),
            ("REDIS_PASS", "S3CRET-env-redis"),
            ("GITHUB_PAT", "S3CRET-env-pat"),
            ("DATABASE_URL", "postgres://u:S3CRET-env-url@h/d"),
            ("KEYSPACE", "visible-env-keyspace"),
            ("MONKEY_COUNT", "visible-13"),
        ],
    );
    fx.wait_for_line("ready pid=", WAIT);
    fx
}

/// What must stay visible, in text and JSON alike.
const VISIBLE: &[&str] = &[
    "visible-keyspace",
    "monkey_count",
    "/etc/visible/key.pem",
    "visible-cert",
    "https://example.com/visible-docs?page=2",
    "visible-pair-user",
    "visible-pool",
    "visible-sql-user",
    "visible-env-keyspace",
    "visible-13",
    "visible-keyspace-arg",
    "visible-body",
    "max_tokens",
    "4096",
];

#[test]
fn no_secret_in_text_report_and_look_alikes_stay() {
    let fx = start();
    fx.signal(libc::SIGUSR2);
    let report = fx.wait_for_reports(1, WAIT).remove(0);
    let stderr = fx.stderr_text();
    let leaks: Vec<&str> = stderr.lines().filter(|l| l.contains("S3CRET")).collect();
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    for v in VISIBLE {
        assert!(
            report.text.contains(v),
            "{v} must stay visible:\n{}",
            report.text
        );
    }
    let config = report.section("Configuration").expect("Configuration");
    for masked in [
        "  passwd = ***",
        "  pwd = ***",
        "  auth = ***",
        "  bearer = ***",
        "  otp = ***",
        "  api_key = ***",
        "  callback = https://api.example/cb?user=visible-user&password=***&x=1",
        "  header = Authorization: Bearer ***",
        "  upstream = admin:***@db.internal:5432",
        "  github = ghp_***",
        "  slack = xoxb-***",
        "  aws = AKIA***",
        "  stripe = sk_live_***",
        "  gitlab = glpat-***",
        "  claims = eyJ***",
        "  pairs[0] = [user, visible-pair-user]",
        "  pairs[1] = [password, ***]",
        "  db_pass = ***",
        "  sessionCookie = ***",
        "  url = postgres://app:***@db.example:5432/app",
        "  dsn = https://***@o42.ingest.sentry.io/7",
        "  options = Server=db;User Id=visible-sql-user;Password=***;",
        "  keyspace = visible-keyspace",
        "  monkey_count = 12",
        "  key_path = /etc/visible/key.pem",
        "  MYSQL_PWD = ***",
        "  REDIS_PASS = ***",
        "  GITHUB_PAT = ***",
        "  DATABASE_URL = postgres://u:***@h/d",
        "  KEYSPACE = visible-env-keyspace",
    ] {
        assert!(config.contains(masked), "missing {masked:?} in:\n{config}");
    }
    assert!(
        config.contains("[pools]\n  postgres://pool:***@db2/x = 4\n"),
        "map key masked:\n{config}"
    );
    let processes = report.section("Processes").expect("Processes");
    for masked in [
        "--token ***",
        "mysql -uroot -p*** --sleep-child",
        "curl -u bob:*** --sleep-child",
        "--pass *** --auth=*** DB_TOKEN=*** --password=*** --keyspace visible-keyspace-arg",
    ] {
        assert!(
            processes.contains(masked),
            "missing {masked:?} in:\n{processes}"
        );
    }
    let body = report.section("Secret body").expect("Secret body");
    assert!(
        body.contains("password=*** and ghp_***; visible-body"),
        "{body}"
    );
    let error = report.section("Evil error").expect("Evil error");
    assert!(error.contains("postgres://u:***@db/x"), "{error}");
    fx.finish(WAIT);
}

#[test]
fn no_secret_in_json_report_and_look_alikes_stay() {
    let mut fx = start();
    fx.send_line("json");
    let line = fx.wait_for_line("json ", WAIT);
    let doc = &line["json ".len()..];
    let v: serde_json::Value = serde_json::from_str(doc).expect("valid JSON");
    assert_eq!(v["schema"], "guru-report/1");
    assert!(!doc.contains("S3CRET"), "secrets leaked in JSON:\n{doc}");
    for visible in VISIBLE {
        assert!(doc.contains(visible), "{visible} must stay visible:\n{doc}");
    }
    // The same masked forms as the text report (one masking for both).
    for masked in [
        "https://api.example/cb?user=visible-user&password=***&x=1",
        "Authorization: Bearer ***",
        "postgres://app:***@db.example:5432/app",
        "\"-p***\"",
        "\"bob:***\"",
        "\"--auth=***\"",
        "\"[password, ***]\"",
        "\"postgres://pool:***@db2/x\"",
    ] {
        assert!(doc.contains(masked), "missing {masked:?} in JSON:\n{doc}");
    }
    fx.finish(WAIT);
}
