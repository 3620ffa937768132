//! A pool in use by a Deployment, a StatefulSet and a bare pod (calico-sim allocates their
//! addresses and the nodes' tunnel addresses): what list/pods/show say, and the delete guard
//! refusing until the pool is disabled and empty — then deleting it in Calico's order.

use std::time::Duration;

use crate::support::{control_plane, create_namespace, ippool};
use harness::workloads::{IPIP_TUNNEL_ANNOTATION, wait_tunnel_addresses};
use harness::{Expected, Sim, SimOptions, wait_for_all};
use ipnet::IpNet;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

fn pod_template(app: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"automountServiceAccountToken": false,
                 "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}
    })
}

async fn pods_with_addresses(pods: &Api<Pod>, count: usize) -> Vec<Pod> {
    wait_for_all(
        pods,
        watcher::Config::default(),
        &format!("{count} pods with addresses"),
        |pods: &[Pod]| {
            pods.iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
                .count()
                == count
        },
        WAIT,
    )
    .await
    .expect("pods get addresses")
}

#[tokio::test(flavor = "multi_thread")]
async fn pools_in_use_are_shown_and_protected() {
    let cp = control_plane();
    let sim = Sim::start(&cp, SimOptions::default()).expect("calico-sim starts");
    let client = cp.client().await;

    ippool(
        &cp,
        &[
            "create",
            "blue",
            "--cidr",
            "10.1.0.0/16",
            "--ipip-mode",
            "Always",
        ],
    )
    .expect(0);
    create_namespace(&client, "shop").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                         "template": pod_template("web")}
            }))
            .unwrap(),
        )
        .await
        .expect("deployment created");
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), "shop");
    statefulsets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
                "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                         "template": pod_template("db")}
            }))
            .unwrap(),
        )
        .await
        .expect("statefulset created");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let bare: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug"},
        "spec": {"automountServiceAccountToken": false,
                 "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &bare)
        .await
        .expect("bare pod created");
    pods_with_addresses(&pods, 5).await;
    // Calico's tunnel allocator gives each node its address in the pool on its own time: wait
    // for all three, so that the counts below hold still.
    let blue: IpNet = "10.1.0.0/16".parse().unwrap();
    wait_tunnel_addresses(
        &client,
        &sim.options().node_names(),
        IPIP_TUNNEL_ANNOTATION,
        "tunnel addresses in 10.1.0.0/16",
        |a| a.is_some_and(|a| blue.contains(&a)),
    )
    .await;

    // list: usage of the pool.
    let list = ippool(&cp, &["list", "-o", "json"]).expect(0);
    let listing: Value = serde_json::from_str(&list.stdout).unwrap();
    let usage = &listing["items"][0]["usage"];
    assert_eq!(listing["items"][0]["pool"]["metadata"]["name"], "blue");
    assert_eq!(usage["pods"], 5, "{usage}");
    assert!(usage["blocks"].as_u64().unwrap() >= 1, "{usage}");
    // 5 pods and a tunnel address per node (3 nodes).
    assert_eq!(usage["addressesInUse"], 8, "{usage}");
    assert_eq!(usage["nodes"].as_u64().unwrap(), 3, "{usage}");
    let table = ippool(&cp, &["list"]).expect(0);
    assert!(
        table.stdout.starts_with("NAME   CIDR          BLOCKSIZE"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("8/65536"), "{}", table.stdout);

    // pods: owners and nodes.
    let all = ippool(&cp, &["pods", "blue", "-A"]).expect(0);
    let owners: Vec<&str> = all
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(
        owners.iter().filter(|o| **o == "Deployment/web").count(),
        3,
        "{}",
        all.stdout
    );
    assert_eq!(
        owners.iter().filter(|o| **o == "StatefulSet/db").count(),
        1,
        "{}",
        all.stdout
    );
    assert!(all.stdout.contains("shop        debug "), "{}", all.stdout);
    assert!(
        all.stdout
            .lines()
            .any(|l| l.starts_with("shop") && l.ends_with("<none>")),
        "{}",
        all.stdout
    );
    let in_ns = ippool(&cp, &["pods", "blue", "-n", "shop", "--no-headers"]).expect(0);
    assert_eq!(in_ns.stdout.lines().count(), 5, "{}", in_ns.stdout);
    assert!(
        in_ns.stdout.starts_with("db-0 ") || in_ns.stdout.starts_with("debug "),
        "{}",
        in_ns.stdout
    );
    let default_ns = ippool(&cp, &["pods", "blue"]).expect(0);
    assert!(
        default_ns.stderr.contains("No pods in namespace default"),
        "{}",
        default_ns.stderr
    );

    // show: blocks, owners, tunnel addresses.
    let show = ippool(&cp, &["show", "blue"]).expect(0);
    for needle in [
        "Name:               blue",
        "Deployment/web",
        "StatefulSet/db",
        "ipipTunnelAddress",
        "Blocks:",
    ] {
        assert!(
            show.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            show.stdout
        );
    }

    // delete is refused while enabled and in use.
    let refused = ippool(&cp, &["delete", "blue"]).expect(1);
    assert!(refused.stderr.contains("is enabled"), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("5 live pod(s) hold addresses in IP pool blue — by namespace: shop (5)"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("Nothing was changed."),
        "{}",
        refused.stderr
    );

    // disabling the last enabled pool under workloads is allowed, with the rules' warning.
    let disabled = ippool(&cp, &["disable", "blue"]).expect(0);
    assert!(
        disabled.stderr.contains("warning[IPP072]"),
        "{}",
        disabled.stderr
    );
    assert!(
        disabled
            .stdout
            .contains("ippool.crd.projectcalico.org/blue disabled")
    );

    // still refused: pods hold addresses; says how many and where.
    let refused = ippool(&cp, &["delete", "blue"]).expect(1);
    assert!(!refused.stderr.contains("is enabled"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("5 live pod(s)"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("by node: sim-"),
        "{}",
        refused.stderr
    );

    // a replacement pool with IPIP; the workloads go; the tunnels move.
    ippool(
        &cp,
        &[
            "create",
            "green",
            "--cidr",
            "10.2.0.0/16",
            "--ipip-mode",
            "Always",
        ],
    )
    .expect(0);
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    statefulsets
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("debug", &DeleteParams::default())
        .await
        .unwrap();
    wait_for_all(
        &pods,
        watcher::Config::default(),
        "no pods in shop",
        |p: &[Pod]| p.is_empty(),
        WAIT,
    )
    .await
    .expect("pods are gone");
    let moved: IpNet = "10.2.0.0/16".parse().unwrap();
    wait_tunnel_addresses(
        &client,
        &sim.options().node_names(),
        IPIP_TUNNEL_ANNOTATION,
        "tunnel addresses in 10.2.0.0/16",
        |a| a.is_some_and(|a| moved.contains(&a)),
    )
    .await;

    let deleted = ippool(&cp, &["delete", "blue"]).expect(0);
    assert!(
        deleted
            .stdout
            .contains("ippool.crd.projectcalico.org/blue deleted"),
        "{}",
        deleted.stdout
    );
    assert!(
        deleted.stderr.contains("blockaffinity"),
        "{}",
        deleted.stderr
    );
    let list = ippool(&cp, &["list", "--no-headers"]).expect(0);
    assert!(list.stdout.starts_with("green "), "{}", list.stdout);
    assert_eq!(list.stdout.lines().count(), 1, "{}", list.stdout);
    let blocks = ippool(&cp, &["blocks", "-o", "json"]).expect(0);
    let report: Value = serde_json::from_str(&blocks.stdout).unwrap();
    assert!(
        report["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["cidr"].as_str().unwrap().starts_with("10.2.")),
        "{report}"
    );
    ippool(&cp, &["check"]).expect(0);
    cp.judge_ipam(&Expected::clean());
}
