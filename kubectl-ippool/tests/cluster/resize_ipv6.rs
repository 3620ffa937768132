//! An IPv6 pool's blockSize changed 122 → 124 on an IPv6-only cluster, with the temporary pool
//! chosen inside the cluster CIDR given on the command line.

use crate::support::migration::*;
use ippool_cluster::resources::ip_pools;
use ippool_rules::model::ApiGroup;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject};
use serde_json::json;

#[tokio::test]
async fn an_ipv6_pool_is_resized() {
    let c = start(2, 100).await;
    create_pool(&c.client, "v6", "fd00:10:0:1::/112", 122, "Never").await;
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    create::<Deployment>(&c.client, deployment("default", "web", 3, rolling)).await;
    let pods = wait_pods(&c.client, &[("web", 3)]).await;
    for pod in &pods {
        assert!(
            addresses(pod).iter().all(|a| a.is_ipv6()),
            "{:?}",
            pod.status
        );
    }

    let out = c
        .ippool(
            &[
                "resize",
                "v6",
                "--block-size",
                "124",
                "--yes",
                "--cluster-cidr",
                "fd00:10::/48",
            ],
            &[],
        )
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("blockSize 122 → 124"), "{stdout}");
    assert_end_state(&c, None, "fd00:10:0:1::/112", 124).await;
    let pool = Api::<DynamicObject>::all_with(c.client.clone(), &ip_pools(ApiGroup::CrdV1))
        .get("v6")
        .await
        .unwrap();
    assert_eq!(pool.data["spec"]["blockSize"], 124);
}
