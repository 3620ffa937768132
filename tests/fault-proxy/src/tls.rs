//! Both TLS sides: the proxy's own certificate, made at start, and trust in the API server's.

use std::{fs, path::Path, sync::Arc};

use anyhow::{Context as _, ensure};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject as _},
};

/// A server configuration with a fresh self-signed certificate for `127.0.0.1` and `localhost`,
/// whose PEM goes to `ca_file` for clients to trust. ALPN offers HTTP/2 first, as the API server
/// does, so that clients use the protocol they would use without the proxy.
pub fn proxy_server_config(
    provider: &Arc<CryptoProvider>,
    ca_file: &Path,
) -> anyhow::Result<Arc<ServerConfig>> {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(["127.0.0.1".to_owned(), "localhost".to_owned()])
            .context("generating the proxy's certificate")?;
    fs::write(ca_file, cert.pem()).with_context(|| format!("writing {}", ca_file.display()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .context("TLS versions for the proxy's server side")?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .context("the proxy's certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side towards the API server, trusting only the certificates of `--upstream-ca`.
pub struct UpstreamTls(pub ClientConfig);

impl UpstreamTls {
    pub fn trusting(provider: &Arc<CryptoProvider>, ca_file: &Path) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file)
            .with_context(|| format!("reading {}", ca_file.display()))?
        {
            let cert = cert.with_context(|| format!("a certificate in {}", ca_file.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("a certificate in {}", ca_file.display()))?;
        }
        ensure!(
            !roots.is_empty(),
            "{} holds no certificate",
            ca_file.display()
        );
        let config = ClientConfig::builder_with_provider(Arc::clone(provider))
            .with_safe_default_protocol_versions()
            .context("TLS versions for the upstream side")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(UpstreamTls(config))
    }
}
