//! The planner on snapshots built in code.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use ippool_rules::context::{ClusterCidrs, Strength};
use ippool_rules::model::EncapMode;
use ippool_rules::report::Severity;
use serde_json::json;

use super::objects::{DaemonSet, Deployment, StatefulSet};
use super::*;
use crate::fixtures::{block, node, pod, pool, workload};
use crate::snapshot::{NamespaceRecord, Owner, PodInfo, Snapshot};

const OLD: &str = "default-ipv4-ippool";
const NEW: &str = "new-pool";

fn owned(mut p: PodInfo, kind: OwnerKind, name: &str, labels: &[(&str, &str)]) -> PodInfo {
    p.owner = Owner {
        kind,
        name: name.to_owned(),
    };
    p.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    p
}

fn namespace(name: &str) -> NamespaceRecord {
    NamespaceRecord {
        name: name.to_owned(),
        labels: BTreeMap::new(),
        ipv4_pools: None,
        ipv6_pools: None,
    }
}

fn deployment(ns: &str, name: &str, replicas: i32, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "strategy": strategy,
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}}}
    }))
    .unwrap()
}

fn stateful_set(ns: &str, name: &str, replicas: i32, strategy: serde_json::Value) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                 "updateStrategy": strategy,
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}}}
    }))
    .unwrap()
}

fn daemon_set(ns: &str, name: &str, desired: i32, strategy: serde_json::Value) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": name}}, "updateStrategy": strategy,
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}}},
        "status": {"currentNumberScheduled": desired, "desiredNumberScheduled": desired,
                   "numberMisscheduled": 0, "numberReady": desired}
    }))
    .unwrap()
}

fn budget(ns: &str, name: &str, app: &str, spec: serde_json::Value) -> Budget {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": app}});
    Budget::from_json(
        json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}),
        PolicyVersion::V1Beta1,
    )
    .unwrap()
}

/// Calico's tutorial cluster: the default pool 192.168.0.0/16 with IPIP, three nodes, coredns
/// (2 replicas) in it, kubeadm's podSubnet 10.0.0.0/8.
fn tutorial() -> Inventory {
    let mut old = pool(OLD, "192.168.0.0/16", None, false);
    old.spec.ipip_mode = Some(EncapMode::Always);
    old.spec.nat_outgoing = Some(true);
    let coredns = |name: &str, node: &str, address: &str| {
        owned(
            pod("kube-system", name, node, address, name),
            OwnerKind::Deployment,
            "coredns",
            &[("k8s-app", "kube-dns"), ("app", "coredns")],
        )
    };
    Inventory {
        snapshot: Snapshot {
            pools: vec![old],
            blocks: vec![
                block(
                    "192.168.10.0/26",
                    Some("sim-0"),
                    &[
                        (
                            0,
                            "ipip-tunnel-addr-sim-0",
                            &[("node", "sim-0"), ("type", "ipipTunnelAddress")],
                        ),
                        (
                            1,
                            "k8s-pod-network.coredns-a",
                            &workload("kube-system", "coredns-a", "sim-0"),
                        ),
                    ],
                ),
                block(
                    "192.168.20.0/26",
                    Some("sim-1"),
                    &[(
                        1,
                        "k8s-pod-network.coredns-b",
                        &workload("kube-system", "coredns-b", "sim-1"),
                    )],
                ),
            ],
            pods: vec![
                coredns("coredns-a", "sim-0", "192.168.10.1"),
                coredns("coredns-b", "sim-1", "192.168.20.1"),
            ],
            nodes: vec![node("sim-0"), node("sim-1"), node("sim-2")],
            namespaces: vec![namespace("kube-system"), namespace("default")],
            ..Snapshot::default()
        },
        workloads: Workloads {
            deployments: vec![deployment(
                "kube-system",
                "coredns",
                2,
                json!({"type": "RollingUpdate"}),
            )],
            ..Workloads::default()
        },
        budgets: vec![],
        cluster_cidrs: Some(ClusterCidrs {
            cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            source: "kube-system/kubeadm-config ConfigMap".into(),
            strength: Strength::Strong,
        }),
        server: ServerVersion {
            major: 1,
            minor: 20,
        },
    }
}

fn intent() -> Intent {
    Intent {
        from: OLD.into(),
        to: NEW.into(),
        new_cidr: Some("10.0.0.0/16".parse().unwrap()),
        ..Intent::default()
    }
}

fn add_pod(inv: &mut Inventory, p: PodInfo) {
    inv.snapshot.pods.push(p);
}

fn method_of(plan: &Plan, name: &str) -> MoveMethod {
    plan.moves
        .iter()
        .find(|m| m.workload.name == name)
        .unwrap_or_else(|| panic!("no move for {name}: {:#?}", plan.moves))
        .method
}

fn blocker_about<'a>(plan: &'a Plan, subject: &str) -> &'a Blocker {
    plan.blockers
        .iter()
        .find(|b| b.subject.contains(subject))
        .unwrap_or_else(|| panic!("no blocker about {subject}: {:#?}", plan.blockers))
}

fn notes_of(plan: &Plan, name: &str) -> Vec<String> {
    plan.disruptions
        .iter()
        .filter(|d| d.workload.name == name)
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn calico_tutorial_moves_coredns_by_rollout_into_a_new_pool_with_the_old_settings() {
    let plan = plan(&tutorial(), &intent()).unwrap();
    assert!(plan.blockers.is_empty(), "{:#?}", plan.blockers);
    assert_eq!(plan.target_action, TargetAction::Create);
    let new = plan.new_pool.as_ref().unwrap();
    assert_eq!(new.spec.cidr.as_deref(), Some("10.0.0.0/16"));
    assert_eq!(new.spec.ipip_mode, Some(EncapMode::Always));
    assert_eq!(new.spec.nat_outgoing, Some(true));
    assert_eq!(new.spec.disabled, None);
    assert_eq!(new.name(), NEW);
    assert_eq!(plan.moves.len(), 1);
    let coredns = &plan.moves[0];
    assert_eq!(
        coredns.workload.to_string(),
        "Deployment kube-system/coredns"
    );
    assert_eq!(coredns.method, MoveMethod::RolloutRestart);
    assert_eq!(coredns.pods.len(), 2);
    assert_eq!(coredns.desired, Some(2));
    assert_eq!(plan.tunnel_nodes, vec!["sim-0".to_owned()]);
    assert_eq!(plan.keep_old_pool, None);
    // The old pool is outside kubeadm's podSubnet: reported, never a blocker.
    assert!(
        plan.findings
            .iter()
            .any(|f| f.pool == OLD && f.severity == Severity::Warning),
        "{:#?}",
        plan.findings
    );
    assert!(
        !plan
            .findings
            .iter()
            .any(|f| f.pool == NEW && f.severity == Severity::Error)
    );
    assert!(plan.blockers.is_empty(), "{:#?}", plan.blockers);
}

#[test]
fn requests_naming_missing_pools_are_refused_before_planning() {
    let inv = tutorial();
    let mut i = intent();
    i.from = "nope".into();
    assert_eq!(
        plan(&inv, &i).unwrap_err(),
        PlanError::NoOldPool {
            name: "nope".into()
        }
    );
    let mut i = intent();
    i.new_cidr = None;
    assert!(matches!(plan(&inv, &i), Err(PlanError::NoNewPool { .. })));
    let mut i = intent();
    i.to = OLD.into();
    assert!(matches!(plan(&inv, &i), Err(PlanError::SamePool { .. })));
}

#[test]
fn a_bare_pod_blocks_unless_deleting_bare_pods_is_asked_for() {
    let mut inv = tutorial();
    add_pod(
        &mut inv,
        pod("default", "debug", "sim-2", "192.168.30.4", "d"),
    );
    let blocked = plan(&inv, &intent()).unwrap();
    let b = blocker_about(&blocked, "Pod default/debug");
    assert!(b.fix.contains("--delete-bare-pods"), "{b:?}");
    assert_eq!(method_of(&blocked, "debug"), MoveMethod::Skip);

    let mut i = intent();
    i.delete_bare_pods = true;
    let allowed = plan(&inv, &i).unwrap();
    assert!(allowed.blockers.is_empty(), "{:#?}", allowed.blockers);
    assert_eq!(method_of(&allowed, "debug"), MoveMethod::Delete);
    assert!(notes_of(&allowed, "debug")[0].contains("nothing recreates it"));
}

#[test]
fn pins_to_the_old_pool_block_with_the_fix_named() {
    let mut inv = tutorial();
    inv.snapshot.namespaces.push(NamespaceRecord {
        ipv4_pools: Some(format!("[\"{OLD}\"]")),
        ..namespace("legacy")
    });
    let mut pinned = owned(
        pod("default", "web-1", "sim-0", "192.168.10.9", "w"),
        OwnerKind::Deployment,
        "web",
        &[("app", "web")],
    );
    pinned.ipv4_pools = Some("[\"192.168.0.0/16\"]".into());
    add_pod(&mut inv, pinned);
    let mut fixed = owned(
        pod("default", "db-0", "sim-1", "192.168.20.7", "db"),
        OwnerKind::StatefulSet,
        "db",
        &[("app", "db")],
    );
    fixed.ip_addrs = Some("[\"192.168.20.7\"]".into());
    add_pod(&mut inv, fixed);
    inv.workloads.deployments.push(deployment(
        "default",
        "web",
        1,
        json!({"type": "RollingUpdate"}),
    ));
    inv.workloads.stateful_sets.push(stateful_set(
        "default",
        "db",
        1,
        json!({"type": "RollingUpdate"}),
    ));

    let plan = plan(&inv, &intent()).unwrap();
    let ns = blocker_about(&plan, "Namespace legacy");
    assert!(
        ns.fix.contains("kubectl annotate namespace legacy"),
        "{ns:?}"
    );
    assert!(ns.fix.contains(NEW), "{ns:?}");
    let pod = blocker_about(&plan, "Pod default/web-1");
    assert!(pod.problem.contains("pins it"), "{pod:?}");
    let db = blocker_about(&plan, "Pod default/db-0");
    assert!(db.problem.contains("192.168.20.7"), "{db:?}");
    // A pin naming another pool is no blocker.
    let mut inv = tutorial();
    inv.snapshot.namespaces.push(NamespaceRecord {
        ipv4_pools: Some("[\"elsewhere\"]".into()),
        ..namespace("other")
    });
    assert!(super::plan(&inv, &intent()).unwrap().blockers.is_empty());
}

#[test]
fn budgets_that_allow_nothing_block_and_tighter_budgets_switch_to_eviction() {
    let mut inv = tutorial();
    for (i, app) in ["web", "web", "api", "api", "api", "api"]
        .iter()
        .enumerate()
    {
        add_pod(
            &mut inv,
            owned(
                pod(
                    "shop",
                    &format!("{app}-{i}"),
                    "sim-0",
                    &format!("192.168.10.{}", 10 + i),
                    "x",
                ),
                OwnerKind::Deployment,
                app,
                &[("app", app)],
            ),
        );
    }
    inv.snapshot.namespaces.push(namespace("shop"));
    inv.workloads.deployments.push(deployment(
        "shop",
        "web",
        2,
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
    ));
    inv.workloads.deployments.push(deployment(
        "shop",
        "api",
        4,
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%", "maxSurge": 1}}),
    ));
    inv.budgets
        .push(budget("shop", "web", "web", json!({"minAvailable": 2})));
    inv.budgets
        .push(budget("shop", "api", "api", json!({"maxUnavailable": 1})));

    let plan = plan(&inv, &intent()).unwrap();
    let web = blocker_about(&plan, "Deployment shop/web");
    assert!(
        web.problem.contains("PodDisruptionBudget shop/web"),
        "{web:?}"
    );
    assert!(web.problem.contains("minAvailable 2"), "{web:?}");
    assert!(web.fix.contains("maxUnavailable 0"), "{web:?}");
    assert_eq!(method_of(&plan, "web"), MoveMethod::Skip);
    // api's rollout would take 2 down; its budget allows 1: moved by eviction instead.
    assert_eq!(method_of(&plan, "api"), MoveMethod::Evict);
    assert!(
        notes_of(&plan, "api")[0].contains("allows 1"),
        "{:?}",
        notes_of(&plan, "api")
    );
    let api = plan
        .moves
        .iter()
        .find(|m| m.workload.name == "api")
        .unwrap();
    assert_eq!(api.budgets[0].budget, "shop/api");
    assert_eq!(api.budgets[0].allows, 1);
}

#[test]
fn a_surge_only_rollout_needs_no_disruption_from_its_budget() {
    let mut inv = tutorial();
    add_pod(
        &mut inv,
        owned(
            pod("shop", "web-0", "sim-0", "192.168.10.40", "w"),
            OwnerKind::Deployment,
            "web",
            &[("app", "web")],
        ),
    );
    inv.snapshot.namespaces.push(namespace("shop"));
    inv.workloads.deployments.push(deployment(
        "shop",
        "web",
        1,
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
    ));
    inv.budgets
        .push(budget("shop", "web", "web", json!({"minAvailable": 1})));
    let plan = plan(&inv, &intent()).unwrap();
    assert!(plan.blockers.is_empty(), "{:#?}", plan.blockers);
    assert_eq!(method_of(&plan, "web"), MoveMethod::RolloutRestart);
    assert!(notes_of(&plan, "web").is_empty());
}

#[test]
fn strategies_choose_the_move_and_name_the_disruptions() {
    let mut inv = tutorial();
    inv.snapshot.namespaces.push(namespace("apps"));
    let mut add = |kind: OwnerKind, owner: &str, pod_name: &str, address: &str| {
        add_pod(
            &mut inv,
            owned(
                pod("apps", pod_name, "sim-1", address, pod_name),
                kind,
                owner,
                &[("app", owner)],
            ),
        )
    };
    add(
        OwnerKind::Deployment,
        "recreate",
        "recreate-1",
        "192.168.20.10",
    );
    add(OwnerKind::Deployment, "single", "single-1", "192.168.20.11");
    add(
        OwnerKind::StatefulSet,
        "rolling-db",
        "rolling-db-0",
        "192.168.20.12",
    );
    add(
        OwnerKind::StatefulSet,
        "ondelete-db",
        "ondelete-db-0",
        "192.168.20.13",
    );
    add(
        OwnerKind::StatefulSet,
        "ondelete-db",
        "ondelete-db-1",
        "192.168.20.14",
    );
    add(
        OwnerKind::StatefulSet,
        "parted",
        "parted-0",
        "192.168.20.15",
    );
    add(OwnerKind::DaemonSet, "agent", "agent-x", "192.168.20.16");
    add(
        OwnerKind::DaemonSet,
        "agent-ondelete",
        "agent-ondelete-x",
        "192.168.20.17",
    );
    add(
        OwnerKind::ReplicaSet,
        "loose-rs",
        "loose-rs-x",
        "192.168.20.18",
    );
    add(
        OwnerKind::Other("Rollout".into()),
        "canary",
        "canary-x",
        "192.168.20.19",
    );
    add(OwnerKind::Job, "batch", "batch-x", "192.168.20.20");
    add(OwnerKind::Deployment, "paused", "paused-x", "192.168.20.21");
    let w = &mut inv.workloads;
    w.deployments.push(deployment(
        "apps",
        "recreate",
        2,
        json!({"type": "Recreate"}),
    ));
    w.deployments.push(deployment(
        "apps",
        "single",
        1,
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
    ));
    let mut paused = deployment("apps", "paused", 1, json!({"type": "RollingUpdate"}));
    paused.spec.as_mut().unwrap().paused = Some(true);
    w.deployments.push(paused);
    w.stateful_sets.push(stateful_set(
        "apps",
        "rolling-db",
        3,
        json!({"type": "RollingUpdate"}),
    ));
    w.stateful_sets.push(stateful_set(
        "apps",
        "ondelete-db",
        2,
        json!({"type": "OnDelete"}),
    ));
    w.stateful_sets.push(stateful_set(
        "apps",
        "parted",
        3,
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
    ));
    w.daemon_sets.push(daemon_set(
        "apps",
        "agent",
        3,
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}),
    ));
    w.daemon_sets.push(daemon_set(
        "apps",
        "agent-ondelete",
        3,
        json!({"type": "OnDelete"}),
    ));

    let old_server = plan(&inv, &intent()).unwrap();
    assert_eq!(
        method_of(&old_server, "recreate"),
        MoveMethod::RolloutRestart
    );
    assert!(notes_of(&old_server, "recreate")[0].contains("Recreate strategy"));
    assert!(notes_of(&old_server, "single")[0].contains("single replica without surge"));
    assert_eq!(
        method_of(&old_server, "rolling-db"),
        MoveMethod::RolloutRestart
    );
    assert!(notes_of(&old_server, "rolling-db").is_empty());
    assert_eq!(method_of(&old_server, "ondelete-db"), MoveMethod::Evict);
    assert_eq!(method_of(&old_server, "parted"), MoveMethod::Evict);
    assert!(notes_of(&old_server, "parted")[0].contains("partition 2"));
    assert_eq!(method_of(&old_server, "agent"), MoveMethod::RolloutRestart);
    assert!(
        notes_of(&old_server, "agent")[0].contains("1.20"),
        "{:?}",
        notes_of(&old_server, "agent")
    );
    assert_eq!(method_of(&old_server, "agent-ondelete"), MoveMethod::Evict);
    assert_eq!(method_of(&old_server, "loose-rs"), MoveMethod::Evict);
    assert_eq!(method_of(&old_server, "canary"), MoveMethod::Evict);
    assert!(old_server.warnings.iter().any(|w| w.contains("Rollout")));
    assert_eq!(method_of(&old_server, "batch"), MoveMethod::Skip);
    assert!(
        blocker_about(&old_server, "Job apps/batch")
            .fix
            .contains("--evict-jobs")
    );
    assert_eq!(method_of(&old_server, "paused"), MoveMethod::Skip);
    assert!(
        blocker_about(&old_server, "Deployment apps/paused")
            .fix
            .contains("rollout resume")
    );

    // A 1.22 server surges DaemonSets that ask for it; --evict-jobs moves Jobs.
    inv.server = ServerVersion {
        major: 1,
        minor: 22,
    };
    let mut i = intent();
    i.evict_jobs = true;
    let new_server = plan(&inv, &i).unwrap();
    assert!(notes_of(&new_server, "agent").is_empty());
    assert_eq!(method_of(&new_server, "batch"), MoveMethod::Evict);
    assert!(notes_of(&new_server, "batch")[0].contains("backoffLimit"));
}

#[test]
fn workloads_sharing_a_budget_share_a_lane() {
    let mut inv = tutorial();
    inv.snapshot.namespaces.push(namespace("shop"));
    for (name, address) in [
        ("a", "192.168.10.50"),
        ("b", "192.168.10.51"),
        ("c", "192.168.10.52"),
    ] {
        add_pod(
            &mut inv,
            owned(
                pod("shop", &format!("{name}-1"), "sim-0", address, name),
                OwnerKind::Deployment,
                name,
                &[("app", name), ("tier", "front")],
            ),
        );
        inv.workloads.deployments.push(deployment(
            "shop",
            name,
            3,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
        ));
    }
    let mut front = budget("shop", "front", "unused", json!({"maxUnavailable": 1}));
    front.selector = serde_json::from_value(json!({"matchLabels": {"tier": "front"}})).unwrap();
    front.expected_pods = 9;
    inv.budgets.push(front);
    inv.budgets
        .push(budget("shop", "c-only", "c", json!({"maxUnavailable": 1})));
    let plan = plan(&inv, &intent()).unwrap();
    let lane = |name: &str| {
        plan.moves
            .iter()
            .find(|m| m.workload.name == name)
            .unwrap()
            .lane
    };
    assert_eq!(lane("a"), lane("b"));
    assert_eq!(lane("b"), lane("c"));
    assert_ne!(lane("a"), lane("coredns"));
}

#[test]
fn the_new_pool_must_fit_the_old_one() {
    // NEW exists without the old pool's IPIP, in IPv6, or operator-managed.
    let mut inv = tutorial();
    inv.snapshot
        .pools
        .push(pool(NEW, "10.0.0.0/16", None, true));
    let mut i = intent();
    i.new_cidr = None;
    let plan1 = plan(&inv, &i).unwrap();
    assert_eq!(plan1.target_action, TargetAction::Enable);
    let encap = blocker_about(&plan1, "pool new-pool");
    assert!(encap.problem.contains("IPIP"), "{encap:?}");
    assert!(encap.fix.contains("ipipMode: Always"), "{encap:?}");

    let mut inv = tutorial();
    let mut v6 = pool(NEW, "fd00:10::/64", None, false);
    v6.spec.ipip_mode = Some(EncapMode::Always);
    v6.metadata.labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "tigera-operator".into(),
    );
    inv.snapshot.pools.push(v6);
    let plan2 = plan(&inv, &i).unwrap();
    assert!(
        plan2
            .blockers
            .iter()
            .any(|b| b.problem.contains("address families"))
    );
    assert!(
        plan2
            .blockers
            .iter()
            .any(|b| b.fix.contains("Installation"))
    );

    // --cidr that disagrees with the existing pool.
    let mut inv = tutorial();
    let mut existing = pool(NEW, "10.1.0.0/16", None, false);
    existing.spec.ipip_mode = Some(EncapMode::Always);
    inv.snapshot.pools.push(existing);
    let plan3 = plan(&inv, &intent()).unwrap();
    assert!(
        blocker_about(&plan3, "pool new-pool")
            .problem
            .contains("not the 10.0.0.0/16")
    );
}

#[test]
fn a_new_pool_overlapping_the_old_one_is_refused_by_the_shared_rules() {
    let mut i = intent();
    i.new_cidr = Some("192.168.128.0/17".parse().unwrap());
    let plan = plan(&tutorial(), &i).unwrap();
    let errors: Vec<&PoolFinding> = plan
        .findings
        .iter()
        .filter(|f| f.pool == NEW && f.severity == Severity::Error)
        .collect();
    assert!(!errors.is_empty(), "{:#?}", plan.findings);
    assert!(plan.is_blocked());
    assert!(
        plan.blockers
            .iter()
            .any(|b| b.problem.to_lowercase().contains("overlap")),
        "{:#?}",
        plan.blockers
    );
}

#[test]
fn a_new_pool_that_misses_nodes_with_moving_pods_blocks() {
    let mut inv = tutorial();
    inv.snapshot.nodes[1]
        .labels
        .insert("zone".into(), "b".into());
    let mut existing = pool(NEW, "10.0.0.0/16", None, false);
    existing.spec.ipip_mode = Some(EncapMode::Always);
    existing.spec.node_selector = Some("zone == 'b'".into());
    inv.snapshot.pools.push(existing);
    let mut i = intent();
    i.new_cidr = None;
    let plan = plan(&inv, &i).unwrap();
    let b = blocker_about(&plan, "pool new-pool");
    assert!(b.problem.contains("sim-0"), "{b:?}");
    assert!(!b.problem.contains("sim-1"), "{b:?}");
}

#[test]
fn a_partial_scope_keeps_the_old_pool_and_moves_only_its_pods() {
    let mut inv = tutorial();
    inv.snapshot.namespaces.push(namespace("shop"));
    add_pod(
        &mut inv,
        owned(
            pod("shop", "web-1", "sim-0", "192.168.10.60", "w"),
            OwnerKind::Deployment,
            "web",
            &[("app", "web")],
        ),
    );
    inv.workloads.deployments.push(deployment(
        "shop",
        "web",
        1,
        json!({"type": "RollingUpdate"}),
    ));
    let mut i = intent();
    i.scope.namespace = Some("shop".into());
    let by_namespace = plan(&inv, &i).unwrap();
    assert_eq!(by_namespace.keep_old_pool, Some(KeepReason::PartialScope));
    assert_eq!(by_namespace.moves.len(), 1);
    assert_eq!(by_namespace.moves[0].workload.name, "web");

    let mut i = intent();
    i.scope.selector = Some("k8s-app=kube-dns".into());
    i.scope.selected = Some(BTreeSet::from([
        ("kube-system".to_owned(), "coredns-a".to_owned()),
        ("kube-system".to_owned(), "coredns-b".to_owned()),
    ]));
    let by_selector = plan(&inv, &i).unwrap();
    assert_eq!(by_selector.keep_old_pool, Some(KeepReason::PartialScope));
    assert_eq!(by_selector.moves.len(), 1);
    assert_eq!(by_selector.moves[0].workload.name, "coredns");
}

#[test]
fn terminating_pods_are_waited_for_not_moved() {
    let mut inv = tutorial();
    let mut leaving = pod("default", "old-1", "sim-0", "192.168.10.33", "o");
    leaving.terminating = true;
    add_pod(&mut inv, leaving);
    let plan = plan(&inv, &intent()).unwrap();
    assert_eq!(plan.terminating_pods, vec!["default/old-1".to_owned()]);
    assert!(plan.blockers.is_empty());
}

#[test]
fn a_too_small_new_pool_blocks() {
    let mut i = intent();
    i.new_cidr = Some("10.0.0.0/31".parse::<IpNet>().unwrap());
    let plan = plan(&tutorial(), &i).unwrap();
    assert!(
        plan.blockers
            .iter()
            .any(|b| b.problem.contains("fewer than the 3")),
        "{:#?}",
        plan.blockers
    );
}
