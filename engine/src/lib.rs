//! `drover_engine`: the library behind the `drover` binary.
//!
//! - [`plugin`]: WebAssembly step plugins: the sandbox, the host calls, installed plugins.
//! - [`display`]: plugin and target text made safe to show on a terminal or in a report.
//! - [`grants`]: what a step may do, and refusals.
//! - [`input_file`]: the files a user hands over, read with a size limit.
//! - [`inventory`]: the servers and groups a workflow acts on.
//! - [`journal`]: what a run's journal says, as types: run ids, events, operator requests.
//! - [`report`]: the recovery report of a run, from the journal.
//! - [`run`]: starting, driving and resuming runs; operator commands.
//! - [`secrets`]: secret values, references and redaction.
//! - [`store`]: the run journal in SQLite.
//! - [`target`]: transports to the servers a step acts on.
//! - [`workflow`]: workflow files parsed and validated into a plan.
//!
//! See `docs/architecture.md` for the codemap and the invariants.

pub mod diagnostic;
pub mod display;
pub mod documents;
pub mod grants;
pub mod input_file;
pub mod inventory;
pub mod journal;
pub mod plugin;
pub mod report;
pub mod run;
pub mod secrets;
pub mod store;
pub mod target;
pub mod workflow;
