//! One conformance suite for the journal's interface (`drover_engine::store::Store`), run against
//! both backends, so neither can drift: every record type read back as written, the lease rules,
//! fencing, history that cannot be rewritten, operator requests, group commit, migrations and
//! the faults each backend can meet. Each case is an `async fn(&Backend)`; `conformance!` makes a
//! test of it per backend (`sqlite_<case>`, `postgres_<case>`). PostgreSQL cases start their own
//! cluster (`drover_tests::postgres`).

use std::path::PathBuf;
use std::sync::Arc;

use drover_engine::journal::{Actor, Event, PinnedPlugin, PinnedPlugins, Request, RunId};
use drover_engine::plugin::{FailureClass, Mode, Sha256Digest};
use drover_engine::store::copy::differences;
use drover_engine::store::{
    AttemptRecord, AttemptState, Change, CheckpointRecord, Durability, Fence, LeaseRecord, Location,
    PluginComponentRecord, RunRecord, RunState, StepRecord, StepState, Store, StoreError, StoredEvent,
    StoredRequest,
};
use drover_tests::postgres::PgCluster;
use serde_json::json;

/// A journal of one backend, and what a case needs to open it again or damage it.
enum Backend {
    Sqlite { _dir: tempfile::TempDir, path: PathBuf },
    Postgres { cluster: PgCluster, url: String },
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("journal.db");
        Backend::Sqlite { _dir: dir, path }
    }

    fn postgres() -> Backend {
        let cluster = PgCluster::start();
        let url = cluster.url();
        Backend::Postgres { cluster, url }
    }

    fn location(&self) -> Location {
        match self {
            Backend::Sqlite { path, .. } => Location::Sqlite(path.clone()),
            Backend::Postgres { url, .. } => Location::parse(url.as_ref()),
        }
    }

    fn open(&self) -> Store {
        Store::open_at(&self.location(), Durability::Normal).expect("open the journal")
    }

    fn open_read_only(&self) -> Result<Store, StoreError> {
        Store::open_at_read_only(&self.location())
    }

    /// A second, empty journal of the same backend (a copy's destination).
    fn another(&self) -> Store {
        let location = match self {
            Backend::Sqlite { path, .. } => Location::Sqlite(path.with_file_name("another.db")),
            Backend::Postgres { cluster, .. } => Location::parse(cluster.create_database("another").as_ref()),
        };
        Store::open_at(&location, Durability::Normal).expect("open another journal")
    }

    /// Sets the stored schema version to `version`, as a newer drover would have.
    fn set_schema_version(&self, version: i64) {
        match self {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open with rusqlite");
                conn.pragma_update(None, "user_version", version).expect("set user_version");
            }
            Backend::Postgres { cluster, .. } => {
                cluster.psql(&format!("UPDATE drover_schema SET version = {version}"));
            }
        }
    }

    /// Runs `sql` directly against the journal, as another program could; the error's text if it
    /// failed.
    fn raw(&self, sql: &str) -> Result<(), String> {
        match self {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open with rusqlite");
                conn.execute_batch(sql).map_err(|e| e.to_string())
            }
            Backend::Postgres { cluster, url } => {
                let out = std::process::Command::new("psql")
                    .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-Atc", sql])
                    .env("PGHOST", cluster.socket_dir())
                    .output()
                    .expect("run psql");
                if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into()) }
            }
        }
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Backend::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Backend::postgres()).await;
                }
            )*
        }
    };
}

conformance!(
    every_record_reads_back_as_it_was_written,
    runs_are_listed_newest_first_and_an_unknown_run_is_not_found,
    a_commit_fenced_by_a_lease_that_was_taken_over_writes_nothing,
    the_lease_rules_hold,
    of_processes_taking_one_expired_lease_at_once_exactly_one_wins,
    a_succeeded_step_and_finished_attempts_are_never_overwritten,
    in_a_group_commit_a_refused_change_takes_only_itself_down,
    operator_requests_queue_in_order_until_applied,
    the_event_journal_is_append_only,
    plugin_components_are_stored_once_by_digest,
    opening_twice_and_opening_at_once_migrate_once,
    a_newer_schema_is_refused_by_every_command,
    a_reader_never_writes_and_finds_no_journal_where_none_is,
    a_run_copy_holds_everything_as_stored_and_writes_it_whole_into_another_journal,
    plugin_components_are_listed_by_digest_without_their_bytes,
);

const RUN: RunId = RunId::from_ulid(ulid_from(1));

const fn ulid_from(n: u64) -> ulid::Ulid {
    ulid::Ulid::from_parts(n, 1)
}

fn run_record(id: RunId, created_at: i64) -> RunRecord {
    let mut plugins = PinnedPlugins::new();
    plugins.steps.insert(
        "a".into(),
        PinnedPlugin {
            name: "noop".into(),
            version: semver::Version::new(1, 0, 0),
            sha256: Sha256Digest::of(b"noop"),
        },
    );
    RunRecord {
        id,
        workflow: "w".into(),
        workflow_version: "1.0.0".into(),
        source_path: "/wf/w.toml".into(),
        definition: json!({"format": 2, "steps": ["a"]}),
        params: json!({"mode": "drill", "n": 3, "ünïcode": "✓"}),
        inventory: json!({"servers": {"DRBTS01": {"site": "dr"}}}),
        inventory_digest: "cd".repeat(32),
        plugins,
        state: RunState::Running,
        started_by: "op".into(),
        created_at,
        finished_at: None,
    }
}

fn step(key: &str, state: StepState) -> StepRecord {
    StepRecord {
        run_id: RUN,
        key: key.into(),
        step_index: 1,
        item: Some(json!("DRBTS01")),
        target: Some("DRBTS01".into()),
        state,
        attempts: 1,
        reason: None,
        retry_at: None,
        output: None,
        changed: None,
        summary: None,
        evidence: None,
        started_at: Some(10),
        finished_at: None,
    }
}

fn attempt(key: &str, number: u32, state: AttemptState) -> AttemptRecord {
    AttemptRecord {
        run_id: RUN,
        step_key: key.into(),
        number,
        mode: Mode::Apply,
        state,
        started_at: 10,
        finished_at: None,
        error: None,
        error_class: None,
    }
}

/// `running` ended as a retryable failure at 15 ms.
fn failed_at_15(running: AttemptRecord) -> AttemptRecord {
    AttemptRecord {
        state: AttemptState::Failed,
        finished_at: Some(15),
        error: Some("boom".into()),
        error_class: Some(FailureClass::Retryable),
        ..running
    }
}

fn lease(holder: &str, expires_at: i64) -> LeaseRecord {
    LeaseRecord {
        holder: holder.into(),
        host: "here".into(),
        pid: 1,
        user: "op".into(),
        expires_at,
        boot_id: String::new(),
    }
}

/// An event told apart by its `pid`.
fn event(pid: u32) -> Change {
    Change::event(RUN, 0, None, Actor::Engine, &Event::Driving { pid })
}

fn pids(store: &Store) -> Vec<u32> {
    store
        .events(RUN, 0)
        .expect("events")
        .iter()
        .map(|e| match e.event().expect("a known event") {
            Event::Driving { pid } => pid,
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

async fn with_run(backend: &Backend) -> Store {
    let store = backend.open();
    store.apply(vec![Change::InsertRun(Box::new(run_record(RUN, 1)))]).await.expect("insert the run");
    store
}

async fn every_record_reads_back_as_it_was_written(backend: &Backend) {
    let store = with_run(backend).await;
    assert_eq!(store.run(RUN).expect("the run"), run_record(RUN, 1));
    let mut done = step("a[DRBTS01]", StepState::Succeeded);
    done.output = Some(json!({"rpo": "2026-12-07T10:00:00Z", "n": 1.5, "list": [1, null, "x"]}));
    done.changed = Some(true);
    done.summary = Some("joined\nthe group".into());
    done.evidence = Some(json!([{"label": "log", "text": "ok"}]));
    done.reason = Some("why".into());
    done.retry_at = Some(i64::MAX - 1);
    done.finished_at = Some(20);
    let mut waiting = step("b", StepState::Waiting);
    waiting.item = None;
    waiting.target = None;
    waiting.step_index = 0;
    let failed = attempt("a[DRBTS01]", 1, AttemptState::Running);
    store
        .apply(vec![
            Change::PutAttempt(failed.clone()),
            Change::PutStep(Box::new(done.clone())),
            Change::PutStep(Box::new(waiting.clone())),
            event(7),
            Change::SetCheckpoint {
                run_id: RUN,
                step_key: "a[DRBTS01]".into(),
                key: "k".into(),
                value: "v1".into(),
            },
            Change::SetRunState { run_id: RUN, state: RunState::Waiting, finished_at: Some(30) },
        ])
        .await
        .expect("commit");
    let failed = failed_at_15(failed);
    store.apply(vec![Change::PutAttempt(failed.clone())]).await.expect("end the attempt");
    store
        .apply(vec![
            Change::SetCheckpoint {
                run_id: RUN,
                step_key: "a[DRBTS01]".into(),
                key: "k".into(),
                value: "v2".into(),
            },
            Change::SetCheckpoint {
                run_id: RUN,
                step_key: "a[DRBTS01]".into(),
                key: "é".into(),
                value: "xyz".into(),
            },
        ])
        .await
        .expect("checkpoints");

    // Read back by another process too: a fresh store, and a reader.
    for reader in [store, backend.open(), backend.open_read_only().expect("a reader")] {
        // Steps in the order of their step, then key.
        assert_eq!(reader.steps(RUN).expect("steps"), [waiting.clone(), done.clone()]);
        assert_eq!(reader.attempts(RUN).expect("attempts"), std::slice::from_ref(&failed));
        let events = reader.events(RUN, 0).expect("events");
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].event().expect("known"), events[0].actor.as_str()),
            (Event::Driving { pid: 7 }, "engine")
        );
        assert!(reader.events(RUN, events[0].seq).expect("events after").is_empty());
        assert_eq!(reader.checkpoint(RUN, "a[DRBTS01]", "k").expect("checkpoint").as_deref(), Some("v2"));
        assert_eq!(reader.checkpoint(RUN, "a[DRBTS01]", "none").expect("checkpoint"), None);
        // "é" is 2 bytes: the usage counts bytes, as the limit does.
        assert_eq!(reader.checkpoint_usage(RUN, "a[DRBTS01]", "k").expect("usage"), (1, 2 + 3));
        let run = reader.run(RUN).expect("run");
        assert_eq!((run.state, run.finished_at), (RunState::Waiting, Some(30)));
    }
}

async fn runs_are_listed_newest_first_and_an_unknown_run_is_not_found(backend: &Backend) {
    let store = backend.open();
    let ids: Vec<RunId> = (2..5).map(|n| RunId::from_ulid(ulid_from(n))).collect();
    for (i, id) in ids.iter().enumerate() {
        store.apply(vec![Change::InsertRun(Box::new(run_record(*id, i as i64 * 10)))]).await.expect("insert");
    }
    let listed: Vec<RunId> = store.runs().expect("runs").iter().map(|r| r.id).collect();
    assert_eq!(listed, [ids[2], ids[1], ids[0]]);
    let unknown = RunId::from_ulid(ulid_from(99));
    assert!(matches!(store.run(unknown), Err(StoreError::NotFound(m)) if m.contains(&unknown.to_string())));
    assert!(store.steps(unknown).expect("steps").is_empty());
    assert_eq!(store.lease(unknown).expect("lease"), None);
}

async fn a_commit_fenced_by_a_lease_that_was_taken_over_writes_nothing(backend: &Backend) {
    let store = with_run(backend).await;
    assert!(store.acquire_lease(RUN, lease("a", 10_000), 0, false).await.expect("acquire").is_ok());
    let fence_a = Fence { run_id: RUN, holder: "a".into() };
    store.apply_fenced(&fence_a, 20_000, vec![event(1)]).await.expect("fenced commit");
    assert_eq!(
        store.lease(RUN).expect("lease").expect("held").expires_at,
        20_000,
        "the commit renewed the lease"
    );
    // A commit never shortens the lease.
    store.apply_fenced(&fence_a, 15_000, vec![]).await.expect("fenced commit");
    assert_eq!(store.lease(RUN).expect("lease").expect("held").expires_at, 20_000);
    // b takes the lease over once a's expired.
    assert!(store.acquire_lease(RUN, lease("b", 40_000), 30_000, false).await.expect("acquire").is_ok());
    let stale = store
        .apply_fenced(
            &fence_a,
            40_000,
            vec![event(2), Change::PutStep(Box::new(step("s", StepState::Running)))],
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Fenced { run_id }) if run_id == RUN), "{stale:?}");
    assert_eq!(pids(&store), [1]);
    assert!(store.steps(RUN).expect("steps").is_empty());
    assert_eq!(store.lease(RUN).expect("lease").expect("held").holder, "b");
}

async fn the_lease_rules_hold(backend: &Backend) {
    let store = with_run(backend).await;
    let mut a = lease("a", 1_000);
    a.boot_id = "boot-1".into();
    assert!(store.acquire_lease(RUN, a.clone(), 0, true).await.expect("acquire").is_ok());
    assert_eq!(store.lease(RUN).expect("lease"), Some(a.clone()));
    // The holder may take its own lease again.
    assert!(store.acquire_lease(RUN, a.clone(), 1, false).await.expect("again").is_ok());
    let mut b = lease("b", 2_000);
    b.boot_id = "boot-1".into();
    // Without the OS lock, a's unexpired lease holds.
    let held = store.acquire_lease(RUN, b.clone(), 1, false).await.expect("acquire");
    assert_eq!(held.expect_err("held by a").holder, "a");
    // From another boot the OS lock proves nothing.
    let mut c = lease("c", 2_000);
    c.boot_id = "boot-2".into();
    assert_eq!(store.acquire_lease(RUN, c, 1, true).await.expect("acquire").expect_err("held").holder, "a");
    // Renewal extends only the holder's lease.
    assert!(store.renew_lease(RUN, "a", 1_500).await.expect("renew"));
    assert!(!store.renew_lease(RUN, "x", 9_999).await.expect("renew"));
    assert_eq!(store.lease(RUN).expect("lease").expect("held").expires_at, 1_500);
    // On a's boot, holding the lock a held means a is dead.
    assert!(store.acquire_lease(RUN, b, 1, true).await.expect("acquire").is_ok());
    assert!(!store.renew_lease(RUN, "a", 9_999).await.expect("renew"), "a renewed a lease it lost");
    // Expired: anyone takes it (at exactly its expiry, too).
    assert!(store.acquire_lease(RUN, lease("d", 5_000), 2_000, false).await.expect("acquire").is_ok());
    // Release by another holder does nothing; by the holder frees it.
    store.release_lease(RUN, "b").await.expect("release");
    assert_eq!(store.lease(RUN).expect("lease").expect("held").holder, "d");
    store.release_lease(RUN, "d").await.expect("release");
    assert_eq!(store.lease(RUN).expect("lease"), None);
}

async fn of_processes_taking_one_expired_lease_at_once_exactly_one_wins(backend: &Backend) {
    drop(with_run(backend).await);
    let contenders: Vec<Arc<Store>> = (0..6).map(|_| Arc::new(backend.open())).collect();
    contenders[0].acquire_lease(RUN, lease("old", 100), 0, false).await.expect("acquire").expect("free");
    for round in 0..5 {
        let now = 1_000 + round * 10_000;
        let tasks: Vec<_> = contenders
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.acquire_lease(RUN, lease(&format!("p{round}-{i}"), now + 5_000), now, false).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            if task.await.expect("task").expect("acquire").is_ok() {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?} all took the lease");
        let holder = contenders[0].lease(RUN).expect("lease").expect("held").holder;
        assert_eq!(holder, format!("p{round}-{}", winners[0]));
    }
}

async fn a_succeeded_step_and_finished_attempts_are_never_overwritten(backend: &Backend) {
    let store = with_run(backend).await;
    let put = |s: StepState| Change::PutStep(Box::new(step("s", s)));
    let att = |n, s| Change::PutAttempt(attempt("s", n, s));
    store.apply(vec![att(1, AttemptState::Running), put(StepState::Running)]).await.expect("start");
    let mut succeeded = step("s", StepState::Succeeded);
    succeeded.output = Some(json!({"ok": true}));
    store
        .apply(vec![att(1, AttemptState::Succeeded), Change::PutStep(Box::new(succeeded))])
        .await
        .expect("finish");
    for (changes, expected) in [
        (vec![put(StepState::Running)], format!("step instance s of run {RUN} already succeeded")),
        (vec![att(1, AttemptState::Running)], format!("attempt 1 of s in run {RUN} already exists")),
        (vec![att(1, AttemptState::Failed)], format!("attempt 1 of s in run {RUN} is not running")),
        (vec![event(3), att(2, AttemptState::Failed)], format!("attempt 2 of s in run {RUN} is not running")),
    ] {
        let refused = store.apply(changes).await;
        assert!(
            matches!(&refused, Err(StoreError::Conflict(m)) if m.starts_with(&expected)),
            "{expected}: {refused:?}"
        );
    }
    // A succeeded instance may move on to compensation, and a compensated one never changes.
    store.apply(vec![put(StepState::Compensating)]).await.expect("compensating");
    store.apply(vec![put(StepState::Compensated)]).await.expect("compensated");
    let refused = store.apply(vec![put(StepState::Ready)]).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    let steps = store.steps(RUN).expect("steps");
    assert_eq!(steps[0].state, StepState::Compensated);
    let attempts = store.attempts(RUN).expect("attempts");
    assert_eq!((attempts.len(), attempts[0].state), (1, AttemptState::Succeeded));
    assert!(store.events(RUN, 0).expect("events").is_empty(), "a refused commit wrote its event");
}

async fn in_a_group_commit_a_refused_change_takes_only_itself_down(backend: &Backend) {
    let store = Arc::new(with_run(backend).await);
    store.apply(vec![Change::PutAttempt(attempt("s", 1, AttemptState::Running))]).await.expect("attempt");
    // Many commits at once, one in three refused (an attempt that exists): the writer commits them
    // together, and each refused one writes nothing of its own.
    let tasks: Vec<_> = (0..60u32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut changes = vec![event(100 + i)];
                if i % 3 == 0 {
                    changes.push(Change::PutAttempt(attempt("s", 1, AttemptState::Running)));
                }
                (i, store.apply(changes).await)
            })
        })
        .collect();
    for task in tasks {
        let (i, result) = task.await.expect("task");
        assert_eq!(result.is_ok(), i % 3 != 0, "commit {i}: {result:?}");
    }
    let mut written = pids(&store);
    written.sort_unstable();
    let expected: Vec<u32> = (0..60).filter(|i| i % 3 != 0).map(|i| 100 + i).collect();
    assert_eq!(written, expected);
}

async fn operator_requests_queue_in_order_until_applied(backend: &Backend) {
    let store = with_run(backend).await;
    let requests = [
        Request::Approve { step: "gate".into(), comment: Some("change 42".into()) },
        Request::Retry { step: "s".into(), comment: None },
        Request::Cancel { comment: Some("stop".into()) },
    ];
    for (i, request) in requests.iter().enumerate() {
        store
            .apply(vec![Change::Request {
                run_id: RUN,
                request: request.clone(),
                actor: format!("op{i}"),
                at: i as i64,
            }])
            .await
            .expect("queue");
    }
    let pending = store.pending_requests(RUN).expect("pending");
    let read: Vec<(Request, String)> =
        pending.iter().map(|p| (p.request.clone().expect("a known request"), p.actor.clone())).collect();
    assert_eq!(
        read,
        requests.iter().cloned().zip(["op0", "op1", "op2"].map(String::from)).collect::<Vec<_>>()
    );
    assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
    store.apply(vec![Change::RequestApplied { seq: pending[0].seq, at: 9 }]).await.expect("applied");
    let left: Vec<i64> = store.pending_requests(RUN).expect("pending").iter().map(|p| p.seq).collect();
    assert_eq!(left, [pending[1].seq, pending[2].seq]);
}

async fn the_event_journal_is_append_only(backend: &Backend) {
    let store = with_run(backend).await;
    store.apply(vec![event(1), event(2)]).await.expect("events");
    for sql in ["UPDATE events SET kind = 'x'", "DELETE FROM events"] {
        let refused = backend.raw(sql).expect_err(sql);
        assert!(refused.contains("append-only"), "{sql}: {refused}");
    }
    assert_eq!(pids(&store), [1, 2]);
}

async fn plugin_components_are_stored_once_by_digest(backend: &Backend) {
    let store = backend.open();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    assert!(!store.has_plugin_component("aa11").expect("has"));
    assert!(store.put_plugin_component("aa11", "noop", "1.0.0", bytes.clone()).await.expect("put"));
    assert!(store.has_plugin_component("aa11").expect("has"));
    assert!(!store.put_plugin_component("aa11", "noop", "1.0.0", vec![1]).await.expect("put again"));
    assert_eq!(store.plugin_component("aa11").expect("read"), Some(bytes));
    assert_eq!(store.plugin_component("bb22").expect("read"), None);
}

async fn opening_twice_and_opening_at_once_migrate_once(backend: &Backend) {
    let first = with_run(backend).await;
    // Every process finds the lease lock files of one journal in the same folder.
    let dir = first.lease_lock_dir().expect("a folder of lease lock files");
    drop(first);
    assert_eq!(backend.open().lease_lock_dir(), Some(dir.clone()));
    assert_eq!(backend.open_read_only().expect("a reader").lease_lock_dir(), Some(dir));
    let location = backend.location();
    let openers: Vec<_> = (0..6)
        .map(|_| {
            let location = location.clone();
            std::thread::spawn(move || {
                Store::open_at(&location, Durability::Normal).map(|s| s.runs().map(|r| r.len()))
            })
        })
        .collect();
    for opener in openers {
        let opened = opener.join().expect("thread");
        assert!(matches!(opened, Ok(Ok(1))), "{opened:?}");
    }
}

async fn a_newer_schema_is_refused_by_every_command(backend: &Backend) {
    drop(with_run(backend).await);
    backend.set_schema_version(99);
    for opened in [backend.open_read_only(), Store::open_at(&backend.location(), Durability::Normal)] {
        let e = opened.err().expect("refused");
        assert!(matches!(e, StoreError::NewerSchema { found: 99, .. }), "{e}");
        assert!(e.to_string().contains("use a newer drover"), "{e}");
    }
}

async fn a_reader_never_writes_and_finds_no_journal_where_none_is(backend: &Backend) {
    let missing = backend.open_read_only().err().expect("no journal yet");
    assert!(matches!(missing, StoreError::Missing { .. }), "{missing}");
    // The reader created nothing: a writer still finds no run, and the reader then finds the
    // journal.
    let store = with_run(backend).await;
    let reader = backend.open_read_only().expect("a reader");
    let refused = reader.apply(vec![event(1)]).await;
    assert!(matches!(refused, Err(StoreError::ReadOnly { .. })), "{refused:?}");
    let refused = reader.acquire_lease(RUN, lease("r", 1), 0, false).await;
    assert!(matches!(refused, Err(StoreError::ReadOnly { .. })), "{refused:?}");
    assert!(pids(&store).is_empty());
}

/// An event as a newer drover could have stored it: a kind this build does not know, and data whose
/// keys are not in the order this build would write them.
fn newer_event() -> StoredEvent {
    StoredEvent {
        seq: 0,
        run_id: RUN,
        at: 12,
        step_key: Some("a[DRBTS01]".into()),
        kind: "paused-by-a-newer-drover".into(),
        actor: "op".into(),
        data: r#"{"z":1,"a":[2,{"y":null}],"é":"✓"}"#.into(),
    }
}

fn stored_request(kind: &str, applied_at: Option<i64>) -> StoredRequest {
    StoredRequest {
        seq: 0,
        run_id: RUN,
        kind: kind.into(),
        step_key: Some("gate".into()),
        data: r#"{"comment":"as stored","step":"gate"}"#.into(),
        actor: "op".into(),
        at: 11,
        applied_at,
    }
}

async fn a_run_copy_holds_everything_as_stored_and_writes_it_whole_into_another_journal(backend: &Backend) {
    let store = with_run(backend).await;
    let failed = attempt("a[DRBTS01]", 1, AttemptState::Running);
    let mut done = step("a[DRBTS01]", StepState::Succeeded);
    done.output = Some(json!({"n": 1.5}));
    store
        .apply(vec![
            Change::PutAttempt(failed.clone()),
            Change::PutStep(Box::new(done)),
            Change::PutStep(Box::new(step("b", StepState::Waiting))),
            event(7),
            Change::StoredEvent(newer_event()),
            Change::SetCheckpoint { run_id: RUN, step_key: "b".into(), key: "k".into(), value: "v".into() },
            Change::SetCheckpoint {
                run_id: RUN,
                step_key: "a[DRBTS01]".into(),
                key: "é".into(),
                value: "x".into(),
            },
            Change::Request {
                run_id: RUN,
                request: Request::Approve { step: "gate".into(), comment: None },
                actor: "op0".into(),
                at: 10,
            },
            Change::StoredRequest(stored_request("approve", Some(13))),
            Change::StoredRequest(stored_request("pause", None)),
        ])
        .await
        .expect("commit");
    let failed = failed_at_15(failed);
    store
        .apply(vec![
            Change::PutAttempt(failed),
            Change::PutAttempt(attempt("a[DRBTS01]", 2, AttemptState::Running)),
        ])
        .await
        .expect("attempts");
    assert!(store.acquire_lease(RUN, lease("driver", i64::MAX), 0, false).await.expect("lease").is_ok());

    // Read in one snapshot, by a reader too (a copy from an archive or a standby).
    let copy = store.run_copy(RUN).expect("read").expect("the run");
    assert_eq!(backend.open_read_only().expect("a reader").run_copy(RUN).expect("read"), Some(copy.clone()));
    assert_eq!(copy.run, store.run(RUN).expect("run"));
    assert_eq!(copy.steps, store.steps(RUN).expect("steps"));
    assert_eq!(copy.attempts, store.attempts(RUN).expect("attempts"));
    assert_eq!(copy.lease.as_ref().map(|l| l.holder.as_str()), Some("driver"));
    let kinds: Vec<&str> = copy.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["driving", "paused-by-a-newer-drover"]);
    assert_eq!(copy.events[1], StoredEvent { seq: copy.events[1].seq, ..newer_event() }, "stored as written");
    assert!(copy.events[0].seq < copy.events[1].seq);
    let checkpoints = [("a[DRBTS01]", "é", "x"), ("b", "k", "v")].map(|(s, k, v)| CheckpointRecord {
        step_key: s.into(),
        key: k.into(),
        value: v.into(),
    });
    assert_eq!(copy.checkpoints, checkpoints);
    let requests: Vec<(&str, Option<i64>)> =
        copy.requests.iter().map(|r| (r.kind.as_str(), r.applied_at)).collect();
    assert_eq!(requests, [("approve", None), ("approve", Some(13)), ("pause", None)]);
    assert_eq!(
        copy.requests[1],
        StoredRequest { seq: copy.requests[1].seq, ..stored_request("approve", Some(13)) }
    );
    // An applied command is no longer pending; one this build cannot read still is.
    let pending: Vec<String> =
        store.pending_requests(RUN).expect("pending").iter().map(|p| p.kind().to_string()).collect();
    assert_eq!(pending, ["approve", "pause"]);
    assert_eq!(store.run_copy(RunId::from_ulid(ulid_from(9))).expect("read"), None);

    // Written into another journal in one commit: the same run, its events and commands in order
    // under that journal's numbers, and no lease.
    let other = backend.another();
    let commits = other.commits();
    other.apply(copy.clone().into_changes()).await.expect("write the copy");
    assert_eq!(other.commits(), commits + 1);
    let written = other.run_copy(RUN).expect("read").expect("the run");
    assert_eq!(differences(&copy, &written), Vec::<&str>::new());
    assert_eq!(written.lease, None);
    assert_eq!(written.events[1].data, newer_event().data);
    assert!(other.events(RUN, 0).expect("events")[1].event().is_err(), "a kind this build does not know");
    // Written twice, the run is refused whole.
    assert!(other.apply(copy.clone().into_changes()).await.is_err());
    assert_eq!(other.run_copy(RUN).expect("read"), Some(written.clone()));
    // A changed copy differs, and says where.
    let mut changed = written;
    changed.events.pop();
    changed.requests[0].applied_at = Some(99);
    assert_eq!(differences(&copy, &changed), ["events", "operator commands"]);
}

async fn plugin_components_are_listed_by_digest_without_their_bytes(backend: &Backend) {
    let store = backend.open();
    assert_eq!(store.plugin_components().expect("list"), []);
    store.put_plugin_component("bb22", "noop", "1.0.0", vec![1; 1000]).await.expect("put");
    store.put_plugin_component("aa11", "fixture", "2.0.0", vec![2; 10]).await.expect("put");
    let listed = store.plugin_components().expect("list");
    let expected = [("aa11", "fixture", "2.0.0"), ("bb22", "noop", "1.0.0")]
        .map(|(d, n, v)| PluginComponentRecord { sha256: d.into(), name: n.into(), version: v.into() });
    assert_eq!(listed, expected);
}

// PostgreSQL's own faults.

/// A URL's password never shows: not in the store's location, not in an error.
#[test]
fn postgres_a_password_in_the_url_is_never_shown() {
    let cluster = PgCluster::start();
    cluster.psql("ALTER ROLE drover PASSWORD 'hunter2-secret'");
    let url = cluster.url().replacen("drover@", "drover:hunter2-secret@", 1);
    let location = Location::parse(url.as_ref());
    assert!(!location.to_string().contains("hunter2"), "{location}");
    let store = Store::open_at(&location, Durability::Normal).expect("open");
    assert!(!store.location().contains("hunter2"), "{}", store.location());
    drop(store);
    // A wrong database: the error names the URL, without the password.
    let wrong = Location::parse(url.replacen("/drover?", "/nosuchdb?", 1).as_ref());
    let e = Store::open_at(&wrong, Durability::Normal).err().expect("no such database");
    assert!(!e.to_string().contains("hunter2") && e.to_string().contains("nosuchdb"), "{e}");
}

/// A server that is down is `Unreachable` (exit code 6 in the CLI), naming the journal.
#[test]
fn postgres_a_server_that_is_down_is_unreachable() {
    let cluster = PgCluster::start();
    cluster.stop();
    let e = Store::open_at(&Location::parse(cluster.url().as_ref()), Durability::Normal).err().expect("down");
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
}

/// A standby (a read-only server) is refused for writing, and serves readers.
#[tokio::test]
async fn postgres_a_read_only_server_is_refused_for_writing() {
    let cluster = PgCluster::start();
    let location = Location::parse(cluster.url().as_ref());
    drop(Store::open_at(&location, Durability::Normal).expect("create the tables"));
    cluster.psql("ALTER DATABASE drover SET default_transaction_read_only = on");
    let e = Store::open_at(&location, Durability::Normal).err().expect("read-only");
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
    assert!(Store::open_at_read_only(&location).expect("a reader").runs().expect("runs").is_empty());
}

/// The two-site URL of `docs/operations.md`: both sites' servers listed, with
/// `target_session_attrs=read-write`, open the journal on the one that accepts writes, in either
/// order; the other (a standby, here a server whose database is read-only) is passed over and
/// gets nothing, not even Drover's tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_url_naming_both_sites_servers_opens_the_one_that_accepts_writes() {
    let (standby, primary) = (PgCluster::start(), PgCluster::start());
    standby.psql("ALTER DATABASE drover SET default_transaction_read_only = on");
    let both = |first: &PgCluster, second: &PgCluster| {
        format!(
            // Sockets' folders as repeated `host`: a comma in one `host` value is part of a path.
            "postgres:///drover?host={}&host={}&port=5432,5432&user=drover&target_session_attrs=read-write",
            first.socket_dir().display(),
            second.socket_dir().display()
        )
    };
    for (n, url) in [both(&standby, &primary), both(&primary, &standby)].into_iter().enumerate() {
        let store = Store::open_at(&Location::parse(url.as_ref()), Durability::Normal).expect("open");
        let run = RunId::from_ulid(ulid_from(20 + n as u64));
        store.apply(vec![Change::InsertRun(Box::new(run_record(run, 1)))]).await.expect("insert a run");
    }
    assert_eq!(primary.psql("SELECT count(*) FROM runs").trim(), "2");
    assert_eq!(standby.psql("SELECT to_regclass('runs') IS NULL").trim(), "t");
}

/// The store outlives a server restart: reads and writes after it reconnect and succeed, and a
/// lease taken before it is still held after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_store_reconnects_after_a_server_restart() {
    let backend = Backend::postgres();
    let store = with_run(&backend).await;
    store.acquire_lease(RUN, lease("a", i64::MAX), 0, false).await.expect("acquire").expect("free");
    let Backend::Postgres { cluster, .. } = &backend else { unreachable!() };
    cluster.restart();
    assert_eq!(store.run(RUN).expect("read after the restart").id, RUN);
    let fence = Fence { run_id: RUN, holder: "a".into() };
    store.apply_fenced(&fence, i64::MAX, vec![event(5)]).await.expect("write after the restart");
    cluster.restart();
    store.apply(vec![event(6)]).await.expect("a write first after the restart");
    assert_eq!(pids(&store), [5, 6]);
}
