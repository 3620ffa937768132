//! Two writers on one pool: a disable whose read goes stale re-reads, re-validates and writes
//! again, and neither writer's change is lost.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{control_plane, crds, create_pool, ippool, pool};
use harness::Expected;
use ippool_cluster::api::{CalicoKind, ServedApis};
use ippool_cluster::client::CalicoClient;
use ippool_cluster::pool_write::{Decision, Updated, update_pool};
use ippool_rules::model::IpPool;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[error("never refused")]
struct Never;

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_disable_rereads_and_keeps_the_other_writers_change() {
    let cp = control_plane();
    let client = cp.client().await;
    create_pool(&client, &pool("p", "10.60.0.0/16", 26, false)).await;
    let pools = crds(&client);
    let calico = CalicoClient::new(client.clone(), ServedApis::discover(&client).await.unwrap());
    let calls = AtomicUsize::new(0);
    let mut decide = async |current: &IpPool| -> Result<Decision, Never> {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            // Another writer changes the pool between our read and our write.
            let mut other = current.clone();
            other
                .metadata
                .labels
                .insert("team".to_owned(), "net".to_owned());
            pools
                .replace(CalicoKind::Pool, &other)
                .await
                .expect("the other writer wins the first round");
        } else {
            assert_eq!(
                current.metadata.labels.get("team").map(String::as_str),
                Some("net")
            );
        }
        Ok(Decision::Patch(json!({"spec": {"disabled": true}})))
    };
    let outcome = update_pool(&calico, "p", false, &mut decide).await.unwrap();
    let Updated::Written {
        pool: written,
        attempts,
    } = outcome
    else {
        panic!("expected a write, got {outcome:?}");
    };
    assert_eq!(attempts, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(written.spec.disabled, Some(true));
    let stored = pools
        .get::<IpPool>(CalicoKind::Pool, "p")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.spec.disabled, Some(true));
    assert_eq!(
        stored.metadata.labels.get("team").map(String::as_str),
        Some("net")
    );
    cp.judge_ipam(&Expected::clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_disable_and_label_writers_lose_nothing() {
    let cp = control_plane();
    let client = cp.client().await;
    create_pool(&client, &pool("keep", "10.61.0.0/16", 26, false)).await;
    create_pool(&client, &pool("p", "10.62.0.0/16", 26, false)).await;
    let pools = crds(&client);
    // A writer adding labels one by one, each a read-modify-write conditional on the version read.
    let labeller = {
        let pools = pools.clone();
        tokio::spawn(async move {
            for i in 0..15 {
                loop {
                    let mut current = pools
                        .get::<IpPool>(CalicoKind::Pool, "p")
                        .await
                        .unwrap()
                        .unwrap();
                    current
                        .metadata
                        .labels
                        .insert(format!("l{i}"), "x".to_owned());
                    match pools.replace(CalicoKind::Pool, &current).await {
                        Ok(_) => break,
                        Err(e) if e.is_conflict() => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        })
    };
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let kubeconfig = cp.kubeconfig().to_owned();
            std::thread::spawn(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ippool"))
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .args(["disable", "p"])
                    .output()
                    .expect("kubectl-ippool runs")
            })
        })
        .collect();
    for run in runs {
        let output = run.join().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("/p disabled") || stdout.contains("/p already disabled"),
            "{stdout}"
        );
    }
    labeller.await.unwrap();
    let stored = pools
        .get::<IpPool>(CalicoKind::Pool, "p")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.spec.disabled, Some(true));
    assert_eq!(
        stored.metadata.labels.len(),
        15,
        "{:?}",
        stored.metadata.labels
    );
    ippool(&cp, &["enable", "p"]).expect(0);
    cp.judge_ipam(&Expected::clean());
}
