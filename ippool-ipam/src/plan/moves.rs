//! Grouping the pods in OLD by owner, each workload's move decided by [`super::decision`]; pins
//! to OLD block a move, and workloads sharing a PodDisruptionBudget share a lane.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::decision::decide;
use super::inputs::Inventory;
use super::{Blocker, DisruptionNote, Intent, PodInOld, PoolSide, WorkloadMove, WorkloadRef};
use crate::names::{ANNOTATION_IPV4_POOLS, ANNOTATION_IPV6_POOLS};
use crate::snapshot::{OwnerKind, PodInfo};
use crate::{check, usage};
use ipnet::IpNet;
use ippool_rules::cidr::{self, Family};
use ippool_rules::model::IpPool;

/// Pod annotation fixing a pod's IPv4/IPv6 addresses (a JSON list).
pub const ANNOTATION_IP_ADDRS: &str = "cni.projectcalico.org/ipAddrs";

pub(super) struct Grouped {
    pub moves: Vec<WorkloadMove>,
    pub disruptions: Vec<DisruptionNote>,
    pub blockers: Vec<Blocker>,
    pub warnings: Vec<String>,
    pub tunnel_nodes: Vec<String>,
    pub terminating: Vec<String>,
}

pub(super) fn group(
    inventory: &Inventory,
    intent: &Intent,
    old: &IpPool,
    from: &PoolSide,
    to: &PoolSide,
) -> Grouped {
    let tunnel_nodes: BTreeSet<String> = usage::tunnel_addresses(&inventory.snapshot, old)
        .into_iter()
        .map(|t| t.node.to_owned())
        .collect();
    let mut out = Grouped {
        moves: Vec::new(),
        disruptions: Vec::new(),
        blockers: Vec::new(),
        warnings: Vec::new(),
        tunnel_nodes: tunnel_nodes.into_iter().collect(),
        terminating: Vec::new(),
    };
    let family = Family::of(&from.cidr);
    let mut by_owner: BTreeMap<WorkloadRef, Vec<&PodInfo>> = BTreeMap::new();
    for pod in &inventory.snapshot.pods {
        if !in_pool(pod, &from.cidr) || !intent.scope.covers(&pod.namespace, &pod.name) {
            continue;
        }
        if pod.terminating {
            out.terminating.push(pod.key());
            continue;
        }
        check_pod_pins(pod, from, to, family, &mut out.blockers);
        let workload = WorkloadRef {
            namespace: pod.namespace.clone(),
            kind: pod.owner.kind.clone(),
            name: match pod.owner.kind {
                OwnerKind::Bare => pod.name.clone(),
                _ => pod.owner.name.clone(),
            },
        };
        by_owner.entry(workload).or_default().push(pod);
    }
    check_namespace_pins(inventory, intent, from, to, family, &mut out.blockers);
    if !intent.scope.is_partial() {
        leaked_warning(inventory, old, &mut out.warnings);
    }

    for (workload, pods) in by_owner {
        let decided = decide(inventory, intent, &workload, &pods);
        out.disruptions
            .extend(decided.notes.into_iter().map(|message| DisruptionNote {
                workload: workload.clone(),
                message,
            }));
        out.blockers.extend(decided.blockers);
        out.warnings.extend(decided.warnings);
        out.moves.push(WorkloadMove {
            workload,
            method: decided.method,
            pods: pods
                .iter()
                .map(|p| PodInOld {
                    name: p.name.clone(),
                    uid: p.uid.clone(),
                    node: p.node.clone(),
                    addresses: p.addresses.clone(),
                })
                .collect(),
            desired: decided.desired,
            budgets: decided.budgets,
            lane: 0,
        });
    }
    assign_lanes(&mut out.moves);
    out
}

fn in_pool(pod: &PodInfo, pool: &IpNet) -> bool {
    pod.holds_addresses() && pod.addresses.iter().any(|a| pool.contains(a))
}

/// Whether a `cni.projectcalico.org/ipv4pools`-style list names the pool (by name or CIDR).
/// `None` when the annotation is not a JSON list of strings (Calico rejects it too).
pub fn pins_name(annotation: &str, pool: &PoolSide) -> Option<bool> {
    let entries: Vec<String> = serde_json::from_str(annotation).ok()?;
    Some(entries.iter().any(|entry| {
        entry == &pool.name
            || cidr::parse_lenient(entry)
                .map(|net| cidr::canonical(&net) == pool.cidr)
                .unwrap_or(false)
    }))
}

fn pool_annotation(family: Family) -> &'static str {
    match family {
        Family::V4 => ANNOTATION_IPV4_POOLS,
        Family::V6 => ANNOTATION_IPV6_POOLS,
    }
}

fn check_pod_pins(
    pod: &PodInfo,
    from: &PoolSide,
    to: &PoolSide,
    family: Family,
    blockers: &mut Vec<Blocker>,
) {
    let pins = match family {
        Family::V4 => pod.ipv4_pools.as_deref(),
        Family::V6 => pod.ipv6_pools.as_deref(),
    };
    if let Some(pins) = pins
        && pins_name(pins, from) != Some(false)
    {
        blockers.push(Blocker {
            subject: format!("Pod {}", pod.key()),
            problem: format!(
                "its annotation {}={pins} pins it to pool {}; its replacement would ask for the \
                 disabled pool and get no address",
                pool_annotation(family),
                from.name
            ),
            fix: format!(
                "change the annotation in its owner's pod template to name {:?} (or remove it)",
                to.name
            ),
        });
    }
    if let Some(fixed) = pod.ip_addrs.as_deref() {
        let addresses: Vec<IpAddr> = serde_json::from_str::<Vec<String>>(fixed)
            .map(|list| list.iter().filter_map(|a| a.parse().ok()).collect())
            .unwrap_or_default();
        if let Some(address) = addresses.iter().find(|a| from.cidr.contains(*a)) {
            blockers.push(Blocker {
                subject: format!("Pod {}", pod.key()),
                problem: format!(
                    "its annotation {ANNOTATION_IP_ADDRS}={fixed} fixes address {address}, which \
                     is in pool {}: a replacement would ask for the same address",
                    from.name
                ),
                fix: format!(
                    "pick an address in {} ({}) for the annotation in its owner's pod template",
                    to.name, to.cidr
                ),
            });
        }
    }
}

fn check_namespace_pins(
    inventory: &Inventory,
    intent: &Intent,
    from: &PoolSide,
    to: &PoolSide,
    family: Family,
    blockers: &mut Vec<Blocker>,
) {
    for namespace in &inventory.snapshot.namespaces {
        if !intent.scope.covers_namespace(&namespace.name) {
            continue;
        }
        let pins = match family {
            Family::V4 => namespace.ipv4_pools.as_deref(),
            Family::V6 => namespace.ipv6_pools.as_deref(),
        };
        let Some(pins) = pins else { continue };
        if pins_name(pins, from) == Some(false) {
            continue;
        }
        let annotation = pool_annotation(family);
        blockers.push(Blocker {
            subject: format!("Namespace {}", namespace.name),
            problem: format!(
                "its annotation {annotation}={pins} pins every pod in it to pool {}; once that \
                 pool is disabled no new pod there gets an address",
                from.name
            ),
            fix: format!(
                "kubectl annotate namespace {} {annotation}='[\"{}\"]' --overwrite",
                namespace.name, to.name
            ),
        });
    }
}

/// Allocations in the pool that no live pod or node uses: they keep its blocks from being
/// released, so the delete step will stop on them.
fn leaked_warning(inventory: &Inventory, pool: &IpPool, warnings: &mut Vec<String>) {
    let leaked: Vec<_> = check::leaked_allocations(&inventory.snapshot)
        .into_iter()
        .filter(|l| l.pool.as_deref() == Some(pool.name()))
        .collect();
    if let Some(first) = leaked.first() {
        warnings.push(format!(
            "{} address(es) in pool {} are allocated to no live pod (first: {} in block {}); the \
             pool is deleted only once they are released — `kubectl ippool check` lists them",
            leaked.len(),
            pool.name(),
            first.address,
            first.block
        ));
    }
}

/// Moves whose budgets overlap share a lane (union-find over budget names).
fn assign_lanes(moves: &mut [WorkloadMove]) {
    let mut parent: Vec<usize> = (0..moves.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner_of_budget: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in moves.iter().enumerate() {
        for b in &m.budgets {
            match owner_of_budget.get(b.budget.as_str()) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a] = b;
                }
                None => {
                    owner_of_budget.insert(&b.budget, i);
                }
            }
        }
    }
    let mut numbers: BTreeMap<usize, usize> = BTreeMap::new();
    let lanes: Vec<usize> = (0..moves.len())
        .map(|i| {
            let r = root(&mut parent, i);
            let next = numbers.len();
            *numbers.entry(r).or_insert(next)
        })
        .collect();
    for (m, lane) in moves.iter_mut().zip(lanes) {
        m.lane = lane;
    }
}
