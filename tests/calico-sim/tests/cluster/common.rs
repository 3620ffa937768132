//! Shared steps of the calico-sim cluster tests: a control plane with a sim, pools and workloads
//! created through the API, waits driven by watches, and the check that the IPAM objects are
//! exactly what Calico's datastore would hold for the pods that exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use harness::{ControlPlane, Sim, SimOptions};
use ipnet::IpNet;
use ippool_cluster::allocation;
use ippool_cluster::names;
use ippool_cluster::resources::CalicoApi;
use ippool_rules::cidr::Family;
use ippool_rules::model::{BlockAffinity, IpPool, IpamBlock, IpamConfig, IpamHandle};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};

pub const TIMEOUT: Duration = Duration::from_secs(180);

/// A control plane with a calico-sim on it.
pub struct Env {
    // Field order is drop order: the sim stops before its control plane.
    pub sim: Sim,
    pub cp: ControlPlane,
    pub client: Client,
}

/// Starts a control plane and a sim.
pub async fn start(options: SimOptions) -> Env {
    let cp = ControlPlane::start().expect("control plane");
    let sim = Sim::start(&cp, options).expect("calico-sim");
    let client = cp.client().await;
    Env { sim, cp, client }
}

pub fn sim_options(nodes: usize) -> SimOptions {
    SimOptions {
        nodes,
        ..SimOptions::default()
    }
}

// --- Calico objects ---

pub fn pool_object(name: &str, spec: Value) -> IpPool {
    serde_json::from_value(json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("pool")
}

pub async fn create_pool(client: &Client, name: &str, spec: Value) -> IpPool {
    CalicoApi::<IpPool>::new(client.clone())
        .create(&pool_object(name, spec))
        .await
        .unwrap_or_else(|e| panic!("creating pool {name}: {e}"))
}

pub async fn set_pool_disabled(client: &Client, name: &str, disabled: bool) {
    let api = CalicoApi::<IpPool>::new(client.clone());
    let mut pool = api.get(name).await.unwrap().expect("pool exists");
    pool.spec.disabled = Some(disabled);
    api.replace(&pool).await.unwrap();
}

pub async fn delete_pool(client: &Client, name: &str) {
    CalicoApi::<IpPool>::new(client.clone())
        .delete(name, None)
        .await
        .unwrap();
}

/// Creates or updates the IPAMConfig `default`.
pub async fn set_ipam_config(client: &Client, strict_affinity: bool) {
    let api = CalicoApi::<IpamConfig>::new(client.clone());
    match api.get("default").await.unwrap() {
        Some(mut config) => {
            config.spec.strict_affinity = strict_affinity;
            api.replace(&config).await.unwrap();
        }
        None => {
            let config: IpamConfig = serde_json::from_value(json!({
                "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMConfig",
                "metadata": {"name": "default"},
                "spec": {"strictAffinity": strict_affinity, "autoAllocateBlocks": true},
            }))
            .unwrap();
            api.create(&config).await.unwrap();
        }
    }
}

/// Every IPAM object of the cluster.
#[derive(Debug)]
pub struct Ipam {
    pub blocks: Vec<IpamBlock>,
    pub affinities: Vec<BlockAffinity>,
    pub handles: Vec<IpamHandle>,
}

impl Ipam {
    pub async fn read(client: &Client) -> Ipam {
        Ipam {
            blocks: CalicoApi::new(client.clone()).list().await.unwrap(),
            affinities: CalicoApi::new(client.clone()).list().await.unwrap(),
            handles: CalicoApi::new(client.clone()).list().await.unwrap(),
        }
    }

    /// Address → (handle ID, secondary attributes) of every allocation.
    pub fn allocations(&self) -> BTreeMap<IpAddr, (String, BTreeMap<String, String>)> {
        let mut out = BTreeMap::new();
        for block in &self.blocks {
            for a in allocation::allocations(block).expect("well-formed block") {
                let previous = out.insert(
                    a.address,
                    (
                        a.handle_id().unwrap_or_default().to_owned(),
                        a.attribute.secondary.clone().unwrap_or_default(),
                    ),
                );
                assert!(previous.is_none(), "{} allocated in two blocks", a.address);
            }
        }
        out
    }

    /// Addresses held by a handle.
    pub fn handle_addresses(&self, handle_id: &str) -> Vec<IpAddr> {
        self.allocations()
            .into_iter()
            .filter(|(_, (h, _))| h == handle_id)
            .map(|(a, _)| a)
            .collect()
    }
}

// --- workloads ---

pub async fn create_namespace(client: &Client, name: &str, labels: Value, annotations: Value) {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels, "annotations": annotations}
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// A Deployment of `replicas` pods labelled `app=<name>`; `template` is merged into the pod
/// template (`metadata`/`spec` keys).
pub fn deployment(name: &str, replicas: i32, template: Value) -> Deployment {
    let mut pod_template = json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}],
                 "terminationGracePeriodSeconds": 30},
    });
    merge(&mut pod_template, template);
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": pod_template},
    }))
    .unwrap()
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

pub async fn create_deployment(client: &Client, namespace: &str, deployment: &Deployment) {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), deployment)
        .await
        .unwrap();
}

pub async fn scale(client: &Client, namespace: &str, name: &str, replicas: i32) {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

pub async fn create_daemonset(client: &Client, namespace: &str, name: &str) {
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "agent", "image": "registry.invalid/agent:1"}]}}},
    }))
    .unwrap();
    Api::<DaemonSet>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &ds)
        .await
        .unwrap();
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && pod.metadata.deletion_timestamp.is_none()
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until exactly `count` pods match `labels` in `namespace`, all Running and Ready (and
/// none terminating), and returns them.
pub async fn wait_running(
    client: &Client,
    namespace: &str,
    labels: &str,
    count: usize,
) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    harness::wait_for_all(
        &api,
        watcher::Config::default().labels(labels),
        &format!("{count} Running, Ready pods {labels} in {namespace}"),
        |pods: &[Pod]| pods.len() == count && pods.iter().all(is_running_and_ready),
        TIMEOUT,
    )
    .await
    .unwrap()
}

/// Waits until a pod whose name starts with `prefix` has a FailedCreatePodSandBox event whose
/// message contains `expected` (earlier attempts may have failed for other reasons while the
/// sim's caches caught up).
pub async fn wait_sandbox_failure(client: &Client, namespace: &str, prefix: &str, expected: &str) {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    harness::wait_for_all(
        &api,
        watcher::Config::default().fields("reason=FailedCreatePodSandBox"),
        &format!("a FailedCreatePodSandBox event for {prefix}* in {namespace} saying '{expected}'"),
        |events: &[Event]| {
            events.iter().any(|e| {
                e.involved_object
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(prefix))
                    && e.message.as_deref().is_some_and(|m| m.contains(expected))
            })
        },
        TIMEOUT,
    )
    .await
    .unwrap();
}

pub fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().map(|i| i.ip.parse().expect("pod IP")).collect())
        .unwrap_or_default()
}

pub fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

pub async fn all_pods(client: &Client) -> Vec<Pod> {
    Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

pub async fn label_node(client: &Client, node: &str, labels: Value) {
    Api::<Node>::all(client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": labels}})),
        )
        .await
        .unwrap();
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Checks that the IPAM objects are exactly what Calico's datastore holds for these running pods:
/// one allocation per pod address under handle `k8s-pod-network.<containerID>` with the pod's
/// attributes, annotations agreeing with the status, distinct addresses, handles counting their
/// blocks, blocks and affinities named and labelled as Calico names them. Returns the IPAM
/// objects for further checks.
pub async fn assert_calico_consistent(client: &Client, pods: &[Pod]) -> Ipam {
    let ipam = Ipam::read(client).await;
    let allocations = ipam.allocations();
    let mut seen: HashMap<IpAddr, String> = HashMap::new();
    for pod in pods {
        let name = pod.name_any();
        let ips = pod_ips(pod);
        assert!(!ips.is_empty(), "pod {name} has no address");
        for ip in &ips {
            if let Some(other) = seen.insert(*ip, name.clone()) {
                panic!("{ip} is held by both {other} and {name}");
            }
        }
        let annotations = pod.annotations();
        let container_id = &annotations[names::ANNOTATION_CONTAINER_ID];
        let with_prefix: Vec<String> = ips
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(a) => format!("{a}/32"),
                IpAddr::V6(a) => format!("{a}/128"),
            })
            .collect();
        assert_eq!(
            annotations[names::ANNOTATION_POD_IP],
            with_prefix[0],
            "pod {name}"
        );
        assert_eq!(
            annotations[names::ANNOTATION_POD_IPS],
            with_prefix.join(","),
            "pod {name}"
        );
        let handle_id = names::pod_handle_id(container_id);
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for ip in &ips {
            let (handle, owner) = allocations
                .get(ip)
                .unwrap_or_else(|| panic!("pod {name}'s {ip} has no allocation"));
            assert_eq!(*handle, handle_id, "owner of {ip}");
            assert_eq!(owner[names::ATTRIBUTE_POD], name);
            assert_eq!(owner[names::ATTRIBUTE_NAMESPACE], pod.namespace().unwrap());
            assert_eq!(owner[names::ATTRIBUTE_NODE], node_of(pod));
            assert!(owner.contains_key(names::ATTRIBUTE_TIMESTAMP));
            let block = ipam
                .blocks
                .iter()
                .find(|b| b.cidr().is_some_and(|c| c.contains(ip)))
                .unwrap();
            *counts.entry(block.spec.cidr.clone()).or_default() += 1;
        }
        assert_eq!(
            ipam.handle_addresses(&handle_id).len(),
            ips.len(),
            "pod {name}: every allocation of its handle is one of its addresses"
        );
        let handle = ipam
            .handles
            .iter()
            .find(|h| h.metadata.name.as_deref() == Some(names::handle_name(&handle_id).as_str()))
            .unwrap_or_else(|| panic!("pod {name} has no IPAMHandle {handle_id}"));
        assert_eq!(handle.spec.handle_id, handle_id);
        assert_eq!(handle.spec.block, counts, "IPAMHandle of {name}");
    }
    for block in &ipam.blocks {
        let cidr = block.cidr().unwrap();
        assert_eq!(
            block.metadata.name.as_deref(),
            Some(names::block_name(&cidr).as_str())
        );
        assert_eq!(
            block.spec.allocations.len(),
            ippool_rules::cidr::address_count(&cidr) as usize
        );
        let free = block
            .spec
            .allocations
            .iter()
            .filter(|a| a.is_none())
            .count();
        assert_eq!(
            block.spec.unallocated.len(),
            free,
            "block {cidr} unallocated list"
        );
        if let Some(node) = allocation::affine_node(block) {
            let name = names::block_affinity_name(node, &cidr);
            let affinity = ipam
                .affinities
                .iter()
                .find(|a| a.metadata.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| {
                    panic!("block {cidr} affine to {node} has no BlockAffinity {name}")
                });
            assert_eq!(affinity.spec.state, "confirmed");
            assert_eq!(affinity.spec.node, node);
            assert_eq!(affinity.spec.cidr, cidr.to_string());
            assert_eq!(affinity.spec.deleted, "false");
            assert_eq!(
                affinity.metadata.labels[names::LABEL_HOSTNAME_HASH],
                names::hostname_hash(node)
            );
            assert_eq!(affinity.metadata.labels[names::LABEL_AFFINITY_TYPE], "host");
            assert_eq!(
                affinity.metadata.labels[names::LABEL_IP_VERSION],
                names::ip_version(Family::of(&cidr))
            );
        }
    }
    for handle in &ipam.handles {
        assert_eq!(
            handle.metadata.name.as_deref(),
            Some(names::handle_name(&handle.spec.handle_id).as_str())
        );
        let held = ipam.handle_addresses(&handle.spec.handle_id).len() as i64;
        assert_eq!(
            held,
            handle.spec.block.values().sum::<i64>(),
            "IPAMHandle {}",
            handle.spec.handle_id
        );
    }
    ipam
}

/// Pod handles (`k8s-pod-network.*`) in the blocks.
pub fn pod_handles(ipam: &Ipam) -> BTreeSet<String> {
    ipam.allocations()
        .into_values()
        .map(|(h, _)| h)
        .filter(|h| names::container_id_of_pod_handle(h).is_some())
        .collect()
}
