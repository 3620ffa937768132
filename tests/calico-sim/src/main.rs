//! calico-sim: kubelet and container runtime for fake nodes on a real Kubernetes control plane.
//! Pods are scheduled by kube-scheduler; their sandboxes are set up and torn down by Calico's own
//! CNI plugin, so every pod address comes from Calico's IPAM, and node tunnel addresses from
//! Calico's own allocator.

mod calico;
mod cluster;
mod kubelet;
mod nodes;
mod options;
mod pod_status;
mod run;
mod sandboxes;
mod tunnels;
mod watches;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

use crate::calico::Calico;
use crate::cluster::Cluster;
use crate::kubelet::Kubelet;
use crate::options::Options;
use crate::run::Runtime;
use crate::watches::Dispatch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // First: a SIGTERM that comes while the kubeconfig is read is still a clean stop.
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
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
    let api_server = config.cluster_url.clone();
    let client = Client::try_from(config).context("building the Kubernetes client")?;

    tokio::select! {
        result = run(client, api_server, options) => result,
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

/// Registers the nodes, then plays their kubelets until the process is stopped.
async fn run(client: Client, api_server: http::Uri, options: Options) -> anyhow::Result<()> {
    let state = options.state_dir();
    std::fs::create_dir_all(&state)
        .with_context(|| format!("creating the state folder {}", state.display()))?;
    // Calico gets absolute paths: the data plane's socket is a URL, where a relative path would
    // read as a host name.
    let absolute = |path: &std::path::Path| {
        std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
    };
    let state = absolute(&state)?;
    let calico = Calico::new(
        absolute(&options.calico_bin)?,
        absolute(options.cni_kubeconfig())?,
        absolute(options.node_agent_kubeconfig())?,
        state.clone(),
        usize::from(options.parallel_calico),
    );
    // Owned here: it is killed when the sim exits (and dies with it on a kill -9).
    let mut dataplane = calico
        .start_dataplane()
        .await
        .context("starting the fake data plane (cni-dataplane)")?;

    // Container processes a previous sim left (killed with -9) go before any starts again.
    run::reap_strays(&state);
    if !options.images.is_empty() {
        nodes::make_node_addresses_local()
            .context("making the nodes' addresses local, for the pods that run on them")?;
    }
    let runtime = Arc::new(Runtime {
        client: client.clone(),
        images: options.images.iter().cloned().collect(),
        api_host: api_server.host().unwrap_or("127.0.0.1").to_owned(),
        api_port: api_server.port_u16().unwrap_or(443),
        state: state.clone(),
    });

    let names = options.node_names();
    nodes::register(
        client.clone(),
        &names,
        &options.node_prefix,
        &api_server.to_string(),
        &options.node_labels.0,
    )
    .await?;
    // The harness waits for this line (tests/harness/src/sim.rs, REGISTERED).
    info!(nodes = names.len(), prefix = %options.node_prefix, state = %state.display(), "nodes registered");

    let cluster = Arc::new(Cluster::new());
    let kubelet = Arc::new(Kubelet {
        client: client.clone(),
        cluster: cluster.clone(),
        calico,
        start_delay: options.start_delay(),
        stop_delay: options.stop_delay(),
        runtime,
    });
    let mut workers = HashMap::new();
    let mut tunnels = HashMap::new();
    for name in &names {
        let worker = kubelet::spawn_worker(name.clone(), kubelet.clone(), &state)?;
        workers.insert(name.clone(), worker);
        tunnels.insert(name.clone(), tunnels::spawn(name.clone(), kubelet.clone()));
    }
    let dispatch = Arc::new(Dispatch { workers, tunnels });

    tokio::spawn(watches::pools(
        client.clone(),
        cluster.clone(),
        dispatch.clone(),
    ));
    tokio::spawn(watches::ipam_config(client.clone(), dispatch.clone()));
    tokio::spawn(watches::blocks(client.clone(), dispatch.clone()));
    tokio::spawn(watches::namespaces(client.clone(), dispatch.clone()));
    tokio::spawn(watches::nodes(
        client.clone(),
        cluster.clone(),
        dispatch.clone(),
    ));
    tokio::select! {
        () = watches::pods(client, dispatch) => {
            anyhow::bail!("the pod watch ended; it should run until the process stops")
        }
        exited = dataplane.wait() => {
            anyhow::bail!("the fake data plane (cni-dataplane) exited: {exited:?}")
        }
    }
}
