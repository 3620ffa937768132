//! calico-sim: scheduler, kubelet and Calico CNI/IPAM for fake nodes on a real Kubernetes
//! control plane, so that tests meet Calico's IPAM objects exactly as a cluster has them.

mod cluster;
mod ipam;
mod kubelet;
mod nodes;
mod options;
mod pod_status;
mod scheduling;
mod tunnel;
mod watches;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::info;

use crate::cluster::Cluster;
use crate::ipam::Ipam;
use crate::kubelet::Kubelet;
use crate::options::Options;
use crate::scheduling::Load;
use crate::watches::Dispatch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let options = Options::parse();
    let kubeconfig = Kubeconfig::read_from(&options.kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", options.kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("using kubeconfig {}", options.kubeconfig.display()))?;
    let client = Client::try_from(config).context("building the Kubernetes client")?;

    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        result = run(client, options) => result,
        _ = terminate.recv() => {
            info!("SIGTERM: exiting");
            Ok(())
        }
        _ = tokio::signal::ctrl_c() => {
            info!("SIGINT: exiting");
            Ok(())
        }
    }
}

/// Registers the nodes, then plays their data plane until the process is stopped.
async fn run(client: Client, options: Options) -> anyhow::Result<()> {
    let names = options.node_names();
    nodes::register(
        client.clone(),
        &names,
        &options.node_prefix,
        &options.node_labels.0,
    )
    .await?;
    info!(nodes = names.len(), prefix = %options.node_prefix, "nodes registered");

    let cluster = Arc::new(Cluster::new());
    let kubelet = Arc::new(Kubelet {
        client: client.clone(),
        cluster: cluster.clone(),
        ipam: Ipam::new(client.clone(), cluster.clone()),
        start_delay: options.start_delay(),
        stop_delay: options.stop_delay(),
    });
    let workers: HashMap<String, kubelet::WorkerHandle> = names
        .iter()
        .map(|n| (n.clone(), kubelet::spawn_worker(n.clone(), kubelet.clone())))
        .collect();
    let (scheduler_tx, scheduler_rx) = mpsc::unbounded_channel();
    let load = Arc::new(Load::default());
    let dispatch = Arc::new(Dispatch {
        workers,
        scheduler: scheduler_tx.clone(),
        load: load.clone(),
    });

    tokio::spawn(scheduling::run(
        client.clone(),
        cluster.clone(),
        load,
        scheduler_tx,
        scheduler_rx,
    ));
    tokio::spawn(watches::pools(
        client.clone(),
        cluster.clone(),
        dispatch.clone(),
    ));
    tokio::spawn(watches::config(
        client.clone(),
        cluster.clone(),
        dispatch.clone(),
    ));
    tokio::spawn(watches::blocks(
        client.clone(),
        cluster.clone(),
        dispatch.clone(),
    ));
    tokio::spawn(watches::affinities(client.clone(), cluster.clone()));
    tokio::spawn(watches::namespaces(
        client.clone(),
        cluster.clone(),
        dispatch.clone(),
    ));
    tokio::spawn(watches::nodes(
        client.clone(),
        cluster.clone(),
        dispatch.clone(),
    ));
    watches::pods(client, dispatch).await;
    anyhow::bail!("the pod watch ended; it should run until the process stops")
}
