-- Drover's run journal, schema version 1.
-- Current-state tables (runs, steps, attempts, checkpoints) are updated in the same transaction
-- as the event that explains the change.

CREATE TABLE runs (
    id               TEXT PRIMARY KEY,      -- run_<ulid>
    workflow         TEXT NOT NULL,         -- workflow name
    workflow_version TEXT NOT NULL,
    source_path      TEXT NOT NULL,         -- where the workflow file was read from
    definition       TEXT NOT NULL,         -- the validated workflow as JSON, pinned at start
    params           TEXT NOT NULL,         -- JSON object, defaults applied
    inventory        TEXT NOT NULL,         -- the inventory as JSON, pinned at start
    inventory_digest TEXT NOT NULL,         -- sha256 of the inventory JSON
    plugins          TEXT NOT NULL,         -- JSON: plugin name -> {version, sha256}
    state            TEXT NOT NULL,         -- running | waiting | succeeded | failed | cancelled
    started_by       TEXT NOT NULL,         -- OS user
    created_at       INTEGER NOT NULL,      -- ms since the Unix epoch
    finished_at      INTEGER
);

CREATE TABLE steps (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    key         TEXT NOT NULL,              -- step id, or id[item] for a fan-out instance
    step_index  INTEGER NOT NULL,           -- index into the definition's steps
    item        TEXT,                       -- JSON of the fan-out item
    target      TEXT,                       -- inventory name of the instance's target
    state       TEXT NOT NULL,              -- pending ready running succeeded failed skipped cancelled waiting needs-operator
    attempts    INTEGER NOT NULL DEFAULT 0, -- attempts started so far
    reason      TEXT,                       -- why it waits, was skipped, failed or needs an operator
    retry_at    INTEGER,                    -- ms: a retry timer, when waiting on one
    output      TEXT,                       -- JSON output
    changed     INTEGER,
    summary     TEXT,
    evidence    TEXT,                       -- JSON list
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    step_key    TEXT NOT NULL,
    number      INTEGER NOT NULL,           -- 1, 2, ... without gaps
    mode        TEXT NOT NULL,              -- apply | check
    state       TEXT NOT NULL,              -- running (intent) | succeeded | failed | interrupted
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    error       TEXT,
    error_class TEXT,
    PRIMARY KEY (run_id, step_key, number)
) WITHOUT ROWID;

CREATE TABLE events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT NOT NULL,
    at       INTEGER NOT NULL,              -- ms
    step_key TEXT,
    kind     TEXT NOT NULL,
    actor    TEXT NOT NULL,                 -- "engine", or the OS user of an operator command
    data     TEXT NOT NULL                  -- JSON
);
CREATE INDEX events_by_run ON events(run_id, seq);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event journal is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the event journal is append-only'); END;

CREATE TABLE checkpoints (
    run_id   TEXT NOT NULL,
    step_key TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_id, step_key, key)
) WITHOUT ROWID;

-- One process drives a run at a time.
CREATE TABLE leases (
    run_id     TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,               -- random id of the driving process
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    user       TEXT NOT NULL,
    expires_at INTEGER NOT NULL             -- ms; renewed by heartbeats
);

-- Operator commands waiting for the process that drives the run.
CREATE TABLE requests (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,               -- approve | retry | skip | cancel
    step_key   TEXT,
    data       TEXT NOT NULL,               -- JSON: comment, output
    actor      TEXT NOT NULL,
    at         INTEGER NOT NULL,
    applied_at INTEGER
);
CREATE INDEX requests_pending ON requests(run_id, applied_at);
