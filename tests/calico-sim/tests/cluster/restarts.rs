//! A node's kubelet across time: readiness after the start delay, and a sim killed with `kill -9`
//! that comes back to exactly one address per pod — finishing or undoing the sandboxes it was
//! setting up, and tearing down those of pods deleted while it was gone.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use harness::workloads::*;
use harness::{Expected, SimOptions};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::json;

use crate::common::*;

const POD_IP: &str = "cni.projectcalico.org/podIP";
const CONTAINER_ID: &str = "cni.projectcalico.org/containerID";

/// Checks that the pods' addresses are exactly the pod allocations in IPAM, each under the handle
/// of the pod's sandbox with one IPAMHandle each, and that every node kept its tunnel address.
async fn assert_one_address_per_pod(client: &Client, pods: &[Pod], nodes: usize) {
    let allocations = read_allocations(client).await;
    let mut expected = BTreeSet::new();
    for pod in pods {
        let handle = pod_handle(&pod.annotations()[CONTAINER_ID]);
        for ip in pod_ips(pod) {
            let (owner, attributes) = allocations
                .get(&ip)
                .unwrap_or_else(|| panic!("{}'s {ip} is not allocated", pod.name_any()));
            assert_eq!(*owner, handle, "owner of {ip}");
            assert_eq!(attributes["pod"], pod.name_any());
            expected.insert((ip, handle.clone()));
        }
    }
    let held: BTreeSet<_> = allocations
        .iter()
        .filter(|(_, (handle, _))| handle.starts_with("k8s-pod-network."))
        .map(|(ip, (handle, _))| (*ip, handle.clone()))
        .collect();
    assert_eq!(held, expected, "no pod allocation without a pod");
    let pod_handles: BTreeSet<String> = handle_ids(client)
        .await
        .into_iter()
        .filter(|h| h.starts_with("k8s-pod-network."))
        .collect();
    let wanted: BTreeSet<String> = expected.into_iter().map(|(_, h)| h).collect();
    assert_eq!(pod_handles, wanted, "one IPAMHandle per pod");
    let tunnels = allocations
        .values()
        .filter(|(_, attributes)| attributes.get("type").is_some())
        .count();
    assert_eq!(tunnels, nodes, "each node kept one tunnel address");
}

#[tokio::test]
async fn a_sim_killed_mid_scale_up_leaves_exactly_one_address_per_pod() {
    let mut env = SimCluster::start(4).await;
    let client = env.client.clone();
    create_pool(
        &client,
        "pool",
        json!({"cidr": "10.30.0.0/16", "ipipMode": "Always"}),
    )
    .await;
    create_deployment(&client, "default", &deployment("web", 40, json!({}))).await;
    // Kill the sim once some pods have addresses (Calico annotated them) and others do not yet.
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    harness::wait_for_all(
        &api,
        watcher::Config::default().labels("app=web"),
        "a few pods with addresses",
        |pods: &[Pod]| {
            pods.iter()
                .filter(|p| p.annotations().get(POD_IP).is_some_and(|ip| !ip.is_empty()))
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
    assert_one_address_per_pod(&client, &pods, 4).await;

    // Pods deleted for good while the sim is down (their sandboxes left behind) are torn down
    // when it comes back, and their replacements set up.
    env.sim.kill9();
    let gone: Vec<&Pod> = pods.iter().take(10).collect();
    for pod in &gone {
        // Without a kubelet nothing completes a graceful deletion: the test forces it, as an
        // administrator does for a node that is down.
        api.delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
    }
    env.sim.restart().expect("sim restarts");
    let released: BTreeSet<String> = gone
        .iter()
        .map(|p| pod_handle(&p.annotations()[CONTAINER_ID]))
        .collect();
    harness::wait_for_all(
        &blocks_api(&client),
        watcher::Config::default(),
        "the addresses of the pods deleted while the sim was down to be released",
        |blocks: &[DynamicObject]| {
            allocations(blocks)
                .values()
                .all(|(handle, _)| !released.contains(handle))
        },
        TIMEOUT,
    )
    .await
    .unwrap();
    let pods = wait_running(&client, "default", "app=web", 40).await;
    assert_one_address_per_pod(&client, &pods, 4).await;
    env.cp.judge_ipam(&Expected::clean());
}

#[tokio::test]
async fn pods_turn_ready_only_after_the_start_delay() {
    let options = SimOptions {
        nodes: 1,
        start_delay_ms: 1500,
        ..SimOptions::default()
    };
    let env = SimCluster::start_with(options).await;
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
    env.cp.judge_ipam(&Expected::clean());
}
