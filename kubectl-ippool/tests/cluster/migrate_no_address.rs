//! A replacement pod that gets no address stops the run, naming the pod and its node: here the
//! new pool has a single block and strict affinity forbids borrowing, so pods on the other nodes
//! cannot get an address from it.

use crate::support::migration::*;
use harness::Expected;
use ippool_cluster::resources::{ip_pools, ipam_configs};
use ippool_rules::model::ApiGroup;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;

#[tokio::test]
async fn a_pod_without_an_address_stops_the_run_by_name() {
    let c = start(3, 0).await;
    create_pool(
        &c.client,
        "default-ipv4-ippool",
        "192.168.0.0/16",
        26,
        "Never",
    )
    .await;
    let config: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMConfig",
        "metadata": {"name": "default"},
        "spec": {"strictAffinity": true, "autoAllocateBlocks": true}
    }))
    .unwrap();
    Api::<DynamicObject>::all_with(c.client.clone(), &ipam_configs(ApiGroup::CrdV1))
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 3}});
    create::<Deployment>(&c.client, deployment("default", "web", 6, rolling)).await;
    wait_pods(&c.client, &[("web", 6)]).await;

    let out = c
        .ippool(
            &[
                "migrate",
                "--from",
                "default-ipv4-ippool",
                "--to",
                "tiny",
                "--cidr",
                "10.0.0.0/26",
                "--yes",
                "--timeout",
                "15s",
            ],
            &[],
        )
        .await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("has no address after 15s"), "{all}");
    assert!(
        all.contains("of Deployment default/web was scheduled to sim-"),
        "{all}"
    );
    // The old pool stays, and the lock with the record, for --abort or a run after the fix.
    let pools = Api::<DynamicObject>::all_with(c.client.clone(), &ip_pools(ApiGroup::CrdV1));
    assert!(
        pools
            .get_opt("default-ipv4-ippool")
            .await
            .unwrap()
            .is_some()
    );
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(c.client.clone(), "kube-system");
    assert!(leases.get_opt("ippool-migration").await.unwrap().is_some());
    let abort = c.ippool(&["migrate", "--abort"], &[]).await;
    assert!(abort.status.success(), "{}", text(&abort));
    assert_eq!(
        pools.get("default-ipv4-ippool").await.unwrap().data["spec"]["disabled"],
        false
    );
    // Stopped and aborted, not broken: with the old pool enabled again the rollout finishes
    // there, and the replacements that had no address left no allocation behind.
    wait_pods(&c.client, &[("web", 6)]).await;
    c.cp.judge_ipam(&Expected::clean());
}
