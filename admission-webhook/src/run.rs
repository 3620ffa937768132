//! The webhook as a whole: TLS from files that may rotate, the cluster's CIDRs discovered once, the
//! watch-fed view, and the HTTPS (and optional plain metrics) servers, until `shutdown` resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use ippool_cluster::discovery::{CidrFlags, SourceAnswer, discover};
use ippool_cluster::view::{ClusterView, StaticContext, ViewError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::certs::{CertError, CertReloader, server_config};
use crate::server::{metrics_router, router, serve_tls};
use crate::state::{AppState, Exemptions};

/// What the webhook serves and how; the binary fills it from its flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of the HTTPS endpoints (/validate, /healthz, /readyz, /metrics).
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// The cluster's pod and service CIDRs given by flags; they win over discovery.
    pub cluster_cidrs: Vec<IpNet>,
    pub service_cidrs: Vec<IpNet>,
    /// Plain-HTTP /metrics, /healthz and /readyz as well.
    pub metrics_listen: Option<SocketAddr>,
    pub exemptions: Exemptions,
    /// How long to go on answering after `shutdown`, not ready, before closing: the API server
    /// goes on sending reviews to an endpoint until it learns the pod is leaving.
    pub shutdown_delay: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Certificates(#[from] CertError),
    #[error(
        "cluster CIDR discovery could not complete ({outcome} from {source_name}); is the API server reachable?"
    )]
    Discovery {
        outcome: String,
        source_name: String,
    },
    #[error("starting the IP pool and IPAM block watches: {0}")]
    View(#[from] ViewError),
    #[error("binding {address} ({flag}): {source}")]
    Bind {
        address: SocketAddr,
        flag: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the metrics server stopped: {0}")]
    Metrics(#[source] std::io::Error),
    #[error("a server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Serves until `shutdown` resolves and the shutdown delay has passed (not ready meanwhile),
/// then lets open connections finish.
pub async fn run(
    settings: Settings,
    client: kube::Client,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let reloader = CertReloader::load(&settings.tls_cert, &settings.tls_key)?;
    let _cert_watch = reloader.watch()?;
    let tls = server_config(Arc::clone(&reloader))?;

    if settings.exemptions.covers_calico_api_server() {
        tracing::warn!(
            "the exemptions cover Calico's API server service account: every projectcalico.org/v3 \
             write it stores will skip the rules"
        );
    }
    let statics = discover_cidrs(&client, &settings).await?;
    let view = ClusterView::start(client, statics).await?;
    tracing::info!(groups = ?view.pool_groups(), "watching IP pools");
    let state = Arc::new(AppState::new(Arc::new(view), settings.exemptions.clone()));

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let listener = bind(settings.listen, "--listen, --bind-address").await?;
    tracing::info!(address = %settings.listen, "serving HTTPS");
    let main_server = tokio::spawn(serve_tls(
        listener,
        tls,
        router(Arc::clone(&state)),
        stopped(stop_rx.clone()),
    ));
    let metrics_server = match settings.metrics_listen {
        Some(address) => {
            let listener = bind(address, "--metrics-listen").await?;
            tracing::info!(%address, "serving metrics over HTTP");
            let app = metrics_router(Arc::clone(&state));
            let stop = stopped(stop_rx.clone());
            Some(tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }))
        }
        None => None,
    };

    shutdown.await;
    state.start_draining();
    tracing::info!(
        delay = ?settings.shutdown_delay,
        "asked to stop: answering reviews, not ready, for the shutdown delay"
    );
    tokio::time::sleep(settings.shutdown_delay).await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    main_server.await?;
    if let Some(server) = metrics_server {
        server.await?.map_err(RunError::Metrics)?;
    }
    Ok(())
}

/// The cluster's CIDRs, from the flags or discovered once at start; a discovery that could not
/// complete stops the start, so that no verdict is made on a guess.
async fn discover_cidrs(
    client: &kube::Client,
    settings: &Settings,
) -> Result<StaticContext, RunError> {
    let flags = CidrFlags {
        cluster_cidrs: settings.cluster_cidrs.clone(),
        service_cidrs: settings.service_cidrs.clone(),
    };
    let discovery = discover(client, &flags).await;
    for attempt in &discovery.attempts {
        tracing::info!(source = %attempt.source, outcome = ?attempt.outcome, "cluster CIDR discovery");
    }
    if let Some(failed) = discovery
        .attempts
        .iter()
        .find(|a| matches!(a.outcome, SourceAnswer::Failed { .. }))
    {
        return Err(RunError::Discovery {
            outcome: format!("{:?}", failed.outcome),
            source_name: failed.source.to_string(),
        });
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
    Ok(statics)
}

async fn bind(address: SocketAddr, flag: &'static str) -> Result<TcpListener, RunError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Bind {
            address,
            flag,
            source,
        })
}
