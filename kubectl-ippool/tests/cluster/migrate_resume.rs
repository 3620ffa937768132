//! Killed at every step boundary (`IPPOOL_FAULT_AT`, exit 137 without any cleanup) and once with
//! a real SIGKILL in the middle of moving workloads, the same command run again continues where
//! the last run stopped and ends in the same state as an uninterrupted run. A watcher records
//! every pool and block change: at no moment was the old pool deleted while a block in it held
//! an allocation.

use crate::support::migration::*;
use ippool_cluster::resources::{ip_pools, ipam_blocks};
use ippool_rules::model::ApiGroup;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

const MIGRATE: &[&str] = &[
    "migrate",
    "--from",
    "default-ipv4-ippool",
    "--to",
    "new-pool",
    "--cidr",
    "10.0.0.0/16",
    "--yes",
    "--concurrency",
    "1",
    "-o",
    "json",
];

async fn pool(c: &TestCluster, name: &str) -> Option<DynamicObject> {
    Api::<DynamicObject>::all_with(c.client.clone(), &ip_pools(ApiGroup::CrdV1))
        .get_opt(name)
        .await
        .unwrap()
}

async fn blocks_in_old(c: &TestCluster) -> usize {
    Api::<DynamicObject>::all_with(c.client.clone(), &ipam_blocks(ApiGroup::CrdV1))
        .list(&Default::default())
        .await
        .unwrap()
        .iter()
        .filter(|b| {
            b.data["spec"]["cidr"]
                .as_str()
                .unwrap()
                .starts_with("192.168.")
        })
        .count()
}

/// Runs the migration with a fault at `point`; it must exit with 137 there.
async fn killed_at(c: &TestCluster, point: &str) -> Vec<Value> {
    let out = c.ippool(MIGRATE, &[("IPPOOL_FAULT_AT", point)]).await;
    assert_eq!(
        out.status.code(),
        Some(137),
        "fault at {point}: {}",
        text(&out)
    );
    events(&out)
}

fn resumed(events: &[Value]) -> bool {
    events
        .iter()
        .find(|e| e["event"] == "locked")
        .is_some_and(|e| e["resumed"] == true)
}

#[tokio::test]
async fn a_migration_killed_anywhere_finishes_when_run_again() {
    let c = start(3, 400).await;
    create_pool(
        &c.client,
        "default-ipv4-ippool",
        "192.168.0.0/16",
        26,
        "Always",
    )
    .await;
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    for name in ["a", "b", "c", "d"] {
        create::<Deployment>(&c.client, deployment("default", name, 2, rolling.clone())).await;
    }
    wait_pods(&c.client, &[("a", 2), ("b", 2), ("c", 2), ("d", 2)]).await;
    let deletions = DeletionRecorder::start(&c.client).await;

    let first = killed_at(&c, "create-new").await;
    assert!(!resumed(&first));
    assert!(
        pool(&c, "new-pool").await.is_none(),
        "killed before creating it"
    );

    let events = killed_at(&c, "disable-old").await;
    assert!(resumed(&events));
    assert!(pool(&c, "new-pool").await.is_some());
    assert_eq!(
        pool(&c, "default-ipv4-ippool").await.unwrap().data["spec"]["disabled"],
        Value::Null
    );

    killed_at(&c, "move-workloads").await;
    assert_eq!(
        pool(&c, "default-ipv4-ippool").await.unwrap().data["spec"]["disabled"],
        true
    );

    // A real SIGKILL once the first workload has moved and the next one is under way.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ippool"))
        .args(MIGRATE)
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .env_remove("IPPOOL_FAULT_AT")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["event"] == "workload-done" {
            break;
        }
    }
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success());

    let events = killed_at(&c, "mid-move").await;
    assert!(resumed(&events));
    killed_at(&c, "verify").await;
    killed_at(&c, "release-old").await;
    assert!(blocks_in_old(&c).await > 0, "nothing released yet");
    killed_at(&c, "delete-old").await;
    assert_eq!(blocks_in_old(&c).await, 0, "released before the kill");
    assert!(
        pool(&c, "default-ipv4-ippool").await.is_some(),
        "killed between release and delete"
    );
    let events = killed_at(&c, "unlock").await;
    assert!(pool(&c, "default-ipv4-ippool").await.is_none());
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step-done" && e["step"] == "delete-old")
    );

    let out = c.ippool(MIGRATE, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let last = events_of(&out);
    assert!(resumed(&last));
    assert!(
        last.iter()
            .filter(|e| e["event"] == "step-done")
            .all(|e| e["skipped"] == true),
        "every step was done before: {last:?}"
    );
    assert_end_state(&c, Some("192.168.0.0/16"), "10.0.0.0/16", 26).await;
    assert_eq!(deletions.check(), 1, "the old pool was deleted once");
}

fn events_of(out: &std::process::Output) -> Vec<Value> {
    crate::support::migration::events(out)
}
