//! Workflow files: TOML (or JSON with the same schema) parsed and validated into a [`Workflow`],
//! and the templates its steps use. This module owns the file format; it runs nothing and never
//! lets a serde file type reach the scheduler.
//!
//! Two stages, as the code is laid out:
//!
//! - [`parse`](mod@parse) ([`parse()`](fn@parse)): text to the file types of
//!   [`file`](mod@file), keeping the position of every value; syntax errors and every unknown key
//!   are reported, the known keys taken from the generated JSON Schema ([`schema`]).
//! - [`validate`](mod@validate) ([`validate()`](fn@validate), [`load`]): file types to the
//!   domain types of [`model`]: names and ids, `needs` as a DAG (`graph.rs`), plugins resolved
//!   through the caller, durations and limits, template names ([`template`]) and constant inputs
//!   against each plugin's input schema (`input.rs`), and the keys only the report reads
//!   (`report_keys.rs`: step phases, `[report]`).
//!
//! JSON files go through `json.rs` into the same spanned document tree as TOML, so both formats
//! share the deserializer, the unknown-key check and real line and column numbers.
//!
//! Problems come back all at once as [`Diagnostics`], each `file:line:column: message`.
//!
//! **Invariant:** a [`Workflow`] exists only if its file had no problem: every `needs` names an
//! upstream step, the DAG is acyclic, every plugin step carries the describe of the plugin it
//! resolved to, and every template names only params, upstream steps and scope roots that exist.

pub use crate::diagnostic;
pub mod file;
mod graph;
mod input;
mod json;
pub mod model;
pub mod parse;
pub mod reference;
mod report_keys;
pub mod schema;
pub mod template;
pub mod validate;

pub use diagnostic::{Diagnostic, Diagnostics, Source};
pub use model::{
    ForEach, GrantsSpec, MAX_RETRY_DELAY, MAX_TIMEOUT, OnFailure, Param, ParamType, ReportSpec, RetryPolicy,
    RpoSource, RunLimits, Step, StepConcurrency, StepKind, Workflow,
};
pub use parse::{WorkflowFile, parse};
pub use schema::json_schema;
pub use template::{Scope, StepOutput, TemplateError, eval_for_each_list, eval_when, render, render_text};
pub use validate::{LoadError, ValidationContext, load, load_text, validate};
