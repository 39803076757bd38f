//! The Configuration section: any `serde::Serialize` value flattened into
//! `key = value` lines grouped like oslo's `[group]` blocks, with secrets
//! masked; optionally the environment, redacted the same way.
//!
//! Masking happens in three layers, so one mistake does not leak a secret:
//! [`Secret<T>`](crate::Secret) serializes as `***` before we ever see the
//! value; a key whose name contains one of the secret-key rules (default:
//! `password`, `secret`, `token`, `key`, `credential`, case-insensitive) has
//! its whole value masked, nested parts included; and a `scheme://user:pass@`
//! URL in any string loses its password.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::MASK;

/// The default secret-key rules.
pub const DEFAULT_SECRET_KEYS: [&str; 5] = ["password", "secret", "token", "key", "credential"];

/// Decides what is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redactor {
    rules: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(DEFAULT_SECRET_KEYS)
    }
}

impl Redactor {
    pub(crate) fn new<S: AsRef<str>>(rules: impl IntoIterator<Item = S>) -> Redactor {
        Redactor {
            rules: rules
                .into_iter()
                .map(|r| r.as_ref().trim().to_ascii_lowercase())
                .filter(|r| !r.is_empty())
                .collect(),
        }
    }

    /// Whether a key names a secret: it contains a rule, ignoring case.
    pub(crate) fn is_secret_key(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        self.rules.iter().any(|r| key.contains(r.as_str()))
    }

    /// Masks the password of every `scheme://user:password@host` in `s`.
    pub(crate) fn redact_text(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(at) = rest.find("://") {
            let (head, tail) = rest.split_at(at + 3);
            out.push_str(head);
            // The authority ends at the first '/', '?', '#' or whitespace.
            let end = tail
                .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
                .unwrap_or(tail.len());
            let authority = &tail[..end];
            match (authority.rfind('@'), authority.find(':')) {
                (Some(at_sign), Some(colon)) if colon < at_sign => {
                    out.push_str(&authority[..=colon]);
                    out.push_str(MASK);
                    out.push_str(&authority[at_sign..]);
                }
                _ => out.push_str(authority),
            }
            rest = &tail[end..];
        }
        out.push_str(rest);
        out
    }
}

/// One `[group]` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) entries: Vec<Entry>,
}

/// One `key = value` line; the value is already masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// Name of the group of top-level scalar options (oslo's `DEFAULT`).
pub(crate) const DEFAULT_GROUP: &str = "DEFAULT";

/// Serializes `config` to a value tree (secrets are `***` from here on).
pub(crate) fn to_value<T: Serialize + ?Sized>(config: &T) -> Result<Value, String> {
    serde_json::to_value(config).map_err(|e| e.to_string())
}

/// Flattens a serialized configuration into groups: top-level scalars go to
/// `[DEFAULT]`, each top-level table becomes a `[group]` whose nested tables
/// flatten into dotted keys. Keys are sorted (serde_json keeps objects sorted).
pub(crate) fn groups(value: &Value, redactor: &Redactor) -> Vec<Group> {
    let mut default = Group {
        name: DEFAULT_GROUP.into(),
        entries: Vec::new(),
    };
    let mut tables = Vec::new();
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::Object(inner) if !redactor.is_secret_key(key) && !inner.is_empty() => {
                        let mut g = Group {
                            name: key.clone(),
                            entries: Vec::new(),
                        };
                        for (k, vv) in inner {
                            flatten(k, vv, redactor, &mut g.entries);
                        }
                        tables.push(g);
                    }
                    _ => flatten(key, v, redactor, &mut default.entries),
                }
            }
        }
        other => flatten("value", other, redactor, &mut default.entries),
    }
    let mut out = Vec::with_capacity(tables.len() + 1);
    if !default.entries.is_empty() {
        out.push(default);
    }
    out.extend(tables);
    out
}

fn flatten(key: &str, value: &Value, redactor: &Redactor, out: &mut Vec<Entry>) {
    if redactor.is_secret_key(key) {
        out.push(Entry {
            key: key.into(),
            value: MASK.into(),
        });
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&format!("{key}.{k}"), v, redactor, out);
            }
        }
        Value::Array(items) if items.iter().any(|v| v.is_object() || v.is_array()) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{key}[{i}]"), v, redactor, out);
            }
        }
        other => out.push(Entry {
            key: key.into(),
            value: scalar(other, redactor),
        }),
    }
}

fn scalar(value: &Value, redactor: &Redactor) -> String {
    match value {
        Value::String(s) => redactor.redact_text(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|v| scalar(v, redactor)).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(_) => "{}".into(),
        other => other.to_string(),
    }
}

/// The `[environment]` group: every variable, secrets masked by name, URLs
/// with passwords redacted. Sorted by name.
pub(crate) fn environment_group(redactor: &Redactor) -> Group {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    Group {
        name: "environment".into(),
        entries: vars
            .into_iter()
            .map(|(key, value)| {
                let value = if redactor.is_secret_key(&key) {
                    MASK.to_string()
                } else {
                    redactor.redact_text(&value)
                };
                Entry { key, value }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    #[derive(Serialize)]
    struct Db {
        url: String,
        password: String,
        pool: Pool,
    }
    #[derive(Serialize)]
    struct Pool {
        size: u32,
        auth: Auth,
    }
    #[derive(Serialize)]
    struct Auth {
        user: String,
        credentials: Vec<String>,
    }
    #[derive(Serialize)]
    struct Settings {
        name: String,
        workers: u32,
        api: Secret<String>,
        hosts: Vec<String>,
        database: Db,
        #[serde(rename = "AccessKey")]
        access_key: Option<u32>,
    }

    fn entries(groups: &[Group]) -> Vec<String> {
        groups
            .iter()
            .flat_map(|g| {
                g.entries
                    .iter()
                    .map(move |e| format!("[{}] {} = {}", g.name, e.key, e.value))
            })
            .collect()
    }

    #[test]
    fn groups_flatten_and_mask() {
        let s = Settings {
            name: "svc".into(),
            workers: 4,
            api: Secret::new("sekrit-1".into()),
            hosts: vec!["a".into(), "b".into()],
            database: Db {
                url: "postgres://app:sekrit-2@db:5432/x".into(),
                password: "sekrit-3".into(),
                pool: Pool {
                    size: 8,
                    auth: Auth {
                        user: "u".into(),
                        credentials: vec!["sekrit-4".into()],
                    },
                },
            },
            access_key: Some(77),
        };
        let v = to_value(&s).unwrap();
        let g = groups(&v, &Redactor::default());
        assert_eq!(
            entries(&g),
            [
                "[DEFAULT] AccessKey = ***",
                "[DEFAULT] api = ***",
                "[DEFAULT] hosts = [a, b]",
                "[DEFAULT] name = svc",
                "[DEFAULT] workers = 4",
                "[database] password = ***",
                "[database] pool.auth.credentials = ***",
                "[database] pool.auth.user = u",
                "[database] pool.size = 8",
                "[database] url = postgres://app:***@db:5432/x",
            ]
        );
        let all = format!("{g:?}");
        assert!(!all.contains("sekrit"), "{all}");
    }

    #[test]
    fn non_object_configs_and_custom_rules() {
        let v = to_value(&42u8).unwrap();
        assert_eq!(
            entries(&groups(&v, &Redactor::default())),
            ["[DEFAULT] value = 42"]
        );
        let r = Redactor::new(["pin"]);
        assert!(r.is_secret_key("SIM_PIN"));
        assert!(!r.is_secret_key("password"));
    }

    #[test]
    fn url_passwords_are_redacted_everywhere() {
        let r = Redactor::default();
        assert_eq!(
            r.redact_text("a https://u:p@h/x and redis://:pw@r:1 ftp://h/u:p@x"),
            "a https://u:***@h/x and redis://:***@r:1 ftp://h/u:p@x"
        );
        assert_eq!(r.redact_text("no urls"), "no urls");
        assert_eq!(r.redact_text("ends://"), "ends://");
    }
}
