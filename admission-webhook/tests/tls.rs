//! The TLS edge over real connections: HTTP/1.1 and HTTP/2 by ALPN, and a certificate rotated on
//! disk by an atomic symlink swap (as kubelet updates Secret volumes) served without a restart.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use admission_webhook::certs::{CertReloader, server_config};
use admission_webhook::server::{router, serve_tls};
use admission_webhook::state::{AppState, Exemptions, FixedContext};
use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use webhook_manifest::tls::{GeneratedTls, generate_tls};

const WAIT: Duration = Duration::from_secs(20);

/// Lays out `version` the way kubelet does: `<version>/tls.*`, `..data -> <version>`, and
/// `tls.* -> ..data/tls.*`; a later call swaps `..data` atomically.
fn publish(dir: &Path, version: &str, tls: &GeneratedTls) {
    let folder = dir.join(version);
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("tls.crt"), &tls.cert_pem).unwrap();
    std::fs::write(folder.join("tls.key"), &tls.key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn connector(trusted: &[&GeneratedTls], alpn: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for tls in trusted {
        roots.add(der(&tls.ca_pem)).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// Connects, returns the served leaf certificate and the answer to `request` over HTTP/1.1.
async fn http1(
    address: std::net::SocketAddr,
    trusted: &[&GeneratedTls],
    request: Request<Full<Bytes>>,
) -> Result<(CertificateDer<'static>, u16, String), String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let tls = connector(trusted, b"http/1.1")
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((leaf, status, String::from_utf8_lossy(&body).into_owned()))
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

struct Running {
    address: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

async fn start(reloader: Arc<CertReloader>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = Arc::new(AppState::new(
        Arc::new(FixedContext::synced(common::cluster())),
        Exemptions::default(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_tls(
        listener,
        server_config(reloader).unwrap(),
        router(state),
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        address,
        stop: Some(stop),
        server,
    }
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.server)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn a_certificate_swapped_on_disk_is_served_to_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let names = vec!["127.0.0.1".to_owned()];
    let first = generate_tls(&names).unwrap();
    let second = generate_tls(&names).unwrap();
    publish(dir.path(), "..2026_01_01_00_00_00.1", &first);

    let reloader =
        CertReloader::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let _watch = reloader.watch().unwrap();
    let mut generation = reloader.generation();
    let server = start(Arc::clone(&reloader)).await;

    let (leaf, status, body) = http1(server.address, &[&first], get("/healthz"))
        .await
        .unwrap();
    assert_eq!(leaf, der(&first.cert_pem));
    assert_eq!((status, body.as_str()), (200, "ok"));

    publish(dir.path(), "..2026_02_01_00_00_00.2", &second);
    tokio::time::timeout(WAIT, generation.changed())
        .await
        .expect("the swap is noticed")
        .unwrap();

    let (leaf, status, _) = http1(server.address, &[&first, &second], get("/readyz"))
        .await
        .unwrap();
    assert_eq!(
        leaf,
        der(&second.cert_pem),
        "the new pair is served without a restart"
    );
    assert_eq!(status, 200);
    let refused = http1(server.address, &[&first], get("/healthz")).await;
    assert!(
        refused.is_err(),
        "a client that trusts only the old CA is refused now"
    );
    server.stop().await;
}

#[tokio::test]
async fn reviews_are_answered_over_http2_as_the_api_server_asks() {
    let dir = tempfile::tempdir().unwrap();
    let tls = generate_tls(&["127.0.0.1".to_owned()]).unwrap();
    publish(dir.path(), "..v1", &tls);
    let reloader =
        CertReloader::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let server = start(reloader).await;

    let tcp = TcpStream::connect(server.address).await.unwrap();
    let stream = connector(&[&tls], b"h2")
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let review = common::alice("DELETE", None, Some(&common::default_pool()));
    let request = Request::post("https://127.0.0.1/validate")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("IPP070")
    );
    drop(sender);
    server.stop().await;
}

/// Sends one review over `sender`; whether it came back with the expected refusal.
async fn review_refused(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
) -> Result<(), String> {
    let review = common::alice("DELETE", None, Some(&common::default_pool()));
    let request = Request::post("https://127.0.0.1/validate")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    match answer["response"]["allowed"].as_bool() {
        Some(false) => Ok(()),
        other => Err(format!("unexpected verdict {other:?}")),
    }
}

/// An HTTP/2 connection as the API server keeps one, trusting `trusted`.
async fn h2(
    address: std::net::SocketAddr,
    trusted: &[&GeneratedTls],
) -> Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>, String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let stream = connector(trusted, b"h2")
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Certificates rotated five times while reviews keep coming — over connections held open, as
/// the API server holds them, and over new ones, handshaking in the middle of each swap: not one
/// review fails (the clients trust every CA of the rotation, as a caBundle carrying the old and
/// the new does while it rolls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_load_lose_no_review() {
    let dir = tempfile::tempdir().unwrap();
    let names = vec!["127.0.0.1".to_owned()];
    let pairs: Vec<GeneratedTls> = (0..6).map(|_| generate_tls(&names).unwrap()).collect();
    publish(dir.path(), "..v0", &pairs[0]);
    let reloader =
        CertReloader::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let _watch = reloader.watch().unwrap();
    let mut generation = reloader.generation();
    let server = start(Arc::clone(&reloader)).await;
    let address = server.address;
    let trusted: Arc<Vec<GeneratedTls>> = Arc::new(pairs.clone());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (trusted, stop) = (Arc::clone(&trusted), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let all: Vec<&GeneratedTls> = trusted.iter().collect();
            let (mut sent, mut failures) = (0usize, Vec::new());
            // Workers 0 and 1 hold one connection; 2 and 3 open a new one for every review.
            let mut held = if worker < 2 {
                Some(h2(address, &all).await.unwrap())
            } else {
                None
            };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let outcome = match held.as_mut() {
                    Some(sender) => review_refused(sender).await,
                    None => match h2(address, &all).await {
                        Ok(mut sender) => review_refused(&mut sender).await,
                        Err(e) => Err(e),
                    },
                };
                sent += 1;
                if let Err(e) = outcome {
                    failures.push(e);
                }
            }
            (sent, failures)
        }));
    }
    for (n, pair) in pairs.iter().enumerate().skip(1) {
        publish(dir.path(), &format!("..v{n}"), pair);
        tokio::time::timeout(WAIT, generation.changed())
            .await
            .expect("the swap is noticed")
            .unwrap();
        let (leaf, _, _) = http1(
            address,
            &trusted.iter().collect::<Vec<_>>(),
            get("/healthz"),
        )
        .await
        .unwrap();
        assert_eq!(leaf, der(&pair.cert_pem), "rotation {n} is served");
        // The load goes on for a while under each pair (a length of load, not a wait for a state).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for worker in workers {
        let (sent, failures) = worker.await.unwrap();
        assert!(
            failures.is_empty(),
            "{} of {sent} reviews failed: {failures:?}",
            failures.len()
        );
        assert!(sent > 0, "every worker sent reviews");
        total += sent;
    }
    eprintln!("{total} reviews across 5 rotations, none failed");
    server.stop().await;
}
