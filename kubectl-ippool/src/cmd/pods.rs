//! `kubectl ippool pods POOL [-n NS | -A]`: the pods holding addresses in a pool, with owner and node.

use std::net::IpAddr;

use anyhow::bail;
use clap::Args;
use ippool_ipam::snapshot::Parts;
use ippool_ipam::usage::{PodInPool, pods_in_pool};

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::Live;
use crate::output::{OutputArgs, Table, or_none};

#[derive(Debug, Args)]
pub struct PodsArgs {
    /// The pool.
    pub pool: String,

    /// Only pods in this namespace (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,

    /// Pods in every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

const PARTS: Parts = Parts {
    pools: true,
    blocks: false,
    affinities: false,
    handles: false,
    pods: true,
    nodes: false,
    namespaces: false,
};

pub fn run(args: &PodsArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let namespace = match (&args.namespace, args.all_namespaces) {
            (_, true) => None,
            (Some(ns), false) => Some(ns.clone()),
            (None, false) => Some(kube.default_namespace().await),
        };
        let snapshot = live.snapshot(PARTS).await?;
        let Some(pool) = snapshot.pool(&args.pool) else {
            bail!(
                "IP pool {:?} does not exist; `kubectl ippool list` shows the pools there are",
                args.pool
            );
        };
        let pods = pods_in_pool(&snapshot, pool, namespace.as_deref());
        if pods.is_empty() && !args.output.is_structured() {
            match &namespace {
                Some(ns) => eprintln!(
                    "No pods in namespace {ns} hold addresses in pool {} (-A looks in every namespace).",
                    args.pool
                ),
                None => eprintln!("No pods hold addresses in pool {}.", args.pool),
            }
            return Ok(Outcome::Clean);
        }
        print!("{}", render(&pods, namespace.is_none(), &args.output)?);
        Ok(Outcome::Clean)
    })
}

pub fn render(
    pods: &[PodInPool<'_>],
    with_namespace: bool,
    output: &OutputArgs,
) -> anyhow::Result<String> {
    if let Some(text) = output.structured(&serde_json::json!({"kind": "PodList", "items": pods}))? {
        return Ok(text);
    }
    let mut headers = vec!["NAME", "IP", "NODE", "OWNER"];
    if with_namespace {
        headers.insert(0, "NAMESPACE");
    }
    let mut table = Table::new(headers);
    for pod in pods {
        let ips: Vec<String> = pod.addresses.iter().map(IpAddr::to_string).collect();
        let mut row = vec![
            pod.name.to_owned(),
            ips.join(","),
            or_none(pod.node),
            pod.owner.to_string(),
        ];
        if with_namespace {
            row.insert(0, pod.namespace.to_owned());
        }
        table.push(row);
    }
    Ok(table.render(output.no_headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_ipam::snapshot::{Owner, OwnerKind};

    #[test]
    fn rows_carry_owner_and_node() {
        let owner = Owner {
            kind: OwnerKind::StatefulSet,
            name: "db".to_owned(),
        };
        let bare = Owner::bare();
        let pods = vec![
            PodInPool {
                namespace: "shop",
                name: "db-0",
                node: Some("sim-1"),
                owner: &owner,
                addresses: vec!["10.0.0.5".parse().unwrap()],
            },
            PodInPool {
                namespace: "shop",
                name: "debug",
                node: None,
                owner: &bare,
                addresses: vec!["10.0.0.6".parse().unwrap()],
            },
        ];
        assert_eq!(
            render(&pods, true, &OutputArgs::default()).unwrap(),
            "NAMESPACE   NAME    IP         NODE     OWNER\n\
             shop        db-0    10.0.0.5   sim-1    StatefulSet/db\n\
             shop        debug   10.0.0.6   <none>   <none>\n"
        );
        assert!(
            render(&pods, false, &OutputArgs::default())
                .unwrap()
                .starts_with("NAME   ")
        );
    }
}
