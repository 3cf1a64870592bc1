//! The server: its state, its routes, and a clean stop. Pages and `/api/` read the journal off the
//! async threads; `/login` and `/logout` are `auth`'s. Every answer carries a content security
//! policy that allows nothing from another origin (the page's script is `/assets/view.js`, served
//! from the binary), and request bodies are capped ([`MAX_BODY`]): a bigger one gets 413. With a
//! [`TlsConfig`] the same routes are served over HTTPS only (axum-server's rustls acceptor);
//! without one, over plain HTTP (`axum::serve`). Both stop the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use drover_engine::run::Clock;
use drover_engine::run::operator::Operators;
use drover_engine::store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, blocking, run_id};
use crate::auth::{self, Auth, Viewer};
use crate::error::ApiError;
use crate::layout::{PageViewer, VIEW_JS};
use crate::live::Live;
use crate::pages;
use crate::plans::SavedPlan;
use crate::tls::TlsConfig;

/// The largest request body accepted: operator commands are small.
pub const MAX_BODY: usize = 64 * 1024;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The journal.
    pub store: Arc<Store>,
    /// The clock the status documents explain waits with.
    pub clock: Arc<dyn Clock>,
    /// Delivers operator commands.
    pub operators: Operators,
    /// Who is logged in.
    pub auth: Arc<Auth>,
    /// The runs people follow.
    pub live: Arc<Live>,
    /// The saved plans.
    pub plans: Arc<Vec<SavedPlan>>,
    /// Turns true when the server stops: the event streams end.
    pub shutdown: watch::Receiver<bool>,
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Arc<Auth> {
        state.auth.clone()
    }
}

/// What `drover serve` starts the server with.
pub struct ServeConfig {
    /// The journal.
    pub store: Arc<Store>,
    /// Delivers operator commands (its clock is the server's).
    pub operators: Operators,
    /// Users, sessions and what anonymous visitors may do.
    pub auth: Auth,
    /// Saved plans to show.
    pub plans: Vec<SavedPlan>,
    /// How often a followed run's journal is looked at.
    pub poll: Duration,
    /// Serve HTTPS with this certificate and key, and nothing over plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// The routes over `state`.
pub fn router(state: AppState) -> Router {
    let reads = Router::new()
        .route("/", get(runs_page))
        .route("/runs/{run}", get(run_page))
        .route("/plans/{name}", get(plan_page))
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{run}", get(api::status))
        .route("/api/runs/{run}/events", get(api::events))
        .route("/api/runs/{run}/report", get(api::report))
        .route("/api/runs/{run}/stream", get(api::stream))
        .route("/api/plans", get(api::plans))
        .route("/api/plans/{name}", get(api::plan))
        .route_layer(axum::middleware::from_fn_with_state(state.auth.clone(), auth::require_reader));
    let acts = Router::new()
        .route("/api/runs/{run}/approve", post(api::approve))
        .route("/api/runs/{run}/retry", post(api::retry))
        .route("/api/runs/{run}/skip", post(api::skip))
        .route("/api/runs/{run}/cancel", post(api::cancel));
    Router::new()
        .merge(reads)
        .merge(acts)
        .merge(auth::routes())
        .route("/assets/view.js", get(script))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
}

/// Serves on `listener` until `stop` completes, then ends the event streams and waits for the
/// requests under way.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping, shutdown) = watch::channel(false);
    let clock = config.operators.clock.clone();
    let state = AppState {
        store: config.store.clone(),
        clock: clock.clone(),
        operators: config.operators,
        auth: Arc::new(config.auth),
        live: Arc::new(Live::new(config.store, clock, config.poll, shutdown.clone())),
        plans: Arc::new(config.plans),
        shutdown,
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let stop = async move {
        stop.await;
        let _ = stopping.send(true);
    };
    match config.tls {
        None => axum::serve(listener, app).with_graceful_shutdown(stop).await,
        Some(tls) => {
            let handle = axum_server::Handle::<SocketAddr>::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                stop.await;
                // Stop accepting, end the handshakes under way, and let the answers under way
                // finish (the event streams just ended): as `with_graceful_shutdown` does.
                stopper.graceful_shutdown(None);
            });
            let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(tls.server_config()));
            axum_server::Server::from_listener(listener)
                .acceptor(acceptor)
                .handle(handle)
                .http1_only()
                .serve(app)
                .await
        }
    }
}

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: with no-referrer a browser sends `Origin: null` on the
    // page's own form posts and fetches, which the origin check (rightly) refuses.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], VIEW_JS).into_response()
}

/// A failed page request as a page.
fn page_error(viewer: &PageViewer<'_>, e: ApiError) -> Response {
    (e.status, Html(pages::error(viewer, e.status, &e.message))).into_response()
}

async fn not_found(viewer: Viewer, uri: axum::http::Uri) -> Response {
    if uri.path() == "/api" || uri.path().starts_with("/api/") {
        return ApiError::not_found(format!("no API route {} (docs/api.md lists them)", uri.path()))
            .into_response();
    }
    page_error(&viewer.page(), ApiError::not_found("There is no such page."))
}

async fn runs_page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let store = state.store.clone();
    match blocking(move || Ok(drover_engine::documents::runs(&store)?)).await {
        Ok(runs) => Html(pages::runs(&viewer.page(), &runs, &state.plans)).into_response(),
        Err(e) => page_error(&viewer.page(), e),
    }
}

async fn run_page(State(state): State<AppState>, viewer: Viewer, Path(run): Path<String>) -> Response {
    let view = match run_id(&run) {
        Ok(run) => state.live.build(run).await,
        Err(e) => Err(e),
    };
    match view {
        Ok(view) => Html(pages::run(&viewer.page(), &view)).into_response(),
        Err(e) => page_error(&viewer.page(), e),
    }
}

async fn plan_page(State(state): State<AppState>, viewer: Viewer, Path(name): Path<String>) -> Response {
    match state.plans.iter().find(|p| p.name == name) {
        Some(saved) => Html(pages::plan(&viewer.page(), saved)).into_response(),
        None => {
            page_error(&viewer.page(), ApiError::new(StatusCode::NOT_FOUND, format!("No saved plan {name}.")))
        }
    }
}
