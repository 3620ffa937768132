//! `migrate --cidr auto` and `resize --block-size auto` on Calico's tutorial: the new pool is the
//! first free range of the cluster CIDR big enough for the nodes (kubeadm-config says 10.0.0.0/8;
//! the fake nodes report maxPods 250), and the block size is the one `advise` recommends.

use crate::support::migration::*;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

#[tokio::test]
async fn auto_picks_a_free_range_and_the_advised_block_size() {
    let c = start(3, 0).await;
    create_default_pool(&c.client).await;
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    create::<Deployment>(&c.client, deployment("default", "web", 3, rolling)).await;
    wait_pods(&c.client, &[("web", 3)]).await;

    let migrate = [
        "migrate",
        "--from",
        "default-ipv4-ippool",
        "--to",
        "new-pool",
        "--cidr",
        "auto",
        "--yes",
    ];
    let out = c.ippool(&migrate, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    // 3 nodes of 251 addresses in /26 blocks need a /22; doubled a /21; at least the old /16.
    assert!(
        stdout(&out).starts_with(
            "--cidr auto: 10.0.0.0/16 (the first free /16 in the cluster CIDR 10.0.0.0/8"
        ),
        "{}",
        text(&out)
    );
    assert_end_state(&c, Some("192.168.0.0/16"), "10.0.0.0/16", 26).await;

    let resize = ["resize", "new-pool", "--block-size", "auto", "--yes"];
    let out = c.ippool(&resize, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    // 251 addresses a node: a /24 holds one node.
    assert!(
        stdout(&out).starts_with("--block-size auto: 24 (advised for 3 node(s) of up to 250 pods"),
        "{}",
        text(&out)
    );
    assert_end_state(&c, None, "10.0.0.0/16", 24).await;

    let again = c.ippool(&resize, &[]).await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again)
            .contains("pool new-pool already has blockSize 24, the size advised for this cluster"),
        "{}",
        text(&again)
    );
}
