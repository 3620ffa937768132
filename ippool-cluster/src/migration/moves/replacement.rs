//! Waiting for a pod taken away (evicted or deleted) to be gone and, for a controller that
//! replaces its pods, for as many of its pods to be ready as before.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use super::pods::{controller_key, controller_of, pod_is_ready, pod_key, workload_key};
use super::{MoveError, Mover};
use crate::migration::mirror::ALL;
use ippool_ipam::plan::{PodInOld, WorkloadMove};
use ippool_ipam::snapshot::OwnerKind;

/// A pod watched while it is replaced.
pub(super) struct Watched {
    pub(super) uid: String,
    pub(super) key: String,
}

impl Mover {
    /// Ready pods under the controller key, not terminating, other than `except`.
    pub(super) fn ready_under(&self, key: &str, except: &str) -> usize {
        self.pods
            .get(key)
            .iter()
            .filter(|p| p.metadata.uid.as_deref() != Some(except))
            .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_is_ready(p))
            .count()
    }

    pub(super) fn live_pod(&self, m: &WorkloadMove, planned: &PodInOld) -> Option<Arc<Pod>> {
        self.pods
            .get(&workload_key(&m.workload))
            .into_iter()
            .chain(self.pods.get(ALL).into_iter().filter(|p| {
                p.metadata.namespace.as_deref() == Some(m.workload.namespace.as_str())
                    && p.metadata.name.as_deref() == Some(planned.name.as_str())
            }))
            .find(|p| p.metadata.uid.as_deref() == Some(planned.uid.as_str()))
    }

    pub(super) fn watched(&self, m: &WorkloadMove, pod: &Pod) -> Watched {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = controller_of(pod)
            .map(|o| controller_key(&o.uid))
            .unwrap_or_else(|| workload_key(&m.workload));
        Watched { uid, key }
    }

    /// Waits for the evicted pod to be gone and its controller to have as many ready pods as
    /// before (Jobs: only gone).
    pub(super) async fn await_replacement(
        &self,
        m: &WorkloadMove,
        pod: &Pod,
        watched: &Watched,
        ready_before: usize,
    ) -> Result<(), MoveError> {
        let deadline = Instant::now() + self.timeout;
        let workload_pods = workload_key(&m.workload);
        let replaces = !matches!(
            m.workload.kind,
            OwnerKind::Job | OwnerKind::CronJob | OwnerKind::Bare
        );
        let mut failure = None;
        let done = self
            .pods
            .wait(&watched.key, deadline, |pods| {
                if let Err(e) = self.inspect(&workload_pods, &m.workload) {
                    failure = Some(e);
                    return Some(());
                }
                let gone = pods
                    .get(&watched.key)
                    .iter()
                    .all(|p| p.metadata.uid.as_deref() != Some(watched.uid.as_str()));
                (gone
                    && (!replaces || self.ready_under(&watched.key, &watched.uid) >= ready_before))
                    .then_some(())
            })
            .await;
        if let Some(e) = failure {
            return Err(e);
        }
        if done.is_some() {
            return Ok(());
        }
        if let Some(e) = self.without_address(&watched.key, &m.workload) {
            return Err(e);
        }
        Err(MoveError::ReplacementMissing {
            pod: pod_key(pod),
            workload: m.workload.to_string(),
            waited: self.timeout.as_secs(),
        })
    }
}
