//! The API server's objects as the snapshot holds them. Only the fields the analyses use are
//! decoded (serde skips the rest, `managedFields` above all), so thousands of pods, blocks and
//! handles stay small; the cluster crate lists objects straight into these types.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ippool_rules::model::{
    BlockAffinity, BlockAffinitySpec, IpamBlock, IpamBlockSpec, IpamHandle, IpamHandleSpec,
    ObjectMeta,
};
use serde::Deserialize;

use super::{NamespaceRecord, NodeRecord, Owner, OwnerKind, PodInfo};

/// Node annotations where calico-node records tunnel addresses.
const TUNNEL_ANNOTATIONS: &[&str] = &[
    "projectcalico.org/IPv4IPIPTunnelAddr",
    "projectcalico.org/IPv4VXLANTunnelAddr",
    "projectcalico.org/IPv6VXLANTunnelAddr",
    "projectcalico.org/IPv4WireguardInterfaceAddr",
    "projectcalico.org/IPv6WireguardInterfaceAddr",
];

/// A Calico object read without the metadata the analyses never use (`managedFields` above all):
/// thousands of blocks and handles would otherwise each carry it as a JSON tree.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lean<S> {
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

/// The blocks as read.
pub fn blocks(objects: Vec<Lean<IpamBlockSpec>>) -> Vec<IpamBlock> {
    objects
        .into_iter()
        .map(|o| IpamBlock {
            api_version: o.api_version,
            kind: o.kind,
            metadata: o.metadata.into(),
            spec: o.spec,
        })
        .collect()
}

/// The block affinities as read.
pub fn affinities(objects: Vec<Lean<BlockAffinitySpec>>) -> Vec<BlockAffinity> {
    objects
        .into_iter()
        .map(|o| BlockAffinity {
            api_version: o.api_version,
            kind: o.kind,
            metadata: o.metadata.into(),
            spec: o.spec,
        })
        .collect()
}

/// The IPAM handles as read.
pub fn handles(objects: Vec<Lean<IpamHandleSpec>>) -> Vec<IpamHandle> {
    objects
        .into_iter()
        .map(|o| IpamHandle {
            api_version: o.api_version,
            kind: o.kind,
            metadata: o.metadata.into(),
            spec: o.spec,
        })
        .collect()
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
pub struct SlimPod {
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
pub struct SlimReplicaSet {
    metadata: SlimMeta,
}

#[derive(Deserialize)]
pub struct SlimNode {
    metadata: SlimMeta<BTreeMap<String, String>>,
    #[serde(default)]
    spec: SlimNodeSpec,
    #[serde(default)]
    status: SlimNodeStatus,
}

#[derive(Deserialize, Default)]
struct SlimNodeStatus {
    /// Quantities as strings; only `pods` (the kubelet's maxPods) is read.
    #[serde(default)]
    capacity: BTreeMap<String, String>,
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
pub struct SlimNamespace {
    metadata: SlimMeta<NamespaceAnnotations>,
}

/// Pods with their owners, a ReplicaSet's controlling Deployment resolved from `replica_sets`.
pub fn pods(pods: Vec<SlimPod>, replica_sets: Vec<SlimReplicaSet>) -> Vec<PodInfo> {
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
    pods.into_iter()
        .map(|pod| pod_info(pod, &deployments))
        .collect()
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

/// A node with its tunnel addresses and pod CIDRs.
pub fn node_record(node: SlimNode) -> NodeRecord {
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
        max_pods: node
            .status
            .capacity
            .get("pods")
            .and_then(|p| p.parse().ok()),
    }
}

/// A namespace with its pool annotations.
pub fn namespace_record(ns: SlimNamespace) -> NamespaceRecord {
    NamespaceRecord {
        name: ns.metadata.name,
        labels: ns.metadata.labels,
        ipv4_pools: ns.metadata.annotations.ipv4_pools,
        ipv6_pools: ns.metadata.annotations.ipv6_pools,
    }
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
