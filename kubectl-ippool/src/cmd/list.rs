//! `kubectl ippool list`: every pool with its settings and how much of it is in use.

use clap::Args;
use ippool_ipam::snapshot::Parts;
use ippool_ipam::usage::{PoolUsage, pool_usage};
use ippool_rules::model::IpPool;
use serde::Serialize;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::Live;
use crate::output::{OutputArgs, Table, or_none, yes_no};

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What is read: usage needs blocks and pods, nothing else.
const PARTS: Parts = Parts {
    pools: true,
    blocks: true,
    affinities: false,
    handles: false,
    pods: true,
    nodes: false,
    namespaces: false,
};

/// One pool and its usage, as `-o json|yaml` prints it.
#[derive(Debug, Serialize)]
pub struct PoolListing<'a> {
    pub pool: &'a IpPool,
    pub usage: &'a PoolUsage,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Listing<'a> {
    kind: &'static str,
    items: Vec<PoolListing<'a>>,
}

pub fn run(args: &ListArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let snapshot = live.snapshot(PARTS).await?;
        let usage = pool_usage(&snapshot);
        let mut rows: Vec<(&IpPool, &PoolUsage)> = snapshot.pools.iter().zip(&usage).collect();
        rows.sort_by(|a, b| a.0.name().cmp(b.0.name()));
        print!("{}", render(&rows, &args.output)?);
        Ok(Outcome::Clean)
    })
}

/// Addresses in use as `used/total (pct%)`.
pub fn addresses(usage: &PoolUsage) -> String {
    format!(
        "{}/{} ({}%)",
        usage.addresses_in_use,
        usage.addresses_total,
        usage.percent_in_use()
    )
}

pub fn render(rows: &[(&IpPool, &PoolUsage)], output: &OutputArgs) -> anyhow::Result<String> {
    let listing = Listing {
        kind: "IPPoolUsageList",
        items: rows
            .iter()
            .map(|(pool, usage)| PoolListing { pool, usage })
            .collect(),
    };
    if let Some(text) = output.structured(&listing)? {
        return Ok(text);
    }
    let mut headers = vec![
        "NAME",
        "CIDR",
        "BLOCKSIZE",
        "IPIPMODE",
        "VXLANMODE",
        "NAT",
        "DISABLED",
        "SELECTOR",
        "BLOCKS",
        "ADDRESSES",
        "USE%",
        "PODS",
        "NODES",
    ];
    if output.is_wide() {
        headers.extend([
            "NAMESPACESELECTOR",
            "ALLOWEDUSES",
            "ASSIGNMENTMODE",
            "DISABLEBGPEXPORT",
            "API",
        ]);
    }
    let mut table = Table::new(headers);
    for (pool, usage) in rows {
        let spec = pool.spec.defaulted();
        let mut row = vec![
            pool.name().to_owned(),
            pool.spec.cidr.clone().unwrap_or_default(),
            or_none(spec.block_size),
            spec.ipip_mode.to_string(),
            spec.vxlan_mode.to_string(),
            yes_no(spec.nat_outgoing).to_owned(),
            yes_no(spec.disabled).to_owned(),
            spec.node_selector.clone(),
            usage.blocks.to_string(),
            format!("{}/{}", usage.addresses_in_use, usage.addresses_total),
            format!("{}%", usage.percent_in_use()),
            usage.pods.to_string(),
            usage.nodes.to_string(),
        ];
        if output.is_wide() {
            row.extend([
                spec.namespace_selector.clone(),
                spec.allowed_uses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                spec.assignment_mode.to_string(),
                yes_no(spec.disable_bgp_export).to_owned(),
                pool.api_version.clone(),
            ]);
        }
        table.push(row);
    }
    Ok(table.render(output.no_headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use ippool_rules::model::{EncapMode, IpPoolSpec, ObjectMeta};

    fn pool() -> IpPool {
        IpPool {
            api_version: "crd.projectcalico.org/v1".to_owned(),
            kind: "IPPool".to_owned(),
            metadata: ObjectMeta {
                name: Some("default".to_owned()),
                ..ObjectMeta::default()
            },
            spec: IpPoolSpec {
                cidr: Some("10.0.0.0/24".to_owned()),
                vxlan_mode: Some(EncapMode::Always),
                nat_outgoing: Some(true),
                ..IpPoolSpec::default()
            },
        }
    }

    fn usage() -> PoolUsage {
        PoolUsage {
            pool: "default".to_owned(),
            cidr: "10.0.0.0/24".to_owned(),
            blocks: 2,
            addresses_in_use: 64,
            addresses_total: 256,
            pods: 60,
            nodes: 2,
        }
    }

    #[test]
    fn table_shows_defaults_and_usage() {
        let (p, u) = (pool(), usage());
        let text = render(&[(&p, &u)], &OutputArgs::default()).unwrap();
        assert_eq!(
            text,
            "NAME      CIDR          BLOCKSIZE   IPIPMODE   VXLANMODE   NAT    DISABLED   SELECTOR   BLOCKS   ADDRESSES   USE%   PODS   NODES\n\
             default   10.0.0.0/24   26          Never      Always      true   false      all()      2        64/256      25%    60     2\n"
        );
    }

    #[test]
    fn wide_adds_the_rest_of_the_spec_and_json_carries_objects() {
        let (p, u) = (pool(), usage());
        let wide = OutputArgs {
            format: Format::Wide,
            no_headers: true,
        };
        let text = render(&[(&p, &u)], &wide).unwrap();
        assert!(
            text.ends_with(
                "all()   Workload,Tunnel   Automatic   false   crd.projectcalico.org/v1\n"
            ),
            "{text}"
        );
        let json = OutputArgs {
            format: Format::Json,
            no_headers: false,
        };
        let value: serde_json::Value =
            serde_json::from_str(&render(&[(&p, &u)], &json).unwrap()).unwrap();
        assert_eq!(value["items"][0]["pool"]["spec"]["cidr"], "10.0.0.0/24");
        assert_eq!(value["items"][0]["usage"]["addressesInUse"], 64);
    }
}
