//! The axum side of authentication: extractors for handlers and the `require_reader` middleware.
//! Generic over the app state `S` wherever `Arc<Auth>: FromRef<S>`.
//!
//! - [`Viewer`] never rejects: anonymous, a session (cookie `drover_session`) or a bearer token.
//! - [`Operator`] is for mutating requests: 401 when anonymous; 403 when an `Origin` header names
//!   another host than `Host`; for a session, 403 unless `x-csrf-token` is the session's token.
//!   A bearer token needs no CSRF token: a browser never sends one by itself.
//! - [`require_reader`] lets anonymous visitors through only with [`AnonymousAccess::Read`].

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::{AnonymousAccess, Auth, Session, User, secret};
use crate::layout::PageViewer;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "drover_session";
/// The header a session's mutating request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who sent a request.
#[derive(Debug, Clone)]
pub enum Viewer {
    /// Nobody logged in (or a token or session that is not valid).
    Anonymous,
    /// A person logged in through the login form.
    Session(Session),
    /// A caller with an API token.
    Token(User),
}

impl Viewer {
    /// The viewer of a request with these headers. A request with an `Authorization: Bearer`
    /// header is judged by its token alone.
    pub fn of(auth: &Auth, headers: &HeaderMap, now: Instant) -> Viewer {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let bearer = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
            return match bearer.and_then(|token| auth.token(token)) {
                Some(user) => Viewer::Token(user),
                None => Viewer::Anonymous,
            };
        }
        match session_cookie(headers).and_then(|id| auth.session(id, now)) {
            Some(session) => Viewer::Session(session),
            None => Viewer::Anonymous,
        }
    }

    /// The user, unless anonymous.
    pub fn user(&self) -> Option<&User> {
        match self {
            Viewer::Anonymous => None,
            Viewer::Session(session) => Some(&session.user),
            Viewer::Token(user) => Some(user),
        }
    }

    /// The user's name, unless anonymous.
    pub fn name(&self) -> Option<&str> {
        self.user().map(|u| u.name.as_str())
    }

    /// The session's CSRF token (for a session only).
    pub fn csrf(&self) -> Option<&str> {
        match self {
            Viewer::Session(session) => Some(&session.csrf),
            _ => None,
        }
    }

    /// What the page frame shows of the viewer.
    pub fn page(&self) -> PageViewer<'_> {
        PageViewer { user: self.name(), csrf: self.csrf() }
    }
}

/// The value of the `drover_session` cookie, if sent.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

impl<S> FromRequestParts<S> for Viewer
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Auth>::from_ref(state);
        Ok(Viewer::of(&auth, &parts.headers, Instant::now()))
    }
}

/// A refused request: the status and `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 401 or 403.
    pub status: StatusCode,
    /// Why, for a person.
    pub error: &'static str,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.error }))).into_response()
    }
}

/// How an operator proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A login session, with its CSRF token.
    Session,
    /// An API token.
    Token,
}

/// The person behind a mutating request, checked (see the module's doc).
#[derive(Debug, Clone)]
pub struct Operator {
    /// Who.
    pub user: User,
    /// How.
    pub via: Via,
}

/// Refuses a request whose `Origin` header names another host than its `Host` header (any
/// request a page of another site makes a browser send). No `Origin` is no cross-site request.
pub fn check_origin(headers: &HeaderMap) -> Result<(), Refused> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host =
        origin.to_str().ok().and_then(|o| o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")));
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(Refused { status: StatusCode::FORBIDDEN, error: "the request comes from another site" }),
    }
}

/// Whether `sent` is the session's CSRF token (compared in constant time).
pub fn csrf_matches(session: &Session, sent: Option<&str>) -> bool {
    sent.is_some_and(|sent| secret::same(sent, &session.csrf))
}

impl Operator {
    /// Checks a mutating request's headers.
    pub fn check(auth: &Auth, headers: &HeaderMap, now: Instant) -> Result<Operator, Refused> {
        check_origin(headers)?;
        match Viewer::of(auth, headers, now) {
            Viewer::Anonymous => Err(Refused {
                status: StatusCode::UNAUTHORIZED,
                error: "log in, or send an API token, to act",
            }),
            Viewer::Token(user) => Ok(Operator { user, via: Via::Token }),
            Viewer::Session(session) => {
                let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
                if csrf_matches(&session, sent) {
                    Ok(Operator { user: session.user, via: Via::Session })
                } else {
                    Err(Refused {
                        status: StatusCode::FORBIDDEN,
                        error: "missing or wrong CSRF token (header x-csrf-token); reload the page",
                    })
                }
            }
        }
    }
}

impl<S> FromRequestParts<S> for Operator
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Auth>::from_ref(state);
        Operator::check(&auth, &parts.headers, Instant::now())
    }
}

/// The client's address, from the connection (`into_make_service_with_connect_info`); the
/// unspecified address when the server did not record it, so such clients share one limit.
/// `X-Forwarded-For` is not trusted: behind a proxy every login counts for the proxy's address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientIp(ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// Middleware for read routes (pages, `/api/`, the event streams): with
/// [`AnonymousAccess::Closed`], an anonymous request to `/api/…` gets 401 and one for a page a
/// redirect to `/login?next=<its path>`. Layer it with
/// `axum::middleware::from_fn_with_state(auth, require_reader)` on the read routes, never on
/// [`super::routes`] (the login form must stay reachable).
pub async fn require_reader(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    if auth.anonymous_access() == AnonymousAccess::Read
        || !matches!(Viewer::of(&auth, request.headers(), Instant::now()), Viewer::Anonymous)
    {
        return next.run(request).await;
    }
    let path = request.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        return Refused { status: StatusCode::UNAUTHORIZED, error: "log in, or send an API token, to read" }
            .into_response();
    }
    let wanted = request.uri().path_and_query().map_or("/", |p| p.as_str());
    Redirect::to(&format!("/login?next={}", encode_component(wanted))).into_response()
}

/// `text` percent-encoded for a query parameter's value.
pub(crate) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::auth::{AuthConfig, Users};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        map
    }

    fn session_auth() -> (Auth, Session) {
        let auth = Auth::new(Users::default(), AuthConfig::default());
        let session = auth.start_session(User { name: "alice".into() }, Instant::now());
        (auth, session)
    }

    #[test]
    fn a_session_acts_only_with_its_own_csrf_token() {
        let (auth, s) = session_auth();
        let cookie = format!("theme=dark; {SESSION_COOKIE}={}", s.id);
        let now = Instant::now();
        let refused = Operator::check(&auth, &headers(&[("cookie", &cookie)]), now).expect_err("no token");
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let wrong = headers(&[("cookie", &cookie), (CSRF_HEADER, &s.csrf[..63])]);
        assert_eq!(Operator::check(&auth, &wrong, now).expect_err("wrong").status, StatusCode::FORBIDDEN);
        let other = secret::random_hex();
        let wrong = headers(&[("cookie", &cookie), (CSRF_HEADER, &other)]);
        assert_eq!(Operator::check(&auth, &wrong, now).expect_err("wrong").status, StatusCode::FORBIDDEN);
        let right = headers(&[("cookie", &cookie), (CSRF_HEADER, &s.csrf)]);
        let op = Operator::check(&auth, &right, now).expect("acts");
        assert_eq!((op.user.name.as_str(), op.via), ("alice", Via::Session));
    }

    #[test]
    fn origin_must_name_the_host() {
        assert!(check_origin(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
        for origin in ["http://127.0.0.1:8080", "https://127.0.0.1:8080"] {
            assert!(check_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", origin)])).is_ok());
        }
        for origin in ["http://evil.example", "http://127.0.0.1:8081", "null", "127.0.0.1:8080"] {
            let refused = check_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", origin)]));
            assert_eq!(refused.expect_err(origin).status, StatusCode::FORBIDDEN);
        }
        assert!(check_origin(&headers(&[("origin", "http://127.0.0.1:8080")])).is_err());
    }

    #[test]
    fn anonymous_and_unknown_credentials_cannot_act() {
        let (auth, _) = session_auth();
        let now = Instant::now();
        for h in [
            headers(&[]),
            headers(&[("cookie", "drover_session=nope")]),
            headers(&[("authorization", "Bearer drover_nope")]),
        ] {
            assert!(matches!(Viewer::of(&auth, &h, now), Viewer::Anonymous));
            assert_eq!(
                Operator::check(&auth, &h, now).expect_err("anonymous").status,
                StatusCode::UNAUTHORIZED
            );
        }
    }

    #[test]
    fn a_next_path_is_encoded_whole() {
        assert_eq!(encode_component("/runs/r1?x=1&y=2"), "/runs/r1%3Fx%3D1%26y%3D2");
    }
}
