//! Where a run journal lives: an SQLite file (the embedded default) or a PostgreSQL database,
//! told apart by the `--db` value: `postgres://…` and `postgresql://…` name a database, anything
//! else a file.
//!
//! **Invariant:** a PostgreSQL URL's password never leaves this module unredacted except to the
//! connector (`PgUrl::secret_text`): `Display`, `Debug` and every error show
//! [`PgUrl::redacted`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Where a journal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgUrl),
}

impl Location {
    /// Reads a `--db` value.
    pub fn parse(value: &OsStr) -> Location {
        match value.to_str() {
            Some(text) if PgUrl::is_url(text) => Location::Postgres(PgUrl(text.to_string())),
            _ => Location::Sqlite(PathBuf::from(value)),
        }
    }

    /// The file, for an SQLite journal.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&url.redacted()),
        }
    }
}

/// A PostgreSQL connection URL (`postgres://user:password@host:port/database?param=value`, as
/// libpq reads it; `host=/a/folder` as a parameter reaches a Unix socket in that folder).
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl(String);

impl PgUrl {
    /// Whether `text` is a PostgreSQL URL.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// The URL with its password (in the user part, or a `password` parameter) replaced by
    /// `***`: what errors and logs show.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// The URL as given, password and all: only for connecting.
    pub(crate) fn secret_text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({})", self.redacted())
    }
}

/// `url` with the password of its user part and of any `password` parameter replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // The user part ends at the last `@` before the path.
    let (authority, path) = match authority_and_path.find('/') {
        Some(i) => authority_and_path.split_at(i),
        None => (authority_and_path, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _password)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_names_a_database_and_anything_else_a_file() {
        for url in ["postgres://u@h/db", "postgresql:///db?host=/tmp/x"] {
            assert!(matches!(Location::parse(OsStr::new(url)), Location::Postgres(_)), "{url}");
        }
        for file in ["drover.db", "/var/lib/drover/postgres://x.db", "postgres.db"] {
            assert_eq!(Location::parse(OsStr::new(file)), Location::Sqlite(file.into()));
        }
    }

    #[test]
    fn passwords_are_redacted_wherever_the_url_carries_them() {
        let cases = [
            (
                "postgres://drover:s3cret@db.example:5432/drover",
                "postgres://drover:***@db.example:5432/drover",
            ),
            ("postgres://drover:p@ss@db/j", "postgres://drover:***@db/j"),
            (
                "postgresql://u@h/d?password=s3cret&sslmode=disable",
                "postgresql://u@h/d?password=***&sslmode=disable",
            ),
            ("postgres:///d?host=/run/pg&PASSWORD=x", "postgres:///d?host=/run/pg&PASSWORD=***"),
            ("postgres://h/d", "postgres://h/d"),
        ];
        for (url, shown) in cases {
            let location = Location::parse(OsStr::new(url));
            assert_eq!(location.to_string(), shown);
            assert!(!format!("{location:?}").contains("s3cret"), "{location:?}");
        }
    }
}
