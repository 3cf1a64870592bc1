//! The SQL behind [`super::Store`]: turning [`Change`]s into statements and rows into records.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use super::records::*;

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn json_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn opt_json_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| serde_json::from_str(&t)).transpose().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn enum_col<T>(row: &Row<'_>, index: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown state {text:?}").into(),
        )
    })
}

pub(super) fn apply(conn: &Connection, changes: &[Change]) -> rusqlite::Result<()> {
    changes.iter().try_for_each(|change| apply_one(conn, change))
}

fn apply_one(conn: &Connection, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::InsertRun(r) => {
            conn.prepare_cached(
                "INSERT INTO runs (id, workflow, workflow_version, source_path, definition, params, inventory,
                 inventory_digest, plugins, state, started_by, created_at, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                r.id,
                r.workflow,
                r.workflow_version,
                r.source_path,
                json_text(&r.definition),
                json_text(&r.params),
                json_text(&r.inventory),
                r.inventory_digest,
                json_text(&r.plugins),
                r.state.as_str(),
                r.started_by,
                r.created_at,
                r.finished_at
            ])?;
        }
        Change::SetRunState { run_id, state, finished_at } => {
            conn.prepare_cached("UPDATE runs SET state = ?2, finished_at = ?3 WHERE id = ?1")?
                .execute(params![run_id, state.as_str(), finished_at])?;
        }
        Change::PutStep(s) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO steps (run_id, key, step_index, item, target, state, attempts, reason, retry_at,
                 output, changed, summary, evidence, started_at, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                s.run_id,
                s.key,
                s.step_index as i64,
                s.item.as_ref().map(json_text),
                s.target,
                s.state.as_str(),
                s.attempts,
                s.reason,
                s.retry_at,
                s.output.as_ref().map(json_text),
                s.changed,
                s.summary,
                s.evidence.as_ref().map(json_text),
                s.started_at,
                s.finished_at
            ])?;
        }
        Change::PutAttempt(a) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO attempts (run_id, step_key, number, mode, state, started_at, finished_at, error, error_class)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                a.run_id,
                a.step_key,
                a.number,
                a.mode,
                a.state.as_str(),
                a.started_at,
                a.finished_at,
                a.error,
                a.error_class
            ])?;
        }
        Change::Event { run_id, at, step_key, kind, actor, data } => {
            conn.prepare_cached("INSERT INTO events (run_id, at, step_key, kind, actor, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                .execute(params![run_id, at, step_key, kind, actor, data])?;
        }
        Change::SetCheckpoint { run_id, step_key, key, value } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO checkpoints (run_id, step_key, key, value) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![run_id, step_key, key, value])?;
        }
        Change::Request { run_id, kind, step_key, data, actor, at } => {
            conn.prepare_cached(
                "INSERT INTO requests (run_id, kind, step_key, data, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![run_id, kind, step_key, json_text(data), actor, at])?;
        }
        Change::RequestApplied { seq, at } => {
            conn.prepare_cached("UPDATE requests SET applied_at = ?2 WHERE seq = ?1")?
                .execute(params![seq, at])?;
        }
    }
    Ok(())
}

const RUN_COLUMNS: &str = "id, workflow, workflow_version, source_path, definition, params, inventory, inventory_digest, plugins, state, started_by, created_at, finished_at";

fn run_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: row.get(0)?,
        workflow: row.get(1)?,
        workflow_version: row.get(2)?,
        source_path: row.get(3)?,
        definition: json_col(row, 4)?,
        params: json_col(row, 5)?,
        inventory: json_col(row, 6)?,
        inventory_digest: row.get(7)?,
        plugins: json_col(row, 8)?,
        state: enum_col(row, 9, RunState::parse)?,
        started_by: row.get(10)?,
        created_at: row.get(11)?,
        finished_at: row.get(12)?,
    })
}

pub(super) fn run(conn: &Connection, run_id: &str) -> rusqlite::Result<Option<RunRecord>> {
    conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row([run_id], run_row)
        .optional()
}

pub(super) fn runs(conn: &Connection) -> rusqlite::Result<Vec<RunRecord>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, id DESC"))?;
    stmt.query_map([], run_row)?.collect()
}

pub(super) fn steps(conn: &Connection, run_id: &str) -> rusqlite::Result<Vec<StepRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, key, step_index, item, target, state, attempts, reason, retry_at, output, changed, summary,
         evidence, started_at, finished_at FROM steps WHERE run_id = ?1 ORDER BY step_index, key",
    )?;
    stmt.query_map([run_id], |row| {
        Ok(StepRecord {
            run_id: row.get(0)?,
            key: row.get(1)?,
            step_index: row.get::<_, i64>(2)? as usize,
            item: opt_json_col(row, 3)?,
            target: row.get(4)?,
            state: enum_col(row, 5, StepState::parse)?,
            attempts: row.get(6)?,
            reason: row.get(7)?,
            retry_at: row.get(8)?,
            output: opt_json_col(row, 9)?,
            changed: row.get(10)?,
            summary: row.get(11)?,
            evidence: opt_json_col(row, 12)?,
            started_at: row.get(13)?,
            finished_at: row.get(14)?,
        })
    })?
    .collect()
}

pub(super) fn attempts(conn: &Connection, run_id: &str) -> rusqlite::Result<Vec<AttemptRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, step_key, number, mode, state, started_at, finished_at, error, error_class
         FROM attempts WHERE run_id = ?1 ORDER BY step_key, number",
    )?;
    stmt.query_map([run_id], |row| {
        Ok(AttemptRecord {
            run_id: row.get(0)?,
            step_key: row.get(1)?,
            number: row.get(2)?,
            mode: row.get(3)?,
            state: enum_col(row, 4, AttemptState::parse)?,
            started_at: row.get(5)?,
            finished_at: row.get(6)?,
            error: row.get(7)?,
            error_class: row.get(8)?,
        })
    })?
    .collect()
}

pub(super) fn events(conn: &Connection, run_id: &str, after: i64) -> rusqlite::Result<Vec<EventRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, run_id, at, step_key, kind, actor, data FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    stmt.query_map(params![run_id, after], |row| {
        Ok(EventRecord {
            seq: row.get(0)?,
            run_id: row.get(1)?,
            at: row.get(2)?,
            step_key: row.get(3)?,
            kind: row.get(4)?,
            actor: row.get(5)?,
            data: json_col(row, 6)?,
        })
    })?
    .collect()
}

pub(super) fn pending_requests(conn: &Connection, run_id: &str) -> rusqlite::Result<Vec<RequestRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, run_id, kind, step_key, data, actor, at FROM requests
         WHERE run_id = ?1 AND applied_at IS NULL ORDER BY seq",
    )?;
    stmt.query_map([run_id], |row| {
        Ok(RequestRecord {
            seq: row.get(0)?,
            run_id: row.get(1)?,
            kind: row.get(2)?,
            step_key: row.get(3)?,
            data: json_col(row, 4)?,
            actor: row.get(5)?,
            at: row.get(6)?,
        })
    })?
    .collect()
}

pub(super) fn checkpoint(
    conn: &Connection,
    run_id: &str,
    step_key: &str,
    key: &str,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM checkpoints WHERE run_id = ?1 AND step_key = ?2 AND key = ?3")?
        .query_row(params![run_id, step_key, key], |r| r.get(0))
        .optional()
}

pub(super) fn lease(conn: &Connection, run_id: &str) -> rusqlite::Result<Option<LeaseRecord>> {
    conn.prepare_cached("SELECT holder, host, pid, user, expires_at FROM leases WHERE run_id = ?1")?
        .query_row([run_id], |row| {
            Ok(LeaseRecord {
                holder: row.get(0)?,
                host: row.get(1)?,
                pid: row.get(2)?,
                user: row.get(3)?,
                expires_at: row.get(4)?,
            })
        })
        .optional()
}

pub(super) fn acquire_lease(
    conn: &Connection,
    run_id: &str,
    me: &LeaseRecord,
    now: i64,
) -> rusqlite::Result<Result<(), LeaseRecord>> {
    if let Some(current) = lease(conn, run_id)? {
        let dead_here = current.host == me.host && !process_alive(current.pid);
        if current.holder != me.holder && current.expires_at > now && !dead_here {
            return Ok(Err(current));
        }
    }
    conn.prepare_cached("INSERT OR REPLACE INTO leases (run_id, holder, host, pid, user, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .and_then(|mut s| s.execute(params![run_id, me.holder, me.host, me.pid, me.user, me.expires_at]))?;
    Ok(Ok(()))
}

pub(super) fn renew_lease(
    conn: &Connection,
    run_id: &str,
    holder: &str,
    expires_at: i64,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("UPDATE leases SET expires_at = ?3 WHERE run_id = ?1 AND holder = ?2")
        .and_then(|mut s| s.execute(params![run_id, holder, expires_at]))?;
    Ok(n == 1)
}

pub(super) fn release_lease(conn: &Connection, run_id: &str, holder: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM leases WHERE run_id = ?1 AND holder = ?2")
        .and_then(|mut s| s.execute(params![run_id, holder]))?;
    Ok(())
}

/// Whether a process with this id exists on this host.
#[allow(unsafe_code)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 only checks whether the process exists; it sends nothing.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
