//! A point-in-time picture of everything the pool commands reason about: pools, IPAM blocks,
//! affinities, handles, and the pods, nodes and namespaces they belong to. The analysis modules
//! ([`crate::usage`], [`crate::check`], [`crate::gc`]) are pure functions of it; [`decode`] turns
//! the API server's objects into it, and the cluster crate reads them.

pub mod decode;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use ippool_rules::context::{ClusterCidrs, ClusterContext, NodeInfo};
use ippool_rules::model::{BlockAffinity, IpPool, IpamBlock, IpamHandle};

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
    /// Nothing: spell out what to read with `..Parts::NONE`.
    pub const NONE: Parts = Parts {
        pools: false,
        blocks: false,
        affinities: false,
        handles: false,
        pods: false,
        nodes: false,
        namespaces: false,
    };

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
    /// `status.capacity.pods`: the kubelet's maxPods.
    pub max_pods: Option<u64>,
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

/// Everything read, in one consistent-enough moment (the cluster crate reads the collections
/// concurrently, each page by page; writers act on resourceVersions, so a stale read loses a
/// conflict rather than doing harm).
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

    pub fn pool(&self, name: &str) -> Option<&IpPool> {
        self.pools.iter().find(|p| p.name() == name)
    }

    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
