//! Availability while pods move, measured by a watcher of every pod: a Deployment of 4 replicas
//! with maxUnavailable 1 never has fewer than 3 Ready pods, and a Deployment bounded by a
//! PodDisruptionBudget with minAvailable 2 never has fewer than 2 — its own strategy would take
//! 2 down at once, so the plan moves it by eviction, which the budget governs.

use crate::support::migration::*;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

#[tokio::test]
async fn rollouts_and_evictions_keep_the_promised_pods_ready() {
    let c = start(3, 1000).await;
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
            4,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}),
        ),
    )
    .await;
    create::<Deployment>(
        &c.client,
        deployment(
            "default",
            "api",
            3,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0}}),
        ),
    )
    .await;
    create_budget(
        &c.client,
        "default",
        "api",
        "api",
        json!({"minAvailable": 2}),
    )
    .await;
    wait_pods(&c.client, &[("web", 4), ("api", 3)]).await;
    let availability = AvailabilityRecorder::start(&c.client).await;

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
                "--concurrency",
                "2",
            ],
            &[],
        )
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Deployment default/api: evict"), "{stdout}");
    assert!(
        stdout.contains("PDB default/api (minAvailable 2, allows 1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Deployment default/web: rollout-restart"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("evicted pod default/api-").count(),
        3,
        "{stdout}"
    );

    let least = availability.least();
    assert!(
        least["web"] >= 3,
        "web dropped to {} Ready pods",
        least["web"]
    );
    assert!(
        least["api"] >= 2,
        "api dropped to {} Ready pods",
        least["api"]
    );
    assert_end_state(&c, Some("192.168.0.0/16"), "10.0.0.0/16", 26).await;
}
