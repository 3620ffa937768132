//! `kubectl ippool cluster-cidr`: the cluster's pod (and service) CIDRs, where they were found,
//! and what every source said.

use clap::Args;
use ipnet::IpNet;
use ippool_cluster::discovery::{Discovery, SourceAnswer};
use ippool_rules::context::Strength;
use serde::Serialize;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::{CidrArgs, Live};
use crate::output::{OutputArgs, Table};

#[derive(Debug, Args)]
pub struct ClusterCidrArgs {
    #[command(flatten)]
    pub cidrs: CidrArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Found {
    cidrs: Vec<IpNet>,
    source: String,
    /// `strong` (authoritative) or `weak` (a hint; findings against it are warnings).
    strength: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Attempted {
    source: String,
    outcome: &'static str,
    detail: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    cluster_cidr: Option<Found>,
    service_cidr: Option<Found>,
    sources: Vec<Attempted>,
}

pub fn run(args: &ClusterCidrArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let found = live.discover_cidrs(&args.cidrs).await;
        print!("{}", render(&found, &args.output)?);
        Ok(Outcome::Clean)
    })
}

fn strength(s: Strength) -> &'static str {
    match s {
        Strength::Strong => "strong",
        Strength::Weak => "weak",
    }
}

fn join(cidrs: &[IpNet]) -> String {
    cidrs
        .iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(found: &Discovery) -> Report {
    let found_of = |answer: &Option<(ippool_cluster::discovery::CidrSource, Vec<IpNet>)>| {
        answer.as_ref().map(|(source, cidrs)| Found {
            cidrs: cidrs.clone(),
            source: source.describe().to_owned(),
            strength: strength(source.strength()),
        })
    };
    Report {
        cluster_cidr: found_of(&found.cluster),
        service_cidr: found_of(&found.service),
        sources: found
            .attempts
            .iter()
            .map(|a| {
                let (outcome, detail) = match &a.outcome {
                    SourceAnswer::Found { cluster, service } => {
                        let mut parts = Vec::new();
                        if !cluster.is_empty() {
                            parts.push(format!("pods {}", join(cluster)));
                        }
                        if !service.is_empty() {
                            parts.push(format!("services {}", join(service)));
                        }
                        ("found", parts.join("; "))
                    }
                    SourceAnswer::Absent { detail } => ("absent", detail.clone()),
                    SourceAnswer::Forbidden { detail } => ("forbidden", detail.clone()),
                    SourceAnswer::Unparsable { detail } => ("unparsable", detail.clone()),
                    SourceAnswer::Failed { detail } => ("failed", detail.clone()),
                    SourceAnswer::Skipped { reason } => ("skipped", reason.clone()),
                };
                Attempted {
                    source: a.source.describe().to_owned(),
                    outcome,
                    detail,
                }
            })
            .collect(),
    }
}

pub fn render(found: &Discovery, output: &OutputArgs) -> anyhow::Result<String> {
    let report = report(found);
    if let Some(text) = output.structured(&report)? {
        return Ok(text);
    }
    let mut out = String::new();
    for (label, answer) in [
        ("Cluster (pod) CIDR", &report.cluster_cidr),
        ("Service CIDR", &report.service_cidr),
    ] {
        match answer {
            Some(f) => out.push_str(&format!(
                "{label}: {} (from {}; {})\n",
                join(&f.cidrs),
                f.source,
                f.strength
            )),
            None => out.push_str(&format!(
                "{label}: not found; pass it with --{}, or rules that need it report that they were \
                 not checked\n",
                if label.starts_with("Cluster") { "cluster-cidr" } else { "service-cidr" }
            )),
        }
    }
    let mut table = Table::new(["SOURCE", "OUTCOME", "DETAIL"]);
    for a in &report.sources {
        table.push([a.source.clone(), a.outcome.to_owned(), a.detail.clone()]);
    }
    out.push('\n');
    out.push_str(&table.render(output.no_headers));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_cluster::discovery::{Attempt, CidrSource};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn says_what_was_found_where_and_what_each_source_said() {
        let found = Discovery {
            cluster: Some((CidrSource::KubeadmConfig, vec![net("10.0.0.0/8")])),
            service: None,
            attempts: vec![
                Attempt {
                    source: CidrSource::KubeadmConfig,
                    outcome: SourceAnswer::Found {
                        cluster: vec![net("10.0.0.0/8")],
                        service: vec![],
                    },
                },
                Attempt {
                    source: CidrSource::NodePodCidrs,
                    outcome: SourceAnswer::Skipped {
                        reason: "a strong source answered".to_owned(),
                    },
                },
            ],
        };
        let text = render(&found, &OutputArgs::default()).unwrap();
        assert!(
            text.starts_with(
                "Cluster (pod) CIDR: 10.0.0.0/8 (from kube-system/kubeadm-config ConfigMap"
            ),
            "{text}"
        );
        assert!(
            text.contains("; strong)\nService CIDR: not found; pass it with --service-cidr"),
            "{text}"
        );
        assert!(text.contains("found     pods 10.0.0.0/8\n"), "{text}");
        assert!(
            text.contains("skipped   a strong source answered\n"),
            "{text}"
        );
    }
}
