//! The kubelet and container runtime of one node. One worker per node handles its pods one at a
//! time: a sandbox is set up through Calico's CNI plugin (which takes the pod's addresses from
//! Calico's IPAM and writes the pod's `cni.projectcalico.org/*` annotations), the pod is reported
//! Running with those addresses and Ready after `--start-delay-ms`; a deleted pod's sandbox is torn
//! down through the plugin after `--stop-delay-ms` and its deletion completed. Every step is
//! derived from the API's state and the node's sandbox records, so a restarted sim continues where
//! it stopped.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::calico::{Calico, Sandbox};
use crate::cluster::{Cluster, NodeInfo};
use crate::pod_status;
use crate::run::{self, RunHandle, Runtime};
use crate::sandboxes::{Record, RecordError, Records};

/// Back-off before retrying a teardown that failed, as a kubelet retries killing a sandbox.
const TEARDOWN_RETRY_DELAY: Duration = Duration::from_secs(1);
/// A failed sandbox set-up is also retried on a timer, doubling from this (kubelet backs off too):
/// the watches cover most of what can unblock it, but not, say, an address freed in a full pool.
const SET_UP_BACKOFF: Duration = Duration::from_secs(5);
/// The longest back-off between set-up attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Work for a node's worker.
pub enum Work {
    /// A pod on this node as seen by the watch.
    Pod(Box<Pod>),
    /// A pod of this node was deleted from the API.
    PodGone(String),
    /// Sandboxes whose pods no longer exist can go (the pod watch has listed everything).
    CollectSandboxes,
    /// The pod's start delay has passed.
    ReadyDue(String),
    /// The pod's stop delay has passed.
    StopDue(String),
    /// The back-off after a failed set-up or teardown has passed.
    Again(String),
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
    pub calico: Calico,
    pub start_delay: Duration,
    pub stop_delay: Duration,
    /// Runs the containers of pods selected to run for real (`run::RUN_LABEL`).
    pub runtime: Arc<Runtime>,
}

struct Worker {
    node: String,
    kubelet: Arc<Kubelet>,
    tx: mpsc::UnboundedSender<Work>,
    retry_queued: Arc<AtomicBool>,
    records: Records,
    /// The node's sandboxes by container ID, as on disk.
    sandboxes: HashMap<String, Record>,
    /// Sandboxes whose last ADD failed with Calico's own error: Calico released what it had
    /// allocated, so the next attempt needs no DEL first.
    clean: HashSet<String>,
    pods: HashMap<String, Pod>,
    /// Pods whose sandbox could not be set up, with the back-off before the next timed attempt.
    failed: HashMap<String, Duration>,
    timers: HashSet<String>,
    stopping: HashSet<String>,
    reported: HashSet<(String, String)>,
    /// Pods whose containers run as processes, by UID.
    runs: HashMap<String, RunHandle>,
}

/// Starts the worker of `node` with the sandboxes a previous run left on disk; it waits for the
/// caches to be complete before its first step.
pub fn spawn_worker(
    node: String,
    kubelet: Arc<Kubelet>,
    state: &std::path::Path,
) -> Result<WorkerHandle, RecordError> {
    let (records, sandboxes) = Records::open(state, &node)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = WorkerHandle {
        tx: tx.clone(),
        retry_queued: Arc::new(AtomicBool::new(false)),
    };
    let worker = Worker {
        node,
        kubelet,
        tx,
        retry_queued: handle.retry_queued.clone(),
        records,
        sandboxes,
        clean: HashSet::new(),
        pods: HashMap::new(),
        failed: HashMap::new(),
        timers: HashSet::new(),
        stopping: HashSet::new(),
        reported: HashSet::new(),
        runs: HashMap::new(),
    };
    tokio::spawn(worker.run(rx));
    Ok(handle)
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

fn timer_key(work: &Work) -> String {
    match work {
        Work::ReadyDue(uid) => format!("ready/{uid}"),
        Work::StopDue(uid) => format!("stop/{uid}"),
        Work::Again(uid) => format!("again/{uid}"),
        Work::CollectSandboxes => "collect".to_owned(),
        Work::Pod(_) | Work::PodGone(_) | Work::RetryFailed => String::new(),
    }
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Work>) {
        self.kubelet.cluster.wait_synced().await;
        while let Some(work) = rx.recv().await {
            self.timers.remove(&timer_key(&work));
            match work {
                Work::Pod(pod) => {
                    let uid = uid_of(&pod);
                    if self.remember(*pod) {
                        self.reconcile(&uid).await;
                    }
                }
                Work::PodGone(uid) => self.gone(&uid).await,
                Work::CollectSandboxes => self.collect_sandboxes().await,
                Work::ReadyDue(uid) | Work::Again(uid) => self.reconcile(&uid).await,
                Work::StopDue(uid) => self.stop(&uid).await,
                Work::RetryFailed => {
                    self.retry_queued.store(false, Ordering::Release);
                    let failed: Vec<String> = self.failed.keys().cloned().collect();
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

    fn node_info(&self) -> Option<NodeInfo> {
        self.kubelet.cluster.node(&self.node)
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

    async fn reconcile(&mut self, uid: &str) {
        let Some(pod) = self.pods.get(uid).cloned() else {
            return;
        };
        if run::selected(&pod) {
            return self.reconcile_run(&pod);
        }
        let container_id = pod_status::container_id(uid);
        if is_terminal(&pod) {
            // A finished pod keeps its object but not its sandbox.
            if !self.tear_down(&container_id).await {
                self.after(TEARDOWN_RETRY_DELAY, Work::Again(uid.to_owned()));
            }
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            self.begin_stop(uid);
            return;
        }
        let addresses = if host_network(&pod) {
            match self.node_info().and_then(|n| n.internal_ip) {
                Some(ip) => Some(vec![ip]),
                None => {
                    let error = "the node has no InternalIP for a hostNetwork pod";
                    return self.sandbox_failed(&pod, &container_id, error).await;
                }
            }
        } else {
            self.sandboxes
                .get(&container_id)
                .and_then(|r| r.addresses.clone())
        };
        match (addresses, pod_status::started_at(&pod)) {
            (Some(addresses), Some(started)) => {
                self.settle_readiness(&pod, &container_id, &addresses, started)
                    .await
            }
            (Some(addresses), None) => self.report_running(&pod, &container_id, &addresses).await,
            (None, _) => self.set_up(&pod, &container_id).await,
        }
    }

    /// A pod that runs for real: on the node's address (host network, no sandbox), its
    /// containers started once and stopped when it is deleted; the run reports its status.
    fn reconcile_run(&mut self, pod: &Pod) {
        let uid = uid_of(pod);
        if pod.metadata.deletion_timestamp.is_some() {
            if self.stopping.insert(uid.clone()) {
                match self.runs.get(&uid) {
                    Some(run) => run.stop(run::grace_period(pod)),
                    None => self.after(Duration::ZERO, Work::StopDue(uid)),
                }
            }
            return;
        }
        if is_terminal(pod) || self.runs.contains_key(&uid) {
            return;
        }
        let Some(ip) = self.node_info().and_then(|n| n.internal_ip) else {
            warn!(pod = pod_label(pod), node = %self.node, "the node has no InternalIP to run the pod on");
            return;
        };
        let tx = self.tx.clone();
        let stopped = uid.clone();
        let run = run::start(
            self.kubelet.runtime.clone(),
            pod.clone(),
            self.node.clone(),
            ip,
            Box::new(move || {
                let _ = tx.send(Work::StopDue(stopped));
            }),
        );
        info!(pod = pod_label(pod), node = %self.node, %ip, "running");
        self.runs.insert(uid, run);
    }

    fn sandbox_of(&self, pod: &Pod, container_id: &str) -> Sandbox {
        Sandbox {
            node: self.node.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid_of(pod),
            container_id: container_id.to_owned(),
        }
    }

    /// CNI ADD through Calico's plugin, with the sandbox recorded first (so that a crash in the
    /// middle leaves a record to tear down).
    async fn set_up(&mut self, pod: &Pod, container_id: &str) {
        let sandbox = self.sandbox_of(pod, container_id);
        if self.sandboxes.contains_key(container_id) && !self.clean.contains(container_id) {
            // A set-up this node began without seeing it finish (cut short, or before the sim
            // restarted): undo it first, as a runtime removes a sandbox it did not finish, so
            // that the ADD below is the handle's only allocation.
            if let Err(e) = self.kubelet.calico.del(&sandbox).await {
                let error = format!("tearing down the unfinished sandbox first: {e}");
                return self.sandbox_failed(pod, container_id, &error).await;
            }
            self.clean.insert(container_id.to_owned());
        }
        let mut record = Record {
            namespace: sandbox.namespace.clone(),
            pod: sandbox.pod.clone(),
            uid: sandbox.uid.clone(),
            addresses: None,
        };
        if let Err(e) = self.save(container_id, &record) {
            return self.sandbox_failed(pod, container_id, &e.to_string()).await;
        }
        let families = self.kubelet.cluster.families();
        match self.kubelet.calico.add(&sandbox, families).await {
            Ok(addresses) => {
                record.addresses = Some(addresses.clone());
                if let Err(e) = self.save(container_id, &record) {
                    // The ADD stands; a restart will find the record unfinished and redo it.
                    warn!(pod = pod_label(pod), error = %e, "recording the sandbox's addresses failed");
                }
                self.clean.remove(container_id);
                self.failed.remove(&sandbox.uid);
                self.report_running(pod, container_id, &addresses).await;
            }
            Err(e) => {
                if e.is_calico_error() {
                    self.clean.insert(container_id.to_owned());
                } else {
                    self.clean.remove(container_id);
                }
                self.sandbox_failed(pod, container_id, &e.to_string()).await;
            }
        }
    }

    fn save(&mut self, container_id: &str, record: &Record) -> Result<(), RecordError> {
        self.records.write(container_id, record)?;
        self.sandboxes
            .insert(container_id.to_owned(), record.clone());
        Ok(())
    }

    /// CNI DEL of the sandbox, if the node has one; returns whether it is gone.
    async fn tear_down(&mut self, container_id: &str) -> bool {
        let Some(record) = self.sandboxes.get(container_id).cloned() else {
            return true;
        };
        let sandbox = Sandbox {
            node: self.node.clone(),
            namespace: record.namespace.clone(),
            pod: record.pod.clone(),
            uid: record.uid.clone(),
            container_id: container_id.to_owned(),
        };
        if let Err(e) = self.kubelet.calico.del(&sandbox).await {
            warn!(pod = %format!("{}/{}", record.namespace, record.pod), error = %e, "tearing down the sandbox failed; will retry");
            return false;
        }
        if let Err(e) = self.records.remove(container_id) {
            warn!(error = %e, "removing the sandbox record failed; a restart will tear it down again");
        }
        self.sandboxes.remove(container_id);
        self.clean.remove(container_id);
        info!(pod = %format!("{}/{}", record.namespace, record.pod), node = %self.node, addresses = ?record.addresses, "sandbox down");
        true
    }

    async fn report_running(&mut self, pod: &Pod, container_id: &str, addresses: &[IpAddr]) {
        let uid = uid_of(pod);
        let host_ip = self.node_info().and_then(|n| n.internal_ip);
        let ready = self.kubelet.start_delay.is_zero();
        let patch = pod_status::running(
            pod,
            container_id,
            host_ip,
            addresses,
            Timestamp::now(),
            ready,
        );
        self.patch_status(pod, &patch).await;
        if !ready {
            self.after(self.kubelet.start_delay, Work::ReadyDue(uid));
        }
        info!(pod = pod_label(pod), node = %self.node, ?addresses, "sandbox up");
    }

    async fn settle_readiness(
        &mut self,
        pod: &Pod,
        container_id: &str,
        addresses: &[IpAddr],
        started: Timestamp,
    ) {
        if pod_status::is_ready(pod) {
            return;
        }
        let elapsed = Timestamp::now().duration_since(started).unsigned_abs();
        if elapsed < self.kubelet.start_delay {
            self.after(
                self.kubelet.start_delay - elapsed,
                Work::ReadyDue(uid_of(pod)),
            );
            return;
        }
        let host_ip = self.node_info().and_then(|n| n.internal_ip);
        let patch = pod_status::running(pod, container_id, host_ip, addresses, started, true);
        self.patch_status(pod, &patch).await;
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

    async fn sandbox_failed(&mut self, pod: &Pod, container_id: &str, error: &str) {
        let uid = uid_of(pod);
        let backoff = match self.failed.get(&uid) {
            Some(previous) => (*previous * 2).min(MAX_BACKOFF),
            None => SET_UP_BACKOFF,
        };
        self.failed.insert(uid.clone(), backoff);
        self.after(backoff, Work::Again(uid.clone()));
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

    /// The stop delay has passed: tear the sandbox down, then complete the deletion.
    async fn stop(&mut self, uid: &str) {
        self.runs.remove(uid);
        if !self.tear_down(&pod_status::container_id(uid)).await {
            self.after(TEARDOWN_RETRY_DELAY, Work::StopDue(uid.to_owned()));
            return;
        }
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
                self.after(TEARDOWN_RETRY_DELAY, Work::StopDue(uid.to_owned()));
            }
        }
    }

    async fn gone(&mut self, uid: &str) {
        self.pods.remove(uid);
        self.failed.remove(uid);
        self.stopping.remove(uid);
        self.reported.retain(|(u, _)| u != uid);
        if let Some(run) = self.runs.remove(uid) {
            // Deleted outright: no grace period is left to honour.
            run.stop(Duration::ZERO);
        }
        if !self.tear_down(&pod_status::container_id(uid)).await {
            self.after(TEARDOWN_RETRY_DELAY, Work::CollectSandboxes);
        }
    }

    /// Sandboxes of pods that no longer exist are torn down, as a kubelet does with such
    /// sandboxes when it starts.
    async fn collect_sandboxes(&mut self) {
        let orphans: Vec<String> = self
            .sandboxes
            .iter()
            .filter(|(_, record)| !self.pods.contains_key(&record.uid))
            .map(|(container_id, _)| container_id.clone())
            .collect();
        let mut all_gone = true;
        for container_id in orphans {
            all_gone &= self.tear_down(&container_id).await;
        }
        if !all_gone {
            self.after(TEARDOWN_RETRY_DELAY, Work::CollectSandboxes);
        }
    }
}
