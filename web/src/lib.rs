//! `drover-web`: the web view of `drover serve`. An HTTP server over the journal with the runs, a
//! run's live page (its graph, step states, timeline, RTO clock, waiting reasons and events, kept
//! current by server-sent events as the journal changes), saved plans, a JSON API under `/api/`
//! returning the documents of the command line's `--json` output, and the operator actions
//! (approve, retry, skip, cancel) for people who logged in.
//!
//! The engine is the only source of truth: every page and document is built from the journal
//! through `drover_engine` (the run page's body is the HTML report's own rendering), and every
//! action goes through `drover_engine::run::operator`, as `drover approve` does. It speaks plain
//! HTTP, or HTTPS only when given a certificate and key ([`tls`]).
mod api;
pub mod auth;
mod error;
pub mod layout;
mod live;
mod pages;
pub mod plans;
pub mod reference;
mod server;
pub mod tls;
mod view;

pub use api::{ENDPOINTS, Endpoint, PlanListing};
pub use server::{MAX_BODY, ServeConfig, serve};
