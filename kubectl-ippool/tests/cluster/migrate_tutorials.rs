//! Calico's two tutorials end to end, each as one command, on a cluster whose kubeadm-config
//! says podSubnet 10.0.0.0/8: move the default pool 192.168.0.0/16 (outside it) to 10.0.0.0/16,
//! with coredns in kube-system; then change the new pool's blockSize 26 → 28. The first run's
//! `-o json` event stream is parsed and checked against the documented schema.

use crate::support::migration::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

fn steps(events: &[Value], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .map(|e| e["step"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn calico_tutorials_run_as_single_commands() {
    let c = start(3, 200).await;
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
    create::<Deployment>(
        &c.client,
        deployment("kube-system", "coredns", 2, rolling.clone()),
    )
    .await;
    create::<Deployment>(&c.client, deployment("default", "web", 3, rolling)).await;
    wait_pods(&c.client, &[("coredns", 2), ("web", 3)]).await;
    let deletions = DeletionRecorder::start(&c.client).await;

    // Tutorial 1: migrate to a new pool.
    let out = c
        .ippool(
            &[
                "migrate",
                "--from",
                "default-ipv4-ippool",
                "--to",
                "new-pool",
                "--cidr",
                "10.0.0.0/16",
                "--yes",
                "-o",
                "json",
            ],
            &[],
        )
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let events = events(&out);
    let plan = &events[0];
    assert_eq!(plan["event"], "plan", "{plan}");
    assert_eq!(plan["plan"]["from"]["cidr"], "192.168.0.0/16");
    assert_eq!(plan["plan"]["to"]["cidr"], "10.0.0.0/16");
    assert_eq!(plan["plan"]["targetAction"], "create");
    assert_eq!(plan["plan"]["moves"].as_array().unwrap().len(), 2);
    assert!(plan["plan"]["blockers"].as_array().unwrap().is_empty());
    // The old pool lies outside kubeadm's podSubnet: a finding about it, not a blocker.
    assert!(
        plan["plan"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["pool"] == "default-ipv4-ippool"
                && f["message"].as_str().unwrap().contains("10.0.0.0/8")),
        "{plan}"
    );
    assert_eq!(events[1]["event"], "locked");
    assert_eq!(events[1]["resumed"], false);
    let all_steps = [
        "create-new",
        "disable-old",
        "move-workloads",
        "verify",
        "release-old",
        "delete-old",
    ];
    assert_eq!(steps(&events, "step-started"), all_steps);
    assert_eq!(steps(&events, "step-done"), all_steps);
    let done: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "workload-done")
        .collect();
    assert_eq!(done.len(), 2);
    assert_eq!(done[1]["workloadsDone"], 2);
    assert_eq!(done[1]["workloadsTotal"], 2);
    assert_eq!(done[1]["podsMoved"], 5);
    let moved: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "pod-moved")
        .collect();
    assert_eq!(moved.len(), 5);
    for m in &moved {
        assert!(m["address"].as_str().unwrap().starts_with("10.0."), "{m}");
    }
    assert!(events.iter().any(|e| e["event"] == "released"));
    assert_eq!(events.last().unwrap()["event"], "finished");
    assert_eq!(events.last().unwrap()["outcome"], "completed");
    assert!(
        events.last().unwrap()["stats"]["apiRequests"]
            .as_u64()
            .unwrap()
            > 10
    );
    assert_end_state(&c, Some("192.168.0.0/16"), "10.0.0.0/16", 26).await;

    // Labels and annotations the resize must keep.
    let pools: Api<DynamicObject> = Api::all_with(
        c.client.clone(),
        &ippool_cluster::resources::ip_pools(ippool_rules::model::ApiGroup::CrdV1),
    );
    pools
        .patch(
            "new-pool",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "net"}, "annotations": {"note": "keep me"}}})),
        )
        .await
        .unwrap();

    // Tutorial 2: blockSize 26 → 28, through a temporary pool chosen inside 10.0.0.0/8.
    let out = c
        .ippool(&["resize", "new-pool", "--block-size", "28", "--yes"], &[])
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("new-pool-resize-tmp"), "{stdout}");
    assert!(stdout.contains("✓ clean-old-cidr"), "{stdout}");
    assert!(stdout.contains("✓ back/delete-old"), "{stdout}");
    assert_end_state(&c, None, "10.0.0.0/16", 28).await;
    let pool = pools.get("new-pool").await.unwrap();
    assert_eq!(pool.data["spec"]["blockSize"], 28);
    assert_eq!(pool.data["spec"]["ipipMode"], "Always");
    assert_eq!(pool.data["spec"]["natOutgoing"], true);
    assert_eq!(pool.metadata.labels.as_ref().unwrap()["team"], "net");
    assert_eq!(
        pool.metadata.annotations.as_ref().unwrap()["note"],
        "keep me"
    );
    let names: Vec<String> = pools
        .list(&Default::default())
        .await
        .unwrap()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["new-pool"]);
    // The old pool, new-pool (once) and the temporary pool were deleted, none while in use.
    assert_eq!(deletions.check(), 3);
}
