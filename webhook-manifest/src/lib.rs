//! The deployment, rendered: namespace, least-privilege RBAC, a host-network Deployment with a
//! PodDisruptionBudget, the Service and the ValidatingWebhookConfiguration, with TLS either from
//! cert-manager (CA injection) or from a CA and serving certificate generated on the spot.
//!
//! `policy` renders the alternative that needs no server: the stateless rules as a
//! ValidatingAdmissionPolicy.
//!
//! `admission-webhook/deploy/` holds the cert-manager rendering with the defaults; a test keeps it
//! equal to what this crate renders. It is a crate of its own so that the plugin's `webhook
//! manifest` links no server.

mod certificates;
mod objects;
pub mod policy;
mod rbac;
pub mod registration;
pub mod tls;
mod workload;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{ServiceReference, WebhookClientConfig};
use serde_json::Value;

use crate::certificates::{cert_manager_objects, tls_secret};
use crate::objects::{namespace, to_value};
use crate::rbac::{
    cluster_role, cluster_role_binding, discovery_role, discovery_role_binding, service_account,
};
use crate::registration::validating_webhook_configuration;
use crate::tls::{GeneratedTls, TlsError, generate_tls};
use crate::workload::{deployment, disruption_budget, service};

pub const DEFAULT_NAMESPACE: &str = "ippool-system";
/// Name of every object of the deployment (and of its ServiceAccount and ClusterRole).
pub const NAME: &str = "ippool-admission-webhook";
/// The webhook's name inside the ValidatingWebhookConfiguration; the API server quotes it when it
/// refuses a request ("admission webhook \"…\" denied the request").
pub const WEBHOOK_NAME: &str = "ippools.admission.ippool.dev";
pub const PORT: i32 = 9443;
pub const TIMEOUT_SECONDS: i32 = 5;

/// The image reference used unless `--image` says otherwise: built from `admission-webhook/Containerfile`.
pub fn default_image() -> String {
    format!(
        "localhost/ippool-admission-webhook:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum Tls {
    /// cert-manager issues a CA and a serving certificate and injects the CA into the webhook.
    CertManager,
    /// A Secret with certificates generated now; the CA goes into `caBundle`.
    SelfSigned(GeneratedTls),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    pub image: String,
    pub tls: Tls,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "namespace {0:?} is not a valid Kubernetes namespace (lower-case letters, digits and '-', at most 63, starting and ending alphanumeric)"
    )]
    Namespace(String),
    #[error("the image reference is empty: pass --image REGISTRY/REPOSITORY:TAG")]
    Image,
    #[error(transparent)]
    Certificates(#[from] TlsError),
    #[error("cannot render {kind} as YAML: {reason}")]
    Yaml { kind: String, reason: String },
}

impl Options {
    /// Options with freshly generated TLS material for the Service's DNS names.
    pub fn self_signed(namespace: &str, image: &str) -> Result<Options, ManifestError> {
        check_namespace(namespace)?;
        let tls = generate_tls(&service_dns_names(namespace))?;
        Ok(Options {
            namespace: namespace.to_owned(),
            image: image.to_owned(),
            tls: Tls::SelfSigned(tls),
        })
    }

    pub fn cert_manager(namespace: &str, image: &str) -> Options {
        Options {
            namespace: namespace.to_owned(),
            image: image.to_owned(),
            tls: Tls::CertManager,
        }
    }
}

/// The names the API server may use to reach the Service.
pub fn service_dns_names(namespace: &str) -> Vec<String> {
    vec![
        format!("{NAME}.{namespace}.svc"),
        format!("{NAME}.{namespace}.svc.cluster.local"),
        format!("{NAME}.{namespace}"),
        NAME.to_owned(),
    ]
}

fn check_namespace(namespace: &str) -> Result<(), ManifestError> {
    let valid = !namespace.is_empty()
        && namespace.len() <= 63
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !namespace.starts_with('-')
        && !namespace.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(ManifestError::Namespace(namespace.to_owned()))
    }
}

/// One object of the deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub api_version: String,
    pub kind: String,
    pub value: Value,
}

/// The objects in the order they should be applied: the webhook is registered last.
pub fn documents(options: &Options) -> Result<Vec<Document>, ManifestError> {
    check_namespace(&options.namespace)?;
    if options.image.trim().is_empty() {
        return Err(ManifestError::Image);
    }
    let ns = options.namespace.as_str();
    let mut values: Vec<Value> = vec![
        to_value(&namespace(ns)),
        to_value(&service_account(ns)),
        to_value(&cluster_role()),
        to_value(&cluster_role_binding(ns)),
        to_value(&discovery_role()),
        to_value(&discovery_role_binding(ns)),
    ];
    let (ca_bundle, annotations) = match &options.tls {
        Tls::SelfSigned(tls) => {
            values.push(to_value(&tls_secret(ns, tls)));
            (Some(ByteString(tls.ca_pem.clone().into_bytes())), None)
        }
        Tls::CertManager => {
            values.extend(cert_manager_objects(ns));
            let annotations = BTreeMap::from([(
                "cert-manager.io/inject-ca-from".to_owned(),
                format!("{ns}/{NAME}"),
            )]);
            (None, Some(annotations))
        }
    };
    values.push(to_value(&service(ns)));
    values.push(to_value(&deployment(ns, &options.image)));
    values.push(to_value(&disruption_budget(ns)));
    let client = WebhookClientConfig {
        ca_bundle,
        service: Some(ServiceReference {
            namespace: ns.to_owned(),
            name: NAME.to_owned(),
            path: Some("/validate".to_owned()),
            port: Some(443),
        }),
        url: None,
    };
    values.push(to_value(&validating_webhook_configuration(
        NAME,
        client,
        annotations,
    )));
    Ok(values.into_iter().map(Document::from_value).collect())
}

impl Document {
    pub(crate) fn from_value(value: Value) -> Document {
        Document {
            api_version: value["apiVersion"].as_str().unwrap_or_default().to_owned(),
            kind: value["kind"].as_str().unwrap_or_default().to_owned(),
            value,
        }
    }
}

/// The documents as one YAML stream, with a header saying how to undo it in an emergency.
pub fn render(options: &Options) -> Result<String, ManifestError> {
    render_documents(&documents(options)?)
}

pub fn render_documents(documents: &[Document]) -> Result<String, ManifestError> {
    yaml_stream(
        "# ippool admission webhook: refuses unsafe Calico IP pool changes.\n\
         # Generated by `kubectl-ippool webhook manifest`; see admission-webhook/README.md.\n\
         # Break-glass (the webhook fails closed for IP pool writes when it is down):\n\
         #   kubectl delete validatingwebhookconfiguration ippool-admission-webhook\n",
        documents,
    )
}

/// `header`, then each document as YAML after a `---` line.
pub(crate) fn yaml_stream(header: &str, documents: &[Document]) -> Result<String, ManifestError> {
    let mut out = String::from(header);
    for document in documents {
        out.push_str("---\n");
        let yaml = serde_saphyr::to_string(&document.value).map_err(|e| ManifestError::Yaml {
            kind: document.kind.clone(),
            reason: e.to_string(),
        })?;
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kinds(documents: &[Document]) -> Vec<&str> {
        documents.iter().map(|d| d.kind.as_str()).collect()
    }

    #[test]
    fn self_signed_rendering_carries_the_ca_and_a_matching_secret() {
        let options = Options::self_signed("pools", "example/webhook:1").unwrap();
        let docs = documents(&options).unwrap();
        assert_eq!(
            kinds(&docs),
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Secret",
                "Service",
                "Deployment",
                "PodDisruptionBudget",
                "ValidatingWebhookConfiguration"
            ]
        );
        let Tls::SelfSigned(tls) = &options.tls else {
            unreachable!()
        };
        let webhook = &docs[10].value["webhooks"][0];
        let ca_bundle = webhook["clientConfig"]["caBundle"].as_str().unwrap();
        let decoded = data_encoding::BASE64.decode(ca_bundle.as_bytes()).unwrap();
        assert_eq!(decoded, tls.ca_pem.as_bytes());
        assert_eq!(webhook["clientConfig"]["service"]["namespace"], "pools");
        assert_eq!(webhook["failurePolicy"], "Fail");
        assert_eq!(webhook["sideEffects"], "None");
        assert_eq!(webhook["timeoutSeconds"], 5);
        assert_eq!(docs[6].value["metadata"]["namespace"], "pools");
    }

    #[test]
    fn cert_manager_rendering_asks_for_ca_injection() {
        let docs = documents(&Options::cert_manager(DEFAULT_NAMESPACE, "x/y:1")).unwrap();
        let webhook_config = docs.last().unwrap();
        assert_eq!(
            webhook_config.value["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "ippool-system/ippool-admission-webhook"
        );
        assert!(webhook_config.value["webhooks"][0]["clientConfig"]["caBundle"].is_null());
        assert!(
            !kinds(&docs).contains(&"Secret"),
            "no private key in this rendering"
        );
        assert_eq!(
            kinds(&docs).iter().filter(|k| **k == "Certificate").count(),
            2
        );
    }

    #[test]
    fn discovery_role_is_limited_to_named_config_maps() {
        let docs = documents(&Options::cert_manager(DEFAULT_NAMESPACE, "x/y:1")).unwrap();
        let role = docs.iter().find(|d| d.kind == "Role").unwrap();
        assert_eq!(role.value["metadata"]["namespace"], "kube-system");
        let rules = role.value["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["verbs"], json!(["get"]));
        assert_eq!(
            rules[0]["resourceNames"],
            json!(["kubeadm-config", "kube-proxy"])
        );
        let cluster_role = docs.iter().find(|d| d.kind == "ClusterRole").unwrap();
        for rule in cluster_role.value["rules"].as_array().unwrap() {
            assert_eq!(rule["verbs"], json!(["get", "list", "watch"]));
        }
    }

    #[test]
    fn pods_run_on_the_host_network_as_non_root_with_a_read_only_root() {
        let docs = documents(&Options::cert_manager(DEFAULT_NAMESPACE, "x/y:1")).unwrap();
        let deployment = &docs.iter().find(|d| d.kind == "Deployment").unwrap().value;
        assert_eq!(deployment["spec"]["replicas"], 2);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let container = &pod["containers"][0];
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["image"], "x/y:1");
    }

    #[test]
    fn bad_namespace_and_empty_image_are_refused() {
        let err = documents(&Options::cert_manager("Not_Valid", "x/y:1")).unwrap_err();
        assert!(err.to_string().contains("Not_Valid"), "{err}");
        assert!(matches!(
            documents(&Options::cert_manager("ok", " ")).unwrap_err(),
            ManifestError::Image
        ));
    }

    #[test]
    fn rendering_is_a_yaml_stream_that_reads_back() {
        let docs = documents(&Options::cert_manager(DEFAULT_NAMESPACE, "x/y:1")).unwrap();
        let text = render_documents(&docs).unwrap();
        assert!(
            text.contains("kubectl delete validatingwebhookconfiguration ippool-admission-webhook")
        );
        let parsed: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let original: Vec<Value> = docs.into_iter().map(|d| d.value).collect();
        assert_eq!(parsed, original);
    }

    /// `admission-webhook/deploy/` is the default cert-manager rendering. To refresh it:
    /// `UPDATE_DEPLOY=1 cargo test -p webhook-manifest --lib deploy_manifest_is_current`.
    #[test]
    fn deploy_manifest_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../admission-webhook/deploy/ippool-admission-webhook.yaml"
        );
        let fresh = render(&Options::cert_manager(DEFAULT_NAMESPACE, &default_image())).unwrap();
        if std::env::var_os("UPDATE_DEPLOY").is_some() {
            std::fs::write(path, &fresh).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == fresh,
            "{path} differs from the rendering; run UPDATE_DEPLOY=1 cargo test -p webhook-manifest --lib deploy_manifest_is_current"
        );
    }
}
