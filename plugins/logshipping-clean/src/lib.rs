//! `logshipping-clean`: the component of `sql_logshipping::clean::Clean`. Its logic, documentation and tests
//! live in `plugins/sql-logshipping`, shared with the other log-shipping plugins; this crate only
//! exports it.

pub use sql_logshipping::clean::Clean;

drover_sdk::export_plugin!(Clean);
