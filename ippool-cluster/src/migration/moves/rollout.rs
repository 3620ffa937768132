//! Moving a Deployment, StatefulSet or DaemonSet by a rollout restart, as `kubectl rollout
//! restart` does it, waiting for the rollout as `kubectl rollout status` judges it.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::time::Instant;

use super::pods::{pod_in, workload_key};
use super::{MoveError, Mover};
use crate::migration::events::Event;
use crate::migration::mirror::Mirror;
use crate::request_error::RequestError;
use ippool_ipam::plan::WorkloadMove;

/// The annotation `kubectl rollout restart` sets on the pod template.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The field manager `kubectl rollout restart` writes with.
const ROLLOUT_FIELD_MANAGER: &str = "kubectl-rollout";

/// A rollout as `kubectl rollout status` sees it.
pub(super) struct RolloutView {
    generation: i64,
    observed: i64,
    complete: bool,
    summary: String,
    failure: Option<String>,
}

pub(super) fn deployment_view(d: &Deployment) -> RolloutView {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let failure = status.conditions.as_ref().and_then(|c| {
        c.iter()
            .find(|c| {
                c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
            .map(|c| {
                format!(
                    "rollout exceeded its progress deadline: {}",
                    c.message.as_deref().unwrap_or("")
                )
            })
    });
    RolloutView {
        generation: d.metadata.generation.unwrap_or(0),
        observed: status.observed_generation.unwrap_or(0),
        complete: updated >= replicas && total <= updated && available >= updated,
        summary: format!("{updated} of {replicas} updated, {available} available, {total} total"),
        failure,
    }
}

pub(super) fn stateful_set_view(s: &StatefulSet) -> RolloutView {
    let replicas = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = s.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let same_revision =
        status.update_revision.is_some() && status.update_revision == status.current_revision;
    RolloutView {
        generation: s.metadata.generation.unwrap_or(0),
        observed: status.observed_generation.unwrap_or(0),
        complete: same_revision && ready >= replicas,
        summary: format!("{updated} of {replicas} updated, {ready} ready"),
        failure: None,
    }
}

pub(super) fn daemon_set_view(d: &DaemonSet) -> RolloutView {
    let status = d.status.clone().unwrap_or_default();
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    RolloutView {
        generation: d.metadata.generation.unwrap_or(0),
        observed: status.observed_generation.unwrap_or(0),
        complete: updated >= desired && available >= desired,
        summary: format!("{updated} of {desired} nodes updated, {available} available"),
        failure: None,
    }
}

impl Mover {
    pub(super) async fn rollout<K>(
        &self,
        m: &WorkloadMove,
        mirror: Option<&Mirror<K>>,
        view: fn(&K) -> RolloutView,
    ) -> Result<(), MoveError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default,
    {
        let Some(mirror) = mirror else {
            return self.evict_all(m).await;
        };
        let workload = &m.workload;
        let object_key = format!("{}/{}", workload.namespace, workload.name);
        let pods_key = workload_key(workload);
        let subject = workload.to_string();

        // A rollout already under way (an earlier run's restart, or someone else's) finishes first.
        let current = mirror.get(&object_key).into_iter().next();
        let Some(current) = current else {
            // The workload is gone; so will its pods be.
            return self.wait_pods_gone(m, &pods_key).await;
        };
        let state = view(&current);
        if !(state.complete && state.observed >= state.generation) {
            self.wait_rollout(
                m,
                mirror,
                view,
                &object_key,
                &pods_key,
                state.generation,
                false,
            )
            .await?;
        }
        self.inspect(&pods_key, workload)?;
        if self.left_in_old(&pods_key) == 0 {
            return Ok(());
        }

        let api: Api<K> = Api::namespaced(self.client.clone(), &workload.namespace);
        let current = mirror.get(&object_key).into_iter().next();
        let previous = current.as_ref().and_then(|c| {
            serde_json::to_value(c.as_ref()).ok().and_then(|v| {
                v.pointer("/spec/template/metadata/annotations")
                    .and_then(|a| a.get(RESTARTED_AT))
                    .and_then(|v| v.as_str().map(str::to_owned))
            })
        });
        let now = Timestamp::now();
        let mut stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        if previous.as_deref() == Some(stamp.as_str()) {
            // The same second as the last restart would not change the template.
            stamp = now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        }
        let patch =
            json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}});
        let params = PatchParams {
            field_manager: Some(ROLLOUT_FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patched = api
            .patch(&workload.name, &params, &Patch::Strategic(&patch))
            .await
            .map_err(|e| RequestError::new(format!("restart {subject}"), e))?;
        let generation = patched.meta().generation.unwrap_or(0);
        self.wait_rollout(m, mirror, view, &object_key, &pods_key, generation, true)
            .await
    }

    /// Waits until the workload's rollout of `generation` is complete and (with `emptied`) none
    /// of its pods is left in the old pool.
    #[allow(clippy::too_many_arguments)]
    async fn wait_rollout<K>(
        &self,
        m: &WorkloadMove,
        mirror: &Mirror<K>,
        view: fn(&K) -> RolloutView,
        object_key: &str,
        pods_key: &str,
        generation: i64,
        emptied: bool,
    ) -> Result<(), MoveError>
    where
        K: Resource,
    {
        let workload = &m.workload;
        let deadline = Instant::now() + self.timeout;
        let mut workload_changes = mirror.subscribe(object_key);
        let mut pod_changes = self.pods.subscribe(pods_key);
        let mut said = String::new();
        loop {
            workload_changes.borrow_and_update();
            pod_changes.borrow_and_update();
            self.inspect(pods_key, workload)?;
            let object = mirror.get(object_key).into_iter().next();
            let Some(object) = object else {
                return self.wait_pods_gone(m, pods_key).await;
            };
            let state = view(&object);
            if let Some(message) = state.failure {
                return Err(MoveError::RolloutFailed {
                    workload: workload.to_string(),
                    message,
                });
            }
            let left = self.left_in_old(pods_key);
            let done = state.observed >= generation
                && state.generation >= generation
                && state.complete
                && (!emptied || left == 0);
            if done {
                return Ok(());
            }
            let mut summary = if state.observed < generation || state.generation < generation {
                "restart requested, waiting for the controller to start the rollout".to_owned()
            } else {
                format!("rollout: {}", state.summary)
            };
            if left > 0 {
                summary.push_str(&format!(", {left} pod(s) still in the old pool"));
            }
            if summary != said {
                self.progress.emit(Event::Waiting {
                    subject: workload.to_string(),
                    reason: summary.clone(),
                });
                said = summary;
            }
            tokio::select! {
                _ = workload_changes.changed() => {}
                _ = pod_changes.changed() => {}
                () = tokio::time::sleep_until(deadline) => {
                    if let Some(e) = self.without_address(pods_key, workload) {
                        return Err(e);
                    }
                    return Err(MoveError::RolloutStuck {
                        workload: workload.to_string(),
                        waited: self.timeout.as_secs(),
                        state: said,
                    });
                }
            }
        }
    }

    async fn wait_pods_gone(&self, m: &WorkloadMove, key: &str) -> Result<(), MoveError> {
        let deadline = Instant::now() + self.timeout;
        let gone = self
            .pods
            .wait(key, deadline, |pods| {
                pods.get(key)
                    .iter()
                    .all(|p| pod_in(p, &self.old).is_none())
                    .then_some(())
            })
            .await;
        gone.ok_or_else(|| MoveError::RolloutStuck {
            workload: m.workload.to_string(),
            waited: self.timeout.as_secs(),
            state: "the workload was deleted; its pods in the old pool are still there".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_completion_follows_kubectl() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 4, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 5, "updatedReplicas": 4, "availableReplicas": 4}
        }))
        .unwrap();
        let v = deployment_view(&d);
        assert!(!v.complete, "an old replica is still there");
        let done: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 4, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}
        }))
        .unwrap();
        assert!(deployment_view(&done).complete);
        let stuck: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"}, "spec": {"selector": {}, "template": {}},
            "status": {"conditions": [{"type": "Progressing", "status": "False",
                "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out"}]}
        }))
        .unwrap();
        assert!(
            deployment_view(&stuck)
                .failure
                .unwrap()
                .contains("timed out")
        );
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "generation": 2}, "spec": {"replicas": 2, "selector": {}, "serviceName": "db", "template": {}},
            "status": {"replicas": 2, "readyReplicas": 2, "currentRevision": "db-1", "updateRevision": "db-2", "observedGeneration": 2}
        }))
        .unwrap();
        assert!(!stateful_set_view(&sts).complete);
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "generation": 2}, "spec": {"selector": {}, "template": {}},
            "status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberMisscheduled": 0,
                       "numberReady": 3, "updatedNumberScheduled": 3, "numberAvailable": 3, "observedGeneration": 2}
        }))
        .unwrap();
        assert!(daemon_set_view(&ds).complete);
    }
}
