//! `admission-webhook`: flags, logging and the Kubernetes client; [`admission_webhook::run`] does the rest.

use std::net::SocketAddr;
use std::path::PathBuf;

use admission_webhook::run::{Settings, run};
use admission_webhook::state::{Exemption, Exemptions};
use anyhow::Context as _;
use clap::Parser;
use ipnet::IpNet;
use kube::config::{KubeConfigOptions, Kubeconfig};

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
    /// After SIGTERM, go on answering (not ready) for this long before closing, e.g. 5s: the API
    /// server goes on calling a replica until it sees it leave the Service's endpoints.
    #[arg(long, default_value = "5s", value_parser = ippool_cluster::duration::parse)]
    shutdown_delay: std::time::Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_json);
    // kube's TLS and ours both use ring; one process-wide provider avoids ambiguity.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let mut shutdown = Box::pin(shutdown_signal());
    let settings = Settings {
        listen: match args.bind_address {
            Some(ip) => SocketAddr::new(ip, args.listen.port()),
            None => args.listen,
        },
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        cluster_cidrs: args.cluster_cidr,
        service_cidrs: args.service_cidr,
        metrics_listen: args.metrics_listen,
        exemptions: Exemptions::new(args.exempt),
        shutdown_delay: args.shutdown_delay,
    };
    // A broken signal handler is reported, never mistaken for a request to stop.
    let mut signal_error = None;
    run(settings, client, async {
        if let Err(e) = (&mut shutdown).await {
            signal_error = Some(e);
        }
    })
    .await?;
    signal_error.map_or(Ok(()), Err)
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
