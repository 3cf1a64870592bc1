//! Faults of the run journal's storage while a run is in progress: the disk filling up, the file
//! made read-only, the file replaced by garbage. Each gives exit code 6 and a message naming the
//! file and the cause, never a silently corrupt journal, and once the fault is cleared a resume
//! finishes the run.
//!
//! The disk-full test mounts a small tmpfs of its own (root is needed, as `cargo xtask test` and
//! CI run); when the mount is refused it fails and says so, it never skips.
//!
//! A file made read-only, or replaced, while a process has it open stays writable to that process
//! (Unix checks permissions when a file is opened), so those two faults are met by the next
//! process: the one that resumes after the first was killed mid-run.

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// After the fault is cleared: `drover resume` finishes the run, the step succeeded, and it ran
/// once per attempt the journal records.
fn resume_finishes(sandbox: &Sandbox, run: &str, effects: &Path) {
    let out = sandbox.run(&["resume", run]);
    assert!(out.status.success(), "resume after the fault: {}{}", stdout(&out), stderr(&out));
    assert_eq!(sandbox.status(run)["state"], "succeeded");
    assert_eq!(quick_check(&sandbox.db_path()), "ok");
    let attempts = attempts(&sandbox.db_path());
    let lines = std::fs::read_to_string(effects).unwrap_or_default().lines().count();
    assert_eq!(lines, attempts.len(), "one effect per journaled attempt: {attempts:?}");
    let numbers: Vec<i64> = attempts.iter().map(|a| a.1).collect();
    assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>(), "attempts numbered without gaps");
    assert_eq!(attempts.last().unwrap().2, "succeeded", "{attempts:?}");
}

fn start(sandbox: &Sandbox) -> (HeldRun, String) {
    sandbox.install(&[wasm::FIXTURE]);
    let mut held = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut held.child);
    (held, run)
}

/// SIGKILLs the process inside its step, then releases the step: the killed process's `sh`
/// child lives on and appends its line, which this waits for, so that every later line is the
/// resume's.
fn kill_inside_the_step(held: &mut HeldRun) {
    held.child.kill().unwrap();
    held.child.wait().unwrap();
    std::fs::write(&held.release, "").unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&held.effects).unwrap_or_default().lines().count() < 1 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the orphaned step never finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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
