//! `kubectl ippool capacity [POOL] [--nodes N] [--pods-per-node P]`: the room each pool has left
//! (addresses, blocks, blocks per node against `maxBlocksPerHost`, stranded and leaked addresses)
//! and, with a growth, what runs out first and the command that fixes it
//! ([`ippool_ipam::capacity`]); `-o html` writes a page with the address-space map
//! ([`ippool_map`]).

use std::io::IsTerminal as _;

use anyhow::bail;
use clap::{Args, ValueEnum};
use ippool_ipam::capacity::{Growth, PoolCapacity, capacity};
use ippool_ipam::check::leaked_allocations;
use ippool_ipam::snapshot::{Parts, Snapshot};
use ippool_map::{MapInput, address_map};
use serde::Serialize;

use super::Outcome;
use crate::capacity_page::{self, PageContext};
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::{CidrArgs, Live};
use crate::output::{Format, OutputArgs, Table};

#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// One pool (default: every pool).
    pub pool: Option<String>,

    /// Project this many more nodes.
    #[arg(long = "nodes", value_name = "N")]
    pub new_nodes: Option<u64>,

    /// Project every node running up to this many pods (with --nodes: default 110, the kubelet's
    /// maxPods).
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u64).range(1..))]
    pub pods_per_node: Option<u64>,

    /// Output format: a table, json, yaml, or html (a page with the address-space map).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = CapacityFormat::Table)]
    pub format: CapacityFormat,

    /// Leave out the header line of the table.
    #[arg(long = "no-headers")]
    pub no_headers: bool,

    /// With -o html: the cluster CIDRs the map is drawn in (default: discovered).
    #[command(flatten)]
    pub cidrs: CidrArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum CapacityFormat {
    #[default]
    Table,
    Yaml,
    Json,
    Html,
}

impl CapacityArgs {
    fn output(&self) -> OutputArgs {
        let format = match self.format {
            CapacityFormat::Table | CapacityFormat::Html => Format::Table,
            CapacityFormat::Yaml => Format::Yaml,
            CapacityFormat::Json => Format::Json,
        };
        OutputArgs {
            format,
            no_headers: self.no_headers,
        }
    }
}

const PARTS: Parts = Parts {
    pools: true,
    blocks: true,
    affinities: false,
    handles: false,
    pods: true,
    nodes: true,
    namespaces: false,
};

pub fn run(args: &CapacityArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let (snapshot, max_blocks_per_host) =
            tokio::try_join!(live.snapshot(PARTS), live.max_blocks_per_host())?;
        let growth = (args.new_nodes.is_some() || args.pods_per_node.is_some()).then(|| Growth {
            new_nodes: args.new_nodes.unwrap_or(0),
            pods_per_node: args.pods_per_node.unwrap_or(110),
        });
        let leaked = leaked_allocations(&snapshot);
        let mut pools = capacity(&snapshot, &leaked, max_blocks_per_host, growth);
        if let Some(name) = &args.pool {
            pools.retain(|p| &p.pool == name);
            if pools.is_empty() {
                bail!(
                    "IP pool {name:?} does not exist; `kubectl ippool list` shows the pools there are"
                );
            }
        }
        if args.format == CapacityFormat::Html {
            let discovery = live.discover_cidrs(&args.cidrs).await;
            let cluster = discovery
                .cluster
                .as_ref()
                .map(|(source, cidrs)| (cidrs.as_slice(), source.describe()));
            let map = map_of(&snapshot, &pools, cluster.map_or(&[], |(c, _)| c));
            let context = PageContext {
                cluster_cidrs: cluster,
                max_blocks_per_host,
                map: &map,
            };
            print!("{}", capacity_page::render(&pools, &context));
        } else {
            let bars = std::io::stdout().is_terminal();
            print!(
                "{}",
                render(&pools, max_blocks_per_host, bars, &args.output())?
            );
        }
        let short = pools
            .iter()
            .any(|p| p.projection.as_ref().is_some_and(|x| x.runs_out.is_some()));
        Ok(if short {
            Outcome::Findings
        } else {
            Outcome::Clean
        })
    })
}

/// The map of the pools shown (all, or the one asked for, with only its blocks), with the
/// blocks each projection claims.
fn map_of(snapshot: &Snapshot, shown: &[PoolCapacity], cluster_cidrs: &[ipnet::IpNet]) -> String {
    let pools: Vec<_> = snapshot
        .pools
        .iter()
        .filter(|p| shown.iter().any(|s| s.pool == p.name()))
        .cloned()
        .collect();
    let every_pool = pools.len() == snapshot.pools.len();
    let blocks: Vec<_> = snapshot
        .blocks
        .iter()
        .filter(|b| {
            every_pool
                || b.cidr().is_some_and(|net| {
                    pools
                        .iter()
                        .any(|p| p.spec.cidr_net().is_some_and(|c| c.contains(&net)))
                })
        })
        .cloned()
        .collect();
    let projected: Vec<(String, u128)> = shown
        .iter()
        .filter_map(|p| Some((p.pool.clone(), p.projection.as_ref()?.blocks_needed)))
        .collect();
    address_map(&MapInput {
        cluster_cidrs,
        pools: &pools,
        blocks: &blocks,
        projected: &projected,
        ..MapInput::default()
    })
}

fn bar(percent: u128) -> String {
    let filled = usize::try_from(percent.min(100) / 10).unwrap_or(10);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(10 - filled))
}

/// The table, with utilisation bars on a terminal, then each projection; or `-o json|yaml`.
pub fn render(
    pools: &[PoolCapacity],
    max_blocks_per_host: u64,
    bars: bool,
    output: &OutputArgs,
) -> anyhow::Result<String> {
    // A struct, not `json!`: an IPv6 pool's address count does not fit the u64 of a JSON value.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Document<'a> {
        kind: &'static str,
        max_blocks_per_host: u64,
        items: &'a [PoolCapacity],
    }
    let document = Document {
        kind: "PoolCapacityList",
        max_blocks_per_host,
        items: pools,
    };
    if let Some(text) = output.structured(&document)? {
        return Ok(text);
    }
    let mut headers = vec![
        "POOL",
        "CIDR",
        "BLOCK",
        "IN USE",
        "USE%",
        "BLOCKS",
        "CLAIMABLE",
        "STRANDED",
        "LEAKED",
        "NODES AT LIMIT",
    ];
    if bars {
        headers.insert(5, "");
    }
    let mut table = Table::new(headers);
    for p in pools {
        let percent = (p.addresses_in_use * 100)
            .checked_div(p.addresses_total)
            .unwrap_or(0);
        let at_limit = p.nodes.iter().filter(|n| n.at_block_limit).count();
        let mut row = vec![
            p.pool.clone(),
            p.cidr.clone(),
            p.block_size
                .map_or_else(|| "-".to_owned(), |b| format!("/{b}")),
            format!("{}/{}", p.addresses_in_use, p.addresses_total),
            format!("{percent}%"),
            format!("{}/{}", p.blocks_claimed, p.blocks_total),
            p.blocks_claimable.to_string(),
            p.addresses_stranded.to_string(),
            p.addresses_leaked.to_string(),
            if max_blocks_per_host == 0 {
                "-".to_owned()
            } else {
                format!("{at_limit}/{}", p.nodes.len())
            },
        ];
        if bars {
            row.insert(5, bar(percent));
        }
        table.push(row);
    }
    let mut out = table.render(output.no_headers);
    for p in pools {
        let Some(x) = &p.projection else { continue };
        out.push_str(&format!(
            "\n{}: {} more node(s), every node up to {} pods ({} block(s) each): ",
            p.pool, x.new_nodes, x.pods_per_node, x.blocks_per_full_node
        ));
        match (&x.runs_out, &x.fix) {
            (None, _) => out.push_str(&format!(
                "fits ({} more block(s) of {} claimable).\n",
                x.blocks_needed, p.blocks_claimable
            )),
            (Some(why), Some(fix)) => out.push_str(&format!("runs out: {why}.\n  fix: {fix}\n")),
            (Some(why), None) => out.push_str(&format!("runs out: {why}.\n")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_ipam::capacity::Projection;

    fn pool(projection: Option<Projection>) -> PoolCapacity {
        PoolCapacity {
            pool: "small".to_owned(),
            cidr: "10.0.0.0/24".to_owned(),
            block_size: Some(26),
            enabled: true,
            addresses_total: 256,
            addresses_in_use: 128,
            addresses_free: 128,
            blocks_total: 4,
            blocks_claimed: 3,
            blocks_claimable: 1,
            addresses_stranded: 64,
            addresses_leaked: 1,
            nodes: Vec::new(),
            projection,
        }
    }

    fn output(format: Format) -> OutputArgs {
        OutputArgs {
            format,
            no_headers: false,
        }
    }

    #[test]
    fn the_table_has_use_blocks_and_bars_on_a_terminal() {
        let text = render(&[pool(None)], 0, true, &output(Format::Table)).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("small"), "{text}");
        assert!(
            row.contains("128/256") && row.contains("50%") && row.contains("[#####.....]"),
            "{text}"
        );
        assert!(row.contains("3/4"), "{text}");
        let plain = render(&[pool(None)], 0, false, &output(Format::Table)).unwrap();
        assert!(!plain.contains('['), "{plain}");
    }

    #[test]
    fn a_projection_that_runs_out_names_the_fix() {
        let projection = Projection {
            new_nodes: 2,
            pods_per_node: 110,
            blocks_per_full_node: 2,
            blocks_needed: 5,
            runs_out: Some("the growth claims 5 more blocks of /26; 1 are left".to_owned()),
            fix: Some(
                "kubectl ippool migrate --from small --to small-larger --cidr <…>".to_owned(),
            ),
        };
        let text = render(&[pool(Some(projection))], 0, false, &output(Format::Table)).unwrap();
        assert!(
            text.contains("small: 2 more node(s), every node up to 110 pods (2 block(s) each): runs out: the growth claims 5 more blocks"),
            "{text}"
        );
        assert!(
            text.contains("  fix: kubectl ippool migrate --from small"),
            "{text}"
        );
        let mut v6 = pool(None);
        v6.addresses_total = 1 << 80;
        let json = render(&[pool(None), v6], 4, false, &output(Format::Json)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["kind"], "PoolCapacityList");
        assert_eq!(value["maxBlocksPerHost"], 4);
        assert_eq!(value["items"][0]["blocksClaimable"], 1);
        assert!(
            json.contains("\"addressesTotal\": 1208925819614629174706176"),
            "{json}"
        );
    }
}
