//! `kubectl ippool blocks [--pool NAME] [--orphaned]`: like `calicoctl ipam show --show-blocks`,
//! plus what calicoctl does not show — blocks no pool covers, blocks whose size differs from their
//! pool's blockSize, and stale affinities.

use anyhow::bail;
use clap::Args;
use ipnet::IpNet;
use ippool_ipam::gc::{StaleAffinity, stale_affinities};
use ippool_ipam::snapshot::{Parts, Snapshot};
use ippool_ipam::usage::{BlockUse, PoolUsage, block_uses, pool_usage};
use ippool_rules::cidr;
use serde::Serialize;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::Live;
use crate::output::{OutputArgs, Table, or_none};

#[derive(Debug, Args)]
pub struct BlocksArgs {
    /// Only this pool's blocks (and affinities inside its CIDR).
    #[arg(long)]
    pub pool: Option<String>,

    /// Only leftovers: blocks no pool covers, blocks of the wrong size, stale affinities.
    #[arg(long)]
    pub orphaned: bool,

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

/// What `-o json|yaml` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockReport<'a> {
    pub pools: Vec<PoolUsage>,
    pub blocks: Vec<BlockUse<'a>>,
    pub stale_affinities: Vec<StaleAffinity>,
}

pub fn run(args: &BlocksArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let snapshot = live.snapshot(PARTS).await?;
        let report = build(&snapshot, args.pool.as_deref(), args.orphaned)?;
        print!("{}", render(&report, &args.output)?);
        Ok(Outcome::Clean)
    })
}

pub fn build<'a>(
    snapshot: &'a Snapshot,
    pool: Option<&str>,
    orphaned: bool,
) -> anyhow::Result<BlockReport<'a>> {
    let scope: Option<IpNet> = match pool {
        Some(name) => {
            let Some(p) = snapshot.pool(name) else {
                bail!(
                    "IP pool {name:?} does not exist; `kubectl ippool list` shows the pools there are"
                );
            };
            p.spec.cidr_net().map(|n| cidr::canonical(&n))
        }
        None => None,
    };
    let in_scope = |net: &IpNet| scope.is_none_or(|s| cidr::overlaps(&s, net));
    let pools = if orphaned {
        Vec::new()
    } else {
        pool_usage(snapshot)
            .into_iter()
            .filter(|u| pool.is_none_or(|name| u.pool == name))
            .collect()
    };
    let blocks = block_uses(snapshot)
        .into_iter()
        .filter(|b| in_scope(&b.cidr))
        .filter(|b| pool.is_none_or(|name| b.pool == Some(name)) || b.pool.is_none())
        .filter(|b| !orphaned || b.pool.is_none() || b.size_mismatch())
        .collect();
    let stale = stale_affinities(snapshot)
        .into_iter()
        .filter(|a| {
            cidr::parse_lenient(&a.affinity.cidr).is_ok_and(|n| in_scope(&cidr::canonical(&n)))
        })
        .collect();
    Ok(BlockReport {
        pools,
        blocks,
        stale_affinities: stale,
    })
}

fn percent(part: u128, whole: u128) -> String {
    format!("{}%", (part * 100).checked_div(whole).unwrap_or(0))
}

pub fn render(report: &BlockReport<'_>, output: &OutputArgs) -> anyhow::Result<String> {
    if let Some(text) = output.structured(report)? {
        return Ok(text);
    }
    let mut table = Table::new([
        "GROUPING", "CIDR", "POOL", "NODE", "TOTAL", "IN-USE", "FREE", "USE%", "PROBLEM",
    ]);
    for pool in &report.pools {
        table.push([
            "IP Pool".to_owned(),
            pool.cidr.clone(),
            pool.pool.clone(),
            "-".to_owned(),
            pool.addresses_total.to_string(),
            pool.addresses_in_use.to_string(),
            (pool.addresses_total - pool.addresses_in_use.min(pool.addresses_total)).to_string(),
            percent(pool.addresses_in_use, pool.addresses_total),
            String::new(),
        ]);
    }
    for block in &report.blocks {
        let problem = match (block.pool, block.pool_block_size) {
            (None, _) => "no pool covers it".to_owned(),
            (Some(pool), Some(size)) if block.size_mismatch() => format!(
                "/{} block in pool {pool} whose blockSize is {size}",
                block.cidr.prefix_len()
            ),
            _ => String::new(),
        };
        let in_use = block.in_use as u128;
        table.push([
            "Block".to_owned(),
            block.cidr.to_string(),
            or_none(block.pool),
            or_none(block.node),
            block.size.to_string(),
            in_use.to_string(),
            (block.size - in_use.min(block.size)).to_string(),
            percent(in_use, block.size),
            problem,
        ]);
    }
    for stale in &report.stale_affinities {
        let mut problem = format!(
            "{} (state {})",
            stale.reason.describe(),
            stale.affinity.state
        );
        if stale.block_in_use > 0 {
            problem.push_str(&format!("; block has {} in use", stale.block_in_use));
        }
        table.push([
            "Affinity".to_owned(),
            stale.affinity.cidr.clone(),
            "-".to_owned(),
            stale.affinity.node.clone(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            problem,
        ]);
    }
    Ok(table.render(output.no_headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_ipam::gc::GcReason;
    use ippool_ipam::ipam_ref::AffinityRef;

    #[test]
    fn rows_show_pools_blocks_and_stale_affinities_with_their_problem() {
        let report = BlockReport {
            pools: vec![PoolUsage {
                pool: "default".to_owned(),
                cidr: "10.0.0.0/24".to_owned(),
                blocks: 2,
                addresses_in_use: 3,
                addresses_total: 256,
                pods: 2,
                nodes: 1,
            }],
            blocks: vec![
                BlockUse {
                    name: "10-0-0-0-26",
                    cidr: "10.0.0.0/26".parse().unwrap(),
                    node: Some("sim-1"),
                    in_use: 3,
                    size: 64,
                    pool: Some("default"),
                    pool_block_size: Some(26),
                },
                BlockUse {
                    name: "10-0-0-128-25",
                    cidr: "10.0.0.128/25".parse().unwrap(),
                    node: None,
                    in_use: 0,
                    size: 128,
                    pool: Some("default"),
                    pool_block_size: Some(26),
                },
                BlockUse {
                    name: "10-9-0-0-26",
                    cidr: "10.9.0.0/26".parse().unwrap(),
                    node: Some("sim-2"),
                    in_use: 0,
                    size: 64,
                    pool: None,
                    pool_block_size: None,
                },
            ],
            stale_affinities: vec![StaleAffinity {
                affinity: AffinityRef {
                    name: "sim-1-10-0-0-64-26".to_owned(),
                    node: "sim-1".to_owned(),
                    cidr: "10.0.0.64/26".to_owned(),
                    state: "pendingDeletion".to_owned(),
                    resource_version: None,
                },
                reason: GcReason::AffinityBlockMissing,
                block: None,
                block_in_use: 0,
            }],
        };
        assert_eq!(
            render(&report, &OutputArgs::default()).unwrap(),
            "GROUPING   CIDR            POOL      NODE     TOTAL   IN-USE   FREE   USE%   PROBLEM\n\
             IP Pool    10.0.0.0/24     default   -        256     3        253    1%\n\
             Block      10.0.0.0/26     default   sim-1    64      3        61     4%\n\
             Block      10.0.0.128/25   default   <none>   128     0        128    0%     /25 block in pool default whose blockSize is 26\n\
             Block      10.9.0.0/26     <none>    sim-2    64      0        64     0%     no pool covers it\n\
             Affinity   10.0.0.64/26    -         sim-1    -       -        -      -      affinity of a block that does not exist (state pendingDeletion)\n"
        );
    }
}
