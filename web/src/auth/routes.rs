//! The login and logout routes: `GET /login` (the form), `POST /login` (a session and its
//! cookie), `POST /logout` (with the session's CSRF token). The pages are drawn in the shared
//! frame (`crate::layout::page`).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use drover_engine::report::esc;
use serde::Deserialize;

use super::extract::{ClientIp, SESSION_COOKIE, Viewer, check_origin, csrf_matches, session_cookie};
use super::{Auth, LoginError};
use crate::layout::{self, PageViewer};

/// The routes `/login` and `/logout`, for any app state holding the [`Auth`].
pub fn routes<S>() -> Router<S>
where
    Arc<Auth>: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/login", get(login_page).post(login)).route("/logout", post(logout))
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `next` when it is a path on this site (`/runs/…`), else `/`: never another host
/// (`//evil.example`, `/\evil.example`) or a scheme.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/",
    }
}

fn form_page(viewer: &PageViewer<'_>, name: &str, next: &str, message: Option<&str>) -> String {
    let message = message
        .map(|m| format!("<p id=\"login-error\" class=\"error\" role=\"alert\">{}</p>", esc(m)))
        .unwrap_or_default();
    let body = format!(
        "<main class=\"login\"><h1>Log in</h1>{message}\
<form id=\"login-form\" method=\"post\" action=\"/login\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\">\
<p><label>Name <input name=\"name\" autocomplete=\"username\" required autofocus value=\"{name}\"></label></p>\
<p><label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label></p>\
<p><button type=\"submit\">Log in</button></p></form></main>",
        next = esc(next),
        name = esc(name),
    );
    layout::page("Log in", viewer, &body)
}

async fn login_page(viewer: Viewer, Query(query): Query<LoginQuery>) -> Html<String> {
    Html(form_page(&viewer.page(), "", safe_next(query.next.as_deref()), None))
}

async fn login(
    State(auth): State<Arc<Auth>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if let Err(refused) = check_origin(&headers) {
        return refused.into_response();
    }
    let now = Instant::now();
    let next = safe_next(form.next.as_deref());
    let anonymous = PageViewer::default();
    match auth.login(&form.name, &form.password, ip, now).await {
        Ok(user) => {
            if let Some(old) = session_cookie(&headers) {
                auth.end_session(old);
            }
            let session = auth.start_session(user, now);
            let secure = if auth.secure_cookies() { "; Secure" } else { "" };
            let cookie =
                format!("{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}", session.id);
            ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
        }
        Err(LoginError::Wrong) => {
            let page = form_page(&anonymous, &form.name, next, Some("wrong name or password"));
            (StatusCode::UNAUTHORIZED, Html(page)).into_response()
        }
        Err(e @ LoginError::Limited { retry_after }) => {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let message = format!("too many failed logins; try again in {} min", seconds.div_ceil(60));
            let page = form_page(&anonymous, &form.name, next, Some(&message));
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Html(page)).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            tracing::debug!("{e}");
            response
        }
    }
}

async fn logout(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LogoutForm>,
) -> Response {
    if let Err(refused) = check_origin(&headers) {
        return refused.into_response();
    }
    if let Viewer::Session(session) = Viewer::of(&auth, &headers, Instant::now()) {
        if !csrf_matches(&session, Some(&form.csrf)) {
            return (StatusCode::FORBIDDEN, "missing or wrong CSRF token; reload the page and log out again")
                .into_response();
        }
        auth.end_session(&session.id);
    }
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/runs/run_1?x=1")), "/runs/run_1?x=1");
        for bad in ["//evil.example/x", "/\\evil.example", "https://evil.example", "runs", "/a\nb", ""] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
