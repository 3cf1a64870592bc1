//! `logshipping-restore-to-mark`: the component of `sql_logshipping::restore_to_mark::RestoreToMark`. Its logic, documentation and tests
//! live in `plugins/sql-logshipping`, shared with the other log-shipping plugins; this crate only
//! exports it.

pub use sql_logshipping::restore_to_mark::RestoreToMark;

drover_sdk::export_plugin!(RestoreToMark);
