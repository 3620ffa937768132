//! `kubectl ippool advise --nodes N --pods-per-node P`: a block size and pool size for a cluster
//! of that shape, with the trade-off of every block size ([`ippool_ipam::advice`]). No cluster is
//! needed.

use clap::Args;
use ippool_ipam::advice::{Advice, Shape, advise};

use super::Outcome;
use super::explain::FamilyArg;
use crate::output::{OutputArgs, Table};

#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// Nodes to size for (plan for growth: the pool must hold them all).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub nodes: u64,

    /// The most pods a node runs (the kubelet's maxPods; 110 by default).
    #[arg(long, default_value_t = 110, value_parser = clap::value_parser!(u64).range(1..))]
    pub pods_per_node: u64,

    /// The address family.
    #[arg(long, value_enum, default_value = "4")]
    pub family: FamilyArg,

    /// The nodes run Windows, which keeps four addresses of every block.
    #[arg(long)]
    pub windows: bool,

    /// IPAMConfig's maxBlocksPerHost (0: no limit, Calico's default).
    #[arg(long, default_value_t = 0)]
    pub max_blocks_per_host: u64,

    /// Nodes take no tunnel address (no IPIP, VXLAN or WireGuard).
    #[arg(long)]
    pub no_tunnel_address: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: &AdviseArgs) -> anyhow::Result<Outcome> {
    let shape = Shape {
        family: args.family.into(),
        nodes: args.nodes,
        pods_per_node: args.pods_per_node,
        node_addresses: u64::from(!args.no_tunnel_address),
        windows: args.windows,
        max_blocks_per_host: args.max_blocks_per_host,
    };
    let advice = advise(&shape);
    print!("{}", render(&advice, &shape, &args.output)?);
    Ok(if advice.recommended.is_some() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// The table of candidates and the recommendation, or `-o json|yaml`.
pub fn render(advice: &Advice, shape: &Shape, output: &OutputArgs) -> anyhow::Result<String> {
    if let Some(text) = output.structured(advice)? {
        return Ok(text);
    }
    let mut table = Table::new(vec![
        "BLOCK",
        "ADDRESSES",
        "BLOCKS/NODE",
        "ROUTES",
        "STRANDED/NODE",
        "POOL",
        "NOTE",
    ]);
    for c in &advice.candidates {
        let note = match (&c.unusable, advice.recommended == Some(c.block_size)) {
            (Some(why), _) => why.clone(),
            (None, true) => "recommended".to_owned(),
            (None, false) => String::new(),
        };
        table.push(vec![
            format!("/{}", c.block_size),
            c.usable_per_block.to_string(),
            c.blocks_per_node.to_string(),
            c.routes.to_string(),
            c.stranded_per_node.to_string(),
            c.pool_prefix
                .map_or_else(|| "-".to_owned(), |p| format!("/{p}")),
            note,
        ]);
    }
    let mut out = format!(
        "{} nodes of up to {} pods ({}{}):\n\n{}",
        shape.nodes,
        shape.pods_per_node,
        shape.family,
        if shape.windows { ", Windows" } else { "" },
        table.render(output.no_headers)
    );
    out.push('\n');
    match advice
        .recommended
        .and_then(|b| advice.candidates.iter().find(|c| c.block_size == b))
    {
        Some(c) => out.push_str(&format!(
            "Recommended: blockSize {} in a pool of at least /{}: {}.\n",
            c.block_size,
            c.pool_prefix.unwrap_or(c.block_size),
            advice.reason
        )),
        None => out.push_str(&format!("No recommendation: {}.\n", advice.reason)),
    }
    out.push_str(
        "ROUTES counts the blocks of full nodes, each a route on every node; STRANDED/NODE the \
         addresses a full node has claimed and does not use.\n",
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use ippool_rules::cidr::Family;

    #[test]
    fn the_table_marks_the_recommendation_and_the_sizes_that_cannot_work() {
        let shape = Shape {
            family: Family::V4,
            nodes: 500,
            pods_per_node: 250,
            node_addresses: 1,
            windows: false,
            max_blocks_per_host: 4,
        };
        let output = OutputArgs {
            format: Format::Table,
            no_headers: false,
        };
        let text = render(&advise(&shape), &shape, &output).unwrap();
        assert!(
            text.starts_with("500 nodes of up to 250 pods (IPv4):"),
            "{text}"
        );
        let row = |block: &str| {
            text.lines()
                .find(|l| l.starts_with(block))
                .unwrap()
                .to_owned()
        };
        assert!(row("/24 ").ends_with("recommended"), "{text}");
        assert!(
            row("/27 ").contains("more than maxBlocksPerHost 4"),
            "{text}"
        );
        assert!(
            text.contains("Recommended: blockSize 24 in a pool of at least /15"),
            "{text}"
        );
    }
}
