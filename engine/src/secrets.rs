//! Secrets: where their values come from, how secret references (`@@secret:NAME@@` and
//! `@@secret:NAME:CONTEXT@@`, defined in `sdk/wit/drover.wit`) are filled in on the way to a
//! target, escaped for their [`Context`] (a value the context cannot hold is refused by name,
//! never quoted), and redaction of every exact occurrence of a value in what a plugin emits.
//! Where references may stand (stdin and files, never a command line) is the host's business
//! (`plugin/imports.rs`).
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

/// Whether `name` can name a secret: letters, digits, `-`, `_` and `.`, at least one.
pub fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
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

/// Why a secrets file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Unreadable.
    #[error("cannot read the secrets file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error(
        "the secrets file {path} is readable by others (mode {mode:03o}); make it private with `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a TOML table of strings.
    #[error("the secrets file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
}

/// The permission bits of `path` (`0o644`) when its group or others have any of them, `None` when
/// only its owner has: the check for files that hold secrets (this module's secrets file, the web
/// view's users file), made before they are read.
pub fn exposed_mode(path: &std::path::Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// Secrets from a TOML file of `name = "value"` lines, refused unless only its owner may read it.
#[derive(Debug, Clone)]
pub struct FileSecrets(MapSecrets);

impl FileSecrets {
    /// Reads `path`.
    pub fn load(path: &std::path::Path) -> Result<FileSecrets, SecretsError> {
        let shown = path.display().to_string();
        let io = |source| SecretsError::Io { path: shown.clone(), source };
        if let Some(mode) = exposed_mode(path).map_err(io)? {
            return Err(SecretsError::Exposed { path: shown, mode });
        }
        let text = crate::input_file::read_to_string(path).map_err(io)?;
        let table: BTreeMap<String, String> = toml::from_str(&text).map_err(|e| {
            let source = crate::diagnostic::Source::new(path, &text);
            let at = source.line_column(e.span().map_or(0, |s| s.start));
            // Never quote the file: the message names the place, not the value.
            SecretsError::Invalid {
                path: shown.clone(),
                message: format!("line {}, column {}: every entry must be `name = \"value\"`", at.0, at.1),
            }
        })?;
        Ok(FileSecrets(MapSecrets(table.into_iter().map(|(k, v)| (k, SecretValue(v))).collect())))
    }
}

impl SecretSource for FileSecrets {
    fn get(&self, name: &str) -> Option<SecretValue> {
        self.0.get(name)
    }
}

/// Several sources, asked in order.
pub struct Layered(pub Vec<Box<dyn SecretSource>>);

impl SecretSource for Layered {
    fn get(&self, name: &str) -> Option<SecretValue> {
        self.0.iter().find_map(|source| source.get(name))
    }
}

const REF_OPEN: &[u8] = b"@@secret:";
const REF_CLOSE: &[u8] = b"@@";

/// How a filled value is written where its reference stands: the part after the name in
/// `@@secret:NAME:CONTEXT@@` (`sdk/wit/drover.wit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `@@secret:NAME@@`: the value as it is, for stdin and files that take raw text.
    Raw,
    /// `@@secret:NAME:xml@@`: XML-escaped (`&`, `<`, `>`, `"`, `'` and tab, line feed and carriage
    /// return as character references), fit for element text and attribute values alike. A value
    /// holding a character XML 1.0 cannot represent (other control characters, U+FFFE, U+FFFF)
    /// is refused.
    Xml,
}

impl Context {
    /// The context a reference's suffix names.
    fn parse(word: &str) -> Option<Context> {
        match word {
            "xml" => Some(Context::Xml),
            _ => None,
        }
    }

    /// The name used in references and messages.
    pub fn name(self) -> &'static str {
        match self {
            Context::Raw => "raw",
            Context::Xml => "xml",
        }
    }

    /// `value` written for this context, or why it cannot be.
    fn write(self, value: &str, out: &mut Vec<u8>) -> Result<(), &'static str> {
        match self {
            Context::Raw => out.extend_from_slice(value.as_bytes()),
            Context::Xml => {
                for c in value.chars() {
                    match c {
                        '&' => out.extend_from_slice(b"&amp;"),
                        '<' => out.extend_from_slice(b"&lt;"),
                        '>' => out.extend_from_slice(b"&gt;"),
                        '"' => out.extend_from_slice(b"&quot;"),
                        '\'' => out.extend_from_slice(b"&apos;"),
                        '\t' => out.extend_from_slice(b"&#9;"),
                        '\n' => out.extend_from_slice(b"&#10;"),
                        '\r' => out.extend_from_slice(b"&#13;"),
                        '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {
                            return Err("its value holds a character XML 1.0 cannot represent");
                        }
                        c => {
                            let mut buf = [0; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A secret reference that cannot be filled for its context. Messages name the secret and the
/// context, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// `@@secret:NAME:CONTEXT@@` with a context the host does not know.
    #[error("the reference to secret {name} names an unknown context {context:?} (known: xml)")]
    Unknown {
        /// The secret.
        name: String,
        /// The context as written.
        context: String,
    },
    /// The value cannot be held by the context.
    #[error("secret {name} cannot be filled in the {context} context: {why}")]
    Unrepresentable {
        /// The secret.
        name: String,
        /// The context.
        context: &'static str,
        /// What in the value the context cannot hold, without quoting it.
        why: &'static str,
    },
}

/// A reference as written: its name and the context, `None` when the context is unknown.
struct Found<'a> {
    name: &'a str,
    context: Result<Context, &'a str>,
}

/// Splits the text between `@@secret:` and `@@` into a reference, or `None` when it is not one
/// (then it is left as it is).
fn parse_reference(inner: &[u8]) -> Option<Found<'_>> {
    let inner = std::str::from_utf8(inner).ok()?;
    let (name, context) = match inner.split_once(':') {
        Some((name, context)) => (name, Some(context)),
        None => (inner, None),
    };
    let name_ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let context_ok =
        context.is_none_or(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !name_ok || !context_ok {
        return None;
    }
    let context = match context {
        None => Ok(Context::Raw),
        Some(word) => Context::parse(word).ok_or(word),
    };
    Some(Found { name, context })
}

/// Walks `bytes`, handing literal text and references to `each` in order.
fn walk<E>(bytes: &[u8], mut each: impl FnMut(Result<&[u8], Found<'_>>) -> Result<(), E>) -> Result<(), E> {
    let mut rest = bytes;
    while let Some(start) = find(rest, REF_OPEN) {
        let after = &rest[start + REF_OPEN.len()..];
        let Some(len) = find(after, REF_CLOSE) else { break };
        let Some(found) = parse_reference(&after[..len]) else {
            each(Ok(&rest[..start + REF_OPEN.len()]))?;
            rest = after;
            continue;
        };
        each(Ok(&rest[..start]))?;
        each(Err(found))?;
        rest = &after[len + REF_CLOSE.len()..];
    }
    each(Ok(rest))
}

/// The names of all secret references in `bytes`, in order of appearance, whatever their
/// context.
pub fn references(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let _ = walk(bytes, |piece| {
        if let Err(found) = piece {
            names.push(found.name.to_string());
        }
        Ok::<_, ()>(())
    });
    names
}

/// Replaces every secret reference in `bytes` with the value `lookup` returns for its name,
/// written for the reference's context. A reference whose context is unknown, or whose value the
/// context cannot hold, is an error ([`ContextError`]) and nothing is filled.
pub fn fill<E: From<ContextError>>(
    bytes: &[u8],
    mut lookup: impl FnMut(&str) -> Result<SecretValue, E>,
) -> Result<Vec<u8>, E> {
    let mut out = Vec::with_capacity(bytes.len());
    walk(bytes, |piece| -> Result<(), E> {
        match piece {
            Ok(text) => out.extend_from_slice(text),
            Err(Found { name, context }) => {
                let context = context
                    .map_err(|word| ContextError::Unknown { name: name.into(), context: word.into() })?;
                let value = lookup(name)?;
                context.write(value.expose(), &mut out).map_err(|why| ContextError::Unrepresentable {
                    name: name.into(),
                    context: context.name(),
                    why,
                })?;
            }
        }
        Ok(())
    })?;
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every secret value this process has looked up for a plugin call: log lines are redacted
/// against it, whichever crate writes them (wasmtime's WASI logs guest output at debug level).
static SEEN: std::sync::RwLock<Redactor> = std::sync::RwLock::new(Redactor { values: Vec::new() });

fn remember(name: &str, value: &SecretValue) {
    if let Ok(mut seen) = SEEN.write() {
        seen.insert(name.to_string(), value.clone());
    }
}

/// Wraps the log output: every write is redacted against every secret value the process has
/// used. `tracing`'s formatter writes one event per call, so values are never split.
pub struct RedactingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let redacted = match SEEN.read() {
            Ok(seen) if !seen.is_empty() => seen.redact_bytes(buf),
            _ => buf.to_vec(),
        };
        self.0.write_all(&redacted)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Replaces every exact occurrence of known secret values with `[redacted NAME]`. Every value a
/// redactor learns is also remembered for the log output ([`RedactingWriter`]).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (name, value), longest value first so that a value containing another is redacted whole.
    values: Vec<(String, SecretValue)>,
}

impl Redactor {
    /// A redactor for these secrets. Empty values are ignored.
    pub fn new(secrets: impl IntoIterator<Item = (String, SecretValue)>) -> Self {
        let mut redactor = Redactor::default();
        for (name, value) in secrets {
            redactor.add(name, value);
        }
        redactor
    }

    /// Adds a secret (one revealed or filled in during a call).
    pub fn add(&mut self, name: String, value: SecretValue) {
        remember(&name, &value);
        self.insert(name, value);
    }

    fn insert(&mut self, name: String, value: SecretValue) {
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

    /// What a test's lookup fails with.
    #[derive(Debug, PartialEq)]
    enum Failed {
        Missing(String),
        Context(ContextError),
    }

    impl From<ContextError> for Failed {
        fn from(e: ContextError) -> Self {
            Failed::Context(e)
        }
    }

    fn fill_with(text: &str, secrets: &MapSecrets) -> Result<String, Failed> {
        let filled = fill(text.as_bytes(), |n| secrets.get(n).ok_or_else(|| Failed::Missing(n.into())))?;
        Ok(String::from_utf8(filled).unwrap())
    }

    #[test]
    fn references_are_filled_and_listed() {
        let text = "-user svc -pass @@secret:svc-pass@@ @@secret:bad name@@ @@secret:x@@ @@secret:y:xml@@";
        assert_eq!(references(text.as_bytes()), ["svc-pass", "x", "y"]);
        let secrets = MapSecrets::new().with("svc-pass", "<svc-pass>").with("x", "<x>").with("y", "<y>");
        assert_eq!(
            fill_with(text, &secrets).unwrap(),
            "-user svc -pass <svc-pass> @@secret:bad name@@ <x> &lt;y&gt;"
        );
        assert_eq!(fill_with("@@secret:nope@@", &secrets), Err(Failed::Missing("nope".into())));
    }

    #[test]
    fn an_xml_reference_is_filled_escaped_for_text_and_attributes() {
        let value = "a]]>b<c&d\"e'f\tg\nh\ri é";
        let secrets = MapSecrets::new().with("pw", value);
        assert_eq!(
            fill_with("<P a=\"@@secret:pw:xml@@\">@@secret:pw:xml@@</P>", &secrets).unwrap(),
            "<P a=\"a]]&gt;b&lt;c&amp;d&quot;e&apos;f&#9;g&#10;h&#13;i é\">a]]&gt;b&lt;c&amp;d&quot;e&apos;f&#9;g&#10;h&#13;i é</P>"
        );
        assert_eq!(fill_with("@@secret:pw@@", &secrets).unwrap(), value, "raw is the value as it is");
    }

    #[test]
    fn a_value_a_context_cannot_hold_is_refused_by_name() {
        for value in ["bell\u{7}", "nul\u{0}", "\u{ffff}"] {
            let secrets = MapSecrets::new().with("sso-pw", value);
            let e = fill_with("<P>@@secret:sso-pw:xml@@</P>", &secrets).unwrap_err();
            let Failed::Context(e) = e else { panic!("{e:?}") };
            assert_eq!(
                e.to_string(),
                "secret sso-pw cannot be filled in the xml context: its value holds a character XML 1.0 cannot represent"
            );
            assert!(fill_with("@@secret:sso-pw@@", &secrets).is_ok(), "raw holds anything");
        }
    }

    #[test]
    fn an_unknown_context_is_an_error_not_literal_text() {
        let secrets = MapSecrets::new().with("pw", "v");
        let Err(Failed::Context(e)) = fill_with("x @@secret:pw:json@@", &secrets) else { panic!() };
        assert_eq!(
            e.to_string(),
            "the reference to secret pw names an unknown context \"json\" (known: xml)"
        );
        assert_eq!(references(b"@@secret:pw:json@@"), ["pw"], "its name is still checked against grants");
        for literal in ["@@secret:pw:@@", "@@secret:pw:x y@@", "@@secret::xml@@"] {
            assert_eq!(fill_with(literal, &secrets).unwrap(), literal, "not a reference");
        }
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
    fn a_secrets_file_is_read_only_when_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        std::fs::write(&path, "svc-pass = \"s3cret\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = FileSecrets::load(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "the secrets file {0} is readable by others (mode 644); make it private with `chmod 600 {0}`",
                path.display()
            )
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = FileSecrets::load(&path).unwrap();
        assert_eq!(file.get("svc-pass"), Some(SecretValue::new("s3cret")));
        let layered = Layered(vec![Box::new(MapSecrets::new().with("svc-pass", "env")), Box::new(file)]);
        assert_eq!(layered.get("svc-pass"), Some(SecretValue::new("env")), "the first source wins");
        std::fs::write(&path, "svc-pass = 42\n").unwrap();
        let e = FileSecrets::load(&path).unwrap_err().to_string();
        assert!(e.ends_with("line 1, column 12: every entry must be `name = \"value\"`"), "{e}");
        assert!(!e.contains("42"));
    }

    #[test]
    fn log_output_is_redacted_against_every_value_used() {
        use std::io::Write;
        let _ = Redactor::new([("log-test".to_string(), SecretValue::new("only-in-this-test-7f3a"))]);
        let mut out = RedactingWriter(Vec::new());
        out.write_all(b"DEBUG worker writing: b\"only-in-this-test-7f3a\"\n").unwrap();
        assert_eq!(String::from_utf8(out.0).unwrap(), "DEBUG worker writing: b\"[redacted log-test]\"\n");
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
