//! The sim's nodes: registered as a kubelet registers its node (created, labelled, status Ready
//! with the capacity kube-scheduler fits pods into), and read back into what the kubelet needs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use futures::{StreamExt as _, TryStreamExt as _, stream};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use thiserror::Error;

use crate::cluster::NodeInfo;

/// Node registrations in flight at once.
const CONCURRENT_REGISTRATIONS: usize = 16;

#[derive(Debug, Error)]
#[error("registering node {node}: {source}")]
pub struct RegistrationError {
    node: String,
    #[source]
    source: kube::Error,
}

/// What the sim needs of a node.
pub fn info(node: &Node) -> NodeInfo {
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        internal_ip: node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|addresses| addresses.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse().ok()),
    }
}

/// A node's InternalIP: in 198.18.0.0/15 (reserved for benchmarking, so it meets no pool), offset
/// by a hash of the prefix so that sims sharing a cluster rarely collide.
pub fn internal_ip(prefix: &str, index: usize) -> IpAddr {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let prefix_hash = prefix
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let offset = (prefix_hash % 32) * 4096 + (index as u32 % 4095) + 1;
    IpAddr::V4(Ipv4Addr::from(base + offset))
}

/// The `kubernetes.io/hostname` a kubelet on this node would report: the short host name. A node
/// name may be a 253-character DNS name; a label value has at most 63 characters and ends with
/// a letter or digit.
fn hostname(node: &str) -> String {
    let short = node.split('.').next().unwrap_or(node);
    let cut = &short[..short.len().min(63)];
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

fn labels(name: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), hostname(name)),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("beta.kubernetes.io/arch".to_owned(), "amd64".to_owned()),
    ]);
    labels.extend(extra.clone());
    labels
}

/// The status a healthy kubelet reports.
fn ready_status(name: &str, ip: IpAddr) -> Value {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let condition = |kind: &str, ok: bool, reason: &str, message: &str| {
        json!({"type": kind, "status": if ok { "True" } else { "False" }, "reason": reason,
               "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    // kube-scheduler fits pods into this. Pods without requests count as 100m CPU and 200 MB when
    // it scores nodes, so a modest size keeps the spread of a Deployment even; 250 pods per node
    // is more than any test or benchmark places on one.
    let resources =
        json!({"cpu": "8", "memory": "32Gi", "pods": "250", "ephemeral-storage": "100Gi"});
    json!({"status": {
        "conditions": [
            condition("MemoryPressure", false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", true, "KubeletReady", "kubelet is posting ready status (calico-sim)"),
        ],
        "addresses": [{"type": "InternalIP", "address": ip.to_string()}, {"type": "Hostname", "address": name}],
        "capacity": resources,
        "allocatable": resources,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"machineID": name, "systemUUID": name, "bootID": name,
                     "kernelVersion": "6.1.0-sim", "osImage": "calico-sim",
                     "containerRuntimeVersion": "containerd://1.7.0-sim",
                     "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                     "operatingSystem": "linux", "architecture": "amd64"},
    }})
}

/// Creates the node if missing, adds the sim's labels (keeping others'), and reports it Ready.
async fn register_one(
    api: &Api<Node>,
    name: &str,
    index: usize,
    prefix: &str,
    extra_labels: &BTreeMap<String, String>,
) -> Result<(), kube::Error> {
    let labels = labels(name, extra_labels);
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            let patch = json!({"metadata": {"labels": labels}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Err(e) => return Err(e),
    }
    let status = ready_status(name, internal_ip(prefix, index));
    let node = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    clear_condition_taints(api, &node).await
}

/// Taints the API server puts on a new node (TaintNodesByCondition) and the node lifecycle
/// controller removes once the node reports Ready. Test control planes run without that
/// controller, so the sim, which reports the node Ready, removes them itself.
const CONDITION_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

async fn clear_condition_taints(api: &Api<Node>, node: &Node) -> Result<(), kube::Error> {
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let kept: Vec<_> = taints
        .iter()
        .filter(|t| !CONDITION_TAINTS.contains(&t.key.as_str()))
        .cloned()
        .collect();
    if kept.len() == taints.len() {
        return Ok(());
    }
    // Conditional on the version read, so that a taint added meanwhile is not lost.
    let patch = json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": kept},
    });
    let name = node.metadata.name.as_deref().unwrap_or("");
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_conflict() => {
            let fresh = api.get(name).await?;
            Box::pin(clear_condition_taints(api, &fresh)).await
        }
        Err(e) => Err(e),
    }
}

/// Registers every node of the sim.
pub async fn register(
    client: Client,
    names: &[String],
    prefix: &str,
    extra_labels: &BTreeMap<String, String>,
) -> Result<(), RegistrationError> {
    let api: Api<Node> = Api::all(client);
    stream::iter(names.iter().enumerate())
        .map(|(index, name)| {
            let api = &api;
            async move {
                register_one(api, name, index, prefix, extra_labels)
                    .await
                    .map_err(|source| RegistrationError {
                        node: name.clone(),
                        source,
                    })
            }
        })
        .buffer_unordered(CONCURRENT_REGISTRATIONS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ips_stay_in_the_benchmark_range_and_differ_per_node() {
        let range: ipnet::IpNet = "198.18.0.0/15".parse().unwrap();
        let a = internal_ip("sim-", 0);
        let b = internal_ip("sim-", 1);
        assert_ne!(a, b);
        assert!(range.contains(&a) && range.contains(&b));
        assert!(range.contains(&internal_ip("zzzzzzzz-", 4094)));
    }

    #[test]
    fn node_info_reads_labels_and_address() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "sim-0", "labels": {"a": "b"}, "annotations": {"x": "y"}},
            "status": ready_status("sim-0", "198.18.0.1".parse().unwrap())["status"]
        }))
        .unwrap();
        let info = info(&node);
        assert_eq!(info.name, "sim-0");
        assert_eq!(info.labels["a"], "b");
        assert_eq!(info.internal_ip, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(
            labels("sim-0", &BTreeMap::new())["kubernetes.io/hostname"],
            "sim-0"
        );
    }

    #[test]
    fn hostnames_are_short_valid_label_values() {
        assert_eq!(hostname("sim-0"), "sim-0");
        assert_eq!(hostname("node-1.example.internal"), "node-1");
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(190));
        assert_eq!(long.len(), 253);
        assert_eq!(hostname(&long), "a".repeat(62));
    }
}
