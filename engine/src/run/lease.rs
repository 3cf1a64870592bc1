//! The lease: one process drives a run at a time. Taken when driving starts, renewed by a
//! heartbeat, released at the end; a lease whose holder died on this host, or that expired, can
//! be taken over.
//!
//! Invariant: a process drives only while its lease is valid. When a renewal finds the lease
//! taken over, or renewals keep failing until the lease would have expired, [`Lease::lost`]
//! turns true and the driver stops at once (its interrupted attempts are the next holder's to
//! recover).

use std::sync::Arc;
use std::time::Duration;

use crate::store::{LeaseRecord, Store};

use super::RunError;
use super::clock::Clock;

/// How long a lease lasts without a heartbeat.
pub const LEASE_TTL_MS: i64 = 15_000;
/// How often the holder renews it.
const HEARTBEAT: Duration = Duration::from_secs(3);

/// Who this process is, for leases and events.
pub fn whoami() -> (String, String) {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", uid()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    (user, host)
}

#[allow(unsafe_code)]
fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// A held lease; renewed in the background until released or dropped.
pub struct Lease {
    store: Arc<Store>,
    run_id: String,
    holder: String,
    heartbeat: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<bool>,
}

impl Lease {
    /// Takes the lease of `run_id`, or says who holds it.
    pub async fn acquire(store: Arc<Store>, clock: Arc<dyn Clock>, run_id: &str) -> Result<Lease, RunError> {
        let (user, host) = whoami();
        let holder = format!("{}-{}", std::process::id(), ulid::Ulid::generate());
        let me = LeaseRecord {
            holder: holder.clone(),
            host,
            pid: std::process::id(),
            user,
            expires_at: clock.now_ms() + LEASE_TTL_MS,
        };
        let mut valid_until = me.expires_at;
        match store.acquire_lease(run_id, me, clock.now_ms()).await? {
            Ok(()) => {}
            Err(current) => {
                return Err(RunError::LeaseHeld {
                    run_id: run_id.into(),
                    pid: current.pid,
                    host: current.host,
                    user: current.user,
                    expires_in_ms: current.expires_at - clock.now_ms(),
                });
            }
        }
        let (lost_tx, lost) = tokio::sync::watch::channel(false);
        let heartbeat = {
            let (store, run_id, holder, clock) =
                (store.clone(), run_id.to_string(), holder.clone(), clock.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    let expires = clock.now_ms() + LEASE_TTL_MS;
                    match store.renew_lease(&run_id, &holder, expires).await {
                        Ok(true) => valid_until = expires,
                        Ok(false) => {
                            tracing::error!(run = %run_id, "the lease was taken over by another process");
                            break;
                        }
                        Err(e) if clock.now_ms() + HEARTBEAT.as_millis() as i64 >= valid_until => {
                            tracing::error!(run = %run_id, error = %e, "cannot renew the lease before it expires");
                            break;
                        }
                        Err(e) => tracing::warn!(run = %run_id, error = %e, "cannot renew the lease"),
                    }
                }
                let _ = lost_tx.send(true);
            })
        };
        Ok(Lease { store, run_id: run_id.into(), holder, heartbeat, lost })
    }

    /// Turns true when the lease is lost; the driver must stop.
    pub fn lost(&self) -> tokio::sync::watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Gives the lease up.
    pub async fn release(self) -> Result<(), RunError> {
        self.heartbeat.abort();
        self.store.release_lease(&self.run_id, &self.holder).await?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}
