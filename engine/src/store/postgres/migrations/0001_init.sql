-- Drover's run journal on PostgreSQL, schema version 1: the same tables as the SQLite journal's
-- schema version 3 (engine/src/store/sqlite/migrations), in PostgreSQL's types. JSON documents are
-- kept as text, exactly as SQLite keeps them, so both backends read back the same values.

CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    workflow         TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    source_path      TEXT NOT NULL,
    definition       TEXT NOT NULL,
    params           TEXT NOT NULL,
    inventory        TEXT NOT NULL,
    inventory_digest TEXT NOT NULL,
    plugins          TEXT NOT NULL,
    state            TEXT NOT NULL,
    started_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT
);

CREATE TABLE steps (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    key         TEXT NOT NULL,
    step_index  BIGINT NOT NULL,
    item        TEXT,
    target      TEXT,
    state       TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    reason      TEXT,
    retry_at    BIGINT,
    output      TEXT,
    changed     BOOLEAN,
    summary     TEXT,
    evidence    TEXT,
    started_at  BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    step_key    TEXT NOT NULL,
    number      BIGINT NOT NULL,
    mode        TEXT NOT NULL,
    state       TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    error       TEXT,
    error_class TEXT,
    PRIMARY KEY (run_id, step_key, number)
);

-- seq comes from a sequence: increasing, but assigned when a row is inserted, not when its
-- transaction commits. Only the run's lease holder appends a run's events, one commit at a time,
-- so within a run seq order is commit order.
CREATE TABLE events (
    seq      BIGSERIAL PRIMARY KEY,
    run_id   TEXT NOT NULL,
    at       BIGINT NOT NULL,
    step_key TEXT,
    kind     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    data     TEXT NOT NULL
);
CREATE INDEX events_by_run ON events(run_id, seq);
CREATE FUNCTION drover_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event journal is append-only';
END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION drover_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION drover_events_append_only();

CREATE TABLE checkpoints (
    run_id   TEXT NOT NULL,
    step_key TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_id, step_key, key)
);

CREATE TABLE leases (
    run_id     TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    host       TEXT NOT NULL,
    pid        BIGINT NOT NULL,
    "user"     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    boot_id    TEXT NOT NULL DEFAULT ''
);

CREATE TABLE requests (
    seq        BIGSERIAL PRIMARY KEY,
    run_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    step_key   TEXT,
    data       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    at         BIGINT NOT NULL,
    applied_at BIGINT
);
CREATE INDEX requests_pending ON requests(run_id, applied_at);

CREATE TABLE plugin_components (
    sha256  TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    version TEXT NOT NULL,
    bytes   BYTEA NOT NULL
);

-- The journal's identity: the same for every process however its URL is spelled. Names the folder
-- of the OS lock files that tell whether a lease's holder lives on this machine (run/lease.rs).
CREATE TABLE drover_journal (id TEXT NOT NULL);
INSERT INTO drover_journal (id) SELECT replace(gen_random_uuid()::TEXT, '-', '');
