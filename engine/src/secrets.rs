//! Secrets: where their values come from, how secret references (`@@secret:NAME@@`, defined in
//! `sdk/wit/drover.wit`) are filled in on the way to a target, and redaction of every exact
//! occurrence of a value in what a plugin emits.
//!
//! A [`SecretValue`] never prints its value through `Debug` or `Display`; the only way to the
//! text is [`SecretValue::expose`], which is called where the value leaves for a target or a
//! granted plugin.

use std::collections::BTreeMap;
use std::fmt;

/// A secret's value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The value itself: only for sending it where it is needed.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(..)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

/// Where secret values come from.
pub trait SecretSource: Send + Sync {
    /// The value of the secret `name`, if there is one.
    fn get(&self, name: &str) -> Option<SecretValue>;
}

/// Secrets from environment variables: the secret `sql-admin` is read from
/// `DROVER_SECRET_SQL_ADMIN` (upper case, `-` and `.` become `_`).
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvSecrets;

impl EnvSecrets {
    /// The environment variable holding the secret `name`.
    pub fn variable(name: &str) -> String {
        let mut var = String::from("DROVER_SECRET_");
        var.extend(
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }),
        );
        var
    }
}

impl SecretSource for EnvSecrets {
    fn get(&self, name: &str) -> Option<SecretValue> {
        std::env::var(Self::variable(name)).ok().map(SecretValue)
    }
}

/// Secrets held in memory (tests, or values already loaded from a file).
#[derive(Debug, Default, Clone)]
pub struct MapSecrets(BTreeMap<String, SecretValue>);

impl MapSecrets {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.insert(name.into(), SecretValue::new(value));
        self
    }
}

impl SecretSource for MapSecrets {
    fn get(&self, name: &str) -> Option<SecretValue> {
        self.0.get(name).cloned()
    }
}

const REF_OPEN: &[u8] = b"@@secret:";
const REF_CLOSE: &[u8] = b"@@";

/// The names of all secret references in `bytes`, in order of appearance.
pub fn references(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let _ = fill(bytes, |name| {
        names.push(name.to_string());
        Ok::<_, ()>(Vec::new())
    });
    names
}

/// Replaces every secret reference in `bytes` with what `lookup` returns for its name.
pub fn fill<E>(bytes: &[u8], mut lookup: impl FnMut(&str) -> Result<Vec<u8>, E>) -> Result<Vec<u8>, E> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(start) = find(rest, REF_OPEN) {
        let after = &rest[start + REF_OPEN.len()..];
        let Some(len) = find(after, REF_CLOSE) else { break };
        let name = &after[..len];
        let valid = !name.is_empty()
            && name.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            out.extend_from_slice(&rest[..start + REF_OPEN.len()]);
            rest = after;
            continue;
        }
        out.extend_from_slice(&rest[..start]);
        // The name is ASCII, checked above.
        out.extend(lookup(std::str::from_utf8(name).unwrap_or_default())?);
        rest = &after[len + REF_CLOSE.len()..];
    }
    out.extend_from_slice(rest);
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Replaces every exact occurrence of known secret values with `[redacted NAME]`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (name, value), longest value first so that a value containing another is redacted whole.
    values: Vec<(String, SecretValue)>,
}

impl Redactor {
    /// A redactor for these secrets. Empty values are ignored.
    pub fn new(secrets: impl IntoIterator<Item = (String, SecretValue)>) -> Self {
        let mut values: Vec<_> = secrets.into_iter().filter(|(_, v)| !v.expose().is_empty()).collect();
        values.sort_by_key(|(_, v)| std::cmp::Reverse(v.expose().len()));
        Redactor { values }
    }

    /// Adds a secret (one revealed or filled in during a call).
    pub fn add(&mut self, name: String, value: SecretValue) {
        if value.expose().is_empty() || self.values.iter().any(|(_, v)| v == &value) {
            return;
        }
        self.values.push((name, value));
        self.values.sort_by_key(|(_, v)| std::cmp::Reverse(v.expose().len()));
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (name, value) in &self.values {
            if text.contains(value.expose()) {
                text = text.replace(value.expose(), &format!("[redacted {name}]"));
            }
        }
        text
    }

    /// `bytes` with every secret value replaced.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.redact(text).into_bytes(),
            Err(_) => {
                let mut out = bytes.to_vec();
                for (name, value) in &self.values {
                    let needle = value.expose().as_bytes();
                    let mut replaced = Vec::with_capacity(out.len());
                    let mut rest = out.as_slice();
                    while let Some(at) = find(rest, needle) {
                        replaced.extend_from_slice(&rest[..at]);
                        replaced.extend_from_slice(format!("[redacted {name}]").as_bytes());
                        rest = &rest[at + needle.len()..];
                    }
                    replaced.extend_from_slice(rest);
                    out = replaced;
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_filled_and_listed() {
        let text = b"-user svc -pass @@secret:svc-pass@@ @@secret:bad name@@ @@secret:x@@";
        assert_eq!(references(text), ["svc-pass", "x"]);
        let filled = fill(text, |n| Ok::<_, ()>(format!("<{n}>").into_bytes())).unwrap();
        assert_eq!(String::from_utf8(filled).unwrap(), "-user svc -pass <svc-pass> @@secret:bad name@@ <x>");
    }

    #[test]
    fn redaction_replaces_every_occurrence_longest_first() {
        let r = Redactor::new([
            ("short".to_string(), SecretValue::new("abc")),
            ("long".to_string(), SecretValue::new("abcdef")),
        ]);
        assert_eq!(r.redact("x abcdef y abc"), "x [redacted long] y [redacted short]");
        assert_eq!(r.redact_bytes(b"\xffabc"), b"\xff[redacted short]".to_vec());
    }

    #[test]
    fn env_variable_names() {
        assert_eq!(EnvSecrets::variable("sql-admin.pw"), "DROVER_SECRET_SQL_ADMIN_PW");
        assert_eq!(
            format!("{:?} {}", SecretValue::new("p"), SecretValue::new("p")),
            "SecretValue(..) [secret]"
        );
    }
}
