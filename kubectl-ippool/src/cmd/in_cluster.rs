//! `--in-cluster` for `migrate` and `resize`: the plan is made and confirmed here, then the same
//! command runs as a Job in the state namespace ([`ippool_cluster::migration::job`]) with what
//! was decided here written out (CIDRs found, `auto` choices), so that the Job needs no discovery.

use std::collections::BTreeMap;

use clap::Args;
use ipnet::IpNet;
use ippool_cluster::discovery::Discovery;
use ippool_cluster::migration::job::{self, JOB_NAME, JobRequest, Needs};

use super::migrate::{Run, RunArgs};

#[derive(Debug, Clone, Args)]
pub struct InClusterArgs {
    /// Run it in the cluster as the Job `ippool-migration` in --state-namespace, with a
    /// ServiceAccount bound to what a run needs, instead of here; `kubectl ippool status --follow`
    /// shows it, `--abort` stops it.
    #[arg(long = "in-cluster")]
    pub in_cluster: bool,

    /// With --in-cluster: an image whose entrypoint is kubectl-ippool (kubectl-ippool/Containerfile).
    #[arg(long, value_name = "IMAGE", default_value_t = default_image())]
    pub image: String,

    /// With --in-cluster: a label for the Job's pods, KEY=VALUE (repeatable).
    #[arg(long = "job-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub job_labels: Vec<(String, String)>,
}

pub fn default_image() -> String {
    format!("localhost/kubectl-ippool:{}", env!("CARGO_PKG_VERSION"))
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("'{text}' is not a label: write KEY=VALUE")),
    }
}

/// The flags `run` shares with every migration, as the Job's command line gets them, with the
/// CIDRs found here.
pub fn shared_args(run: &RunArgs, found: &Discovery) -> Vec<String> {
    let mut args = vec![
        format!("--concurrency={}", run.concurrency),
        format!("--timeout={}s", run.timeout.as_secs().max(1)),
        format!("--state-namespace={}", run.state_namespace),
        "--yes".to_owned(),
        "--output=json".to_owned(),
    ];
    for (flag, set) in [
        ("--keep-old-pool", run.keep_old_pool),
        ("--delete-bare-pods", run.delete_bare_pods),
        ("--evict-jobs", run.evict_jobs),
    ] {
        if set {
            args.push(flag.to_owned());
        }
    }
    if let Some(ns) = &run.namespace {
        args.push(format!("--namespace={ns}"));
    }
    if let Some(selector) = &run.selector {
        args.push(format!("--selector={selector}"));
    }
    let cidrs = |flag: &str, found: Option<Vec<IpNet>>| -> Vec<String> {
        found
            .into_iter()
            .flatten()
            .map(|c| format!("{flag}={c}"))
            .collect()
    };
    args.extend(cidrs(
        "--cluster-cidr",
        found.cluster_cidrs().map(|c| c.cidrs),
    ));
    args.extend(cidrs("--service-cidr", found.service_cidrs()));
    args
}

/// Starts the Job with `command` (the subcommand and its own flags, then [`shared_args`]),
/// allowed what `needs` says.
pub async fn start(
    run: &Run,
    args: &RunArgs,
    command: Vec<String>,
    needs: Needs,
) -> anyhow::Result<()> {
    let request = JobRequest {
        needs,
        namespace: args.state_namespace.clone(),
        image: args.in_cluster.image.clone(),
        args: command,
        pod_labels: args
            .in_cluster
            .job_labels
            .iter()
            .cloned()
            .collect::<BTreeMap<_, _>>(),
    };
    job::start(&run.live.client, &request).await?;
    run.say(&format!(
        "Job {}/{JOB_NAME} runs it in the cluster; follow it with: kubectl ippool status --follow\n",
        args.state_namespace
    ));
    Ok(())
}
