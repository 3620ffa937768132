//! HTTP: the axum router and the TLS accept loop (tokio-rustls, HTTP/1.1 and HTTP/2 by ALPN).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::handlers::{self, BODY_LIMIT, BadReview, Verdict};
use crate::state::AppState;

/// A client that connects but never finishes its handshake or headers must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may finish their requests after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `POST /validate`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .merge(probes_and_metrics())
        .with_state(state)
}

/// The same probes and metrics without `/validate`, for the plain-HTTP `--metrics-listen` port.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    probes_and_metrics().with_state(state)
}

fn probes_and_metrics() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn validate(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let started = Instant::now();
    let result = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => handlers::review(&bytes, &state),
        // Over the limit, or the client went away mid-body: either way there is no review.
        Err(_) => Err(BadReview::TooLarge),
    };
    match result {
        Ok(answer) => {
            let (operation, verdict) = (answer.operation, answer.verdict);
            let json = answer.into_json();
            state
                .metrics
                .observe(operation, verdict.as_str(), started.elapsed());
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        Err(bad) => {
            state
                .metrics
                .observe("UNKNOWN", Verdict::Invalid.as_str(), started.elapsed());
            tracing::warn!(error = %bad, "rejected a request that is not an AdmissionReview");
            (StatusCode::BAD_REQUEST, bad.to_string()).into_response()
        }
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.not_ready() {
        None => "ok".into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.refresh_view_metrics();
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.encode(),
    )
        .into_response()
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then lets open connections
/// finish (up to a bound).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Typically EMFILE: there is no event to wait for, so pause briefly rather
                    // than spin on a failing accept.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing them");
    }
}
