//! Sessions of people logged in through the login form, in memory only (a restart of
//! `drover serve` logs everyone out). A session has a random id (the `drover_session` cookie),
//! a random CSRF token the pages send back with every action, its user and its last use; it
//! ends at logout or after [`IDLE_TIMEOUT`] unused. Time is a parameter, never read here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{User, secret};

/// A session unused this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id: the cookie's value.
    pub id: String,
    /// The token a mutating request must carry in `x-csrf-token` (or a form's `csrf` field).
    pub csrf: String,
    /// Who logged in.
    pub user: User,
    /// When it was last used.
    pub last_use: Instant,
}

/// The sessions, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<String, Session>,
}

impl Sessions {
    /// Starts a session for `user`.
    pub fn create(&mut self, user: User, now: Instant) -> Session {
        self.by_id.retain(|_, s| now.saturating_duration_since(s.last_use) < IDLE_TIMEOUT);
        let session = Session { id: secret::random_hex(), csrf: secret::random_hex(), user, last_use: now };
        self.by_id.insert(session.id.clone(), session.clone());
        session
    }

    /// The session `id` if it is live, marked as used now; an idle one is removed.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<Session> {
        // The map's lookup is by hash, not by comparing the id byte by byte with every session.
        let session = self.by_id.get_mut(id)?;
        if now.saturating_duration_since(session.last_use) >= IDLE_TIMEOUT {
            self.by_id.remove(id);
            return None;
        }
        session.last_use = session.last_use.max(now);
        Some(session.clone())
    }

    /// Ends the session `id`.
    pub fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_after_twelve_idle_hours_and_each_use_moves_the_deadline() {
        let start = Instant::now();
        let mut sessions = Sessions::default();
        let s = sessions.create(User { name: "alice".into() }, start);
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        let used = start + IDLE_TIMEOUT - Duration::from_secs(1);
        assert_eq!(sessions.get(&s.id, used).expect("live").user.name, "alice");
        // 12 h after the first use, but not after the last.
        assert!(sessions.get(&s.id, start + IDLE_TIMEOUT).is_some());
        let idle = start + IDLE_TIMEOUT + IDLE_TIMEOUT;
        assert!(sessions.get(&s.id, idle).is_none());
        assert!(sessions.get(&s.id, start).is_none(), "removed once expired");
    }

    #[test]
    fn logout_ends_only_its_session() {
        let now = Instant::now();
        let mut sessions = Sessions::default();
        let a = sessions.create(User { name: "alice".into() }, now);
        let b = sessions.create(User { name: "alice".into() }, now);
        sessions.remove(&a.id);
        assert!(sessions.get(&a.id, now).is_none());
        assert_eq!(sessions.get(&b.id, now).expect("live").csrf, b.csrf);
    }
}
