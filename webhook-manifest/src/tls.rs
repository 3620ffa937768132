//! TLS material for a self-signed install and for tests: a CA and a serving certificate it signed.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A CA and a serving certificate it signed, all PEM.
#[derive(Clone)]
pub struct GeneratedTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for GeneratedTls {
    // The private key stays out of debug output and logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedTls")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The serving certificate outlives no CA: a self-signed install is re-rendered to rotate, and two
/// years keeps a forgotten install from failing closed too soon.
const CA_VALIDITY: Duration = Duration::days(3650);
const SERVING_VALIDITY: Duration = Duration::days(730);

/// Generates a fresh CA and a serving certificate for `names` (DNS names or IP addresses; the first is
/// also the common name). The CA key is dropped: nothing can sign with it after this returns.
pub fn generate_tls(names: &[String]) -> Result<GeneratedTls, TlsError> {
    let now = OffsetDateTime::now_utc();
    // Clocks of API servers and nodes drift; a certificate valid from "now" can be refused for minutes.
    let not_before = now - Duration::hours(1);

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ippool-admission-webhook-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before;
    ca_params.not_after = now + CA_VALIDITY;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(names.to_vec())?;
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = now + SERVING_VALIDITY;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    Ok(GeneratedTls {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
    use std::sync::Arc;

    fn verify(tls: &GeneratedTls, name: &str) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(tls.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let leaf = CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).unwrap();
        use rustls::client::danger::ServerCertVerifier;
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn serving_certificate_chains_to_the_ca_for_each_name() {
        let names = vec![
            "ippool-webhook.ippool-system.svc".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        let tls = generate_tls(&names).unwrap();
        verify(&tls, "ippool-webhook.ippool-system.svc").unwrap();
        verify(&tls, "127.0.0.1").unwrap();
        assert!(verify(&tls, "other.example").is_err());
    }

    #[test]
    fn each_generation_has_its_own_ca() {
        let names = vec!["a.svc".to_owned()];
        let one = generate_tls(&names).unwrap();
        let two = generate_tls(&names).unwrap();
        assert_ne!(one.ca_pem, two.ca_pem);
        let crossed = GeneratedTls {
            ca_pem: one.ca_pem.clone(),
            ..two
        };
        assert!(verify(&crossed, "a.svc").is_err());
    }

    #[test]
    fn debug_output_hides_the_private_key() {
        let tls = generate_tls(&["a.svc".to_owned()]).unwrap();
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
}
