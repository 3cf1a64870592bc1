//! `logshipping-catch-up`: the component of `sql_logshipping::catch_up::CatchUp`. Its logic, documentation and tests
//! live in `plugins/sql-logshipping`, shared with the other log-shipping plugins; this crate only
//! exports it.

pub use sql_logshipping::catch_up::CatchUp;

drover_sdk::export_plugin!(CatchUp);
