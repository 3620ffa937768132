//! Plans as text, printed before anything is written: a migration's, and a resize's.

use std::fmt::Write as _;

use ippool_cluster::migration::resize::ResizePrepared;
use ippool_ipam::plan::{KeepReason, MoveMethod, Plan, PoolSide, TargetAction};

fn pool(side: &PoolSide) -> String {
    let block = side
        .block_size
        .map_or_else(String::new, |b| format!(", blockSize {b}"));
    format!("{} ({}{block})", side.name, side.cidr)
}

/// A migration's plan: the pools, what the checks found, the workloads to move, the steps, and
/// what blocks it.
pub fn migration(plan: &Plan) -> String {
    let mut out = String::new();
    pools_and_findings(&mut out, plan);
    workloads(&mut out, plan);
    notes(&mut out, plan);
    steps(&mut out, plan);
    blockers(&mut out, plan);
    out
}

fn pools_and_findings(out: &mut String, plan: &Plan) {
    let target = match plan.target_action {
        TargetAction::Create => "to be created with the old pool's other settings",
        TargetAction::Enable => "exists, disabled: will be enabled",
        TargetAction::Use => "exists",
    };
    let _ = writeln!(out, "Migration plan");
    let _ = writeln!(out, "  from  {}", pool(&plan.from));
    let _ = writeln!(out, "  to    {} — {target}", pool(&plan.to));

    if !plan.findings.is_empty() {
        let _ = writeln!(out, "\nPool checks");
        for f in &plan.findings {
            let code = f
                .code
                .as_deref()
                .map_or_else(String::new, |c| format!("[{c}]"));
            let _ = writeln!(out, "  {}{code} {}: {}", f.severity, f.pool, f.message);
            if let Some(hint) = &f.hint {
                let _ = writeln!(out, "      hint: {hint}");
            }
        }
    }
}

/// The table of workloads with pods in the old pool, and the addresses that move by themselves.
fn workloads(out: &mut String, plan: &Plan) {
    let pods: usize = plan.moves.iter().map(|m| m.pods.len()).sum();
    let _ = writeln!(
        out,
        "\nWorkloads with pods in {} ({} workload(s), {pods} pod(s))",
        plan.from.name,
        plan.moves.len()
    );
    if plan.moves.is_empty() {
        let _ = writeln!(out, "  none");
    }
    if !plan.moves.is_empty() {
        let width = plan
            .moves
            .iter()
            .map(|m| m.workload.to_string().len())
            .max()
            .unwrap_or(0)
            .max("WORKLOAD".len());
        let _ = writeln!(
            out,
            "  {:width$}  {:>9}  {:15}  BOUNDED BY",
            "WORKLOAD", "IN OLD", "MOVE"
        );
        for m in &plan.moves {
            let pods = match m.desired {
                Some(desired) => format!("{}/{desired}", m.pods.len()),
                None => m.pods.len().to_string(),
            };
            let budgets: Vec<String> = m
                .budgets
                .iter()
                .map(|b| format!("PDB {} ({}, allows {})", b.budget, b.spec, b.allows))
                .collect();
            let _ = writeln!(
                out,
                "  {:width$}  {pods:>9}  {:15}  {}",
                m.workload.to_string(),
                m.method.to_string(),
                if budgets.is_empty() {
                    "-".to_owned()
                } else {
                    budgets.join(", ")
                },
            );
        }
    }
    if !plan.terminating_pods.is_empty() {
        let _ = writeln!(
            out,
            "  (and {} pod(s) already terminating: {})",
            plan.terminating_pods.len(),
            plan.terminating_pods.join(", ")
        );
    }
    if !plan.tunnel_nodes.is_empty() {
        let _ = writeln!(
            out,
            "  tunnel addresses of node(s) {} are in {}: calico-node moves them once it is disabled",
            plan.tunnel_nodes.join(", "),
            plan.from.name
        );
    }
}

fn notes(out: &mut String, plan: &Plan) {
    if !plan.disruptions.is_empty() {
        let _ = writeln!(out, "\nMoves that cannot be disruption-free");
        for d in &plan.disruptions {
            let _ = writeln!(out, "  {}: {}", d.workload, d.message);
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings");
        for w in &plan.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
}

fn steps(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "\nSteps");
    let mut n = 0;
    let mut step = |text: String| {
        n += 1;
        let _ = writeln!(out, "  {n}. {text}");
    };
    step(match plan.target_action {
        TargetAction::Create => format!("create pool {} and wait until it is usable", plan.to.name),
        TargetAction::Enable => format!("enable pool {} and wait until it is usable", plan.to.name),
        TargetAction::Use => format!("check that pool {} is usable", plan.to.name),
    });
    step(format!(
        "disable pool {} (existing pods keep their addresses)",
        plan.from.name
    ));
    let moving = plan
        .moves
        .iter()
        .filter(|m| m.method != MoveMethod::Skip)
        .count();
    step(format!(
        "move {moving} workload(s), {} pod(s), each by its own strategy",
        plan.pods_to_move()
    ));
    step(format!(
        "verify: every replacement pod has an address in {}, none left in {}",
        plan.to.name, plan.from.name
    ));
    match plan.keep_old_pool {
        None => step(format!(
            "release {}'s block affinities and empty blocks, then delete the pool",
            plan.from.name
        )),
        Some(KeepReason::Asked) => step(format!(
            "keep pool {} (disabled), as --keep-old-pool asks",
            plan.from.name
        )),
        Some(KeepReason::PartialScope) => step(format!(
            "keep pool {} (disabled): -n/--selector moves only part of its pods",
            plan.from.name
        )),
    }
}

fn blockers(out: &mut String, plan: &Plan) {
    if plan.blockers.is_empty() {
        let _ = writeln!(out, "\nNo blockers.");
    } else {
        let _ = writeln!(
            out,
            "\nBlocked: {} problem(s) must be fixed before the migration can start",
            plan.blockers.len()
        );
        for b in &plan.blockers {
            let _ = writeln!(out, "  {}: {}", b.subject, b.problem);
            let _ = writeln!(out, "      fix: {}", b.fix);
        }
    }
}

/// A resize's plan: its four steps, what blocks it, and its first migration's plan.
pub fn resize(prepared: &ResizePrepared) -> String {
    let r = &prepared.record;
    let mut out = String::new();
    let old_size = r
        .original
        .spec
        .defaulted()
        .block_size
        .map_or_else(|| "?".to_owned(), |b| b.to_string());
    let cidr = r.original.spec.cidr.clone().unwrap_or_default();
    let _ = writeln!(out, "Resize plan");
    let _ = writeln!(
        out,
        "  pool  {} ({cidr}), blockSize {old_size} → {}",
        r.name, r.block_size
    );
    let _ = writeln!(
        out,
        "  via   temporary pool {} ({}, {})",
        r.temp, r.temp_cidr, prepared.temp_origin
    );
    let _ = writeln!(out, "\nSteps");
    let _ = writeln!(
        out,
        "  1. to-temp: migrate {} → {} (create it with {}'s settings, disable {}, move its pods, \
         verify, release its blocks, delete it)",
        r.name, r.temp, r.name, r.name
    );
    let _ = writeln!(
        out,
        "  2. clean-old-cidr: remove every block and affinity left in {cidr} and check that \
         none remain"
    );
    let _ = writeln!(
        out,
        "  3. recreate: create {} again with its old spec, labels and annotations and blockSize {}",
        r.name, r.block_size
    );
    let _ = writeln!(
        out,
        "  4. back: migrate {} → {} (the temporary pool is deleted at the end)",
        r.temp, r.name
    );
    if !prepared.blockers.is_empty() {
        let _ = writeln!(out, "\nBlocked: the re-created pool would be refused");
        for b in &prepared.blockers {
            let _ = writeln!(out, "  {}: {}", b.subject, b.problem);
            let _ = writeln!(out, "      fix: {}", b.fix);
        }
    }
    if let Some(plan) = &prepared.plan {
        let _ = writeln!(out, "\nFirst migration ({} → {}):", r.name, r.temp);
        out.push_str(&migration(plan));
    }
    out
}

#[cfg(test)]
mod tests {
    use ippool_ipam::plan::{KeepReason, WorkloadMove, WorkloadRef};
    use ippool_ipam::snapshot::OwnerKind;

    use super::*;

    fn side(name: &str, cidr: &str) -> PoolSide {
        PoolSide {
            name: name.to_owned(),
            cidr: cidr.parse().unwrap(),
            block_size: Some(26),
            enabled: true,
        }
    }

    fn coredns_plan() -> Plan {
        Plan {
            from: side("default-ipv4-ippool", "192.168.0.0/16"),
            to: side("new-pool", "10.0.0.0/16"),
            target_action: TargetAction::Create,
            new_pool: None,
            findings: Vec::new(),
            moves: vec![WorkloadMove {
                workload: WorkloadRef {
                    namespace: "kube-system".to_owned(),
                    kind: OwnerKind::Deployment,
                    name: "coredns".to_owned(),
                },
                method: MoveMethod::RolloutRestart,
                pods: Vec::new(),
                desired: Some(2),
                budgets: Vec::new(),
                lane: 0,
            }],
            disruptions: Vec::new(),
            blockers: Vec::new(),
            warnings: Vec::new(),
            keep_old_pool: None,
            tunnel_nodes: vec!["sim-0".to_owned()],
            terminating_pods: Vec::new(),
        }
    }

    #[test]
    fn a_whole_migration_names_moves_tunnels_and_the_final_delete() {
        let text = migration(&coredns_plan());
        for wanted in [
            "from  default-ipv4-ippool (192.168.0.0/16, blockSize 26)",
            "to    new-pool (10.0.0.0/16, blockSize 26) — to be created",
            "Deployment kube-system/coredns",
            "rollout restart",
            "tunnel addresses of node(s) sim-0 are in default-ipv4-ippool",
            "No blockers.",
            "delete the pool",
        ] {
            assert!(text.contains(wanted), "{wanted:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_partial_migration_keeps_the_old_pool_and_says_why() {
        let mut plan = coredns_plan();
        plan.keep_old_pool = Some(KeepReason::PartialScope);
        let text = migration(&plan);
        assert!(text.contains("-n/--selector"), "{text}");
        assert!(!text.contains("delete the pool"), "{text}");
    }
}
