//! The login routes and the `Operator` extractor through a real axum Router: what a browser and
//! an API client see (status, cookie, JSON error), driven with `tower::ServiceExt::oneshot`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use drover_web::auth::{self, AnonymousAccess, Auth, AuthConfig, Operator, Users};
use tower::ServiceExt as _;

const HOST: &str = "127.0.0.1:8080";

fn router(secure_cookies: bool) -> (Router, String) {
    let mut users = Users::default();
    users.set_password("alice", "correct horse").expect("a password");
    let token = users.add_token("bob").expect("a token");
    let config = AuthConfig { anonymous: AnonymousAccess::Read, secure_cookies };
    let state = Arc::new(Auth::new(users, config));
    let acted = |op: Operator| async move { format!("acted as {}", op.user.name) };
    let router = auth::routes().route("/act", post(acted)).with_state(state);
    (router, token)
}

async fn send(app: &Router, request: Request<Body>) -> Response {
    app.clone().oneshot(request).await.expect("a response")
}

async fn text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a body");
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

fn login_request(name: &str, password: &str, from: [u8; 4]) -> Request<Body> {
    let mut request = Request::post("/login")
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("name={name}&password={password}&next=%2Fruns%2Frun_1")))
        .expect("a request");
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from((from, 40000))));
    request
}

fn act(cookie: Option<&str>, csrf: Option<&str>, origin: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/act").header(header::HOST, HOST);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    request.body(Body::empty()).expect("a request")
}

/// Logs alice in: the cookie (`drover_session=…`) and the session's CSRF token read from a page.
async fn log_in(app: &Router) -> (String, String) {
    let response = send(app, login_request("alice", "correct+horse", [192, 0, 2, 1])).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/runs/run_1");
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().expect("text").to_owned();
    let cookie = set_cookie.split(';').next().expect("a pair").to_owned();
    // The login page, now seen logged in, carries the CSRF token for the page's script.
    let page = send(
        app,
        Request::get("/login").header(header::COOKIE, &cookie).body(Body::empty()).expect("a request"),
    );
    let page = text(page.await).await;
    assert!(page.contains("<span id=\"whoami\">alice</span>"), "{page}");
    let at = page.find("name=\"csrf-token\" content=\"").expect("the CSRF meta tag") + 27;
    (cookie, page[at..at + 64].to_owned())
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_the_form_is_served() {
    let (app, _) = router(false);
    let page = text(send(&app, Request::get("/login").body(Body::empty()).expect("a request")).await).await;
    for part in ["id=\"login-form\"", "name=\"name\"", "name=\"password\"", "type=\"submit\""] {
        assert!(page.contains(part), "{part} in {page}");
    }
    let response = send(&app, login_request("alice", "correct+horse", [192, 0, 2, 1])).await;
    let cookie = response.headers()[header::SET_COOKIE].to_str().expect("text");
    assert!(cookie.starts_with("drover_session="), "{cookie}");
    assert!(cookie.ends_with("; HttpOnly; SameSite=Strict; Path=/"), "{cookie}");

    let (secure, _) = router(true);
    let response = send(&secure, login_request("alice", "correct+horse", [192, 0, 2, 1])).await;
    assert!(response.headers()[header::SET_COOKIE].to_str().expect("text").ends_with("; Secure"));
}

#[tokio::test]
async fn a_session_acts_only_with_its_csrf_token_and_from_its_own_origin() {
    let (app, _) = router(false);
    let (cookie, csrf) = log_in(&app).await;
    let no_token = send(&app, act(Some(&cookie), None, None)).await;
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    assert!(text(no_token).await.contains("\"error\":\"missing or wrong CSRF token"));

    let ok = send(&app, act(Some(&cookie), Some(&csrf), Some("http://127.0.0.1:8080"))).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(text(ok).await, "acted as alice");

    let elsewhere = send(&app, act(Some(&cookie), Some(&csrf), Some("http://evil.example"))).await;
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    assert!(text(elsewhere).await.contains("another site"));
}

#[tokio::test]
async fn anonymous_gets_401_and_a_bearer_token_acts_without_csrf() {
    let (app, token) = router(false);
    let anonymous = send(&app, act(None, None, None)).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = serde_json::from_str(&text(anonymous).await).expect("JSON");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("log in")), "{body}");

    let bearer = |token: &str| {
        Request::post("/act")
            .header(header::HOST, HOST)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("a request")
    };
    let ok = send(&app, bearer(&token)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(text(ok).await, "acted as bob");
    assert_eq!(send(&app, bearer("drover_0000")).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_sixth_wrong_password_is_answered_429_with_retry_after() {
    let (app, _) = router(false);
    for _ in 0..5 {
        let wrong = send(&app, login_request("alice", "wrong", [192, 0, 2, 7])).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(wrong.headers().get(header::SET_COOKIE).is_none());
        assert!(text(wrong).await.contains("wrong name or password"));
    }
    // Even the right password is not checked now.
    let limited = send(&app, login_request("alice", "correct+horse", [192, 0, 2, 7])).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    // Until the first failure leaves the 15-minute window, in whole seconds.
    let retry: u64 = limited.headers()[header::RETRY_AFTER].to_str().expect("text").parse().expect("seconds");
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(limited.headers().get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn logout_needs_the_csrf_token_and_ends_the_session() {
    let (app, _) = router(false);
    let (cookie, csrf) = log_in(&app).await;
    let logout = |csrf: &str| {
        Request::post("/logout")
            .header(header::HOST, HOST)
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .expect("a request")
    };
    assert_eq!(send(&app, logout("nope")).await.status(), StatusCode::FORBIDDEN);
    let out = send(&app, logout(&csrf)).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()[header::SET_COOKIE].to_str().expect("text").contains("Max-Age=0"));
    // The old cookie is worth nothing now.
    let after = send(&app, act(Some(&cookie), Some(&csrf), None)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_closed_view_redirects_pages_to_the_login_and_refuses_the_api() {
    let state = Arc::new(Auth::new(
        Users::default(),
        AuthConfig { anonymous: AnonymousAccess::Closed, secure_cookies: false },
    ));
    let reads = Router::new()
        .route("/runs/{id}", axum::routing::get(|| async { "a run" }))
        .route("/api/runs", axum::routing::get(|| async { "[]" }))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_reader));
    let app = auth::routes().merge(reads).with_state(state);
    let page = send(&app, Request::get("/runs/r1?x=1").body(Body::empty()).expect("a request")).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[header::LOCATION], "/login?next=/runs/r1%3Fx%3D1");
    let api = send(&app, Request::get("/api/runs").body(Body::empty()).expect("a request")).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let login =
        send(&app, Request::get("/login?next=/runs/r1").body(Body::empty()).expect("a request")).await;
    assert_eq!(login.status(), StatusCode::OK);
    assert!(text(login).await.contains("name=\"next\" value=\"/runs/r1\""));
}
