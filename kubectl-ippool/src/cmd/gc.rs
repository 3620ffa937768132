//! `kubectl ippool gc [--cidr CIDR] [--yes]`: remove the IPAM leftovers behind Calico issues
//! #10778, #3589 and #4471 in Calico's release order. Without --yes it only says what it would do.

use clap::Args;
use ipnet::IpNet;
use ippool_cluster::release::{ReleaseStep, Released, release_leftovers};
use ippool_ipam::gc::{GcCandidate, GcPlan, gc_plan};
use ippool_ipam::snapshot::Parts;
use serde::Serialize;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::{Live, parse_cidr};
use crate::output::{OutputArgs, Table, or_none};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only leftovers overlapping this CIDR.
    #[arg(long, value_parser = parse_cidr)]
    pub cidr: Option<IpNet>,

    /// Remove them (without it, gc only lists what it would remove).
    #[arg(long)]
    pub yes: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

const PARTS: Parts = Parts {
    pools: true,
    blocks: true,
    affinities: true,
    handles: false,
    pods: false,
    nodes: true,
    namespaces: false,
};

/// How one candidate ended, for the summary and `-o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Done {
    pub object: String,
    pub cidr: String,
    #[serde(flatten)]
    pub released: Released,
}

fn object(candidate: &GcCandidate) -> String {
    match candidate {
        GcCandidate::Block { block, .. } => format!("ipamblock/{}", block.name),
        GcCandidate::Affinity { affinity, .. } => format!("blockaffinity/{}", affinity.name),
    }
}

pub fn render_plan(plan: &GcPlan, no_headers: bool) -> String {
    let mut out = String::new();
    if plan.candidates.is_empty() {
        out.push_str("Nothing to remove.\n");
    } else {
        let mut table = Table::new(["OBJECT", "CIDR", "NODE", "REASON"]);
        for c in &plan.candidates {
            let node = match c {
                GcCandidate::Block { affinities, .. } => {
                    let nodes: Vec<&str> = affinities.iter().map(|a| a.node.as_str()).collect();
                    (!nodes.is_empty()).then(|| nodes.join(","))
                }
                GcCandidate::Affinity { affinity, .. } => Some(affinity.node.clone()),
            };
            table.push([
                object(c),
                c.cidr().to_owned(),
                or_none(node),
                c.reason().describe(),
            ]);
        }
        out.push_str(&table.render(no_headers));
    }
    for kept in &plan.kept {
        out.push_str(&format!(
            "kept {} ({}): {}\n",
            kept.object, kept.cidr, kept.why
        ));
    }
    out
}

pub fn run(args: &GcArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let snapshot = live.snapshot(PARTS).await?;
        let plan = gc_plan(&snapshot, args.cidr.as_ref());
        if !args.yes {
            match args.output.structured(&plan)? {
                Some(text) => print!("{text}"),
                None => {
                    print!("{}", render_plan(&plan, args.output.no_headers));
                    if !plan.candidates.is_empty() {
                        println!(
                            "Dry run: {} object(s) would be removed; run again with --yes to remove them.",
                            plan.candidates.len()
                        );
                    }
                }
            }
            return Ok(Outcome::Clean);
        }
        let structured = args.output.is_structured();
        let mut report = async |step: ReleaseStep| {
            if !structured {
                println!("  {step}");
            }
        };
        let outcomes = release_leftovers(&live.calico, &plan, &mut report).await?;
        let mut done = Vec::new();
        for (candidate, released) in plan.candidates.iter().zip(outcomes) {
            if !structured {
                match released {
                    Released::LostRace { allocations } => println!(
                        "kept {}: it gained {allocations} allocation(s) while being removed",
                        object(candidate)
                    ),
                    Released::KeptInUse { allocations } => println!(
                        "kept {}: {allocations} address(es) allocated since it was listed",
                        object(candidate)
                    ),
                    Released::Removed | Released::AlreadyGone => {}
                }
            }
            done.push(Done {
                object: object(candidate),
                cidr: candidate.cidr().to_owned(),
                released,
            });
        }
        let removed = done
            .iter()
            .filter(|d| matches!(d.released, Released::Removed | Released::AlreadyGone))
            .count();
        match args.output.structured(&done)? {
            Some(text) => print!("{text}"),
            None => println!(
                "Removed {removed} of {} leftover(s); {} kept.",
                done.len(),
                done.len() - removed + plan.kept.len()
            ),
        }
        Ok(Outcome::Clean)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_ipam::gc::{GcReason, Kept};
    use ippool_ipam::ipam_ref::{AffinityRef, BlockRef};

    #[test]
    fn plan_lists_removals_and_what_is_kept() {
        let plan = GcPlan {
            candidates: vec![GcCandidate::Block {
                block: BlockRef {
                    name: "10-9-0-0-26".to_owned(),
                    cidr: "10.9.0.0/26".to_owned(),
                    resource_version: Some("7".to_owned()),
                },
                affinities: vec![AffinityRef {
                    name: "sim-3-10-9-0-0-26".to_owned(),
                    node: "sim-3".to_owned(),
                    cidr: "10.9.0.0/26".to_owned(),
                    state: "confirmed".to_owned(),
                    resource_version: Some("8".to_owned()),
                }],
                reason: GcReason::BlockOutsidePools,
            }],
            kept: vec![Kept {
                object: "block 10-9-0-64-26".to_owned(),
                cidr: "10.9.0.64/26".to_owned(),
                why: "block in no pool but 1 address(es) are still allocated".to_owned(),
            }],
        };
        assert_eq!(
            render_plan(&plan, false),
            "OBJECT                  CIDR          NODE    REASON\n\
             ipamblock/10-9-0-0-26   10.9.0.0/26   sim-3   empty block in no pool\n\
             kept block 10-9-0-64-26 (10.9.0.64/26): block in no pool but 1 address(es) are still allocated\n"
        );
        assert_eq!(
            render_plan(&GcPlan::default(), false),
            "Nothing to remove.\n"
        );
    }
}
