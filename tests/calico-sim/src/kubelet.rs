//! The kubelet of one node, with Calico's CNI plugin: one worker per node handles its pods one at
//! a time (Calico's CNI holds a host-wide IPAM lock, so this is also what a real node does) —
//! sandbox set-up gives the pod its addresses, annotations and a Running status, readiness follows
//! after `--start-delay-ms`, deletion releases the addresses after `--stop-delay-ms` and completes.
//! Every step is derived from the API's state, so a restarted sim continues where it stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ipnet::IpNet;
use ippool_cluster::names;
use ippool_cluster::selection::{self, SelectionError};
use ippool_rules::cidr::Family;
use ippool_rules::model::AllowedUse;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::cluster::{Cluster, NamespaceInfo, NodeInfo};
use crate::ipam::{Ipam, IpamError, Request};
use crate::pod_status;
use crate::tunnel;

/// Back-off before retrying a pod deletion that failed for an unexpected reason.
const STOP_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Work for a node's worker.
pub enum Work {
    /// A pod on this node as seen by the watch.
    Pod(Box<Pod>),
    /// A pod of this node was deleted from the API.
    PodGone(String),
    /// The pod watch has listed everything: allocations of pods that no longer exist can go.
    PodsListed,
    /// The pod's start delay has passed.
    ReadyDue(String),
    /// The pod's stop delay has passed.
    StopDue(String),
    /// Pools or the node changed: check the tunnel addresses.
    Tunnels,
    /// Something that could unblock pods without addresses changed.
    RetryFailed,
}

/// How other parts of the sim reach a node's worker.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: mpsc::UnboundedSender<Work>,
    retry_queued: Arc<AtomicBool>,
}

impl WorkerHandle {
    pub fn send(&self, work: Work) {
        // The worker lives as long as the sim; a failed send only happens while exiting.
        let _ = self.tx.send(work);
    }

    /// Queues one retry of failed pods, however often it is asked for before it runs.
    pub fn retry_failed(&self) {
        if !self.retry_queued.swap(true, Ordering::AcqRel) {
            self.send(Work::RetryFailed);
        }
    }
}

/// What all workers share.
pub struct Kubelet {
    pub client: Client,
    pub cluster: Arc<Cluster>,
    pub ipam: Ipam,
    pub start_delay: Duration,
    pub stop_delay: Duration,
}

#[derive(Debug, Error)]
enum SandboxError {
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("the node has no InternalIP for a hostNetwork pod")]
    NoNodeAddress,
}

struct Worker {
    node: String,
    kubelet: Arc<Kubelet>,
    tx: mpsc::UnboundedSender<Work>,
    retry_queued: Arc<AtomicBool>,
    pods: HashMap<String, Pod>,
    failed: HashSet<String>,
    timers: HashSet<String>,
    stopping: HashSet<String>,
    reported: HashSet<(String, String)>,
}

/// Starts the worker of `node`; it waits for the caches to be complete before its first step.
pub fn spawn_worker(node: String, kubelet: Arc<Kubelet>) -> WorkerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let retry_queued = Arc::new(AtomicBool::new(false));
    let worker = Worker {
        node,
        kubelet,
        tx: tx.clone(),
        retry_queued: retry_queued.clone(),
        pods: HashMap::new(),
        failed: HashSet::new(),
        timers: HashSet::new(),
        stopping: HashSet::new(),
        reported: HashSet::new(),
    };
    tokio::spawn(worker.run(rx));
    WorkerHandle { tx, retry_queued }
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn resource_version(pod: &Pod) -> Option<u64> {
    pod.metadata.resource_version.as_deref()?.parse().ok()
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

fn pod_label(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Work>) {
        self.kubelet.cluster.wait_synced().await;
        self.tunnels().await;
        while let Some(work) = rx.recv().await {
            match work {
                Work::Pod(pod) => {
                    let uid = uid_of(&pod);
                    if self.remember(*pod) {
                        self.reconcile(&uid).await;
                    }
                }
                Work::PodGone(uid) => self.gone(&uid).await,
                Work::PodsListed => self.collect_garbage().await,
                Work::ReadyDue(uid) => {
                    self.timers.remove(&timer_key(&Work::ReadyDue(uid.clone())));
                    self.reconcile(&uid).await;
                }
                Work::StopDue(uid) => self.stop(&uid).await,
                Work::Tunnels => self.tunnels().await,
                Work::RetryFailed => {
                    self.retry_queued.store(false, Ordering::Release);
                    let failed: Vec<String> = self.failed.iter().cloned().collect();
                    for uid in failed {
                        self.reconcile(&uid).await;
                    }
                }
            }
        }
    }

    /// Keeps the newest version of a pod; returns whether the given one was it.
    fn remember(&mut self, pod: Pod) -> bool {
        let uid = uid_of(&pod);
        if let Some(known) = self.pods.get(&uid)
            && resource_version(known) > resource_version(&pod)
        {
            return false;
        }
        self.pods.insert(uid, pod);
        true
    }

    fn client(&self) -> Client {
        self.kubelet.client.clone()
    }

    fn pods_api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }

    async fn tunnels(&mut self) {
        let node_api: Api<Node> = Api::all(self.client());
        if let Err(e) = tunnel::reconcile(
            &self.kubelet.ipam,
            &self.kubelet.cluster,
            &node_api,
            &self.node,
        )
        .await
        {
            warn!(error = %e, "tunnel address not reconciled; will retry on the next pool or node change");
        }
    }

    async fn reconcile(&mut self, uid: &str) {
        let Some(pod) = self.pods.get(uid).cloned() else {
            return;
        };
        if is_terminal(&pod) {
            self.release(uid, false).await;
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            self.begin_stop(uid);
            return;
        }
        let container_id = pod_status::container_id(uid);
        let set_up = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::ANNOTATION_CONTAINER_ID))
            .is_some_and(|c| *c == container_id)
            || host_network(&pod);
        match (set_up, pod_status::started_at(&pod)) {
            (true, Some(started)) => self.settle_readiness(&pod, started).await,
            _ => self.set_up(&pod, &container_id).await,
        }
    }

    async fn settle_readiness(&mut self, pod: &Pod, started: Timestamp) {
        if pod_status::is_ready(pod) {
            return;
        }
        let uid = uid_of(pod);
        let elapsed = Timestamp::now().duration_since(started).unsigned_abs();
        if elapsed < self.kubelet.start_delay {
            self.after(self.kubelet.start_delay - elapsed, Work::ReadyDue(uid));
            return;
        }
        let addresses: Vec<IpAddr> = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().filter_map(|i| i.ip.parse().ok()).collect())
            .unwrap_or_default();
        let host_ip = self.node_info().and_then(|n| n.internal_ip);
        let patch = pod_status::running(
            pod,
            &pod_status::container_id(&uid),
            host_ip,
            &addresses,
            started,
            true,
        );
        self.patch_status(pod, &patch).await;
    }

    /// Sends `work` to this worker after `delay`, unless the same timer is already running.
    fn after(&mut self, delay: Duration, work: Work) {
        if !self.timers.insert(timer_key(&work)) {
            return;
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(work);
        });
    }

    fn node_info(&self) -> Option<NodeInfo> {
        self.kubelet.cluster.node(&self.node)
    }

    async fn set_up(&mut self, pod: &Pod, container_id: &str) {
        let uid = uid_of(pod);
        let node = self.node_info();
        let host_ip = node.as_ref().and_then(|n| n.internal_ip);
        let addresses = if host_network(pod) {
            host_ip
                .map(|ip| vec![ip])
                .ok_or(SandboxError::NoNodeAddress)
        } else {
            self.addresses(pod, container_id).await
        };
        let addresses = match addresses {
            Ok(addresses) => addresses,
            Err(e) => return self.sandbox_failed(pod, container_id, &e.to_string()).await,
        };
        self.failed.remove(&uid);
        if !host_network(pod) && !pod_status::has_cni_annotations(pod, container_id, &addresses) {
            let patch = json!({"metadata": {"annotations":
                pod_status::cni_annotations(container_id, &addresses)}});
            let api = self.pods_api(pod);
            match api
                .patch(
                    pod.metadata.name.as_deref().unwrap_or(""),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(updated) => {
                    self.remember(updated);
                }
                Err(e) => {
                    warn!(pod = pod_label(pod), error = %e, "annotating pod failed; will retry on its next update");
                    return;
                }
            }
        }
        let ready = self.kubelet.start_delay.is_zero();
        let patch = pod_status::running(
            pod,
            container_id,
            host_ip,
            &addresses,
            Timestamp::now(),
            ready,
        );
        self.patch_status(pod, &patch).await;
        if !ready {
            self.after(self.kubelet.start_delay, Work::ReadyDue(uid));
        }
        info!(pod = pod_label(pod), node = %self.node, ?addresses, "sandbox up");
    }

    async fn patch_status(&mut self, pod: &Pod, patch: &serde_json::Value) {
        let api = self.pods_api(pod);
        match api
            .patch_status(
                pod.metadata.name.as_deref().unwrap_or(""),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(updated) => {
                self.remember(updated);
            }
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => warn!(pod = pod_label(pod), error = %e, "pod status update failed"),
        }
    }

    /// The pod's addresses: those its handle already holds (a sandbox set up before a restart),
    /// plus one per family it still needs. Any failure releases what the handle holds, as
    /// Calico's CNI does when ADD fails.
    async fn addresses(
        &mut self,
        pod: &Pod,
        container_id: &str,
    ) -> Result<Vec<IpAddr>, SandboxError> {
        let cluster = &self.kubelet.cluster;
        let ipam = &self.kubelet.ipam;
        let handle_id = names::pod_handle_id(container_id);
        let namespace_name = pod.metadata.namespace.clone().unwrap_or_default();
        let namespace = cluster.namespace(&namespace_name).unwrap_or_default();
        let held: Vec<IpAddr> = cluster
            .handle_addresses(&handle_id)
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let outcome = self
            .assign_missing(pod, &handle_id, &namespace, &held)
            .await;
        let ipam_result = match outcome {
            Ok(()) => ipam
                .sync_handle(&handle_id)
                .await
                .map_err(SandboxError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = ipam_result {
            if let Err(release) = ipam.release_handle(&handle_id).await {
                warn!(handle = handle_id, error = %release, "releasing after a failed set-up failed");
            }
            return Err(e);
        }
        let mut addresses: Vec<IpAddr> = cluster
            .handle_addresses(&handle_id)
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        addresses.sort_by_key(|a| (a.is_ipv6(), *a));
        Ok(addresses)
    }

    async fn assign_missing(
        &self,
        pod: &Pod,
        handle_id: &str,
        namespace: &NamespaceInfo,
        held: &[IpAddr],
    ) -> Result<(), SandboxError> {
        let cluster = &self.kubelet.cluster;
        let pools = cluster.pools();
        let empty = BTreeMap::new();
        let pod_annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
        let has_pools = |family| !selection::usable_pools(&pools, family).is_empty();
        let secondary = BTreeMap::from([
            (
                names::ATTRIBUTE_NAMESPACE.to_owned(),
                pod.metadata.namespace.clone().unwrap_or_default(),
            ),
            (names::ATTRIBUTE_NODE.to_owned(), self.node.clone()),
            (
                names::ATTRIBUTE_POD.to_owned(),
                pod.metadata.name.clone().unwrap_or_default(),
            ),
            (
                names::ATTRIBUTE_TIMESTAMP.to_owned(),
                go_timestamp(Timestamp::now()),
            ),
        ]);
        for family in [Family::V4, Family::V6] {
            if held.iter().any(|a| Family::of_addr(a) == family) {
                continue;
            }
            let key = match family {
                Family::V4 => names::ANNOTATION_IPV4_POOLS,
                Family::V6 => names::ANNOTATION_IPV6_POOLS,
            };
            // The pod's annotation wins over its namespace's (Calico's CNI).
            let annotation = pod_annotations
                .get(key)
                .filter(|v| !v.is_empty())
                .or_else(|| namespace.annotations.get(key).filter(|v| !v.is_empty()));
            let requested: Vec<IpNet> = match annotation {
                Some(text) => selection::resolve_pool_annotation(key, text, &pools, family)?,
                None => Vec::new(),
            };
            // IPv4 unless the cluster has only IPv6 pools; IPv6 when it has IPv6 pools.
            let wanted = annotation.is_some()
                || has_pools(family)
                || (family == Family::V4 && !has_pools(Family::V6));
            if !wanted {
                continue;
            }
            self.kubelet
                .ipam
                .auto_assign(&Request {
                    node: &self.node,
                    family,
                    handle_id,
                    secondary: &secondary,
                    use_: AllowedUse::Workload,
                    requested: &requested,
                    namespace_labels: Some(&namespace.labels),
                })
                .await?;
        }
        Ok(())
    }

    async fn sandbox_failed(&mut self, pod: &Pod, container_id: &str, error: &str) {
        let uid = uid_of(pod);
        self.failed.insert(uid.clone());
        debug!(pod = pod_label(pod), error, "sandbox set-up failed");
        if !pod_status::shows_sandbox_failure(pod) {
            let host_ip = self.node_info().and_then(|n| n.internal_ip);
            self.patch_status(pod, &pod_status::sandbox_failed(pod, host_ip))
                .await;
        }
        if self.reported.insert((uid, error.to_owned())) {
            warn!(pod = pod_label(pod), node = %self.node, error, "FailedCreatePodSandBox");
            let event = pod_status::sandbox_failed_event(pod, &self.node, container_id, error);
            let events: Api<Event> = Api::namespaced(
                self.client(),
                pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            if let Err(e) = events.create(&PostParams::default(), &event).await {
                warn!(pod = pod_label(pod), error = %e, "recording the event failed");
            }
        }
    }

    fn begin_stop(&mut self, uid: &str) {
        if self.stopping.insert(uid.to_owned()) {
            let delay = self.kubelet.stop_delay;
            self.after(delay, Work::StopDue(uid.to_owned()));
        }
    }

    /// The stop delay has passed: release the addresses, then complete the deletion.
    async fn stop(&mut self, uid: &str) {
        self.timers
            .remove(&timer_key(&Work::StopDue(uid.to_owned())));
        self.release(uid, true).await;
        let Some(pod) = self.pods.get(uid).cloned() else {
            self.stopping.remove(uid);
            return;
        };
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self
            .pods_api(&pod)
            .delete(pod.metadata.name.as_deref().unwrap_or(""), &params)
            .await
        {
            Ok(_) => info!(pod = pod_label(&pod), "deleted"),
            // Gone already, or the name now belongs to a new pod.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(e) => {
                warn!(pod = pod_label(&pod), error = %e, "completing the deletion failed; retrying");
                self.after(STOP_RETRY_DELAY, Work::StopDue(uid.to_owned()));
            }
        }
    }

    /// Releases the pod's addresses; `thorough` also removes an IPAMHandle that holds none (left
    /// by a crash between the block write and the handle write), at the cost of a read.
    async fn release(&mut self, uid: &str, thorough: bool) {
        let handle_id = names::pod_handle_id(&pod_status::container_id(uid));
        if self.kubelet.cluster.handle_blocks(&handle_id).is_empty() {
            if thorough && let Err(e) = self.kubelet.ipam.sync_handle(&handle_id).await {
                warn!(handle = handle_id, error = %e, "removing the IPAMHandle failed");
            }
            return;
        }
        match self.kubelet.ipam.release_handle(&handle_id).await {
            Ok(freed) => info!(handle = handle_id, ?freed, "released"),
            Err(e) => warn!(handle = handle_id, error = %e, "release failed"),
        }
    }

    async fn gone(&mut self, uid: &str) {
        self.release(uid, false).await;
        self.pods.remove(uid);
        self.failed.remove(uid);
        self.stopping.remove(uid);
        self.reported.retain(|(u, _)| u != uid);
    }

    /// After a (re)list: addresses held for sandboxes of this node whose pods no longer exist
    /// are released, as a kubelet tears down such sandboxes when it starts.
    async fn collect_garbage(&mut self) {
        let live: HashSet<String> = self
            .pods
            .keys()
            .map(|uid| pod_status::container_id(uid))
            .collect();
        for handle_id in self.kubelet.cluster.handles_on_node(&self.node) {
            let Some(container_id) = names::container_id_of_pod_handle(&handle_id) else {
                continue;
            };
            if live.contains(container_id) {
                continue;
            }
            match self.kubelet.ipam.release_handle(&handle_id).await {
                Ok(freed) => info!(
                    handle = handle_id,
                    ?freed,
                    "released the addresses of a pod that is gone"
                ),
                Err(e) => {
                    warn!(handle = handle_id, error = %e, "releasing a leftover allocation failed")
                }
            }
        }
    }
}

fn timer_key(work: &Work) -> String {
    match work {
        Work::ReadyDue(uid) => format!("ready/{uid}"),
        Work::StopDue(uid) => format!("stop/{uid}"),
        _ => String::new(),
    }
}

/// Go's `time.Time.String()` of a UTC time, as Calico's CNI writes the `timestamp` attribute
/// (`2006-01-02 15:04:05.999999999 +0000 UTC`).
fn go_timestamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S%.f +0000 UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_go() {
        let t = Timestamp::new(1_700_000_000, 120_000_000).unwrap();
        assert_eq!(go_timestamp(t), "2023-11-14 22:13:20.12 +0000 UTC");
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        assert_eq!(go_timestamp(t), "2023-11-14 22:13:20 +0000 UTC");
    }
}
