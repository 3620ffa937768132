//! Block lifecycle as Calico has it: an emptied block keeps its node affinity, while an emptied
//! block without affinity (left by calicoctl's pool deletion) is deleted.

use ippool_cluster::api::CalicoKind;
use ippool_ipam::allocation;
use ippool_ipam::names;
use ippool_rules::model::{BlockAffinity, IpamBlock};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn empty_non_affine_blocks_are_deleted_and_affine_ones_kept() {
    let env = SimCluster::start(2).await;
    let client = &env.client;
    create_pool(
        client,
        "pool",
        json!({"cidr": "10.110.0.0/24", "blockSize": 28}),
    )
    .await;
    create_deployment(client, "default", &deployment("loose", 3, pinned("sim-0"))).await;
    create_deployment(client, "default", &deployment("kept", 2, pinned("sim-1"))).await;
    let loose = wait_running(client, "default", "app=loose", 3).await;
    let kept = wait_running(client, "default", "app=kept", 2).await;
    let ipam = assert_calico_consistent(client, &[loose, kept].concat()).await;
    let block_of = |node: &str| {
        ipam.blocks
            .iter()
            .find(|b| affine_node(b) == Some(node))
            .unwrap_or_else(|| panic!("{node} has a block"))
            .clone()
    };
    let (mut loose_block, kept_block) = (block_of("sim-0"), block_of("sim-1"));
    let loose_cidr = loose_block.cidr().unwrap();

    // What calicoctl's pool deletion does to a block that still holds addresses: it releases
    // the node's affinity, leaving the block without one.
    let calico = crds(client);
    let affinity = names::block_affinity_name("sim-0", &loose_cidr);
    assert!(
        calico
            .delete(CalicoKind::Affinity, &affinity, None, false)
            .await
            .unwrap()
    );
    loose_block.spec.affinity = None;
    calico
        .replace(CalicoKind::Block, &loose_block)
        .await
        .unwrap();

    scale(client, "default", "loose", 0).await;
    scale(client, "default", "kept", 0).await;
    // A pod's deletion completes only after its address is released.
    wait_running(client, "default", "app=loose", 0).await;
    wait_running(client, "default", "app=kept", 0).await;

    assert!(
        calico
            .get::<IpamBlock>(CalicoKind::Block, &names::block_name(&loose_cidr))
            .await
            .unwrap()
            .is_none(),
        "the emptied block without affinity is deleted"
    );
    let kept_cidr = kept_block.cidr().unwrap();
    let kept_now = calico
        .get::<IpamBlock>(CalicoKind::Block, &names::block_name(&kept_cidr))
        .await
        .unwrap()
        .expect("the emptied affine block stays");
    assert!(allocation::allocations(&kept_now).unwrap().is_empty());
    assert_eq!(affine_node(&kept_now), Some("sim-1"));
    assert!(
        calico
            .get::<BlockAffinity>(
                CalicoKind::Affinity,
                &names::block_affinity_name("sim-1", &kept_cidr)
            )
            .await
            .unwrap()
            .is_some()
    );
    let ipam = Ipam::read(client).await;
    assert!(pod_handles(&ipam).is_empty());
    assert!(
        ipam.handles.is_empty(),
        "handles of deleted pods are gone: {:?}",
        ipam.handles
    );
    env.cp.judge_ipam(&Expected::clean());
}
