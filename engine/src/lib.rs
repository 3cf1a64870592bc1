//! `drover_engine`: the library behind the `drover` binary.
//!
//! - [`plugin`]: WebAssembly step plugins: the sandbox, the host calls, installed plugins.
//! - [`grants`]: what a step may do, and refusals.
//! - [`secrets`]: secret values, references and redaction.
//! - [`target`]: transports to the servers a step acts on.
//!
//! See `docs/architecture.md` for the codemap and the invariants.

pub mod grants;
pub mod plugin;
pub mod secrets;
pub mod target;
