//! The open-loop generator: AdmissionReviews sent at a constant rate over TLS keep-alive
//! connections, each timed from its intended send time, with the generator's lateness, the time
//! queued behind the server and the service time kept apart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio_rustls::TlsConnector;
use webhook_manifest::tls::GeneratedTls;

use crate::CONNECTIONS;

pub struct PhaseResult {
    pub sent: u64,
    pub errors: u64,
    /// From the intended send time to the complete answer (µs).
    pub latency: Histogram<u64>,
    /// From the actual send to the complete answer (µs).
    pub service: Histogram<u64>,
    /// From the intended send time to when the generator handed the request to the connections
    /// (µs): the generator's own lateness.
    pub lateness: Histogram<u64>,
    /// From being handed over to the actual send (µs): time queued behind the server, waiting for a
    /// keep-alive connection whose previous request is still unanswered.
    pub queued: Histogram<u64>,
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

fn connector(tls: &GeneratedTls) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(tls.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(address: SocketAddr, connector: &TlsConnector) -> Option<Sender> {
    let tcp = TcpStream::connect(address).await.ok()?;
    tcp.set_nodelay(true).ok()?;
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

pub async fn open_loop(
    address: SocketAddr,
    tls: &GeneratedTls,
    bodies: Arc<Vec<(Bytes, bool)>>,
    rate: u64,
    duration: Duration,
) -> PhaseResult {
    let connector = connector(tls);
    let total = rate * duration.as_secs().max(1);
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    // (request number, intended send time, when the generator handed it over)
    let (tx, rx) = mpsc::unbounded_channel::<(u64, Instant, Instant)>();
    let rx = Arc::new(Mutex::new(rx));
    let errors = Arc::new(AtomicU64::new(0));

    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut sender = connect(address, &connector)
            .await
            .expect("connect to the webhook");
        let (rx, errors, bodies, connector) = (
            Arc::clone(&rx),
            Arc::clone(&errors),
            Arc::clone(&bodies),
            connector.clone(),
        );
        workers.push(tokio::spawn(async move {
            let (mut latency, mut service, mut lateness, mut queued) =
                (histogram(), histogram(), histogram(), histogram());
            loop {
                let next = rx.lock().await.recv().await;
                let Some((n, intended, handed_over)) = next else {
                    break;
                };
                let (body, allowed) = &bodies[(n % bodies.len() as u64) as usize];
                let sent = Instant::now();
                let request = hyper::Request::post("/validate")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .unwrap();
                let ok = match sender.send_request(request).await {
                    Ok(response) if response.status() == 200 => {
                        match response.into_body().collect().await {
                            Ok(collected) => {
                                let text = collected.to_bytes();
                                let expected: &[u8] = if *allowed {
                                    b"\"allowed\":true"
                                } else {
                                    b"\"allowed\":false"
                                };
                                text.windows(expected.len()).any(|w| w == expected)
                            }
                            Err(_) => false,
                        }
                    }
                    _ => false,
                };
                let done = Instant::now();
                latency.saturating_record(done.duration_since(intended).as_micros() as u64);
                service.saturating_record(done.duration_since(sent).as_micros() as u64);
                lateness.saturating_record(
                    handed_over.saturating_duration_since(intended).as_micros() as u64,
                );
                queued.saturating_record(sent.duration_since(handed_over).as_micros() as u64);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(fresh) = connect(address, &connector).await {
                        sender = fresh;
                    }
                }
            }
            (latency, service, lateness, queued)
        }));
    }

    // The schedule runs on its own thread so that a busy runtime cannot delay it: each request's
    // intended time is fixed before the run, and a late send is counted against the latency.
    let start = Instant::now() + Duration::from_millis(50);
    let generator = std::thread::spawn(move || {
        for n in 0..total {
            let intended = start + period.mul_f64(n as f64);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            if tx.send((n, intended, Instant::now())).is_err() {
                break;
            }
        }
    });
    generator.join().unwrap();

    let (mut latency, mut service, mut lateness, mut queued) =
        (histogram(), histogram(), histogram(), histogram());
    for worker in workers {
        let (l, s, g, q) = worker.await.unwrap();
        latency.add(l).unwrap();
        service.add(s).unwrap();
        lateness.add(g).unwrap();
        queued.add(q).unwrap();
    }
    PhaseResult {
        sent: total,
        errors: errors.load(Ordering::Relaxed),
        latency,
        service,
        lateness,
        queued,
    }
}
