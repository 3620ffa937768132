//! A point-in-time read of everything the pool commands reason about: pools, IPAM blocks,
//! affinities, handles, and the pods, nodes and namespaces they belong to. All collections are
//! read at once (pods, nodes and ReplicaSets in pages of 500); the analysis modules
//! ([`crate::usage`], [`crate::check`], [`crate::gc`]) are pure functions of it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use ippool_rules::context::{ClusterCidrs, ClusterContext, NodeInfo};
use ippool_rules::model::{
    BlockAffinity, BlockAffinitySpec, IpPool, IpamBlock, IpamBlockSpec, IpamHandle, IpamHandleSpec,
    ObjectMeta,
};
use kube::Client;
use serde::Deserialize;

use crate::api::{CalicoKind, ServedApis};
use crate::request_error::RequestError;
use crate::rest::{CalicoClient, list_all};

/// Which collections to read; the rest stay empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub pools: bool,
    pub blocks: bool,
    pub affinities: bool,
    pub handles: bool,
    /// Pods, with their ReplicaSets so that Deployment owners are known.
    pub pods: bool,
    pub nodes: bool,
    pub namespaces: bool,
}

impl Parts {
    pub const ALL: Parts = Parts {
        pools: true,
        blocks: true,
        affinities: true,
        handles: true,
        pods: true,
        nodes: true,
        namespaces: true,
    };

    /// What the rules can use from the cluster ([`Snapshot::rules_context`]).
    pub const RULES: Parts = Parts {
        pools: true,
        blocks: true,
        affinities: false,
        handles: false,
        pods: true,
        nodes: true,
        namespaces: false,
    };

    /// Pools and blocks only: enough for block-level views.
    pub const POOLS_AND_BLOCKS: Parts = Parts {
        pools: true,
        blocks: true,
        affinities: false,
        handles: false,
        pods: false,
        nodes: false,
        namespaces: false,
    };
}

/// The kind of workload controller a pod belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum OwnerKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    /// A ReplicaSet with no Deployment above it.
    ReplicaSet,
    /// Any other controller kind (as written in the owner reference).
    Other(String),
    /// No controller: a bare pod, gone when deleted.
    Bare,
}

impl OwnerKind {
    pub fn as_str(&self) -> &str {
        match self {
            OwnerKind::Deployment => "Deployment",
            OwnerKind::StatefulSet => "StatefulSet",
            OwnerKind::DaemonSet => "DaemonSet",
            OwnerKind::Job => "Job",
            OwnerKind::CronJob => "CronJob",
            OwnerKind::ReplicaSet => "ReplicaSet",
            OwnerKind::Other(kind) => kind,
            OwnerKind::Bare => "<none>",
        }
    }
}

/// The controller at the top of a pod's owner chain (ReplicaSet → Deployment resolved).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Owner {
    pub kind: OwnerKind,
    /// Empty for bare pods.
    pub name: String,
}

impl Owner {
    pub fn bare() -> Owner {
        Owner {
            kind: OwnerKind::Bare,
            name: String::new(),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            OwnerKind::Bare => f.write_str("<none>"),
            _ => write!(f, "{}/{}", self.kind.as_str(), self.name),
        }
    }
}

/// A pod as the pool commands see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    /// Pod-network addresses: `status.podIPs` and Calico's `cni.projectcalico.org/podIPs`.
    pub addresses: Vec<IpAddr>,
    pub host_network: bool,
    pub phase: String,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    pub creation_timestamp: Option<String>,
    pub terminating: bool,
    pub owner: Owner,
    /// Labels (PodDisruptionBudget selectors, pool namespace/pod selectors).
    pub labels: BTreeMap<String, String>,
    /// `cni.projectcalico.org/containerID`: the pod's IPAM handle is `k8s-pod-network.<id>`.
    pub container_id: Option<String>,
    /// `cni.projectcalico.org/ipv4pools` / `ipv6pools` as written (JSON lists of names or CIDRs).
    pub ipv4_pools: Option<String>,
    pub ipv6_pools: Option<String>,
    /// `cni.projectcalico.org/ipAddrs`: fixed addresses the pod asks for (JSON list).
    pub ip_addrs: Option<String>,
}

impl PodInfo {
    /// Running or about to: not Succeeded/Failed. Finished pods' sandboxes (and addresses) are gone.
    pub fn is_live(&self) -> bool {
        !matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }

    /// Live, on the pod network, with at least one address.
    pub fn holds_addresses(&self) -> bool {
        self.is_live() && !self.host_network && !self.addresses.is_empty()
    }

    /// The IPAM handle Calico's CNI uses for this pod, when its container ID is known.
    pub fn handle_id(&self) -> Option<String> {
        self.container_id
            .as_ref()
            .map(|id| format!("k8s-pod-network.{id}"))
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A node: its labels (for selectors) and the tunnel addresses Calico recorded on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// From `projectcalico.org/IPv4IPIPTunnelAddr` and the other tunnel address annotations.
    pub tunnel_addresses: Vec<IpAddr>,
    /// `spec.podCIDRs` (per-node ranges; usually empty under Calico IPAM).
    pub pod_cidrs: Vec<String>,
}

impl NodeRecord {
    pub fn to_node_info(&self) -> NodeInfo {
        NodeInfo {
            name: self.name.clone(),
            labels: self.labels.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRecord {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `cni.projectcalico.org/ipv4pools` / `ipv6pools` on the namespace, as written.
    pub ipv4_pools: Option<String>,
    pub ipv6_pools: Option<String>,
}

/// Everything read, in one consistent-enough moment (collections are read concurrently, each
/// page-by-page; writers act on resourceVersions, so a stale read loses a conflict rather than
/// doing harm).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub pools: Vec<IpPool>,
    pub blocks: Vec<IpamBlock>,
    pub affinities: Vec<BlockAffinity>,
    pub handles: Vec<IpamHandle>,
    pub pods: Vec<PodInfo>,
    pub nodes: Vec<NodeRecord>,
    pub namespaces: Vec<NamespaceRecord>,
}

/// Node annotations where calico-node records tunnel addresses.
const TUNNEL_ANNOTATIONS: &[&str] = &[
    "projectcalico.org/IPv4IPIPTunnelAddr",
    "projectcalico.org/IPv4VXLANTunnelAddr",
    "projectcalico.org/IPv6VXLANTunnelAddr",
    "projectcalico.org/IPv4WireguardInterfaceAddr",
    "projectcalico.org/IPv6WireguardInterfaceAddr",
];

impl Snapshot {
    /// The rules' view of the cluster: what was read (`parts`) is given, what was not stays `None`
    /// so that rules needing it say it was not checked.
    pub fn rules_context(
        &self,
        parts: Parts,
        cluster_cidrs: Option<ClusterCidrs>,
        service_cidrs: Option<Vec<IpNet>>,
    ) -> ClusterContext {
        ClusterContext {
            pools: parts.pools.then(|| self.pools.clone()),
            blocks: parts.blocks.then(|| self.blocks.clone()),
            cluster_cidrs,
            service_cidrs,
            nodes: parts
                .nodes
                .then(|| self.nodes.iter().map(|n| n.to_node_info()).collect()),
            workloads_present: parts
                .pods
                .then(|| self.pods.iter().any(|p| p.holds_addresses())),
        }
    }

    /// Reads `parts` concurrently: Calico's objects from the API server's watch cache, core
    /// objects from storage page by page (see [`crate::rest::ReadFrom`]).
    pub async fn load(
        client: &Client,
        api: &ServedApis,
        parts: Parts,
    ) -> Result<Snapshot, RequestError> {
        let calico = CalicoClient::new(client.clone(), *api);
        let pools = async {
            if parts.pools {
                calico.list::<IpPool>(CalicoKind::Pool).await
            } else {
                Ok(Vec::new())
            }
        };
        let blocks = async {
            if parts.blocks {
                lean_list(&calico, CalicoKind::Block, |o: Lean<IpamBlockSpec>| {
                    IpamBlock {
                        api_version: o.api_version,
                        kind: o.kind,
                        metadata: o.metadata.into(),
                        spec: o.spec,
                    }
                })
                .await
            } else {
                Ok(Vec::new())
            }
        };
        let affinities = async {
            if parts.affinities {
                lean_list(
                    &calico,
                    CalicoKind::Affinity,
                    |o: Lean<BlockAffinitySpec>| BlockAffinity {
                        api_version: o.api_version,
                        kind: o.kind,
                        metadata: o.metadata.into(),
                        spec: o.spec,
                    },
                )
                .await
            } else {
                Ok(Vec::new())
            }
        };
        let handles = async {
            if parts.handles {
                lean_list(&calico, CalicoKind::Handle, |o: Lean<IpamHandleSpec>| {
                    IpamHandle {
                        api_version: o.api_version,
                        kind: o.kind,
                        metadata: o.metadata.into(),
                        spec: o.spec,
                    }
                })
                .await
            } else {
                Ok(Vec::new())
            }
        };
        let pods = async {
            if parts.pods {
                load_pods(client).await
            } else {
                Ok(Vec::new())
            }
        };
        let nodes = async {
            if parts.nodes {
                load_nodes(client).await
            } else {
                Ok(Vec::new())
            }
        };
        let namespaces = async {
            if parts.namespaces {
                load_namespaces(client).await
            } else {
                Ok(Vec::new())
            }
        };
        let (pools, blocks, affinities, handles, pods, nodes, namespaces) =
            futures::try_join!(pools, blocks, affinities, handles, pods, nodes, namespaces)?;
        Ok(Snapshot {
            pools,
            blocks,
            affinities,
            handles,
            pods,
            nodes,
            namespaces,
        })
    }

    pub fn pool(&self, name: &str) -> Option<&IpPool> {
        self.pools.iter().find(|p| p.name() == name)
    }

    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// A Calico object read without the metadata the analyses never use (`managedFields` above all):
/// thousands of blocks and handles would otherwise each carry it as a JSON tree.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lean<S> {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: LeanMeta,
    spec: S,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LeanMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<String>,
    #[serde(default)]
    deletion_timestamp: Option<String>,
}

impl From<LeanMeta> for ObjectMeta {
    fn from(m: LeanMeta) -> ObjectMeta {
        ObjectMeta {
            name: m.name,
            labels: m.labels,
            resource_version: m.resource_version,
            uid: m.uid,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            ..ObjectMeta::default()
        }
    }
}

async fn lean_list<S: serde::de::DeserializeOwned, T>(
    calico: &CalicoClient,
    kind: CalicoKind,
    convert: impl Fn(Lean<S>) -> T,
) -> Result<Vec<T>, RequestError> {
    Ok(calico
        .list::<Lean<S>>(kind)
        .await?
        .into_iter()
        .map(convert)
        .collect())
}

// Slim projections of core objects: serde skips every field not named here.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta<A = NoAnnotations> {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: A,
    #[serde(default)]
    owner_references: Vec<SlimOwnerRef>,
    #[serde(default)]
    creation_timestamp: Option<String>,
    #[serde(default)]
    deletion_timestamp: Option<String>,
}

#[derive(Deserialize, Default)]
struct NoAnnotations {}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct SlimOwnerRef {
    kind: String,
    name: String,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
struct PodAnnotations {
    #[serde(rename = "cni.projectcalico.org/podIPs")]
    pod_ips: Option<String>,
    #[serde(rename = "cni.projectcalico.org/podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "cni.projectcalico.org/containerID")]
    container_id: Option<String>,
    #[serde(rename = "cni.projectcalico.org/ipv4pools")]
    ipv4_pools: Option<String>,
    #[serde(rename = "cni.projectcalico.org/ipv6pools")]
    ipv6_pools: Option<String>,
    #[serde(rename = "cni.projectcalico.org/ipAddrs")]
    ip_addrs: Option<String>,
}

#[derive(Deserialize, Default)]
struct NamespaceAnnotations {
    #[serde(rename = "cni.projectcalico.org/ipv4pools")]
    ipv4_pools: Option<String>,
    #[serde(rename = "cni.projectcalico.org/ipv6pools")]
    ipv6_pools: Option<String>,
}

#[derive(Deserialize)]
struct SlimPod {
    metadata: SlimMeta<PodAnnotations>,
    #[serde(default)]
    spec: SlimPodSpec,
    #[serde(default)]
    status: SlimPodStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SlimPodSpec {
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    host_network: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SlimPodStatus {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pod_ips: Vec<SlimPodIp>,
    #[serde(default)]
    conditions: Vec<SlimCondition>,
}

#[derive(Deserialize)]
struct SlimCondition {
    #[serde(default, rename = "type")]
    type_: String,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct SlimPodIp {
    #[serde(default)]
    ip: String,
}

#[derive(Deserialize)]
struct SlimReplicaSet {
    metadata: SlimMeta,
}

#[derive(Deserialize)]
struct SlimNode {
    metadata: SlimMeta<BTreeMap<String, String>>,
    #[serde(default)]
    spec: SlimNodeSpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SlimNodeSpec {
    #[serde(default, rename = "podCIDR")]
    pod_cidr: Option<String>,
    #[serde(default, rename = "podCIDRs")]
    pod_cidrs: Vec<String>,
}

#[derive(Deserialize)]
struct SlimNamespace {
    metadata: SlimMeta<NamespaceAnnotations>,
}

async fn load_pods(client: &Client) -> Result<Vec<PodInfo>, RequestError> {
    let (pods, replica_sets) = futures::try_join!(
        list_all::<SlimPod>(client, "/api/v1/pods", "pods"),
        list_all::<SlimReplicaSet>(client, "/apis/apps/v1/replicasets", "replicasets.apps/v1"),
    )?;
    // (namespace, ReplicaSet) → its controlling Deployment, if any.
    let deployments: HashMap<(String, String), String> = replica_sets
        .into_iter()
        .filter_map(|rs| {
            let deployment = controller(&rs.metadata.owner_references)
                .filter(|o| o.kind == "Deployment")?
                .name
                .clone();
            Some(((rs.metadata.namespace, rs.metadata.name), deployment))
        })
        .collect();
    Ok(pods
        .into_iter()
        .map(|pod| pod_info(pod, &deployments))
        .collect())
}

fn controller(refs: &[SlimOwnerRef]) -> Option<&SlimOwnerRef> {
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
}

fn owner_of(
    namespace: &str,
    refs: &[SlimOwnerRef],
    deployments: &HashMap<(String, String), String>,
) -> Owner {
    let Some(reference) = controller(refs) else {
        return Owner::bare();
    };
    let kind = match reference.kind.as_str() {
        "ReplicaSet" => {
            if let Some(deployment) =
                deployments.get(&(namespace.to_owned(), reference.name.clone()))
            {
                return Owner {
                    kind: OwnerKind::Deployment,
                    name: deployment.clone(),
                };
            }
            OwnerKind::ReplicaSet
        }
        "StatefulSet" => OwnerKind::StatefulSet,
        "DaemonSet" => OwnerKind::DaemonSet,
        "Job" => OwnerKind::Job,
        "CronJob" => OwnerKind::CronJob,
        "Deployment" => OwnerKind::Deployment,
        other => OwnerKind::Other(other.to_owned()),
    };
    Owner {
        kind,
        name: reference.name.clone(),
    }
}

/// Parses `10.0.0.5`, `10.0.0.5/32` or a comma-separated list of either.
fn parse_addresses(text: &str) -> impl Iterator<Item = IpAddr> + '_ {
    text.split(',').filter_map(|part| {
        let part = part.trim();
        let addr = part.split_once('/').map_or(part, |(a, _)| a);
        addr.parse().ok()
    })
}

fn pod_info(pod: SlimPod, deployments: &HashMap<(String, String), String>) -> PodInfo {
    let SlimPod {
        metadata,
        spec,
        status,
    } = pod;
    let mut addresses: Vec<IpAddr> = Vec::new();
    let status_ips = status
        .pod_ips
        .iter()
        .map(|ip| ip.ip.as_str())
        .chain(status.pod_ip.as_deref());
    let annotation_ips = metadata
        .annotations
        .pod_ips
        .as_deref()
        .into_iter()
        .chain(metadata.annotations.pod_ip.as_deref());
    for text in status_ips.chain(annotation_ips) {
        for addr in parse_addresses(text) {
            if !addresses.contains(&addr) {
                addresses.push(addr);
            }
        }
    }
    let owner = owner_of(&metadata.namespace, &metadata.owner_references, deployments);
    PodInfo {
        namespace: metadata.namespace,
        name: metadata.name,
        uid: metadata.uid,
        node: spec.node_name.filter(|n| !n.is_empty()),
        addresses,
        host_network: spec.host_network.unwrap_or(false),
        phase: status.phase.unwrap_or_else(|| "Pending".to_owned()),
        ready: status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        creation_timestamp: metadata.creation_timestamp,
        terminating: metadata.deletion_timestamp.is_some(),
        owner,
        labels: metadata.labels,
        container_id: metadata.annotations.container_id.filter(|c| !c.is_empty()),
        ipv4_pools: metadata.annotations.ipv4_pools,
        ipv6_pools: metadata.annotations.ipv6_pools,
        ip_addrs: metadata.annotations.ip_addrs,
    }
}

async fn load_nodes(client: &Client) -> Result<Vec<NodeRecord>, RequestError> {
    let nodes = list_all::<SlimNode>(client, "/api/v1/nodes", "nodes").await?;
    Ok(nodes.into_iter().map(node_record).collect())
}

fn node_record(node: SlimNode) -> NodeRecord {
    let tunnel_addresses = TUNNEL_ANNOTATIONS
        .iter()
        .filter_map(|key| node.metadata.annotations.get(*key))
        .flat_map(|text| parse_addresses(text).collect::<Vec<_>>())
        .collect();
    let mut pod_cidrs = node.spec.pod_cidrs;
    if let Some(cidr) = node.spec.pod_cidr.filter(|c| !c.is_empty())
        && !pod_cidrs.contains(&cidr)
    {
        pod_cidrs.push(cidr);
    }
    NodeRecord {
        name: node.metadata.name,
        labels: node.metadata.labels,
        tunnel_addresses,
        pod_cidrs,
    }
}

async fn load_namespaces(client: &Client) -> Result<Vec<NamespaceRecord>, RequestError> {
    let namespaces = list_all::<SlimNamespace>(client, "/api/v1/namespaces", "namespaces").await?;
    Ok(namespaces
        .into_iter()
        .map(|ns| NamespaceRecord {
            name: ns.metadata.name,
            labels: ns.metadata.labels,
            ipv4_pools: ns.metadata.annotations.ipv4_pools,
            ipv6_pools: ns.metadata.annotations.ipv6_pools,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> HashMap<(String, String), String> {
        HashMap::from([(("shop".to_owned(), "web-5d4f".to_owned()), "web".to_owned())])
    }

    fn pod(value: serde_json::Value) -> PodInfo {
        pod_info(serde_json::from_value(value).unwrap(), &deployments())
    }

    #[test]
    fn pod_projection_reads_addresses_owner_and_handle() {
        let p = pod(json!({
            "metadata": {"name": "web-5d4f-abc", "namespace": "shop", "uid": "u1",
                "annotations": {"cni.projectcalico.org/podIPs": "10.0.0.5/32,fd00::5/128",
                                "cni.projectcalico.org/containerID": "c0ffee",
                                "unrelated": "x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
                                     "uid": "r", "controller": true}]},
            "spec": {"nodeName": "sim-1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }));
        assert!(p.ready);
        assert_eq!(
            p.addresses,
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert_eq!(p.owner.to_string(), "Deployment/web");
        assert_eq!(p.handle_id().as_deref(), Some("k8s-pod-network.c0ffee"));
        assert!(p.holds_addresses());
    }

    #[test]
    fn owners_resolve_by_kind() {
        let with_owner = |kind: &str, name: &str| {
            pod(json!({
                "metadata": {"name": "p", "namespace": "shop",
                    "ownerReferences": [{"kind": kind, "name": name, "controller": true}]},
                "spec": {}, "status": {"phase": "Running"}
            }))
            .owner
        };
        assert_eq!(with_owner("StatefulSet", "db").kind, OwnerKind::StatefulSet);
        assert_eq!(with_owner("DaemonSet", "agent").kind, OwnerKind::DaemonSet);
        assert_eq!(with_owner("Job", "once").kind, OwnerKind::Job);
        // A ReplicaSet no Deployment controls stays a ReplicaSet.
        assert_eq!(
            with_owner("ReplicaSet", "lone").to_string(),
            "ReplicaSet/lone"
        );
        let bare = pod(json!({"metadata": {"name": "b", "namespace": "shop"}}));
        assert_eq!(bare.owner, Owner::bare());
        assert_eq!(bare.phase, "Pending");
        assert!(!bare.holds_addresses());
    }

    #[test]
    fn status_addresses_count_without_calico_annotations() {
        let p = pod(json!({"metadata": {"name": "s", "namespace": "a"},
            "status": {"phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}]}}));
        assert_eq!(p.addresses.len(), 2);
    }

    #[test]
    fn finished_and_host_network_pods_hold_no_addresses() {
        let done = pod(json!({"metadata": {"name": "j", "namespace": "a"},
            "status": {"phase": "Succeeded", "podIP": "10.0.0.9"}}));
        assert!(!done.holds_addresses());
        let host = pod(json!({"metadata": {"name": "h", "namespace": "a"},
            "spec": {"hostNetwork": true}, "status": {"phase": "Running", "podIP": "192.168.1.4"}}));
        assert!(!host.holds_addresses());
    }

    #[test]
    fn node_projection_reads_tunnel_addresses_and_pod_cidrs() {
        let node: SlimNode = serde_json::from_value(json!({
            "metadata": {"name": "sim-1", "labels": {"zone": "a"},
                "annotations": {"projectcalico.org/IPv4IPIPTunnelAddr": "10.0.0.1",
                                "projectcalico.org/IPv4VXLANTunnelAddr": "10.1.0.1"}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
        }))
        .unwrap();
        let record = node_record(node);
        assert_eq!(record.tunnel_addresses.len(), 2);
        assert_eq!(record.pod_cidrs, vec!["10.244.1.0/24".to_owned()]);
        assert_eq!(record.labels.get("zone").map(String::as_str), Some("a"));
    }
}
