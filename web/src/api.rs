//! The JSON API under `/api/`: the documents of the command line's `--json` output, a run's live
//! stream, and the operator actions. [`ENDPOINTS`] lists every route with what it answers; the
//! reference in `docs/api.md` is generated from it.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use drover_engine::documents::Delivered;
use drover_engine::journal::{Request, RunId};
use drover_engine::run::operator;
use futures_util::Stream;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_stream::wrappers::WatchStream;

use crate::auth::Operator;
use crate::error::ApiError;
use crate::server::AppState;

/// One route of the API, for the reference.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, with `{run}` for a run's id.
    pub path: &'static str,
    /// What it answers.
    pub summary: &'static str,
    /// The command whose `--json` output is the same document, if any.
    pub cli: Option<&'static str>,
    /// The request body, if any.
    pub body: Option<&'static str>,
    /// What it answers, in the reference's words (types link to their section).
    pub answer: &'static str,
}

/// Every route of the API.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: "/api/runs",
        answer: "list of [RunSummary](#runsummary)",
        summary: "The runs of the journal, newest first: an array of `RunSummary`.",
        cli: Some("drover runs --json"),
        body: None,
    },
    Endpoint {
        method: "GET",
        path: "/api/runs/{run}",
        answer: "[RunStatus](#runstatus)",
        summary: "A run's steps, with the state of every instance and why it waits: `RunStatus`.",
        cli: Some("drover status RUN --json"),
        body: None,
    },
    Endpoint {
        method: "GET",
        path: "/api/runs/{run}/events",
        answer: "list of event records, each as [docs/events.md](events.md) describes",
        summary: "The run's journal events in order, as an array (`drover events` prints one object per line); `?after=SEQ` for those after an event.",
        cli: Some("drover events RUN --json"),
        body: None,
    },
    Endpoint {
        method: "GET",
        path: "/api/runs/{run}/report",
        answer: "[Report](#report)",
        summary: "The run's recovery report as data.",
        cli: Some("drover report RUN --json"),
        body: None,
    },
    Endpoint {
        method: "GET",
        path: "/api/runs/{run}/stream",
        answer: "`text/event-stream` of `view` events, each a [RunView](#runview)",
        summary: "Server-sent events: a `view` event with the run page's parts now, then one each time the journal changes (at most every few hundred ms; more spaced out for big runs).",
        cli: None,
        body: None,
    },
    Endpoint {
        method: "GET",
        path: "/api/plans",
        answer: "list of [PlanListing](#planlisting)",
        summary: "The saved plans the server was started with (`--plan`): their names and workflows.",
        cli: None,
        body: None,
    },
    Endpoint {
        method: "GET",
        path: "/api/plans/{name}",
        answer: "[Plan](#plan)",
        summary: "A saved plan, as `drover plan --save` wrote it.",
        cli: None,
        body: None,
    },
    Endpoint {
        method: "POST",
        path: "/api/runs/{run}/approve",
        answer: "[Delivered](#delivered)",
        summary: "Approve a waiting gate. Only the approvers the gate names may (403 otherwise).",
        cli: Some("drover approve RUN STEP --comment TEXT --json"),
        body: Some("{\"step\": \"gate\", \"comment\": \"why\"}"),
    },
    Endpoint {
        method: "POST",
        path: "/api/runs/{run}/retry",
        answer: "[Delivered](#delivered)",
        summary: "Run a failed, cancelled or needs-operator instance again.",
        cli: Some("drover retry RUN STEP --comment TEXT --json"),
        body: Some("{\"step\": \"join-group[DRBTS02]\", \"comment\": \"why\"}"),
    },
    Endpoint {
        method: "POST",
        path: "/api/runs/{run}/skip",
        answer: "[Delivered](#delivered)",
        summary: "Mark an instance done without running it, with the output later steps use (checked against the plugin's output schema).",
        cli: Some("drover skip RUN STEP --output JSON --comment TEXT --json"),
        body: Some("{\"step\": \"deploy[DRBTS01]\", \"output\": {}, \"comment\": \"done by hand\"}"),
    },
    Endpoint {
        method: "POST",
        path: "/api/runs/{run}/cancel",
        answer: "[Delivered](#delivered)",
        summary: "Cancel the run.",
        cli: Some("drover cancel RUN --comment TEXT --json"),
        body: Some("{\"comment\": \"why\"}"),
    },
];

/// JSON as the command line prints it: control characters JSON leaves raw (C1, bidirectional
/// controls) escaped too, since plugin text may hold them (`drover_engine::display::json`).
pub fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => {
            ([(header::CONTENT_TYPE, "application/json")], drover_engine::display::json(&text).into_owned())
                .into_response()
        }
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Runs a blocking journal read off the async threads.
pub async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// A run id from the path, or 404 naming it.
pub fn run_id(text: &str) -> Result<RunId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found(format!("no run {text}: not a run id")))
}

pub(crate) async fn runs(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    Ok(json(&blocking(move || Ok(drover_engine::documents::runs(&store)?)).await?))
}

pub(crate) async fn status(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Response, ApiError> {
    let run = run_id(&run)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    Ok(json(&blocking(move || Ok(drover_engine::documents::status(&store, run, clock)?)).await?))
}

/// `?after=SEQ`.
#[derive(Debug, Deserialize)]
pub(crate) struct After {
    #[serde(default)]
    after: i64,
}

pub(crate) async fn events(
    State(state): State<AppState>,
    Path(run): Path<String>,
    Query(after): Query<After>,
) -> Result<Response, ApiError> {
    let run = run_id(&run)?;
    let store = state.store.clone();
    let events = blocking(move || {
        store.run(run)?;
        Ok(store.events(run, after.after)?)
    })
    .await?;
    Ok(json(&events))
}

pub(crate) async fn report(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Response, ApiError> {
    let run = run_id(&run)?;
    let store = state.store.clone();
    Ok(json(&blocking(move || Ok(drover_engine::report::Report::build(&store, run)?)).await?))
}

pub(crate) async fn stream(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let run = run_id(&run)?;
    let latest = state.live.follow(run).await?;
    let mut shutdown = state.shutdown.clone();
    let ended = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let events = WatchStream::new(latest)
        .map(|published| Ok(Event::default().event("view").data(&published.json)))
        .take_until(ended);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// One saved plan of `/api/plans`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PlanListing {
    /// Its name in `/plans/{name}` and `/api/plans/{name}`: the file's stem.
    pub name: String,
    /// The workflow it plans.
    pub workflow: String,
    /// The workflow's version.
    pub version: String,
    /// The file the server read it from.
    pub file: String,
}

pub(crate) async fn plans(State(state): State<AppState>) -> Response {
    let list: Vec<PlanListing> = state
        .plans
        .iter()
        .map(|p| PlanListing {
            name: p.name.clone(),
            workflow: p.plan.workflow.clone(),
            version: p.plan.version.clone(),
            file: p.path.display().to_string(),
        })
        .collect();
    json(&list)
}

pub(crate) async fn plan(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let saved = state
        .plans
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no saved plan {name}")))?;
    Ok(json(&saved.plan))
}

/// The body of approve and retry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepCommand {
    step: String,
    #[serde(default)]
    comment: Option<String>,
}

/// The body of skip.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SkipCommand {
    step: String,
    output: Value,
    #[serde(default)]
    comment: Option<String>,
}

/// The body of cancel.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelCommand {
    #[serde(default)]
    comment: Option<String>,
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    operator: Operator,
    Path(run): Path<String>,
    Json(body): Json<StepCommand>,
) -> Result<Response, ApiError> {
    send(&state, &operator, &run, Request::Approve { step: body.step, comment: non_empty(body.comment) })
        .await
}

pub(crate) async fn retry(
    State(state): State<AppState>,
    operator: Operator,
    Path(run): Path<String>,
    Json(body): Json<StepCommand>,
) -> Result<Response, ApiError> {
    send(&state, &operator, &run, Request::Retry { step: body.step, comment: non_empty(body.comment) }).await
}

pub(crate) async fn skip(
    State(state): State<AppState>,
    operator: Operator,
    Path(run): Path<String>,
    Json(body): Json<SkipCommand>,
) -> Result<Response, ApiError> {
    let request = Request::Skip { step: body.step, output: body.output, comment: non_empty(body.comment) };
    send(&state, &operator, &run, request).await
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    operator: Operator,
    Path(run): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // Every field is optional: no body is `{}`.
    let body: CancelCommand = if body.iter().all(u8::is_ascii_whitespace) {
        CancelCommand::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("the body is not a cancel command: {e}"))
        })?
    };
    send(&state, &operator, &run, Request::Cancel { comment: non_empty(body.comment) }).await
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

/// Delivers a command as the logged-in person, as `drover approve` and the others do, and answers
/// what their `--json` prints.
async fn send(
    state: &AppState,
    operator: &Operator,
    run: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let run = run_id(run)?;
    let by = operator.user.name.clone();
    let delivery = operator::request(&state.operators, run, request.clone(), &by).await?;
    state.store.verify().await?;
    tracing::info!(run = %run, command = request.kind(), step = request.step_key().unwrap_or(""), by = %by, "operator command");
    Ok(json(&Delivered::new(run, &request, &by, &delivery)))
}
