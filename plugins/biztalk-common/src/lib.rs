//! What Drover's BizTalk plugins share: the exact command lines they send to Windows servers and
//! parsers of the real tools' output formats. `lab/PROTOCOL.md` (in the Drover repository) is
//! the contract: the lab accepts exactly these command lines and answers in these formats.
//!
//! Pure functions only (no host calls), so every parser is unit-tested natively.

pub mod config_xml;
pub mod gac;
pub mod membership;
pub mod powershell;
pub mod reg;
pub mod restore_config;
pub mod sc;
pub mod wmi;
