//! `logshipping-reprotect`: the component of `sql_logshipping::reprotect::Reprotect` (F14). Its
//! logic, documentation and tests live in `plugins/sql-logshipping`, shared with the other
//! log-shipping plugins; this crate only exports it.

pub use sql_logshipping::reprotect::Reprotect;

drover_sdk::export_plugin!(Reprotect);
