//! What Drover's BizTalk plugins share: the exact command lines they send to Windows servers and
//! parsers of the real tools' output formats. `lab/PROTOCOL.md` (in the Drover repository) is
//! the contract: the lab accepts exactly these command lines and answers in these formats.
//!
//! Pure functions only (no host calls), so every parser is unit-tested natively; the exception
//! is [`configure`], the host-side steps the group plugins share, next to [`group`], the input
//! types they share. Feature `testing` adds `testing`, test support for those plugins (this
//! crate's own tests use its fixtures too).

// Failover, re-protect (issue 18, F14)
pub mod backup_job;
pub mod config_log;
pub mod config_xml;
pub mod configure;
// Failover, BizTalk side (issue 18, L2)
pub mod dbrefs;
pub mod exported_config;
pub mod gac;
pub mod group;
// Failover, database references (issue 18, P2)
pub mod group_record;
// Failover, logins on the DR SQL Server (issue 18, F4)
pub mod logins;
pub mod logshipping;
pub mod membership;
pub mod powershell;
// Failover, BizTalk side (issue 18, L2)
pub mod processing;
pub mod reg;
pub mod restore_config;
// Failover, WMI restart (issue 18, F9)
pub mod restart;
pub mod sc;
// Failover, BizTalk side (issue 18, L2)
pub mod sso_secret;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod unrecognized;
pub mod wmi;
