//! `gc` on seeded leftovers: the dry run lists exactly the safe removals and touches nothing;
//! `--yes` removes only those; a block that gains an allocation mid-release is kept (the concurrent
//! allocation wins) and its affinity restored.

use ippool_cluster::api::CalicoKind;
use std::sync::{Arc, Mutex};

use crate::support::{
    Holder, control_plane, crds, create_affinity, create_namespace, create_node, create_pod,
    create_pool, ippool, names_of, pool, seed_block,
};
use harness::Expected;
use ippool_cluster::api::ServedApis;
use ippool_cluster::client::CalicoClient;
use ippool_cluster::release::{ReleaseStep, Released, release_block};
use ippool_ipam::allocation::{self, AffinityState};
use ippool_ipam::gc::{GcCandidate, gc_plan};
use ippool_ipam::snapshot::Parts;
use ippool_rules::model::{BlockAffinity, IpamBlock};
use std::collections::BTreeMap;

async fn seed_leftovers(client: &kube::Client) {
    create_pool(client, &pool("default", "10.10.0.0/16", 26, false)).await;
    create_node(client, "node-a").await;
    create_node(client, "node-b").await;
    create_namespace(client, "shop").await;
    // In use, right size: stays.
    let used = seed_block(
        client,
        "10.10.0.0/26",
        Some("node-a"),
        Some(AffinityState::Confirmed),
        &[Holder::Pod {
            namespace: "shop",
            pod: "web-1",
            node: "node-a",
            container: "c1",
        }],
    )
    .await;
    create_pod(client, "shop", "web-1", "node-a", Some(used[0]), "c1", None).await;
    // Left by an old /25 blockSize, empty (#3589).
    seed_block(
        client,
        "10.10.1.0/25",
        Some("node-a"),
        Some(AffinityState::Confirmed),
        &[],
    )
    .await;
    // Left by a deleted pool, empty (#11175).
    seed_block(
        client,
        "10.99.0.0/26",
        Some("node-b"),
        Some(AffinityState::Confirmed),
        &[],
    )
    .await;
    // Left by a deleted pool, still holding a (leaked) address: kept.
    seed_block(
        client,
        "10.99.0.64/26",
        None,
        None,
        &[Holder::Pod {
            namespace: "shop",
            pod: "old-0",
            node: "node-b",
            container: "old",
        }],
    )
    .await;
    // Affinity whose block is gone (#10778, #4471).
    create_affinity(
        client,
        "node-a",
        "10.10.2.0/26",
        AffinityState::PendingDeletion,
    )
    .await;
    // A release stuck half-way: affinity pendingDeletion, block empty.
    seed_block(
        client,
        "10.10.3.0/26",
        Some("node-b"),
        Some(AffinityState::PendingDeletion),
        &[],
    )
    .await;
    // Affinity of a node that no longer exists, block empty.
    seed_block(
        client,
        "10.10.4.0/26",
        Some("gone"),
        Some(AffinityState::Confirmed),
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_lists_then_removes_only_safe_leftovers() {
    let cp = control_plane();
    let client = cp.client().await;
    seed_leftovers(&client).await;
    let blocks_before = names_of(&client, CalicoKind::Block).await;
    let affinities_before = names_of(&client, CalicoKind::Affinity).await;

    let orphaned = ippool(&cp, &["blocks", "--orphaned"]).expect(0);
    for needle in [
        "10.99.0.0/26",
        "no pool covers it",
        "/25 block in pool default whose blockSize is 26",
        "affinity of a block that does not exist (state pendingDeletion)",
        "affinity stuck in pendingDeletion",
        "affinity of a node that no longer exists",
    ] {
        assert!(
            orphaned.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            orphaned.stdout
        );
    }
    assert!(
        !orphaned.stdout.contains("10.10.0.0/26 "),
        "{}",
        orphaned.stdout
    );

    let dry = ippool(&cp, &["gc"]).expect(0);
    assert!(
        dry.stdout.contains("Dry run: 5 object(s) would be removed"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("kept block 10-99-0-64-26 (10.99.0.64/26)"),
        "{}",
        dry.stdout
    );
    assert_eq!(names_of(&client, CalicoKind::Block).await, blocks_before);
    assert_eq!(
        names_of(&client, CalicoKind::Affinity).await,
        affinities_before
    );

    let narrowed = ippool(&cp, &["gc", "--cidr", "10.99.0.0/16", "-o", "json"]).expect(0);
    let plan: serde_json::Value = serde_json::from_str(&narrowed.stdout).unwrap();
    assert_eq!(plan["candidates"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["candidates"][0]["reason"], "blockOutsidePools");

    let done = ippool(&cp, &["gc", "--yes"]).expect(0);
    assert!(
        done.stdout.contains("Removed 5 of 5 leftover(s); 1 kept."),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains("marked pendingDeletion"),
        "{}",
        done.stdout
    );
    assert_eq!(
        names_of(&client, CalicoKind::Block).await,
        ["10-10-0-0-26", "10-99-0-64-26"]
    );
    assert_eq!(
        names_of(&client, CalicoKind::Affinity).await,
        ["node-a-10-10-0-0-26"]
    );

    let again = ippool(&cp, &["gc"]).expect(0);
    assert!(
        again.stdout.starts_with("Nothing to remove.\n"),
        "{}",
        again.stdout
    );
    // The kept block's address is leaked on purpose; gc leaves it to `delete --release-leaked`.
    cp.judge_ipam(&Expected::clean().leaked(["10.99.0.64".parse().unwrap()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_allocation_wins_the_block() {
    let cp = control_plane();
    let client = cp.client().await;
    create_pool(&client, &pool("default", "10.10.0.0/16", 26, false)).await;
    create_node(&client, "node-a").await;
    seed_block(
        &client,
        "10.99.0.0/26",
        Some("node-a"),
        Some(AffinityState::Confirmed),
        &[],
    )
    .await;

    let apis = ServedApis::discover(&client).await.unwrap();
    let snapshot = ippool_cluster::load::snapshot(&client, &apis, Parts::ALL)
        .await
        .unwrap();
    let plan = gc_plan(&snapshot, None);
    let [
        GcCandidate::Block {
            block, affinities, ..
        },
    ] = plan.candidates.as_slice()
    else {
        panic!("expected one block candidate, got {:?}", plan.candidates);
    };

    // The moment gc has marked the affinity, an allocation lands in the block (as a CNI ADD
    // on node-a would), changing its resourceVersion.
    let steps = Arc::new(Mutex::new(Vec::new()));
    let blocks = crds(&client);
    let mut observer = async |step: ReleaseStep| {
        if matches!(step, ReleaseStep::AffinityMarked { .. }) {
            let mut current = blocks
                .get::<IpamBlock>(CalicoKind::Block, "10-99-0-0-26")
                .await
                .unwrap()
                .unwrap();
            let owner = BTreeMap::from([
                ("namespace".to_owned(), "shop".to_owned()),
                ("pod".to_owned(), "late".to_owned()),
                ("node".to_owned(), "node-a".to_owned()),
            ]);
            allocation::assign(&mut current, 1, "k8s-pod-network.late", &owner).unwrap();
            blocks.replace(CalicoKind::Block, &current).await.unwrap();
        }
        steps.lock().unwrap().push(step);
    };
    let calico = CalicoClient::new(client.clone(), apis);
    let outcome = release_block(&calico, block, affinities, true, &mut observer)
        .await
        .unwrap();
    assert_eq!(outcome, Released::LostRace { allocations: 1 });
    let steps = steps.lock().unwrap().clone();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(matches!(steps[0], ReleaseStep::AffinityMarked { .. }));
    assert!(matches!(steps[1], ReleaseStep::AffinityRestored { .. }));

    let kept = blocks
        .get::<IpamBlock>(CalicoKind::Block, "10-99-0-0-26")
        .await
        .unwrap()
        .expect("block kept");
    assert_eq!(kept.allocated_count(), 1);
    let affinity = crds(&client)
        .get::<BlockAffinity>(CalicoKind::Affinity, "node-a-10-99-0-0-26")
        .await
        .unwrap()
        .expect("affinity kept");
    assert_eq!(affinity.spec.state, "confirmed");

    // The next gc sees a block in use and keeps it.
    let next = ippool(&cp, &["gc"]).expect(0);
    assert!(
        next.stdout.contains("kept block 10-99-0-0-26"),
        "{}",
        next.stdout
    );
    assert!(
        next.stdout.contains("1 address(es) are still allocated"),
        "{}",
        next.stdout
    );
    // The late allocation stands for a CNI ADD whose pod and handle this test does not create.
    let judged = cp.judge_ipam(&Expected {
        missing_handles: vec!["k8s-pod-network.late".to_owned()],
        ..Expected::clean().leaked(["10.99.0.0".parse().unwrap()])
    });
    assert_eq!(judged.problems, 1);
}
