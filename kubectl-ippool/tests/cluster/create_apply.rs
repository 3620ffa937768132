//! `create` and `apply`: validated against the live cluster before anything is written; errors
//! refuse (exit 1, nothing written), `--dry-run=client|server` write nothing, an existing pool is
//! patched in the fields that differ.

use crate::support::{control_plane, crds, ippool, names_of};
use harness::Expected;
use ippool_cluster::api::CalicoKind;
use ippool_rules::model::IpPool;

#[tokio::test(flavor = "multi_thread")]
async fn create_validates_against_the_cluster_first() {
    let cp = control_plane();
    let client = cp.client().await;

    let client_dry = ippool(
        &cp,
        &["create", "p1", "--cidr", "10.50.0.0/16", "--dry-run=client"],
    )
    .expect(0);
    assert!(
        client_dry.stdout.contains("cidr: 10.50.0.0/16"),
        "{}",
        client_dry.stdout
    );
    assert!(
        client_dry
            .stderr
            .contains("dry run: validated, nothing written"),
        "{}",
        client_dry.stderr
    );
    let server_dry = ippool(
        &cp,
        &["create", "p1", "--cidr", "10.50.0.0/16", "--dry-run=server"],
    )
    .expect(0);
    assert_eq!(
        server_dry.stdout,
        "ippool.crd.projectcalico.org/p1 created (server dry run)\n"
    );
    assert!(names_of(&client, CalicoKind::Pool).await.is_empty());

    ippool(
        &cp,
        &["create", "p1", "--cidr", "10.50.0.0/16", "--nat-outgoing"],
    )
    .expect(0);
    let exists = ippool(&cp, &["create", "p1", "--cidr", "10.51.0.0/16"]).expect(1);
    assert!(
        exists.stderr.contains("a pool named 'p1' already exists"),
        "{}",
        exists.stderr
    );

    let overlap = ippool(&cp, &["create", "p2", "--cidr", "10.50.128.0/17"]).expect(1);
    assert!(
        overlap.stderr.contains("overlaps with IPPool(p1)"),
        "{}",
        overlap.stderr
    );
    assert!(
        overlap.stderr.contains("nothing was written"),
        "{}",
        overlap.stderr
    );

    // kubeadm-config says the pod CIDR is 10.0.0.0/8.
    let outside = ippool(&cp, &["create", "p3", "--cidr", "192.168.0.0/16"]).expect(1);
    assert!(outside.stderr.contains("10.0.0.0/8"), "{}", outside.stderr);
    ippool(
        &cp,
        &[
            "create",
            "p3",
            "--cidr",
            "192.168.0.0/16",
            "--cluster-cidr",
            "192.168.0.0/16",
        ],
    )
    .expect(0);

    // validate --live judges a manifest against the same cluster state; offline it cannot know.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("p5.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p5}\nspec: {cidr: 10.50.64.0/18}\n",
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap();
    let live = ippool(&cp, &["validate", "--live", "-f", manifest]).expect(1);
    assert!(
        live.stdout.contains("overlaps with IPPool(p1)"),
        "{}",
        live.stdout
    );
    let offline = ippool(&cp, &["validate", "-f", manifest]).expect(0);
    assert!(!offline.stdout.contains("overlaps"), "{}", offline.stdout);

    let bad = ippool(
        &cp,
        &[
            "create",
            "p4",
            "--cidr",
            "10.52.0.1/16",
            "--block-size",
            "33",
        ],
    )
    .expect(1);
    assert!(bad.stderr.contains("error[IPP"), "{}", bad.stderr);
    assert_eq!(names_of(&client, CalicoKind::Pool).await, ["p1", "p3"]);
    cp.judge_ipam(&Expected::clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_patches_and_refuses() {
    let cp = control_plane();
    let client = cp.client().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pools.yaml");
    std::fs::write(
        &file,
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: a}\n\
         spec: {cidr: 10.70.0.0/16, blockSize: 26}\n---\n\
         apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: b}\n\
         spec: {cidr: 10.71.0.0/16}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let first = ippool(&cp, &["apply", "-f", path]).expect(0);
    assert_eq!(
        first.stdout,
        "ippool.crd.projectcalico.org/a created\nippool.crd.projectcalico.org/b created\n"
    );
    let again = ippool(&cp, &["apply", "-f", path]).expect(0);
    assert!(again.stdout.contains("/a unchanged"), "{}", again.stdout);

    std::fs::write(
        &file,
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: a, labels: {team: net}}\n\
         spec: {cidr: 10.70.0.0/16, natOutgoing: true}\n",
    )
    .unwrap();
    let changed = ippool(&cp, &["apply", "-f", path]).expect(0);
    assert_eq!(
        changed.stdout,
        "ippool.crd.projectcalico.org/a configured\n"
    );
    let a = crds(&client)
        .get::<IpPool>(CalicoKind::Pool, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.spec.nat_outgoing, Some(true));
    assert_eq!(
        a.spec.block_size,
        Some(26),
        "fields the manifest leaves out stay"
    );
    assert_eq!(
        a.metadata.labels.get("team").map(String::as_str),
        Some("net")
    );

    std::fs::write(
        &file,
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: a}\n\
         spec: {cidr: 10.70.0.0/16, blockSize: 24}\n",
    )
    .unwrap();
    let refused = ippool(&cp, &["apply", "-f", path]).expect(1);
    assert!(
        refused.stderr.contains("spec.blockSize"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("nothing was written"),
        "{}",
        refused.stderr
    );

    std::fs::write(
        &file,
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: c}\nspec: [\n",
    )
    .unwrap();
    let broken = ippool(&cp, &["apply", "-f", path]).expect(1);
    assert!(
        broken.stderr.contains("not a valid IPPool manifest"),
        "{}",
        broken.stderr
    );
    assert_eq!(names_of(&client, CalicoKind::Pool).await, ["a", "b"]);
    cp.judge_ipam(&Expected::clean());
}
