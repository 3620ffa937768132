//! A control plane with a calico-sim, and the steps cluster tests take on it: Calico pools and
//! IPAM configuration written through the API (`crd.projectcalico.org/v1`, as the plugin's users
//! write them), namespaces, Deployments and DaemonSets, and waits for their pods, driven by watches.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::{ControlPlane, Sim, SimOptions, wait_for_all};

/// How long a cluster test waits for pods, events or nodes (generous: the machine is shared).
pub const TIMEOUT: Duration = Duration::from_secs(180);

/// A control plane with a calico-sim on it.
pub struct SimCluster {
    // Field order is drop order: the sim stops before its control plane.
    pub sim: Sim,
    pub cp: ControlPlane,
    pub client: Client,
}

impl SimCluster {
    /// Starts a control plane and a sim with `nodes` nodes and otherwise default options.
    pub async fn start(nodes: usize) -> SimCluster {
        SimCluster::start_with(SimOptions {
            nodes,
            ..SimOptions::default()
        })
        .await
    }

    /// Starts a control plane and a sim.
    pub async fn start_with(options: SimOptions) -> SimCluster {
        let cp = ControlPlane::start().expect("control plane");
        let sim = Sim::start(&cp, options).expect("calico-sim");
        let client = cp.client().await;
        SimCluster { sim, cp, client }
    }
}

fn calico(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("crd.projectcalico.org", "v1", kind),
        plural,
    )
}

fn calico_object(resource: &ApiResource, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": resource.api_version, "kind": resource.kind,
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("a Calico object")
}

fn pools(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &calico("IPPool", "ippools"))
}

pub async fn create_pool(client: &Client, name: &str, spec: Value) {
    let resource = calico("IPPool", "ippools");
    pools(client)
        .create(
            &PostParams::default(),
            &calico_object(&resource, name, spec),
        )
        .await
        .unwrap_or_else(|e| panic!("creating pool {name}: {e}"));
}

pub async fn set_pool_disabled(client: &Client, name: &str, disabled: bool) {
    pools(client)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"disabled": disabled}})),
        )
        .await
        .unwrap_or_else(|e| panic!("setting disabled={disabled} on pool {name}: {e}"));
}

pub async fn delete_pool(client: &Client, name: &str) {
    pools(client)
        .delete(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting pool {name}: {e}"));
}

/// Creates or updates the IPAMConfig `default` with `strictAffinity`.
pub async fn set_ipam_config(client: &Client, strict_affinity: bool) {
    let resource = calico("IPAMConfig", "ipamconfigs");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let spec = json!({"strictAffinity": strict_affinity, "autoAllocateBlocks": true});
    let object = calico_object(&resource, "default", spec);
    api.patch(
        "default",
        &PatchParams::apply("ippool-harness").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("writing IPAMConfig default: {e}"));
}

pub async fn create_namespace(client: &Client, name: &str, labels: Value, annotations: Value) {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels, "annotations": annotations}
    }))
    .expect("a namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
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
    .expect("a Deployment")
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
        .unwrap_or_else(|e| panic!("creating a Deployment in {namespace}: {e}"));
}

pub async fn scale(client: &Client, namespace: &str, name: &str, replicas: i32) {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap_or_else(|e| panic!("scaling {namespace}/{name}: {e}"));
}

pub async fn create_daemonset(client: &Client, namespace: &str, name: &str) {
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "agent", "image": "registry.invalid/agent:1"}]}}},
    }))
    .expect("a DaemonSet");
    Api::<DaemonSet>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &ds)
        .await
        .unwrap_or_else(|e| panic!("creating DaemonSet {namespace}/{name}: {e}"));
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
    wait_for_all(
        &api,
        watcher::Config::default().labels(labels),
        &format!("{count} Running, Ready pods {labels} in {namespace}"),
        |pods: &[Pod]| pods.len() == count && pods.iter().all(is_running_and_ready),
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until a pod whose name starts with `prefix` has a FailedCreatePodSandBox event whose
/// message contains `expected` (earlier attempts may have failed for other reasons), and returns
/// that message.
pub async fn wait_sandbox_failure(
    client: &Client,
    namespace: &str,
    prefix: &str,
    expected: &str,
) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let matching = |e: &Event| {
        e.involved_object
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with(prefix))
            && e.message.as_deref().is_some_and(|m| m.contains(expected))
    };
    let events = wait_for_all(
        &api,
        watcher::Config::default().fields("reason=FailedCreatePodSandBox"),
        &format!("a FailedCreatePodSandBox event for {prefix}* in {namespace} saying '{expected}'"),
        |events: &[Event]| events.iter().any(matching),
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    events
        .into_iter()
        .find(matching)
        .and_then(|e| e.message)
        .unwrap_or_default()
}

/// The Node annotations in which Calico's datastore keeps a node's tunnel addresses (written by
/// calico-node's allocator after it has allocated the address in IPAM).
pub const IPIP_TUNNEL_ANNOTATION: &str = "projectcalico.org/IPv4IPIPTunnelAddr";
pub const VXLAN_TUNNEL_ANNOTATION: &str = "projectcalico.org/IPv4VXLANTunnelAddr";

/// Waits until the tunnel address each of `nodes` carries in `annotation` (None: it has none)
/// satisfies `ok`, and returns those addresses by node. The allocator runs beside the pods, so a
/// test that counts tunnel addresses waits for them here first.
pub async fn wait_tunnel_addresses(
    client: &Client,
    nodes: &[String],
    annotation: &str,
    what: &str,
    ok: impl Fn(Option<IpAddr>) -> bool,
) -> BTreeMap<String, Option<IpAddr>> {
    let address = |node: &Node| -> Option<IpAddr> {
        node.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotation))
            .and_then(|a| a.parse().ok())
    };
    let listed = wait_for_all(
        &Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        what,
        |listed: &[Node]| {
            nodes.iter().all(|name| {
                listed
                    .iter()
                    .find(|n| n.metadata.name.as_ref() == Some(name))
                    .is_some_and(|n| ok(address(n)))
            })
        },
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    listed
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            nodes.contains(&name).then(|| (name, address(n)))
        })
        .collect()
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
        .unwrap_or_else(|e| panic!("listing pods: {e}"))
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
        .unwrap_or_else(|e| panic!("labelling node {node}: {e}"));
}

/// A pod template part that pins the pods to one node (by its hostname label).
pub fn pinned(node: &str) -> Value {
    json!({"spec": {"nodeSelector": {"kubernetes.io/hostname": node}}})
}

/// `kubectl --kubeconfig <cp> ARGS…` (the cluster's own kubectl) with `stdin`; panics with its
/// stderr unless it succeeds, and returns its stdout.
pub fn kubectl(cp: &ControlPlane, args: &[&str], stdin: &str) -> String {
    let mut child = std::process::Command::new(cp.binaries().join("kubectl"))
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stdin.as_bytes())
        .unwrap_or_else(|e| panic!("stdin to kubectl {args:?}: {e}"));
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("kubectl writes UTF-8")
}

/// Applies manifest documents (as a `v1` List) with kubectl, as a user would apply the file.
pub fn apply(cp: &ControlPlane, documents: &[Value]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": documents});
    kubectl(cp, &["apply", "-f", "-"], &list.to_string());
}

/// The image of the first container of the manifest's Deployment (what a sim `--image` maps).
pub fn deployment_image(documents: &[Value]) -> String {
    documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str())
        .expect("the manifest's Deployment names an image")
        .to_owned()
}
