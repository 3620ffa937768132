//! Workload controllers and the API machinery around them behave as on a real cluster with the
//! sim's nodes: kube-scheduler places one DaemonSet pod per node, and a PodDisruptionBudget guards
//! evictions, whose pods the sim tears down through Calico (their addresses released).

use std::collections::BTreeSet;

use harness::Expected;
use harness::workloads::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt as _;
use kube::api::{Api, EvictParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn daemonset_pods_land_one_per_node() {
    let env = SimCluster::start(4).await;
    let client = &env.client;
    create_pool(
        client,
        "pool",
        json!({"cidr": "10.130.0.0/24", "blockSize": 28}),
    )
    .await;
    create_daemonset(client, "default", "agent").await;
    let pods = wait_running(client, "default", "app=agent", 4).await;
    let nodes: BTreeSet<String> = pods.iter().map(node_of).collect();
    assert_eq!(
        nodes,
        (0..4).map(|i| format!("sim-{i}")).collect::<BTreeSet<_>>()
    );
    let addresses: BTreeSet<_> = pods.iter().flat_map(pod_ips).collect();
    assert_eq!(addresses.len(), 4, "one address each: {addresses:?}");
    env.cp.judge_ipam(&Expected::clean());
}

/// Waits until the disruption controller has judged the budget with `healthy` pods.
async fn wait_budget(pdbs: &Api<PodDisruptionBudget>, healthy: i32, allowed: i32) {
    harness::wait_for_all(
        pdbs,
        watcher::Config::default(),
        &format!("the budget to see {healthy} healthy pods and allow {allowed} disruptions"),
        |list: &[PodDisruptionBudget]| {
            list.iter().any(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.observed_generation == p.metadata.generation
                        && s.current_healthy == healthy
                        && s.disruptions_allowed == allowed
                })
            })
        },
        TIMEOUT,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_pod_disruption_budget_blocks_eviction() {
    let env = SimCluster::start(3).await;
    let client = &env.client;
    create_pool(
        client,
        "pool",
        json!({"cidr": "10.140.0.0/24", "blockSize": 28}),
    )
    .await;
    create_deployment(client, "default", &deployment("web", 3, json!({}))).await;
    let pods = wait_running(client, "default", "app=web", 3).await;

    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    wait_budget(&pdbs, 3, 0).await;

    // Without retries a refusal (HTTP 429) comes back at once.
    let evicting: Api<Pod> = Api::namespaced(env.cp.client_no_retry().await, "default");
    match evicting
        .evict(&pods[0].name_any(), &EvictParams::default())
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 429, "{status:?}");
            assert_eq!(status.reason, "TooManyRequests");
        }
        other => panic!("the eviction should be refused by the budget: {other:?}"),
    }

    // With a fourth replica the budget allows one eviction; the evicted pod goes through the
    // sim's teardown (Calico releases its address) and is replaced.
    scale(client, "default", "web", 4).await;
    wait_running(client, "default", "app=web", 4).await;
    wait_budget(&pdbs, 4, 1).await;
    evicting
        .evict(&pods[0].name_any(), &EvictParams::default())
        .await
        .expect("an eviction within the budget");
    let after = wait_running(client, "default", "app=web", 4).await;
    assert!(after.iter().all(|p| p.uid() != pods[0].uid()));
    let evicted = pod_handle(&pods[0].annotations()["cni.projectcalico.org/containerID"]);
    let held = read_allocations(client).await;
    assert!(
        held.values().all(|(handle, _)| *handle != evicted),
        "the evicted pod's address was released"
    );
    let pod_allocations = held
        .values()
        .filter(|(handle, _)| handle.starts_with("k8s-pod-network."))
        .count();
    assert_eq!(pod_allocations, 4);
    env.cp.judge_ipam(&Expected::clean());
}
