//! The SQL behind [`super::PgStore`]: the same statements as SQLite's (`../sqlite/sql.rs`) in
//! PostgreSQL's dialect, and rows turned into the same records.

use postgres::Row;
use postgres::types::ToSql;
use serde_json::Value;

use super::conn::{Conn, Statements};
use crate::journal::{Actor, Request, RunId};
use crate::plugin::{FailureClass, Mode};
use crate::store::StoreError;
use crate::store::records::*;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Somewhere statements run: the reader's connection, or a transaction of the writer.
pub(super) trait Db {
    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, postgres::Error>;
    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, postgres::Error>;
}

impl Db for Conn {
    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }
    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params)
    }
}

/// A transaction of the writer, with the writer's prepared statements.
pub(super) struct Tx<'a, 'b> {
    pub tx: &'a mut postgres::Transaction<'b>,
    pub statements: &'a mut Statements,
}

impl Db for Tx<'_, '_> {
    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statements.get(self.tx, sql)?;
        self.tx.query(&statement, params)
    }
    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.statements.get(self.tx, sql)?;
        self.tx.execute(&statement, params)
    }
}

/// Why a list of changes was not applied.
pub(super) enum ApplyError {
    Pg(postgres::Error),
    /// A change would rewrite history (see `../sqlite/sql.rs`).
    Refused(String),
}

impl From<postgres::Error> for ApplyError {
    fn from(e: postgres::Error) -> Self {
        ApplyError::Pg(e)
    }
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

/// A column that cannot be read back as its record's type: the journal holds what this build
/// does not understand.
#[derive(Debug)]
pub(super) struct Unreadable(pub String);

fn json_col(row: &Row, index: usize) -> Result<Value, Unreadable> {
    let text: String = row.get(index);
    serde_json::from_str(&text).map_err(|e| Unreadable(format!("column {index}: {e}")))
}

fn opt_json_col(row: &Row, index: usize) -> Result<Option<Value>, Unreadable> {
    let text: Option<String> = row.get(index);
    text.map(|t| serde_json::from_str(&t)).transpose().map_err(|e| Unreadable(format!("column {index}: {e}")))
}

fn enum_col<T>(row: &Row, index: usize, parse: fn(&str) -> Option<T>) -> Result<T, Unreadable> {
    let text: String = row.get(index);
    parse(&text).ok_or_else(|| Unreadable(format!("column {index}: unknown value {text:?}")))
}

fn run_id_col(row: &Row, index: usize) -> Result<RunId, Unreadable> {
    let text: String = row.get(index);
    text.parse().map_err(|e| Unreadable(format!("column {index}: {e}")))
}

fn u32_col(row: &Row, index: usize) -> u32 {
    u32::try_from(row.get::<_, i64>(index)).unwrap_or(u32::MAX)
}

pub(super) fn apply(db: &mut impl Db, changes: &[Change]) -> Result<(), ApplyError> {
    changes.iter().try_for_each(|change| apply_one(db, change))
}

fn apply_one(db: &mut impl Db, change: &Change) -> Result<(), ApplyError> {
    match change {
        Change::InsertRun(r) => {
            let plugins =
                serde_json::to_string(&r.plugins).map_err(|e| ApplyError::Refused(e.to_string()))?;
            db.execute(
                "INSERT INTO runs (id, workflow, workflow_version, source_path, definition, params, inventory,
                 inventory_digest, plugins, state, started_by, created_at, finished_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                &[
                    &r.id.to_string(),
                    &r.workflow,
                    &r.workflow_version,
                    &r.source_path,
                    &json_text(&r.definition),
                    &json_text(&r.params),
                    &json_text(&r.inventory),
                    &r.inventory_digest,
                    &plugins,
                    &r.state.as_str(),
                    &r.started_by,
                    &r.created_at,
                    &r.finished_at,
                ],
            )?;
        }
        Change::SetRunState { run_id, state, finished_at } => {
            db.execute(
                "UPDATE runs SET state = $2, finished_at = $3 WHERE id = $1",
                &[&run_id.to_string(), &state.as_str(), finished_at],
            )?;
        }
        Change::PutStep(s) => {
            // As on SQLite: a succeeded instance only moves on to compensation, a compensated
            // one is final, and a commit that would turn either back fails whole.
            let written = db.execute(
                "INSERT INTO steps (run_id, key, step_index, item, target, state, attempts, reason, retry_at,
                 output, changed, summary, evidence, started_at, finished_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (run_id, key) DO UPDATE SET step_index = excluded.step_index,
                 item = excluded.item, target = excluded.target, state = excluded.state,
                 attempts = excluded.attempts, reason = excluded.reason, retry_at = excluded.retry_at,
                 output = excluded.output, changed = excluded.changed, summary = excluded.summary,
                 evidence = excluded.evidence, started_at = excluded.started_at,
                 finished_at = excluded.finished_at
                 WHERE steps.state NOT IN ('succeeded', 'compensated')
                    OR (steps.state = 'succeeded' AND excluded.state = 'compensating')",
                &[
                    &s.run_id.to_string(),
                    &s.key,
                    &(s.step_index as i64),
                    &s.item.as_ref().map(json_text),
                    &s.target,
                    &s.state.as_str(),
                    &i64::from(s.attempts),
                    &s.reason,
                    &s.retry_at,
                    &s.output.as_ref().map(json_text),
                    &s.changed,
                    &s.summary,
                    &s.evidence.as_ref().map(json_text),
                    &s.started_at,
                    &s.finished_at,
                ],
            )?;
            if written == 0 {
                return Err(ApplyError::Refused(format!(
                    "step instance {} of run {} already succeeded (or was compensated) and cannot change",
                    s.key, s.run_id
                )));
            }
        }
        Change::PutAttempt(a) if a.state == AttemptState::Running => {
            let inserted = db.execute(
                "INSERT INTO attempts (run_id, step_key, number, mode, state, started_at, finished_at, error, error_class)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                &[
                    &a.run_id.to_string(),
                    &a.step_key,
                    &i64::from(a.number),
                    &a.mode.as_str(),
                    &a.state.as_str(),
                    &a.started_at,
                    &a.finished_at,
                    &a.error,
                    &a.error_class.map(FailureClass::as_str),
                ],
            )?;
            if inserted == 0 {
                return Err(ApplyError::Refused(format!(
                    "attempt {} of {} in run {} already exists",
                    a.number, a.step_key, a.run_id
                )));
            }
        }
        Change::PutAttempt(a) => {
            let ended = db.execute(
                "UPDATE attempts SET state = $4, finished_at = $5, error = $6, error_class = $7
                 WHERE run_id = $1 AND step_key = $2 AND number = $3 AND state = 'running'",
                &[
                    &a.run_id.to_string(),
                    &a.step_key,
                    &i64::from(a.number),
                    &a.state.as_str(),
                    &a.finished_at,
                    &a.error,
                    &a.error_class.map(FailureClass::as_str),
                ],
            )?;
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
            db.execute(
                "INSERT INTO events (run_id, at, step_key, kind, actor, data) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&e.run_id.to_string(), &e.at, &e.step_key, &e.kind(), &e.actor.as_str(), &e.data()],
            )?;
        }
        Change::SetCheckpoint { run_id, step_key, key, value } => {
            db.execute(
                "INSERT INTO checkpoints (run_id, step_key, key, value) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (run_id, step_key, key) DO UPDATE SET value = excluded.value",
                &[&run_id.to_string(), step_key, key, value],
            )?;
        }
        Change::Request { run_id, request, actor, at } => {
            db.execute(
                "INSERT INTO requests (run_id, kind, step_key, data, actor, at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &run_id.to_string(),
                    &request.kind(),
                    &request.step_key(),
                    &json_text(&request.data()),
                    actor,
                    at,
                ],
            )?;
        }
        Change::RequestApplied { seq, at } => {
            db.execute("UPDATE requests SET applied_at = $2 WHERE seq = $1", &[seq, at])?;
        }
        Change::StoredEvent(e) => {
            db.execute(
                "INSERT INTO events (run_id, at, step_key, kind, actor, data) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&e.run_id.to_string(), &e.at, &e.step_key, &e.kind, &e.actor, &e.data],
            )?;
        }
        Change::StoredRequest(r) => {
            db.execute(
                "INSERT INTO requests (run_id, kind, step_key, data, actor, at, applied_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&r.run_id.to_string(), &r.kind, &r.step_key, &r.data, &r.actor, &r.at, &r.applied_at],
            )?;
        }
    }
    Ok(())
}

/// A read's failure: the client's, or a row this build cannot read.
pub(super) enum ReadError {
    Pg(postgres::Error),
    Unreadable(Unreadable),
}

impl From<postgres::Error> for ReadError {
    fn from(e: postgres::Error) -> Self {
        ReadError::Pg(e)
    }
}

impl From<Unreadable> for ReadError {
    fn from(e: Unreadable) -> Self {
        ReadError::Unreadable(e)
    }
}

fn run_row(row: &Row) -> Result<RunRecord, Unreadable> {
    Ok(RunRecord {
        id: run_id_col(row, 0)?,
        workflow: row.get(1),
        workflow_version: row.get(2),
        source_path: row.get(3),
        definition: json_col(row, 4)?,
        params: json_col(row, 5)?,
        inventory: json_col(row, 6)?,
        inventory_digest: row.get(7),
        plugins: {
            let text: String = row.get(8);
            serde_json::from_str(&text).map_err(|e| Unreadable(format!("plugins: {e}")))?
        },
        state: enum_col(row, 9, RunState::parse)?,
        started_by: row.get(10),
        created_at: row.get(11),
        finished_at: row.get(12),
    })
}

pub(super) fn run(db: &mut impl Db, run_id: RunId) -> Result<Option<RunRecord>, ReadError> {
    let rows = db.query(
        "SELECT id, workflow, workflow_version, source_path, definition, params, inventory, inventory_digest,
         plugins, state, started_by, created_at, finished_at FROM runs WHERE id = $1",
        &[&run_id.to_string()],
    )?;
    Ok(rows.first().map(run_row).transpose()?)
}

pub(super) fn runs(db: &mut impl Db) -> Result<Vec<RunRecord>, ReadError> {
    let rows = db.query(
        "SELECT id, workflow, workflow_version, source_path, definition, params, inventory, inventory_digest,
         plugins, state, started_by, created_at, finished_at FROM runs ORDER BY created_at DESC, id DESC",
        &[],
    )?;
    Ok(rows.iter().map(run_row).collect::<Result<_, _>>()?)
}

pub(super) fn steps(db: &mut impl Db, run_id: RunId) -> Result<Vec<StepRecord>, ReadError> {
    let rows = db.query(
        "SELECT run_id, key, step_index, item, target, state, attempts, reason, retry_at, output, changed, summary,
         evidence, started_at, finished_at FROM steps WHERE run_id = $1 ORDER BY step_index, key COLLATE \"C\"",
        &[&run_id.to_string()],
    )?;
    let step = |row: &Row| -> Result<StepRecord, Unreadable> {
        Ok(StepRecord {
            run_id: run_id_col(row, 0)?,
            key: row.get(1),
            step_index: row.get::<_, i64>(2) as usize,
            item: opt_json_col(row, 3)?,
            target: row.get(4),
            state: enum_col(row, 5, StepState::parse)?,
            attempts: u32_col(row, 6),
            reason: row.get(7),
            retry_at: row.get(8),
            output: opt_json_col(row, 9)?,
            changed: row.get(10),
            summary: row.get(11),
            evidence: opt_json_col(row, 12)?,
            started_at: row.get(13),
            finished_at: row.get(14),
        })
    };
    Ok(rows.iter().map(step).collect::<Result<_, _>>()?)
}

pub(super) fn attempts(db: &mut impl Db, run_id: RunId) -> Result<Vec<AttemptRecord>, ReadError> {
    let rows = db.query(
        "SELECT run_id, step_key, number, mode, state, started_at, finished_at, error, error_class
         FROM attempts WHERE run_id = $1 ORDER BY step_key COLLATE \"C\", number",
        &[&run_id.to_string()],
    )?;
    let attempt = |row: &Row| -> Result<AttemptRecord, Unreadable> {
        let class: Option<String> = row.get(8);
        Ok(AttemptRecord {
            run_id: run_id_col(row, 0)?,
            step_key: row.get(1),
            number: u32_col(row, 2),
            mode: enum_col(row, 3, Mode::parse)?,
            state: enum_col(row, 4, AttemptState::parse)?,
            started_at: row.get(5),
            finished_at: row.get(6),
            error: row.get(7),
            error_class: class
                .map(|c| FailureClass::parse(&c).ok_or_else(|| Unreadable(format!("unknown class {c:?}"))))
                .transpose()?,
        })
    };
    Ok(rows.iter().map(attempt).collect::<Result<_, _>>()?)
}

pub(super) fn events(db: &mut impl Db, run_id: RunId, after: i64) -> Result<Vec<EventRecord>, ReadError> {
    let rows = db.query(
        "SELECT seq, run_id, at, step_key, kind, actor, data FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq",
        &[&run_id.to_string(), &after],
    )?;
    let event = |row: &Row| -> Result<EventRecord, Unreadable> {
        Ok(EventRecord {
            seq: row.get(0),
            run_id: run_id_col(row, 1)?,
            at: row.get(2),
            step_key: row.get(3),
            kind: row.get(4),
            actor: Actor::from(row.get::<_, String>(5)),
            data: json_col(row, 6)?,
        })
    };
    Ok(rows.iter().map(event).collect::<Result<_, _>>()?)
}

pub(super) fn pending_requests(db: &mut impl Db, run_id: RunId) -> Result<Vec<RequestRecord>, ReadError> {
    let rows = db.query(
        "SELECT seq, run_id, kind, step_key, data, actor, at FROM requests
         WHERE run_id = $1 AND applied_at IS NULL ORDER BY seq",
        &[&run_id.to_string()],
    )?;
    let request = |row: &Row| -> Result<RequestRecord, Unreadable> {
        let kind: String = row.get(2);
        let step_key: Option<String> = row.get(3);
        Ok(RequestRecord {
            seq: row.get(0),
            run_id: run_id_col(row, 1)?,
            request: Request::from_parts(&kind, step_key.as_deref(), &json_col(row, 4)?),
            actor: row.get(5),
            at: row.get(6),
        })
    };
    Ok(rows.iter().map(request).collect::<Result<_, _>>()?)
}

pub(super) fn checkpoint(
    db: &mut impl Db,
    run_id: RunId,
    step_key: &str,
    key: &str,
) -> Result<Option<String>, ReadError> {
    let rows = db.query(
        "SELECT value FROM checkpoints WHERE run_id = $1 AND step_key = $2 AND key = $3",
        &[&run_id.to_string(), &step_key, &key],
    )?;
    Ok(rows.first().map(|r| r.get(0)))
}

pub(super) fn checkpoint_usage(
    db: &mut impl Db,
    run_id: RunId,
    step_key: &str,
    except: &str,
) -> Result<(usize, usize), ReadError> {
    let rows = db.query(
        "SELECT count(*), coalesce(sum(octet_length(key) + octet_length(value)), 0)::BIGINT
         FROM checkpoints WHERE run_id = $1 AND step_key = $2 AND key <> $3",
        &[&run_id.to_string(), &step_key, &except],
    )?;
    let row = rows.first().ok_or_else(|| Unreadable("no row from count(*)".into()))?;
    Ok((row.get::<_, i64>(0).max(0) as usize, row.get::<_, i64>(1).max(0) as usize))
}

pub(super) fn lease(db: &mut impl Db, run_id: RunId) -> Result<Option<LeaseRecord>, ReadError> {
    let rows = db.query(
        "SELECT holder, host, pid, \"user\", expires_at, boot_id FROM leases WHERE run_id = $1",
        &[&run_id.to_string()],
    )?;
    Ok(rows.first().map(|row| LeaseRecord {
        holder: row.get(0),
        host: row.get(1),
        pid: u32_col(row, 2),
        user: row.get(3),
        expires_at: row.get(4),
        boot_id: row.get(5),
    }))
}

/// Takes the lease for `me` unless another holder's is valid, by the rule of SQLite's
/// `acquire_lease`, in one statement: PostgreSQL locks the conflicting row and decides on its
/// latest version, so two workers taking over one expired lease at the same moment cannot both
/// win (SQLite gets the same from its single writer).
pub(super) fn acquire_lease(
    db: &mut impl Db,
    run_id: RunId,
    me: &LeaseRecord,
    now: i64,
    os_locked: bool,
) -> Result<Result<(), LeaseRecord>, ReadError> {
    let taken = db.execute(
        "INSERT INTO leases AS l (run_id, holder, host, pid, \"user\", expires_at, boot_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (run_id) DO UPDATE SET holder = excluded.holder, host = excluded.host, pid = excluded.pid,
         \"user\" = excluded.\"user\", expires_at = excluded.expires_at, boot_id = excluded.boot_id
         WHERE l.holder = excluded.holder OR l.expires_at <= $8
            OR ($9 AND l.boot_id <> '' AND l.boot_id = excluded.boot_id)",
        &[
            &run_id.to_string(),
            &me.holder,
            &me.host,
            &i64::from(me.pid),
            &me.user,
            &me.expires_at,
            &me.boot_id,
            &now,
            &os_locked,
        ],
    )?;
    if taken == 1 {
        return Ok(Ok(()));
    }
    match lease(db, run_id)? {
        Some(current) => Ok(Err(current)),
        // Released between the two statements: free now, but this transaction saw it held.
        None => Err(ReadError::Unreadable(Unreadable(format!(
            "the lease of run {run_id} was released while it was being taken; try again"
        )))),
    }
}

/// Inside a transaction: proves `fence.holder` still holds the lease of `fence.run_id` and
/// extends it to `expires_at`. The row stays locked until the transaction ends, so no other
/// process takes the lease over in between.
pub(super) fn fence(db: &mut impl Db, fence: &Fence, expires_at: i64) -> Result<bool, postgres::Error> {
    let n = db.execute(
        "UPDATE leases SET expires_at = GREATEST(expires_at, $3) WHERE run_id = $1 AND holder = $2",
        &[&fence.run_id.to_string(), &fence.holder, &expires_at],
    )?;
    Ok(n == 1)
}

pub(super) fn renew_lease(
    db: &mut impl Db,
    run_id: RunId,
    holder: &str,
    expires_at: i64,
) -> Result<bool, postgres::Error> {
    let n = db.execute(
        "UPDATE leases SET expires_at = $3 WHERE run_id = $1 AND holder = $2",
        &[&run_id.to_string(), &holder, &expires_at],
    )?;
    Ok(n == 1)
}

pub(super) fn release_lease(db: &mut impl Db, run_id: RunId, holder: &str) -> Result<(), postgres::Error> {
    db.execute("DELETE FROM leases WHERE run_id = $1 AND holder = $2", &[&run_id.to_string(), &holder])?;
    Ok(())
}

pub(super) fn put_plugin_component(
    db: &mut impl Db,
    sha256: &str,
    name: &str,
    version: &str,
    bytes: &[u8],
) -> Result<bool, postgres::Error> {
    let n = db.execute(
        "INSERT INTO plugin_components (sha256, name, version, bytes) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        &[&sha256, &name, &version, &bytes],
    )?;
    Ok(n == 1)
}

pub(super) fn has_plugin_component(db: &mut impl Db, sha256: &str) -> Result<bool, ReadError> {
    let rows = db.query("SELECT EXISTS (SELECT 1 FROM plugin_components WHERE sha256 = $1)", &[&sha256])?;
    Ok(rows.first().is_some_and(|r| r.get(0)))
}

pub(super) fn plugin_component(db: &mut impl Db, sha256: &str) -> Result<Option<Vec<u8>>, ReadError> {
    let rows = db.query("SELECT bytes FROM plugin_components WHERE sha256 = $1", &[&sha256])?;
    Ok(rows.first().map(|r| r.get(0)))
}

/// A run's events exactly as stored, in order.
pub(super) fn stored_events(db: &mut impl Db, run_id: RunId) -> Result<Vec<StoredEvent>, ReadError> {
    let rows = db.query(
        "SELECT seq, run_id, at, step_key, kind, actor, data FROM events WHERE run_id = $1 ORDER BY seq",
        &[&run_id.to_string()],
    )?;
    let event = |row: &Row| -> Result<StoredEvent, Unreadable> {
        Ok(StoredEvent {
            seq: row.get(0),
            run_id: run_id_col(row, 1)?,
            at: row.get(2),
            step_key: row.get(3),
            kind: row.get(4),
            actor: row.get(5),
            data: row.get(6),
        })
    };
    Ok(rows.iter().map(event).collect::<Result<_, _>>()?)
}

/// A run's operator commands exactly as stored, applied or not, in order.
pub(super) fn stored_requests(db: &mut impl Db, run_id: RunId) -> Result<Vec<StoredRequest>, ReadError> {
    let rows = db.query(
        "SELECT seq, run_id, kind, step_key, data, actor, at, applied_at FROM requests WHERE run_id = $1 ORDER BY seq",
        &[&run_id.to_string()],
    )?;
    let request = |row: &Row| -> Result<StoredRequest, Unreadable> {
        Ok(StoredRequest {
            seq: row.get(0),
            run_id: run_id_col(row, 1)?,
            kind: row.get(2),
            step_key: row.get(3),
            data: row.get(4),
            actor: row.get(5),
            at: row.get(6),
            applied_at: row.get(7),
        })
    };
    Ok(rows.iter().map(request).collect::<Result<_, _>>()?)
}

/// A run's checkpoints, by step instance and key (in byte order, as SQLite sorts).
pub(super) fn checkpoints(db: &mut impl Db, run_id: RunId) -> Result<Vec<CheckpointRecord>, ReadError> {
    let rows = db.query(
        "SELECT step_key, key, value FROM checkpoints WHERE run_id = $1 ORDER BY step_key COLLATE \"C\", key COLLATE \"C\"",
        &[&run_id.to_string()],
    )?;
    Ok(rows
        .iter()
        .map(|row| CheckpointRecord { step_key: row.get(0), key: row.get(1), value: row.get(2) })
        .collect())
}

/// The plugin components stored, by digest, without their bytes.
pub(super) fn plugin_components(db: &mut impl Db) -> Result<Vec<PluginComponentRecord>, ReadError> {
    let rows =
        db.query("SELECT sha256, name, version FROM plugin_components ORDER BY sha256 COLLATE \"C\"", &[])?;
    Ok(rows
        .iter()
        .map(|row| PluginComponentRecord { sha256: row.get(0), name: row.get(1), version: row.get(2) })
        .collect())
}

/// Everything of a run and its lease, in one read-only transaction at `REPEATABLE READ` (one
/// snapshot of the journal); rolled back if a read fails, so the connection stays usable.
pub(super) fn run_copy(conn: &mut Conn, run_id: RunId) -> Result<Option<RunCopy>, ReadError> {
    conn.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    let read = (|| -> Result<Option<RunCopy>, ReadError> {
        let Some(run) = run(conn, run_id)? else { return Ok(None) };
        Ok(Some(RunCopy {
            run,
            steps: steps(conn, run_id)?,
            attempts: attempts(conn, run_id)?,
            events: stored_events(conn, run_id)?,
            checkpoints: checkpoints(conn, run_id)?,
            requests: stored_requests(conn, run_id)?,
            lease: lease(conn, run_id)?,
        }))
    })();
    match read {
        Ok(copy) => {
            conn.client.batch_execute("COMMIT")?;
            Ok(copy)
        }
        Err(e) => {
            let _ = conn.client.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// The store error of a row this build cannot read.
pub(super) fn unreadable(name: &std::path::Path, e: Unreadable) -> StoreError {
    StoreError::Corrupt { path: name.into(), detail: e.0 }
}
