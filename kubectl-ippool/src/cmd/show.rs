//! `kubectl ippool show NAME`: one pool in depth — its settings, blocks with node affinity and
//! use, pods by namespace and owner, tunnel addresses, leftovers in its CIDR, and what the rules
//! say about it (outside the cluster CIDR, operator-managed, …).

use clap::Args;
use ippool_ipam::gc::gc_plan;
use ippool_ipam::snapshot::Parts;
use ippool_ipam::usage::{
    BlockUse, OwnerGroup, PoolUsage, TunnelAddress, block_uses, group_by_owner, pods_in_pool,
    pool_usage, tunnel_addresses,
};
use ippool_rules::cidr;
use ippool_rules::context::Operation;
use ippool_rules::model::IpPool;
use ippool_rules::rules::check_pool;
use serde::Serialize;

use super::Outcome;
use super::list::addresses;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::{CidrArgs, Live, render_findings, rules_context};
use crate::output::{OutputArgs, Table, or_none, yes_no};

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The pool.
    pub name: String,

    #[command(flatten)]
    pub cidrs: CidrArgs,

    #[command(flatten)]
    pub output: OutputArgs,
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FindingOut {
    code: &'static str,
    severity: String,
    path: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ShowReport<'a> {
    pool: &'a IpPool,
    usage: PoolUsage,
    blocks: Vec<BlockUse<'a>>,
    pods_by_owner: Vec<OwnerGroup<'a>>,
    tunnel_addresses: Vec<TunnelAddress<'a>>,
    /// Leftover blocks and affinities in the pool's CIDR (`kubectl ippool gc` removes them).
    leftovers: Vec<String>,
    findings: Vec<FindingOut>,
}

pub fn run(args: &ShowArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let (snapshot, found) =
            tokio::join!(live.snapshot(PARTS), live.discover_cidrs(&args.cidrs));
        let snapshot = snapshot?;
        let Some(pool) = snapshot.pool(&args.name) else {
            anyhow::bail!(
                "IP pool {:?} does not exist; `kubectl ippool list` shows the pools there are",
                args.name
            );
        };
        let ctx = rules_context(&snapshot, PARTS, &found);
        let findings = check_pool(pool, &ctx, &Operation::Update { old: pool.clone() });
        let usage = pool_usage(&snapshot)
            .into_iter()
            .find(|u| u.pool == args.name)
            .expect("usage covers every pool");
        let blocks: Vec<BlockUse> = block_uses(&snapshot)
            .into_iter()
            .filter(|b| b.pool == Some(args.name.as_str()))
            .collect();
        let pods = pods_in_pool(&snapshot, pool, None);
        let leftovers = match pool.spec.cidr_net() {
            Some(net) => {
                let plan = gc_plan(&snapshot, Some(&cidr::canonical(&net)));
                plan.candidates
                    .iter()
                    .map(|c| format!("{} ({})", c.cidr(), c.reason().describe()))
                    .chain(
                        plan.kept
                            .iter()
                            .map(|k| format!("{} {}: {}", k.object, k.cidr, k.why)),
                    )
                    .collect()
            }
            None => Vec::new(),
        };
        let report = ShowReport {
            pool,
            usage,
            blocks,
            pods_by_owner: group_by_owner(&pods),
            tunnel_addresses: tunnel_addresses(&snapshot, pool),
            leftovers,
            findings: findings
                .iter()
                .map(|f| FindingOut {
                    code: f.code,
                    severity: f.severity.to_string(),
                    path: f.path.to_string(),
                    message: f.message.clone(),
                    hint: f.hint.clone(),
                })
                .collect(),
        };
        if let Some(text) = args.output.structured(&report)? {
            print!("{text}");
            return Ok(Outcome::Clean);
        }
        print!(
            "{}",
            render_text(&report, &render_findings(&args.name, &findings))
        );
        Ok(Outcome::Clean)
    })
}

fn render_text(r: &ShowReport<'_>, findings: &str) -> String {
    let spec = r.pool.spec.defaulted();
    let mut out = String::new();
    let fields = [
        ("Name", r.pool.name().to_owned()),
        ("API", r.pool.api_version.clone()),
        ("CIDR", r.pool.spec.cidr.clone().unwrap_or_default()),
        ("Block size", or_none(spec.block_size)),
        ("IPIP mode", spec.ipip_mode.to_string()),
        ("VXLAN mode", spec.vxlan_mode.to_string()),
        ("NAT outgoing", yes_no(spec.nat_outgoing).to_owned()),
        ("Disabled", yes_no(spec.disabled).to_owned()),
        (
            "Disable BGP export",
            yes_no(spec.disable_bgp_export).to_owned(),
        ),
        ("Node selector", spec.node_selector.clone()),
        ("Namespace selector", spec.namespace_selector.clone()),
        (
            "Allowed uses",
            spec.allowed_uses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("Assignment mode", spec.assignment_mode.to_string()),
        (
            "Usage",
            format!(
                "{} block(s), {} addresses in use, {} pod(s), {} node(s) with blocks",
                r.usage.blocks,
                addresses(&r.usage),
                r.usage.pods,
                r.usage.nodes
            ),
        ),
    ];
    for (label, value) in fields {
        out.push_str(&format!("{:<20}{value}\n", format!("{label}:")));
    }
    out.push_str("\nBlocks:\n");
    if r.blocks.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut t = Table::new(["CIDR", "NODE", "IN-USE", "SIZE", "NOTE"]);
        for b in &r.blocks {
            t.push([
                b.cidr.to_string(),
                or_none(b.node),
                b.in_use.to_string(),
                b.size.to_string(),
                if b.size_mismatch() {
                    format!(
                        "prefix differs from blockSize {}",
                        or_none(b.pool_block_size)
                    )
                } else {
                    String::new()
                },
            ]);
        }
        out.push_str(&indent(&t.render(false)));
    }
    out.push_str("\nPods by namespace and owner:\n");
    if r.pods_by_owner.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut t = Table::new(["NAMESPACE", "OWNER", "PODS", "NODES"]);
        for g in &r.pods_by_owner {
            t.push([
                g.namespace.to_owned(),
                g.owner.to_string(),
                g.pods.to_string(),
                g.nodes.iter().copied().collect::<Vec<_>>().join(","),
            ]);
        }
        out.push_str(&indent(&t.render(false)));
    }
    out.push_str("\nTunnel addresses:\n");
    if r.tunnel_addresses.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut t = Table::new(["NODE", "ADDRESS", "TYPE"]);
        for a in &r.tunnel_addresses {
            t.push([a.node.to_owned(), a.address.to_string(), a.kind.to_owned()]);
        }
        out.push_str(&indent(&t.render(false)));
    }
    if !r.leftovers.is_empty() {
        out.push_str(
            "\nLeftovers in this CIDR (`kubectl ippool gc --cidr ...` removes the empty ones):\n",
        );
        for l in &r.leftovers {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out.push_str("\nRules:\n");
    if findings.is_empty() {
        out.push_str("  no findings\n");
    } else {
        out.push_str(&indent(findings));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
