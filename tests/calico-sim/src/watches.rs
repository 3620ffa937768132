//! The watches that feed the sim: Calico's pools, blocks, affinities and IPAM config, namespaces,
//! nodes and pods. Each keeps the cache current and tells the workers what may need doing.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use ippool_cluster::names;
use ippool_cluster::resources::CalicoApi;
use ippool_rules::model::{BlockAffinity, IpPool, IpamBlock, IpamConfig};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use tokio::sync::mpsc;
use tracing::warn;

use crate::cluster::{Cluster, NamespaceInfo, Source};
use crate::kubelet::{Work, WorkerHandle};
use crate::nodes;
use crate::scheduling::{self, Load, SchedulerWork};

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

/// Who to tell about changes.
pub struct Dispatch {
    pub workers: HashMap<String, WorkerHandle>,
    pub scheduler: mpsc::UnboundedSender<SchedulerWork>,
    pub load: Arc<Load>,
}

impl Dispatch {
    fn pools_changed(&self) {
        for worker in self.workers.values() {
            worker.send(Work::Tunnels);
            worker.retry_failed();
        }
    }

    fn retry_everywhere(&self) {
        for worker in self.workers.values() {
            worker.retry_failed();
        }
    }

    fn node_changed(&self, name: &str) {
        if let Some(worker) = self.workers.get(name) {
            worker.send(Work::Tunnels);
            worker.retry_failed();
        }
        let _ = self.scheduler.send(SchedulerWork::NodesChanged);
    }
}

pub async fn pools(client: Client, cluster: Arc<Cluster>, dispatch: Arc<Dispatch>) {
    let api: CalicoApi<IpPool> = CalicoApi::new(client);
    follow("ippools", api.watch(watcher::Config::default()), |change| {
        match change {
            Change::Listed(pools) => {
                cluster.set_pools(pools);
                cluster.mark_synced(Source::Pools);
            }
            Change::Applied(pool) => cluster.put_pool(pool),
            Change::Deleted(pool) => cluster.drop_pool(pool.name()),
        }
        dispatch.pools_changed();
    })
    .await
}

pub async fn config(client: Client, cluster: Arc<Cluster>, dispatch: Arc<Dispatch>) {
    let api: CalicoApi<IpamConfig> = CalicoApi::new(client);
    let is_default = |c: &IpamConfig| c.metadata.name.as_deref() == Some(names::IPAM_CONFIG_NAME);
    follow(
        "ipamconfigs",
        api.watch(watcher::Config::default()),
        |change| {
            match change {
                Change::Listed(configs) => {
                    cluster.set_config(configs.into_iter().find(is_default).map(|c| c.spec));
                    cluster.mark_synced(Source::Config);
                }
                Change::Applied(c) if is_default(&c) => cluster.set_config(Some(c.spec)),
                Change::Deleted(c) if is_default(&c) => cluster.set_config(None),
                _ => return,
            }
            dispatch.retry_everywhere();
        },
    )
    .await
}

pub async fn blocks(client: Client, cluster: Arc<Cluster>, dispatch: Arc<Dispatch>) {
    let api: CalicoApi<IpamBlock> = CalicoApi::new(client);
    follow(
        "ipamblocks",
        api.watch(watcher::Config::default()),
        |change| match change {
            Change::Listed(blocks) => {
                cluster.relist_blocks(blocks);
                cluster.mark_synced(Source::Blocks);
            }
            Change::Applied(block) => cluster.observe_block(block),
            Change::Deleted(block) => {
                cluster.observe_block_deleted(&block);
                // A deleted block frees address space for pods waiting on it.
                dispatch.retry_everywhere();
            }
        },
    )
    .await
}

pub async fn affinities(client: Client, cluster: Arc<Cluster>) {
    let api: CalicoApi<BlockAffinity> = CalicoApi::new(client);
    follow(
        "blockaffinities",
        api.watch(watcher::Config::default()),
        |change| match change {
            Change::Listed(affinities) => {
                cluster.relist_affinities(affinities);
                cluster.mark_synced(Source::Affinities);
            }
            Change::Applied(a) => cluster.observe_affinity(a),
            Change::Deleted(a) => cluster.observe_affinity_deleted(&a),
        },
    )
    .await
}

fn namespace_info(ns: &Namespace) -> NamespaceInfo {
    NamespaceInfo {
        labels: ns.metadata.labels.clone().unwrap_or_default(),
        annotations: ns.metadata.annotations.clone().unwrap_or_default(),
    }
}

pub async fn namespaces(client: Client, cluster: Arc<Cluster>, dispatch: Arc<Dispatch>) {
    let api: Api<Namespace> = Api::all(client);
    let events = watcher(api, watcher::Config::default()).default_backoff();
    follow("namespaces", events, |change| match change {
        Change::Listed(list) => {
            cluster.set_namespaces(
                list.iter()
                    .map(|n| (n.name_any(), namespace_info(n)))
                    .collect(),
            );
            cluster.mark_synced(Source::Namespaces);
            dispatch.retry_everywhere();
        }
        Change::Applied(ns) => {
            if cluster.put_namespace(ns.name_any(), namespace_info(&ns)) {
                dispatch.retry_everywhere();
            }
        }
        Change::Deleted(ns) => cluster.drop_namespace(&ns.name_any()),
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

/// Routes pod events: pending pods to the scheduler, pods of the sim's nodes to their workers;
/// pods of other nodes are none of this sim's business.
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
                worker.send(Work::PodsListed);
            }
        }
        Change::Applied(pod) => route(&dispatch, &mut placed, pod),
        Change::Deleted(pod) => {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let _ = dispatch.scheduler.send(SchedulerWork::Settled(uid.clone()));
            if let Some(node) = placed.get(&uid).cloned() {
                gone(&dispatch, &mut placed, &uid, &node);
            }
        }
    })
    .await
}

fn route(dispatch: &Dispatch, placed: &mut HashMap<String, String>, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if scheduling::wants_scheduling(&pod) {
        let _ = dispatch
            .scheduler
            .send(SchedulerWork::Pending(Box::new(pod)));
        return;
    }
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let Some(worker) = dispatch.workers.get(&node) else {
        return;
    };
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if finished {
        dispatch.load.remove(&uid);
    } else {
        dispatch.load.place(&node, &uid);
    }
    placed.insert(uid, node);
    worker.send(Work::Pod(Box::new(pod)));
}

fn gone(dispatch: &Dispatch, placed: &mut HashMap<String, String>, uid: &str, node: &str) {
    placed.remove(uid);
    dispatch.load.remove(uid);
    if let Some(worker) = dispatch.workers.get(node) {
        worker.send(Work::PodGone(uid.to_owned()));
    }
}
