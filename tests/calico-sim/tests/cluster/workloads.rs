//! Workload controllers and the API machinery around them behave as on a real cluster with the
//! sim as its data plane: DaemonSets place one pod per node, PodDisruptionBudgets guard evictions.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::{Api, ApiResource, DynamicObject, EvictParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn daemonset_pods_land_one_per_node() {
    let env = start(sim_options(4)).await;
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
    assert_calico_consistent(client, &pods).await;
}

fn pdb_resource() -> ApiResource {
    ApiResource {
        group: "policy".into(),
        version: "v1beta1".into(),
        api_version: "policy/v1beta1".into(),
        kind: "PodDisruptionBudget".into(),
        plural: "poddisruptionbudgets".into(),
    }
}

/// Waits until the disruption controller has judged the budget with `healthy` pods.
async fn wait_budget(pdbs: &Api<DynamicObject>, healthy: i64, allowed: i64) {
    harness::wait_for_all(
        pdbs,
        watcher::Config::default(),
        &format!("the budget to see {healthy} healthy pods and allow {allowed} disruptions"),
        |list: &[DynamicObject]| {
            list.iter().any(|p| {
                let status = &p.data["status"];
                status["observedGeneration"] == json!(p.metadata.generation)
                    && status["currentHealthy"] == json!(healthy)
                    && status["disruptionsAllowed"] == json!(allowed)
            })
        },
        TIMEOUT,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_pod_disruption_budget_blocks_eviction() {
    let env = start(sim_options(3)).await;
    let client = &env.client;
    create_pool(
        client,
        "pool",
        json!({"cidr": "10.140.0.0/24", "blockSize": 28}),
    )
    .await;
    create_deployment(client, "default", &deployment("web", 3, json!({}))).await;
    let pods = wait_running(client, "default", "app=web", 3).await;

    // Server 1.20 serves PodDisruptionBudget only as policy/v1beta1.
    let pdbs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &pdb_resource());
    let pdb: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
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
    // sim's deletion (its address released) and is replaced.
    scale(client, "default", "web", 4).await;
    wait_running(client, "default", "app=web", 4).await;
    wait_budget(&pdbs, 4, 1).await;
    evicting
        .evict(&pods[0].name_any(), &EvictParams::default())
        .await
        .expect("an eviction within the budget");
    let after = wait_running(client, "default", "app=web", 4).await;
    assert!(after.iter().all(|p| p.uid() != pods[0].uid()));
    let ipam = assert_calico_consistent(client, &after).await;
    assert_eq!(
        pod_handles(&ipam).len(),
        4,
        "the evicted pod's address was released"
    );
}
