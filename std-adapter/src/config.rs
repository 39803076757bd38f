//! The Configuration section: any `serde::Serialize` value flattened into
//! `key = value` lines grouped like oslo's `[group]` blocks, with secrets
//! masked; optionally the environment, redacted the same way.
//!
//! Masking happens in layers, so one mistake does not leak a secret:
//! [`Secret<T>`](crate::Secret) serializes as `***` before we ever see the
//! value; a key whose name is secret by the rules of [`crate::redact`]
//! (words such as `password`, `token`, `api_key`, `pass`, `pwd`) has its whole
//! value masked, nested parts included; a two-element sequence whose first
//! element is a secret name (a serialized `("password", x)` tuple) loses
//! its second; and every string shown — values, map keys, group names —
//! is scanned for credential shapes (URL passwords, tokens, PEM keys, …).

use serde_json::Value;

pub use crate::redact::DEFAULT_SECRET_KEYS;
pub(crate) use crate::redact::Redactor;
use crate::secret::MASK;
use serde::Serialize;

/// One `[group]` block, and one `key = value` line (the value already
/// masked): model data.
pub(crate) use crate::model::{ConfigEntry as Entry, ConfigGroup as Group};

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
                            name: redactor.redact_text(key),
                            entries: Vec::new(),
                        };
                        for (k, vv) in inner {
                            flatten("", k, vv, redactor, &mut g.entries);
                        }
                        tables.push(g);
                    }
                    _ => flatten("", key, v, redactor, &mut default.entries),
                }
            }
        }
        other => flatten("", "value", other, redactor, &mut default.entries),
    }
    let mut out = Vec::with_capacity(tables.len() + 1);
    if !default.entries.is_empty() {
        out.push(default);
    }
    out.extend(tables);
    out
}

/// Flattens `value`, found under map key `segment` below `path` (empty at
/// a group's top). The secret-name rules apply to each map key on its own;
/// map keys are shown scanned for credential shapes, like values.
fn flatten(path: &str, segment: &str, value: &Value, redactor: &Redactor, out: &mut Vec<Entry>) {
    let shown = redactor.redact_text(segment);
    let key = if path.is_empty() {
        shown
    } else {
        format!("{path}.{shown}")
    };
    if redactor.is_secret_key(segment) {
        out.push(Entry {
            key,
            value: MASK.into(),
        });
        return;
    }
    flatten_value(key, value, redactor, out);
}

fn flatten_value(key: String, value: &Value, redactor: &Redactor, out: &mut Vec<Entry>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&key, k, v, redactor, out);
            }
        }
        Value::Array(items) if secret_pair(items, redactor) => out.push(Entry {
            key,
            value: scalar(value, redactor),
        }),
        Value::Array(items) if items.iter().any(|v| v.is_object() || v.is_array()) => {
            for (i, v) in items.iter().enumerate() {
                flatten_value(format!("{key}[{i}]"), v, redactor, out);
            }
        }
        other => out.push(Entry {
            key,
            value: scalar(other, redactor),
        }),
    }
}

/// A serialized `("password", x)`: two elements, the first a secret name.
fn secret_pair(items: &[Value], redactor: &Redactor) -> bool {
    matches!(items, [Value::String(name), _] if redactor.is_secret_key(name))
}

fn scalar(value: &Value, redactor: &Redactor) -> String {
    match value {
        Value::String(s) => redactor.redact_text(s),
        Value::Array(items) if secret_pair(items, redactor) => {
            format!("[{}, {MASK}]", scalar(&items[0], redactor))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|v| scalar(v, redactor)).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(_) => "{}".into(),
        other => other.to_string(),
    }
}

/// The `[environment]` group: every variable, secrets masked by name (the
/// same rules as configuration keys; `PWD`, the working directory, stays),
/// values and names scanned for credential shapes. Sorted by name.
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
                let value = if key != "PWD" && redactor.is_secret_key(&key) {
                    MASK.to_string()
                } else {
                    redactor.redact_text(&value)
                };
                Entry {
                    key: redactor.redact_text(&key),
                    value,
                }
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
                "[database] pool.auth = ***",
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
