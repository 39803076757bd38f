//! Secret masking: the one home of the rules that decide what a report must
//! not show. The report's data is masked here *before* it is rendered, so the
//! text and the JSON report can never differ in what they reveal.
//!
//! # Secret names
//!
//! A configuration key, an environment variable, a command-line flag, a
//! `name=value` pair or a `Name: value` header is secret when its name
//! matches a rule. Names are compared by **words**: they are split at every
//! character that is not a letter or digit (`_ - .` and the rest), at
//! camelCase humps (`dbPassword`, `APIKey`) and between letters and digits,
//! then lower-cased. A rule is a word or a word sequence written the same way
//! (`api_key` is the words `api key`), and matches
//!
//! - those words in a row anywhere in the name, the last one also in its
//!   plural (`passwords`, `api_keys`);
//! - one word that is the rule's words run together (`apikey`), or, for a
//!   rule of five letters or more, ends with them (`dbpassword`,
//!   `csrftoken`);
//! - with a trailing `$` (`key$`), only at the end of the name: `api_key`,
//!   `AccessKey`, `REDIS_PASS` and `MYSQL_PWD` are secret, `key_path`,
//!   `pass_through` and `keyspace` are not (nor `monkey_count`: words, not
//!   substrings).
//!
//! A match that is not at the end of the name does not count when the name's
//! last word says it is only about the secret ([`METADATA_WORDS`]:
//! `password_file`, `token_ttl`, `secret_name`), nor when the word before it
//! is a quantity (`max_tokens`, `num_keys`). Values under such a name are
//! still scanned for credential shapes (below).
//!
//! The default rules, [`DEFAULT_SECRET_KEYS`]: `password`, `passwd`,
//! `passphrase`, `secret`, `token`, `credential`, `bearer`, `api_key`,
//! `private_key`, `secret_key`, `access_key` anywhere in a name; `key`, `pass`,
//! `pwd`, `pw`, `auth`, `authorization`, `otp`, `totp`, `pat`, `cookie`,
//! `signature`, `sig`, `cred`, `jwt`, `session_id` at its end.
//! [`Builder::secret_keys`](crate::Builder::secret_keys) replaces them (extend
//! them with `DEFAULT_SECRET_KEYS.iter().chain(["pin$"])`).
//!
//! # Credential shapes in values
//!
//! Every string shown — configuration values and map keys, environment
//! values, command-line arguments, registered sections' text and the errors
//! of failed sections — is scanned, whatever its name, and loses:
//!
//! - the password of a URL, `postgres://user:***@db/x`, whatever characters
//!   it holds (`/`, `#`, `@`, spaces: up to the last `@` of the line that is
//!   followed by a host), and a DSN's key, `https://***@o1.ingest.sentry.io/2`
//!   (a user name of 16 or more letters and digits with both in it);
//! - the password of a scheme-less `user:***@host` (not `mailto:`, nor an
//!   image digest `name:tag@sha256:…`);
//! - the value of a secret-named `name=value` (query parameters
//!   `?password=***`, connection strings `Password=***;`, `KEY=***`) and of a
//!   secret-named `Name: value` (`Authorization: ***`, `X-Api-Key: ***`, to the
//!   end of the line or the closing quote);
//! - `Bearer ***` (a credential of eight or more characters that has a digit,
//!   an inner capital or punctuation) and `Basic ***` (one that decodes to
//!   `user:password`);
//! - the body of a PEM private key (`-----BEGIN … PRIVATE KEY-----`);
//! - well-known token formats, keeping their prefix: GitHub `ghp_***`
//!   (`gho_ ghu_ ghs_ ghr_ github_pat_`), GitLab `glpat-***`, Slack `xoxb-***`
//!   (`xoxp- xoxa- xoxr- xoxs- xoxe- xapp-`), AWS `AKIA***`/`ASIA***`, Stripe
//!   `sk_live_***` (`sk_test_ rk_live_ rk_test_ whsec_`), OpenAI `sk-***`,
//!   Google `AIza***`, npm `npm_***`, PyPI `pypi-***`, Hugging Face `hf_***`,
//!   SendGrid `SG.***`, DigitalOcean `dop_v1_***`, Shopify `shpat_***`, and
//!   JWTs `eyJ***`.
//!
//! # Command lines
//!
//! Every command line in the Processes section (this process's and its
//! descendants') loses the value of a secret-named flag (`--password=***`,
//! `--pass ***`, `--auth=***`, Go-style `-token ***`), of a secret-named
//! `KEY=***` argument, the password of `-u user:***` / `--user user:***`
//! (curl; `uid:gid` pairs stay), mysql's `-p***`, `sshpass -p ***`,
//! `redis-cli -a ***`, `mongo -p ***`, openssl's `pass:***`, and everything
//! a value scan finds. A process that rewrote its command line into one
//! string is split at spaces first.
//!
//! # Limits
//!
//! Masking is by name and by shape: a secret under an innocent name in a
//! shape not listed above (a bare random string in `--opt x`, or in a
//! section's prose) is shown. Use [`Secret`](crate::Secret) for every secret
//! the configuration holds: it is never serialized at all. The environment
//! variable `PWD` is the shell's working directory and stays visible.
//! Masking may hide more than the secret: the rest of a line after a
//! credential with spaces, or a URL with `@` in its path.
//!
//! Size: over 600 lines on purpose: every masking rule lives here, in one
//! place, next to the tests that pin each one (about half the file).

use crate::secret::MASK;

/// The default secret-name rules (see the [module docs](self) for how they
/// match): words that make a name secret wherever they are, and, ending in
/// `$`, words that make it secret only at its end.
pub const DEFAULT_SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "bearer",
    "api_key",
    "private_key",
    "secret_key",
    "access_key",
    "key$",
    "pass$",
    "pwd$",
    "pw$",
    "auth$",
    "authorization$",
    "otp$",
    "totp$",
    "pat$",
    "cookie$",
    "signature$",
    "sig$",
    "cred$",
    "jwt$",
    "session_id$",
];

/// Last words of a name that make a match before them not count: the name
/// is about a secret (where it is, how long it lives), not the secret.
pub const METADATA_WORDS: &[&str] = &[
    "file",
    "files",
    "filename",
    "path",
    "paths",
    "dir",
    "directory",
    "env",
    "var",
    "name",
    "type",
    "kind",
    "url",
    "uri",
    "endpoint",
    "header",
    "length",
    "len",
    "ttl",
    "timeout",
    "expiry",
    "expires",
    "expiration",
    "lifetime",
    "enabled",
    "required",
    "policy",
    "format",
    "algorithm",
    "mode",
    "count",
    "size",
    "limit",
    "interval",
    "version",
    "provider",
    "source",
];

/// Words before a match that make it a quantity, not a secret.
const QUANTITY_WORDS: &[&str] = &["max", "min", "num", "total"];

/// One rule: its words, run together, and whether it must end the name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    words: Vec<String>,
    joined: String,
    at_end: bool,
}

/// Decides what is secret; applied to the report's data before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redactor {
    rules: Vec<Rule>,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(DEFAULT_SECRET_KEYS)
    }
}

/// Splits a name into lower-case words: at non-alphanumerics, camelCase
/// humps (`dbPassword`, `APIKey`) and letter/digit changes.
pub(crate) fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some(&prev) = i.checked_sub(1).and_then(|p| chars.get(p)) {
            let next = chars.get(i + 1).copied();
            let hump = prev.is_lowercase() && c.is_uppercase();
            let acronym_end =
                prev.is_uppercase() && c.is_uppercase() && next.is_some_and(|n| n.is_lowercase());
            let digits = prev.is_alphanumeric() && (prev.is_numeric() != c.is_numeric());
            if (hump || acronym_end || digits) && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether `hay` holds `needle` (lower-case ASCII), ignoring ASCII case.
/// Non-ASCII rule words are looked for byte for byte.
fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay.windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

fn plural_eq(word: &str, rule: &str) -> bool {
    word == rule
        || word
            .strip_prefix(rule)
            .is_some_and(|rest| rest == "s" || rest == "es")
}

impl Redactor {
    pub(crate) fn new<S: AsRef<str>>(rules: impl IntoIterator<Item = S>) -> Redactor {
        Redactor {
            rules: rules
                .into_iter()
                .filter_map(|r| {
                    let r = r.as_ref().trim();
                    let (body, at_end) = match r.strip_suffix('$') {
                        Some(b) => (b, true),
                        None => (r, false),
                    };
                    let words = words(body);
                    (!words.is_empty()).then(|| Rule {
                        joined: words.concat(),
                        words,
                        at_end,
                    })
                })
                .collect(),
        }
    }

    /// Whether a name (a key, variable, flag or parameter) is secret.
    pub(crate) fn is_secret_key(&self, key: &str) -> bool {
        // Every kind of match contains the rule's last word: a name holding
        // none of them is not split at all (most names, most text).
        if !self.rules.iter().any(|r| {
            r.words
                .last()
                .is_some_and(|l| contains_ignore_ascii_case(key.as_bytes(), l.as_bytes()))
        }) {
            return false;
        }
        let w = words(key);
        if w.is_empty() {
            return false;
        }
        let last = w.len() - 1;
        self.rules.iter().any(|rule| {
            let n = rule.words.len();
            (0..w.len()).any(|i| {
                let seq = i + n <= w.len()
                    && w[i..i + n - 1] == rule.words[..n - 1]
                    && plural_eq(&w[i + n - 1], &rule.words[n - 1]);
                let end = if seq {
                    i + n - 1
                } else if plural_eq(&w[i], &rule.joined)
                    || (!rule.at_end
                        && rule.joined.len() >= 5
                        && (w[i].ends_with(&rule.joined)
                            || w[i]
                                .strip_suffix('s')
                                .is_some_and(|x| x.ends_with(&rule.joined))))
                {
                    i
                } else {
                    return false;
                };
                if i > 0 && QUANTITY_WORDS.contains(&w[i - 1].as_str()) {
                    return false;
                }
                if rule.at_end {
                    end == last
                } else {
                    end == last || !METADATA_WORDS.contains(&w[last].as_str())
                }
            })
        })
    }

    /// Masks every credential shape in `s` (see the module docs).
    pub(crate) fn redact_text(&self, s: &str) -> String {
        let mut out = s.to_string();
        if out.contains("-----BEGIN") {
            out = mask_pem(&out);
        }
        if out.contains('@') {
            out = mask_url_userinfo(&out);
            out = mask_bare_userinfo(&out);
        }
        if out.contains(':') {
            out = self.mask_headers(&out);
        }
        if out.contains('=') {
            out = self.mask_assignments(&out);
        }
        out = mask_auth_schemes(&out);
        mask_tokens(&out)
    }

    /// Masks a command line (see the module docs).
    pub(crate) fn redact_command_line(&self, args: &[String]) -> Vec<String> {
        if let [one] = args
            && one.contains(' ')
        {
            // A command line rewritten into one string (`setproctitle`): its
            // shapes first (a URL password may hold spaces), then its words
            // as arguments.
            let whole = self.redact_text(one);
            let parts: Vec<String> = whole.split(' ').map(str::to_string).collect();
            return vec![self.redact_command_line(&parts).join(" ")];
        }
        let program = args
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_ascii_lowercase())
            .unwrap_or_default();
        let mysql = [
            "mysql",
            "mysqldump",
            "mysqladmin",
            "mysqlimport",
            "mysqlshow",
            "mysqlcheck",
            "mysqlpump",
            "mysqlsh",
            "mariadb",
            "mariadb-dump",
            "mariadb-admin",
        ]
        .contains(&program.as_str());
        let next_is_password: &[&str] = match program.as_str() {
            "sshpass" => &["-p"],
            "redis-cli" | "valkey-cli" | "keydb-cli" => &["-a"],
            "mongo" | "mongosh" | "mongodump" | "mongorestore" | "mongoexport" | "mongoimport" => {
                &["-p"]
            }
            _ => &[],
        };
        let mut out = Vec::with_capacity(args.len());
        #[derive(PartialEq)]
        enum Next {
            Plain,
            Secret,
            UserPass,
        }
        let mut next = Next::Plain;
        for (i, a) in args.iter().enumerate() {
            match std::mem::replace(&mut next, Next::Plain) {
                Next::Secret if !a.starts_with("--") => {
                    out.push(MASK.to_string());
                    continue;
                }
                Next::UserPass => {
                    out.push(mask_user_pass(a));
                    continue;
                }
                _ => {}
            }
            if i == 0 {
                out.push(self.redact_text(a));
                continue;
            }
            let short = a.starts_with('-') && !a.starts_with("--");
            if short {
                for p in next_is_password {
                    if a == p {
                        next = Next::Secret;
                    } else if a.len() > p.len() && a.starts_with(p) {
                        out.push(format!("{p}{MASK}"));
                        break;
                    }
                }
                if out.len() > i {
                    continue;
                }
                if next == Next::Secret {
                    out.push(a.clone());
                    continue;
                }
                if mysql && a.len() > 2 && a.starts_with("-p") {
                    out.push(format!("-p{MASK}"));
                    continue;
                }
                if a == "-u" || a == "-U" {
                    next = Next::UserPass;
                    out.push(a.clone());
                    continue;
                }
                if a.starts_with("-u") && a.contains(':') {
                    out.push(format!("-u{}", mask_user_pass(&a[2..])));
                    continue;
                }
            }
            if let Some(flag) = a.strip_prefix('-') {
                let flag = flag.strip_prefix('-').unwrap_or(flag);
                let prefix = &a[..a.len() - flag.len()];
                if let Some((k, v)) = flag.split_once('=') {
                    if self.is_secret_key(k) {
                        out.push(format!("{prefix}{k}={MASK}"));
                        continue;
                    }
                    if k == "user" || k == "proxy-user" {
                        out.push(format!("{prefix}{k}={}", mask_user_pass(v)));
                        continue;
                    }
                } else if flag.chars().count() >= 2 {
                    if flag == "user" || flag == "proxy-user" {
                        next = Next::UserPass;
                    } else if self.is_secret_key(flag) {
                        next = Next::Secret;
                    }
                }
            } else if let Some((k, _)) = a.split_once('=') {
                let name_like = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                if name_like && self.is_secret_key(k) {
                    out.push(format!("{k}={MASK}"));
                    continue;
                }
            }
            if let Some(rest) = a.strip_prefix("pass:")
                && !rest.is_empty()
            {
                out.push(format!("pass:{MASK}"));
                continue;
            }
            out.push(self.redact_text(a));
        }
        out
    }

    /// `Name: value` and `"name": "value"` with a secret name: the value to
    /// the end of the line, or to its closing quote.
    fn mask_headers(&self, s: &str) -> String {
        let b = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut copied = 0;
        let mut i = 0;
        while i < b.len() {
            if b[i] != b':' {
                i += 1;
                continue;
            }
            // The name before the colon (an optional closing quote first).
            let mut name_end = i;
            if name_end > 0 && (b[name_end - 1] == b'"' || b[name_end - 1] == b'\'') {
                name_end -= 1;
            }
            let mut name_start = name_end;
            while name_start > 0 && is_name_byte(b[name_start - 1]) {
                name_start -= 1;
            }
            let before_ok = name_start == 0
                || matches!(
                    b[name_start - 1],
                    b' ' | b'\t' | b'"' | b'\'' | b'{' | b',' | b'\n' | b'(' | b'['
                );
            let name = &s[name_start..name_end];
            // Not `scheme://`, not `host:port`-like `a:b` without a space
            // unless the name is secret anyway (`pass:x`, `password:x`).
            if name.is_empty()
                || !before_ok
                || s[i..].starts_with("://")
                || !self.is_secret_key(name)
            {
                i += 1;
                continue;
            }
            let mut v = i + 1;
            while v < b.len() && (b[v] == b' ' || b[v] == b'\t') {
                v += 1;
            }
            if v >= b.len() || b[v] == b'\n' {
                i += 1;
                continue;
            }
            let end = if b[v] == b'"' || b[v] == b'\'' {
                let q = b[v];
                v += 1;
                s[v..].find(q as char).map_or(line_end(s, v), |e| v + e)
            } else {
                // Keep the scheme of `Authorization: Bearer …`.
                let scheme_len = s[v..]
                    .find(' ')
                    .filter(|&n| {
                        AUTH_SCHEMES
                            .iter()
                            .any(|w| s[v..v + n].eq_ignore_ascii_case(w))
                    })
                    .unwrap_or(0);
                if scheme_len > 0 {
                    v += scheme_len;
                    while v < b.len() && b[v] == b' ' {
                        v += 1;
                    }
                }
                line_end(s, v)
            };
            if v >= end {
                i += 1;
                continue;
            }
            out.push_str(&s[copied..v]);
            out.push_str(MASK);
            copied = end;
            i = end;
        }
        out.push_str(&s[copied..]);
        out
    }

    /// `name=value` with a secret name (query parameters, connection
    /// strings, `KEY=value`): the value to the next `& ; , #`, space or quote.
    fn mask_assignments(&self, s: &str) -> String {
        let b = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut copied = 0;
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'=' {
                i += 1;
                continue;
            }
            let mut name_end = i;
            while name_end > 0 && b[name_end - 1] == b' ' {
                name_end -= 1;
            }
            let mut name_start = name_end;
            while name_start > 0 && (is_name_byte(b[name_start - 1]) || b[name_start - 1] == b'.') {
                name_start -= 1;
            }
            let name = &s[name_start..name_end];
            if name.is_empty() || !self.is_secret_key(name) {
                i += 1;
                continue;
            }
            let mut v = i + 1;
            while v < b.len() && b[v] == b' ' {
                v += 1;
            }
            let end = if v < b.len() && (b[v] == b'"' || b[v] == b'\'') {
                let q = b[v];
                v += 1;
                s[v..].find(q as char).map_or(line_end(s, v), |e| v + e)
            } else {
                s[v..]
                    .find(|c: char| "&;,#\"'".contains(c) || c.is_whitespace())
                    .map_or(s.len(), |e| v + e)
            };
            if v >= end || s[v..end].starts_with(MASK) {
                i += 1;
                continue;
            }
            out.push_str(&s[copied..v]);
            out.push_str(MASK);
            copied = end;
            i = end;
        }
        out.push_str(&s[copied..]);
        out
    }
}

/// Scans the application-supplied text of a report's sections — titles,
/// registered sections' bodies and every failed section's error (a panic
/// message may quote a connection string) — for credential shapes.
pub(crate) fn redact_sections(sections: &mut [crate::model::Section], r: &Redactor) {
    use crate::model::{Content, Custom, Data, Kind};
    for s in sections {
        if s.kind() == Kind::Custom {
            s.title = r.redact_text(&s.title);
        }
        match &mut s.content {
            Content::Ok(Data::Custom(Custom { text })) => *text = r.redact_text(text),
            Content::Ok(Data::Threads(t)) => {
                for c in t.threads.iter_mut().filter_map(|t| t.context.as_mut()) {
                    redact_context(c, r);
                }
            }
            Content::Failed { error, .. } => *error = r.redact_text(error),
            Content::Ok(_) => {}
        }
    }
}

/// A thread's context (crate::context) with the configuration's rules: a
/// label or span field whose name is secret shows [`MASK`]; every key,
/// value, span name and breadcrumb is scanned for credential shapes.
fn redact_context(c: &mut crate::model::ThreadContext, r: &Redactor) {
    let pair = |l: &mut crate::model::Label| {
        l.value = if r.is_secret_key(&l.key) {
            MASK.to_string()
        } else {
            r.redact_text(&l.value)
        };
        l.key = r.redact_text(&l.key);
    };
    c.labels.iter_mut().for_each(pair);
    for s in &mut c.spans {
        s.name = r.redact_text(&s.name);
        s.fields.iter_mut().for_each(pair);
    }
    for b in &mut c.breadcrumbs {
        b.text = r.redact_text(&b.text);
    }
}

/// Schemes of an `Authorization` header, kept in front of the mask.
const AUTH_SCHEMES: &[&str] = &[
    "Bearer",
    "Basic",
    "Token",
    "Digest",
    "Bot",
    "Negotiate",
    "NTLM",
    "ApiKey",
];

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn line_end(s: &str, from: usize) -> usize {
    s[from..].find(['\n', '\r']).map_or(s.len(), |e| from + e)
}

/// `user:password` → `user:***`, unless both sides are numbers (`uid:gid`).
fn mask_user_pass(a: &str) -> String {
    match a.split_once(':') {
        Some((u, p))
            if !(p.is_empty()
                || u.bytes().all(|c| c.is_ascii_digit())
                    && p.bytes().all(|c| c.is_ascii_digit())) =>
        {
            format!("{u}:{MASK}")
        }
        _ => a.to_string(),
    }
}

/// A user name that is really a key (a DSN's): long, letters and digits.
fn looks_like_key(s: &str) -> bool {
    s.len() >= 16
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        && s.bytes().any(|c| c.is_ascii_digit())
        && s.bytes().any(|c| c.is_ascii_alphabetic())
}

fn mask_pem(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("-----BEGIN ") {
        let after = &rest[at + 11..];
        let Some(close) = after.find("-----") else {
            break;
        };
        let label = &after[..close];
        let header_end = at + 11 + close + 5;
        out.push_str(&rest[..header_end]);
        if !label.contains("PRIVATE KEY") {
            rest = &rest[header_end..];
            continue;
        }
        out.push('\n');
        out.push_str(MASK);
        out.push('\n');
        match rest[header_end..].find("-----END ") {
            Some(e) => rest = &rest[header_end + e..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `scheme://user:password@host` and `scheme://KEY@host`.
fn mask_url_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(rel) = s[search..].find("://") {
        let at = search + rel;
        let start = at + 3;
        search = start;
        if at == 0 || !s.as_bytes()[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut region_end = line_end(s, start);
        if let Some(next) = s[start..region_end].find("://") {
            // Up to the start of the next URL's token.
            let next = start + next;
            region_end = s[start..next]
                .rfind(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                .map_or(next, |w| start + w);
        }
        let region = &s[start..region_end];
        let user_len = region
            .find(|c: char| ":/@?#".contains(c) || c.is_whitespace())
            .unwrap_or(region.len());
        let after_user = &region[user_len..];
        if let Some(pw_and_more) = after_user.strip_prefix(':') {
            let host_at = pw_and_more
                .char_indices()
                .filter(|&(i, c)| {
                    c == '@'
                        && pw_and_more[i + 1..]
                            .chars()
                            .next()
                            .is_some_and(|h| h.is_alphanumeric() || h == '[')
                })
                .map(|(i, _)| i)
                .next_back();
            let Some(host_at) = host_at else { continue };
            let pw = &pw_and_more[..host_at];
            if pw.is_empty() {
                continue;
            }
            // `host:8443/path … bob@x` across spaces is a port, not a password.
            let port_len = pw.bytes().take_while(u8::is_ascii_digit).count();
            if pw.contains(char::is_whitespace)
                && (1..=5).contains(&port_len)
                && pw[port_len..].starts_with('/')
            {
                continue;
            }
            let pw_start = start + user_len + 1;
            out.push_str(&s[copied..pw_start]);
            out.push_str(MASK);
            copied = pw_start + host_at;
            search = copied;
        } else if after_user.starts_with('@') && looks_like_key(&region[..user_len]) {
            out.push_str(&s[copied..start]);
            out.push_str(MASK);
            copied = start + user_len;
            search = copied;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// `user:password@host` without a scheme, in tokens separated by spaces
/// and punctuation.
fn mask_bare_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    // Tokens end at ASCII space and punctuation, and at any non-ASCII byte
    // (the user and host parts are ASCII): each starts and ends on a char
    // boundary, as a non-empty run of ASCII bytes does.
    let mut tokens = Vec::new();
    let mut start = 0;
    for (i, &c) in s.as_bytes().iter().enumerate() {
        let delimiter = c >= 0x80
            || c.is_ascii_whitespace()
            || matches!(
                c,
                b'"' | b'\'' | b'(' | b')' | b',' | b';' | b'=' | b'<' | b'>'
            );
        if delimiter {
            if start < i {
                tokens.push((start, i));
            }
            start = i + 1;
        }
    }
    if start < s.len() {
        tokens.push((start, s.len()));
    }
    tokens.retain(|&(a, _)| s.is_char_boundary(a));
    for (t_start, t_end) in tokens {
        let token = &s[t_start..t_end];
        if token.contains("://") {
            continue;
        }
        let Some(at) = token.rfind('@') else { continue };
        let Some(colon) = token[..at].find(':') else {
            continue;
        };
        let user = &token[..colon];
        let pw = &token[colon + 1..at];
        let host = &token[at + 1..];
        let user_ok = !user.is_empty()
            && user
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._%+-".contains(&c))
            && !["mailto", "sip", "sips", "xmpp", "im", "tel"]
                .contains(&user.to_ascii_lowercase().as_str());
        let host_ok = host.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[')
            && !["sha256:", "sha384:", "sha512:", "sha1:"]
                .iter()
                .any(|d| host.starts_with(d));
        if !user_ok || !host_ok || pw.is_empty() || pw == MASK {
            continue;
        }
        let pw_start = t_start + colon + 1;
        out.push_str(&s[copied..pw_start]);
        out.push_str(MASK);
        copied = t_start + at;
    }
    out.push_str(&s[copied..]);
    out
}

fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c)
}

fn decodes_to_user_pass(t: &str) -> bool {
    let mut bits = 0u32;
    let mut n = 0;
    let mut bytes = Vec::new();
    for c in t.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return false,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            bytes.push((bits >> n) as u8);
        }
    }
    bytes.contains(&b':') && bytes.iter().all(|b| (0x20..0x7f).contains(b))
}

/// `Bearer <credential>` and `Basic <base64 of user:password>`.
fn mask_auth_schemes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 6 < b.len() {
        let boundary = (b[i] | 0x20) == b'b' && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        let word = if boundary {
            ["bearer", "basic"].into_iter().find(|w| {
                s.get(i..i + w.len())
                    .is_some_and(|x| x.eq_ignore_ascii_case(w))
            })
        } else {
            None
        };
        let Some(word) = word else {
            i += 1;
            continue;
        };
        let mut v = i + word.len();
        if v >= b.len() || b[v] != b' ' {
            i += 1;
            continue;
        }
        while v < b.len() && b[v] == b' ' {
            v += 1;
        }
        let mut e = v;
        while e < b.len() && is_token_byte(b[e]) {
            e += 1;
        }
        let t = &s[v..e];
        let secret = if word == "bearer" {
            t.len() >= 8
                && t != MASK
                && (t.bytes().any(|c| c.is_ascii_digit())
                    || t.bytes().skip(1).any(|c| c.is_ascii_uppercase())
                    || t.bytes().any(|c| b"-._~+/=".contains(&c)))
        } else {
            t.len() >= 8 && decodes_to_user_pass(t)
        };
        if secret {
            out.push_str(&s[copied..v]);
            out.push_str(MASK);
            copied = e;
        }
        i = e.max(i + 1);
    }
    out.push_str(&s[copied..]);
    out
}

/// Well-known token prefixes: (prefix, minimum length of what follows,
/// whether `.` belongs to the token, exact length of what follows).
const TOKEN_PREFIXES: &[(&str, usize)] = &[
    ("github_pat_", 20),
    ("ghp_", 20),
    ("gho_", 20),
    ("ghu_", 20),
    ("ghs_", 20),
    ("ghr_", 20),
    ("glpat-", 20),
    ("xoxb-", 10),
    ("xoxp-", 10),
    ("xoxa-", 10),
    ("xoxr-", 10),
    ("xoxs-", 10),
    ("xoxe-", 10),
    ("xapp-", 10),
    ("sk_live_", 10),
    ("sk_test_", 10),
    ("rk_live_", 10),
    ("rk_test_", 10),
    ("whsec_", 10),
    ("sk-", 20),
    ("AIza", 30),
    ("npm_", 30),
    ("pypi-", 30),
    ("hf_", 30),
    ("SG.", 20),
    ("dop_v1_", 30),
    ("doo_v1_", 30),
    ("shpat_", 20),
    ("shpss_", 20),
    ("sq0csp-", 20),
    ("sq0atp-", 20),
];

fn mask_tokens(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    let body_byte = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.';
    while i < b.len() {
        // Only where a known prefix can start.
        let first = matches!(
            b[i],
            b'g' | b'x' | b's' | b'r' | b'w' | b'A' | b'n' | b'p' | b'h' | b'S' | b'd' | b'e'
        );
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if !first || !boundary || !s.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &s[i..];
        let body_len = |from: usize| {
            rest.as_bytes()[from..]
                .iter()
                .take_while(|&&c| body_byte(c))
                .count()
        };
        let mut hit = None;
        for &(p, min) in TOKEN_PREFIXES {
            if p.as_bytes()[0] == b[i] && rest.starts_with(p) && body_len(p.len()) >= min {
                hit = Some((p.len(), p.len() + body_len(p.len())));
                break;
            }
        }
        if hit.is_none() && (rest.starts_with("AKIA") || rest.starts_with("ASIA")) {
            let n = rest.as_bytes()[4..]
                .iter()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                .count();
            if n == 16
                && !rest
                    .as_bytes()
                    .get(20)
                    .is_some_and(|c| c.is_ascii_alphanumeric())
            {
                hit = Some((4, 20));
            }
        }
        if hit.is_none() && rest.starts_with("eyJ") {
            let parts: Vec<&str> = rest
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
                .next()
                .unwrap_or("")
                .split('.')
                .collect();
            if parts.len() >= 3 && parts[0].len() >= 8 && parts[1].len() >= 4 {
                let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + parts.len() - 1;
                hit = Some((3, len));
            }
        }
        match hit {
            Some((keep, len)) => {
                out.push_str(&s[copied..i + keep]);
                out.push_str(MASK);
                copied = i + len;
                i += len;
            }
            // Nothing starts inside this word: go to its end.
            None => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
            }
        }
    }
    out.push_str(&s[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract: names that are secret, and look-alikes that are not.
    #[test]
    fn secret_names_by_words() {
        let r = Redactor::default();
        let secret = [
            "password",
            "db_pass",
            "passwd",
            "pwd",
            "MYSQL_PWD",
            "REDIS_PASS",
            "auth",
            "basic_auth",
            "bearer",
            "session_cookie",
            "otp",
            "api_key",
            "apiKey",
            "APIKey",
            "X-Api-Key",
            "AccessKey",
            "apikey",
            "dbPassword",
            "dbpassword",
            "csrftoken",
            "GITHUB_PAT",
            "GITHUB_TOKEN",
            "SECRET_KEY_BASE",
            "aws_secret_access_key",
            "client_secret",
            "credentials",
            "Authorization",
            "Proxy-Authorization",
            "refresh_tokens",
            "session_id",
            "private_key",
            "--db-password",
        ];
        let visible = [
            "keyspace",
            "monkey_count",
            "key_path",
            "private_key_path",
            "password_file",
            "token_ttl",
            "max_tokens",
            "tokenizer",
            "secretary",
            "passwordless",
            "auth_enabled",
            "SSH_AUTH_SOCK",
            "PATH",
            "compass",
            "keyboard_layout",
            "author",
            "hotkeys_enabled",
            "user",
            "url",
        ];
        for k in secret {
            assert!(r.is_secret_key(k), "{k} must be secret");
        }
        for k in visible {
            assert!(!r.is_secret_key(k), "{k} must stay visible");
        }
        assert_eq!(
            words("dbPassword_APIKey-v2.x"),
            ["db", "password", "api", "key", "v", "2", "x"]
        );
    }

    /// The contract: values that leak, and look-alikes that must stay.
    #[test]
    fn credential_shapes_in_values() {
        let r = Redactor::default();
        let cases: &[(&str, &str)] = &[
            // URL userinfo of any characters.
            ("postgres://user:hunter2@db/x", "postgres://user:***@db/x"),
            (
                "postgres://app:pa/ss#w@rd@db:5432/x",
                "postgres://app:***@db:5432/x",
            ),
            (
                "mysql://root:my pass word@10.0.0.1/db",
                "mysql://root:***@10.0.0.1/db",
            ),
            ("redis://:s3cr3t@cache:6379/0", "redis://:***@cache:6379/0"),
            ("amqp://u:p%40ss@mq", "amqp://u:***@mq"),
            // DSN keys.
            (
                "https://0123456789abcdef0123456789abcdef@o42.ingest.sentry.io/7",
                "https://***@o42.ingest.sentry.io/7",
            ),
            (
                "https://public:secret@sentry.example/1",
                "https://public:***@sentry.example/1",
            ),
            // Secret-named query parameters and connection strings.
            (
                "https://api.example/v1?user=bob&password=hunter2&x=1",
                "https://api.example/v1?user=bob&password=***&x=1",
            ),
            (
                "https://h/cb?access_token=abc123def&state=ok",
                "https://h/cb?access_token=***&state=ok",
            ),
            (
                "https://blob.example/c?sv=2020&sig=AbCd%2Bef",
                "https://blob.example/c?sv=2020&sig=***",
            ),
            (
                "Server=db;User Id=app;Password=Tr0ub4dor;Database=x",
                "Server=db;User Id=app;Password=***;Database=x",
            ),
            (
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=q83+/w==;",
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;",
            ),
            // Scheme-less userinfo.
            (
                "admin:hunter2@db.internal:5432",
                "admin:***@db.internal:5432",
            ),
            // Headers.
            (
                "Authorization: Bearer abc.def-123",
                "Authorization: Bearer ***",
            ),
            (
                "authorization: Basic dXNlcjpwYXNz",
                "authorization: Basic ***",
            ),
            ("X-Api-Key: 7f3c9a", "X-Api-Key: ***"),
            (
                r#"{"password": "hunter2", "user": "bob"}"#,
                r#"{"password": "***", "user": "bob"}"#,
            ),
            (
                "sent Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig here",
                "sent Bearer *** here",
            ),
            ("Basic dXNlcjpwYXNz", "Basic ***"),
            // PEM private keys.
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA PRIVATE KEY-----",
                "-----BEGIN RSA PRIVATE KEY-----\n***\n-----END RSA PRIVATE KEY-----",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIE (cut",
                "-----BEGIN PRIVATE KEY-----\n***\n",
            ),
            // Token formats.
            ("ghp_0123456789abcdefghijABCDEFGHIJ0123", "ghp_***"),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
                "github_pat_***",
            ),
            (
                "token is xoxb-1234-5678-abcdefgh now",
                "token is xoxb-*** now",
            ),
            ("AKIAIOSFODNN7EXAMPLE", "AKIA***"),
            ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "key sk_live_***"),
            ("glpat-abcdefghij0123456789", "glpat-***"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                "jwt eyJ***",
            ),
            // Look-alikes that stay.
            (
                "https://example.com/a/b?page=2",
                "https://example.com/a/b?page=2",
            ),
            ("ftp://h/u:p@x", "ftp://h/u:p@x"),
            ("db.example:5432", "db.example:5432"),
            ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
            ("mailto:bob@example.com", "mailto:bob@example.com"),
            (
                "ssh://git@github.com/org/repo",
                "ssh://git@github.com/org/repo",
            ),
            ("nginx:1.25@sha256:0123abcd", "nginx:1.25@sha256:0123abcd"),
            (
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            ),
            ("Bearer tokens expire", "Bearer tokens expire"),
            ("Basic authentication", "Basic authentication"),
            (
                "keyspace=users&monkey_count=3",
                "keyspace=users&monkey_count=3",
            ),
            ("12:30 at noon@home", "12:30 at noon@home"),
            (
                "task-0123456789abcdefghij0123",
                "task-0123456789abcdefghij0123",
            ),
            (
                "build id 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
                "build id 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
            ),
            (
                "a https://u:p@h/x and redis://:pw@r:1",
                "a https://u:***@h/x and redis://:***@r:1",
            ),
            ("no urls", "no urls"),
            ("ends://", "ends://"),
        ];
        let mut failures = Vec::new();
        for (input, want) in cases {
            let got = r.redact_text(input);
            if got != *want {
                failures.push(format!("{input:?}\n   got  {got:?}\n   want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(cases.len() >= 40);
    }

    #[test]
    fn command_lines() {
        let r = Redactor::default();
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["mysql", "-uroot", "-pS3CRET", "db"],
                &["mysql", "-uroot", "-p***", "db"],
            ),
            (
                &["daemon", "--pass", "S3CRET", "-v"],
                &["daemon", "--pass", "***", "-v"],
            ),
            (
                &["daemon", "--password=S3CRET"],
                &["daemon", "--password=***"],
            ),
            (
                &["daemon", "--auth=S3CRET", "--auth-type", "basic"],
                &["daemon", "--auth=***", "--auth-type", "basic"],
            ),
            (
                &["curl", "-u", "bob:S3CRET", "https://h/"],
                &["curl", "-u", "bob:***", "https://h/"],
            ),
            (&["curl", "--user=bob:S3CRET"], &["curl", "--user=bob:***"]),
            (
                &["curl", "-H", "Authorization: Bearer S3CRET99"],
                &["curl", "-H", "Authorization: Bearer ***"],
            ),
            (
                &["env", "DB_PASSWORD=S3CRET", "API_KEY=x y", "LANG=C"],
                &["env", "DB_PASSWORD=***", "API_KEY=***", "LANG=C"],
            ),
            (
                &["sshpass", "-p", "S3CRET", "ssh", "h"],
                &["sshpass", "-p", "***", "ssh", "h"],
            ),
            (
                &["redis-cli", "-a", "S3CRET", "-p", "6379"],
                &["redis-cli", "-a", "***", "-p", "6379"],
            ),
            (
                &["openssl", "rsa", "-passin", "pass:S3CRET"],
                &["openssl", "rsa", "-passin", "pass:***"],
            ),
            (&["app", "-token", "S3CRET"], &["app", "-token", "***"]),
            (
                &["app", "--db-url", "postgres://u:S3CRET@h/d"],
                &["app", "--db-url", "postgres://u:***@h/d"],
            ),
            // Look-alikes.
            (
                &["docker", "run", "-u", "1000:1000", "-p", "8080:80"],
                &["docker", "run", "-u", "1000:1000", "-p", "8080:80"],
            ),
            (
                &["app", "--password-file", "/run/pw", "--keyspace", "k1"],
                &["app", "--password-file", "/run/pw", "--keyspace", "k1"],
            ),
            (
                &["app", "--no-password", "--host", "h"],
                &["app", "--no-password", "--host", "h"],
            ),
            (&["ssh", "-p2222", "host"], &["ssh", "-p2222", "host"]),
            (
                &["nginx: worker process --password S3CRET"],
                &["nginx: worker process --password ***"],
            ),
        ];
        for (args, want) in cases {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            assert_eq!(r.redact_command_line(&args), *want, "{args:?}");
        }
    }

    /// Arbitrary text (multi-byte characters next to every delimiter the
    /// scanners look for) never panics, and masking is idempotent
    /// (a masked report's text is stable under another pass).
    #[test]
    fn arbitrary_text_never_panics() {
        let r = Redactor::default();
        let alphabet: Vec<&str> = vec![
            "a",
            "Z",
            "0",
            "9",
            ":",
            "@",
            "/",
            "//",
            "://",
            "=",
            "&",
            "?",
            "#",
            ";",
            ",",
            " ",
            "\n",
            "\"",
            "'",
            "-",
            "--",
            "_",
            ".",
            "é",
            "€",
            "😀",
            "\u{2028}",
            "password",
            "Bearer ",
            "Basic ",
            "ghp_",
            "eyJ",
            "AKIA",
            "-----BEGIN PRIVATE KEY-----",
            "-----END ",
            "pass:",
            "-p",
            "-u",
            "key",
            "***",
            "[",
            "(",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let once = r.redact_text(&s);
            let _ = r.is_secret_key(&s);
            let args: Vec<String> = s.split(' ').map(str::to_string).collect();
            let _ = r.redact_command_line(&args);
            let _ = r.redact_command_line(std::slice::from_ref(&s));
            assert_eq!(r.redact_text(&once), once, "masking twice changes {s:?}");
        }
    }

    #[test]
    fn custom_rules_keep_the_builder_api() {
        let r = Redactor::new(["pin"]);
        assert!(r.is_secret_key("SIM_PIN"));
        assert!(!r.is_secret_key("password"));
        let r = Redactor::new(DEFAULT_SECRET_KEYS.iter().chain(&["pin$"]));
        assert!(r.is_secret_key("sim_pin") && r.is_secret_key("db_pass"));
        assert!(!r.is_secret_key("pin_threads"));
        // Empty and blank rules are ignored, not "match everything".
        let r = Redactor::new(["", "  ", "$"]);
        assert!(!r.is_secret_key("anything"));
    }
}
