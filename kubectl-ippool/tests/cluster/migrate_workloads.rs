//! Every kind of mover in one migration: a StatefulSet with RollingUpdate (rollout restart), a
//! StatefulSet and a DaemonSet with OnDelete (evictions), a DaemonSet with RollingUpdate and no
//! maxSurge (named as a disruption), a ReplicaSet without a Deployment, a
//! Job's running pod (with --evict-jobs) and a bare pod (with --delete-bare-pods).

use crate::support::migration::*;
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

#[tokio::test]
async fn statefulsets_daemonsets_ondelete_jobs_and_bare_pods_move() {
    let c = start(3, 200).await;
    create_pool(
        &c.client,
        "default-ipv4-ippool",
        "192.168.0.0/16",
        26,
        "Always",
    )
    .await;
    create::<StatefulSet>(
        &c.client,
        stateful_set("default", "db", 3, json!({"type": "RollingUpdate"})),
    )
    .await;
    create::<StatefulSet>(
        &c.client,
        stateful_set("default", "cache", 2, json!({"type": "OnDelete"})),
    )
    .await;
    create::<DaemonSet>(
        &c.client,
        daemon_set("default", "agent", json!({"type": "RollingUpdate"})),
    )
    .await;
    create::<DaemonSet>(
        &c.client,
        daemon_set("default", "logs", json!({"type": "OnDelete"})),
    )
    .await;
    create::<ReplicaSet>(
        &c.client,
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": "loose", "namespace": "default"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "loose"}},
                        "template": {"metadata": {"labels": {"app": "loose"}},
                                     "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1"}],
                                              "terminationGracePeriodSeconds": 0}}}}),
    )
    .await;
    create::<Job>(
        &c.client,
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "batch", "namespace": "default"},
               "spec": {"backoffLimit": 6, "template": {"metadata": {"labels": {"app": "batch"}},
                        "spec": {"restartPolicy": "Never",
                                 "containers": [{"name": "main", "image": "registry.invalid/app:1"}],
                                 "terminationGracePeriodSeconds": 0}}}}),
    )
    .await;
    create::<Pod>(&c.client, bare_pod("default", "debug")).await;
    wait_pods(
        &c.client,
        &[
            ("db", 3),
            ("cache", 2),
            ("agent", 3),
            ("logs", 3),
            ("loose", 2),
            ("batch", 1),
            ("debug", 1),
        ],
    )
    .await;

    let dry = c
        .ippool(
            &[
                "migrate",
                "--from",
                "default-ipv4-ippool",
                "--to",
                "new-pool",
                "--cidr",
                "10.0.0.0/16",
                "--dry-run",
            ],
            &[],
        )
        .await;
    let plan = text(&dry);
    assert_eq!(
        dry.status.code(),
        Some(1),
        "a Job and a bare pod block without the flags: {plan}"
    );
    assert!(
        plan.contains("--evict-jobs") && plan.contains("--delete-bare-pods"),
        "{plan}"
    );

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
                "--evict-jobs",
                "--delete-bare-pods",
                "--concurrency",
                "3",
            ],
            &[],
        )
        .await;
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for expected in [
        "StatefulSet default/db: rollout-restart",
        "StatefulSet default/cache: evict",
        "DaemonSet default/agent: rollout-restart",
        "DaemonSet default/logs: evict",
        "ReplicaSet default/loose: evict",
        "Job default/batch: evict",
        "Pod default/debug: delete",
        "DaemonSet without maxSurge",
    ] {
        assert!(all.contains(expected), "{expected:?} missing in {all}");
    }
    wait_pods(
        &c.client,
        &[
            ("db", 3),
            ("cache", 2),
            ("agent", 3),
            ("logs", 3),
            ("loose", 2),
            ("batch", 1),
        ],
    )
    .await;
    assert_end_state(&c, Some("192.168.0.0/16"), "10.0.0.0/16", 26).await;
}
