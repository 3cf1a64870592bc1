//! The SQL behind [`super::SqliteStore`]: turning [`Change`]s into statements and rows into records.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use crate::journal::{Actor, Request, RunId};
use crate::plugin::{FailureClass, Mode};
use crate::store::records::*;

impl ToSql for RunId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for RunId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_str()?.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

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
            format!("unknown value {text:?}").into(),
        )
    })
}

fn opt_enum_col<T>(row: &Row<'_>, index: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| {
        parse(&text).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                format!("unknown value {text:?}").into(),
            )
        })
    })
    .transpose()
}

/// Why a list of changes was not applied.
#[derive(Debug)]
pub(super) enum ApplyError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// A change would rewrite history: a succeeded step instance, an attempt that exists or
    /// that is not running any more.
    Refused(String),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Sqlite(e)
    }
}

pub(super) fn apply(conn: &Connection, changes: &[Change]) -> Result<(), ApplyError> {
    changes.iter().try_for_each(|change| apply_one(conn, change))
}

fn apply_one(conn: &Connection, change: &Change) -> Result<(), ApplyError> {
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
                serde_json::to_string(&r.plugins).map_err(|e| ApplyError::Refused(e.to_string()))?,
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
            // An upsert, not INSERT OR REPLACE: a succeeded instance only moves on to compensation,
            // a compensated one is final, and a process that would turn either back (a driver that
            // lost its lease, say) fails its whole commit.
            let written = conn
                .prepare_cached(
                    "INSERT INTO steps (run_id, key, step_index, item, target, state, attempts, reason, retry_at,
                     output, changed, summary, evidence, started_at, finished_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                     ON CONFLICT (run_id, key) DO UPDATE SET step_index = excluded.step_index,
                     item = excluded.item, target = excluded.target, state = excluded.state,
                     attempts = excluded.attempts, reason = excluded.reason, retry_at = excluded.retry_at,
                     output = excluded.output, changed = excluded.changed, summary = excluded.summary,
                     evidence = excluded.evidence, started_at = excluded.started_at,
                     finished_at = excluded.finished_at
                     WHERE steps.state NOT IN ('succeeded', 'compensated')
                        OR (steps.state = 'succeeded' AND excluded.state = 'compensating')",
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
            if written == 0 {
                return Err(ApplyError::Refused(format!(
                    "step instance {} of run {} already succeeded (or was compensated) and cannot change",
                    s.key, s.run_id
                )));
            }
        }
        Change::PutAttempt(a) if a.state == AttemptState::Running => {
            // An intent: a new attempt number. Plain INSERT, so an attempt is never overwritten.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO attempts (run_id, step_key, number, mode, state, started_at, finished_at, error, error_class)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    a.run_id,
                    a.step_key,
                    a.number,
                    a.mode.as_str(),
                    a.state.as_str(),
                    a.started_at,
                    a.finished_at,
                    a.error,
                    a.error_class.map(FailureClass::as_str)
                ])?;
            if inserted == 0 {
                return Err(ApplyError::Refused(format!(
                    "attempt {} of {} in run {} already exists",
                    a.number, a.step_key, a.run_id
                )));
            }
        }
        Change::PutAttempt(a) => {
            // An outcome ends the attempt that is running, and only that.
            let ended = conn
                .prepare_cached(
                    "UPDATE attempts SET state = ?4, finished_at = ?5, error = ?6, error_class = ?7
                     WHERE run_id = ?1 AND step_key = ?2 AND number = ?3 AND state = 'running'",
                )?
                .execute(params![
                    a.run_id,
                    a.step_key,
                    a.number,
                    a.state.as_str(),
                    a.finished_at,
                    a.error,
                    a.error_class.map(FailureClass::as_str)
                ])?;
            if ended == 0 {
                return Err(ApplyError::Refused(format!(
                    "attempt {} of {} in run {} is not running: it cannot end as {}",
                    a.number,
                    a.step_key,
                    a.run_id,
                    a.state.as_str()
                )));
            }
        }
        Change::Event(e) => {
            conn.prepare_cached("INSERT INTO events (run_id, at, step_key, kind, actor, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                .execute(params![e.run_id, e.at, e.step_key, e.kind(), e.actor.as_str(), e.data()])?;
        }
        Change::SetCheckpoint { run_id, step_key, key, value } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO checkpoints (run_id, step_key, key, value) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![run_id, step_key, key, value])?;
        }
        Change::Request { run_id, request, actor, at } => {
            conn.prepare_cached(
                "INSERT INTO requests (run_id, kind, step_key, data, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![run_id, request.kind(), request.step_key(), json_text(&request.data()), actor, at])?;
        }
        Change::RequestApplied { seq, at } => {
            conn.prepare_cached("UPDATE requests SET applied_at = ?2 WHERE seq = ?1")?
                .execute(params![seq, at])?;
        }
        Change::StoredEvent(e) => {
            conn.prepare_cached("INSERT INTO events (run_id, at, step_key, kind, actor, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                .execute(params![e.run_id, e.at, e.step_key, e.kind, e.actor, e.data])?;
        }
        Change::StoredRequest(r) => {
            conn.prepare_cached(
                "INSERT INTO requests (run_id, kind, step_key, data, actor, at, applied_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.run_id,
                r.kind,
                r.step_key,
                r.data,
                r.actor,
                r.at,
                r.applied_at
            ])?;
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
        plugins: {
            let text: String = row.get(8)?;
            serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, Box::new(e))
            })?
        },
        state: enum_col(row, 9, RunState::parse)?,
        started_by: row.get(10)?,
        created_at: row.get(11)?,
        finished_at: row.get(12)?,
    })
}

pub(super) fn run(conn: &Connection, run_id: RunId) -> rusqlite::Result<Option<RunRecord>> {
    conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row(params![run_id], run_row)
        .optional()
}

pub(super) fn runs(conn: &Connection) -> rusqlite::Result<Vec<RunRecord>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, id DESC"))?;
    stmt.query_map([], run_row)?.collect()
}

pub(super) fn steps(conn: &Connection, run_id: RunId) -> rusqlite::Result<Vec<StepRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, key, step_index, item, target, state, attempts, reason, retry_at, output, changed, summary,
         evidence, started_at, finished_at FROM steps WHERE run_id = ?1 ORDER BY step_index, key",
    )?;
    stmt.query_map(params![run_id], |row| {
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

pub(super) fn attempts(conn: &Connection, run_id: RunId) -> rusqlite::Result<Vec<AttemptRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, step_key, number, mode, state, started_at, finished_at, error, error_class
         FROM attempts WHERE run_id = ?1 ORDER BY step_key, number",
    )?;
    stmt.query_map(params![run_id], |row| {
        Ok(AttemptRecord {
            run_id: row.get(0)?,
            step_key: row.get(1)?,
            number: row.get(2)?,
            mode: enum_col(row, 3, Mode::parse)?,
            state: enum_col(row, 4, AttemptState::parse)?,
            started_at: row.get(5)?,
            finished_at: row.get(6)?,
            error: row.get(7)?,
            error_class: opt_enum_col(row, 8, FailureClass::parse)?,
        })
    })?
    .collect()
}

pub(super) fn events(conn: &Connection, run_id: RunId, after: i64) -> rusqlite::Result<Vec<EventRecord>> {
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
            actor: Actor::from(row.get::<_, String>(5)?),
            data: json_col(row, 6)?,
        })
    })?
    .collect()
}

pub(super) fn pending_requests(conn: &Connection, run_id: RunId) -> rusqlite::Result<Vec<RequestRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, run_id, kind, step_key, data, actor, at FROM requests
         WHERE run_id = ?1 AND applied_at IS NULL ORDER BY seq",
    )?;
    stmt.query_map(params![run_id], |row| {
        let kind: String = row.get(2)?;
        let step_key: Option<String> = row.get(3)?;
        Ok(RequestRecord {
            seq: row.get(0)?,
            run_id: row.get(1)?,
            request: Request::from_parts(&kind, step_key.as_deref(), &json_col(row, 4)?),
            actor: row.get(5)?,
            at: row.get(6)?,
        })
    })?
    .collect()
}

pub(super) fn checkpoint(
    conn: &Connection,
    run_id: RunId,
    step_key: &str,
    key: &str,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM checkpoints WHERE run_id = ?1 AND step_key = ?2 AND key = ?3")?
        .query_row(params![run_id, step_key, key], |r| r.get(0))
        .optional()
}

pub(super) fn checkpoint_usage(
    conn: &Connection,
    run_id: RunId,
    step_key: &str,
    except: &str,
) -> rusqlite::Result<(usize, usize)> {
    conn.prepare_cached(
        "SELECT count(*), coalesce(sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0)
         FROM checkpoints WHERE run_id = ?1 AND step_key = ?2 AND key <> ?3",
    )?
    .query_row(params![run_id, step_key, except], |r| {
        Ok((r.get::<_, i64>(0)?.max(0) as usize, r.get::<_, i64>(1)?.max(0) as usize))
    })
}

pub(super) fn lease(conn: &Connection, run_id: RunId) -> rusqlite::Result<Option<LeaseRecord>> {
    conn.prepare_cached("SELECT holder, host, pid, user, expires_at, boot_id FROM leases WHERE run_id = ?1")?
        .query_row(params![run_id], |row| {
            Ok(LeaseRecord {
                holder: row.get(0)?,
                host: row.get(1)?,
                pid: row.get(2)?,
                user: row.get(3)?,
                expires_at: row.get(4)?,
                boot_id: row.get(5)?,
            })
        })
        .optional()
}

/// Takes the lease for `me` unless another holder's is valid. A lease is valid until it expires,
/// except that one whose holder held the OS lock on this boot (`boot_id` set and equal to ours)
/// is dead as soon as we hold that lock (`os_locked`): an OS lock is released when its holder
/// dies, whatever PID namespace it ran in and whatever process took its id since.
pub(super) fn acquire_lease(
    conn: &Connection,
    run_id: RunId,
    me: &LeaseRecord,
    now: i64,
    os_locked: bool,
) -> rusqlite::Result<Result<(), LeaseRecord>> {
    if let Some(current) = lease(conn, run_id)? {
        let dead_here = os_locked && !current.boot_id.is_empty() && current.boot_id == me.boot_id;
        if current.holder != me.holder && current.expires_at > now && !dead_here {
            return Ok(Err(current));
        }
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO leases (run_id, holder, host, pid, user, expires_at, boot_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![run_id, me.holder, me.host, me.pid, me.user, me.expires_at, me.boot_id])
    })?;
    Ok(Ok(()))
}

/// Inside a transaction: proves `fence.holder` still holds the lease of `fence.run_id`, and
/// extends it to `expires_at`. False when another process took it over (the caller rolls back).
pub(super) fn fence(conn: &Connection, fence: &Fence, expires_at: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE leases SET expires_at = max(expires_at, ?3) WHERE run_id = ?1 AND holder = ?2",
        )
        .and_then(|mut s| s.execute(params![fence.run_id, fence.holder, expires_at]))?;
    Ok(n == 1)
}

pub(super) fn renew_lease(
    conn: &Connection,
    run_id: RunId,
    holder: &str,
    expires_at: i64,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("UPDATE leases SET expires_at = ?3 WHERE run_id = ?1 AND holder = ?2")
        .and_then(|mut s| s.execute(params![run_id, holder, expires_at]))?;
    Ok(n == 1)
}

pub(super) fn release_lease(conn: &Connection, run_id: RunId, holder: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM leases WHERE run_id = ?1 AND holder = ?2")
        .and_then(|mut s| s.execute(params![run_id, holder]))?;
    Ok(())
}

pub(super) fn put_plugin_component(
    conn: &Connection,
    sha256: &str,
    name: &str,
    version: &str,
    bytes: &[u8],
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO plugin_components (sha256, name, version, bytes) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![sha256, name, version, bytes])?;
    Ok(n == 1)
}

pub(super) fn has_plugin_component(conn: &Connection, sha256: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM plugin_components WHERE sha256 = ?1)")?
        .query_row(params![sha256], |r| r.get(0))
}

pub(super) fn plugin_component(conn: &Connection, sha256: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT bytes FROM plugin_components WHERE sha256 = ?1")?
        .query_row(params![sha256], |r| r.get(0))
        .optional()
}

/// A run's events exactly as stored, in order.
pub(super) fn stored_events(conn: &Connection, run_id: RunId) -> rusqlite::Result<Vec<StoredEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, run_id, at, step_key, kind, actor, data FROM events WHERE run_id = ?1 ORDER BY seq",
    )?;
    stmt.query_map(params![run_id], |row| {
        Ok(StoredEvent {
            seq: row.get(0)?,
            run_id: row.get(1)?,
            at: row.get(2)?,
            step_key: row.get(3)?,
            kind: row.get(4)?,
            actor: row.get(5)?,
            data: row.get(6)?,
        })
    })?
    .collect()
}

/// A run's operator commands exactly as stored, applied or not, in order.
pub(super) fn stored_requests(conn: &Connection, run_id: RunId) -> rusqlite::Result<Vec<StoredRequest>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, run_id, kind, step_key, data, actor, at, applied_at FROM requests WHERE run_id = ?1 ORDER BY seq",
    )?;
    stmt.query_map(params![run_id], |row| {
        Ok(StoredRequest {
            seq: row.get(0)?,
            run_id: row.get(1)?,
            kind: row.get(2)?,
            step_key: row.get(3)?,
            data: row.get(4)?,
            actor: row.get(5)?,
            at: row.get(6)?,
            applied_at: row.get(7)?,
        })
    })?
    .collect()
}

/// A run's checkpoints, by step instance and key.
pub(super) fn checkpoints(conn: &Connection, run_id: RunId) -> rusqlite::Result<Vec<CheckpointRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT step_key, key, value FROM checkpoints WHERE run_id = ?1 ORDER BY step_key, key",
    )?;
    stmt.query_map(params![run_id], |row| {
        Ok(CheckpointRecord { step_key: row.get(0)?, key: row.get(1)?, value: row.get(2)? })
    })?
    .collect()
}

/// The plugin components stored, by digest, without their bytes.
pub(super) fn plugin_components(conn: &Connection) -> rusqlite::Result<Vec<PluginComponentRecord>> {
    let mut stmt =
        conn.prepare_cached("SELECT sha256, name, version FROM plugin_components ORDER BY sha256")?;
    stmt.query_map([], |row| {
        Ok(PluginComponentRecord { sha256: row.get(0)?, name: row.get(1)?, version: row.get(2)? })
    })?
    .collect()
}

/// Everything of a run and its lease, in one read transaction (one snapshot of the journal).
pub(super) fn run_copy(conn: &Connection, run_id: RunId) -> rusqlite::Result<Option<RunCopy>> {
    let tx = conn.unchecked_transaction()?;
    let Some(run) = run(&tx, run_id)? else { return Ok(None) };
    let copy = RunCopy {
        run,
        steps: steps(&tx, run_id)?,
        attempts: attempts(&tx, run_id)?,
        events: stored_events(&tx, run_id)?,
        checkpoints: checkpoints(&tx, run_id)?,
        requests: stored_requests(&tx, run_id)?,
        lease: lease(&tx, run_id)?,
    };
    tx.commit()?;
    Ok(Some(copy))
}
