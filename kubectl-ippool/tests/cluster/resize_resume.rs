//! A resize killed at its own step boundaries and inside each of its two migrations finishes
//! when run again, with the pool re-created exactly once and never deleted while in use; and a
//! resize stopped after the pool was deleted is aborted with the pool re-created as it was.

use crate::support::migration::*;
use ippool_cluster::resources::ip_pools;
use ippool_rules::model::ApiGroup;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject};
use serde_json::json;

const RESIZE: &[&str] = &[
    "resize",
    "default-ipv4-ippool",
    "--block-size",
    "27",
    "--yes",
    "--temp-cidr",
    "10.99.0.0/24",
];

#[tokio::test]
async fn a_resize_killed_anywhere_finishes_when_run_again() {
    let c = start(2, 200).await;
    create_pool(
        &c.client,
        "default-ipv4-ippool",
        "10.0.0.0/16",
        26,
        "Always",
    )
    .await;
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    for name in ["a", "b"] {
        create::<Deployment>(&c.client, deployment("default", name, 2, rolling.clone())).await;
    }
    wait_pods(&c.client, &[("a", 2), ("b", 2)]).await;
    let deletions = DeletionRecorder::start(&c.client).await;
    let pools = Api::<DynamicObject>::all_with(c.client.clone(), &ip_pools(ApiGroup::CrdV1));

    for point in [
        "to-temp/disable-old",
        "to-temp/mid-move",
        "to-temp/delete-old",
        "clean-old-cidr",
        "recreate",
        "back/create-new",
        "back/mid-move",
        "back/release-old",
        "unlock",
    ] {
        let out = c.ippool(RESIZE, &[("IPPOOL_FAULT_AT", point)]).await;
        assert_eq!(
            out.status.code(),
            Some(137),
            "fault at {point}: {}",
            text(&out)
        );
        if point == "recreate" {
            assert!(
                pools
                    .get_opt("default-ipv4-ippool")
                    .await
                    .unwrap()
                    .is_none(),
                "deleted, not yet re-created"
            );
        }
    }
    let out = c.ippool(RESIZE, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_end_state(&c, Some("10.99.0.0/24"), "10.0.0.0/16", 27).await;
    assert_eq!(
        deletions.check(),
        2,
        "the pool and the temporary pool, once each"
    );
    assert_eq!(
        pools.get("default-ipv4-ippool").await.unwrap().data["spec"]["blockSize"],
        27
    );

    // Stopped after the pool was deleted: --abort re-creates it as it was.
    let out = c
        .ippool(
            &[
                "resize",
                "default-ipv4-ippool",
                "--block-size",
                "26",
                "--yes",
                "--temp-cidr",
                "10.98.0.0/24",
            ],
            &[("IPPOOL_FAULT_AT", "recreate")],
        )
        .await;
    assert_eq!(out.status.code(), Some(137), "{}", text(&out));
    assert!(
        pools
            .get_opt("default-ipv4-ippool")
            .await
            .unwrap()
            .is_none()
    );
    let abort = c.ippool(&["resize", "--abort"], &[]).await;
    assert!(abort.status.success(), "{}", text(&abort));
    assert!(
        text(&abort).contains("re-created with its original definition"),
        "{}",
        text(&abort)
    );
    let pool = pools.get("default-ipv4-ippool").await.unwrap();
    assert_eq!(pool.data["spec"]["blockSize"], 27);
    assert_eq!(pool.data["spec"]["cidr"], "10.0.0.0/16");
}
