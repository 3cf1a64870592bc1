//! Who may look at the web view and who may act: authentication and request safety.
//!
//! People are listed in a users file ([`users`], mode 600, only hashes stored). They log in with
//! a password through the login form ([`routes`]), which starts an in-memory [`session`]
//! (cookie `drover_session`), or call the API with a bearer token. [`Auth`] holds the users,
//! the sessions and the failed-login [`limiter`]; every failed or limited login is logged with
//! `tracing::warn!` (the server's log on stderr), which is where failed logins are recorded.
//!
//! The extractors ([`extract`]) are what handlers use: [`Viewer`] (anyone, maybe anonymous) for
//! pages, [`Operator`] for mutating requests, which checks the CSRF token of a session and the
//! `Origin` header. [`require_reader`] closes read routes to anonymous visitors when
//! [`AnonymousAccess::Closed`]. This module never reads the journal and never decides what a
//! person may do to a run: the gates' named approvers are the engine's business.

pub mod extract;
pub mod limiter;
pub mod routes;
pub mod secret;
pub mod session;
pub mod users;

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use extract::{ClientIp, Operator, Refused, Via, Viewer, require_reader};
pub use routes::routes;
pub use session::Session;
pub use users::{UserEntry, Users, UsersError};

/// A person the view knows: a user of the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name, recorded as the actor of the person's actions.
    pub name: String,
}

/// What a visitor who has not logged in may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnonymousAccess {
    /// Read every page and the API; acting needs a login.
    #[default]
    Read,
    /// Nothing: pages redirect to `/login`, the API answers 401.
    Closed,
}

/// How [`Auth`] behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthConfig {
    /// What anonymous visitors may do.
    pub anonymous: AnonymousAccess,
    /// Mark the session cookie `Secure` (the view is served over HTTPS, directly or behind a
    /// proxy), so a browser never sends it over plain HTTP.
    pub secure_cookies: bool,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// An unknown name, a user without a password, or a wrong password: one answer for all.
    #[error("wrong name or password")]
    Wrong,
    /// Too many failures from this address or for this name: the password was not checked.
    #[error("too many failed logins; try again in {} s", retry_after.as_secs())]
    Limited {
        /// How long until an attempt will be checked again.
        retry_after: Duration,
    },
}

/// The users, the sessions and the failed-login limiter of one server.
#[derive(Debug)]
pub struct Auth {
    users: Users,
    config: AuthConfig,
    sessions: Mutex<session::Sessions>,
    limiter: Mutex<limiter::Limiter>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent whatever panicked: every change is one insert or remove.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Auth {
    /// Over `users` (none: nobody can log in).
    pub fn new(users: Users, config: AuthConfig) -> Auth {
        Auth {
            users,
            config,
            sessions: Mutex::new(session::Sessions::default()),
            limiter: Mutex::new(limiter::Limiter::default()),
        }
    }

    /// Over the users file `path`, if one is given; it is read once (restart the server after
    /// changing it).
    pub fn from_file(path: Option<&Path>, config: AuthConfig) -> Result<Auth, UsersError> {
        let users = match path {
            Some(path) => Users::load(path)?,
            None => Users::default(),
        };
        Ok(Auth::new(users, config))
    }

    /// What anonymous visitors may do.
    pub fn anonymous_access(&self) -> AnonymousAccess {
        self.config.anonymous
    }

    /// Whether the session cookie is marked `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.config.secure_cookies
    }

    /// The users.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// Checks a name and password from `client`. After too many failures (see [`limiter`]) the
    /// password is not checked. An unknown name takes as long as a wrong password: a hash is
    /// verified either way, off the async threads.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        client: IpAddr,
        now: Instant,
    ) -> Result<User, LoginError> {
        let checked = lock(&self.limiter).check(client, name, now);
        if let Err(retry_after) = checked {
            let counts = lock(&self.limiter).counts(client, name, now);
            tracing::warn!(
                name = %name.escape_debug(), ip = %client, failures_by_ip = counts.ip,
                failures_by_name = counts.name, retry_after_s = retry_after.as_secs(),
                "login refused: too many failed logins"
            );
            return Err(LoginError::Limited { retry_after });
        }
        let entry = self.users.get(name);
        let (hash, known) = match entry.and_then(|e| e.password.clone()) {
            Some(hash) => (hash, true),
            None => (secret::dummy_hash().to_owned(), false),
        };
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || secret::verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        if known && matches {
            return Ok(User { name: name.to_owned() });
        }
        let counts = lock(&self.limiter).record_failure(client, name, now);
        tracing::warn!(
            name = %name.escape_debug(), ip = %client, known_user = entry.is_some(),
            failures_by_ip = counts.ip, failures_by_name = counts.name, "failed login"
        );
        Err(LoginError::Wrong)
    }

    /// The user of an API token (the part after `Bearer `). Every stored hash is compared, in
    /// constant time.
    pub fn token(&self, bearer: &str) -> Option<User> {
        let hash = secret::token_hash(bearer.trim());
        let mut found = None;
        for entry in self.users.entries() {
            for stored in &entry.tokens {
                if secret::same(stored, &hash) && found.is_none() {
                    found = Some(User { name: entry.name.clone() });
                }
            }
        }
        found
    }

    /// Starts a session for `user` (after [`Auth::login`]).
    pub fn start_session(&self, user: User, now: Instant) -> Session {
        lock(&self.sessions).create(user, now)
    }

    /// The live session `id`, marked as used now.
    pub fn session(&self, id: &str, now: Instant) -> Option<Session> {
        lock(&self.sessions).get(id, now)
    }

    /// Ends the session `id`.
    pub fn end_session(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> (Auth, String) {
        let mut users = Users::default();
        users.set_password("alice", "correct horse").expect("set");
        let token = users.add_token("alice").expect("token");
        users.add_token("bob").expect("token");
        (Auth::new(users, AuthConfig::default()), token)
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[tokio::test]
    async fn the_right_password_logs_in_and_a_wrong_one_or_an_unknown_name_get_one_answer() {
        let (auth, _) = auth();
        let now = Instant::now();
        let user = auth.login("alice", "correct horse", IP, now).await.expect("logged in");
        assert_eq!(user.name, "alice");
        assert_eq!(auth.login("alice", "wrong", IP, now).await, Err(LoginError::Wrong));
        assert_eq!(auth.login("mallory", "correct horse", IP, now).await, Err(LoginError::Wrong));
        // bob has a token but no password.
        assert_eq!(auth.login("bob", "", IP, now).await, Err(LoginError::Wrong));
    }

    #[tokio::test]
    async fn the_sixth_failure_is_limited_even_with_the_right_password_until_the_window_passes() {
        let (auth, _) = auth();
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(auth.login("alice", "wrong", IP, now).await, Err(LoginError::Wrong));
        }
        let limited = auth.login("alice", "correct horse", IP, now).await;
        assert_eq!(limited, Err(LoginError::Limited { retry_after: limiter::WINDOW }));
        let later = now + limiter::WINDOW;
        assert!(auth.login("alice", "correct horse", IP, later).await.is_ok());
    }

    #[test]
    fn a_token_finds_its_user_and_nothing_else_does() {
        let (auth, token) = auth();
        assert_eq!(auth.token(&token).expect("alice's").name, "alice");
        assert!(auth.token(&token[..token.len() - 1]).is_none());
        assert!(auth.token("").is_none());
        let stored = auth.users().get("alice").expect("alice").tokens[0].clone();
        assert!(auth.token(&stored).is_none(), "the stored hash is not a token");
    }
}
