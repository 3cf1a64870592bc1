//! Checks the write-ahead log against SQLite's own index of it, so that a log that something
//! outside drover overwrote is found before it is copied into the database, and before a command
//! reports that what it committed is durable.
//!
//! SQLite reads a page from the log through its index (the `-shm` file) without checking the
//! frame's checksum, and a checkpoint copies each page's latest frame into the database the same
//! way. Only a process that opens the journal afresh verifies the checksums, and it silently
//! ignores every frame from the first bad one on. Bytes written into `-wal` by something else
//! while a run goes on were therefore either copied into the database as they were (a corrupt
//! journal for every later command, after the run said it succeeded) or, after a crash, dropped
//! with every commit after them (a run silently set back).
//!
//! [`check`] reads back every frame the index says the log holds and checks its salts and its
//! checksum, then sorts what it finds: [`Finding::Intact`]; [`Finding::Scratched`], when the hit
//! frames provably hold nothing the database still needs (the log's header, or an older version of
//! a page whose newer version was already logged when an earlier check found both intact), so a
//! checkpoint, which goes by the index, copies every page's committed content; otherwise
//! [`Finding::Damaged`]: a hit frame held a page's latest version, or SQLite may have read it
//! before it wrote the newer version (a page built on garbage, with a valid checksum).
//!
//! The formats are SQLite's documented file formats (<https://www.sqlite.org/fileformat2.html>,
//! "Write-Ahead Log File Format", and <https://www.sqlite.org/walformat.html>, the WAL-index
//! header and its page-number arrays); unit tests check this reading against logs SQLite writes.
//!
//! What this does not see: damage to the database file itself (the `quick_check` of
//! [`super::SqliteStore::verify`] sees some), to the `-shm` index, and damage after the last check.
//!
//! This module never writes the log, the index or the database. The one file it writes is the
//! `-damaged` note that makes every later command refuse the journal.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::StoreError;

/// The log's magic number; the low bit says the checksums read words big-endian.
const MAGIC: u32 = 0x377f_0682;
/// Bytes of the log's header.
const HEADER: usize = 32;
/// Bytes of a frame's header.
const FRAME_HEADER: usize = 24;
/// Bytes of one copy of the index header at the start of `-shm` (there are two copies).
const INDEX_HEADER: usize = 48;
/// Bytes of the index's header region: two header copies and the checkpoint information.
const INDEX_HEADERS: usize = 136;
/// The index is made of blocks of this many bytes, each a page-number array and a hash table.
const INDEX_BLOCK: u64 = 32 * 1024;
/// Frames a block's page-number array covers; the first block's is shorter by the header region.
const BLOCK_FRAMES: usize = 4096;

/// `<journal>-wal`.
pub(super) fn log_path(db: &Path) -> PathBuf {
    side(db, "-wal")
}

/// `<journal>-shm`.
pub(super) fn index_path(db: &Path) -> PathBuf {
    side(db, "-shm")
}

/// `-shm` of `db`, opened once per process and never closed. Closing any descriptor of a file
/// drops every POSIX lock the process holds on it, SQLite's own included: SQLite's shared lock on
/// `-shm` tells other processes the index is in use, and without it the next process to open
/// the journal takes the index for unused and truncates it under this process's mapping, which
/// then dies of SIGBUS. A `-shm` replaced since (another inode) is opened anew; the old
/// descriptor stays open too.
fn index_file(db: &Path) -> std::io::Result<std::sync::Arc<File>> {
    use std::os::unix::fs::MetadataExt as _;
    use std::sync::{Arc, Mutex, OnceLock};
    /// Each `-shm` opened so far, by the journal path it was opened for.
    type Opened = Mutex<Vec<(PathBuf, Arc<File>)>>;
    static OPEN: OnceLock<Opened> = OnceLock::new();
    let path = index_path(db);
    let now = std::fs::metadata(&path)?;
    let mut open = OPEN.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
    let same = |f: &File| f.metadata().is_ok_and(|m| m.dev() == now.dev() && m.ino() == now.ino());
    if let Some((_, file)) = open.iter().rev().find(|(p, f)| *p == path && same(f)) {
        return Ok(file.clone());
    }
    let file = Arc::new(File::open(&path)?);
    open.push((path, file.clone()));
    Ok(file)
}

/// `<journal>-damaged`: written when damage is found; while it exists every open refuses the
/// journal.
pub(super) fn note_path(db: &Path) -> PathBuf {
    side(db, "-damaged")
}

fn side(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    db.with_file_name(name)
}

/// Records that the journal is damaged, so later commands refuse it with `detail` instead of
/// reading what SQLite can still recover from it. Best effort: the caller reports the damage in
/// any case.
fn write_note(db: &Path, detail: &str) {
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let text = format!(
        "{detail}\nfound by drover process {} at {at} (seconds since 1970); that process did not copy \
         the log into the database afterwards\n",
        std::process::id()
    );
    if let Err(e) = std::fs::write(note_path(db), text) {
        tracing::error!("cannot write {}: {e}", note_path(db).display());
    }
}

/// The note's first line, if the journal was found damaged.
pub(super) fn read_note(db: &Path) -> Option<String> {
    let text = std::fs::read_to_string(note_path(db)).ok()?;
    Some(text.lines().next().unwrap_or("a -damaged note exists").to_string())
}

/// The frames of one generation of the log (its salts) that a check found intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Vouched {
    salt: [u8; 8],
    frames: u32,
}

/// What a check of the log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Finding {
    /// Every frame the index counts is in the log as SQLite wrote it (`None`: no frame at all).
    Intact(Option<Vouched>),
    /// Bytes were overwritten, but only in the log's header or in older versions of pages whose
    /// newer version an earlier check found intact: a checkpoint now copies every page's
    /// committed content. Left in place, the log would lose commits at the next fresh open.
    Scratched(String),
    /// The latest version of some page was overwritten, or the log does not match its index:
    /// committed content is gone.
    Damaged(String),
}

/// The first header copy of the WAL index, as SQLite keeps it in `-shm` (native byte order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Index {
    /// Frames in the log that are part of the database.
    max_frame: u32,
    /// The database page size.
    page_size: usize,
    /// Whether the log's checksums read words big-endian.
    big_endian: bool,
    /// The running checksum after frame `max_frame`.
    frame_checksum: [u32; 2],
    /// The log header's salts, as its bytes.
    salt: [u8; 8],
}

fn native(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn big(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads the index header; `None` when there is no index or no frame in the log.
fn read_index(shm: &File) -> Result<Option<Index>, String> {
    let mut both = [0u8; 2 * INDEX_HEADER];
    match shm.read_exact_at(&mut both, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("cannot read SQLite's index of the log: {e}")),
    }
    let (first, second) = both.split_at(INDEX_HEADER);
    // isInit (byte 12) is 0 until a connection has built the index.
    if first[12] == 0 {
        return Ok(None);
    }
    if first != second {
        return Err("the two copies of SQLite's index header in -shm differ".into());
    }
    let max_frame = native(first, 16);
    if max_frame == 0 {
        // Nothing logged yet, and the page size may not be set either.
        return Ok(None);
    }
    let page_size = match u16::from_ne_bytes([first[14], first[15]]) {
        1 => 65536,
        n => usize::from(n),
    };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("SQLite's index of the log gives a page size of {page_size}"));
    }
    let mut salt = [0u8; 8];
    salt.copy_from_slice(&first[32..40]);
    Ok(Some(Index {
        max_frame,
        page_size,
        big_endian: first[13] != 0,
        frame_checksum: [native(first, 24), native(first, 28)],
        salt,
    }))
}

/// The page number of each of the first `frames` frames, from the index's page-number arrays.
fn page_numbers(shm: &File, frames: u32) -> Result<Vec<u32>, String> {
    let frames = frames as usize;
    let mut pages = Vec::with_capacity(frames);
    let mut block = 0u64;
    while pages.len() < frames {
        let (start, room) = if block == 0 {
            (INDEX_HEADERS as u64, BLOCK_FRAMES - INDEX_HEADERS / 4)
        } else {
            (block * INDEX_BLOCK, BLOCK_FRAMES)
        };
        let mut bytes = vec![0u8; (frames - pages.len()).min(room) * 4];
        shm.read_exact_at(&mut bytes, start)
            .map_err(|e| format!("cannot read SQLite's index of the log's pages: {e}"))?;
        pages.extend(bytes.chunks_exact(4).map(|c| native(c, 0)));
        block += 1;
    }
    Ok(pages)
}

/// SQLite's log checksum over `data` (a multiple of 8 bytes), continuing from `sum`.
fn checksum(big_endian: bool, data: &[u8], mut sum: [u32; 2]) -> [u32; 2] {
    for pair in data.chunks_exact(8) {
        let word = |at: usize| {
            let b = [pair[at], pair[at + 1], pair[at + 2], pair[at + 3]];
            if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
        };
        sum[0] = sum[0].wrapping_add(word(0)).wrapping_add(sum[1]);
        sum[1] = sum[1].wrapping_add(word(4)).wrapping_add(sum[0]);
    }
    sum
}

/// Frames in the log as SQLite's index of it counts them (0 when there is no index, or while
/// another process updates it), read with one `pread` of the open index file.
fn frames(shm: &File) -> u32 {
    read_index(shm).ok().flatten().map_or(0, |i| i.max_frame)
}

/// Checks the log of `db` against SQLite's index of it: the header (magic number, checksum,
/// salts), and every frame the index counts (salts, and its checksum computed from the one the
/// frame before stores, so that each frame is judged on its own). `vouched`: what the last check
/// found intact. To be called while this connection holds the write lock: no process appends to
/// the log or restarts it meanwhile.
pub(super) fn check(db: &Path, vouched: Option<Vouched>) -> Finding {
    let shm = match index_file(db) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Finding::Intact(None),
        Err(e) => return Finding::Damaged(format!("cannot open SQLite's index of the log: {e}")),
    };
    let index = match read_index(&shm) {
        Ok(Some(index)) => index,
        Ok(None) => return Finding::Intact(None),
        Err(detail) => return Finding::Damaged(detail),
    };
    let pages = match page_numbers(&shm, index.max_frame) {
        Ok(pages) => pages,
        Err(detail) => return Finding::Damaged(detail),
    };
    let total = index.max_frame;
    let wal = match File::open(log_path(db)) {
        Ok(f) => f,
        Err(e) => return Finding::Damaged(format!("the log of {total} frames cannot be read: {e}")),
    };
    let mut log = BufReader::with_capacity(256 * 1024, wal);
    let mut header = [0u8; HEADER];
    let header_read = log.read_exact(&mut header).is_ok();
    let header_intact = header_read
        && big(&header, 0) & !1 == MAGIC
        && checksum(index.big_endian, &header[..24], [0, 0]) == [big(&header, 24), big(&header, 28)]
        && header[16..24] == index.salt;
    // Frame numbers (from 1) whose bytes are not what SQLite wrote.
    let mut bad = Vec::new();
    let mut previous = [big(&header, 24), big(&header, 28)];
    let mut frame = vec![0u8; FRAME_HEADER + index.page_size];
    for n in 1..=total {
        if !header_read || log.read_exact(&mut frame).is_err() {
            bad.extend(n..=total);
            break;
        }
        let stored = [big(&frame, 16), big(&frame, 20)];
        let computed = checksum(
            index.big_endian,
            &frame[FRAME_HEADER..],
            checksum(index.big_endian, &frame[..8], previous),
        );
        if frame[8..16] != index.salt || computed != stored {
            bad.push(n);
        }
        previous = stored;
    }
    if bad.is_empty() {
        if previous != index.frame_checksum {
            return Finding::Damaged(format!(
                "the log's {total} frames do not end as SQLite's index of them says (the checksums differ)"
            ));
        }
        if header_intact {
            return Finding::Intact(Some(Vouched { salt: index.salt, frames: total }));
        }
        return Finding::Scratched(format!(
            "the log's header was overwritten; its {total} frames are intact"
        ));
    }
    // A bad frame is harmless only if a newer version of its page was logged, and found intact
    // together with it, before the damage: SQLite may have read it (and built a newer version on
    // it) any time it was the latest.
    let vouched = vouched.filter(|v| v.salt == index.salt).map_or(0, |v| v.frames.min(total));
    let mut newest_vouched = HashMap::new();
    for (i, page) in pages.iter().take(vouched as usize).enumerate() {
        newest_vouched.insert(*page, i as u32 + 1);
    }
    let harmless = |n: u32| newest_vouched.get(&pages[n as usize - 1]).is_some_and(|&j| j > n);
    let hit = format!(
        "{} of the {total} frames in the log were overwritten (the first is frame {})",
        bad.len(),
        bad[0]
    );
    match bad.iter().find(|&&n| !harmless(n)) {
        Some(&first) => {
            let page = pages[first as usize - 1];
            let latest = !pages[first as usize..].contains(&page);
            Finding::Damaged(if latest {
                format!("{hit}; frame {first} held the latest version of page {page}")
            } else {
                format!(
                    "{hit}; frame {first} held an older version of page {page}, which SQLite may have read before it wrote the newer one"
                )
            })
        }
        None => Finding::Scratched(format!(
            "{hit}; each held an older version of a page whose newer version was already logged and checked"
        )),
    }
}

thread_local! {
    /// Set by [`request_check`] inside a job on the writer thread: the guard then checks the log
    /// after that job's commit, whatever its length.
    static CHECK_NOW: Cell<bool> = const { Cell::new(false) };
}

/// Asks the writer thread's guard to check the log after the current commit, checkpoint it and
/// run `quick_check` ([`super::SqliteStore::verify`]). Called from a job, on the writer thread.
pub(super) fn request_check() {
    CHECK_NOW.with(|c| c.set(true));
}

/// Frames the log may grow by between two checks (and checkpoints): SQLite's own automatic
/// checkpoint threshold, which `pragmas.rs` turns off so that nothing is copied unchecked.
const CHECKPOINT_FRAMES: u32 = 1000;

/// The writer thread's watch over the log. It checkpoints (copies the log into the database) only
/// after [`check`] found the log intact or merely scratched, and once it finds damage it refuses
/// every later commit, writes the `-damaged` note and keeps the connection's close from
/// checkpointing.
pub(super) struct Guard {
    db: PathBuf,
    /// `-shm`, opened on first use and kept: one `pread` per commit tells the log's length.
    index: Option<std::sync::Arc<File>>,
    /// The log's length (in frames) at the last check.
    checked: u32,
    /// What the last check found intact.
    vouched: Option<Vouched>,
    damaged: Option<String>,
}

impl Guard {
    pub(super) fn new(db: PathBuf) -> Guard {
        Guard { db, index: None, checked: 0, vouched: None, damaged: None }
    }

    /// The error every commit gets once the log was found damaged.
    pub(super) fn refusal(&self) -> Option<StoreError> {
        let detail = self.damaged.clone()?;
        Some(StoreError::Damaged { path: self.db.clone(), detail })
    }

    /// Records damage; returns the error every commit gets from now on.
    fn found(&mut self, detail: String) -> StoreError {
        if self.damaged.is_none() {
            tracing::error!("the journal {} is damaged: {detail}", self.db.display());
            write_note(&self.db, &detail);
            self.damaged = Some(detail.clone());
        }
        StoreError::Damaged { path: self.db.clone(), detail }
    }

    /// After a commit, outside any transaction: once the log grew by [`CHECKPOINT_FRAMES`] since
    /// the last check, or when a job asked ([`request_check`]), checks the log and checkpoints;
    /// when asked, also runs `quick_check`.
    pub(super) fn after_commit(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let asked = CHECK_NOW.with(|c| c.replace(false));
        if self.index.is_none() {
            self.index = index_file(&self.db).ok();
        }
        let now = self.index.as_deref().map_or(0, frames);
        if now < self.checked {
            // The log restarted from its beginning after a complete checkpoint.
            self.checked = 0;
        }
        if !asked && now < self.checked.saturating_add(CHECKPOINT_FRAMES) {
            return Ok(());
        }
        match self.check_locked(conn)? {
            Finding::Intact(_) if asked => {}
            Finding::Intact(_) => {
                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    .map_err(|e| self.sqlite(e))?;
            }
            Finding::Scratched(detail) => self.copy_scratched(conn, &detail, asked)?,
            Finding::Damaged(detail) => return Err(self.found(detail)),
        }
        self.checked = now;
        if asked {
            let check: String =
                conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| self.sqlite(e))?;
            if check != "ok" {
                return Err(self.found(format!("SQLite's quick_check of the database says {check}")));
            }
        }
        Ok(())
    }

    /// A scratched log is copied into the database at once, completely (`TRUNCATE`), while this
    /// connection's index still finds every page's latest frame: after that the scratches are
    /// gone. Other processes reading keep a checkpoint from completing; when `must` (a command is
    /// about to report), a log that stays scratched is damage.
    fn copy_scratched(&mut self, conn: &Connection, detail: &str, must: bool) -> Result<(), StoreError> {
        tracing::warn!(
            "something outside drover wrote into the log of {}: {detail}; copying the log into the database now",
            self.db.display()
        );
        for _ in 0..3 {
            let busy: i64 = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .map_err(|e| self.sqlite(e))?;
            if busy == 0 {
                return Ok(());
            }
        }
        if must {
            return Err(self.found(format!(
                "{detail}, and the log could not be copied into the database while other processes read it"
            )));
        }
        Ok(())
    }

    fn sqlite(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.db, e)
    }

    /// [`check`] under the write lock, so that no other process appends to the log or restarts it
    /// meanwhile. Fails only if the lock cannot be had (busy for SQLite's timeout).
    fn check_locked(&mut self, conn: &Connection) -> Result<Finding, StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| self.sqlite(e))?;
        let finding = check(&self.db, self.vouched);
        let _ = conn.execute_batch("ROLLBACK");
        if let Finding::Intact(vouched) = finding {
            self.vouched = vouched;
        }
        Ok(finding)
    }

    /// Before the connection closes (which, if it is the last connection, checkpoints and
    /// removes the log): checks the log, and if it is damaged keeps the close from copying it
    /// into the database. A scratched log is copied: by the index, that loses nothing.
    pub(super) fn before_close(&mut self, conn: &Connection) {
        // When the write lock cannot be had, another process has the journal open: this close is
        // not the last one and copies nothing; that process checks at its own.
        if self.damaged.is_none()
            && let Ok(Finding::Damaged(detail)) = self.check_locked(conn)
        {
            self.found(detail);
        }
        if self.damaged.is_some() {
            let _ = conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal in WAL mode with `rows` rows of 2 kB inserted one commit each (so pages are written
    /// again and again) and no checkpoint; left open.
    fn journal(dir: &Path, rows: usize) -> (PathBuf, Connection) {
        let db = dir.join("j.db");
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", "0").unwrap();
        conn.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
        for i in 0..rows {
            conn.execute("INSERT INTO t VALUES (?1)", [format!("row {i} {}", "x".repeat(2000))]).unwrap();
        }
        (db, conn)
    }

    fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(bytes, at).unwrap();
    }

    /// Each frame's page number, from the log's frame headers.
    fn frame_pages(db: &Path) -> Vec<u32> {
        let log = std::fs::read(log_path(db)).unwrap();
        log[HEADER..].chunks_exact(FRAME_HEADER + 4096).map(|f| big(f, 0)).collect()
    }

    fn frame_at(n: u32) -> u64 {
        (HEADER + (n as usize - 1) * (FRAME_HEADER + 4096)) as u64
    }

    #[test]
    fn a_log_sqlite_wrote_checks_intact_and_the_index_reads_as_sqlite_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        // Past the first index block's 4062 frames.
        let (db, conn) = journal(dir.path(), 4200);
        assert!(matches!(check(&db, None), Finding::Intact(_)));
        let shm = File::open(index_path(&db)).unwrap();
        let logged = frame_pages(&db);
        assert!(logged.len() > 4100, "{}", logged.len());
        assert_eq!(frames(&shm) as usize, logged.len());
        assert_eq!(page_numbers(&shm, frames(&shm)).unwrap(), logged);
        // After a checkpoint the log restarts with new salts on the next write.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).unwrap();
        conn.execute("INSERT INTO t VALUES ('after')", []).unwrap();
        assert!(matches!(check(&db, None), Finding::Intact(_)));
    }

    #[test]
    fn bytes_over_a_checked_older_version_of_a_page_scratch_the_log_and_any_other_damage_it() {
        let dir = tempfile::tempdir().unwrap();
        let (db, conn) = journal(dir.path(), 20);
        let wal = log_path(&db);
        let original = std::fs::read(&wal).unwrap();
        let pages = frame_pages(&db);
        let last = pages.len() as u32;
        let superseded = (1..last).find(|&n| pages[n as usize..].contains(&pages[n as usize - 1])).unwrap();
        let latest =
            (1..=last).rev().find(|&n| !pages[n as usize..].contains(&pages[n as usize - 1])).unwrap();
        let Finding::Intact(all) = check(&db, None) else { panic!("not intact") };
        let cases = [
            // An older version, its newer one checked before the damage: nothing is lost.
            (frame_at(superseded) + 100, all, "scratched"),
            // Not checked before: SQLite may have built the newer version on the damage.
            (frame_at(superseded) + 100, None, "damaged"),
            (3, None, "scratched"), // the header's magic number
            (frame_at(latest) + 100, all, "damaged"),
            (frame_at(latest) + 2, all, "damaged"), // its page number
        ];
        for (at, vouched, expected) in cases {
            overwrite(&wal, at, b"\xde\xad\xbe\xef");
            let finding = check(&db, vouched);
            let kind = match &finding {
                Finding::Intact(_) => "intact",
                Finding::Scratched(_) => "scratched",
                Finding::Damaged(_) => "damaged",
            };
            assert_eq!(kind, expected, "bytes at {at}: {finding:?}");
            std::fs::write(&wal, &original).unwrap();
            assert!(matches!(check(&db, None), Finding::Intact(_)));
        }
        // A log cut short loses its last frames, the latest of their pages.
        std::fs::OpenOptions::new().write(true).open(&wal).unwrap().set_len(frame_at(last)).unwrap();
        assert!(matches!(check(&db, all), Finding::Damaged(_)));
        drop(conn);
    }

    #[test]
    fn no_index_or_an_empty_log_is_nothing_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("none.db");
        assert!(matches!(check(&db, None), Finding::Intact(_)));
        let (db, conn) = journal(dir.path(), 1);
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        assert!(matches!(check(&db, None), Finding::Intact(_)));
    }
}
