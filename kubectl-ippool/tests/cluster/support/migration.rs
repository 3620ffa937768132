//! What the migrate and resize tests share: a control plane with calico-sim, builders for pools
//! and workloads, running the plugin, and watchers that record what happened while it ran.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use harness::{ControlPlane, ControlPlaneOptions, Expected, Sim, SimOptions, wait_for_all};
use ipnet::IpNet;
use ippool_cluster::resources::{block_affinities, ip_pools, ipam_blocks};
use ippool_rules::model::ApiGroup;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(120);

pub struct TestCluster {
    // Field order is drop order: the sim stops before its control plane. Held, never read.
    _sim: Sim,
    pub client: Client,
    pub cp: ControlPlane,
}

/// A fresh control plane with `nodes` calico-sim nodes.
pub async fn start(nodes: usize, start_delay_ms: u64) -> TestCluster {
    start_with(
        &ControlPlaneOptions::default(),
        SimOptions {
            nodes,
            start_delay_ms,
            ..SimOptions::default()
        },
    )
    .await
}

/// A fresh control plane and calico-sim, configured.
pub async fn start_with(control_plane: &ControlPlaneOptions, sim: SimOptions) -> TestCluster {
    let cp = ControlPlane::start_with(control_plane).expect("control plane");
    let sim = Sim::start(&cp, sim).expect("calico-sim");
    let client = cp.client().await;
    TestCluster {
        _sim: sim,
        client,
        cp,
    }
}

impl TestCluster {
    /// Runs `kubectl-ippool ARGS` against this cluster with `env`.
    pub async fn ippool(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ippool"))
            .args(args)
            .arg("--kubeconfig")
            .arg(self.cp.kubeconfig())
            .env_remove("IPPOOL_FAULT_AT")
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output()
            .await
            .expect("run kubectl-ippool")
    }

    pub fn kubeconfig(&self) -> &std::path::Path {
        self.cp.kubeconfig()
    }
}

/// What the plugin printed on stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The pool a Calico install starts with, as in Calico's guide: 192.168.0.0/16, /26 blocks, IPIP.
pub async fn create_default_pool(client: &Client) {
    create_pool(
        client,
        "default-ipv4-ippool",
        "192.168.0.0/16",
        26,
        "Always",
    )
    .await;
}

pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub async fn create_pool(client: &Client, name: &str, cidr: &str, block_size: i64, ipip: &str) {
    let resource = ip_pools(ApiGroup::CrdV1);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let pool: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"cidr": cidr, "blockSize": block_size, "ipipMode": ipip, "natOutgoing": true,
                 "nodeSelector": "all()"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &pool)
        .await
        .expect("create pool");
}

/// Creates a namespaced object of type `K` from JSON.
pub async fn create<K>(client: &Client, value: Value) -> K
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(value).expect("object JSON");
    let namespace = object
        .meta()
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    Api::<K>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &object)
        .await
        .expect("create object")
}

pub async fn create_namespace(client: &Client, name: &str, annotations: Value) {
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "annotations": annotations}}))
            .unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

fn template(app: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}},
           "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1"}],
                    "terminationGracePeriodSeconds": 0}})
}

pub fn deployment(namespace: &str, name: &str, replicas: i32, strategy: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "strategy": strategy, "template": template(name)}})
}

pub fn stateful_set(namespace: &str, name: &str, replicas: i32, strategy: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": {"app": name}},
                    "updateStrategy": strategy, "template": template(name)}})
}

pub fn daemon_set(namespace: &str, name: &str, strategy: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"selector": {"matchLabels": {"app": name}},
                    "updateStrategy": strategy, "template": template(name)}})
}

pub fn bare_pod(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
           "labels": {"app": name}},
           "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1"}],
                    "terminationGracePeriodSeconds": 0}})
}

/// A PodDisruptionBudget (`policy/v1`).
pub async fn create_budget(client: &Client, namespace: &str, name: &str, app: &str, spec: Value) {
    let resource = ApiResource {
        group: "policy".into(),
        version: "v1".into(),
        api_version: "policy/v1".into(),
        kind: "PodDisruptionBudget".into(),
        plural: "poddisruptionbudgets".into(),
    };
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": app}});
    let budget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        .create(&PostParams::default(), &budget)
        .await
        .expect("create PodDisruptionBudget");
}

pub fn addresses(pod: &Pod) -> Vec<IpAddr> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().filter_map(|i| i.ip.parse().ok()).collect())
        .unwrap_or_default()
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn app(pod: &Pod) -> String {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app"))
        .cloned()
        .unwrap_or_default()
}

/// Waits until every pod in the cluster is Ready with an address and the counts per `app`
/// label are as given.
pub async fn wait_pods(client: &Client, expected: &[(&str, usize)]) -> Vec<Pod> {
    let expected: BTreeMap<String, usize> = expected
        .iter()
        .map(|(a, n)| ((*a).to_owned(), *n))
        .collect();
    wait_for_all(
        &Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        "pods Ready with addresses",
        |pods: &[Pod]| {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for pod in pods {
                if !is_ready(pod) || addresses(pod).is_empty() {
                    return false;
                }
                *counts.entry(app(pod)).or_default() += 1;
            }
            counts == expected
        },
        WAIT,
    )
    .await
    .expect("pods ready")
}

/// The whole cluster after a migration (or resize) into the pool with CIDR `pool`: every pod
/// has an address in `pool`; every pool, block and affinity left is inside some pool and none is
/// in `gone` (when given); blocks in `pool` have `block_size`; no migration lock remains; and
/// calicoctl judges IPAM clean.
pub async fn assert_end_state(c: &TestCluster, gone: Option<&str>, pool: &str, block_size: u8) {
    let client = &c.client;
    let gone: Option<IpNet> = gone.map(|g| g.parse().unwrap());
    let pool: IpNet = pool.parse().unwrap();
    let pods = Api::<Pod>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap();
    for pod in &pods {
        assert!(is_ready(pod), "pod {:?} is Ready", pod.metadata.name);
        for address in addresses(pod) {
            assert!(
                pool.contains(&address),
                "pod {:?} has {address}, outside {pool}",
                pod.metadata.name
            );
        }
    }
    let cidr_of =
        |o: &DynamicObject| -> IpNet { o.data["spec"]["cidr"].as_str().unwrap().parse().unwrap() };
    let pools: Vec<IpNet> =
        Api::<DynamicObject>::all_with(client.clone(), &ip_pools(ApiGroup::CrdV1))
            .list(&Default::default())
            .await
            .unwrap()
            .iter()
            .map(cidr_of)
            .collect();
    let blocks = Api::<DynamicObject>::all_with(client.clone(), &ipam_blocks(ApiGroup::CrdV1))
        .list(&Default::default())
        .await
        .unwrap();
    let affinities =
        Api::<DynamicObject>::all_with(client.clone(), &block_affinities(ApiGroup::CrdV1))
            .list(&Default::default())
            .await
            .unwrap();
    for (what, cidr) in pools
        .iter()
        .map(|c| ("pool", *c))
        .chain(blocks.iter().map(|b| ("block", cidr_of(b))))
        .chain(affinities.iter().map(|a| ("affinity", cidr_of(a))))
    {
        if let Some(gone) = gone {
            assert!(
                !ippool_rules::cidr::overlaps(&cidr, &gone),
                "{what} {cidr} left in {gone}"
            );
        }
        if what != "pool" {
            assert!(
                pools
                    .iter()
                    .any(|p| ippool_rules::cidr::contains_net(p, &cidr)),
                "{what} {cidr} is in no pool (pools: {pools:?})"
            );
        }
        if what == "block" && ippool_rules::cidr::overlaps(&cidr, &pool) {
            assert_eq!(cidr.prefix_len(), block_size, "block {cidr} in {pool}");
        }
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    assert!(
        leases.get_opt("ippool-migration").await.unwrap().is_none(),
        "the migration lock is released"
    );
    c.cp.judge_ipam(&Expected::clean());
}

/// Parses a `-o json` event stream; every line must be one event object.
pub fn events(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON event line ({e}): {line:?}"));
            assert!(event["ts"].is_string(), "{line}");
            assert!(event["event"].is_string(), "{line}");
            event
        })
        .collect()
}

/// Watches every IPPool deletion while a test runs and judges it against the IPAM blocks as they
/// were at that very revision (a list at `resourceVersion` = the deletion's, `Exact`): a pool
/// deleted while a block inside it held an allocation is a violation. Judging at the revision
/// rather than by replaying a watch of the blocks keeps it right when the API server restarts
/// mid-test: a watch resumed after a restart may have to list again and so skip changes. A pool
/// that vanished while the pool watch itself was away is judged against the blocks when it is
/// seen gone (the closest state there is).
pub struct DeletionRecorder {
    judged: Arc<Mutex<Judged>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Judged {
    deleted: usize,
    violations: Vec<String>,
}

/// Allocations held by blocks overlapping `pool`, from the blocks as listed by `params`.
async fn allocations_in(
    blocks: &Api<DynamicObject>,
    pool: &IpNet,
    params: &ListParams,
) -> Result<Vec<(String, usize)>, kube::Error> {
    let listed = blocks.list(params).await?;
    Ok(listed
        .items
        .iter()
        .filter_map(|b| {
            let net: IpNet = b.data["spec"]["cidr"].as_str()?.parse().ok()?;
            let allocated = b.data["spec"]["allocations"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|v| !v.is_null()).count());
            (ippool_rules::cidr::overlaps(pool, &net) && allocated > 0)
                .then(|| (b.metadata.name.clone().unwrap_or_default(), allocated))
        })
        .collect())
}

impl DeletionRecorder {
    pub async fn start(client: &Client) -> DeletionRecorder {
        let judged = Arc::new(Mutex::new(Judged::default()));
        let pools: Api<DynamicObject> = Api::all_with(client.clone(), &ip_pools(ApiGroup::CrdV1));
        let blocks: Api<DynamicObject> =
            Api::all_with(client.clone(), &ipam_blocks(ApiGroup::CrdV1));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1);
        let record = judged.clone();
        let task = tokio::spawn(async move {
            let stream = watcher::watcher(pools, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            let mut known: HashMap<String, IpNet> = HashMap::new();
            let mut relisted: Option<HashMap<String, IpNet>> = None;
            let cidr = |o: &DynamicObject| -> Option<IpNet> {
                o.data["spec"]["cidr"].as_str()?.parse().ok()
            };
            while let Some(event) = stream.next().await {
                // (pool, its CIDR, how the blocks are read, at which moment)
                let mut gone: Vec<(String, IpNet, ListParams, String)> = Vec::new();
                match event {
                    Ok(Event::Init) => relisted = Some(HashMap::new()),
                    Ok(Event::InitApply(o)) => {
                        if let (Some(list), Some(net)) = (relisted.as_mut(), cidr(&o)) {
                            list.insert(o.metadata.name.clone().unwrap_or_default(), net);
                        }
                    }
                    Ok(Event::InitDone) => {
                        let list = relisted.take().unwrap_or_default();
                        for (name, net) in &known {
                            if !list.contains_key(name) {
                                let when = "when seen gone after a relist".to_owned();
                                gone.push((name.clone(), *net, ListParams::default(), when));
                            }
                        }
                        known = list;
                        let _ = ready_tx.try_send(());
                    }
                    Ok(Event::Apply(o)) => {
                        if let Some(net) = cidr(&o) {
                            known.insert(o.metadata.name.clone().unwrap_or_default(), net);
                        }
                    }
                    Ok(Event::Delete(o)) => {
                        let name = o.metadata.name.clone().unwrap_or_default();
                        known.remove(&name);
                        let revision = o.metadata.resource_version.clone().unwrap_or_default();
                        let exact = ListParams::default()
                            .at(&revision)
                            .matching(kube::api::VersionMatch::Exact);
                        if let Some(net) = cidr(&o) {
                            gone.push((name, net, exact, format!("at revision {revision}")));
                        }
                    }
                    Err(_) => {}
                }
                for (name, net, params, when) in gone {
                    let found = allocations_in(&blocks, &net, &params).await;
                    let mut judged = record.lock().unwrap();
                    judged.deleted += 1;
                    match found {
                        Ok(held) => judged.violations.extend(held.into_iter().map(|(block, n)| {
                            format!(
                                "pool {name} ({net}) was deleted while block {block} held {n} \
                                 allocation(s) ({when})"
                            )
                        })),
                        Err(e) => judged.violations.push(format!(
                            "pool {name} ({net}) was deleted and the blocks could not be read \
                             {when}: {e}"
                        )),
                    }
                }
            }
        });
        ready_rx.recv().await;
        DeletionRecorder { judged, task }
    }

    /// How many pools were deleted; panics if one was deleted while a block inside it held an
    /// allocation.
    pub fn check(&self) -> usize {
        let judged = self.judged.lock().unwrap();
        assert!(
            judged.violations.is_empty(),
            "{}",
            judged.violations.join("\n")
        );
        judged.deleted
    }

    /// Every deletion of a pool while a block inside it held an allocation.
    pub fn violations(&self) -> Vec<String> {
        self.judged.lock().unwrap().violations.clone()
    }
}

impl Drop for DeletionRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Records, per `app` label, the fewest Ready pods seen at any moment.
pub struct AvailabilityRecorder {
    least: Arc<Mutex<BTreeMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AvailabilityRecorder {
    pub async fn start(client: &Client) -> AvailabilityRecorder {
        let least = Arc::new(Mutex::new(BTreeMap::new()));
        let record = least.clone();
        let api: Api<Pod> = Api::all(client.clone());
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1);
        let task = tokio::spawn(async move {
            let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            let mut pods: HashMap<String, (String, bool)> = HashMap::new();
            // A relist (at the start, or when a watch cannot resume after the API server
            // restarted) replaces what was known only once it is complete.
            let mut relist: Option<HashMap<String, (String, bool)>> = None;
            let entry = |p: &Pod| {
                (
                    p.metadata.uid.clone().unwrap_or_default(),
                    (app(p), is_ready(p)),
                )
            };
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => relist = Some(HashMap::new()),
                    Ok(Event::InitApply(p)) => {
                        let (uid, state) = entry(&p);
                        relist.get_or_insert_with(HashMap::new).insert(uid, state);
                        continue;
                    }
                    Ok(Event::InitDone) => {
                        pods = relist.take().unwrap_or_default();
                        let _ = ready_tx.try_send(());
                    }
                    Ok(Event::Apply(p)) => {
                        let (uid, state) = entry(&p);
                        pods.insert(uid, state);
                    }
                    Ok(Event::Delete(p)) => {
                        pods.remove(&p.metadata.uid.clone().unwrap_or_default());
                    }
                    Err(_) => continue,
                }
                if relist.is_some() {
                    continue;
                }
                let mut ready: BTreeMap<String, usize> = BTreeMap::new();
                for (app, is_ready) in pods.values() {
                    let count = ready.entry(app.clone()).or_default();
                    if *is_ready {
                        *count += 1;
                    }
                }
                let mut least = record.lock().unwrap();
                for (app, count) in ready {
                    let entry = least.entry(app).or_insert(count);
                    *entry = (*entry).min(count);
                }
            }
        });
        ready_rx.recv().await;
        AvailabilityRecorder { least, task }
    }

    pub fn least(&self) -> BTreeMap<String, usize> {
        self.least.lock().unwrap().clone()
    }
}

impl Drop for AvailabilityRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
