//! A node's tunnel addresses, kept as calico-node keeps them: Calico's own allocator
//! (`node/pkg/allocateip`, built as `tunnel-addresses`) runs once when the node registers and again
//! whenever something it decides by changes. It runs beside the node's kubelet, not in it, so a slow
//! allocator never holds up the node's pods.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::kubelet::Kubelet;

/// Back-off before running a failed allocation again (e.g. a conflict on the Node), doubling.
const BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How the watches ask a node's allocator to run again.
#[derive(Clone)]
pub struct TunnelHandle {
    wanted: Arc<Notify>,
}

impl TunnelHandle {
    /// Asks for one more run; requests made while one is under way or queued fold into one.
    pub fn reconcile(&self) {
        self.wanted.notify_one();
    }
}

/// Starts the allocator task of `node`; its first run waits for the caches to be complete.
pub fn spawn(node: String, kubelet: Arc<Kubelet>) -> TunnelHandle {
    let wanted = Arc::new(Notify::new());
    let handle = TunnelHandle {
        wanted: wanted.clone(),
    };
    tokio::spawn(async move {
        kubelet.cluster.wait_synced().await;
        let mut backoff = BACKOFF;
        loop {
            match kubelet.calico.allocate_tunnel_addresses(&node).await {
                Ok(()) => {
                    debug!(%node, "tunnel addresses reconciled");
                    backoff = BACKOFF;
                    wanted.notified().await;
                }
                Err(e) => {
                    warn!(%node, error = %e, retry_in = ?backoff, "tunnel addresses not reconciled");
                    // A new request (the pools changed) is worth a run at once.
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = wanted.notified() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    });
    handle
}
