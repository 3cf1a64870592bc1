//! The BizTalk lab: a simulated BizTalk Server group and its Windows servers, kept in a JSON file
//! and reached through Drover's `command` transport (`drover-lab exec --state <lab.json> <SERVER>
//! -- <program> <args…>`). `PROTOCOL.md` beside this crate is the contract with the BizTalk
//! plugins: the command lines the lab accepts, word for word, and what it answers.
//!
//! - [`state`]: the model and its locked, atomic persistence;
//! - [`init`]: the fresh lab; [`inventory`]: the Drover inventory that reaches it; [`export`]:
//!   the configuration files exported from the production runtime servers;
//! - [`programs`]: the emulated Windows tools, one module each;
//! - [`logshipping`]: BizTalk log shipping from the production SQL Server to the DR SQL
//!   instances (backup history, restore state, the SQL Server Agent jobs, the disaster);
//! - [`activation`]: the BizTalk side of failover activation (database locations, receive
//!   locations, the SSO master secret's holders);
//! - [`fault`]: fault injection; [`replace`]: a failed runtime server rebuilt with the same
//!   name; [`show`]: the readable state;
//! - [`windows`]: the servers as Windows servers behind a real sshd (`drover-lab windows-shell`,
//!   sshd's `ForceCommand`): cmd.exe, Windows PowerShell 5.1 and its `-EncodedCommand` scripts,
//!   the logon kinds and the command log.
//!
//! Invariant: the lab never runs anything on the machine it runs on; every program is emulated
//! against the state, and a command line it does not know fails with 9009.

// Failover, BizTalk side (issue 18, L2)
pub mod activation;
// Failover, re-protect (issue 18, F14)
pub mod backup_job;
pub mod export;
pub mod fault;
pub mod init;
pub mod inventory;
// Logins on the DR SQL Server (issue 18, F4)
pub mod logins;
// Log shipping (issue 18, L1)
pub mod logshipping;
pub mod programs;
pub mod replace;
pub mod show;
pub mod state;
pub mod windows;

/// Environment variables the lab reads.
pub mod env {
    /// An RFC 3339 time (`2026-11-22T10:15:01Z`) used instead of the clock, for reproducible logs.
    pub const DROVER_LAB_NOW: &str = "DROVER_LAB_NOW";
    /// Milliseconds a join holds the lab before it completes (tests kill Drover meanwhile).
    pub const DROVER_LAB_JOIN_DELAY_MS: &str = "DROVER_LAB_JOIN_DELAY_MS";
}

/// The exit status a Windows exit code becomes on Unix, where a status holds 8 bits: `code` mod
/// 256 (9009 becomes 49, 1058 becomes 34), or 1 when that would read as success.
pub fn unix_status(code: i32) -> u8 {
    match (code & 0xff) as u8 {
        0 if code != 0 => 1,
        status => status,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_codes_fold_into_a_byte_and_never_into_success() {
        assert_eq!(super::unix_status(0), 0);
        assert_eq!(super::unix_status(1), 1);
        assert_eq!(super::unix_status(9009), 49);
        assert_eq!(super::unix_status(1058), 34);
        assert_eq!(super::unix_status(512), 1);
    }
}
