//! One migration at a time: while a migration holds the lock (here: killed after disabling the
//! old pool), a different migration or a resize is refused, naming the one in progress;
//! `--abort` enables the old pool again and releases the lock, leaving pods where they are; then
//! the other migration may run.

use crate::support::migration::*;
use harness::Expected;
use ippool_cluster::resources::ip_pools;
use ippool_rules::model::ApiGroup;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};

#[tokio::test]
async fn a_second_migration_is_refused_until_the_first_is_aborted() {
    let c = start(2, 0).await;
    create_pool(
        &c.client,
        "default-ipv4-ippool",
        "192.168.0.0/16",
        26,
        "Always",
    )
    .await;
    create_pool(&c.client, "side", "10.20.0.0/16", 26, "Always").await;
    create::<Deployment>(
        &c.client,
        deployment("default", "web", 2, json!({"type": "RollingUpdate"})),
    )
    .await;
    wait_pods(&c.client, &[("web", 2)]).await;
    let pools = Api::<DynamicObject>::all_with(c.client.clone(), &ip_pools(ApiGroup::CrdV1));

    let first = c
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
            ],
            &[("IPPOOL_FAULT_AT", "move-workloads")],
        )
        .await;
    assert_eq!(first.status.code(), Some(137), "{}", text(&first));
    assert_eq!(
        pools.get("default-ipv4-ippool").await.unwrap().data["spec"]["disabled"],
        true
    );

    let second = c
        .ippool(
            &[
                "migrate",
                "--from",
                "side",
                "--to",
                "other",
                "--cidr",
                "10.30.0.0/16",
                "--yes",
            ],
            &[],
        )
        .await;
    let all = text(&second);
    assert_eq!(second.status.code(), Some(2), "{all}");
    assert!(all.contains("another migration holds the lock"), "{all}");
    assert!(
        all.contains("migrate default-ipv4-ippool → new-pool"),
        "{all}"
    );
    assert!(all.contains("--abort"), "{all}");
    assert!(
        pools.get_opt("other").await.unwrap().is_none(),
        "nothing created"
    );

    let resize = c
        .ippool(&["resize", "side", "--block-size", "28", "--yes"], &[])
        .await;
    assert_eq!(resize.status.code(), Some(2), "{}", text(&resize));
    assert!(text(&resize).contains("another migration holds the lock"));

    // A dry run still shows its plan, with the lock as a warning.
    let dry = c
        .ippool(
            &[
                "migrate",
                "--from",
                "side",
                "--to",
                "other",
                "--cidr",
                "10.30.0.0/16",
                "--dry-run",
                "-o",
                "json",
            ],
            &[],
        )
        .await;
    assert!(dry.status.success(), "{}", text(&dry));
    let events = events(&dry);
    assert!(events.iter().any(|e| {
        e["event"] == "warning"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("another migration holds the lock")
    }));
    assert_eq!(events.last().unwrap()["outcome"], "dry-run");

    let abort = c.ippool(&["migrate", "--abort", "-o", "json"], &[]).await;
    assert!(abort.status.success(), "{}", text(&abort));
    assert_eq!(events_last(&abort)["outcome"], "aborted");
    assert_eq!(
        pools.get("default-ipv4-ippool").await.unwrap().data["spec"]["disabled"],
        false
    );
    assert!(
        pools.get_opt("new-pool").await.unwrap().is_some(),
        "pools stay as they are"
    );
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(c.client.clone(), "kube-system");
    assert!(leases.get_opt("ippool-migration").await.unwrap().is_none());

    let again = c.ippool(&["migrate", "--abort"], &[]).await;
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again).contains("no migration is in progress"),
        "{}",
        text(&again)
    );

    let second = c
        .ippool(
            &[
                "migrate",
                "--from",
                "side",
                "--to",
                "other",
                "--cidr",
                "10.30.0.0/16",
                "--yes",
            ],
            &[],
        )
        .await;
    assert!(second.status.success(), "{}", text(&second));
    assert!(pools.get_opt("side").await.unwrap().is_none());
    c.cp.judge_ipam(&Expected::clean());
}

fn events_last(out: &std::process::Output) -> Value {
    events(out).pop().expect("at least one event")
}
