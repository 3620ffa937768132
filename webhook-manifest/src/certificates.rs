//! The serving certificate's objects: a Secret generated now, or cert-manager's issuers and
//! certificates.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use crate::objects::{labels, meta};
use crate::tls::GeneratedTls;
use crate::{NAME, service_dns_names};

/// The Secret the Deployment mounts, whichever way it is filled.
pub(crate) const TLS_SECRET: &str = "ippool-admission-webhook-tls";

pub(crate) fn tls_secret(ns: &str, tls: &GeneratedTls) -> Secret {
    Secret {
        metadata: meta(TLS_SECRET, Some(ns)),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_owned(),
                ByteString(tls.cert_pem.clone().into_bytes()),
            ),
            (
                "tls.key".to_owned(),
                ByteString(tls.key_pem.clone().into_bytes()),
            ),
            (
                "ca.crt".to_owned(),
                ByteString(tls.ca_pem.clone().into_bytes()),
            ),
        ])),
        ..Secret::default()
    }
}

/// A self-signed issuer makes a CA, a CA issuer signs the serving certificate. The injected CA
/// therefore stays the same when the serving certificate is renewed, so the API server never sees
/// a certificate its caBundle does not yet trust.
pub(crate) fn cert_manager_objects(ns: &str) -> Vec<Value> {
    let metadata = |name: &str| json!({"name": name, "namespace": ns, "labels": labels()});
    vec![
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": metadata(&format!("{NAME}-selfsigned")),
            "spec": {"selfSigned": {}}
        }),
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": metadata(&format!("{NAME}-ca")),
            "spec": {
                "isCA": true,
                "commonName": format!("{NAME}-ca"),
                "secretName": format!("{NAME}-ca"),
                "duration": "87600h",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": format!("{NAME}-selfsigned"), "kind": "Issuer"}
            }
        }),
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": metadata(&format!("{NAME}-ca")),
            "spec": {"ca": {"secretName": format!("{NAME}-ca")}}
        }),
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": metadata(NAME),
            "spec": {
                "secretName": TLS_SECRET,
                "dnsNames": service_dns_names(ns),
                "duration": "2160h",
                "renewBefore": "720h",
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "usages": ["server auth", "digital signature"],
                "issuerRef": {"name": format!("{NAME}-ca"), "kind": "Issuer"}
            }
        }),
    ]
}
