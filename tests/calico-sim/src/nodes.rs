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

/// The range of node addresses: reserved for benchmarking, so it meets no pool.
pub const NODE_RANGE: &str = "198.18.0.0/15";

/// A node's InternalIP: in [`NODE_RANGE`], consecutive per node from an offset hashed from the
/// prefix and the cluster (its API server's URL), so that sims sharing a cluster, or clusters
/// sharing this host (whose pods run on these addresses), rarely collide.
pub fn internal_ip(prefix: &str, cluster: &str, index: usize) -> IpAddr {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let size = 1u32 << 17;
    let seed = prefix
        .bytes()
        .chain(cluster.bytes())
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let offset = seed.wrapping_add(index as u32) % (size - 2) + 1;
    IpAddr::V4(Ipv4Addr::from(base + offset))
}

/// Makes every address of [`NODE_RANGE`] local to this host, as 127.0.0.0/8 is (a `local` route
/// on the loopback interface), so that pods running on a node's address can listen on it and
/// anything here reach them. Loopback addresses themselves will not do: the API server refuses
/// them in EndpointSlices. The route is shared by every sim of the host and left in place.
pub fn make_node_addresses_local() -> std::io::Result<()> {
    let output = std::process::Command::new("ip")
        .args([
            "route", "replace", "local", NODE_RANGE, "dev", "lo", "table", "local",
        ])
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ip route replace local {NODE_RANGE} dev lo table local: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
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
    cluster: &str,
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
    let status = ready_status(name, internal_ip(prefix, cluster, index));
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
    cluster: &str,
    extra_labels: &BTreeMap<String, String>,
) -> Result<(), RegistrationError> {
    let api: Api<Node> = Api::all(client);
    stream::iter(names.iter().enumerate())
        .map(|(index, name)| {
            let api = &api;
            async move {
                register_one(api, name, index, prefix, cluster, extra_labels)
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
        let range: ipnet::IpNet = NODE_RANGE.parse().unwrap();
        let a = internal_ip("sim-", "https://127.0.0.1:6443", 0);
        let b = internal_ip("sim-", "https://127.0.0.1:6443", 1);
        assert_ne!(a, b);
        assert_ne!(a, internal_ip("sim-", "https://127.0.0.1:6444", 0));
        assert!(range.contains(&a) && range.contains(&b));
        for index in [0, 4094, 200_000] {
            let ip = internal_ip("zzzzzzzz-", "u", index);
            assert!(range.contains(&ip) && ip != range.network() && ip != range.broadcast());
        }
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
