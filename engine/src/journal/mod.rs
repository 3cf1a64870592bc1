//! The journal's vocabulary: what a run's journal says, as types. [`RunId`] names a run,
//! [`Event`] is one entry of its event journal and [`Actor`] who caused it, [`Request`] an
//! operator command waiting to be applied, [`PinnedPlugins`] the plugin bytes a run is held to.
//!
//! These types are the API of `drover events --json` and of the journal file: a change to how
//! they serialize changes what scripts and older journals read. `docs/events.md` is generated
//! from them ([`reference`]). How they are kept (SQLite) is [`crate::store`]'s business.

mod event;
mod pinned;
pub mod reference;
mod request;
mod run_id;

pub use event::{Actor, AttemptAudit, AttemptCancelled, Event, LeftAsIs, NeedsOperator};
pub use pinned::{PINNED_PLUGINS_FORMAT, PinnedPlugin, PinnedPlugins};
pub use request::{Request, UnreadableRequest};
pub use run_id::{InvalidRunId, RunId};
