//! `capacity` on seeded IPAM state, with calicoctl as the judge of the counts both show: every
//! pool's and block's addresses in use and in all, as `calicoctl ipam show --show-blocks` prints them.

use harness::Expected;
use ipnet::IpNet;
use ippool_ipam::allocation::AffinityState;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::support::{
    Holder, control_plane, create_namespace, create_node, create_pod, create_pool, ippool, pool,
    seed_block,
};

#[tokio::test(flavor = "multi_thread")]
async fn capacity_agrees_with_calicoctl_and_projects_growth() {
    let cp = control_plane();
    let client = cp.client().await;
    create_pool(&client, &pool("small", "10.50.0.0/24", 26, false)).await;
    create_pool(&client, &pool("big", "10.60.0.0/16", 26, false)).await;
    create_namespace(&client, "shop").await;
    for node in ["node-a", "node-b"] {
        create_node(&client, node).await;
    }
    let holders = [("web-1", "c1"), ("web-2", "c2")].map(|(pod, container)| Holder::Pod {
        namespace: "shop",
        pod,
        node: "node-a",
        container,
    });
    let used = seed_block(
        &client,
        "10.50.0.0/26",
        Some("node-a"),
        Some(AffinityState::Confirmed),
        &holders,
    )
    .await;
    for ((pod, container), address) in [("web-1", "c1"), ("web-2", "c2")].iter().zip(&used) {
        create_pod(
            &client,
            "shop",
            pod,
            "node-a",
            Some(*address),
            container,
            None,
        )
        .await;
    }
    seed_block(
        &client,
        "10.50.0.64/26",
        Some("node-b"),
        Some(AffinityState::Confirmed),
        &[],
    )
    .await;
    // IPAMConfig's limit: node-a and node-b hold one block of `small` each.
    let config = json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMConfig",
        "metadata": {"name": "default"}, "spec": {"strictAffinity": false,
        "autoAllocateBlocks": true, "maxBlocksPerHost": 1}});
    Api::<DynamicObject>::all_with(
        client.clone(),
        &ippool_cluster::resources::ipam_configs(ippool_rules::model::ApiGroup::CrdV1),
    )
    .patch(
        "default",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&config),
    )
    .await
    .unwrap();

    let run = ippool(&cp, &["capacity", "-o", "json"]).expect(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["maxBlocksPerHost"], 1);
    let item = |name: &str| {
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["pool"] == name)
            .unwrap()
            .clone()
    };
    let small = item("small");
    assert_eq!(small["blocksClaimed"], 2);
    assert_eq!(small["blocksClaimable"], 2);
    assert_eq!(small["addressesStranded"], 126);
    assert!(
        small["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["atBlockLimit"] == true),
        "{small}"
    );

    // calicoctl's counts, pool by pool and block by block.
    let show = cp.ipam_show().unwrap();
    for name in ["small", "big"] {
        let item = item(name);
        let cidr: IpNet = item["cidr"].as_str().unwrap().parse().unwrap();
        let usage = show.pools[&cidr];
        assert_eq!(
            item["addressesInUse"], usage.in_use,
            "{name}: {}",
            show.text
        );
        assert_eq!(item["addressesTotal"], usage.total, "{name}: {}", show.text);
    }
    let in_blocks: u64 = show
        .blocks
        .iter()
        .filter(|(net, _)| "10.50.0.0/24".parse::<IpNet>().unwrap().contains(*net))
        .map(|(_, u)| u.in_use)
        .sum();
    assert_eq!(small["addressesInUse"], in_blocks);

    // Two more nodes of 110 pods: `small` cannot hold them, and a node may claim only one block.
    let grow = ippool(&cp, &["capacity", "small", "--nodes", "2"]).expect(1);
    assert!(
        grow.stdout.contains("small: 2 more node(s), every node up to 110 pods (2 block(s) each): runs out: a full node needs 2 blocks of /26, more than maxBlocksPerHost 1"),
        "{}",
        grow.stdout
    );
    assert!(
        grow.stdout
            .contains("fix: kubectl ippool resize small --block-size 25"),
        "{}",
        grow.stdout
    );
    let fits = ippool(&cp, &["capacity", "big", "--pods-per-node", "30"]).expect(0);
    assert!(
        fits.stdout
            .contains("big: 0 more node(s), every node up to 30 pods (1 block(s) each): fits"),
        "{}",
        fits.stdout
    );
    let missing = ippool(&cp, &["capacity", "nope"]).expect(2);
    assert!(
        missing.stderr.contains("IP pool \"nope\" does not exist"),
        "{}",
        missing.stderr
    );
    cp.judge_ipam(&Expected::clean());
}
