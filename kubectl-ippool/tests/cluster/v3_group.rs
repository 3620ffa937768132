//! With the projectcalico.org/v3 IPPool CRD installed (Calico 3.32's native v3 preview), discovery
//! picks v3: `-v` says so, and pools are read and written there, not in crd.projectcalico.org/v1.

use crate::support::{control_plane, ippool, names_of};
use ippool_cluster::api::CalicoKind;
use ippool_cluster::api::{ServedApis, Serving};
use ippool_cluster::client::CalicoClient;
use ippool_rules::model::IpPool;

#[tokio::test(flavor = "multi_thread")]
async fn pools_live_in_the_v3_group_when_it_is_served() {
    let cp = control_plane();
    let client = cp.client().await;
    let before = ippool(&cp, &["-v", "list"]).expect(0);
    assert!(
        before
            .stderr
            .contains("IP pools via crd.projectcalico.org/v1"),
        "{}",
        before.stderr
    );
    assert!(
        before.stderr.contains("PodDisruptionBudgets via policy/v1"),
        "{}",
        before.stderr
    );

    cp.install_v3_crd().await.expect("v3 CRD installs");
    let run = ippool(&cp, &["list", "-v"]).expect(0);
    assert!(
        run.stderr.contains(
            "IP pools via projectcalico.org/v3 (the cluster serves projectcalico.org/v3)"
        ),
        "{}",
        run.stderr
    );

    let created = ippool(
        &cp,
        &[
            "create",
            "red",
            "--cidr",
            "10.30.0.0/16",
            "--vxlan-mode",
            "Always",
        ],
    )
    .expect(0);
    assert_eq!(created.stdout, "ippool.projectcalico.org/red created\n");
    let v3 = CalicoClient::new(client.clone(), ServedApis::new(Serving::ApiServer, None));
    let red = v3
        .get::<IpPool>(CalicoKind::Pool, "red")
        .await
        .unwrap()
        .expect("red is a v3 object");
    assert_eq!(red.api_version, "projectcalico.org/v3");
    assert!(
        names_of(&client, CalicoKind::Pool).await.is_empty(),
        "nothing written to crd.projectcalico.org/v1"
    );

    let wide = ippool(&cp, &["list", "-o", "wide", "--no-headers"]).expect(0);
    assert!(wide.stdout.starts_with("red "), "{}", wide.stdout);
    assert!(
        wide.stdout.trim_end().ends_with("projectcalico.org/v3"),
        "{}",
        wide.stdout
    );

    ippool(&cp, &["disable", "red"]).expect(0);
    assert_eq!(
        v3.get::<IpPool>(CalicoKind::Pool, "red")
            .await
            .unwrap()
            .unwrap()
            .spec
            .disabled,
        Some(true)
    );
    let deleted = ippool(&cp, &["delete", "red"]).expect(0);
    assert_eq!(deleted.stdout, "ippool.projectcalico.org/red deleted\n");
    assert!(
        v3.get::<IpPool>(CalicoKind::Pool, "red")
            .await
            .unwrap()
            .is_none()
    );
}
