//! One request: logged, delayed or refused as the faults say, else forwarded to the API server with
//! its response streamed back.

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use http::{
    HeaderMap, HeaderName, Request, Response, StatusCode, Uri, Version,
    header::{self, HeaderValue},
    uri::{Authority, Scheme},
};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use crate::{
    connections::AbortSignal,
    faults::Faults,
    request_log::{Outcome, RequestLog},
    tls::UpstreamTls,
    watch_body::{self, WatchEnds},
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What clients get back: streamed from the API server, or made here.
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Headers about one connection rather than the request (RFC 9110 7.6.1): the proxy's two
/// connections are its own. `Upgrade` goes with them: the proxy does not tunnel (exec, port-forward).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

pub struct Proxy {
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    scheme: Scheme,
    authority: Authority,
    faults: Mutex<Faults>,
    watch_ends: WatchEnds,
    log: Arc<RequestLog>,
}

impl Proxy {
    pub fn new(upstream: &Uri, tls: UpstreamTls, log: Arc<RequestLog>) -> anyhow::Result<Proxy> {
        let authority = upstream
            .authority()
            .cloned()
            .context("the upstream URL has no host")?;
        // HTTP/2 when the API server offers it (it does), as a client talking to it directly would.
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls.0)
            .https_only()
            .enable_all_versions()
            .build();
        Ok(Proxy {
            client: Client::builder(TokioExecutor::new()).build(connector),
            scheme: Scheme::HTTPS,
            authority,
            faults: Mutex::default(),
            watch_ends: WatchEnds::default(),
            log,
        })
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn watch_ends(&self) -> &WatchEnds {
        &self.watch_ends
    }

    /// Answers `request`, which arrived on a connection with `abort` (held until the answer is
    /// complete, so that aborting the connection waits for this too).
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        abort: AbortSignal,
    ) -> Response<ProxyBody> {
        let entry = self.log.begin(&request, abort);
        // Subscribed on arrival: a watch in flight when `close-watches` comes ends as soon as its
        // response starts.
        let watch_end = is_watch(request.uri()).then(|| self.watch_ends.subscribe());
        // Taken on arrival, so that `status 503 1` refuses the very next request even under latency.
        let (latency, refusal) = {
            let mut faults = self.faults();
            (faults.latency(), faults.next_refusal())
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(refusal) = refusal {
            entry.finish(Outcome::Status(refusal.code));
            return refusal
                .response()
                .map(|body| body.map_err(|never| match never {}).boxed_unsync());
        }
        let request = match self.upstream_request(request) {
            Ok(request) => request,
            Err(error) => {
                let message = format!("{error:#}");
                entry.finish(Outcome::Failed(message.clone()));
                return bad_gateway(&message);
            }
        };
        match self.client.request(request).await {
            Ok(response) => {
                entry.finish(Outcome::Status(response.status()));
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                let body = match watch_end {
                    Some(end) => watch_body::closable(body, end),
                    None => body.map_err(BoxError::from).boxed_unsync(),
                };
                Response::from_parts(head, body)
            }
            Err(error) => {
                let message = error_chain(&error);
                eprintln!("fault-proxy: upstream request failed: {message}");
                entry.finish(Outcome::Failed(message.clone()));
                bad_gateway(&message)
            }
        }
    }

    /// The request as the API server is to get it: same method, path, query, headers and body,
    /// addressed to the upstream.
    fn upstream_request(&self, request: Request<Incoming>) -> anyhow::Result<Request<Incoming>> {
        let (mut head, body) = request.into_parts();
        let path_and_query = head
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        head.uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .context("the upstream URL of the request")?;
        // The upstream connection's protocol is the client pool's choice (by ALPN), not the
        // client's: an HTTP/2 request on an HTTP/1.1 connection would be refused.
        head.version = Version::HTTP_11;
        strip_hop_by_hop(&mut head.headers);
        // The client sets Host (HTTP/1.1) or :authority (HTTP/2) from the URL, i.e. the upstream.
        head.headers.remove(header::HOST);
        Ok(Request::from_parts(head, body))
    }
}

/// `?watch=true` (or `1`), or the deprecated `/api/v1/watch/...` and `/apis/GROUP/VERSION/watch/...`.
fn is_watch(uri: &Uri) -> bool {
    let query_says = uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1"))
    });
    let segments: Vec<&str> = uri.path().split('/').collect();
    let path_says = match segments.get(1) {
        Some(&"api") => segments.get(3) == Some(&"watch"),
        Some(&"apis") => segments.get(4) == Some(&"watch"),
        _ => false,
    };
    query_says || path_says
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// A hyper error's message with its causes, which carry the useful part ("connection refused").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The answer when the API server cannot be asked: a `Status` as an aggregated API server's proxy
/// would send, so clients treat it as a server error.
fn bad_gateway(message: &str) -> Response<ProxyBody> {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("fault-proxy: upstream: {message}"),
        "reason": "InternalError",
        "code": 502,
    });
    let mut response = Response::new(
        Full::new(Bytes::from(status.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_watches_apart() {
        let watch = |uri: &str| is_watch(&uri.parse().unwrap());
        assert!(watch("/api/v1/pods?watch=true&resourceVersion=1"));
        assert!(watch(
            "/apis/crd.projectcalico.org/v1/ippools?allowWatchBookmarks=true&watch=1"
        ));
        assert!(watch("/api/v1/watch/namespaces/default/pods"));
        assert!(watch("/apis/apps/v1/watch/deployments"));
        assert!(!watch("/api/v1/pods?watch=false"));
        assert!(!watch("/api/v1/namespaces/watch"));
        assert!(!watch("/apis/crd.projectcalico.org/v1/ippools"));
    }

    #[test]
    fn strips_connection_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("authorization", "Bearer t"),
            ("accept", "application/json"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "authorization"]);
    }
}
