//! `kubectl ippool enable NAME`: let Calico allocate from the pool again. Shares the conditional
//! update with `disable` ([`set_disabled`]).

use clap::Args;
use ippool_cluster::pool_write::{Decision, PoolWriteError, Updated, update_pool};
use ippool_ipam::snapshot::Parts;
use ippool_rules::context::Operation;
use ippool_rules::model::IpPool;
use ippool_rules::rules::check_pool;
use serde_json::json;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::{CidrArgs, DryRun, DryRunArg, Live, Refused, judge, pool_ref, rules_context};

#[derive(Debug, Args)]
pub struct ToggleArgs {
    /// The pool.
    pub name: String,

    #[command(flatten)]
    pub dry_run: DryRunArg,

    #[command(flatten)]
    pub cidrs: CidrArgs,
}

pub fn run(args: &ToggleArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    set_disabled(args, kube, false)
}

/// Sets `spec.disabled`, judged by the rules (e.g. disabling the last enabled pool of a family)
/// on the version actually replaced; a conflicting writer makes it read, judge and write again.
pub fn set_disabled(args: &ToggleArgs, kube: &KubeOpts, disabled: bool) -> anyhow::Result<Outcome> {
    let verb = if disabled { "disabled" } else { "enabled" };
    block_on(async {
        let live = Live::connect(kube).await?;
        let (snapshot, found) = tokio::join!(
            live.snapshot(Parts::RULES),
            live.discover_cidrs(&args.cidrs)
        );
        let snapshot = snapshot?;
        let mut ctx = rules_context(&snapshot, Parts::RULES, &found);
        let mut decide = async |current: &IpPool| -> Result<Decision, Refused> {
            if current.spec.disabled.unwrap_or(false) == disabled {
                return Ok(Decision::Unchanged);
            }
            let mut wanted = current.clone();
            wanted.spec.disabled = Some(disabled);
            // Judge against the cluster as it is now, this pool included at the version read.
            if let Some(pools) = ctx.pools.as_mut() {
                match pools.iter_mut().find(|p| p.name() == current.name()) {
                    Some(p) => *p = current.clone(),
                    None => pools.push(current.clone()),
                }
            }
            let findings = check_pool(
                &wanted,
                &ctx,
                &Operation::Update {
                    old: current.clone(),
                },
            );
            judge(&args.name, &findings)?;
            Ok(Decision::Patch(json!({"spec": {"disabled": disabled}})))
        };
        let reference = pool_ref(&live.apis, &args.name);
        if args.dry_run.dry_run == DryRun::Client {
            let Some(current) = snapshot.pool(&args.name) else {
                anyhow::bail!(
                    "IP pool {:?} does not exist; `kubectl ippool list` shows the pools there are",
                    args.name
                );
            };
            return Ok(match decide(current).await {
                Ok(Decision::Unchanged) => {
                    println!("{reference} already {verb}");
                    Outcome::Clean
                }
                Ok(Decision::Patch(_)) => {
                    println!("{reference} {verb} (dry run: validated, nothing written)");
                    Outcome::Clean
                }
                Err(refused) => {
                    eprintln!("error: {refused}");
                    Outcome::Findings
                }
            });
        }
        let server_dry_run = args.dry_run.dry_run == DryRun::Server;
        match update_pool(&live.calico, &args.name, server_dry_run, &mut decide).await {
            Ok(Updated::Unchanged { .. }) => println!("{reference} already {verb}"),
            Ok(Updated::Written { attempts, .. }) => {
                if attempts > 1 {
                    tracing::info!(
                        "{reference} changed while being updated; re-read and re-validated {} time(s)",
                        attempts - 1
                    );
                }
                println!("{reference} {verb}{}", args.dry_run.dry_run.suffix());
            }
            Err(PoolWriteError::Refused(refused)) => {
                eprintln!("error: {refused}");
                return Ok(Outcome::Findings);
            }
            Err(other) => return Err(other.into()),
        }
        Ok(Outcome::Clean)
    })
}
