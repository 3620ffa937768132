//! `kubectl ippool check` on seeded IPAM states: one test per problem class, plus a consistent
//! cluster and the JSON report.

mod support;

use ippool_cluster::allocation::AffinityState;
use serde_json::Value;
use support::{
    Holder, control_plane, create_handle, create_namespace, create_node, create_pod, create_pool,
    ippool, pool, seed_block,
};

/// One enabled pool, a node, a pod holding an allocated address, the node's tunnel address.
async fn consistent(client: &kube::Client) {
    create_pool(client, &pool("default", "10.10.0.0/16", 26, false)).await;
    create_node(client, "node-a").await;
    create_namespace(client, "shop").await;
    let addresses = seed_block(
        client,
        "10.10.0.0/26",
        Some("node-a"),
        Some(AffinityState::Confirmed),
        &[
            Holder::Tunnel { node: "node-a" },
            Holder::Pod {
                namespace: "shop",
                pod: "web-1",
                node: "node-a",
                container: "c1",
            },
        ],
    )
    .await;
    create_pod(
        client,
        "shop",
        "web-1",
        "node-a",
        Some(addresses[1]),
        "c1",
        None,
    )
    .await;
}

fn problems(stdout: &str) -> Vec<(String, Value)> {
    let report: Value = serde_json::from_str(stdout).expect("check -o json prints JSON");
    report["problems"]
        .as_array()
        .expect("problems array")
        .iter()
        .map(|p| (p["kind"].as_str().unwrap_or_default().to_owned(), p.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_cluster_passes() {
    let cp = control_plane();
    consistent(&cp.client().await).await;
    let run = ippool(&cp, &["check"]).expect(0);
    assert!(
        run.stdout.ends_with("Check complete; found 0 problems.\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 pods with addresses"),
        "{}",
        run.stdout
    );
    let json = ippool(&cp, &["check", "-o", "json"]).expect(0);
    assert!(problems(&json.stdout).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn leaked_allocation_of_a_deleted_pod() {
    let cp = control_plane();
    let client = cp.client().await;
    consistent(&client).await;
    seed_block(
        &client,
        "10.10.0.64/26",
        Some("node-a"),
        Some(AffinityState::Confirmed),
        &[Holder::Pod {
            namespace: "shop",
            pod: "web-0",
            node: "node-a",
            container: "gone",
        }],
    )
    .await;
    let run = ippool(&cp, &["check"]).expect(1);
    assert!(
        run.stdout.contains(
            "[leaked-allocation] 10.10.0.64 is allocated in block 10-10-0-64-26 for pod shop/web-0"
        ),
        "{}",
        run.stdout
    );
    let found = problems(&ippool(&cp, &["check", "-o", "json"]).expect(1).stdout);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "leaked-allocation");
    assert_eq!(found[0].1["handle"], "k8s-pod-network.gone");
    assert_eq!(found[0].1["pool"], "default");
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_address_without_allocation() {
    let cp = control_plane();
    let client = cp.client().await;
    consistent(&client).await;
    create_pod(
        &client,
        "shop",
        "ghost",
        "node-a",
        Some("10.10.7.7".parse().unwrap()),
        "c9",
        None,
    )
    .await;
    let found = problems(&ippool(&cp, &["check", "-o", "json"]).expect(1).stdout);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "pod-without-allocation");
    assert_eq!(found[0].1["pod"], "shop/ghost");
    assert_eq!(found[0].1["address"], "10.10.7.7");
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_address_outside_every_active_pool() {
    let cp = control_plane();
    let client = cp.client().await;
    consistent(&client).await;
    create_pool(&client, &pool("parked", "10.20.0.0/16", 26, true)).await;
    create_pod(
        &client,
        "shop",
        "stray",
        "node-a",
        Some("172.16.0.4".parse().unwrap()),
        "c7",
        None,
    )
    .await;
    create_pod(
        &client,
        "shop",
        "parked-1",
        "node-a",
        Some("10.20.0.9".parse().unwrap()),
        "c8",
        None,
    )
    .await;
    let run = ippool(&cp, &["check"]).expect(1);
    assert!(
        run.stdout
            .contains("Found 2 pod addresses with no IPAM allocation outside every enabled pool."),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("(it is in disabled pool parked)"),
        "{}",
        run.stdout
    );
    let found = problems(&ippool(&cp, &["check", "-o", "json"]).expect(1).stdout);
    assert!(
        found.iter().all(|(kind, _)| kind == "outside-active-pools"),
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn handle_without_addresses() {
    let cp = control_plane();
    let client = cp.client().await;
    consistent(&client).await;
    create_handle(&client, "k8s-pod-network.orphan", "10.10.0.0/26").await;
    let found = problems(&ippool(&cp, &["check", "-o", "json"]).expect(1).stdout);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "handle-without-addresses");
    assert_eq!(found[0].1["handle"], "k8s-pod-network.orphan");
}

#[tokio::test(flavor = "multi_thread")]
async fn block_without_pool() {
    let cp = control_plane();
    let client = cp.client().await;
    consistent(&client).await;
    seed_block(&client, "10.99.0.0/26", None, None, &[]).await;
    let run = ippool(&cp, &["check", "-o", "yaml"]).expect(1);
    assert!(
        run.stdout.contains("kind: block-without-pool"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("block: 10-99-0-0-26"), "{}", run.stdout);
}
