//! `kubectl ippool resize NAME --block-size N [--temp-cidr CIDR]`: Calico's nine-step blockSize
//! change as one resumable command built on two migrations (NAME → temporary pool, clean NAME's
//! CIDR, re-create NAME with the new blockSize, temporary pool → NAME). Takes every migrate flag
//! but `--from`/`--to`/`--cidr`; the work is done by `ippool_cluster::migration::resize`.

use clap::Args;
use ipnet::IpNet;
use ippool_cluster::migration::events::RunOutcome;
use ippool_cluster::migration::job::Needs;
use ippool_cluster::migration::resize::{self, ResizeIntent};

use super::Outcome;
use super::auto::{self, OrAuto, parse_block_size};
use super::in_cluster;
use super::migrate::{Run, RunArgs, confirm};
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::parse_cidr;

#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// The pool to resize.
    #[arg(required_unless_present = "abort")]
    pub name: Option<String>,

    /// The new blockSize (IPv4 20–32, IPv6 116–128); `auto`: the size `advise` recommends for the
    /// cluster's nodes (their count, largest maxPods, Windows) and IPAMConfig's maxBlocksPerHost.
    #[arg(
        long = "block-size",
        value_name = "N|auto",
        value_parser = parse_block_size,
        required_unless_present = "abort"
    )]
    pub block_size: Option<OrAuto<u8>>,

    /// The temporary pool's CIDR; default: a free range inside the cluster CIDR big enough for
    /// the pool's pods.
    #[arg(long = "temp-cidr", value_name = "CIDR", value_parser = parse_cidr)]
    pub temp_cidr: Option<IpNet>,

    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(args: &ResizeArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let run = Run::connect(kube, &args.run).await?;
        let exec = &run.exec;
        if args.run.abort {
            return run.abort().await;
        }
        let (Some(name), Some(block_size)) = (&args.name, args.block_size) else {
            anyhow::bail!("NAME and --block-size are required (or --abort)");
        };
        let block_size = match block_size {
            OrAuto::Given(size) => size,
            OrAuto::Auto => {
                let choice = auto::block_size(&run.live, name, &args.run.state_namespace).await?;
                run.say(&format!(
                    "--block-size auto: {} ({})\n",
                    choice.value, choice.why
                ));
                choice.value
            }
        };
        if args.run.namespace.is_some() || args.run.selector.is_some() || args.run.keep_old_pool {
            anyhow::bail!(
                "-n, --selector and --keep-old-pool do not apply to resize: the pool is deleted \
                 and re-created, so every pod in it must move"
            );
        }
        let found = run.live.discover_cidrs(&args.run.cidrs).await;
        let cidrs = found.cluster_cidrs();
        let intent = ResizeIntent {
            name: name.clone(),
            block_size,
            temp_cidr: args.temp_cidr,
            evict_jobs: args.run.evict_jobs,
            delete_bare_pods: args.run.delete_bare_pods,
        };
        let prepared = match resize::prepare(exec, &intent, cidrs.clone(), args.run.dry_run).await {
            Ok(p) => p,
            Err(e) => {
                run.failed(&e);
                return Err(e.into());
            }
        };
        run.say(&crate::plan_text::resize(&prepared));
        if prepared.blocker_count() > 0 {
            run.finish(RunOutcome::Blocked);
            return Ok(Outcome::Findings);
        }
        if args.run.dry_run {
            run.finish(RunOutcome::DryRun);
            return Ok(Outcome::Clean);
        }
        if !args.run.yes {
            let question = format!(
                "\nResize pool {name} to blockSize {block_size}{}?",
                if prepared.resumed {
                    " (continuing the interrupted run)"
                } else {
                    ""
                }
            );
            if !confirm(&question)? {
                run.finish(RunOutcome::Declined);
                return Ok(Outcome::Findings);
            }
        }
        if args.run.in_cluster.in_cluster {
            let mut command = vec![
                "resize".to_owned(),
                name.clone(),
                format!("--block-size={block_size}"),
            ];
            command.extend(args.temp_cidr.map(|c| format!("--temp-cidr={c}")));
            command.extend(in_cluster::shared_args(&args.run, &found));
            let needs = Needs::new(run.live.apis, prepared.plan.as_ref(), true, true);
            in_cluster::start(&run, &args.run, command, needs).await?;
            return Ok(Outcome::Clean);
        }
        match resize::execute(exec, &intent, prepared, cidrs).await {
            Ok(()) => {
                run.finish(RunOutcome::Completed);
                Ok(Outcome::Clean)
            }
            Err(e) => {
                run.failed(&e);
                Err(e.into())
            }
        }
    })
}
