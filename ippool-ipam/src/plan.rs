//! The migration planner: a pure function from what was read from the cluster ([`Inventory`])
//! and what the operator asked for ([`Intent`]) to a [`Plan`] — the pools and their validation,
//! every workload with pods in the old pool grouped by owner with how it will move, the
//! PodDisruptionBudgets that bound it, the moves that cannot be disruption-free, and the blockers
//! that stop the run (each with its fix). Nothing here talks to the API server; the executor in
//! [`crate::migration`] carries a plan out.

mod decision;
mod inputs;
mod moves;
pub mod objects;
mod pools;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use ippool_rules::model::IpPool;
use ippool_rules::report::Severity;
use serde::Serialize;

pub use inputs::{Budget, Inventory, PolicyVersion, ServerVersion, Workloads};

use crate::snapshot::OwnerKind;

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Intent {
    /// The pool pods move out of (OLD).
    pub from: String,
    /// The pool pods move into (NEW).
    pub to: String,
    /// Create NEW with this CIDR (and OLD's other settings) unless it exists.
    pub new_cidr: Option<IpNet>,
    /// Part of the workloads only (implies keeping OLD).
    pub scope: Scope,
    pub evict_jobs: bool,
    pub delete_bare_pods: bool,
    pub keep_old_pool: bool,
}

/// Which pods a migration covers: all namespaces unless narrowed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    pub namespace: Option<String>,
    /// A label selector as given to `--selector`; the pods it matched (the API server evaluated
    /// it) are in [`Scope::selected`].
    pub selector: Option<String>,
    /// `(namespace, name)` of the pods the selector matched.
    pub selected: Option<BTreeSet<(String, String)>>,
}

impl Scope {
    pub fn is_partial(&self) -> bool {
        self.namespace.is_some() || self.selector.is_some()
    }

    pub fn covers(&self, namespace: &str, name: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self
                .selected
                .as_ref()
                .is_none_or(|s| s.contains(&(namespace.to_owned(), name.to_owned())))
    }

    /// Whether namespace-level settings (pins) of `namespace` concern this migration.
    pub fn covers_namespace(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }
}

/// A plan that cannot even be made: the request names pools that are not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("pool {name:?} (--from) does not exist; `kubectl ippool list` shows the pools")]
    NoOldPool { name: String },
    #[error(
        "pool {name:?} (--to) does not exist; pass --cidr CIDR to create it with {from:?}'s other settings"
    )]
    NoNewPool { name: String, from: String },
    #[error("--from and --to both name pool {name:?}; name a different pool to move to")]
    SamePool { name: String },
    #[error("pool {name:?} has no valid CIDR ({cidr:?}); fix its spec.cidr before migrating")]
    BadCidr { name: String, cidr: String },
}

/// One side of the migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSide {
    pub name: String,
    pub cidr: IpNet,
    pub block_size: Option<u8>,
    pub enabled: bool,
}

/// What happens to NEW before pods move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetAction {
    /// It does not exist: created from OLD's settings with the given CIDR.
    Create,
    /// It exists but is disabled: enabled.
    Enable,
    /// It exists and is enabled.
    Use,
}

/// A validation finding about a pool (the shared rules, or a migration check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolFinding {
    pub pool: String,
    pub severity: Severity,
    /// The rule code (`IPP…`) when the finding comes from the shared rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The workload a pod belongs to, within its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    pub namespace: String,
    pub kind: OwnerKind,
    /// The controller's name; for a bare pod, the pod's name.
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            OwnerKind::Bare => write!(f, "Pod {}/{}", self.namespace, self.name),
            _ => write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name),
        }
    }
}

/// How a workload's pods leave OLD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveMethod {
    /// `kubectl rollout restart`: a new pod template revision, rolled out by the controller
    /// under the workload's own strategy.
    RolloutRestart,
    /// One pod at a time through the eviction API, which honours PodDisruptionBudgets; the
    /// controller replaces each.
    Evict,
    /// Deleted (bare pods, with `--delete-bare-pods`): not replaced.
    Delete,
    /// Left where it is (a blocker says why).
    Skip,
}

impl fmt::Display for MoveMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoveMethod::RolloutRestart => "rollout restart",
            MoveMethod::Evict => "evict",
            MoveMethod::Delete => "delete",
            MoveMethod::Skip => "skip",
        })
    }
}

/// A pod that holds an address in OLD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInOld {
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    pub addresses: Vec<IpAddr>,
}

/// A PodDisruptionBudget that covers a workload's pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetBound {
    /// `namespace/name`.
    pub budget: String,
    /// `minAvailable 3`, `maxUnavailable 1`.
    pub spec: String,
    /// Pods it lets be down at once when all of its pods are healthy.
    pub allows: i32,
}

/// One workload and how its pods in OLD move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadMove {
    pub workload: WorkloadRef,
    pub method: MoveMethod,
    /// Its pods in OLD.
    pub pods: Vec<PodInOld>,
    /// Pods the controller wants (replicas, or scheduled DaemonSet pods), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<i32>,
    pub budgets: Vec<BudgetBound>,
    /// Moves that share a budget share a lane and run one after the other, so that their
    /// disruptions never add up against the budget.
    pub lane: usize,
}

/// A move that cannot be disruption-free, named before anything starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionNote {
    pub workload: WorkloadRef,
    pub message: String,
}

/// Something that stops the run, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    /// What is in the way ("Pod default/debug", "Namespace legacy", "pool new-pool").
    pub subject: String,
    pub problem: String,
    pub fix: String,
}

/// Why OLD is kept at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepReason {
    /// `--keep-old-pool`.
    Asked,
    /// `-n`/`--selector`: pods outside the scope may still hold addresses in OLD.
    PartialScope,
}

/// The migration, computed before any write.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub from: PoolSide,
    pub to: PoolSide,
    pub target_action: TargetAction,
    /// The pool to create when `target_action` is `Create`.
    #[serde(skip)]
    pub new_pool: Option<IpPool>,
    pub findings: Vec<PoolFinding>,
    pub moves: Vec<WorkloadMove>,
    pub disruptions: Vec<DisruptionNote>,
    pub blockers: Vec<Blocker>,
    /// Things worth knowing that do not stop the run.
    pub warnings: Vec<String>,
    /// `None`: OLD is released and deleted at the end.
    pub keep_old_pool: Option<KeepReason>,
    /// Nodes whose tunnel address is in OLD; calico-node re-homes them once OLD is disabled.
    pub tunnel_nodes: Vec<String>,
    /// Pods in OLD already being deleted: nothing moves them, the verify step waits for them.
    pub terminating_pods: Vec<String>,
}

impl Plan {
    pub fn is_blocked(&self) -> bool {
        !self.blockers.is_empty()
    }

    /// Pods that will move (every move but skipped ones).
    pub fn pods_to_move(&self) -> usize {
        self.moves
            .iter()
            .filter(|m| m.method != MoveMethod::Skip)
            .map(|m| m.pods.len())
            .sum()
    }
}

/// Computes the plan. Blockers are collected, not returned as errors: the operator sees all of
/// them at once.
pub fn plan(inventory: &Inventory, intent: &Intent) -> Result<Plan, PlanError> {
    if intent.from == intent.to {
        return Err(PlanError::SamePool {
            name: intent.from.clone(),
        });
    }
    let snapshot = &inventory.snapshot;
    let old = snapshot
        .pool(&intent.from)
        .ok_or_else(|| PlanError::NoOldPool {
            name: intent.from.clone(),
        })?;
    let target = pools::target(inventory, intent, old)?;
    let from = pools::side(old)?;
    let to = pools::side(&target.pool)?;

    let mut findings = Vec::new();
    let mut blockers = Vec::new();
    let mut warnings = Vec::new();
    pools::review(
        inventory,
        intent,
        old,
        &target,
        &mut findings,
        &mut blockers,
        &mut warnings,
    );

    let grouped = moves::group(inventory, intent, old, &from, &to);
    blockers.extend(grouped.blockers);
    pools::coverage(inventory, &target.pool, &grouped.moves, &mut blockers);
    pools::capacity(&to, &grouped.moves, &grouped.tunnel_nodes, &mut blockers);
    warnings.extend(grouped.warnings);

    let keep_old_pool = if intent.keep_old_pool {
        Some(KeepReason::Asked)
    } else if intent.scope.is_partial() {
        Some(KeepReason::PartialScope)
    } else {
        None
    };

    Ok(Plan {
        from,
        to,
        target_action: target.action,
        new_pool: (target.action == TargetAction::Create).then_some(target.pool),
        findings,
        moves: grouped.moves,
        disruptions: grouped.disruptions,
        blockers,
        warnings,
        keep_old_pool,
        tunnel_nodes: grouped.tunnel_nodes,
        terminating_pods: grouped.terminating,
    })
}
