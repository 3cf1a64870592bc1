//! Live updates: one watcher per run that someone follows. It looks at the journal for new events
//! (every `poll`; also every few seconds regardless, since a lease or a retry timer changes what
//! the page says without an event), rebuilds the run's [`RunView`] when something changed,
//! serializes it once, and hands it to every follower through a `watch` channel, so fifty people
//! following one run cost one rebuild, not fifty. Rebuilds are spaced by at least twenty times what the last one took
//! (and at least `poll`), so a big fan-out is not slowed by the people watching it.
//!
//! A watcher ends when its last follower leaves, or when the server shuts down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_engine::journal::RunId;
use drover_engine::run::Clock;
use drover_engine::store::Store;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::view::{self, RunView};

/// A redraw at least this often, even without a new event (leases expire, timers come due).
const REFRESH: Duration = Duration::from_secs(5);
/// At most this long between two rebuilds of a run that keeps changing.
const MAX_SPACING: Duration = Duration::from_secs(5);

/// The latest view of a run as the event stream sends it, shared by its followers: serialized
/// once per update, not once per follower.
#[derive(Debug)]
pub struct Published {
    /// The last journal event the view shows.
    pub seq: i64,
    /// The view as JSON, with the control characters JSON leaves raw escaped (`display::json`).
    pub json: String,
}

impl Published {
    fn of(view: &RunView) -> Published {
        let text = serde_json::to_string(view).unwrap_or_default();
        Published { seq: view.seq, json: drover_engine::display::json(&text).into_owned() }
    }
}

/// The latest view of a run, shared by its followers.
pub type Latest = watch::Receiver<Arc<Published>>;

/// The watchers of the runs people follow.
pub struct Live {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    poll: Duration,
    shutdown: watch::Receiver<bool>,
    runs: Mutex<HashMap<RunId, Latest>>,
    /// Held while a run's watcher starts, so fifty people opening a run at once cost one first
    /// view, not fifty.
    starting: Mutex<HashMap<RunId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Live {
    /// Watchers reading `store` every `poll`, ending when `shutdown` turns true.
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        poll: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Live {
        Live {
            store,
            clock,
            poll,
            shutdown,
            runs: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
        }
    }

    /// Follows `run_id`: its current view, and every next one. Starts the run's watcher if nobody
    /// followed it yet.
    pub async fn follow(self: &Arc<Self>, run_id: RunId) -> Result<Latest, ApiError> {
        if let Some(latest) = self.runs.lock().unwrap_or_else(|p| p.into_inner()).get(&run_id) {
            return Ok(latest.clone());
        }
        let start =
            self.starting.lock().unwrap_or_else(|p| p.into_inner()).entry(run_id).or_default().clone();
        let _starting = start.lock().await;
        // Whoever held the lock before may have started the watcher.
        if let Some(latest) = self.runs.lock().unwrap_or_else(|p| p.into_inner()).get(&run_id) {
            return Ok(latest.clone());
        }
        let first = self.build(run_id).await?;
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        // Another request may have started the watcher meanwhile.
        if let Some(latest) = runs.get(&run_id) {
            return Ok(latest.clone());
        }
        let (tx, rx) = watch::channel(Arc::new(Published::of(&first)));
        runs.insert(run_id, rx.clone());
        drop(runs);
        tokio::spawn(self.clone().watch(run_id, tx));
        Ok(rx)
    }

    /// The view of `run_id` now, built off the async threads.
    pub async fn build(&self, run_id: RunId) -> Result<RunView, ApiError> {
        let (store, clock) = (self.store.clone(), self.clock.clone());
        tokio::task::spawn_blocking(move || view::build(&store, run_id, clock))
            .await
            .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }

    /// The last event of `run_id`, read off the async threads.
    async fn last_seq(&self, run_id: RunId, after: i64) -> Result<i64, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || Ok(store.events(run_id, after)?.last().map_or(after, |e| e.seq)))
            .await
            .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }

    async fn watch(self: Arc<Self>, run_id: RunId, tx: watch::Sender<Arc<Published>>) {
        let mut shutdown = self.shutdown.clone();
        let mut seen = tx.borrow().seq;
        let mut spacing = self.poll;
        let mut last_build = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            {
                // Only the map's own receiver left: nobody follows the run any more. Checked
                // under the lock `follow` takes, so nobody joins a watcher that is ending.
                let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
                if tx.receiver_count() <= 1 {
                    runs.remove(&run_id);
                    return;
                }
            }
            let seq = match self.last_seq(run_id, seen).await {
                Ok(seq) => seq,
                Err(e) => {
                    tracing::warn!(run = %run_id, "live view: cannot read the journal: {}", e.message);
                    continue;
                }
            };
            let due = last_build.elapsed() >= REFRESH;
            if (seq == seen && !due) || last_build.elapsed() < spacing {
                continue;
            }
            let started = Instant::now();
            match self.build(run_id).await {
                Ok(view) => {
                    seen = view.seq;
                    tx.send_replace(Arc::new(Published::of(&view)));
                }
                Err(e) => tracing::warn!(run = %run_id, "live view: cannot build the view: {}", e.message),
            }
            last_build = Instant::now();
            spacing = (started.elapsed() * 20).clamp(self.poll, MAX_SPACING);
        }
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).remove(&run_id);
    }
}
