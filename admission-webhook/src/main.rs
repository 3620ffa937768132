use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use admission_webhook::certs::{CertReloader, server_config};
use admission_webhook::server::{metrics_router, router, serve_tls};
use admission_webhook::state::{AppState, Exemption, Exemptions};
use anyhow::{Context as _, bail};
use clap::Parser;
use ipnet::IpNet;
use ippool_cluster::discovery::{CidrFlags, Outcome, discover};
use ippool_cluster::view::{ClusterView, StaticContext};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Validating admission webhook for Calico IP pools: refuses unsafe changes (blockSize or CIDR
/// edits, pools outside the cluster CIDR, deleting pools in use) from every client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address for the HTTPS endpoints (/validate, /healthz, /readyz, /metrics).
    #[arg(long, default_value = "0.0.0.0:9443")]
    listen: SocketAddr,
    /// Listen on this address instead of --listen's (its port kept): with host networking, the
    /// pod's own address (status.podIP) rather than every address of the node.
    #[arg(long, env = "IPPOOL_WEBHOOK_BIND_ADDRESS")]
    bind_address: Option<std::net::IpAddr>,
    /// PEM serving certificate (chain). Reloaded when the file changes.
    #[arg(long)]
    tls_cert: PathBuf,
    /// PEM private key of the serving certificate. Reloaded when the file changes.
    #[arg(long)]
    tls_key: PathBuf,
    /// Kubeconfig to use instead of the in-cluster service account (or $KUBECONFIG).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The cluster's pod CIDR (repeat, or comma-separate, for dual-stack). Wins over discovery.
    #[arg(long, value_delimiter = ',')]
    cluster_cidr: Vec<IpNet>,
    /// The cluster's service CIDR (repeat, or comma-separate, for dual-stack). Wins over discovery.
    #[arg(long, value_delimiter = ',')]
    service_cidr: Vec<IpNet>,
    /// Also serve /metrics, /healthz and /readyz over plain HTTP on this address.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Allow requests from this user, or group:NAME, whatever the rules find (findings become
    /// warnings and are logged). Repeatable.
    #[arg(long)]
    exempt: Vec<Exemption>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_json);
    // kube's TLS and ours both use ring; one process-wide provider avoids ambiguity.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let reloader = CertReloader::load(&args.tls_cert, &args.tls_key)?;
    let _cert_watch = reloader.watch()?;
    let tls = server_config(Arc::clone(&reloader))?;

    let exemptions = Exemptions::new(args.exempt.iter().cloned());
    if exemptions.covers_calico_api_server() {
        tracing::warn!(
            "the exemptions cover Calico's API server service account: every projectcalico.org/v3 \
             write it stores will skip the rules"
        );
    }

    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let flags = CidrFlags {
        cluster_cidrs: args.cluster_cidr.clone(),
        service_cidrs: args.service_cidr.clone(),
    };
    let discovery = discover(&client, &flags).await;
    for attempt in &discovery.attempts {
        tracing::info!(source = %attempt.source, outcome = ?attempt.outcome, "cluster CIDR discovery");
    }
    if let Some(failed) = discovery
        .attempts
        .iter()
        .find(|a| matches!(a.outcome, Outcome::Failed { .. }))
    {
        bail!(
            "cluster CIDR discovery could not complete ({:?} from {}); is the API server reachable?",
            failed.outcome,
            failed.source
        );
    }
    let statics = StaticContext {
        cluster_cidrs: discovery.cluster_cidrs(),
        service_cidrs: discovery.service_cidrs(),
    };
    match &statics.cluster_cidrs {
        Some(found) => tracing::info!(cidrs = ?found.cidrs, source = %found.source, "cluster CIDR"),
        None => tracing::warn!(
            "no cluster CIDR found: pools are not checked against the pod CIDR (pass --cluster-cidr)"
        ),
    }

    let view = ClusterView::start(client, statics)
        .await
        .context("starting the IP pool and IPAM block watches")?;
    tracing::info!(groups = ?view.pool_groups(), "watching IP pools");
    let state = Arc::new(AppState::new(Arc::new(view), exemptions));

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let listen = match args.bind_address {
        Some(ip) => SocketAddr::new(ip, args.listen.port()),
        None => args.listen,
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen} (--listen, --bind-address)"))?;
    tracing::info!(address = %listen, "serving HTTPS");
    let main_server = tokio::spawn(serve_tls(
        listener,
        tls,
        router(Arc::clone(&state)),
        stopped(stop_rx.clone()),
    ));

    let metrics_server = match args.metrics_listen {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("binding --metrics-listen {address}"))?;
            tracing::info!(%address, "serving metrics over HTTP");
            let app = metrics_router(Arc::clone(&state));
            let shutdown = stopped(stop_rx.clone());
            Some(tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }))
        }
        None => None,
    };

    shutdown_signal().await?;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    main_server.await?;
    if let Some(server) = metrics_server {
        server.await??;
    }
    Ok(())
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading --kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("using --kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig and no in-cluster service account or $KUBECONFIG")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
    }
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
