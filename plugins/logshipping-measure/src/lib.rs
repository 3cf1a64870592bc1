//! `logshipping-measure`: the component of `sql_logshipping::measure::Measure`. Its logic, documentation and tests
//! live in `plugins/sql-logshipping`, shared with the other log-shipping plugins; this crate only
//! exports it.

pub use sql_logshipping::measure::Measure;

drover_sdk::export_plugin!(Measure);
