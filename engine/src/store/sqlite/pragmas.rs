//! Every PRAGMA Drover sets, in one table, with why.

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: in WAL mode a commit survives a crash of Drover but the last commits
    /// may be lost on power loss or an OS crash. Faster: no fsync per commit.
    Normal,
}

impl Durability {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// (pragma, value, why), applied in order after the read-only checks at open.
pub(crate) const PRAGMAS: &[(&str, &str, &str)] = &[
    ("journal_mode", "WAL", "readers never block the single writer; commits append to the log"),
    ("foreign_keys", "ON", "a step never refers to a run that does not exist"),
    ("busy_timeout", "5000", "a second process waits for the write lock instead of failing at once"),
    (
        "wal_autocheckpoint",
        "0",
        "the writer checkpoints itself every 1000 frames, after checking the log (store/sqlite/wal.rs): SQLite's own would copy a damaged log unchecked",
    ),
];
