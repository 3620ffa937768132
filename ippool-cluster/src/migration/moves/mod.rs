//! Moving one workload's pods out of the old pool, the way the plan chose:
//! - rollout restart: the `kubectl.kubernetes.io/restartedAt` pod template annotation, patched as
//!   `kubectl rollout restart` does (strategic merge patch, field manager `kubectl-rollout`), then
//!   waiting — by watching — for the rollout to complete as `kubectl rollout status` judges it;
//! - eviction: one pod at a time, an `Eviction` POSTed to the pod's `eviction` subresource with a
//!   client that does not retry, so that a PodDisruptionBudget's 429 comes back at once; the
//!   budget is then watched and the eviction retried, until `--timeout`, when the budget that
//!   refuses is named; each evicted pod's replacement must be ready before the next eviction;
//! - delete: bare pods, with `--delete-bare-pods`.
//!
//! Every pod seen while waiting is checked: a pod of the workload that was not in the old pool
//! when moving started but has an address there stops the run, naming it; so does a pod that
//! never gets an address.

mod deletion;
mod eviction;
pub mod pods;
mod replacement;
mod rollout;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::DynamicObject;

use super::events::{Event, Progress};
use super::mirror::Mirror;
use crate::request_error::RequestError;
use ippool_ipam::plan::PolicyVersion;
use ippool_ipam::plan::{MoveMethod, WorkloadMove, WorkloadRef};
use ippool_ipam::snapshot::OwnerKind;
use pods::{pod_addresses, pod_in, pod_is_finished, pod_is_host_network, pod_key};
use rollout::{daemon_set_view, deployment_view, stateful_set_view};

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(
        "pod {pod} of {workload} got address {address}, which is in the old pool {old}: the old \
         pool is disabled, so something pins the pod to it (check the pod's and its namespace's \
         cni.projectcalico.org/ipv4pools annotations); nothing further was moved"
    )]
    PodInOldPool {
        pod: String,
        workload: String,
        address: IpAddr,
        old: IpNet,
    },
    #[error(
        "pod {pod} of {workload} was scheduled to {node} but has no address after {waited}s: check \
         that the new pool can serve that node (nodeSelector) and calico-node there; then run the \
         command again"
    )]
    PodWithoutAddress {
        pod: String,
        workload: String,
        node: String,
        waited: u64,
    },
    #[error(
        "{workload}: rollout did not complete within {waited}s ({state}); check it with `kubectl \
         rollout status`, then run the command again (raise --timeout for slow workloads)"
    )]
    RolloutStuck {
        workload: String,
        waited: u64,
        state: String,
    },
    #[error("{workload}: {message}; fix the rollout, then run the command again")]
    RolloutFailed { workload: String, message: String },
    #[error(
        "eviction of pod {pod} still refused after {waited}s: {refusal}. {budgets}Let the budget \
         allow one pod to be down (or add a replica), then run the command again"
    )]
    EvictionBlocked {
        pod: String,
        waited: u64,
        refusal: String,
        budgets: String,
    },
    #[error(
        "pod {pod} ({workload}) was evicted but no replacement became ready within {waited}s; \
         check the workload's pods, then run the command again"
    )]
    ReplacementMissing {
        pod: String,
        workload: String,
        waited: u64,
    },
    #[error("watching {what} failed: {detail}")]
    Watch { what: String, detail: String },
}

/// The workload mirrors a migration needs (only the kinds its plan restarts).
#[derive(Default)]
pub struct WorkloadMirrors {
    pub deployments: Option<Mirror<Deployment>>,
    pub stateful_sets: Option<Mirror<StatefulSet>>,
    pub daemon_sets: Option<Mirror<DaemonSet>>,
}

/// What moving workloads shares: clients, mirrors, pools, counters.
pub struct Mover {
    pub client: Client,
    /// A client with `default_retry = false`: a 429 from a budget comes back at once.
    pub eviction_client: Client,
    pub policy: Option<PolicyVersion>,
    pub old: IpNet,
    pub new: IpNet,
    pub timeout: Duration,
    pub progress: Arc<dyn Progress>,
    pub pods: Mirror<Pod>,
    pub workloads: WorkloadMirrors,
    /// PodDisruptionBudgets (either policy version), for waits after a refused eviction.
    pub budgets: Option<Mirror<DynamicObject>>,
    /// Pods in the old pool when moving started: any other pod there is a violation.
    pub known_in_old: HashSet<String>,
    reported: Mutex<HashSet<String>>,
    pods_moved: AtomicUsize,
}

impl Mover {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        eviction_client: Client,
        policy: Option<PolicyVersion>,
        old: IpNet,
        new: IpNet,
        timeout: Duration,
        progress: Arc<dyn Progress>,
        pods: Mirror<Pod>,
        workloads: WorkloadMirrors,
        budgets: Option<Mirror<DynamicObject>>,
        known_in_old: HashSet<String>,
    ) -> Mover {
        Mover {
            client,
            eviction_client,
            policy,
            old,
            new,
            timeout,
            progress,
            pods,
            workloads,
            budgets,
            known_in_old,
            reported: Mutex::new(HashSet::new()),
            pods_moved: AtomicUsize::new(0),
        }
    }

    pub fn pods_moved(&self) -> usize {
        self.pods_moved.load(Ordering::Relaxed)
    }

    /// Moves one workload by its planned method.
    pub async fn move_workload(&self, m: &WorkloadMove) -> Result<(), MoveError> {
        self.progress.emit(Event::WorkloadStarted {
            workload: m.workload.to_string(),
            method: serde_json::to_value(m.method)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            pods: m.pods.len(),
        });
        match m.method {
            MoveMethod::RolloutRestart => match m.workload.kind {
                OwnerKind::Deployment => {
                    self.rollout(m, self.workloads.deployments.as_ref(), deployment_view)
                        .await
                }
                OwnerKind::StatefulSet => {
                    self.rollout(m, self.workloads.stateful_sets.as_ref(), stateful_set_view)
                        .await
                }
                OwnerKind::DaemonSet => {
                    self.rollout(m, self.workloads.daemon_sets.as_ref(), daemon_set_view)
                        .await
                }
                _ => self.evict_all(m).await,
            },
            MoveMethod::Evict => self.evict_all(m).await,
            MoveMethod::Delete => self.delete_all(m).await,
            MoveMethod::Skip => Ok(()),
        }
    }

    /// Reports pods under `key` that now have an address in the new pool, and fails on a pod
    /// that arrived in the old pool.
    fn inspect(&self, key: &str, workload: &WorkloadRef) -> Result<(), MoveError> {
        for pod in self.pods.get(key) {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if let Some(address) = pod_in(&pod, &self.old)
                && !self.known_in_old.contains(&uid)
            {
                return Err(MoveError::PodInOldPool {
                    pod: pod_key(&pod),
                    workload: workload.to_string(),
                    address,
                    old: self.old,
                });
            }
            if let Some(address) = pod_in(&pod, &self.new) {
                let fresh = self
                    .reported
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(uid);
                if fresh {
                    self.pods_moved.fetch_add(1, Ordering::Relaxed);
                    self.progress.emit(Event::PodMoved {
                        pod: pod_key(&pod),
                        address,
                    });
                }
            }
        }
        Ok(())
    }

    /// Pods under `key` still in the old pool (terminating ones included: they hold their
    /// address until they are gone).
    fn left_in_old(&self, key: &str) -> usize {
        self.pods
            .get(key)
            .iter()
            .filter(|p| pod_in(p, &self.old).is_some())
            .count()
    }

    /// After a timeout: a pod of the workload that is scheduled but has no address is the
    /// likelier cause than the rollout itself.
    fn without_address(&self, key: &str, workload: &WorkloadRef) -> Option<MoveError> {
        self.pods.get(key).iter().find_map(|pod| {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone())?;
            (pod.metadata.deletion_timestamp.is_none()
                && !pod_is_host_network(pod)
                && !pod_is_finished(pod)
                && pod_addresses(pod).is_empty())
            .then(|| MoveError::PodWithoutAddress {
                pod: pod_key(pod),
                workload: workload.to_string(),
                node,
                waited: self.timeout.as_secs(),
            })
        })
    }
}
