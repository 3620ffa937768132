//! Readiness probes as kubelet runs them: httpGet (HTTP or HTTPS, the certificate not verified;
//! success is a status from 200 to 399), tcpSocket (a connection) and exec (the command, in the
//! container's mount namespace, exits 0), every `periodSeconds` after `initialDelaySeconds`, each
//! within `timeoutSeconds`, the result flipping after `successThreshold` or `failureThreshold`
//! results in a row.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The readiness of one container, probed on its schedule.
pub struct Readiness {
    probe: Option<Probe>,
    ip: IpAddr,
    ports: Vec<(String, i32)>,
    env: Vec<(String, String)>,
    pub next: Instant,
    ready: bool,
    streak: i32,
}

fn seconds(value: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(value.unwrap_or(default).max(0)).unwrap_or(0))
}

impl Readiness {
    /// For a container started now; without a probe it is ready at once.
    pub fn new(container: &Container, ip: IpAddr, env: Vec<(String, String)>) -> Readiness {
        let probe = container.readiness_probe.clone();
        let next = match &probe {
            Some(p) => Instant::now() + seconds(p.initial_delay_seconds, 0),
            None => Instant::now() + Duration::from_secs(365 * 24 * 3600),
        };
        let ports = container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.name.clone()?, p.container_port)))
            .collect();
        Readiness {
            ready: probe.is_none(),
            probe,
            ip,
            ports,
            env,
            next,
            streak: 0,
        }
    }

    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Runs the probe once (`pid`: the container's process); returns whether readiness changed.
    pub async fn probe(&mut self, pid: u32) -> bool {
        let Some(probe) = self.probe.clone() else {
            return false;
        };
        self.next = Instant::now() + seconds(probe.period_seconds, 10);
        let timeout = seconds(probe.timeout_seconds, 1);
        let passed = tokio::time::timeout(timeout, self.attempt(&probe, pid))
            .await
            .unwrap_or(false);
        if passed == self.ready {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        let needed = if passed {
            probe.success_threshold.unwrap_or(1)
        } else {
            probe.failure_threshold.unwrap_or(3)
        };
        if self.streak >= needed {
            self.ready = passed;
            self.streak = 0;
            return true;
        }
        false
    }

    fn port(&self, port: &IntOrString) -> Option<u16> {
        let number = match port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => self.ports.iter().find(|(n, _)| n == name)?.1,
        };
        u16::try_from(number).ok()
    }

    async fn attempt(&self, probe: &Probe, pid: u32) -> bool {
        if let Some(http) = &probe.http_get {
            let Some(port) = self.port(&http.port) else {
                return false;
            };
            let host = http
                .host
                .as_deref()
                .and_then(|h| h.parse().ok())
                .unwrap_or(self.ip);
            let path = http.path.as_deref().unwrap_or("/");
            let https = http.scheme.as_deref() == Some("HTTPS");
            return http_get(SocketAddr::new(host, port), path, https)
                .await
                .is_some_and(|status| (200..400).contains(&status));
        }
        if let Some(tcp) = &probe.tcp_socket {
            let Some(port) = self.port(&tcp.port) else {
                return false;
            };
            return TcpStream::connect(SocketAddr::new(self.ip, port))
                .await
                .is_ok();
        }
        if let Some(exec) = &probe.exec {
            let command = exec.command.clone().unwrap_or_default();
            let status = tokio::process::Command::new("nsenter")
                .arg(format!("--target={pid}"))
                .arg("--mount")
                .arg("--")
                .args(&command)
                .env_clear()
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await;
            return status.is_ok_and(|s| s.success());
        }
        false
    }
}

/// The status code of `GET path` on `address`.
async fn http_get(address: SocketAddr, path: &str, https: bool) -> Option<u16> {
    let stream = TcpStream::connect(address).await.ok()?;
    if !https {
        return request(stream, address, path).await;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(Unverified))
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector
        .connect(ServerName::IpAddress(address.ip().into()), stream)
        .await
        .ok()?;
    request(tls, address, path).await
}

async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    address: SocketAddr,
    path: &str,
) -> Option<u16> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: kube-probe/calico-sim\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..read]);
    }
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Kubelet does not verify the certificate of an HTTPS probe.
#[derive(Debug)]
struct Unverified;

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
