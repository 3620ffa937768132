//! Pods get addresses as Calico IPAM gives them: distinct, inside the pool, per-node blocks,
//! released on deletion, never handed out twice; IPv4 and IPv6 when pools of both families exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use harness::SimOptions;
use ippool_ipam::allocation;
use ippool_ipam::names;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn twenty_replicas_on_five_nodes_get_distinct_addresses_named_as_calico_does() {
    let env = SimCluster::start(5).await;
    let client = &env.client;
    create_pool(
        client,
        "default-ipv4-ippool",
        json!({"cidr": "192.168.0.0/16", "ipipMode": "Never", "natOutgoing": true}),
    )
    .await;
    create_deployment(client, "default", &deployment("web", 20, json!({}))).await;
    let pods = wait_running(client, "default", "app=web", 20).await;

    let pool = net("192.168.0.0/16");
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &pods {
        let ips = pod_ips(pod);
        assert_eq!(ips.len(), 1, "{}", pod.name_any());
        assert!(pool.contains(&ips[0]), "{} outside the pool", ips[0]);
        *per_node.entry(node_of(pod)).or_default() += 1;
    }
    // kube-scheduler spreads a Deployment's pods; how evenly is its business, not Calico's.
    assert_eq!(per_node.len(), 5, "spread over every node: {per_node:?}");

    let ipam = assert_calico_consistent(client, &pods).await;
    // Each node claimed one /26 of the pool for its pods.
    assert_eq!(ipam.blocks.len(), 5);
    for block in &ipam.blocks {
        let cidr = block.cidr().unwrap();
        assert_eq!(cidr.prefix_len(), 26);
        assert!(pool.contains(&cidr.network()));
        let node = affine_node(block).expect("affine block");
        assert_eq!(
            allocation::allocations(block).unwrap().len(),
            per_node[node]
        );
    }
    assert_eq!(ipam.affinities.len(), 5);
    assert_eq!(ipam.handles.len(), 20);
    env.cp.judge_ipam(&Expected::clean());
}

#[tokio::test]
async fn a_node_name_too_long_to_prefix_an_affinity_name_is_cut_and_hashed() {
    // "<node>-192-168-100-…-28" is 253 characters or more, longer than an object name may be, so
    // Calico shortens the affinity's name. The node's name is about as long as Calico can serve:
    // its WorkloadEndpoint names ("<node>-k8s-<pod>-eth0", hyphens doubled) and tunnel handles
    // ("ipip-tunnel-addr-<node>") must fit in 253 characters too, hence one short bare pod and no
    // encapsulation.
    let prefix = "n".repeat(235);
    let env = SimCluster::start_with(SimOptions {
        nodes: 1,
        node_prefix: prefix.clone(),
        ..SimOptions::default()
    })
    .await;
    let client = &env.client;
    let node = format!("{prefix}0");
    create_pool(
        client,
        "pool",
        json!({"cidr": "192.168.100.0/24", "blockSize": 28}),
    )
    .await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "labels": {"app": "p"}},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&Default::default(), &pod)
        .await
        .unwrap();
    let pods = wait_running(client, "default", "app=p", 1).await;
    assert_eq!(node_of(&pods[0]), node);
    // Named, labelled (hostname-hash of the whole name) and found as this crate computes it.
    let ipam = assert_calico_consistent(client, &pods).await;
    assert_eq!(ipam.affinities.len(), 1);
    let name = ipam.affinities[0].metadata.name.clone().unwrap_or_default();
    assert!(name.len() < 253 && !name.starts_with(&node), "{name}");
    env.cp.judge_ipam(&Expected::clean());
}

/// Every (address, pod UID) pair seen over the run, from a pod watch.
struct AddressLog {
    seen: Arc<Mutex<HashMap<IpAddr, BTreeSet<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AddressLog {
    fn start(client: &Client) -> AddressLog {
        let seen: Arc<Mutex<HashMap<IpAddr, BTreeSet<String>>>> = Arc::default();
        let record = seen.clone();
        let api: Api<Pod> = Api::all(client.clone());
        let task = tokio::spawn(async move {
            let mut pods =
                std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
            while let Some(pod) = pods.next().await {
                let Ok(pod) = pod else { continue };
                let mut seen = record.lock().unwrap();
                for ip in pod_ips(&pod) {
                    seen.entry(ip)
                        .or_default()
                        .insert(pod.uid().unwrap_or_default());
                }
            }
        });
        AddressLog { seen, task }
    }

    fn assert_never_shared(self) {
        self.task.abort();
        let seen = self.seen.lock().unwrap();
        assert!(!seen.is_empty(), "the log saw no addresses");
        for (ip, uids) in seen.iter() {
            assert_eq!(uids.len(), 1, "{ip} was handed to several pods: {uids:?}");
        }
    }
}

#[tokio::test]
async fn replacements_come_from_the_new_pool_after_the_old_one_is_disabled() {
    let env = SimCluster::start(3).await;
    let client = &env.client;
    let log = AddressLog::start(client);
    let (old_pool, new_pool) = (net("10.10.0.0/24"), net("10.20.0.0/24"));
    create_pool(
        client,
        "old",
        json!({"cidr": old_pool.to_string(), "blockSize": 28}),
    )
    .await;
    create_deployment(client, "default", &deployment("web", 8, json!({}))).await;
    let before = wait_running(client, "default", "app=web", 8).await;
    assert!(before.iter().all(|p| old_pool.contains(&pod_ips(p)[0])));

    set_pool_disabled(client, "old", true).await;
    create_pool(
        client,
        "new",
        json!({"cidr": new_pool.to_string(), "blockSize": 28}),
    )
    .await;
    Api::<Pod>::namespaced(client.clone(), "default")
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=web"),
        )
        .await
        .unwrap();
    // Exactly eight pods again: the old ones are gone (the sim released their addresses before
    // completing their deletion) and the replacements run.
    let after = wait_running(client, "default", "app=web", 8).await;
    let old_uids: BTreeSet<String> = before.iter().filter_map(|p| p.uid()).collect();
    for pod in &after {
        assert!(
            !old_uids.contains(&pod.uid().unwrap()),
            "{} is an old pod",
            pod.name_any()
        );
        assert!(
            new_pool.contains(&pod_ips(pod)[0]),
            "{} not from the new pool",
            pod.name_any()
        );
    }
    let ipam = assert_calico_consistent(client, &after).await;
    let in_old_pool: Vec<_> = ipam
        .allocations()
        .into_keys()
        .filter(|ip| old_pool.contains(ip))
        .collect();
    assert!(
        in_old_pool.is_empty(),
        "addresses still allocated in the disabled pool: {in_old_pool:?}"
    );
    log.assert_never_shared();
    env.cp.judge_ipam(&Expected::clean());
}

#[tokio::test]
async fn pools_of_both_families_give_dual_stack_pods() {
    let env = SimCluster::start(3).await;
    let client = &env.client;
    let (v4, v6) = (net("10.40.0.0/16"), net("fd00:40::/64"));
    create_pool(client, "v4", json!({"cidr": v4.to_string()})).await;
    create_pool(client, "v6", json!({"cidr": v6.to_string()})).await;
    create_deployment(client, "default", &deployment("web", 6, json!({}))).await;
    let pods = wait_running(client, "default", "app=web", 6).await;
    for pod in &pods {
        let ips = pod_ips(pod);
        assert_eq!(ips.len(), 2, "{}: {ips:?}", pod.name_any());
        assert!(v4.contains(&ips[0]) && v6.contains(&ips[1]), "{ips:?}");
    }
    let ipam = assert_calico_consistent(client, &pods).await;
    let v6_blocks: Vec<_> = ipam
        .blocks
        .iter()
        .filter(|b| {
            b.cidr()
                .is_some_and(|c| c.prefix_len() == 122 && v6.contains(&c.network()))
        })
        .collect();
    assert_eq!(v6_blocks.len(), 3, "one /122 per node");
    let v6_affinities = ipam
        .affinities
        .iter()
        .filter(|a| a.metadata.labels[names::LABEL_IP_VERSION] == "6")
        .count();
    assert_eq!(v6_affinities, 3);
    env.cp.judge_ipam(&Expected::clean());
}
