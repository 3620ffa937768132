//! Blockers stop the run before anything is written, each with its fix named: a bare pod, a
//! namespace pinned to the old pool, a PodDisruptionBudget that allows no disruption. Once each
//! is removed the same command runs through.

use crate::support::migration::*;
use ippool_cluster::resources::ip_pools;
use ippool_rules::model::ApiGroup;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;

const MIGRATE: &[&str] = &[
    "migrate",
    "--from",
    "default-ipv4-ippool",
    "--to",
    "new-pool",
    "--cidr",
    "10.0.0.0/16",
    "--yes",
];

/// The run was refused (exit 1) with `needles` in its output, and nothing changed.
async fn refused(c: &TestCluster, needles: &[&str]) {
    let out = c.ippool(MIGRATE, &[]).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    for needle in needles {
        assert!(all.contains(needle), "{needle:?} missing in {all}");
    }
    assert!(all.contains("blocked: nothing was changed"), "{all}");
    let pools = Api::<DynamicObject>::all_with(c.client.clone(), &ip_pools(ApiGroup::CrdV1));
    let names: Vec<String> = pools
        .list(&Default::default())
        .await
        .unwrap()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["default-ipv4-ippool"], "no pool created");
    let old = pools.get("default-ipv4-ippool").await.unwrap();
    assert_ne!(old.data["spec"]["disabled"], true, "old pool not disabled");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(c.client.clone(), "kube-system");
    assert!(
        leases.get_opt("ippool-migration").await.unwrap().is_none(),
        "no lock taken"
    );
}

#[tokio::test]
async fn blockers_stop_the_run_and_change_nothing() {
    let c = start(2, 0).await;
    create_pool(
        &c.client,
        "default-ipv4-ippool",
        "192.168.0.0/16",
        26,
        "Always",
    )
    .await;
    create::<Deployment>(
        &c.client,
        deployment(
            "default",
            "web",
            2,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
        ),
    )
    .await;
    create::<Pod>(&c.client, bare_pod("default", "debug")).await;
    wait_pods(&c.client, &[("web", 2), ("debug", 1)]).await;

    refused(&c, &["Pod default/debug", "--delete-bare-pods"]).await;
    Api::<Pod>::namespaced(c.client.clone(), "default")
        .delete("debug", &DeleteParams::default())
        .await
        .unwrap();

    create_namespace(
        &c.client,
        "legacy",
        json!({"cni.projectcalico.org/ipv4pools": "[\"default-ipv4-ippool\"]"}),
    )
    .await;
    refused(
        &c,
        &[
            "Namespace legacy",
            "kubectl annotate namespace legacy cni.projectcalico.org/ipv4pools='[\"new-pool\"]' --overwrite",
        ],
    )
    .await;
    Api::<Namespace>::all(c.client.clone())
        .patch(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"cni.projectcalico.org/ipv4pools": null}}}),
            ),
        )
        .await
        .unwrap();

    create_budget(
        &c.client,
        "default",
        "web",
        "web",
        json!({"minAvailable": 2}),
    )
    .await;
    refused(
        &c,
        &[
            "Deployment default/web",
            "PodDisruptionBudget default/web (minAvailable 2) allows no pod to be down",
        ],
    )
    .await;
    let budgets = ApiResource {
        group: "policy".into(),
        version: "v1".into(),
        api_version: "policy/v1".into(),
        kind: "PodDisruptionBudget".into(),
        plural: "poddisruptionbudgets".into(),
    };
    Api::<DynamicObject>::namespaced_with(c.client.clone(), "default", &budgets)
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();

    wait_pods(&c.client, &[("web", 2)]).await;
    let out = c.ippool(MIGRATE, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_end_state(&c, Some("192.168.0.0/16"), "10.0.0.0/16", 26).await;
}
