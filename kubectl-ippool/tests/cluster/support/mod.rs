//! Shared by the cluster tests: running the plugin binary against a control plane, and seeding
//! Calico IPAM objects, nodes and pods directly (for states calico-sim would never produce).

pub mod migration;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use harness::ControlPlane;
use ipnet::IpNet;
use ippool_cluster::api::{CalicoKind, ServedApis, Serving};
use ippool_cluster::client::CalicoClient;
use ippool_cluster::resources::CalicoResource as _;
use ippool_ipam::allocation::{self, AffinityState};
use ippool_ipam::names;
use ippool_ipam::plan::PolicyVersion;
use ippool_rules::model::{IpPool, IpPoolSpec, ObjectMeta};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::conditions;
use serde_json::json;

/// A control plane for one test.
pub fn control_plane() -> ControlPlane {
    ControlPlane::start().expect("control plane starts")
}

/// The outcome of one run of the plugin.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with both outputs unless the exit status is `code`.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit status {} (wanted {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `kubectl-ippool --kubeconfig <cp> ARGS…`.
pub fn ippool(cp: &ControlPlane, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-ippool"))
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl-ippool runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn net(cidr: &str) -> IpNet {
    cidr.parse().expect("test CIDR")
}

pub fn pool(name: &str, cidr: &str, block_size: i64, disabled: bool) -> IpPool {
    IpPool {
        api_version: "crd.projectcalico.org/v1".to_owned(),
        kind: "IPPool".to_owned(),
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: IpPoolSpec {
            cidr: Some(cidr.to_owned()),
            block_size: Some(block_size),
            disabled: Some(disabled),
            node_selector: Some("all()".to_owned()),
            ..IpPoolSpec::default()
        },
    }
}

/// Calico's objects as the test control plane serves them: plain `crd.projectcalico.org/v1` CRDs.
pub fn crds(client: &Client) -> CalicoClient {
    CalicoClient::new(
        client.clone(),
        ServedApis::new(Serving::Crds, Some(PolicyVersion::V1)),
    )
}

pub async fn create_pool(client: &Client, pool: &IpPool) -> IpPool {
    crds(client)
        .create(CalicoKind::Pool, pool.name(), pool, false)
        .await
        .expect("pool created")
}

/// An owner of an address in a block, as Calico's CNI and calico-node record it.
pub enum Holder<'a> {
    Pod {
        namespace: &'a str,
        pod: &'a str,
        node: &'a str,
        container: &'a str,
    },
    Tunnel {
        node: &'a str,
    },
}

impl Holder<'_> {
    fn handle(&self) -> String {
        match self {
            Holder::Pod { container, .. } => names::pod_handle_id(container),
            Holder::Tunnel { node } => format!("ipip-tunnel-addr-{node}"),
        }
    }

    fn secondary(&self) -> BTreeMap<String, String> {
        match self {
            Holder::Pod {
                namespace,
                pod,
                node,
                ..
            } => BTreeMap::from([
                ("namespace".to_owned(), (*namespace).to_owned()),
                ("pod".to_owned(), (*pod).to_owned()),
                ("node".to_owned(), (*node).to_owned()),
            ]),
            Holder::Tunnel { node } => BTreeMap::from([
                ("node".to_owned(), (*node).to_owned()),
                ("type".to_owned(), "ipipTunnelAddress".to_owned()),
            ]),
        }
    }
}

/// Creates a block (affine to `node` when given, with its BlockAffinity in `affinity_state`),
/// assigns one address per holder, and creates the holders' handles. Returns the addresses.
pub async fn seed_block(
    client: &Client,
    cidr: &str,
    node: Option<&str>,
    affinity_state: Option<AffinityState>,
    holders: &[Holder<'_>],
) -> Vec<IpAddr> {
    let net = net(cidr);
    let mut block =
        allocation::new_block(net, node.map(names::host_affinity), 1).expect("block builds");
    let mut addresses = Vec::new();
    for holder in holders {
        addresses.extend(
            allocation::assign(&mut block, 1, &holder.handle(), &holder.secondary())
                .expect("block has room"),
        );
    }
    let calico = crds(client);
    calico
        .create(CalicoKind::Block, block.name(), &block, false)
        .await
        .expect("block created");
    if let (Some(node), Some(state)) = (node, affinity_state) {
        create_affinity(client, node, cidr, state).await;
    }
    for holder in holders {
        let handle = allocation::new_handle(
            &holder.handle(),
            BTreeMap::from([(net.trunc().to_string(), 1)]),
        );
        calico
            .create(CalicoKind::Handle, handle.name(), &handle, false)
            .await
            .expect("handle created");
    }
    addresses
}

pub async fn create_affinity(client: &Client, node: &str, cidr: &str, state: AffinityState) {
    let affinity = allocation::new_block_affinity(node, &net(cidr), state);
    crds(client)
        .create(CalicoKind::Affinity, affinity.name(), &affinity, false)
        .await
        .expect("affinity created");
}

pub async fn create_handle(client: &Client, handle_id: &str, block_cidr: &str) {
    let handle = allocation::new_handle(handle_id, BTreeMap::from([(block_cidr.to_owned(), 1)]));
    crds(client)
        .create(CalicoKind::Handle, handle.name(), &handle, false)
        .await
        .expect("handle created");
}

/// A Node object (no kubelet behind it; the node lifecycle controller is off, so it stays).
pub async fn create_node(client: &Client, name: &str) {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
    }))
    .expect("node object");
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
}

/// Records `address` as the node's IPIP tunnel address, as calico-node's allocator does.
pub async fn annotate_tunnel(client: &Client, node: &str, address: IpAddr) {
    let patch = json!({"metadata": {"annotations": {"projectcalico.org/IPv4IPIPTunnelAddr": address.to_string()}}});
    Api::<Node>::all(client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("node annotated");
}

/// A namespace whose default ServiceAccount exists (pod admission needs it).
pub async fn create_namespace(client: &Client, name: &str) {
    if name != "default" {
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    harness::wait_for(
        &accounts,
        "default",
        conditions::is_created(),
        Duration::from_secs(60),
    )
    .await
    .expect("default service account appears");
}

/// A pod bound to `node` holding `address` as Calico's CNI records it (annotations), with an
/// optional controller owner reference (kind, name). It stays Pending: nothing runs it.
pub async fn create_pod(
    client: &Client,
    namespace: &str,
    name: &str,
    node: &str,
    address: Option<IpAddr>,
    container: &str,
    owner: Option<(&str, &str)>,
) -> Pod {
    let mut annotations = serde_json::Map::new();
    annotations.insert(names::ANNOTATION_CONTAINER_ID.to_owned(), json!(container));
    if let Some(address) = address {
        annotations.insert(
            names::ANNOTATION_POD_IPS.to_owned(),
            json!(format!("{address}/32")),
        );
    }
    let owner_references = owner.map(|(kind, owner)| {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner,
                "uid": "00000000-0000-0000-0000-000000000001", "controller": true}])
    });
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations,
                     "ownerReferences": owner_references.unwrap_or(json!([]))},
        "spec": {"nodeName": node, "automountServiceAccountToken": false,
                 "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]},
    }))
    .expect("pod object");
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created")
}

/// The names of every object of a kind, sorted.
pub async fn names_of(client: &Client, kind: CalicoKind) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        metadata: ObjectMeta,
    }
    let mut names: Vec<String> = crds(client)
        .list::<Named>(kind)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.metadata.name.unwrap_or_default())
        .collect();
    names.sort();
    names
}
