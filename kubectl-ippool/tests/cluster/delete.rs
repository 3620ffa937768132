//! `delete` and leaked allocations: listed and refused without `--release-leaked`; with it,
//! released (block, handle) before the pool's blocks and affinities go and the pool is deleted.

use crate::support::{
    Holder, control_plane, create_node, create_pool, ippool, names_of, pool, seed_block,
};
use harness::Expected;
use ippool_cluster::api::CalicoKind;
use ippool_ipam::allocation::AffinityState;

#[tokio::test(flavor = "multi_thread")]
async fn leaked_allocations_are_released_only_when_asked() {
    let cp = control_plane();
    let client = cp.client().await;
    create_pool(&client, &pool("old", "10.40.0.0/16", 26, true)).await;
    create_pool(&client, &pool("new", "10.41.0.0/16", 26, false)).await;
    create_node(&client, "node-a").await;
    seed_block(
        &client,
        "10.40.0.0/26",
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
    seed_block(&client, "10.40.0.64/26", None, None, &[]).await;
    let before = (
        names_of(&client, CalicoKind::Block).await,
        names_of(&client, CalicoKind::Affinity).await,
        names_of(&client, CalicoKind::Handle).await,
    );

    let refused = ippool(&cp, &["delete", "old"]).expect(1);
    assert!(
        refused.stderr.contains("1 allocation(s) in IP pool old belong to no live pod (leaked): 10.40.0.0 (was shop/web-0)"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--release-leaked"),
        "{}",
        refused.stderr
    );

    let dry = ippool(
        &cp,
        &["delete", "old", "--release-leaked", "--dry-run=server"],
    )
    .expect(0);
    assert!(
        dry.stdout.contains(
            "release 1 leaked allocation(s):\n  10.40.0.0 in block 10-40-0-0-26 (was shop/web-0)"
        ),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("affinity node-a-10-40-0-0-26 (confirmed) → pendingDeletion"),
        "{}",
        dry.stdout
    );
    let after_dry = (
        names_of(&client, CalicoKind::Block).await,
        names_of(&client, CalicoKind::Affinity).await,
        names_of(&client, CalicoKind::Handle).await,
    );
    assert_eq!(after_dry, before);
    // The server dry run sent the pool's delete for the API server to judge; the pool is still there.
    assert!(
        dry.stdout
            .contains("old deleted (server dry run: the API server accepted the delete)"),
        "{}",
        dry.stdout
    );
    let mut pools = names_of(&client, CalicoKind::Pool).await;
    pools.sort();
    assert_eq!(pools, ["new", "old"]);

    let deleted = ippool(&cp, &["delete", "old", "--release-leaked"]).expect(0);
    assert!(
        deleted
            .stdout
            .contains("ippool.crd.projectcalico.org/old deleted"),
        "{}",
        deleted.stdout
    );
    for step in [
        "ipamblock 10-40-0-0-26: released 10.40.0.0 (handle k8s-pod-network.gone)",
        "ipamhandle k8s-pod-network.gone deleted",
        "blockaffinity node-a-10-40-0-0-26 marked pendingDeletion",
        "ipamblock 10-40-0-0-26 deleted",
        "blockaffinity node-a-10-40-0-0-26 deleted",
        "ipamblock 10-40-0-64-26 deleted",
    ] {
        assert!(
            deleted.stderr.contains(step),
            "missing {step:?} in\n{}",
            deleted.stderr
        );
    }
    assert!(names_of(&client, CalicoKind::Block).await.is_empty());
    assert!(names_of(&client, CalicoKind::Affinity).await.is_empty());
    assert!(names_of(&client, CalicoKind::Handle).await.is_empty());
    assert_eq!(names_of(&client, CalicoKind::Pool).await, ["new"]);
    ippool(&cp, &["check"]).expect(0);
    cp.judge_ipam(&Expected::clean());
}
