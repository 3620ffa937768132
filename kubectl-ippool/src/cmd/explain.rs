//! `kubectl ippool explain [pod/NAME] [-n NS] [--node NODE] [--pod-pools JSON] [--family 4|6]`:
//! which pools Calico would give a new pod's address from, in Calico's order, and why every other
//! pool is out ([`ippool_ipam::selection`]). Without `pod/NAME` it asks about a new pod of the
//! namespace; without `--node`, about every node, nodes with the same answer together.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use ippool_ipam::names::{ANNOTATION_IPV4_POOLS, ANNOTATION_IPV6_POOLS};
use ippool_ipam::selection::{Explanation, Request, Source, explain};
use ippool_ipam::snapshot::{NamespaceRecord, NodeRecord, Parts, PodInfo, Snapshot};
use ippool_rules::cidr::Family;
use serde::Serialize;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::Live;
use crate::output::OutputArgs;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// An existing pod (`pod/NAME`): its node and pool annotations are read from the cluster.
    /// Without it, a new pod of the namespace is asked about.
    pub pod: Option<String>,

    /// The namespace (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// The node the pod would run on (default: every node).
    #[arg(long, conflicts_with = "pod")]
    pub node: Option<String>,

    /// The new pod's own pool annotation (`cni.projectcalico.org/ipv4pools` or `ipv6pools`, per
    /// --family), a JSON list of pool names or CIDRs, e.g. '["blue"]'.
    #[arg(long = "pod-pools", value_name = "JSON", conflicts_with = "pod")]
    pub pod_pools: Option<String>,

    /// The address family (default: each family the cluster has pools of).
    #[arg(long, value_enum)]
    pub family: Option<FamilyArg>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    #[value(name = "4")]
    V4,
    #[value(name = "6")]
    V6,
}

impl From<FamilyArg> for Family {
    fn from(f: FamilyArg) -> Family {
        match f {
            FamilyArg::V4 => Family::V4,
            FamilyArg::V6 => Family::V6,
        }
    }
}

const PARTS: Parts = Parts {
    pools: true,
    blocks: false,
    affinities: false,
    handles: false,
    pods: true,
    nodes: true,
    namespaces: true,
};

/// One answer, and the nodes it holds for.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    #[serde(serialize_with = "as_text")]
    pub family: Family,
    pub nodes: Vec<String>,
    #[serde(flatten)]
    pub explanation: Explanation,
}

fn as_text<S: serde::Serializer>(family: &Family, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(family)
}

pub fn run(args: &ExplainArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let namespace = match &args.namespace {
            Some(ns) => ns.clone(),
            None => kube.default_namespace().await,
        };
        let snapshot = live.snapshot(PARTS).await?;
        let answers = answers(&snapshot, args, &namespace)?;
        print!(
            "{}",
            render(&answers, &subject(args, &namespace), &args.output)?
        );
        Ok(if answers.iter().any(|a| a.explanation.failure.is_some()) {
            Outcome::Findings
        } else {
            Outcome::Clean
        })
    })
}

fn subject(args: &ExplainArgs, namespace: &str) -> String {
    match &args.pod {
        Some(pod) => format!("{pod} in namespace {namespace}"),
        None => format!("A new pod in namespace {namespace}"),
    }
}

/// The answers for each family asked about, nodes with the same answer together.
pub fn answers(
    snapshot: &Snapshot,
    args: &ExplainArgs,
    namespace: &str,
) -> anyhow::Result<Vec<Answer>> {
    let Some(ns) = snapshot.namespaces.iter().find(|n| n.name == namespace) else {
        bail!("namespace {namespace:?} does not exist (-n names another)");
    };
    let pod = args
        .pod
        .as_deref()
        .map(|p| find_pod(snapshot, p, namespace))
        .transpose()?;
    let nodes: Vec<&NodeRecord> = match (pod, &args.node) {
        (Some(pod), _) => {
            let name = pod.node.as_deref().with_context(|| {
                format!(
                    "pod {} is not scheduled yet: no node to judge the pools' nodeSelectors by",
                    pod.key()
                )
            })?;
            vec![find_node(snapshot, name)?]
        }
        (None, Some(name)) => vec![find_node(snapshot, name)?],
        (None, None) => snapshot.nodes.iter().collect(),
    };
    if nodes.is_empty() {
        bail!("the cluster has no nodes: name one with --node to ask about a node to come");
    }
    let mut answers = Vec::new();
    for family in families(snapshot, args.family)? {
        let pod_pools = match (pod, family) {
            (Some(pod), Family::V4) => pod.ipv4_pools.as_deref(),
            (Some(pod), Family::V6) => pod.ipv6_pools.as_deref(),
            (None, _) => args.pod_pools.as_deref(),
        };
        answers.extend(per_node(snapshot, &nodes, ns, family, pod_pools));
    }
    Ok(answers)
}

fn per_node(
    snapshot: &Snapshot,
    nodes: &[&NodeRecord],
    namespace: &NamespaceRecord,
    family: Family,
    pod_pools: Option<&str>,
) -> Vec<Answer> {
    let mut grouped: Vec<Answer> = Vec::new();
    for node in nodes {
        let request = Request {
            family,
            node,
            namespace,
            pod_pools,
        };
        let mut explanation = explain(&snapshot.pools, &request);
        // Calico names the node in this one message; grouping compares the rest.
        let per_node_failure = format!("no configured Calico pools for node {}", node.name);
        if explanation.failure.as_deref() == Some(per_node_failure.as_str()) {
            explanation.failure = Some("no configured Calico pools for node <node>".to_owned());
        }
        match grouped.iter_mut().find(|a| a.explanation == explanation) {
            Some(answer) => answer.nodes.push(node.name.clone()),
            None => grouped.push(Answer {
                family,
                nodes: vec![node.name.clone()],
                explanation,
            }),
        }
    }
    grouped
}

fn families(snapshot: &Snapshot, asked: Option<FamilyArg>) -> anyhow::Result<Vec<Family>> {
    if let Some(family) = asked {
        return Ok(vec![family.into()]);
    }
    let present: Vec<Family> = [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| {
            snapshot
                .pools
                .iter()
                .any(|p| p.spec.cidr_net().is_some_and(|n| Family::of(&n) == *f))
        })
        .collect();
    if present.is_empty() {
        bail!(
            "the cluster has no IP pools: no pod can get an address (`kubectl ippool create` makes one)"
        );
    }
    Ok(present)
}

fn find_pod<'s>(snapshot: &'s Snapshot, arg: &str, namespace: &str) -> anyhow::Result<&'s PodInfo> {
    let Some(name) = arg
        .strip_prefix("pod/")
        .or_else(|| arg.strip_prefix("pods/"))
    else {
        bail!("{arg:?}: name the pod as pod/NAME");
    };
    snapshot
        .pods
        .iter()
        .find(|p| p.namespace == namespace && p.name == name)
        .with_context(|| {
            format!("pod {name:?} not found in namespace {namespace} (-n names another)")
        })
}

fn find_node<'s>(snapshot: &'s Snapshot, name: &str) -> anyhow::Result<&'s NodeRecord> {
    snapshot
        .node(name)
        .with_context(|| format!("node {name:?} does not exist (`kubectl get nodes` lists them)"))
}

fn describe_source(explanation: &Explanation, family: Family) -> String {
    let annotation = match family {
        Family::V4 => ANNOTATION_IPV4_POOLS,
        Family::V6 => ANNOTATION_IPV6_POOLS,
    };
    let value = explanation.annotation.as_deref().unwrap_or_default();
    match explanation.source {
        Source::PodAnnotation => {
            format!("the pod's annotation {annotation}={value} (selectors are not consulted)")
        }
        Source::NamespaceAnnotation => {
            format!("the namespace's annotation {annotation}={value} (selectors are not consulted)")
        }
        Source::Selectors => {
            "no pool annotation: each enabled Automatic pool's nodeSelector and namespaceSelector"
                .to_owned()
        }
    }
}

/// Text, or `-o json|yaml` as a `PoolSelection`.
pub fn render(answers: &[Answer], subject: &str, output: &OutputArgs) -> anyhow::Result<String> {
    let document =
        serde_json::json!({"kind": "PoolSelection", "subject": subject, "items": answers});
    if let Some(text) = output.structured(&document)? {
        return Ok(text);
    }
    let mut out = String::new();
    for answer in answers {
        let e = &answer.explanation;
        let nodes = match answer.nodes.as_slice() {
            [one] => format!("node {one}"),
            many => format!("nodes {}", many.join(", ")),
        };
        out.push_str(&format!("{subject} ({}), on {nodes}:\n", answer.family));
        out.push_str(&format!(
            "  decided by: {}\n",
            describe_source(e, answer.family)
        ));
        match &e.failure {
            Some(failure) => out.push_str(&format!(
                "  no address: Calico's CNI plugin fails with \"{failure}\"\n"
            )),
            None if e.eligible.len() == 1 => {
                out.push_str(&format!("  address from: {}\n", e.eligible[0]))
            }
            None => out.push_str(&format!(
                "  address from any of: {} (Calico gives eligible pools no order)\n",
                e.eligible.join(", ")
            )),
        }
        if !e.excluded.is_empty() {
            out.push_str("  not eligible:\n");
            let width = e.excluded.iter().map(|x| x.pool.len()).max().unwrap_or(0);
            let mut by_pool: BTreeMap<&str, String> = BTreeMap::new();
            for x in &e.excluded {
                by_pool.insert(&x.pool, x.why.to_string());
            }
            for (pool, why) in by_pool {
                out.push_str(&format!("    {pool:<width$}  {why}\n"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use ippool_ipam::selection::{Excluded, Exclusion};

    fn answer(nodes: &[&str], eligible: &[&str], failure: Option<&str>) -> Answer {
        Answer {
            family: Family::V4,
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            explanation: Explanation {
                source: Source::NamespaceAnnotation,
                annotation: Some(r#"["blue"]"#.to_owned()),
                eligible: eligible.iter().map(|p| (*p).to_owned()).collect(),
                excluded: vec![Excluded {
                    pool: "default".to_owned(),
                    why: Exclusion::NotNamed {
                        source: Source::NamespaceAnnotation,
                    },
                }],
                failure: failure.map(str::to_owned),
            },
        }
    }

    fn output(format: Format) -> OutputArgs {
        OutputArgs {
            format,
            no_headers: false,
        }
    }

    #[test]
    fn text_names_the_deciding_annotation_the_pools_and_the_reasons() {
        let text = render(
            &[answer(&["sim-0", "sim-1"], &["blue"], None)],
            "A new pod in namespace shop",
            &output(Format::Table),
        )
        .unwrap();
        assert!(
            text.starts_with("A new pod in namespace shop (IPv4), on nodes sim-0, sim-1:\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"the namespace's annotation cni.projectcalico.org/ipv4pools=["blue"]"#),
            "{text}"
        );
        assert!(text.contains("  address from: blue\n"), "{text}");
        assert!(
            text.contains("    default  not named in the namespace's pool annotation\n"),
            "{text}"
        );
        let failed = render(
            &[answer(
                &["sim-0"],
                &[],
                Some("the given pool (10.1.0.0/16) does not exist, or is not enabled"),
            )],
            "pod/web in namespace shop",
            &output(Format::Table),
        )
        .unwrap();
        assert!(
            failed.contains(
                "no address: Calico's CNI plugin fails with \"the given pool (10.1.0.0/16)"
            ),
            "{failed}"
        );
    }

    #[test]
    fn json_is_a_pool_selection_document() {
        let text = render(
            &[answer(&["sim-0"], &["blue"], None)],
            "A new pod in namespace shop",
            &output(Format::Json),
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["kind"], "PoolSelection");
        assert_eq!(value["items"][0]["eligible"][0], "blue");
        assert_eq!(value["items"][0]["excluded"][0]["reason"], "notNamed");
        assert_eq!(value["items"][0]["source"], "namespaceAnnotation");
    }
}
