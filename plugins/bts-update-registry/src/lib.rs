//! `bts-update-registry`: the component of `failover_dbrefs::UpdateRegistry`. Its logic, documentation and
//! tests live in `plugins/failover-dbrefs`, shared with `bts-update-database`; this crate only exports it.

pub use failover_dbrefs::UpdateRegistry;

drover_sdk::export_plugin!(UpdateRegistry);
