//! `kubectl ippool apply -f FILE`: create the pools a manifest describes, or change existing ones
//! to match it. Every pool is validated against the live cluster first; an existing pool is
//! changed by a merge patch of the fields that differ, conditional on the version judged.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ippool_cluster::api::CalicoKind;
use ippool_cluster::pool_write::{Decision, PoolWriteError, Updated, pool_diff, update_pool};
use ippool_ipam::snapshot::Parts;
use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::model::{IpPool, IpPoolSpec};
use ippool_rules::rules::check_pool;
use ippool_rules::{Source, parse_pools};
use serde_json::Value;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::{CidrArgs, DryRun, DryRunArg, Live, Refused, judge, pool_ref, rules_context};
use crate::output::to_yaml;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifest with one or more IPPools (YAML or JSON; - for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
    pub file: PathBuf,

    #[command(flatten)]
    pub dry_run: DryRunArg,

    #[command(flatten)]
    pub cidrs: CidrArgs,
}

fn read(path: &PathBuf) -> anyhow::Result<(String, String)> {
    if path.as_os_str() == "-" {
        let text =
            std::io::read_to_string(std::io::stdin()).context("cannot read stdin as UTF-8 text")?;
        return Ok(("-".to_owned(), text));
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// The existing pool with the manifest's fields laid over it: fields the manifest sets win,
/// fields it leaves out stay as they are (labels and annotations merge key by key).
pub fn overlay(current: &IpPool, manifest: &IpPool) -> IpPool {
    let mut merged = current.clone();
    let mut spec = serde_json::to_value(&current.spec).unwrap_or(Value::Null);
    if let (Some(target), Ok(Value::Object(given))) =
        (spec.as_object_mut(), serde_json::to_value(&manifest.spec))
    {
        target.extend(given);
    }
    merged.spec =
        serde_json::from_value::<IpPoolSpec>(spec).unwrap_or_else(|_| manifest.spec.clone());
    merged
        .metadata
        .labels
        .extend(manifest.metadata.labels.clone());
    merged
        .metadata
        .annotations
        .extend(manifest.metadata.annotations.clone());
    merged
}

pub fn run(args: &ApplyArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    let (name, text) = read(&args.file)?;
    let pools = match parse_pools(Source {
        name: &name,
        text: &text,
    }) {
        Ok(pools) => pools,
        Err(report) => {
            eprint!("{}", report.render_text());
            eprintln!("error: refused: {name} is not a valid IPPool manifest; nothing was written");
            return Ok(Outcome::Findings);
        }
    };
    if pools.is_empty() {
        anyhow::bail!("{name} holds no IPPool; nothing to apply");
    }
    block_on(async {
        let live = Live::connect(kube).await?;
        let (snapshot, found) = tokio::join!(
            live.snapshot(Parts::RULES),
            live.discover_cidrs(&args.cidrs)
        );
        let snapshot = snapshot?;
        let mut ctx = rules_context(&snapshot, Parts::RULES, &found);
        let served = live.apis.pool_group().api_version();
        let mut outcome = Outcome::Clean;
        for mut pool in pools {
            if pool.api_version != served {
                eprintln!(
                    "note: ippool/{} is written as {served} (the manifest says {}; the cluster serves {served})",
                    pool.name(),
                    pool.api_version
                );
                pool.api_version = served.to_owned();
            }
            match apply_one(&live, &mut ctx, &pool, args.dry_run.dry_run).await? {
                Outcome::Clean => {}
                Outcome::Findings => outcome = Outcome::Findings,
            }
        }
        Ok(outcome)
    })
}

async fn apply_one(
    live: &Live,
    ctx: &mut ClusterContext,
    manifest: &IpPool,
    dry_run: DryRun,
) -> anyhow::Result<Outcome> {
    let name = manifest.name().to_owned();
    let reference = pool_ref(&live.apis, &name);
    let existing = live.calico.get::<IpPool>(CalicoKind::Pool, &name).await?;
    if existing.is_none() {
        let findings = check_pool(manifest, ctx, &Operation::Create);
        if let Err(refused) = judge(&name, &findings) {
            eprintln!("error: {refused}");
            return Ok(Outcome::Findings);
        }
        match dry_run {
            DryRun::Client => {
                print!("{}", to_yaml(manifest)?);
                println!("{reference} created (dry run: validated, nothing written)");
            }
            mode => {
                let mut object = manifest.clone();
                object.metadata.resource_version = None;
                live.calico
                    .create(CalicoKind::Pool, &name, &object, mode == DryRun::Server)
                    .await?;
                println!("{reference} created{}", mode.suffix());
            }
        }
        if let Some(pools) = ctx.pools.as_mut() {
            pools.push(manifest.clone());
        }
        return Ok(Outcome::Clean);
    }
    let mut decide = async |current: &IpPool| -> Result<Decision, Refused> {
        let wanted = overlay(current, manifest);
        let Some(patch) = pool_diff(current, &wanted) else {
            return Ok(Decision::Unchanged);
        };
        if let Some(pools) = ctx.pools.as_mut()
            && let Some(p) = pools.iter_mut().find(|p| p.name() == current.name())
        {
            *p = current.clone();
        }
        let findings = check_pool(
            &wanted,
            ctx,
            &Operation::Update {
                old: current.clone(),
            },
        );
        judge(current.name(), &findings)?;
        Ok(Decision::Patch(patch))
    };
    if dry_run == DryRun::Client {
        let current = existing.expect("checked above");
        return Ok(match decide(&current).await {
            Ok(Decision::Unchanged) => {
                println!("{reference} unchanged");
                Outcome::Clean
            }
            Ok(Decision::Patch(patch)) => {
                print!("{}", to_yaml(&patch)?);
                println!("{reference} configured (dry run: validated, nothing written)");
                Outcome::Clean
            }
            Err(refused) => {
                eprintln!("error: {refused}");
                Outcome::Findings
            }
        });
    }
    match update_pool(&live.calico, &name, dry_run == DryRun::Server, &mut decide).await {
        Ok(Updated::Unchanged { .. }) => println!("{reference} unchanged"),
        Ok(Updated::Written { .. }) => println!("{reference} configured{}", dry_run.suffix()),
        Err(PoolWriteError::Refused(refused)) => {
            eprintln!("error: {refused}");
            return Ok(Outcome::Findings);
        }
        Err(other) => return Err(other.into()),
    }
    Ok(Outcome::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_rules::model::ObjectMeta;
    use serde_json::json;

    fn pool(spec: Value, labels: &[(&str, &str)]) -> IpPool {
        IpPool {
            api_version: "crd.projectcalico.org/v1".to_owned(),
            kind: "IPPool".to_owned(),
            metadata: ObjectMeta {
                name: Some("p".to_owned()),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..ObjectMeta::default()
            },
            spec: serde_json::from_value(spec).unwrap(),
        }
    }

    #[test]
    fn manifest_fields_win_and_absent_fields_stay() {
        let current = pool(
            json!({"cidr": "10.0.0.0/16", "blockSize": 26, "natOutgoing": true}),
            &[("team", "net")],
        );
        let manifest = pool(
            json!({"cidr": "10.0.0.0/16", "ipipMode": "Always"}),
            &[("tier", "a")],
        );
        let merged = overlay(&current, &manifest);
        assert_eq!(merged.spec.block_size, Some(26));
        assert_eq!(merged.spec.nat_outgoing, Some(true));
        assert_eq!(
            merged.spec.ipip_mode.as_ref().map(|m| m.as_str()),
            Some("Always")
        );
        assert_eq!(merged.metadata.labels.len(), 2);
        assert_eq!(
            pool_diff(&current, &merged),
            Some(json!({"spec": {"ipipMode": "Always"}, "metadata": {"labels": {"tier": "a"}}}))
        );
    }
}
