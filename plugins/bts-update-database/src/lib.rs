//! `bts-update-database`: the component of `failover_dbrefs::UpdateDatabase`. Its logic, documentation and
//! tests live in `plugins/failover-dbrefs`, shared with `bts-update-registry`; this crate only exports it.

pub use failover_dbrefs::UpdateDatabase;

drover_sdk::export_plugin!(UpdateDatabase);
