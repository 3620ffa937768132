//! The watches that feed the sim: pods and nodes (its own work), and what can change where a
//! sandbox's address comes from or whether it can have one — Calico's pools, IPAM config and
//! blocks, and namespaces. Calico's plugin reads those itself; the sim only needs to know when to
//! try a failed sandbox again or to run the tunnel allocator.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use tracing::warn;

use crate::cluster::{Cluster, PoolChange, PoolInfo, Source};
use crate::kubelet::{Work, WorkerHandle};
use crate::nodes;
use crate::tunnels::TunnelHandle;

/// A change seen by a watch.
enum Change<T> {
    /// The complete set, after the first list or a relist.
    Listed(Vec<T>),
    Applied(T),
    Deleted(T),
}

/// Folds a watcher's events into changes, buffering a (re)list until it is complete.
async fn follow<T, E: Display>(
    what: &str,
    events: impl Stream<Item = Result<watcher::Event<T>, E>>,
    mut on_change: impl FnMut(Change<T>),
) {
    let mut events = std::pin::pin!(events);
    let mut listing: Option<Vec<T>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listing = Some(Vec::new()),
            Ok(watcher::Event::InitApply(o)) => listing.get_or_insert_default().push(o),
            Ok(watcher::Event::InitDone) => {
                on_change(Change::Listed(listing.take().unwrap_or_default()))
            }
            Ok(watcher::Event::Apply(o)) => on_change(Change::Applied(o)),
            Ok(watcher::Event::Delete(o)) => on_change(Change::Deleted(o)),
            Err(e) => warn!(watch = what, error = %e, "watch error; it resumes by itself"),
        }
    }
}

/// A Calico resource of the Kubernetes datastore (`crd.projectcalico.org/v1`).
fn calico_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("crd.projectcalico.org", "v1", kind),
        plural,
    )
}

/// Who to tell about changes: each node's kubelet worker and tunnel allocator.
pub struct Dispatch {
    pub workers: HashMap<String, WorkerHandle>,
    pub tunnels: HashMap<String, TunnelHandle>,
}

impl Dispatch {
    fn pools_changed(&self, change: PoolChange) {
        if change.tunnels {
            for tunnels in self.tunnels.values() {
                tunnels.reconcile();
            }
        }
        self.retry_everywhere();
    }

    fn retry_everywhere(&self) {
        for worker in self.workers.values() {
            worker.retry_failed();
        }
    }

    fn node_changed(&self, name: &str) {
        if let Some(tunnels) = self.tunnels.get(name) {
            tunnels.reconcile();
        }
        if let Some(worker) = self.workers.get(name) {
            worker.retry_failed();
        }
    }
}

pub async fn pools(client: Client, cluster: Arc<Cluster>, dispatch: Arc<Dispatch>) {
    let api: Api<DynamicObject> = Api::all_with(client, &calico_resource("IPPool", "ippools"));
    let events = watcher(api, watcher::Config::default()).default_backoff();
    follow("ippools", events, |change| {
        let change = match change {
            Change::Listed(pools) => {
                let change = cluster.set_pools(
                    pools
                        .iter()
                        .map(|p| (p.name_any(), PoolInfo::of(p)))
                        .collect(),
                );
                cluster.mark_synced(Source::Pools);
                change
            }
            Change::Applied(pool) => cluster.put_pool(pool.name_any(), PoolInfo::of(&pool)),
            Change::Deleted(pool) => cluster.drop_pool(&pool.name_any()),
        };
        dispatch.pools_changed(change);
    })
    .await
}

/// Any change of the IPAM configuration (strictAffinity, maxBlocksPerHost, …) may unblock pods.
pub async fn ipam_config(client: Client, dispatch: Arc<Dispatch>) {
    let api: Api<PartialObjectMeta<DynamicObject>> =
        Api::all_with(client, &calico_resource("IPAMConfig", "ipamconfigs"));
    let events = watcher(api, watcher::Config::default()).default_backoff();
    follow(
        "ipamconfigs",
        events,
        |_: Change<PartialObjectMeta<DynamicObject>>| dispatch.retry_everywhere(),
    )
    .await
}

/// A deleted block frees address space for pods waiting on it.
pub async fn blocks(client: Client, dispatch: Arc<Dispatch>) {
    let api: Api<PartialObjectMeta<DynamicObject>> =
        Api::all_with(client, &calico_resource("IPAMBlock", "ipamblocks"));
    let events = watcher(api, watcher::Config::default()).default_backoff();
    follow("ipamblocks", events, |change| {
        if let Change::Deleted(_) = change {
            dispatch.retry_everywhere();
        }
    })
    .await
}

type Labelled = (BTreeMap<String, String>, BTreeMap<String, String>);

/// Namespaces' labels (namespaceSelector) and annotations (pool annotations) choose pools.
pub async fn namespaces(client: Client, dispatch: Arc<Dispatch>) {
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let mut known: HashMap<String, Labelled> = HashMap::new();
    let view = |ns: &PartialObjectMeta<Namespace>| -> Labelled {
        (ns.labels().clone(), ns.annotations().clone())
    };
    follow("namespaces", events, |change| match change {
        Change::Listed(list) => {
            known = list.iter().map(|n| (n.name_any(), view(n))).collect();
            dispatch.retry_everywhere();
        }
        Change::Applied(ns) => {
            if known.insert(ns.name_any(), view(&ns)).as_ref() != Some(&view(&ns)) {
                dispatch.retry_everywhere();
            }
        }
        Change::Deleted(ns) => {
            known.remove(&ns.name_any());
        }
    })
    .await
}

pub async fn nodes(client: Client, cluster: Arc<Cluster>, dispatch: Arc<Dispatch>) {
    let api: Api<Node> = Api::all(client);
    let ours = |n: &Node| dispatch.workers.contains_key(&n.name_any());
    let events = watcher(api, watcher::Config::default()).default_backoff();
    follow("nodes", events, |change| match change {
        Change::Listed(list) => {
            cluster.set_nodes(
                list.iter()
                    .filter(|n| ours(n))
                    .map(|n| (n.name_any(), nodes::info(n)))
                    .collect(),
            );
            cluster.mark_synced(Source::Nodes);
            for name in dispatch.workers.keys() {
                dispatch.node_changed(name);
            }
        }
        Change::Applied(node) if ours(&node) && cluster.put_node(nodes::info(&node)) => {
            dispatch.node_changed(&node.name_any());
        }
        Change::Deleted(node) if ours(&node) => cluster.drop_node(&node.name_any()),
        _ => {}
    })
    .await
}

/// Routes pods bound to the sim's nodes to their workers; pods of other nodes (and pods the
/// scheduler has not bound yet) are none of this sim's business.
pub async fn pods(client: Client, dispatch: Arc<Dispatch>) {
    let api: Api<Pod> = Api::all(client);
    // managedFields are most of a pod's size and the sim never reads them.
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|pod| pod.managed_fields_mut().clear());
    // UID → node of the sim's pods, to tell workers about pods that vanished during a relist.
    let mut placed: HashMap<String, String> = HashMap::new();
    follow("pods", events, |change| match change {
        Change::Listed(list) => {
            let seen: HashSet<String> =
                list.iter().filter_map(|p| p.metadata.uid.clone()).collect();
            for pod in list {
                route(&dispatch, &mut placed, pod);
            }
            let vanished: Vec<(String, String)> = placed
                .iter()
                .filter(|(uid, _)| !seen.contains(*uid))
                .map(|(uid, node)| (uid.clone(), node.clone()))
                .collect();
            for (uid, node) in vanished {
                gone(&dispatch, &mut placed, &uid, &node);
            }
            for worker in dispatch.workers.values() {
                worker.send(Work::CollectSandboxes);
            }
        }
        Change::Applied(pod) => route(&dispatch, &mut placed, pod),
        Change::Deleted(pod) => {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if let Some(node) = placed.get(&uid).cloned() {
                gone(&dispatch, &mut placed, &uid, &node);
            }
        }
    })
    .await
}

fn route(dispatch: &Dispatch, placed: &mut HashMap<String, String>, pod: Pod) {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let Some(worker) = dispatch.workers.get(&node) else {
        return;
    };
    placed.insert(pod.metadata.uid.clone().unwrap_or_default(), node);
    worker.send(Work::Pod(Box::new(pod)));
}

fn gone(dispatch: &Dispatch, placed: &mut HashMap<String, String>, uid: &str, node: &str) {
    placed.remove(uid);
    if let Some(worker) = dispatch.workers.get(node) {
        worker.send(Work::PodGone(uid.to_owned()));
    }
}
