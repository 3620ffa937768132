//! How one workload moves: its controller's strategy decides the method (a rollout restart, an
//! eviction per pod, or nothing), PodDisruptionBudgets bound how many pods may be down at once,
//! and paused rollouts, Jobs, bare and static pods block or need a flag.

use super::inputs::{Budget, Inventory};
use super::objects::{DaemonSet, Deployment, IntOrString, Meta, Rounding, StatefulSet, scaled};
use super::{Blocker, BudgetBound, Intent, MoveMethod, WorkloadRef};
use crate::snapshot::{OwnerKind, PodInfo};

/// What was decided for one workload.
pub(super) struct Decision {
    pub method: MoveMethod,
    pub desired: Option<i32>,
    pub budgets: Vec<BudgetBound>,
    pub notes: Vec<String>,
    pub blockers: Vec<Blocker>,
    pub warnings: Vec<String>,
}

/// A rollout as the controller will run it: how many pods it may take down at once, and
/// whether it is disruption-free.
struct Rollout {
    desired: i32,
    /// Pods the strategy lets be unavailable at once.
    down: i32,
}

pub(super) fn decide(
    inventory: &Inventory,
    intent: &Intent,
    workload: &WorkloadRef,
    pods: &[&PodInfo],
) -> Decision {
    let mut d = Decision {
        method: MoveMethod::Evict,
        desired: None,
        budgets: budgets_for(inventory, workload, pods),
        notes: Vec::new(),
        blockers: Vec::new(),
        warnings: Vec::new(),
    };
    let workloads = &inventory.workloads;
    let find = |meta: &Meta| meta.is(&workload.namespace, &workload.name);
    let rollout = match &workload.kind {
        OwnerKind::Deployment => workloads
            .deployments
            .iter()
            .find(|w| find(&w.metadata))
            .map(|w| deployment(w, workload, &mut d)),
        OwnerKind::StatefulSet => workloads
            .stateful_sets
            .iter()
            .find(|w| find(&w.metadata))
            .map(|w| stateful_set(w, &mut d)),
        OwnerKind::DaemonSet => workloads
            .daemon_sets
            .iter()
            .find(|w| find(&w.metadata))
            .map(|w| daemon_set(w, inventory, &mut d)),
        OwnerKind::Job | OwnerKind::CronJob => {
            job(intent, workload, pods, &mut d);
            return d;
        }
        OwnerKind::Bare => {
            bare(intent, workload, &mut d);
            return d;
        }
        OwnerKind::Other(kind) if kind == "Node" => {
            d.method = MoveMethod::Skip;
            d.blockers.push(Blocker {
                subject: workload.to_string(),
                problem: "a static pod run by the kubelet from a manifest on its node: evicting \
                          or deleting it does not restart it"
                    .to_owned(),
                fix: "restart it on the node (move its manifest out of the kubelet's manifest \
                      folder and back)"
                    .to_owned(),
            });
            return d;
        }
        OwnerKind::Other(kind) => {
            d.warnings.push(format!(
                "{workload}: controller kind {kind} is not known here; its pods are evicted one at \
                 a time on the assumption that it replaces them"
            ));
            None
        }
        OwnerKind::ReplicaSet => None,
    };
    let live_pods = owner_pod_count(inventory, workload);
    match rollout {
        Some(rollout) => {
            d.desired = Some(rollout.desired);
            bound_rollout(workload, &rollout, &mut d);
        }
        None => {
            d.desired = Some(live_pods);
            if matches!(
                workload.kind,
                OwnerKind::Deployment | OwnerKind::StatefulSet | OwnerKind::DaemonSet
            ) {
                d.warnings.push(format!(
                    "{workload} owns pods in the old pool but was not found; its pods are evicted"
                ));
            }
        }
    }
    if d.method == MoveMethod::Evict {
        bound_eviction(workload, &mut d);
        if d.desired.unwrap_or(live_pods) <= 1 && workload.kind != OwnerKind::DaemonSet {
            d.notes.push(
                "a single pod: it is down from its eviction until its replacement is ready"
                    .to_owned(),
            );
        }
    }
    d
}

fn deployment(w: &Deployment, workload: &WorkloadRef, d: &mut Decision) -> Rollout {
    let spec = w.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    if spec.and_then(|s| s.paused).unwrap_or(false) {
        d.method = MoveMethod::Skip;
        d.blockers.push(Blocker {
            subject: workload.to_string(),
            problem: "its rollout is paused: a restart would never roll out".to_owned(),
            fix: format!(
                "kubectl rollout resume deployment/{} -n {}",
                workload.name, workload.namespace
            ),
        });
        return Rollout {
            desired: replicas,
            down: 0,
        };
    }
    d.method = MoveMethod::RolloutRestart;
    let strategy = spec.and_then(|s| s.strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        d.notes.push(format!(
            "Recreate strategy: all {replicas} pod(s) stop before their replacements start"
        ));
        return Rollout {
            desired: replicas,
            down: replicas,
        };
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".into());
    let surge = scaled(
        rolling
            .and_then(|r| r.max_surge.as_ref())
            .unwrap_or(&quarter),
        replicas,
        Rounding::Up,
    );
    let mut down = scaled(
        rolling
            .and_then(|r| r.max_unavailable.as_ref())
            .unwrap_or(&quarter),
        replicas,
        Rounding::Down,
    );
    if surge == 0 && down == 0 {
        down = 1;
    }
    if replicas == 1 && down >= 1 {
        d.notes.push(if surge == 0 {
            "a single replica without surge: its pod is down until the replacement is ready"
                .to_owned()
        } else {
            "a single replica with maxUnavailable 1: its pod may stop before the replacement is \
             ready (set maxUnavailable 0 to surge first)"
                .to_owned()
        });
    }
    Rollout {
        desired: replicas,
        down,
    }
}

fn stateful_set(w: &StatefulSet, d: &mut Decision) -> Rollout {
    let spec = w.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        d.method = MoveMethod::Evict;
    } else if partition > 0 {
        // A rollout would leave the pods below the partition where they are.
        d.method = MoveMethod::Evict;
        d.notes.push(format!(
            "RollingUpdate with partition {partition}: a rollout would not reach ordinals below \
             it, so its pods are evicted one at a time instead"
        ));
    } else {
        d.method = MoveMethod::RolloutRestart;
    }
    if replicas == 1 {
        d.notes.push(
            "a single replica: StatefulSets never surge, so its pod is down while it is replaced"
                .to_owned(),
        );
    }
    Rollout {
        desired: replicas,
        down: 1,
    }
}

fn daemon_set(w: &DaemonSet, inventory: &Inventory, d: &mut Decision) -> Rollout {
    let desired = w
        .status
        .as_ref()
        .map(|s| s.desired_number_scheduled)
        .unwrap_or(0);
    let strategy = w.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        d.method = MoveMethod::Evict;
        d.notes.push(
            "DaemonSet with OnDelete: each node's pod is down from its eviction until its \
             replacement is ready"
                .to_owned(),
        );
        return Rollout { desired, down: 1 };
    }
    d.method = MoveMethod::RolloutRestart;
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let surge = if inventory.server.surges_daemon_sets() {
        rolling
            .and_then(|r| r.max_surge.as_ref())
            .map_or(0, |s| scaled(s, desired, Rounding::Up))
    } else {
        0
    };
    let mut down = rolling
        .and_then(|r| r.max_unavailable.as_ref())
        .map_or(1, |u| scaled(u, desired, Rounding::Up));
    if surge == 0 {
        down = down.max(1);
        d.notes.push(if inventory.server.surges_daemon_sets() {
            "DaemonSet without maxSurge: each node's pod is down while its replacement starts \
             (set spec.updateStrategy.rollingUpdate.maxSurge to replace first)"
                .to_owned()
        } else {
            format!(
                "DaemonSet on a Kubernetes {} API server, which cannot surge DaemonSets (maxSurge \
                 needs 1.22): each node's pod is down while its replacement starts",
                inventory.server
            )
        });
    }
    Rollout { desired, down }
}

fn job(intent: &Intent, workload: &WorkloadRef, pods: &[&PodInfo], d: &mut Decision) {
    if intent.evict_jobs {
        d.method = MoveMethod::Evict;
        d.desired = Some(pods.len() as i32);
        d.notes.push(
            "Job pods are evicted: each eviction counts as a failed pod against the Job's \
             backoffLimit"
                .to_owned(),
        );
        bound_eviction(workload, d);
    } else {
        d.method = MoveMethod::Skip;
        d.blockers.push(Blocker {
            subject: workload.to_string(),
            problem: format!(
                "{} running pod(s) in the old pool; evicting a Job's pod counts against its \
                 backoffLimit",
                pods.len()
            ),
            fix: "wait for the Job to finish, or pass --evict-jobs".to_owned(),
        });
    }
}

fn bare(intent: &Intent, workload: &WorkloadRef, d: &mut Decision) {
    d.desired = Some(1);
    if intent.delete_bare_pods {
        d.method = MoveMethod::Delete;
        d.notes
            .push("a bare pod: it is deleted and nothing recreates it".to_owned());
    } else {
        d.method = MoveMethod::Skip;
        d.blockers.push(Blocker {
            subject: workload.to_string(),
            problem: "no controller owns it: moving it means deleting it, and nothing would \
                      bring it back"
                .to_owned(),
            fix: "run it under a Deployment (or delete it yourself), or pass --delete-bare-pods"
                .to_owned(),
        });
    }
}

/// Live pods in the snapshot owned by the same controller.
fn owner_pod_count(inventory: &Inventory, workload: &WorkloadRef) -> i32 {
    inventory
        .snapshot
        .pods
        .iter()
        .filter(|p| {
            p.is_live()
                && !p.terminating
                && p.namespace == workload.namespace
                && p.owner.kind == workload.kind
                && p.owner.name == workload.name
        })
        .count() as i32
}

fn budgets_for(
    inventory: &Inventory,
    workload: &WorkloadRef,
    pods: &[&PodInfo],
) -> Vec<BudgetBound> {
    inventory
        .budgets
        .iter()
        .filter(|b| pods.iter().any(|p| b.selects(&p.namespace, &p.labels)))
        .map(|b| BudgetBound {
            budget: b.key(),
            spec: b.describe_spec(),
            allows: b.allowed_when_healthy(covered_pods(inventory, b, workload)),
        })
        .collect()
}

/// The pods a budget counts: what its status says, else the live pods it selects.
fn covered_pods(inventory: &Inventory, budget: &Budget, workload: &WorkloadRef) -> i32 {
    if budget.expected_pods > 0 {
        return budget.expected_pods;
    }
    inventory
        .snapshot
        .pods
        .iter()
        .filter(|p| p.is_live() && p.namespace == workload.namespace)
        .filter(|p| budget.selects(&p.namespace, &p.labels))
        .count() as i32
}

fn bound_rollout(workload: &WorkloadRef, rollout: &Rollout, d: &mut Decision) {
    if d.method != MoveMethod::RolloutRestart || rollout.down == 0 {
        return;
    }
    let Some(tightest) = d.budgets.iter().min_by_key(|b| b.allows).cloned() else {
        return;
    };
    if tightest.allows == 0 {
        d.method = MoveMethod::Skip;
        d.blockers.push(Blocker {
            subject: workload.to_string(),
            problem: format!(
                "PodDisruptionBudget {} ({}) allows no pod to be down, and its rollout takes up to \
                 {} down at once",
                tightest.budget, tightest.spec, rollout.down
            ),
            fix: budget_fix(workload, &tightest),
        });
    } else if rollout.down > tightest.allows {
        d.method = MoveMethod::Evict;
        d.notes.push(format!(
            "moved by eviction, not rollout: its strategy would take up to {} pod(s) down at once \
             but PodDisruptionBudget {} allows {}",
            rollout.down, tightest.budget, tightest.allows
        ));
    }
}

fn bound_eviction(workload: &WorkloadRef, d: &mut Decision) {
    if let Some(tightest) = d.budgets.iter().find(|b| b.allows == 0).cloned() {
        d.method = MoveMethod::Skip;
        d.blockers.push(Blocker {
            subject: workload.to_string(),
            problem: format!(
                "PodDisruptionBudget {} ({}) allows no pod to be down, so no eviction of its pods \
                 can succeed",
                tightest.budget, tightest.spec
            ),
            fix: budget_fix(workload, &tightest),
        });
    }
}

fn budget_fix(workload: &WorkloadRef, budget: &BudgetBound) -> String {
    let surge = match workload.kind {
        OwnerKind::Deployment => {
            ", or give the Deployment maxUnavailable 0 and maxSurge 1 so that its rollout never \
             takes a pod down"
        }
        _ => "",
    };
    format!(
        "let PodDisruptionBudget {} allow one pod down (raise maxUnavailable or lower \
         minAvailable) or add a replica{surge}",
        budget.budget
    )
}
