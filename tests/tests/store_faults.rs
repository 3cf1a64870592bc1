//! Faults of the run journal's storage while a run is in progress: the disk filling up, the file
//! made read-only, the file replaced by garbage, bytes written into its write-ahead log. Each
//! gives exit code 6 and a message naming the file and the cause, never a silently corrupt
//! journal or a run reported succeeded, and once the fault is cleared a resume finishes the run.
//! And the journal as the commands that only read it find it: missing (exit 3, nothing created),
//! an empty file (refused, not taken for a new journal), archived read-only (still readable),
//! locked or unusable (exit 6 from every command; a command that only reads waits for no commit in
//! progress, only for a journal held exclusively). And one checkpoint the journal cannot give back:
//! the attempt that reads it fails with the store's error, never takes it for absent.
//!
//! The disk-full test mounts a small tmpfs of its own (root is needed, as `cargo xtask test` and
//! CI run); when the mount is refused it fails and says so, it never skips.
//!
//! A file made read-only, or replaced, while a process has it open stays writable to that process
//! (Unix checks permissions when a file is opened), so those two faults are met by the next
//! process: the one that resumes after the first was killed mid-run.

use std::os::unix::fs::{FileExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use drover_tests::{HeldRun, Sandbox, stderr, stdout, wasm};

/// A tmpfs of a few MiB mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "drover-store-faults"])
            .arg(dir.path())
            .output()
            .expect("cannot run mount(8): the disk-full test needs util-linux's mount");
        assert!(
            out.status.success(),
            "the disk-full test mounts a {size} tmpfs and needs root to do so (cargo xtask test runs as root \
             in CI): mount said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("--lazy").arg(self.dir.path()).status();
    }
}

/// Fills the file system holding `path` until a write fails with "no space left".
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Whatever a partial page left: one byte at a time.
    while file.write(&[0]).is_ok_and(|n| n == 1) {}
}

/// SQLite's own check of the whole file, read-only.
fn quick_check(db: &Path) -> String {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).unwrap()
}

/// The run's attempts as (instance key, attempt number, state), from the journal.
fn attempts(db: &Path) -> Vec<(String, i64, String)> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt =
        conn.prepare("SELECT step_key, number, state FROM attempts ORDER BY step_key, number").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

/// After the fault is cleared: `drover resume` finishes the run, the step succeeded, no attempt's
/// effect happened twice, every effect belongs to a journaled attempt, and the succeeded
/// attempt's effect happened.
fn resume_finishes(sandbox: &Sandbox, run: &str, effects: &Path) {
    let out = sandbox.run(&["resume", run]);
    assert!(out.status.success(), "resume after the fault: {}{}", stdout(&out), stderr(&out));
    assert_eq!(sandbox.status(run)["state"], "succeeded");
    assert_eq!(quick_check(&sandbox.db_path()), "ok");
    let attempts = attempts(&sandbox.db_path());
    let numbers: Vec<i64> = attempts.iter().map(|a| a.1).collect();
    assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>(), "attempts numbered without gaps");
    let last = attempts.last().unwrap();
    assert_eq!(last.2, "succeeded", "{attempts:?}");
    let text = std::fs::read_to_string(effects).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        assert!(seen.insert(*line), "an attempt's effect happened twice: {lines:?}");
        assert!(
            attempts.iter().any(|a| *line == format!("{} {}", a.0, a.1)),
            "effect {line:?} of no journaled attempt: {attempts:?}"
        );
    }
    assert!(seen.contains(format!("{} {}", last.0, last.1).as_str()), "{lines:?} {attempts:?}");
}

fn start(sandbox: &Sandbox) -> (HeldRun, String) {
    sandbox.install(&[wasm::FIXTURE]);
    let mut held = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut held.child);
    (held, run)
}

/// SIGKILLs the process inside its step, then releases the step. The step's `sh` dies with the
/// process (target commands do not outlive their driver), so it appends nothing.
fn kill_inside_the_step(held: &mut HeldRun) {
    held.child.kill().unwrap();
    held.child.wait().unwrap();
    std::fs::write(&held.release, "").unwrap();
}

#[test]
fn a_disk_filling_up_mid_run_stops_it_with_exit_6_and_a_resume_after_freeing_space_finishes_it() {
    let disk = Tmpfs::mount("2m");
    let db = disk.path().join("drover.db");
    let sandbox = Sandbox::with_db(db.clone());
    let (HeldRun { child, effects, release }, run) = start(&sandbox);
    let filler = disk.path().join("filler");
    fill(&filler);
    std::fs::write(&release, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains(&format!("the disk holding {} is full: free space and resume", db.display())),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(quick_check(&db), "ok", "the journal after the failed commit");
    resume_finishes(&sandbox, &run, &effects);
}

#[test]
fn a_journal_made_read_only_mid_run_is_refused_untouched_and_resumes_once_writable() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let db = sandbox.db_path();
    let (mut held, run) = start(&sandbox);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    kill_inside_the_step(&mut held);
    let before = std::fs::read(&db).unwrap();
    let out = sandbox.run(&["resume", &run]);
    assert_eq!(out.status.code(), Some(6), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains(&format!("the database {} is read-only", db.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the refused resume wrote to the journal");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    resume_finishes(&sandbox, &run, &held.effects);
}

#[test]
fn a_journal_replaced_by_garbage_mid_run_is_refused_untouched_and_resumes_once_restored() {
    let sandbox = Sandbox::new();
    let db = sandbox.db_path();
    let (mut held, run) = start(&sandbox);
    kill_inside_the_step(&mut held);
    // Keep the real journal (with its write-ahead log) aside, and put garbage in its place.
    let side = |p: &Path, ext: &str| PathBuf::from(format!("{}{ext}", p.display()));
    let aside = sandbox.path().join("aside.db");
    for ext in ["", "-wal", "-shm"] {
        if side(&db, ext).exists() {
            std::fs::rename(side(&db, ext), side(&aside, ext)).unwrap();
        }
    }
    let garbage = b"not a journal at all, and long enough to have a header of sorts ".repeat(64);
    std::fs::write(&db, &garbage).unwrap();
    for args in [vec!["resume", run.as_str()], vec!["status", run.as_str()]] {
        let out = sandbox.run(&args);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}{}", stdout(&out), stderr(&out));
        assert!(
            stderr(&out)
                .contains(&format!("the database {} is corrupt or not a Drover database", db.display())),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), garbage, "the garbage was written to");
    for ext in ["-wal", "-shm"] {
        assert!(!side(&db, ext).exists(), "a refused command made {ext}");
    }
    for ext in ["", "-wal", "-shm"] {
        if side(&aside, ext).exists() {
            std::fs::rename(side(&aside, ext), side(&db, ext)).unwrap();
        }
    }
    resume_finishes(&sandbox, &run, &held.effects);
}

/// `<journal><ext>`: its side files.
fn side(db: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}{ext}", db.display()))
}

/// The names in a folder, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts `drover args…` exits with `code` and says `expected` on stderr.
fn assert_exit(out: &Output, args: &[&str], code: i32, expected: &str) {
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}{}", stdout(out), stderr(out));
    assert!(stderr(out).contains(expected), "{args:?}: {expected:?} not in {}", stderr(out));
}

/// The commands that only read the journal, about run `run`.
fn readers(run: &str) -> Vec<Vec<String>> {
    [vec!["runs"], vec!["status", run], vec!["events", run], vec!["report", run]]
        .into_iter()
        .map(|args| args.into_iter().map(String::from).collect())
        .collect()
}

#[test]
fn commands_that_only_read_never_create_a_journal_and_name_the_path_they_looked_at() {
    let sandbox = Sandbox::new();
    let db = sandbox.db_path();
    for args in readers("run_01kbs0pw9kx8vqa1jjzfb1f2fe") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sandbox.run(&args);
        assert_exit(&out, &args, 3, &format!("no journal at {}", db.display()));
        assert!(stderr(&out).contains("--db or DROVER_DB"), "{}", stderr(&out));
    }
    assert_eq!(listing(sandbox.path()), Vec::<String>::new(), "a reading command created files");
}

#[test]
fn an_empty_journal_file_is_refused_by_every_command_and_left_as_it_is() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::NOOP]);
    let db = sandbox.db_path();
    std::fs::write(&db, b"").unwrap();
    let wf = sandbox
        .write("one.toml", "name = \"one\"\nversion = \"1.0.0\"\n[[steps]]\nid = \"a\"\nplugin = \"noop\"\n");
    let inventory = sandbox.write("inventory.toml", "");
    let mut commands = readers("run_01kbs0pw9kx8vqa1jjzfb1f2fe");
    for writer in [
        vec!["resume", "run_01kbs0pw9kx8vqa1jjzfb1f2fe"],
        vec!["run", wf.as_str(), "--inventory", inventory.as_str()],
    ] {
        commands.push(writer.into_iter().map(String::from).collect());
    }
    let before = listing(sandbox.path());
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sandbox.run(&args);
        assert_exit(
            &out,
            &args,
            6,
            &format!("the database {} is an empty file, not a Drover journal", db.display()),
        );
    }
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "the empty file was written to");
    assert_eq!(listing(sandbox.path()), before, "a refused command made side files");
}

/// A finished run of one `noop` step in `sandbox`; returns its id.
fn finished_run(sandbox: &Sandbox) -> String {
    sandbox.install(&[wasm::NOOP]);
    let wf = sandbox
        .write("one.toml", "name = \"one\"\nversion = \"1.0.0\"\n[[steps]]\nid = \"a\"\nplugin = \"noop\"\n");
    let inventory = sandbox.write("inventory.toml", "");
    let out = sandbox.run(&["run", &wf, "--inventory", &inventory]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    sandbox.last_run()
}

#[test]
fn an_archived_journal_read_only_in_a_read_only_folder_is_read_and_reported_untouched() {
    let archive = tempfile::tempdir().unwrap();
    let db = archive.path().join("drover.db");
    let sandbox = Sandbox::with_db(db.clone());
    let run = finished_run(&sandbox);
    let files = listing(archive.path());
    assert!(!files.iter().any(|f| f.ends_with("-wal") || f.ends_with("-shm")), "{files:?}");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(archive.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = std::fs::read(&db).unwrap();
    // As root (whom permissions do not stop) and as nobody (whom they do).
    for user in [None, Some(65534)] {
        for args in readers(&run) {
            let mut cmd = sandbox.drover();
            cmd.args(&args).current_dir(archive.path());
            if let Some(id) = user {
                cmd.uid(id).gid(id);
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{args:?} as {user:?}: {}{}", stdout(&out), stderr(&out));
            assert!(stdout(&out).contains(&run) || args[0] == "events", "{args:?}: {}", stdout(&out));
            if args[0] == "report" {
                assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));
            }
        }
    }
    assert_eq!(std::fs::read(&db).unwrap(), before, "reading the archive wrote to it");
    assert_eq!(listing(archive.path()), files, "reading the archive made side files");
    std::fs::set_permissions(archive.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_reader_of_a_journal_of_an_older_schema_reads_it_without_migrating_it() {
    let sandbox = Sandbox::new();
    let db = sandbox.db_path();
    // A journal as the first schema made it: the first migration only.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let first = include_str!("../../engine/src/store/sqlite/migrations/0001_init.sql");
    conn.execute_batch(&format!("{first}\nPRAGMA user_version = 1;")).unwrap();
    drop(conn);
    let before = std::fs::read(&db).unwrap();
    let out = sandbox.run(&["runs"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("no runs in"), "{}", stdout(&out));
    assert_eq!(std::fs::read(&db).unwrap(), before, "a reader migrated the journal");
}

/// Writes `len` pseudo-random bytes (from `seed`) into `path` at `at`, as a stray process or a
/// failing disk would.
fn scribble(path: &Path, at: u64, len: usize, seed: u64) {
    let mut x = seed | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&bytes, at).unwrap();
}

#[test]
fn bytes_written_into_the_log_mid_run_fail_the_run_with_exit_6_and_every_later_command_refuses_the_journal() {
    let seed = 0x5eed_d0a7;
    println!("seed {seed:#x}");
    let sandbox = Sandbox::new();
    let db = sandbox.db_path();
    let (HeldRun { child, release, .. }, run) = start(&sandbox);
    // Every frame logged so far gets bytes over the middle of its page: among them the latest
    // version of pages the rest of the run never writes again (the pinned definition's, say).
    // Overwriting only older versions of pages, whose newer version a check had found intact
    // before, is survivable: see store::tests.
    let wal = side(&db, "-wal");
    let frames = (std::fs::metadata(&wal).unwrap().len() - 32) / (24 + 4096);
    assert!(frames > 8, "the log holds a few frames: {frames}");
    for frame in 0..frames {
        scribble(&wal, 32 + frame * (24 + 4096) + 24 + 1024, 2048, seed + frame);
    }
    std::fs::write(&release, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let damaged = format!("the journal {} was damaged by something outside drover", db.display());
    assert_exit(&out, &["run"], 6, &damaged);
    assert!(!stdout(&out).contains("succeeded"), "{}", stdout(&out));
    assert!(side(&db, "-damaged").exists(), "no -damaged note");
    assert!(wal.exists(), "the damaged log was not kept");
    for args in readers(&run).into_iter().chain([vec!["resume".to_string(), run.clone()]]) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_exit(&sandbox.run(&args), &args, 6, &damaged);
    }
}

#[test]
fn every_command_exits_6_when_the_journal_is_locked_or_unusable() {
    let sandbox = Sandbox::new();
    let run = finished_run(&sandbox);
    let db = sandbox.db_path();
    // Another process holds the write lock past SQLite's busy timeout.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (wf, inventory) = (sandbox.path().join("one.toml"), sandbox.path().join("inventory.toml"));
    let start = ["run", wf.to_str().unwrap(), "--inventory", inventory.to_str().unwrap()];
    for args in [&start[..], &["resume", run.as_str()]] {
        assert_exit(&sandbox.run(args), args, 6, &format!("the database {} is locked", db.display()));
    }
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    // A folder where the journal should be.
    let folder = sandbox.path().join("folder.db");
    std::fs::create_dir(&folder).unwrap();
    for args in readers(&run).into_iter().chain([vec!["resume".to_string(), run.clone()]]) {
        let mut full = vec!["--db", folder.to_str().unwrap()];
        full.extend(args.iter().map(String::as_str));
        let out = sandbox.run(&full);
        assert_eq!(out.status.code(), Some(6), "{full:?}: {}", stderr(&out));
    }
    // A journal below a file, which cannot be a folder.
    let below = sandbox.path().join("inventory.toml").join("drover.db");
    let out = sandbox.run(&["--db", below.to_str().unwrap(), "resume", "--all"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot create {}", below.parent().unwrap().display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_reader_is_kept_out_by_a_journal_held_exclusively_never_by_a_commit_in_progress() {
    let sandbox = Sandbox::new();
    let run = finished_run(&sandbox);
    let db = sandbox.db_path();
    // A writer stopped inside a commit: it holds the write lock, and its page cache spilled
    // uncommitted frames into the log, past the frames SQLite's index counts.
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.execute_batch("PRAGMA cache_size = 1; BEGIN IMMEDIATE; CREATE TABLE scratch (x TEXT)").unwrap();
    for i in 0..64 {
        writer.execute("INSERT INTO scratch VALUES (?1)", [format!("{i} {}", "x".repeat(4000))]).unwrap();
    }
    assert!(std::fs::metadata(side(&db, "-wal")).unwrap().len() > 0, "nothing spilled into the log");
    for args in readers(&run) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sandbox.run(&args);
        assert!(out.status.success(), "{args:?} during a commit: {}", stderr(&out));
    }
    assert!(!side(&db, "-damaged").exists(), "a reader took uncommitted frames for damage");
    writer.execute_batch("ROLLBACK").unwrap();
    // A drover stopped while it closes the journal holds the file exclusively (SQLite's last
    // connection copies the log into the database and removes it): readers wait, then say so.
    writer.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN IMMEDIATE; COMMIT").unwrap();
    let expected = format!(
        "the database {} is locked by another process: a drover stopped inside a commit or while it opened or closed the journal",
        db.display()
    );
    assert_exit(&sandbox.run(&["runs"]), &["runs"], 6, &expected);
    drop(writer);
    let out = sandbox.run(&["runs", "--json"]);
    assert!(stdout(&out).contains(&run), "{}", stderr(&out));
}

#[test]
fn a_checkpoint_the_journal_cannot_give_back_fails_the_attempt_that_reads_it_never_reads_as_absent() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let wf = sandbox.write(
        "state.toml",
        r#"
name = "state"
version = "1.0.0"
[[steps]]
id = "gate"
approval = { prompt = "Go?" }
[[steps]]
id = "count"
plugin = "fixture-plugin-for-tests"
needs = ["gate"]
with = { behave = "state" }
"#,
    );
    let inventory = sandbox.write("inventory.toml", "");
    let out = sandbox.run(&["run", &wf, "--inventory", &inventory]);
    assert_eq!(out.status.code(), Some(4), "waits at the gate: {}{}", stdout(&out), stderr(&out));
    let run = sandbox.last_run();
    // The step's counter as the journal cannot read it back: a blob where text belongs, as a
    // damaged page or a foreign write leaves it. The step reads "counter" first thing.
    let db = sandbox.db_path();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO checkpoints (run_id, step_key, key, value) VALUES (?1, 'count', 'counter', X'FFFE')",
        [&run],
    )
    .unwrap();
    drop(conn);
    let out = sandbox.run(&["approve", &run, "gate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sandbox.run(&["resume", &run]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let expected = format!(
        "count: plugin fixture-plugin-for-tests was stopped: its checkpoint counter could not be read: \
         database error on {}",
        db.display()
    );
    assert!(stdout(&out).contains(&expected), "{expected:?} not in:\n{}", stdout(&out));
    assert_eq!(attempts(&db), [("count".to_string(), 1, "failed".to_string())]);
    // The plugin went no further: it did not start a counter from nothing over the value.
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let kept: (String, Vec<u8>) = conn
        .query_row("SELECT typeof(value), value FROM checkpoints WHERE step_key = 'count'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(kept, ("blob".to_string(), vec![0xFF, 0xFE]));
}
