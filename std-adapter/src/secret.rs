//! [`Secret<T>`]: a value that never shows in a report, a log or a debug print.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret looks like in every output.
pub const MASK: &str = "***";

/// Wraps a configuration value that must never be printed: it serializes as
/// `"***"`, and its `Debug` and `Display` print `***` too. Read it with
/// [`Secret::expose`].
///
/// It deserializes transparently, so a settings struct loaded from a file can
/// use it directly:
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Database {
///     url: String,
///     password: guru::Secret<String>,
/// }
/// let db: Database = serde_json::from_str(r#"{"url":"db:5432","password":"hunter2"}"#).unwrap();
/// assert_eq!(db.password.expose(), "hunter2");
/// assert_eq!(serde_json::to_string(&db).unwrap(), r#"{"url":"db:5432","password":"***"}"#);
/// assert_eq!(format!("{:?}", db.password), "Secret(***)");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The value itself.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}
