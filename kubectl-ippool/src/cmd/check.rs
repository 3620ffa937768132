//! `kubectl ippool check`: IPAM consistency, as `calicoctl ipam check` reports it, plus blocks no
//! pool covers, blocks of another size than their pool's blockSize and stale affinities. Exit
//! status 1 when problems are found.

use clap::Args;
use ippool_ipam::check::{CheckReport, ProblemKind, check};
use ippool_ipam::snapshot::Parts;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::Live;
use crate::output::{Format, OutputArgs};

#[derive(Debug, Args)]
#[command(after_help = "Exit status: 0 consistent, 1 problems found, 2 could not check.")]
pub struct CheckArgs {
    /// Output format (table = a text report).
    #[command(flatten)]
    pub output: OutputArgs,
}

const PARTS: Parts = Parts {
    pools: true,
    blocks: true,
    affinities: true,
    handles: true,
    pods: true,
    nodes: true,
    namespaces: false,
};

pub fn run(args: &CheckArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let snapshot = live.snapshot(PARTS).await?;
        let report = check(&snapshot);
        match args.output.structured(&report)? {
            Some(text) => print!("{text}"),
            None => print!(
                "{}",
                render_text(&report, args.output.format == Format::Wide)
            ),
        }
        Ok(if report.is_clean() {
            Outcome::Clean
        } else {
            Outcome::Findings
        })
    })
}

/// How many problems of one class the text report lists before summarising (all with -o wide).
const SHOWN: usize = 20;

pub fn render_text(report: &CheckReport, all: bool) -> String {
    let c = &report.checked;
    let mut out = format!(
        "Checked {} pools ({} enabled), {} blocks with {} allocations, {} affinities, {} handles, \
         {} pods with addresses, {} nodes.\n",
        c.pools,
        c.enabled_pools,
        c.blocks,
        c.allocations,
        c.affinities,
        c.handles,
        c.pods_with_addresses,
        c.nodes
    );
    for kind in ProblemKind::ALL {
        let problems: Vec<_> = report.problems.iter().filter(|p| p.kind == kind).collect();
        out.push_str(&format!("\nFound {} {}.\n", problems.len(), kind.title()));
        if problems.is_empty() {
            continue;
        }
        let limit = if all { problems.len() } else { SHOWN };
        for p in problems.iter().take(limit) {
            out.push_str(&format!("  [{}] {}\n", kind.as_str(), p.message));
        }
        if problems.len() > limit {
            out.push_str(&format!(
                "  … and {} more (-o wide lists all, -o json gives every detail)\n",
                problems.len() - limit
            ));
        }
        out.push_str(&format!("  What to do: {}\n", kind.remedy()));
    }
    out.push_str(&format!(
        "\nCheck complete; found {} problem{}.\n",
        report.problems.len(),
        if report.problems.len() == 1 { "" } else { "s" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_ipam::check::{Checked, Problem};

    #[test]
    fn text_report_lists_every_class_and_ends_like_calicoctl() {
        let report = CheckReport {
            checked: Checked::default(),
            problems: vec![Problem {
                kind: ProblemKind::HandleWithoutAddresses,
                address: None,
                block: None,
                ordinal: None,
                handle: Some("k8s-pod-network.x".to_owned()),
                pod: None,
                node: None,
                pool: None,
                affinity: None,
                message: "handle k8s-pod-network.x has no allocated address in any block"
                    .to_owned(),
            }],
        };
        let text = render_text(&report, false);
        assert!(text.contains("Found 0 addresses allocated in IPAM but used by no pod or node.\n"));
        assert!(text.contains(
            "Found 1 IPAM handles with no allocated address.\n  [handle-without-addresses] handle k8s-pod-network.x"
        ));
        assert!(text.ends_with("Check complete; found 1 problem.\n"));
    }
}
