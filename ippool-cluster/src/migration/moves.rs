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

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::Resource;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::time::Instant;

use super::events::{Event, Progress};
use super::mirror::{ALL, Mirror};
use crate::api::PolicyVersion;
use crate::names::{ANNOTATION_POD_IP, ANNOTATION_POD_IPS};
use crate::plan::{MoveMethod, PodInOld, WorkloadMove, WorkloadRef};
use crate::request_error::RequestError;
use crate::snapshot::OwnerKind;

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The field manager `kubectl rollout restart` writes with.
pub const ROLLOUT_FIELD_MANAGER: &str = "kubectl-rollout";
/// Longest wait between eviction attempts while a budget refuses (a budget change wakes it sooner).
const EVICTION_RETRY_AT_MOST: Duration = Duration::from_secs(5);

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

/// The addresses a pod holds: its status, else (before the kubelet reports) what Calico's CNI
/// wrote into its annotations.
pub fn pod_addresses(pod: &Pod) -> Vec<IpAddr> {
    let status = pod.status.as_ref();
    let mut out: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().filter_map(|ip| ip.ip.parse().ok()).collect())
        .unwrap_or_default();
    if out.is_empty()
        && let Some(ip) = status.and_then(|s| s.pod_ip.as_deref())
        && let Ok(ip) = ip.parse()
    {
        out.push(ip);
    }
    if out.is_empty() {
        let annotations = pod.metadata.annotations.as_ref();
        let written = annotations
            .and_then(|a| a.get(ANNOTATION_POD_IPS))
            .or_else(|| annotations.and_then(|a| a.get(ANNOTATION_POD_IP)));
        if let Some(written) = written {
            out.extend(
                written
                    .split(',')
                    .filter_map(|a| a.trim().split('/').next())
                    .filter_map(|a| a.parse::<IpAddr>().ok()),
            );
        }
    }
    out
}

pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn pod_is_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// Whether the pod holds an address in `pool` (live, on the pod network).
pub fn pod_in(pod: &Pod, pool: &IpNet) -> Option<IpAddr> {
    if pod_is_finished(pod) || pod_is_host_network(pod) {
        return None;
    }
    pod_addresses(pod).into_iter().find(|a| pool.contains(a))
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The key a workload's pods are filed under in the pods mirror.
pub fn workload_key(workload: &WorkloadRef) -> String {
    format!(
        "wl:{}/{}/{}",
        workload.namespace,
        workload.kind.as_str(),
        workload.name
    )
}

fn controller_key(uid: &str) -> String {
    format!("ctl:{uid}")
}

fn controller_of(
    pod: &Pod,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    let refs = pod.metadata.owner_references.as_ref()?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
}

/// The keys a pod is filed under: its workload (a ReplicaSet named `<deployment>-<pod-template-hash>`
/// counts as its Deployment, as Kubernetes names them) and its controller's uid.
pub fn pod_keys(pod: &Pod) -> Vec<String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(owner) = controller_of(pod) else {
        return vec![workload_key(&WorkloadRef {
            namespace,
            kind: OwnerKind::Bare,
            name: pod.metadata.name.clone().unwrap_or_default(),
        })];
    };
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    let (kind, name) = match owner.kind.as_str() {
        "ReplicaSet" => match hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))) {
            Some(deployment) => (OwnerKind::Deployment, deployment.to_owned()),
            None => (OwnerKind::ReplicaSet, owner.name.clone()),
        },
        "Deployment" => (OwnerKind::Deployment, owner.name.clone()),
        "StatefulSet" => (OwnerKind::StatefulSet, owner.name.clone()),
        "DaemonSet" => (OwnerKind::DaemonSet, owner.name.clone()),
        "Job" => (OwnerKind::Job, owner.name.clone()),
        "CronJob" => (OwnerKind::CronJob, owner.name.clone()),
        other => (OwnerKind::Other(other.to_owned()), owner.name.clone()),
    };
    vec![
        workload_key(&WorkloadRef {
            namespace,
            kind,
            name,
        }),
        controller_key(&owner.uid),
    ]
}

/// Keys of namespaced objects in the workload and budget mirrors.
pub fn name_key<K: Resource>(object: &K) -> Vec<String> {
    let meta = object.meta();
    vec![format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )]
}

/// A rollout as `kubectl rollout status` sees it.
struct RolloutView {
    generation: i64,
    observed: i64,
    complete: bool,
    summary: String,
    failure: Option<String>,
}

fn deployment_view(d: &Deployment) -> RolloutView {
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

fn stateful_set_view(s: &StatefulSet) -> RolloutView {
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

fn daemon_set_view(d: &DaemonSet) -> RolloutView {
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

/// A pod watched while it is replaced.
struct Watched {
    uid: String,
    key: String,
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

    async fn rollout<K>(
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

    async fn evict_all(&self, m: &WorkloadMove) -> Result<(), MoveError> {
        for pod in &m.pods {
            self.evict_one(m, pod).await?;
        }
        self.inspect(&workload_key(&m.workload), &m.workload)
    }

    /// Ready pods under the controller key, not terminating, other than `except`.
    fn ready_under(&self, key: &str, except: &str) -> usize {
        self.pods
            .get(key)
            .iter()
            .filter(|p| p.metadata.uid.as_deref() != Some(except))
            .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_is_ready(p))
            .count()
    }

    async fn evict_one(&self, m: &WorkloadMove, planned: &PodInOld) -> Result<(), MoveError> {
        let Some(live) = self.live_pod(m, planned) else {
            return Ok(());
        };
        if pod_in(&live, &self.old).is_none() {
            return Ok(());
        }
        let watched = self.watched(m, &live);
        let ready_before =
            self.ready_under(&watched.key, &watched.uid) + usize::from(pod_is_ready(&live));
        if !self.post_eviction(m, &live).await? {
            return Ok(());
        }
        self.progress.emit(Event::PodEvicted {
            pod: pod_key(&live),
        });
        self.await_replacement(m, &live, &watched, ready_before)
            .await
    }

    fn live_pod(&self, m: &WorkloadMove, planned: &PodInOld) -> Option<Arc<Pod>> {
        self.pods
            .get(&workload_key(&m.workload))
            .into_iter()
            .chain(self.pods.get(ALL).into_iter().filter(|p| {
                p.metadata.namespace.as_deref() == Some(m.workload.namespace.as_str())
                    && p.metadata.name.as_deref() == Some(planned.name.as_str())
            }))
            .find(|p| p.metadata.uid.as_deref() == Some(planned.uid.as_str()))
    }

    fn watched(&self, m: &WorkloadMove, pod: &Pod) -> Watched {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = controller_of(pod)
            .map(|o| controller_key(&o.uid))
            .unwrap_or_else(|| workload_key(&m.workload));
        Watched { uid, key }
    }

    /// POSTs the Eviction until the API server accepts it (`true`) or the pod is gone
    /// (`false`); while a budget refuses, waits for the budget to change (at most a few seconds)
    /// and tries again, up to `--timeout`.
    async fn post_eviction(&self, m: &WorkloadMove, pod: &Pod) -> Result<bool, MoveError> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.eviction_client.clone(), &namespace);
        let version = self.policy.unwrap_or(PolicyVersion::V1).api_version();
        let body = json!({
            "apiVersion": version,
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        });
        let started = Instant::now();
        let mut said = String::new();
        loop {
            let answer = api
                .create_subresource::<_, serde_json::Value>(
                    "eviction",
                    &name,
                    &PostParams::default(),
                    &body,
                )
                .await;
            let status = match answer {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
                Err(kube::Error::Api(status)) if status.code == 429 => status,
                Err(e) => {
                    return Err(
                        RequestError::new(format!("evict pod {namespace}/{name}"), e).into(),
                    );
                }
            };
            let causes: Vec<String> = status
                .details
                .as_ref()
                .map(|d| d.causes.iter().map(|c| c.message.clone()).collect())
                .unwrap_or_default();
            let refusal = if causes.is_empty() {
                status.message.clone()
            } else {
                format!("{} ({})", status.message, causes.join("; "))
            };
            if refusal != said {
                self.progress.emit(Event::Waiting {
                    subject: format!("Pod {namespace}/{name}"),
                    reason: format!("eviction refused: {refusal}"),
                });
                said = refusal.clone();
            }
            let waited = started.elapsed();
            if waited >= self.timeout {
                return Err(MoveError::EvictionBlocked {
                    pod: format!("{namespace}/{name}"),
                    waited: waited.as_secs(),
                    refusal,
                    budgets: self.describe_budgets(m),
                });
            }
            let retry_after = status
                .details
                .as_ref()
                .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
                .filter(|d| !d.is_zero())
                .unwrap_or(EVICTION_RETRY_AT_MOST)
                .min(EVICTION_RETRY_AT_MOST)
                .min(self.timeout - waited);
            self.wait_for_budgets(m, retry_after).await;
        }
    }

    /// Waits until a budget changes so that one of the workload's budgets allows a disruption
    /// (any budget change when none was planned), or `at_most`.
    async fn wait_for_budgets(&self, m: &WorkloadMove, at_most: Duration) {
        let Some(budgets) = &self.budgets else {
            tokio::time::sleep(at_most).await;
            return;
        };
        let allows = || {
            m.budgets.is_empty()
                || m.budgets
                    .iter()
                    .flat_map(|k| budgets.get(&k.budget))
                    .any(|b| {
                        b.data
                            .pointer("/status/disruptionsAllowed")
                            .and_then(|v| v.as_i64())
                            .unwrap_or(0)
                            > 0
                    })
        };
        // Only a change after the refusal counts: the refusal may have come from a budget the
        // plan did not know, or from a status not yet updated.
        let mut changes = budgets.subscribe(ALL);
        changes.borrow_and_update();
        let _ = tokio::time::timeout(at_most, async {
            while changes.changed().await.is_ok() {
                if allows() {
                    return;
                }
            }
        })
        .await;
    }

    fn describe_budgets(&self, m: &WorkloadMove) -> String {
        let mut out = Vec::new();
        for planned in &m.budgets {
            let live = self
                .budgets
                .as_ref()
                .and_then(|b| b.get(&planned.budget).into_iter().next());
            let now = live.map_or_else(String::new, |b| {
                let status = |f: &str| {
                    b.data
                        .pointer(&format!("/status/{f}"))
                        .and_then(|v| v.as_i64())
                        .unwrap_or(0)
                };
                format!(
                    ": {} of {} pods healthy, {} needed, {} disruption(s) allowed now",
                    status("currentHealthy"),
                    status("expectedPods"),
                    status("desiredHealthy"),
                    status("disruptionsAllowed")
                )
            });
            out.push(format!(
                "PodDisruptionBudget {} ({}){now}",
                planned.budget, planned.spec
            ));
        }
        if out.is_empty() {
            String::new()
        } else {
            format!("Blocking: {}. ", out.join("; "))
        }
    }

    /// Waits for the evicted pod to be gone and its controller to have as many ready pods as
    /// before (Jobs: only gone).
    async fn await_replacement(
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

    async fn delete_all(&self, m: &WorkloadMove) -> Result<(), MoveError> {
        for planned in &m.pods {
            let Some(live) = self.live_pod(m, planned) else {
                continue;
            };
            let namespace = live.metadata.namespace.clone().unwrap_or_default();
            let name = live.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            let params = DeleteParams::default().preconditions(Preconditions {
                uid: live.metadata.uid.clone(),
                resource_version: None,
            });
            match api.delete(&name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                    continue;
                }
                Err(e) => {
                    return Err(
                        RequestError::new(format!("delete pod {namespace}/{name}"), e).into(),
                    );
                }
            }
            self.progress.emit(Event::PodDeleted {
                pod: format!("{namespace}/{name}"),
            });
            let watched = self.watched(m, &live);
            self.await_replacement(m, &live, &watched, 0).await?;
        }
        Ok(())
    }
}

/// Pods of the plan still in the old pool, by workload, for the verify step's message.
pub fn pods_left(
    pods: &Mirror<Pod>,
    old: &IpNet,
    in_scope: impl Fn(&Pod) -> bool,
) -> Vec<(String, IpAddr)> {
    let mut left: Vec<(String, IpAddr)> = pods
        .all()
        .iter()
        .filter(|p| in_scope(p))
        .filter_map(|p| pod_in(p, old).map(|a| (pod_key(p), a)))
        .collect();
    left.sort();
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pods_are_filed_under_their_workload_and_controller() {
        let web = pod(
            json!({"metadata": {"name": "web-5d4f-x", "namespace": "shop", "uid": "p1",
            "labels": {"pod-template-hash": "5d4f"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
                                 "uid": "rs1", "controller": true}]}}),
        );
        assert_eq!(
            pod_keys(&web),
            vec!["wl:shop/Deployment/web".to_owned(), "ctl:rs1".to_owned()]
        );
        let loose = pod(
            json!({"metadata": {"name": "loose-x", "namespace": "shop", "uid": "p2",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "loose",
                                 "uid": "rs2", "controller": true}]}}),
        );
        assert_eq!(pod_keys(&loose)[0], "wl:shop/ReplicaSet/loose");
        let bare = pod(json!({"metadata": {"name": "debug", "namespace": "default", "uid": "p3"}}));
        assert_eq!(pod_keys(&bare), vec!["wl:default/<none>/debug".to_owned()]);
        assert_eq!(
            workload_key(&WorkloadRef {
                namespace: "shop".into(),
                kind: OwnerKind::Deployment,
                name: "web".into()
            }),
            "wl:shop/Deployment/web"
        );
    }

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

    #[test]
    fn addresses_from_status_or_calico_annotations() {
        let pending = pod(json!({
            "metadata": {"name": "p", "annotations": {"cni.projectcalico.org/podIPs": "10.0.0.5/32,fd00::5/128"}},
            "status": {"phase": "Pending"}
        }));
        assert_eq!(
            pod_addresses(&pending),
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        let old: IpNet = "10.0.0.0/16".parse().unwrap();
        assert!(pod_in(&pending, &old).is_some());
        let done = pod(
            json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded", "podIP": "10.0.0.6"}}),
        );
        assert!(pod_in(&done, &old).is_none());
    }
}
