//! Where the engine bench's runs keep their journals: a fresh SQLite file or a fresh PostgreSQL
//! database per run, each backend's commit floor (the disk's commit time, measured the same way
//! for every figure of that backend), and reading a journal from outside while a run writes it
//! (counts, the run's id, its lease), as an operator's tools would. Nothing here times a run.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use drover_engine::store::{Durability, Location};
use drover_tests::postgres::PgCluster;

/// A journal backend.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// As `DROVER_BENCH_JOURNAL` and the JSON name it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The two settings every figure of this backend is measured under: SQLite's
    /// `synchronous` (FULL, NORMAL), PostgreSQL's `synchronous_commit` (on, off). The first
    /// waits for the disk at every commit, the second does not.
    pub fn settings(self) -> [Setting; 2] {
        match self {
            Backend::Sqlite => [
                Setting { backend: self, durability: Durability::Full, sync: "full" },
                Setting { backend: self, durability: Durability::Normal, sync: "normal" },
            ],
            // The store ignores `durability` on PostgreSQL: the URL's `synchronous_commit` rules.
            Backend::Postgres => [
                Setting { backend: self, durability: Durability::Full, sync: "on" },
                Setting { backend: self, durability: Durability::Full, sync: "off" },
            ],
        }
    }

    /// The names of the two settings' columns.
    pub fn columns(self) -> [&'static str; 2] {
        match self {
            Backend::Sqlite => ["FULL", "NORMAL"],
            Backend::Postgres => ["synchronous_commit on", "synchronous_commit off"],
        }
    }
}

/// A backend and how it commits.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub backend: Backend,
    /// SQLite's, for the store.
    pub durability: Durability,
    /// SQLite's `synchronous` as `drover --synchronous` takes it, or PostgreSQL's
    /// `synchronous_commit` as the URL sets it.
    pub sync: &'static str,
}

/// One run's journal.
pub enum Journal {
    File(PathBuf),
    Postgres {
        url: String,
        /// The connection reads go through, made on first use.
        reader: Mutex<Option<Box<postgres::Client>>>,
    },
}

impl Journal {
    /// As `--db` takes it.
    pub fn arg(&self) -> &str {
        match self {
            Journal::File(path) => path.to_str().expect("utf-8 path"),
            Journal::Postgres { url, .. } => url,
        }
    }

    pub fn location(&self) -> Location {
        Location::parse(self.arg().as_ref())
    }

    /// The first column of the first row of `sql` (a count), or 0 while the journal cannot
    /// answer it yet (no file, no tables).
    pub fn count(&self, sql: &str) -> i64 {
        match self {
            Journal::File(path) => {
                let conn =
                    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY);
                conn.and_then(|c| c.query_row(sql, [], |r| r.get(0))).unwrap_or(0)
            }
            Journal::Postgres { url, reader } => {
                let mut reader = reader.lock().expect("the reader's lock");
                if reader.is_none() {
                    *reader = postgres::Client::connect(url, postgres::NoTls).ok().map(Box::new);
                }
                let Some(client) = reader.as_mut() else { return 0 };
                match client.query_one(sql, &[]) {
                    Ok(row) => row.get(0),
                    Err(e) => {
                        if e.is_closed() {
                            *reader = None;
                        }
                        0
                    }
                }
            }
        }
    }

    /// The id of the journal's only run.
    pub fn run_id(&self) -> String {
        match self {
            Journal::File(path) => rusqlite::Connection::open(path)
                .expect("open")
                .query_row("SELECT id FROM runs", [], |r| r.get(0))
                .expect("run"),
            Journal::Postgres { url, .. } => postgres::Client::connect(url, postgres::NoTls)
                .expect("connect")
                .query_one("SELECT id FROM runs", &[])
                .expect("run")
                .get(0),
        }
    }
}

/// Makes the journals of one bench invocation: files in its directory, databases in its
/// PostgreSQL cluster.
pub struct Journals {
    dir: PathBuf,
    pg: Option<PgCluster>,
    made: AtomicU64,
}

impl Journals {
    /// `pg`, when PostgreSQL is benchmarked: a cluster started durable
    /// ([`PgCluster::start_durable`]).
    pub fn new(dir: &Path, pg: Option<PgCluster>) -> Journals {
        Journals { dir: dir.to_path_buf(), pg, made: AtomicU64::new(0) }
    }

    pub fn cluster(&self) -> Option<&PgCluster> {
        self.pg.as_ref()
    }

    /// A fresh journal for one run (a finished run's store may still be closing).
    pub fn fresh(&self, name: &str, setting: Setting) -> Journal {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        match setting.backend {
            Backend::Sqlite => Journal::File(self.dir.join(format!("{name}-{}-{n}.db", setting.sync))),
            Backend::Postgres => {
                let db = format!("{name}_{}_{n}", setting.sync);
                Journal::Postgres { url: self.pg_url(&db, setting), reader: Mutex::new(None) }
            }
        }
    }

    /// A new database `db` in the cluster, its URL committing as `setting` says.
    fn pg_url(&self, db: &str, setting: Setting) -> String {
        let pg = self.pg.as_ref().expect("PostgreSQL is benchmarked: its cluster runs");
        let url = pg.create_database(db);
        // libpq's `options`, percent-encoded: `-c synchronous_commit=<on|off>` for every session.
        format!("{url}&options=-c%20synchronous_commit%3D{}", setting.sync)
    }

    /// The disk's commit time under `setting`: the median of `n` one-row transactions on a fresh
    /// table, through the backend's own client (rusqlite in WAL mode; the `postgres` crate on
    /// the cluster's Unix socket, an autocommit INSERT of a prepared statement).
    pub fn floor(&self, setting: Setting, n: usize) -> f64 {
        let mut samples = Vec::with_capacity(n);
        match setting.backend {
            Backend::Sqlite => {
                let path = self.dir.join(format!("floor-{}.db", setting.sync));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                let conn = rusqlite::Connection::open(&path).expect("open");
                conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
                conn.pragma_update(None, "synchronous", setting.sync).expect("sync");
                conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").expect("table");
                for i in 0..n {
                    let started = Instant::now();
                    conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")]).expect("insert");
                    samples.push(ms(started));
                }
            }
            Backend::Postgres => {
                let mut client = self.pg_client(setting);
                client
                    .batch_execute(
                        "DROP TABLE IF EXISTS floor; CREATE TABLE floor (id BIGSERIAL PRIMARY KEY, v TEXT)",
                    )
                    .expect("table");
                let insert = client.prepare("INSERT INTO floor (v) VALUES ($1)").expect("prepare");
                for i in 0..n {
                    let started = Instant::now();
                    client.execute(&insert, &[&format!("row {i}")]).expect("insert");
                    samples.push(ms(started));
                }
            }
        }
        median(&samples)
    }

    /// PostgreSQL only: one round trip of a prepared `SELECT 1` (no commit, no disk), median of
    /// `n`: what each statement of a transaction costs beyond its work.
    pub fn round_trip(&self, setting: Setting, n: usize) -> f64 {
        let mut client = self.pg_client(setting);
        let select = client.prepare("SELECT 1").expect("prepare");
        let samples: Vec<f64> = (0..n)
            .map(|_| {
                let started = Instant::now();
                client.query_one(&select, &[]).expect("select");
                ms(started)
            })
            .collect();
        median(&samples)
    }

    /// A session on the floor's database (`drover`, the cluster's own), committing as `setting`
    /// says; checks that the server runs as the figures claim.
    fn pg_client(&self, setting: Setting) -> postgres::Client {
        let pg = self.pg.as_ref().expect("PostgreSQL is benchmarked: its cluster runs");
        let url = format!("{}&options=-c%20synchronous_commit%3D{}", pg.url(), setting.sync);
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let show = |c: &mut postgres::Client, name: &str| -> String {
            c.query_one(&format!("SHOW {name}"), &[]).expect("show").get(0)
        };
        assert_eq!(show(&mut client, "fsync"), "on", "the bench's cluster flushes its WAL");
        assert_eq!(show(&mut client, "synchronous_commit"), setting.sync);
        client
    }

    /// PostgreSQL's settings that decide a commit's cost, as the server reports them.
    pub fn pg_settings(&self) -> serde_json::Value {
        let Some(pg) = &self.pg else { return serde_json::Value::Null };
        let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).expect("connect");
        let mut settings = serde_json::Map::new();
        for name in [
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "full_page_writes",
            "shared_buffers",
        ] {
            let value: String = client.query_one(&format!("SHOW {name}"), &[]).expect("show").get(0);
            settings.insert(name.into(), value.into());
        }
        settings.into()
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
