//! `status` reads a migration's progress from its record wherever it runs: after the process
//! running it died it says so (stalled, with the steps done and the pods still in the old pool);
//! `--follow` beside the resumed run shows it to the end.

use std::collections::BTreeSet;

use crate::support::migration::*;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

const MIGRATE: &[&str] = &[
    "migrate",
    "--from",
    "default-ipv4-ippool",
    "--to",
    "new-pool",
    "--cidr",
    "10.0.0.0/16",
    "--yes",
    "--concurrency",
    "1",
];

fn done(line: &Value) -> BTreeSet<String> {
    line["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["state"] == "done")
        .map(|s| s["step"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn status_follows_a_migration_wherever_it_runs() {
    let c = start(3, 300).await;
    create_default_pool(&c.client).await;
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    for name in ["a", "b"] {
        create::<Deployment>(&c.client, deployment("default", name, 2, rolling.clone())).await;
    }
    wait_pods(&c.client, &[("a", 2), ("b", 2)]).await;

    let idle = c.ippool(&["status"], &[]).await;
    assert!(idle.status.success(), "{}", text(&idle));
    assert_eq!(stdout(&idle).trim(), "no migration or resize in progress");

    // The run dies before moving workloads: its record stays, and no process holds it.
    let killed = c
        .ippool(MIGRATE, &[("IPPOOL_FAULT_AT", "move-workloads")])
        .await;
    assert_eq!(killed.status.code(), Some(137), "{}", text(&killed));
    let stalled = c.ippool(&["status"], &[]).await;
    let shown = stdout(&stalled);
    assert!(stalled.status.success(), "{}", text(&stalled));
    assert!(
        shown.starts_with("migrate:default-ipv4-ippool->new-pool: stalled"),
        "{shown}"
    );
    assert!(
        shown.contains("run the same command again to resume"),
        "{shown}"
    );
    assert!(
        shown.contains("  ✓ create-new\n  ✓ disable-old\n  ▶ move-workloads\n  · verify\n"),
        "{shown}"
    );
    assert!(
        shown.contains("pods with an address in default-ipv4-ippool (192.168.0.0/16): 4"),
        "{shown}"
    );

    // Run again, and follow it from another process to the end.
    let (resumed, followed) = tokio::join!(
        c.ippool(MIGRATE, &[]),
        c.ippool(&["status", "--follow", "-o", "json"], &[])
    );
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(followed.status.success(), "{}", text(&followed));
    let lines: Vec<Value> = stdout(&followed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<&str> = lines.iter().map(|l| l["state"].as_str().unwrap()).collect();
    assert_eq!(states.last(), Some(&"finished"), "{states:?}");
    assert!(states.contains(&"running"), "{states:?}");
    for pair in lines[..lines.len() - 1].windows(2) {
        assert!(
            done(&pair[0]).is_subset(&done(&pair[1])),
            "steps done only grow: {pair:?}"
        );
    }
    assert!(
        lines.iter().any(|l| done(l).contains("move-workloads")),
        "the follow saw workloads moved: {lines:?}"
    );

    let after = c.ippool(&["status"], &[]).await;
    assert_eq!(stdout(&after).trim(), "no migration or resize in progress");
    assert_end_state(&c, Some("192.168.0.0/16"), "10.0.0.0/16", 26).await;
}
