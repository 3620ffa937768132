//! Pods get addresses as Calico IPAM gives them: distinct, inside the pool, per-node blocks,
//! released on deletion, never handed out twice, exactly one per pod across a sim crash.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use ippool_cluster::allocation;
use ippool_cluster::names;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn twenty_replicas_on_five_nodes_get_distinct_addresses_named_as_calico_does() {
    let env = start(sim_options(5)).await;
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
    assert_eq!(per_node.len(), 5, "spread over every node: {per_node:?}");
    assert!(
        per_node.values().all(|n| *n == 4),
        "spread evenly: {per_node:?}"
    );

    let ipam = assert_calico_consistent(client, &pods).await;
    // Each node claimed one /26 of the pool for its four pods.
    assert_eq!(ipam.blocks.len(), 5);
    for block in &ipam.blocks {
        let cidr = block.cidr().unwrap();
        assert_eq!(cidr.prefix_len(), 26);
        assert!(pool.contains(&cidr.network()));
        let node = allocation::affine_node(block).expect("affine block");
        assert_eq!(
            allocation::allocations(block).unwrap().len(),
            per_node[node]
        );
    }
    assert_eq!(ipam.affinities.len(), 5);
    assert_eq!(ipam.handles.len(), 20);
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
    let env = start(sim_options(3)).await;
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
}

#[tokio::test]
async fn a_sim_killed_mid_scale_up_leaves_exactly_one_address_per_pod() {
    let mut env = start(sim_options(4)).await;
    let client = env.client.clone();
    create_pool(
        &client,
        "pool",
        json!({"cidr": "10.30.0.0/16", "ipipMode": "Always"}),
    )
    .await;
    create_deployment(&client, "default", &deployment("web", 40, json!({}))).await;
    // Kill the sim once some pods have addresses and others do not yet.
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    harness::wait_for_all(
        &api,
        watcher::Config::default().labels("app=web"),
        "a few pods with addresses",
        |pods: &[Pod]| {
            pods.iter()
                .filter(|p| p.annotations().contains_key(names::ANNOTATION_POD_IP))
                .count()
                >= 5
        },
        TIMEOUT,
    )
    .await
    .unwrap();
    env.sim.kill9();
    env.sim.restart().expect("sim restarts");

    let pods = wait_running(&client, "default", "app=web", 40).await;
    let ipam = assert_calico_consistent(&client, &pods).await;
    let expected: BTreeSet<String> = pods
        .iter()
        .map(|p| names::pod_handle_id(&p.annotations()[names::ANNOTATION_CONTAINER_ID]))
        .collect();
    assert_eq!(pod_handles(&ipam), expected, "no allocation without a pod");
    let pod_handle_objects = ipam
        .handles
        .iter()
        .filter(|h| names::container_id_of_pod_handle(&h.spec.handle_id).is_some())
        .count();
    assert_eq!(pod_handle_objects, 40, "one IPAMHandle per pod");
    // Each node kept one tunnel address.
    let tunnel_handles: Vec<_> = ipam
        .allocations()
        .into_values()
        .filter(|(_, owner)| owner.get(names::ATTRIBUTE_TYPE).is_some())
        .collect();
    assert_eq!(tunnel_handles.len(), 4);
}

#[tokio::test]
async fn pools_of_both_families_give_dual_stack_pods() {
    let env = start(sim_options(3)).await;
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
}

#[tokio::test]
async fn pods_turn_ready_only_after_the_start_delay() {
    let options = harness::SimOptions {
        start_delay_ms: 1500,
        ..sim_options(1)
    };
    let env = start(options).await;
    let client = &env.client;
    create_pool(client, "pool", json!({"cidr": "10.45.0.0/24"})).await;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Watch from before the pod exists so that the Running-but-not-Ready state cannot be missed.
    let states = tokio::spawn(async move {
        let mut states = Vec::new();
        let mut pods = std::pin::pin!(
            watcher(api, watcher::Config::default().labels("app=slow")).applied_objects()
        );
        while let Some(Ok(pod)) = pods.next().await {
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let ready = is_running_and_ready(&pod);
            states.push((running, ready));
            if ready {
                return states;
            }
        }
        states
    });
    create_deployment(client, "default", &deployment("slow", 1, json!({}))).await;
    let states = tokio::time::timeout(TIMEOUT, states)
        .await
        .unwrap()
        .unwrap();
    assert!(
        states.contains(&(true, false)),
        "Running before Ready: {states:?}"
    );
    assert_eq!(states.last(), Some(&(true, true)));
}
