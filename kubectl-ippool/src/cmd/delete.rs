//! `kubectl ippool delete NAME [--release-leaked]`: the ordering guard. Refuses while the pool is
//! enabled or any live pod (or node tunnel) holds an address in it, saying how many and where;
//! lists leaked allocations and releases them only when asked; then releases the pool's block
//! affinities in Calico's order and deletes the pool.

use clap::Args;
use ippool_cluster::api::CalicoKind;
use ippool_cluster::pool_delete::{DeleteError, delete_pool};
use ippool_cluster::release::ReleaseStep;
use ippool_ipam::pool_delete::{DeleteAssessment, assess};
use ippool_ipam::snapshot::Parts;
use ippool_rules::context::Operation;
use ippool_rules::rules::check_pool;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::{CidrArgs, DryRun, DryRunArg, Live, pool_ref, print_findings, rules_context};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The pool.
    pub name: String,

    /// Release allocations in the pool that belong to no live pod (leaked) before deleting it.
    #[arg(long = "release-leaked")]
    pub release_leaked: bool,

    /// `client` or `server`: check everything and print what would be done; write nothing
    /// (`server` also sends the pool's delete as a dry run, for the API server and its webhooks to judge).
    #[command(flatten)]
    pub dry_run: DryRunArg,

    #[command(flatten)]
    pub cidrs: CidrArgs,
}

const PARTS: Parts = Parts {
    pools: true,
    blocks: true,
    affinities: true,
    handles: false,
    pods: true,
    nodes: true,
    namespaces: false,
};

/// The steps a delete would take, for --dry-run.
pub fn describe_plan(a: &DeleteAssessment, release_leaked: bool) -> String {
    let mut out = String::new();
    if release_leaked && !a.leaked.is_empty() {
        out.push_str(&format!(
            "release {} leaked allocation(s):\n",
            a.leaked.len()
        ));
        for l in &a.leaked {
            out.push_str(&format!(
                "  {} in block {}{}\n",
                l.address,
                l.block,
                l.pod
                    .as_ref()
                    .map(|p| format!(" (was {p})"))
                    .unwrap_or_default()
            ));
        }
    }
    for b in &a.blocks {
        let affinities: Vec<String> = b
            .affinities
            .iter()
            .map(|x| format!("{} ({})", x.name, x.state))
            .collect();
        match (&b.block, affinities.is_empty()) {
            (Some(block), true) => out.push_str(&format!(
                "delete block {} if empty\n",
                block.name
            )),
            (Some(block), false) => out.push_str(&format!(
                "release block {}: affinity {} → pendingDeletion, block deleted if empty, affinity deleted\n",
                block.name,
                affinities.join(", ")
            )),
            (None, _) => out.push_str(&format!(
                "delete affinity {} (its block {} no longer exists)\n",
                affinities.join(", "),
                b.cidr
            )),
        }
    }
    out.push_str(&format!("delete ippool {}\n", a.pool));
    out
}

pub fn run(args: &DeleteArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let (snapshot, found) =
            tokio::join!(live.snapshot(PARTS), live.discover_cidrs(&args.cidrs));
        let snapshot = snapshot?;
        let Some(assessment) = assess(&snapshot, &args.name) else {
            anyhow::bail!(
                "IP pool {:?} does not exist; `kubectl ippool list` shows the pools there are",
                args.name
            );
        };
        let pool = snapshot.pool(&args.name).expect("assessed pools exist");
        let mut ctx = rules_context(&snapshot, PARTS, &found);
        if args.release_leaked {
            // Judge the pool as it will be once the leaked allocations are released.
            if let Some(blocks) = ctx.blocks.as_mut() {
                for leak in &assessment.leaked {
                    if let Some(slot) = blocks
                        .iter_mut()
                        .find(|b| b.metadata.name.as_deref() == Some(leak.block.as_str()))
                        .and_then(|b| b.spec.allocations.get_mut(leak.ordinal))
                    {
                        *slot = None;
                    }
                }
            }
        }
        let tally = print_findings(&args.name, &check_pool(pool, &ctx, &Operation::Delete));
        let refusals = assessment.refusals(args.release_leaked);
        for refusal in &refusals {
            eprintln!("error: refused: {refusal}");
        }
        if tally.errors > 0 || !refusals.is_empty() {
            eprintln!("Nothing was changed.");
            return Ok(Outcome::Findings);
        }
        let reference = pool_ref(&live.apis, &args.name);
        if args.dry_run.dry_run != DryRun::None {
            print!("{}", describe_plan(&assessment, args.release_leaked));
            if args.dry_run.dry_run == DryRun::Server {
                // The pool's own delete, judged by the API server and its admission webhooks at
                // the version assessed; the releases before it have no server-side dry run.
                let existed = live
                    .calico
                    .delete(
                        CalicoKind::Pool,
                        &args.name,
                        assessment.resource_version.as_deref(),
                        true,
                    )
                    .await?;
                if !existed {
                    return Err(DeleteError::Gone {
                        pool: args.name.clone(),
                    }
                    .into());
                }
                println!(
                    "{reference} deleted (server dry run: the API server accepted the delete)"
                );
            } else {
                println!("{reference} deleted (dry run: checked, nothing written)");
            }
            return Ok(Outcome::Clean);
        }
        let mut report = async |step: ReleaseStep| eprintln!("  {step}");
        match delete_pool(&live.calico, &assessment, args.release_leaked, &mut report).await {
            Ok(outcome) => {
                if !outcome.blocks_left.is_empty() {
                    eprintln!(
                        "note: {} block(s) still held addresses and stay without affinity until \
                         released: {}",
                        outcome.blocks_left.len(),
                        outcome.blocks_left.join(", ")
                    );
                }
                println!("{reference} deleted");
                Ok(Outcome::Clean)
            }
            Err(DeleteError::Refused(refusals)) => {
                for refusal in &refusals {
                    eprintln!("error: refused: {refusal}");
                }
                Ok(Outcome::Findings)
            }
            Err(e) => Err(e.into()),
        }
    })
}
