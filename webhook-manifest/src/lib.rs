//! The deployment, rendered: namespace, least-privilege RBAC, a host-network Deployment with a
//! PodDisruptionBudget, the Service and the ValidatingWebhookConfiguration, with TLS either from
//! cert-manager (CA injection) or from a CA and serving certificate generated on the spot.
//!
//! `admission-webhook/deploy/` holds the cert-manager rendering with the defaults; a test keeps it
//! equal to what this crate renders. It is a crate of its own so that the plugin's `webhook
//! manifest` links no server.

pub mod tls;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    Namespace, ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource,
    SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use crate::tls::{GeneratedTls, TlsError, generate_tls};

pub const DEFAULT_NAMESPACE: &str = "ippool-system";
/// Name of every object of the deployment (and of its ServiceAccount and ClusterRole).
pub const NAME: &str = "ippool-admission-webhook";
/// The webhook's name inside the ValidatingWebhookConfiguration; the API server quotes it when it
/// refuses a request ("admission webhook \"…\" denied the request").
pub const WEBHOOK_NAME: &str = "ippools.admission.ippool.dev";
pub const PORT: i32 = 9443;
pub const TIMEOUT_SECONDS: i32 = 5;
const TLS_SECRET: &str = "ippool-admission-webhook-tls";
const TLS_MOUNT: &str = "/etc/ippool-admission-webhook/tls";
const KUBE_SYSTEM: &str = ippool_cluster::discovery::KUBE_SYSTEM;
const APP_LABEL: &str = "app.kubernetes.io/name";

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
    Ok(values
        .into_iter()
        .map(|value| Document {
            api_version: value["apiVersion"].as_str().unwrap_or_default().to_owned(),
            kind: value["kind"].as_str().unwrap_or_default().to_owned(),
            value,
        })
        .collect())
}

/// The documents as one YAML stream, with a header saying how to undo it in an emergency.
pub fn render(options: &Options) -> Result<String, ManifestError> {
    render_documents(&documents(options)?)
}

pub fn render_documents(documents: &[Document]) -> Result<String, ManifestError> {
    let mut out = String::from(
        "# ippool admission webhook: refuses unsafe Calico IP pool changes.\n\
         # Generated by `kubectl-ippool webhook manifest`; see admission-webhook/README.md.\n\
         # Break-glass (the webhook fails closed for IP pool writes when it is down):\n\
         #   kubectl delete validatingwebhookconfiguration ippool-admission-webhook\n",
    );
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

/// The IP pool rules the webhook registers for: both groups, every operation that changes a pool.
pub fn pool_rules() -> Vec<RuleWithOperations> {
    [("crd.projectcalico.org", "v1"), ("projectcalico.org", "v3")]
        .into_iter()
        .map(|(group, version)| RuleWithOperations {
            api_groups: Some(vec![group.to_owned()]),
            api_versions: Some(vec![version.to_owned()]),
            operations: Some(vec![
                "CREATE".to_owned(),
                "UPDATE".to_owned(),
                "DELETE".to_owned(),
            ]),
            resources: Some(vec!["ippools".to_owned()]),
            scope: Some("Cluster".to_owned()),
        })
        .collect()
}

/// The registration, for any way of reaching the webhook (Service here, URL in tests).
pub fn validating_webhook_configuration(
    name: &str,
    client_config: WebhookClientConfig,
    annotations: Option<BTreeMap<String, String>>,
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels()),
            annotations,
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: WEBHOOK_NAME.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config,
            rules: Some(pool_rules()),
            failure_policy: Some("Fail".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            ..ValidatingWebhook::default()
        }]),
    }
}

fn to_value<T: serde::Serialize>(object: &T) -> Value {
    // k8s-openapi types and plain maps only: conversion to a JSON value cannot fail.
    serde_json::to_value(object).expect("Kubernetes objects convert to JSON")
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_LABEL.to_owned(), NAME.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "ippool".to_owned()),
    ])
}

fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(APP_LABEL.to_owned(), NAME.to_owned())])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn namespace(ns: &str) -> Namespace {
    Namespace {
        metadata: meta(ns, None),
        ..Namespace::default()
    }
}

fn service_account(ns: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(NAME, Some(ns)),
        // The webhook uses its token for the watches; nothing else in the pod needs one.
        automount_service_account_token: Some(true),
        ..ServiceAccount::default()
    }
}

/// Read-only access to exactly what the verdicts depend on.
fn cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(NAME, None),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(strings(&["crd.projectcalico.org"])),
                resources: Some(strings(&["ippools", "ipamblocks"])),
                verbs: strings(&["get", "list", "watch"]),
                ..PolicyRule::default()
            },
            PolicyRule {
                api_groups: Some(strings(&["projectcalico.org"])),
                resources: Some(strings(&["ippools"])),
                verbs: strings(&["get", "list", "watch"]),
                ..PolicyRule::default()
            },
        ]),
        ..ClusterRole::default()
    }
}

fn subject(ns: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: NAME.to_owned(),
        namespace: Some(ns.to_owned()),
        ..Subject::default()
    }
}

fn cluster_role_binding(ns: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(NAME, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: NAME.to_owned(),
        },
        subjects: Some(vec![subject(ns)]),
    }
}

/// CIDR discovery reads two ConfigMaps in kube-system, by name, and nothing else there.
fn discovery_role() -> Role {
    use ippool_cluster::discovery::{KUBE_PROXY_CONFIG, KUBEADM_CONFIG};
    Role {
        metadata: meta(&format!("{NAME}-cidr-discovery"), Some(KUBE_SYSTEM)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(strings(&[""])),
            resources: Some(strings(&["configmaps"])),
            resource_names: Some(strings(&[KUBEADM_CONFIG, KUBE_PROXY_CONFIG])),
            verbs: strings(&["get"]),
            ..PolicyRule::default()
        }]),
    }
}

fn discovery_role_binding(ns: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(&format!("{NAME}-cidr-discovery"), Some(KUBE_SYSTEM)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: format!("{NAME}-cidr-discovery"),
        },
        subjects: Some(vec![subject(ns)]),
    }
}

fn tls_secret(ns: &str, tls: &GeneratedTls) -> Secret {
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
fn cert_manager_objects(ns: &str) -> Vec<Value> {
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

fn service(ns: &str) -> Service {
    Service {
        metadata: meta(NAME, Some(ns)),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels()),
            ports: Some(vec![ServicePort {
                name: Some("https".to_owned()),
                port: 443,
                target_port: Some(IntOrString::String("https".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn https_probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("https".to_owned()),
            scheme: Some("HTTPS".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn deployment(ns: &str, image: &str) -> Deployment {
    let container = Container {
        name: "webhook".to_owned(),
        image: Some(image.to_owned()),
        args: Some(vec![
            format!("--listen=0.0.0.0:{PORT}"),
            // Host network: its own address, not the node's every one (and not a port shared
            // with whatever else the node runs on other addresses).
            "--bind-address=$(POD_IP)".to_owned(),
            format!("--tls-cert={TLS_MOUNT}/tls.crt"),
            format!("--tls-key={TLS_MOUNT}/tls.key"),
            "--log-json".to_owned(),
        ]),
        env: Some(vec![
            EnvVar {
                name: "POD_IP".to_owned(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "status.podIP".to_owned(),
                        ..ObjectFieldSelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
            EnvVar {
                name: "RUST_LOG".to_owned(),
                value: Some("info".to_owned()),
                ..EnvVar::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("https".to_owned()),
            container_port: PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(https_probe("/readyz", 5)),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(5),
            ..https_probe("/healthz", 10)
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("20m".to_owned())),
                ("memory".to_owned(), Quantity("32Mi".to_owned())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("256Mi".to_owned()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(strings(&["ALL"])),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "tls".to_owned(),
            mount_path: TLS_MOUNT.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let control_plane_toleration = |key: &str| Toleration {
        key: Some(key.to_owned()),
        operator: Some("Exists".to_owned()),
        effect: Some("NoSchedule".to_owned()),
        ..Toleration::default()
    };
    let pod = PodSpec {
        service_account_name: Some(NAME.to_owned()),
        // Pod networking is what a broken IPAM takes away; the webhook must not depend on it.
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".to_owned()),
        priority_class_name: Some("system-cluster-critical".to_owned()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        // Host network means one replica per node can hold the port.
        affinity: Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(selector_labels()),
                        ..LabelSelector::default()
                    }),
                    topology_key: "kubernetes.io/hostname".to_owned(),
                    ..PodAffinityTerm::default()
                }]),
                ..PodAntiAffinity::default()
            }),
            ..Affinity::default()
        }),
        tolerations: Some(vec![
            control_plane_toleration("node-role.kubernetes.io/control-plane"),
            control_plane_toleration("node-role.kubernetes.io/master"),
        ]),
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "tls".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(TLS_SECRET.to_owned()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    };
    Deployment {
        metadata: meta(NAME, Some(ns)),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(selector_labels()),
                ..LabelSelector::default()
            },
            // No surge: a surge pod would need a node whose port is free, and anti-affinity may
            // leave none.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn disruption_budget(ns: &str) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(NAME, Some(ns)),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
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
