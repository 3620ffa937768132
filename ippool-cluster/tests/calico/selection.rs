//! Which pool a pod's address comes from (calico-ipam.md §4): pool and namespace annotations,
//! nodeSelector, namespaceSelector, allowedUses, assignmentMode, borrowing and strictAffinity —
//! and, for each, `ippool_ipam::selection::explain`'s prediction checked against the address
//! Calico's own CNI plugin gave (or the error it failed with).

use ipnet::IpNet;
use ippool_cluster::api::{ServedApis, Serving};
use ippool_ipam::names;
use ippool_ipam::plan::PolicyVersion;
use ippool_ipam::selection::{Explanation, Request, explain};
use ippool_ipam::snapshot::{Parts, PodInfo, Snapshot};
use ippool_rules::cidr::Family;
use k8s_openapi::api::core::v1::Pod;
use kube::{Client, ResourceExt as _};
use serde_json::json;

use crate::common::*;

async fn snapshot(client: &Client) -> Snapshot {
    let served = ServedApis::new(Serving::Crds, Some(PolicyVersion::V1));
    ippool_cluster::load::snapshot(client, &served, Parts::ALL)
        .await
        .unwrap()
}

/// `explain`'s prediction for a pod as it is in the cluster: its node, namespace and annotation.
fn predict(snapshot: &Snapshot, pod: &PodInfo) -> Explanation {
    let node = pod.node.as_deref().and_then(|n| snapshot.node(n));
    let namespace = snapshot.namespaces.iter().find(|n| n.name == pod.namespace);
    let (Some(node), Some(namespace)) = (node, namespace) else {
        panic!("{}: node or namespace not read", pod.key());
    };
    explain(
        &snapshot.pools,
        &Request {
            family: Family::V4,
            node,
            namespace,
            pod_pools: pod.ipv4_pools.as_deref(),
        },
    )
}

/// The differential check of `explain`: each pod's address, given by Calico's own CNI plugin, lies
/// in a pool predicted eligible — the very pool when only one is.
async fn assert_predicted(client: &Client, pods: &[Pod]) {
    let snapshot = snapshot(client).await;
    for pod in pods {
        let info = snapshot
            .pods
            .iter()
            .find(|p| Some(&p.namespace) == pod.namespace().as_ref() && p.name == pod.name_any())
            .expect("pod read");
        let explanation = predict(&snapshot, info);
        assert_eq!(explanation.failure, None, "{}: {explanation:?}", info.key());
        for address in pod_ips(pod) {
            let pool = snapshot
                .pools
                .iter()
                .find(|p| p.spec.cidr_net().is_some_and(|n| n.contains(&address)))
                .map(|p| p.name().to_owned());
            let pool = pool.unwrap_or_else(|| panic!("{address} is in no pool"));
            assert!(
                explanation.eligible.contains(&pool),
                "{}: {address} from {pool}, predicted {:?}",
                info.key(),
                explanation.eligible
            );
            if let [only] = explanation.eligible.as_slice() {
                assert_eq!(&pool, only, "{}", info.key());
            }
        }
    }
}

/// The differential check of a predicted failure: the pods named `prefix*` in `namespace` are
/// predicted to get no address, and Calico's CNI ADD fails with the very words predicted.
async fn assert_failure_predicted(client: &Client, namespace: &str, prefix: &str) {
    let snapshot = snapshot(client).await;
    let stuck: Vec<&PodInfo> = snapshot
        .pods
        .iter()
        .filter(|p| p.namespace == namespace && p.name.starts_with(prefix) && p.node.is_some())
        .collect();
    assert!(
        !stuck.is_empty(),
        "no scheduled pod {prefix}* in {namespace}"
    );
    for pod in stuck {
        let failure = predict(&snapshot, pod)
            .failure
            .unwrap_or_else(|| panic!("{}: an address predicted", pod.key()));
        wait_sandbox_failure(
            client,
            namespace,
            prefix,
            &format!("plugin type=\"calico\" failed (add): {failure}"),
        )
        .await;
    }
}

fn assert_all_in(pods: &[Pod], pool: IpNet) {
    for pod in pods {
        for ip in pod_ips(pod) {
            assert!(
                pool.contains(&ip),
                "{} has {ip}, outside {pool}",
                pod.name_any()
            );
        }
    }
}

#[tokio::test]
async fn pool_annotations_on_pods_and_namespaces_choose_the_pool() {
    let env = SimCluster::start(2).await;
    let client = &env.client;
    let (default, blue, green) = (
        net("10.50.0.0/24"),
        net("10.51.0.0/24"),
        net("10.52.0.0/24"),
    );
    create_pool(
        client,
        "default",
        json!({"cidr": default.to_string(), "blockSize": 28}),
    )
    .await;
    // Selecting no node: only an annotation can put pods here, and it ignores selectors.
    for (name, cidr) in [("blue", blue), ("green", green)] {
        create_pool(
            client,
            name,
            json!({"cidr": cidr.to_string(), "blockSize": 28, "nodeSelector": "!all()"}),
        )
        .await;
    }
    create_pool(
        client,
        "off",
        json!({"cidr": "10.53.0.0/24", "blockSize": 28, "disabled": true}),
    )
    .await;
    create_namespace(
        client,
        "team-blue",
        json!({}),
        json!({names::ANNOTATION_IPV4_POOLS: r#"["blue"]"#}),
    )
    .await;

    create_deployment(client, "default", &deployment("plain", 2, json!({}))).await;
    create_deployment(
        client,
        "team-blue",
        &deployment("from-namespace", 2, json!({})),
    )
    .await;
    let by_cidr =
        json!({"metadata": {"annotations": {names::ANNOTATION_IPV4_POOLS: r#"["10.52.0.0/24"]"#}}});
    create_deployment(client, "team-blue", &deployment("from-pod", 2, by_cidr)).await;
    let disabled =
        json!({"metadata": {"annotations": {names::ANNOTATION_IPV4_POOLS: r#"["off"]"#}}});
    create_deployment(client, "default", &deployment("disabled", 1, disabled)).await;

    let plain = wait_running(client, "default", "app=plain", 2).await;
    let from_namespace = wait_running(client, "team-blue", "app=from-namespace", 2).await;
    let from_pod = wait_running(client, "team-blue", "app=from-pod", 2).await;
    assert_all_in(&plain, default);
    assert_all_in(&from_namespace, blue);
    assert_all_in(&from_pod, green);
    let all: Vec<Pod> = [plain, from_namespace, from_pod].concat();
    assert_calico_consistent(client, &all).await;
    assert_predicted(client, &all).await;

    wait_sandbox_failure(
        client,
        "default",
        "disabled-",
        "plugin type=\"calico\" failed (add): the given pool (10.53.0.0/24) does not exist, or is not enabled",
    )
    .await;
    assert_failure_predicted(client, "default", "disabled-").await;
    let stuck = all_pods(client)
        .await
        .into_iter()
        .find(|p| p.labels().get("app").map(String::as_str) == Some("disabled"))
        .unwrap();
    assert_eq!(
        stuck.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    let waiting = &stuck
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        waiting
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("ContainerCreating")
    );
    env.cp.judge_ipam(&Expected::clean());
}

#[tokio::test]
async fn node_selectors_give_each_node_its_pools() {
    let env = SimCluster::start(4).await;
    let client = &env.client;
    for (node, rack) in [
        ("sim-0", "a"),
        ("sim-1", "a"),
        ("sim-2", "b"),
        ("sim-3", "b"),
    ] {
        label_node(client, node, json!({"rack": rack})).await;
    }
    let (rack_a, rack_b) = (net("10.60.0.0/24"), net("10.61.0.0/24"));
    create_pool(
        client,
        "rack-a",
        json!({"cidr": rack_a.to_string(), "blockSize": 28, "nodeSelector": "rack == 'a'"}),
    )
    .await;
    create_pool(
        client,
        "rack-b",
        json!({"cidr": rack_b.to_string(), "blockSize": 28, "nodeSelector": "rack == 'b'"}),
    )
    .await;
    create_deployment(client, "default", &deployment("web", 8, json!({}))).await;
    let pods = wait_running(client, "default", "app=web", 8).await;
    for pod in &pods {
        let expected = if ["sim-0", "sim-1"].contains(&node_of(pod).as_str()) {
            rack_a
        } else {
            rack_b
        };
        assert_all_in(std::slice::from_ref(pod), expected);
    }
    assert_calico_consistent(client, &pods).await;
    assert_predicted(client, &pods).await;
    env.cp.judge_ipam(&Expected::clean());
}

#[tokio::test]
async fn namespace_selectors_give_each_namespace_its_pools() {
    let env = SimCluster::start(2).await;
    let client = &env.client;
    let (team, general) = (net("10.70.0.0/24"), net("10.71.0.0/24"));
    create_pool(
        client,
        "team-x",
        json!({"cidr": team.to_string(), "blockSize": 28, "namespaceSelector": "team == 'x'"}),
    )
    .await;
    create_pool(
        client,
        "general",
        json!({"cidr": general.to_string(), "blockSize": 28, "namespaceSelector": "!has(team)"}),
    )
    .await;
    create_namespace(client, "team-x", json!({"team": "x"}), json!({})).await;
    create_deployment(client, "team-x", &deployment("web", 3, json!({}))).await;
    create_deployment(client, "default", &deployment("web", 3, json!({}))).await;
    let in_team = wait_running(client, "team-x", "app=web", 3).await;
    let in_default = wait_running(client, "default", "app=web", 3).await;
    assert_all_in(&in_team, team);
    assert_all_in(&in_default, general);
    let running = [in_team, in_default].concat();
    assert_calico_consistent(client, &running).await;
    assert_predicted(client, &running).await;
    // A namespace neither pool selects: no address, in Calico's words.
    create_namespace(client, "team-y", json!({"team": "y"}), json!({})).await;
    create_deployment(client, "team-y", &deployment("web", 1, json!({}))).await;
    wait_sandbox_failure(
        client,
        "team-y",
        "web-",
        "no configured Calico pools for node",
    )
    .await;
    assert_failure_predicted(client, "team-y", "web-").await;
    env.cp.judge_ipam(&Expected::clean());
}

#[tokio::test]
async fn allowed_uses_keep_workloads_and_tunnels_apart() {
    let env = SimCluster::start(2).await;
    let client = &env.client;
    let (workloads, tunnels, balancers) = (
        net("10.80.0.0/24"),
        net("10.81.0.0/24"),
        net("10.82.0.0/24"),
    );
    create_pool(client, "workloads", json!({"cidr": workloads.to_string(), "blockSize": 28, "allowedUses": ["Workload"], "ipipMode": "Always"})).await;
    create_pool(client, "tunnels", json!({"cidr": tunnels.to_string(), "blockSize": 28, "allowedUses": ["Tunnel"], "ipipMode": "Always"})).await;
    create_pool(
        client,
        "balancers",
        json!({"cidr": balancers.to_string(), "blockSize": 28, "allowedUses": ["LoadBalancer"]}),
    )
    .await;
    create_deployment(client, "default", &deployment("web", 4, json!({}))).await;
    let pods = wait_running(client, "default", "app=web", 4).await;
    assert_all_in(&pods, workloads);
    assert_predicted(client, &pods).await;
    // calico-node takes tunnel addresses only from pools allowing Tunnel use (its allocator runs
    // beside the pods: wait for it).
    let nodes = env.sim.options().node_names();
    wait_tunnel_addresses(
        client,
        &nodes,
        IPIP_TUNNEL_ANNOTATION,
        "IPIP tunnel addresses in the Tunnel pool",
        |a| a.is_some_and(|a| tunnels.contains(&a)),
    )
    .await;
    let ipam = assert_calico_consistent(client, &pods).await;
    let allocations = ipam.allocations();
    for node in &nodes {
        let (handle, _, _) = tunnel_names(ippool_rules::model::Encapsulation::Ipip, node);
        let held = ipam.handle_addresses(&handle);
        assert_eq!(held.len(), 1, "{node}: {held:?}");
        assert!(
            tunnels.contains(&held[0]),
            "{node}'s tunnel address {} is outside {tunnels}",
            held[0]
        );
        assert_eq!(
            allocations[&held[0]].1[names::ATTRIBUTE_TYPE],
            "ipipTunnelAddress"
        );
    }
    assert!(allocations.keys().all(|ip| !balancers.contains(ip)));
    env.cp.judge_ipam(&Expected::clean());
}

#[tokio::test]
async fn manual_pools_serve_only_pods_that_name_them() {
    let env = SimCluster::start(2).await;
    let client = &env.client;
    let (automatic, manual) = (net("10.90.0.0/24"), net("10.91.0.0/24"));
    create_pool(
        client,
        "automatic",
        json!({"cidr": automatic.to_string(), "blockSize": 28}),
    )
    .await;
    create_pool(
        client,
        "manual",
        json!({"cidr": manual.to_string(), "blockSize": 28, "assignmentMode": "Manual"}),
    )
    .await;
    create_deployment(client, "default", &deployment("plain", 4, json!({}))).await;
    let named =
        json!({"metadata": {"annotations": {names::ANNOTATION_IPV4_POOLS: r#"["manual"]"#}}});
    create_deployment(client, "default", &deployment("named", 2, named)).await;
    let plain = wait_running(client, "default", "app=plain", 4).await;
    let named = wait_running(client, "default", "app=named", 2).await;
    assert_all_in(&plain, automatic);
    assert_all_in(&named, manual);
    let running = [plain, named].concat();
    assert_calico_consistent(client, &running).await;
    assert_predicted(client, &running).await;
    env.cp.judge_ipam(&Expected::clean());
}

#[tokio::test]
async fn nodes_borrow_from_other_blocks_unless_strict_affinity() {
    let env = SimCluster::start(3).await;
    let client = &env.client;
    set_ipam_config(client, true).await;
    // Two blocks of four addresses: enough for two nodes to claim one each, none for the third.
    let pool = net("10.100.0.0/29");
    create_pool(
        client,
        "small",
        json!({"cidr": pool.to_string(), "blockSize": 30}),
    )
    .await;
    create_deployment(client, "default", &deployment("on-0", 1, pinned("sim-0"))).await;
    wait_running(client, "default", "app=on-0", 1).await;
    create_deployment(client, "default", &deployment("on-1", 1, pinned("sim-1"))).await;
    wait_running(client, "default", "app=on-1", 1).await;

    // With strictAffinity a node never borrows: a pod on sim-2 stays without an address.
    create_deployment(client, "default", &deployment("on-2", 1, pinned("sim-2"))).await;
    wait_sandbox_failure(
        client,
        "default",
        "on-2-",
        "Assigned 0 out of 1 requested IPv4 addresses; No more free affine blocks and strict affinity enabled",
    )
    .await;

    // Without it, the waiting pod borrows from another node's block.
    set_ipam_config(client, false).await;
    let borrower = wait_running(client, "default", "app=on-2", 1).await;
    let ipam = Ipam::read(client).await;
    let address = pod_ips(&borrower[0])[0];
    let block = ipam
        .blocks
        .iter()
        .find(|b| b.cidr().unwrap().contains(&address))
        .unwrap();
    let owner = affine_node(block).unwrap();
    assert_ne!(
        owner, "sim-2",
        "sim-2 has no block of its own: it borrowed {address}"
    );
    assert!(ipam.blocks.iter().all(|b| affine_node(b) != Some("sim-2")));
    let pods = all_pods(client).await;
    let running: Vec<Pod> = pods.into_iter().filter(is_running_and_ready).collect();
    assert_eq!(running.len(), 3);
    assert_calico_consistent(client, &running).await;
    env.cp.judge_ipam(&Expected::clean());
}
