//! `explain` against the cluster's own objects: the pod's node and annotation, the namespace's
//! annotation and labels, the nodes' labels. (Its predictions are checked against Calico's CNI
//! plugin in `ippool-cluster/tests/calico/selection.rs`.)

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{control_plane, create_namespace, create_pod, create_pool, ippool, pool};

#[tokio::test(flavor = "multi_thread")]
async fn explain_reads_pods_namespaces_and_nodes() {
    let cp = control_plane();
    let client = cp.client().await;
    create_pool(&client, &pool("default", "10.10.0.0/16", 26, false)).await;
    let mut rack_a = pool("rack-a", "10.20.0.0/16", 26, false);
    rack_a.spec.node_selector = Some("rack == 'a'".to_owned());
    create_pool(&client, &rack_a).await;
    create_pool(&client, &pool("off", "10.30.0.0/16", 26, true)).await;
    for (name, rack) in [("node-a", "a"), ("node-b", "b")] {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"rack": rack}}
        }))
        .unwrap();
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }
    create_namespace(&client, "shop").await;
    let annotate =
        json!({"metadata": {"annotations": {"cni.projectcalico.org/ipv4pools": "[\"rack-a\"]"}}});
    Api::<Namespace>::all(client.clone())
        .patch("shop", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();

    // A new pod of `default`: the selectors decide, node by node.
    let plain = ippool(&cp, &["explain", "-n", "default"]).expect(0);
    assert!(
        plain
            .stdout
            .contains("A new pod in namespace default (IPv4), on node node-a:\n"),
        "{}",
        plain.stdout
    );
    assert!(
        plain.stdout.contains(
            "  address from any of: default, rack-a (Calico gives eligible pools no order)\n"
        ),
        "{}",
        plain.stdout
    );
    assert!(
        plain
            .stdout
            .contains("on node node-b:\n  decided by: no pool annotation"),
        "{}",
        plain.stdout
    );
    assert!(
        plain.stdout.contains("    off     disabled\n"),
        "{}",
        plain.stdout
    );

    // The namespace names rack-a: every node gets it, whatever its selector says.
    let named = ippool(&cp, &["explain", "-n", "shop", "-o", "json"]).expect(0);
    let doc: serde_json::Value = serde_json::from_str(&named.stdout).unwrap();
    assert_eq!(doc["kind"], "PoolSelection");
    assert_eq!(doc["items"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["items"][0]["nodes"], json!(["node-a", "node-b"]));
    assert_eq!(doc["items"][0]["eligible"], json!(["rack-a"]));
    assert_eq!(doc["items"][0]["source"], "namespaceAnnotation");

    // A pod naming the disabled pool never gets an address: exit 1, with Calico's words.
    let mut pod = create_pod(&client, "shop", "stuck", "node-b", None, "c1", None).await;
    pod.metadata.annotations.get_or_insert_default().insert(
        "cni.projectcalico.org/ipv4pools".to_owned(),
        "[\"off\"]".to_owned(),
    );
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), "shop")
        .replace("stuck", &PostParams::default(), &pod)
        .await
        .unwrap();
    let stuck = ippool(&cp, &["explain", "pod/stuck", "-n", "shop"]).expect(1);
    assert!(
        stuck.stdout.contains(
            "no address: Calico's CNI plugin fails with \"the given pool (10.30.0.0/16) does not exist, or is not enabled\""
        ),
        "{}",
        stuck.stdout
    );
    assert!(
        stuck.stdout.contains("decided by: the pod's annotation"),
        "{}",
        stuck.stdout
    );

    // Mistakes name the fix.
    let missing = ippool(&cp, &["explain", "-n", "shop", "--node", "node-z"]).expect(2);
    assert!(
        missing.stderr.contains("node \"node-z\" does not exist"),
        "{}",
        missing.stderr
    );
    let bad = ippool(&cp, &["explain", "stuck", "-n", "shop"]).expect(2);
    assert!(
        bad.stderr.contains("name the pod as pod/NAME"),
        "{}",
        bad.stderr
    );
}
