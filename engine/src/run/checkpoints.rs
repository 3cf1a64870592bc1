//! A step instance's checkpoints in the run journal: the [`StepStateStore`] the driver hands each
//! attempt, behind the plugin's `state-get` and `state-set`. Writes are commits under the run's
//! lease, so a driver that lost its lease writes nothing; reads go to the journal directly.
//!
//! It must not hide a journal it cannot read: a read's error is returned (the host fails the
//! attempt with it), never taken for an absent key.

use std::sync::Arc;

use async_trait::async_trait;

use crate::journal::RunId;
use crate::plugin::{StateUsage, StepStateStore};
use crate::store::{Change, Store};

use super::lease::LeaseHandle;

/// Checkpoints of one step instance in the journal.
pub(super) struct Checkpoints {
    pub(super) store: Arc<Store>,
    pub(super) lease: LeaseHandle,
    pub(super) run_id: RunId,
    pub(super) step_key: String,
}

#[async_trait]
impl StepStateStore for Checkpoints {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        self.store.checkpoint(self.run_id, &self.step_key, key).map_err(|e| e.to_string())
    }

    async fn set(&self, key: &str, value: &str) -> Result<(), String> {
        let change = Change::SetCheckpoint {
            run_id: self.run_id,
            step_key: self.step_key.clone(),
            key: key.into(),
            value: value.into(),
        };
        self.lease.commit(&self.store, vec![change]).await.map_err(|e| e.to_string())
    }

    async fn usage(&self, except: &str) -> Result<StateUsage, String> {
        let (keys, bytes) =
            self.store.checkpoint_usage(self.run_id, &self.step_key, except).map_err(|e| e.to_string())?;
        Ok(StateUsage { keys, bytes })
    }
}
