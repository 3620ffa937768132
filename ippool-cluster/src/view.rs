//! A watch-fed view of the cluster's IP pools and IPAM blocks, read as an
//! `ippool_rules::context::ClusterContext` snapshot, and of IPAMConfig's block limit.
//!
//! What is watched follows how Calico is served ([`Serving`]): pools and blocks in
//! `crd.projectcalico.org/v1` with the plain CRDs; with Calico's API server, pools in
//! `projectcalico.org/v3` too — the v1 objects seen through another group, so the two are merged by
//! name (v3 wins) — and blocks in v1; with Calico 3.32's native v3 CRDs, pools and blocks in v3.
//!
//! Block events arrive with every pod start and stop, while pool admission requests are rare: the
//! snapshot is therefore rebuilt lazily, on the first read after a change, and shared as an `Arc`
//! until the next change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt as _};
use ipnet::IpNet;
use ippool_ipam::names::container_id_of_pod_handle;
use ippool_rules::context::{ClusterCidrs, ClusterContext};
use ippool_rules::model::{ApiGroup, IpPool, IpamBlock, IpamConfig};
use kube::Client;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{ApiDiscoveryError, CalicoKind, ServedApis, Serving};
use crate::client::CalicoClient;
use crate::request_error::RequestError;
use crate::resources::CalicoResource;

/// What the view adds to the watched objects: CIDRs found by [`crate::discovery`] or given as flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaticContext {
    pub cluster_cidrs: Option<ClusterCidrs>,
    pub service_cidrs: Option<Vec<IpNet>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot find out how the cluster serves Calico's resources: {0}")]
    Discovery(#[source] RequestError),
}

/// Objects of one watched resource. `pending` collects a (re)list until it is complete, so that a
/// relist never shows a half-filled view.
struct Store<T> {
    items: BTreeMap<String, T>,
    pending: Option<BTreeMap<String, T>>,
    synced: bool,
}

impl<T: CalicoResource> Store<T> {
    fn new() -> Self {
        Store {
            items: BTreeMap::new(),
            pending: None,
            synced: false,
        }
    }

    /// Applies one watch event; returns whether the visible objects changed.
    fn apply(&mut self, event: watcher::Event<T>) -> bool {
        match event {
            watcher::Event::Init => {
                self.pending = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(object) => {
                let pending = self.pending.get_or_insert_with(BTreeMap::new);
                pending.insert(object.name().to_owned(), object);
                false
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.pending.take() {
                    self.items = listed;
                }
                self.synced = true;
                true
            }
            watcher::Event::Apply(object) => {
                self.items.insert(object.name().to_owned(), object);
                true
            }
            watcher::Event::Delete(object) => self.items.remove(object.name()).is_some(),
        }
    }
}

struct Stores {
    pools_v1: Store<IpPool>,
    pools_v3: Store<IpPool>,
    /// Which pool groups are watched; a store not watched stays empty.
    watch_v1: bool,
    watch_v3: bool,
    blocks: Store<IpamBlock>,
    /// Not part of being synced: the rules do not need it, and a webhook without the permission to
    /// read it still admits (its block-limit metric stays at zero).
    ipam_configs: Store<IpamConfig>,
    /// Rebuilt on the first read after a change.
    snapshot: Option<Arc<ClusterContext>>,
}

impl Stores {
    fn new(serving: Serving) -> Stores {
        Stores {
            pools_v1: Store::new(),
            pools_v3: Store::new(),
            watch_v1: serving != Serving::NativeV3,
            watch_v3: serving != Serving::Crds,
            blocks: Store::new(),
            ipam_configs: Store::new(),
            snapshot: None,
        }
    }

    fn synced(&self) -> bool {
        (!self.watch_v1 || self.pools_v1.synced)
            && (!self.watch_v3 || self.pools_v3.synced)
            && self.blocks.synced
    }

    fn pool_count(&self) -> usize {
        let v3 = &self.pools_v3.items;
        v3.len()
            + self
                .pools_v1
                .items
                .keys()
                .filter(|name| !v3.contains_key(*name))
                .count()
    }

    fn build(&self, statics: &StaticContext) -> ClusterContext {
        let synced = self.synced();
        let pools = synced.then(|| {
            let mut merged: BTreeMap<&str, &IpPool> = self
                .pools_v1
                .items
                .iter()
                .map(|(name, pool)| (name.as_str(), pool))
                .collect();
            merged.extend(
                self.pools_v3
                    .items
                    .iter()
                    .map(|(name, pool)| (name.as_str(), pool)),
            );
            merged.into_values().cloned().collect()
        });
        let blocks = synced.then(|| self.blocks.items.values().cloned().collect());
        let workloads_present = synced.then(|| self.blocks.items.values().any(holds_pod_address));
        ClusterContext {
            pools,
            blocks,
            cluster_cidrs: statics.cluster_cidrs.clone(),
            service_cidrs: statics.service_cidrs.clone(),
            nodes: None,
            workloads_present,
        }
    }
}

/// Whether any address in the block belongs to a pod (Calico's CNI handle), as opposed to a
/// node's tunnel address. Pods are not watched: their addresses in the blocks answer the question.
fn holds_pod_address(block: &IpamBlock) -> bool {
    let spec = &block.spec;
    spec.allocations.iter().flatten().any(|&index| {
        usize::try_from(index)
            .ok()
            .and_then(|i| spec.attributes.get(i))
            .and_then(|a| a.handle_id.as_deref())
            .is_some_and(|handle| container_id_of_pod_handle(handle).is_some())
    })
}

struct Shared {
    stores: Mutex<Stores>,
    statics: StaticContext,
    synced: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stores> {
        // A panic while holding the lock cannot leave a store half-updated in a way that matters
        // more than stopping the view would: keep serving.
        self.stores.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watch-fed view. Dropping it stops its watches.
pub struct ClusterView {
    shared: Arc<Shared>,
    pool_groups: Vec<ApiGroup>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView")
            .field("pool_groups", &self.pool_groups)
            .field("synced", &self.has_synced())
            .finish_non_exhaustive()
    }
}

impl ClusterView {
    /// Asks the API server how it serves Calico's resources, then starts the watches. A cluster
    /// with no Calico API yet is watched as plain CRDs: the view stays unsynced until they appear.
    /// Returns at once; see [`ClusterView::has_synced`] and [`ClusterView::wait_synced`].
    pub async fn start(client: Client, statics: StaticContext) -> Result<ClusterView, ViewError> {
        let serving = match ServedApis::discover(&client).await {
            Ok(apis) => apis.serving(),
            Err(ApiDiscoveryError::NoCalico) => Serving::Crds,
            Err(ApiDiscoveryError::Request(e)) => return Err(ViewError::Discovery(e)),
        };
        Ok(Self::start_with(client, statics, serving))
    }

    /// Starts the watches for the given way of serving, without discovery.
    pub fn start_with(client: Client, statics: StaticContext, serving: Serving) -> ClusterView {
        let stores = Stores::new(serving);
        let (watch_v1, watch_v3) = (stores.watch_v1, stores.watch_v3);
        let shared = Arc::new(Shared {
            stores: Mutex::new(stores),
            statics,
            synced: watch::Sender::new(false),
        });
        let calico = CalicoClient::new(client.clone(), ServedApis::new(serving, None));
        let mut pool_groups = Vec::new();
        let mut tasks = Vec::new();
        if watch_v1 {
            pool_groups.push(ApiGroup::CrdV1);
            let v1 = CalicoClient::new(client, ServedApis::new(Serving::Crds, None));
            tasks.push(spawn_watch(&shared, &v1, CalicoKind::Pool, |s| {
                &mut s.pools_v1
            }));
        }
        if watch_v3 {
            pool_groups.push(ApiGroup::V3);
            tasks.push(spawn_watch(&shared, &calico, CalicoKind::Pool, |s| {
                &mut s.pools_v3
            }));
        }
        tasks.push(spawn_watch(&shared, &calico, CalicoKind::Block, |s| {
            &mut s.blocks
        }));
        tasks.push(spawn_watch(&shared, &calico, CalicoKind::IpamConfig, |s| {
            &mut s.ipam_configs
        }));
        ClusterView {
            shared,
            pool_groups,
            tasks,
        }
    }

    /// The API groups whose pools are watched.
    pub fn pool_groups(&self) -> &[ApiGroup] {
        &self.pool_groups
    }

    /// True once every watch has listed its resource completely (stays true across relists).
    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until [`ClusterView::has_synced`].
    pub async fn wait_synced(&self) {
        let mut rx = self.shared.synced.subscribe();
        // The sender lives in `self.shared`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// The cluster as the rules see it. Until synced, `pools` and `blocks` are `None`, so the rules
    /// that need them are skipped (and say so) rather than run against a partial list.
    pub fn context(&self) -> Arc<ClusterContext> {
        let mut stores = self.shared.lock();
        if let Some(snapshot) = &stores.snapshot {
            return Arc::clone(snapshot);
        }
        let snapshot = Arc::new(stores.build(&self.shared.statics));
        stores.snapshot = Some(Arc::clone(&snapshot));
        snapshot
    }

    /// IPAMConfig's `maxBlocksPerHost` (0: no limit, or not seen).
    pub fn max_blocks_per_host(&self) -> u64 {
        let stores = self.shared.lock();
        stores
            .ipam_configs
            .items
            .get("default")
            .map_or(0, IpamConfig::max_blocks_per_host)
    }

    /// Pools (merged across groups) and blocks currently in the view.
    pub fn counts(&self) -> (usize, usize) {
        let stores = self.shared.lock();
        (stores.pool_count(), stores.blocks.items.len())
    }
}

impl Drop for ClusterView {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn spawn_watch<T: CalicoResource>(
    shared: &Arc<Shared>,
    calico: &CalicoClient,
    kind: CalicoKind,
    store: fn(&mut Stores) -> &mut Store<T>,
) -> JoinHandle<()> {
    let shared = Arc::clone(shared);
    let what = calico.api().resource_name(kind);
    let events = calico.watch(kind, watcher::Config::default());
    tokio::spawn(drive(shared, what, events, store))
}

async fn drive<T: CalicoResource>(
    shared: Arc<Shared>,
    what: String,
    events: impl Stream<Item = Result<watcher::Event<T>, RequestError>>,
    store: fn(&mut Stores) -> &mut Store<T>,
) {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let mut stores = shared.lock();
                if store(&mut stores).apply(event) {
                    stores.snapshot = None;
                }
                let synced = stores.synced();
                drop(stores);
                if synced && !*shared.synced.borrow() {
                    tracing::info!(resource = %what, "cluster view synced");
                    shared.synced.send_replace(true);
                }
            }
            // The watcher relists and resumes by itself (with backoff); until then the view keeps
            // what it last saw, as an informer does.
            Err(error) => tracing::warn!(resource = %what, %error, "watch error; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(name: &str, cidr: &str, api_version: &str) -> IpPool {
        serde_json::from_value(json!({
            "apiVersion": api_version, "kind": "IPPool",
            "metadata": {"name": name}, "spec": {"cidr": cidr}
        }))
        .unwrap()
    }

    fn stores(v3: bool) -> Stores {
        Stores::new(if v3 {
            Serving::ApiServer
        } else {
            Serving::Crds
        })
    }

    fn synced_empty(stores: &mut Stores) {
        for s in [&mut stores.pools_v1, &mut stores.pools_v3] {
            s.apply(watcher::Event::Init);
            s.apply(watcher::Event::InitDone);
        }
        stores.blocks.apply(watcher::Event::Init);
        stores.blocks.apply(watcher::Event::InitDone);
    }

    #[test]
    fn nothing_is_shown_until_every_watch_has_listed() {
        let mut s = stores(false);
        s.pools_v1.apply(watcher::Event::Init);
        s.pools_v1.apply(watcher::Event::InitApply(pool(
            "a",
            "10.1.0.0/16",
            "crd.projectcalico.org/v1",
        )));
        s.pools_v1.apply(watcher::Event::InitDone);
        let ctx = s.build(&StaticContext::default());
        assert!(!s.synced());
        assert_eq!(ctx.pools, None, "blocks have not been listed yet");
        assert_eq!(ctx.blocks, None);

        s.blocks.apply(watcher::Event::Init);
        s.blocks.apply(watcher::Event::InitDone);
        let ctx = s.build(&StaticContext::default());
        assert_eq!(ctx.pools.map(|p| p.len()), Some(1));
        assert_eq!(ctx.blocks.map(|b| b.len()), Some(0));
    }

    #[test]
    fn native_v3_needs_only_its_own_watches() {
        let mut s = Stores::new(Serving::NativeV3);
        s.pools_v3.apply(watcher::Event::Init);
        s.pools_v3.apply(watcher::Event::InitApply(pool(
            "a",
            "10.1.0.0/16",
            "projectcalico.org/v3",
        )));
        s.pools_v3.apply(watcher::Event::InitDone);
        s.blocks.apply(watcher::Event::Init);
        s.blocks.apply(watcher::Event::InitDone);
        assert!(s.synced(), "no crd.projectcalico.org/v1 watch to wait for");
        let ctx = s.build(&StaticContext::default());
        assert_eq!(ctx.pools.map(|p| p.len()), Some(1));
    }

    #[test]
    fn a_relist_replaces_the_objects_only_when_complete() {
        let mut s = stores(false);
        synced_empty(&mut s);
        s.pools_v1.apply(watcher::Event::Apply(pool(
            "old",
            "10.1.0.0/16",
            "crd.projectcalico.org/v1",
        )));
        s.pools_v1.apply(watcher::Event::Init);
        s.pools_v1.apply(watcher::Event::InitApply(pool(
            "new",
            "10.2.0.0/16",
            "crd.projectcalico.org/v1",
        )));
        let names = |s: &Stores| s.pools_v1.items.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&s), ["old"], "half a relist is not shown");
        s.pools_v1.apply(watcher::Event::InitDone);
        assert_eq!(names(&s), ["new"]);
        assert!(s.pools_v1.apply(watcher::Event::Delete(pool(
            "new",
            "",
            "crd.projectcalico.org/v1"
        ))));
        assert!(!s.pools_v1.apply(watcher::Event::Delete(pool(
            "new",
            "",
            "crd.projectcalico.org/v1"
        ))));
    }

    #[test]
    fn pools_of_both_groups_merge_by_name_with_v3_winning() {
        let mut s = stores(true);
        synced_empty(&mut s);
        s.pools_v1.apply(watcher::Event::Apply(pool(
            "shared",
            "10.1.0.0/16",
            "crd.projectcalico.org/v1",
        )));
        s.pools_v1.apply(watcher::Event::Apply(pool(
            "v1-only",
            "10.2.0.0/16",
            "crd.projectcalico.org/v1",
        )));
        s.pools_v3.apply(watcher::Event::Apply(pool(
            "shared",
            "10.1.0.0/16",
            "projectcalico.org/v3",
        )));
        let pools = s.build(&StaticContext::default()).pools.unwrap();
        let seen: Vec<(&str, &str)> = pools
            .iter()
            .map(|p| (p.name(), p.api_version.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("shared", "projectcalico.org/v3"),
                ("v1-only", "crd.projectcalico.org/v1")
            ]
        );
        assert_eq!(s.pool_count(), 2);
    }

    fn block(cidr: &str, handles: &[Option<&str>]) -> IpamBlock {
        let attributes: Vec<_> = handles
            .iter()
            .flatten()
            .map(|h| json!({"handle_id": h, "secondary": {}}))
            .collect();
        let mut next = 0;
        let allocations: Vec<_> = handles
            .iter()
            .map(|h| {
                h.map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock",
            "metadata": {"name": cidr.replace(['.', '/'], "-")},
            "spec": {"cidr": cidr, "allocations": allocations, "unallocated": [],
                     "attributes": attributes}
        }))
        .unwrap()
    }

    #[test]
    fn workloads_are_present_when_a_block_holds_a_pod_address() {
        let mut s = stores(false);
        synced_empty(&mut s);
        assert_eq!(
            s.build(&StaticContext::default()).workloads_present,
            Some(false)
        );
        s.blocks.apply(watcher::Event::Apply(block(
            "10.0.0.0/30",
            &[Some("ipip-tunnel-addr-n1"), None, None, None],
        )));
        s.snapshot = None;
        assert_eq!(
            s.build(&StaticContext::default()).workloads_present,
            Some(false),
            "a tunnel address is not a workload"
        );
        s.blocks.apply(watcher::Event::Apply(block(
            "10.0.0.4/30",
            &[None, Some("k8s-pod-network.abc123"), None, None],
        )));
        assert_eq!(
            s.build(&StaticContext::default()).workloads_present,
            Some(true)
        );
    }

    #[test]
    fn static_cidrs_are_carried_into_the_context() {
        let mut s = stores(false);
        synced_empty(&mut s);
        let statics = StaticContext {
            cluster_cidrs: Some(ClusterCidrs {
                cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                source: "--cluster-cidr flag".to_owned(),
                strength: ippool_rules::context::Strength::Strong,
            }),
            service_cidrs: Some(vec!["10.96.0.0/12".parse().unwrap()]),
        };
        let ctx = s.build(&statics);
        assert_eq!(ctx.cluster_cidrs, statics.cluster_cidrs);
        assert_eq!(ctx.service_cidrs, statics.service_cidrs);
    }
}
