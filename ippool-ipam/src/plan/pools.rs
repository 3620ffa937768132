//! The two pools: which NEW is (existing or to create), the shared rules on both, and the checks
//! only a migration needs (same family and encapsulation, not operator-managed, NEW reaches every
//! node and namespace whose pods move, NEW is big enough).

use std::collections::BTreeSet;

use ipnet::IpNet;
use ippool_rules::cidr;
use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::model::{AllowedUse, AssignmentMode, IpPool, IpPoolSpec, ObjectMeta};
use ippool_rules::report::Severity;
use ippool_rules::rules;
use ippool_rules::selector::Selector;

use super::inputs::Inventory;
use super::{
    Blocker, Intent, MoveMethod, PlanError, PoolFinding, PoolSide, TargetAction, WorkloadMove,
};
use crate::snapshot::Parts;

/// The label the Tigera operator puts on the pools it reconciles from its `Installation`.
pub const OPERATOR_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "tigera-operator");

pub(super) struct Target {
    pub pool: IpPool,
    pub action: TargetAction,
}

/// NEW as it is, or as it will be created from OLD's settings.
pub(super) fn target(
    inventory: &Inventory,
    intent: &Intent,
    old: &IpPool,
) -> Result<Target, PlanError> {
    if let Some(existing) = inventory.snapshot.pool(&intent.to) {
        let action = if existing.is_enabled() {
            TargetAction::Use
        } else {
            TargetAction::Enable
        };
        return Ok(Target {
            pool: existing.clone(),
            action,
        });
    }
    let cidr = intent.new_cidr.ok_or_else(|| PlanError::NoNewPool {
        name: intent.to.clone(),
        from: intent.from.clone(),
    })?;
    Ok(Target {
        pool: derived_pool(old, &intent.to, &cidr),
        action: TargetAction::Create,
    })
}

/// A pool with `old`'s spec but `cidr`, enabled, without the deprecated v1 fields; no labels or
/// annotations (they describe the old pool, not this one).
pub fn derived_pool(old: &IpPool, name: &str, cidr: &IpNet) -> IpPool {
    IpPool {
        api_version: old.api_version.clone(),
        kind: "IPPool".to_owned(),
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: IpPoolSpec {
            cidr: Some(cidr.to_string()),
            disabled: None,
            ipip: None,
            nat_outgoing_v1: None,
            ..old.spec.clone()
        },
    }
}

pub(super) fn side(pool: &IpPool) -> Result<PoolSide, PlanError> {
    let spec = pool.spec.defaulted();
    let cidr = spec.cidr.ok_or_else(|| PlanError::BadCidr {
        name: pool.name().to_owned(),
        cidr: pool.spec.cidr.clone().unwrap_or_default(),
    })?;
    Ok(PoolSide {
        name: pool.name().to_owned(),
        cidr: cidr::canonical(&cidr),
        block_size: spec.block_size,
        enabled: pool.is_enabled(),
    })
}

fn context(inventory: &Inventory, except: &str) -> ClusterContext {
    inventory
        .snapshot
        .rules_context(Parts::RULES, inventory.cluster_cidrs.clone(), None)
        .without_pool(except)
}

fn is_operator_managed(pool: &IpPool) -> bool {
    pool.metadata
        .labels
        .get(OPERATOR_LABEL.0)
        .map(String::as_str)
        == Some(OPERATOR_LABEL.1)
}

/// NEW and OLD judged for the migration: the shared rules, their compatibility, NEW's fitness for
/// OLD's pods, and the other pools Calico may pick instead.
pub(super) fn review(
    inventory: &Inventory,
    intent: &Intent,
    old: &IpPool,
    target: &Target,
    findings: &mut Vec<PoolFinding>,
    blockers: &mut Vec<Blocker>,
    warnings: &mut Vec<String>,
) {
    rule_findings(inventory, old, &target.pool, findings, blockers);
    compatibility(old, &target.pool, blockers, warnings);
    usability(intent, old, target, blockers);
    competing_pools(inventory, old, &target.pool, warnings);
}

/// The shared rules on both pools: NEW's errors block, OLD's findings are only reported.
fn rule_findings(
    inventory: &Inventory,
    old: &IpPool,
    new: &IpPool,
    findings: &mut Vec<PoolFinding>,
    blockers: &mut Vec<Blocker>,
) {
    let new_name = new.name().to_owned();
    // NEW must pass the shared rules as if it were being created now: it must not overlap OLD or
    // any other pool, must sit inside the cluster CIDR, and must not collide with leftover blocks.
    for finding in rules::check_pool(new, &context(inventory, &new_name), &Operation::Create) {
        if finding.severity == Severity::Info {
            continue;
        }
        if finding.severity == Severity::Error {
            blockers.push(Blocker {
                subject: format!("pool {new_name}"),
                problem: finding.message.clone(),
                fix: finding.hint.clone().unwrap_or_else(|| {
                    "fix the pool's spec (see `kubectl ippool validate`)".to_owned()
                }),
            });
        }
        findings.push(PoolFinding {
            pool: new_name.clone(),
            severity: finding.severity,
            code: Some(finding.code.to_string()),
            message: finding.message,
            hint: finding.hint,
        });
    }
    // OLD's problems (typically: outside the cluster CIDR) are the reason to migrate, never a
    // reason to stop.
    let old_name = old.name().to_owned();
    let as_is = Operation::Update { old: old.clone() };
    for finding in rules::check_pool(old, &context(inventory, &old_name), &as_is) {
        if finding.severity == Severity::Info {
            continue;
        }
        findings.push(PoolFinding {
            pool: old_name.clone(),
            severity: Severity::Warning,
            code: Some(finding.code.to_string()),
            message: finding.message,
            hint: None,
        });
    }
}

/// Whether pods and tunnels can move from OLD to NEW: the same family, and every encapsulation
/// OLD uses.
fn compatibility(
    old: &IpPool,
    new: &IpPool,
    blockers: &mut Vec<Blocker>,
    warnings: &mut Vec<String>,
) {
    let (old_name, new_name) = (old.name(), new.name());
    let (o, n) = (old.spec.defaulted(), new.spec.defaulted());
    let subject = format!("pool {new_name}");
    if let (Some(of), Some(nf)) = (o.family(), n.family())
        && of != nf
    {
        blockers.push(Blocker {
            subject: subject.clone(),
            problem: format!(
                "it is {} and {old_name} is {}: pods cannot move between address families",
                nf, of
            ),
            fix: format!("move {old_name}'s pods to a {} pool", of),
        });
    }
    let old_encaps: BTreeSet<_> = o.encapsulations().collect();
    let new_encaps: BTreeSet<_> = n.encapsulations().collect();
    for missing in old_encaps.difference(&new_encaps) {
        blockers.push(Blocker {
            subject: subject.clone(),
            problem: format!(
                "{old_name} uses {missing} and {new_name} does not: calico-node removes a node's \
                 {missing} tunnel address when no enabled pool has that encapsulation"
            ),
            fix: format!(
                "give {new_name} {}: {} (as {old_name} has)",
                missing.field(),
                match missing {
                    ippool_rules::model::Encapsulation::Ipip => &o.ipip_mode,
                    ippool_rules::model::Encapsulation::Vxlan => &o.vxlan_mode,
                }
            ),
        });
    }
    for added in new_encaps.difference(&old_encaps) {
        warnings.push(format!(
            "{new_name} adds {added} encapsulation, which {old_name} does not use: moved pods' \
             traffic between nodes changes"
        ));
    }
    if o.ipip_mode != n.ipip_mode && old_encaps.intersection(&new_encaps).count() > 0 {
        warnings.push(format!(
            "ipipMode differs: {old_name} has {}, {new_name} has {}",
            o.ipip_mode, n.ipip_mode
        ));
    }
    if o.vxlan_mode != n.vxlan_mode && old_encaps.intersection(&new_encaps).count() > 0 {
        warnings.push(format!(
            "vxlanMode differs: {old_name} has {}, {new_name} has {}",
            o.vxlan_mode, n.vxlan_mode
        ));
    }
}

/// Whether NEW can take OLD's pods as the plan means to use it: not owned by the operator, open to
/// workloads (and tunnels, when OLD holds them), assigned automatically, with the CIDR asked for.
fn usability(intent: &Intent, old: &IpPool, target: &Target, blockers: &mut Vec<Blocker>) {
    let new = &target.pool;
    let (old_name, new_name) = (old.name(), new.name());
    let (o, n) = (old.spec.defaulted(), new.spec.defaulted());
    let old_encaps: BTreeSet<_> = o.encapsulations().collect();
    let subject = format!("pool {new_name}");
    for pool in [old, new] {
        if is_operator_managed(pool) {
            blockers.push(Blocker {
                subject: format!("pool {}", pool.name()),
                problem: format!(
                    "it carries {}={}: the Tigera operator reconciles it from its Installation and \
                     reverts direct edits (disabling, deleting)",
                    OPERATOR_LABEL.0, OPERATOR_LABEL.1
                ),
                fix: "change the pools in the Installation resource (spec.calicoNetwork.ipPools) \
                      instead"
                    .to_owned(),
            });
        }
    }
    if !n.allowed_uses.contains(&AllowedUse::Workload) {
        blockers.push(Blocker {
            subject: subject.clone(),
            problem: "its allowedUses lack Workload: pods get no address from it".to_owned(),
            fix: format!("add Workload to {new_name}'s allowedUses"),
        });
    }
    if !old_encaps.is_empty()
        && o.allowed_uses.contains(&AllowedUse::Tunnel)
        && !n.allowed_uses.contains(&AllowedUse::Tunnel)
    {
        blockers.push(Blocker {
            subject: subject.clone(),
            problem: format!(
                "its allowedUses lack Tunnel while {old_name} holds the nodes' tunnel addresses: \
                 they would have nowhere to go"
            ),
            fix: format!("add Tunnel to {new_name}'s allowedUses"),
        });
    }
    if n.assignment_mode == AssignmentMode::Manual {
        blockers.push(Blocker {
            subject: subject.clone(),
            problem: "its assignmentMode is Manual: Calico only assigns from it to pods that name \
                      it"
            .to_owned(),
            fix: format!("set {new_name}'s assignmentMode to Automatic"),
        });
    }
    if target.action != TargetAction::Create
        && let Some(asked) = intent.new_cidr
        && n.cidr.map(|c| cidr::canonical(&c)) != Some(cidr::canonical(&asked))
    {
        blockers.push(Blocker {
            subject: subject.clone(),
            problem: format!(
                "it exists with CIDR {}, not the {asked} given with --cidr",
                new.spec.cidr.as_deref().unwrap_or("(none)")
            ),
            fix: format!(
                "drop --cidr to move into {new_name} as it is, or name a new pool with --to"
            ),
        });
    }
}

/// Other enabled pools of the family that Calico may pick for replacement pods instead of NEW.
fn competing_pools(inventory: &Inventory, old: &IpPool, new: &IpPool, warnings: &mut Vec<String>) {
    let (old_name, new_name) = (old.name(), new.name());
    let n = new.spec.defaulted();
    let family = n.family();
    for other in &inventory.snapshot.pools {
        if other.name() == old_name || other.name() == new_name || !other.is_enabled() {
            continue;
        }
        let spec = other.spec.defaulted();
        if spec.family() == family
            && spec.allowed_uses.contains(&AllowedUse::Workload)
            && spec.assignment_mode == AssignmentMode::Automatic
        {
            warnings.push(format!(
                "pool {} is enabled too: Calico may give replacement pods addresses from it \
                 instead of {new_name}",
                other.name()
            ));
        }
    }
}

/// Replacement pods must be able to get an address from NEW where they will run: the nodes and
/// namespaces of the pods that move must be selected by NEW's selectors.
pub(super) fn coverage(
    inventory: &Inventory,
    new: &IpPool,
    moves: &[WorkloadMove],
    blockers: &mut Vec<Blocker>,
) {
    let spec = new.spec.defaulted();
    let subject = format!("pool {}", new.name());
    let moving = moves.iter().filter(|m| m.method != MoveMethod::Skip);
    let nodes: BTreeSet<&str> = moving
        .clone()
        .flat_map(|m| m.pods.iter().filter_map(|p| p.node.as_deref()))
        .collect();
    let namespaces: BTreeSet<&str> = moving.map(|m| m.workload.namespace.as_str()).collect();
    match Selector::parse(&spec.node_selector) {
        Ok(selector) => {
            let unselected: Vec<&str> = nodes
                .iter()
                .copied()
                .filter(|name| {
                    inventory
                        .snapshot
                        .node(name)
                        .is_some_and(|n| !selector.matches(&n.labels))
                })
                .collect();
            if !unselected.is_empty() {
                blockers.push(Blocker {
                    subject: subject.clone(),
                    problem: format!(
                        "its nodeSelector {:?} does not select node(s) {} where pods to move \
                         run: their replacements would get no address there",
                        spec.node_selector,
                        unselected.join(", ")
                    ),
                    fix: "widen the pool's nodeSelector to cover those nodes".to_owned(),
                });
            }
        }
        Err(e) => blockers.push(Blocker {
            subject: subject.clone(),
            problem: format!("its nodeSelector does not parse: {e}"),
            fix: "fix the pool's nodeSelector".to_owned(),
        }),
    }
    match Selector::parse(&spec.namespace_selector) {
        Ok(selector) => {
            let unselected: Vec<&str> = namespaces
                .iter()
                .copied()
                .filter(|name| {
                    inventory
                        .snapshot
                        .namespaces
                        .iter()
                        .find(|n| n.name == *name)
                        .is_some_and(|n| !selector.matches(&n.labels))
                })
                .collect();
            if !unselected.is_empty() {
                blockers.push(Blocker {
                    subject,
                    problem: format!(
                        "its namespaceSelector {:?} does not select namespace(s) {} whose pods \
                         move: their replacements would get no address",
                        spec.namespace_selector,
                        unselected.join(", ")
                    ),
                    fix: "widen the pool's namespaceSelector to cover those namespaces".to_owned(),
                });
            }
        }
        Err(e) => blockers.push(Blocker {
            subject,
            problem: format!("its namespaceSelector does not parse: {e}"),
            fix: "fix the pool's namespaceSelector".to_owned(),
        }),
    }
}

/// NEW must have room for every pod that moves and every tunnel address that follows.
pub(super) fn capacity(
    to: &PoolSide,
    moves: &[WorkloadMove],
    tunnel_nodes: &[String],
    blockers: &mut Vec<Blocker>,
) {
    let needed = moves
        .iter()
        .filter(|m| m.method != MoveMethod::Skip)
        .map(|m| m.pods.len() as u128)
        .sum::<u128>()
        + tunnel_nodes.len() as u128;
    let capacity = cidr::address_count(&to.cidr);
    if capacity < needed {
        blockers.push(Blocker {
            subject: format!("pool {}", to.name),
            problem: format!(
                "{} holds {capacity} addresses, fewer than the {needed} the moving pods and tunnel \
                 addresses need",
                to.cidr
            ),
            fix: "give the new pool a larger CIDR".to_owned(),
        });
    }
}
