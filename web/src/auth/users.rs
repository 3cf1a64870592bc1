//! The users file: who may log in to the web view and act, as TOML.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$..."   # argon2id PHC string, optional
//! tokens = ["sha256:<64 hex>"]       # API tokens, stored hashed, optional
//! ```
//!
//! Read in two stages: the TOML into file types (spans kept), then each user checked into a
//! [`UserEntry`] (a valid name, no name twice, a PHC string, well-formed token hashes), every
//! problem reported at once with the file, line and user. The file is refused unless only its
//! owner may read it, as the engine's secrets file is (`drover_engine::secrets::exposed_mode`),
//! and written back atomically with mode 600. Only hashes are stored: a password or token given
//! to [`Users::set_password`] or made by [`Users::add_token`] is never written.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use drover_engine::diagnostic::{Diagnostic, Source};
use serde::{Deserialize, Serialize};

use super::secret;

/// The longest user name.
const MAX_NAME: usize = 64;

/// Why the users file cannot be read, written or changed.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Unreadable or unwritable.
    #[error("cannot {action} the users file {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error(
        "the users file {path} is readable by others (mode {mode:03o}); make it private with `chmod 600 {path}`",
        path = path.display()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a valid users file: every problem, with line and column.
    #[error("the users file {} is not valid:\n{}", path.display(), list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, ordered by line.
        problems: Vec<Diagnostic>,
    },
    /// A name that cannot be a user's.
    #[error("`{0}` cannot be a user name: use 1 to {MAX_NAME} letters, digits, `-`, `_`, `.` or `@`")]
    BadName(String),
    /// No such user.
    #[error("no user `{name}` in {}", path.display())]
    NoSuchUser {
        /// The name asked for.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// An empty password.
    #[error("the password is empty")]
    EmptyPassword,
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] secret::HashError),
}

fn list(problems: &[Diagnostic]) -> String {
    problems.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")
}

/// One user, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// The name: what the journal records as the actor of the user's actions.
    pub name: String,
    /// The password's argon2id PHC string; `None`: the user cannot log in with a password.
    pub password: Option<String>,
    /// The user's API tokens, as `sha256:<64 hex>`.
    pub tokens: Vec<String>,
}

/// The users of a users file, in the file's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    entries: Vec<UserEntry>,
}

/// The file as written (stage one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    user: Vec<toml::Spanned<toml::Table>>,
}

/// One `[[user]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    tokens: Vec<String>,
}

/// The file as it is written back.
#[derive(Serialize)]
struct OutDoc<'a> {
    user: Vec<OutUser<'a>>,
}

#[derive(Serialize)]
struct OutUser<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tokens: &'a [String],
}

/// Whether `name` can name a user.
pub fn is_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

impl Users {
    /// Reads and checks `path`, refusing it if its group or others may read it.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let io = |source| UsersError::Io { action: "read", path: path.to_owned(), source };
        if let Some(mode) = drover_engine::secrets::exposed_mode(path).map_err(io)? {
            return Err(UsersError::Exposed { path: path.to_owned(), mode });
        }
        let text = drover_engine::input_file::read_to_string(path).map_err(io)?;
        Users::parse(path, &text)
    }

    /// Reads `path` as [`Users::load`] does, or gives no users when it does not exist yet.
    pub fn load_or_new(path: &Path) -> Result<Users, UsersError> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Users::default()),
            _ => Users::load(path),
        }
    }

    /// Checks the text of a users file; `path` is named in the problems.
    pub fn parse(path: &Path, text: &str) -> Result<Users, UsersError> {
        let source = Source::new(path, text);
        let invalid = |problems| UsersError::Invalid { path: path.to_owned(), problems };
        let doc: FileDoc = toml::from_str(text).map_err(|e| {
            // Never quote the file: it holds hashes. The place and serde's message are enough.
            let span = e.span().unwrap_or(0..0);
            invalid(vec![source.at(&span, e.message().trim_end().to_owned())])
        })?;
        let mut problems = Vec::new();
        let mut entries: Vec<UserEntry> = Vec::new();
        for (n, table) in doc.user.into_iter().enumerate() {
            let span = table.span();
            let table = table.into_inner();
            let who = match table.get("name").and_then(toml::Value::as_str) {
                Some(name) => format!("user `{name}`"),
                None => format!("user {} (no name)", n + 1),
            };
            let user: FileUser = match toml::Value::Table(table).try_into() {
                Ok(user) => user,
                Err(e) => {
                    problems.push(source.at(&span, format!("{who}: {}", e.message().trim_end())));
                    continue;
                }
            };
            if !is_name(&user.name) {
                problems.push(source.at(
                    &span,
                    format!("{who}: not a user name (1 to {MAX_NAME} letters, digits, `-`, `_`, `.` or `@`)"),
                ));
            }
            if entries.iter().any(|e| e.name == user.name) {
                problems.push(source.at(&span, format!("{who}: the name is given twice")));
            }
            if user.password.as_deref().is_some_and(|p| !secret::is_password_hash(p)) {
                problems.push(source.at(
                    &span,
                    format!(
                        "{who}: `password` is not an argon2id PHC string (set it with `drover users add`)"
                    ),
                ));
            }
            if user.tokens.iter().any(|t| !secret::is_token_hash(t)) {
                problems.push(source.at(
                    &span,
                    format!("{who}: every token must be `sha256:<64 hex digits>` (make one with `drover users add --token`)"),
                ));
            }
            entries.push(UserEntry { name: user.name, password: user.password, tokens: user.tokens });
        }
        if problems.is_empty() { Ok(Users { entries }) } else { Err(invalid(problems)) }
    }

    /// The users, in the file's order.
    pub fn entries(&self) -> &[UserEntry] {
        &self.entries
    }

    /// The user `name`.
    pub fn get(&self, name: &str) -> Option<&UserEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    fn entry_or_new(&mut self, name: &str) -> Result<&mut UserEntry, UsersError> {
        if !is_name(name) {
            return Err(UsersError::BadName(name.to_owned()));
        }
        let at = match self.entries.iter().position(|e| e.name == name) {
            Some(at) => at,
            None => {
                self.entries.push(UserEntry { name: name.to_owned(), password: None, tokens: Vec::new() });
                self.entries.len() - 1
            }
        };
        Ok(&mut self.entries[at])
    }

    /// Sets the password of `name` (hashed), adding the user if there is none.
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), UsersError> {
        if password.is_empty() {
            return Err(UsersError::EmptyPassword);
        }
        let hash = secret::hash_password(password)?;
        self.entry_or_new(name)?.password = Some(hash);
        Ok(())
    }

    /// Gives `name` a new API token, adding the user if there is none. The token is returned,
    /// to be shown once: only its hash is kept.
    pub fn add_token(&mut self, name: &str) -> Result<String, UsersError> {
        let (token, stored) = secret::new_token();
        self.entry_or_new(name)?.tokens.push(stored);
        Ok(token)
    }

    /// Removes the user `name`; `path` names the file in the error.
    pub fn remove(&mut self, name: &str, path: &Path) -> Result<(), UsersError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.name != name);
        if self.entries.len() == before {
            return Err(UsersError::NoSuchUser { name: name.to_owned(), path: path.to_owned() });
        }
        Ok(())
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let doc = OutDoc {
            user: self
                .entries
                .iter()
                .map(|e| OutUser { name: &e.name, password: e.password.as_deref(), tokens: &e.tokens })
                .collect(),
        };
        let body = toml::to_string(&doc).unwrap_or_default();
        format!("# Users of `drover serve`; change it with `drover users`. Keep it mode 600.\n\n{body}")
    }

    /// Writes the file atomically: a new file of mode 600 next to `path`, synced, then renamed
    /// over it, so a reader sees the old file or the new one, never a part.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let io = |source| UsersError::Io { action: "write", path: path.to_owned(), source };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!(".{file_name}.{}.tmp", &secret::random_hex()[..12]));
        let written = (|| {
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
            file.write_all(self.to_toml().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
            // The rename itself reaches the disk with the directory.
            std::fs::File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn problems(text: &str) -> String {
        match Users::parse(Path::new("users.toml"), text) {
            Err(e @ UsersError::Invalid { .. }) => e.to_string(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn problems_name_the_file_the_line_and_the_user() {
        let hash = "sha256:".to_owned() + &"a".repeat(64);
        let text = format!(
            "[[user]]\nname = \"alice\"\ntokens = [\"{hash}\"]\n\n[[user]]\nname = \"bob\"\npassword = \"hunter2\"\n\n[[user]]\nname = \"carol\"\npasword = \"x\"\n"
        );
        let shown = problems(&text);
        assert!(
            shown.contains("users.toml:5:1: user `bob`: `password` is not an argon2id PHC string"),
            "{shown}"
        );
        assert!(shown.contains("users.toml:9:1: user `carol`: unknown field `pasword`"), "{shown}");
        assert!(!shown.contains("hunter2"), "the file's values are never quoted: {shown}");
        assert!(!shown.contains("alice"), "{shown}");
    }

    #[test]
    fn toml_syntax_errors_and_bad_tokens_have_their_line() {
        let shown = problems("[[user]]\nname = \"alice\"\ntokens = [\"x\"\n");
        assert!(shown.contains("users.toml:3:"), "{shown}");
        let shown =
            problems("[[user]]\nname = \"alice\"\ntokens = [\"sha256:00\"]\n[[user]]\npassword = \"p\"\n");
        assert!(shown.contains("users.toml:1:1: user `alice`: every token must be"), "{shown}");
        assert!(shown.contains("users.toml:4:1: user 2 (no name): missing field `name`"), "{shown}");
        let shown = problems("[[users]]\nname = \"alice\"\n");
        assert!(shown.contains("users.toml:1:"), "{shown}");
    }

    #[test]
    fn a_name_given_twice_is_refused_at_its_second_place() {
        let shown =
            problems("[[user]]\nname = \"alice\"\n[[user]]\nname = \"bob\"\n[[user]]\nname = \"alice\"\n");
        assert!(shown.contains("users.toml:5:1: user `alice`: the name is given twice"), "{shown}");
        assert!(problems("[[user]]\nname = \"a b\"\n").contains("not a user name"));
    }

    #[test]
    fn a_saved_file_is_private_and_reads_back_the_same() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("users.toml");
        let mut users = Users::load_or_new(&path).expect("no file is no users");
        users.set_password("alice", "correct horse").expect("set");
        let token = users.add_token("bob").expect("a token");
        users.save(&path).expect("saved");
        let mode = std::fs::metadata(&path).expect("written").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("correct horse") && !text.contains(&token), "{text}");
        let back = Users::load(&path).expect("loads");
        assert_eq!(back, users);
        let alice = back.get("alice").expect("alice");
        assert!(secret::verify_password("correct horse", alice.password.as_deref().expect("a hash")));
        assert_eq!(back.get("bob").expect("bob").tokens, vec![secret::token_hash(&token)]);
        // No temporary file is left next to it.
        assert_eq!(std::fs::read_dir(dir.path()).expect("listed").count(), 1);

        let mut back = back;
        back.remove("alice", &path).expect("removed");
        assert!(matches!(back.remove("alice", &path), Err(UsersError::NoSuchUser { .. })));
        assert!(matches!(back.set_password("bob", ""), Err(UsersError::EmptyPassword)));
        assert!(matches!(back.set_password("b b", "x"), Err(UsersError::BadName(_))));
    }

    #[test]
    fn a_file_others_may_read_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("users.toml");
        std::fs::write(&path, "").expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = Users::load(&path).expect_err("refused");
        assert!(matches!(e, UsersError::Exposed { mode: 0o640, .. }), "{e:?}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(Users::load(&path).expect("private"), Users::default());
    }
}
