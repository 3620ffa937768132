//! The webhook's pods: a host-network Deployment of two, its Service and its
//! PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::certificates::TLS_SECRET;
use crate::objects::{labels, meta, selector_labels, strings};
use crate::{NAME, PORT};

const TLS_MOUNT: &str = "/etc/ippool-admission-webhook/tls";
/// How long a replica asked to stop goes on answering, not ready (`--shutdown-delay`).
const SHUTDOWN_DELAY_SECONDS: i64 = 5;

pub(crate) fn service(ns: &str) -> Service {
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

/// The webhook's one container: read-only, no capabilities, serving on the pod's own address.
fn container(image: &str) -> Container {
    Container {
        name: "webhook".to_owned(),
        image: Some(image.to_owned()),
        args: Some(vec![
            format!("--listen=0.0.0.0:{PORT}"),
            // Host network: its own address, not the node's every one (and not a port shared
            // with whatever else the node runs on other addresses).
            "--bind-address=$(POD_IP)".to_owned(),
            format!("--tls-cert={TLS_MOUNT}/tls.crt"),
            format!("--tls-key={TLS_MOUNT}/tls.key"),
            // Measured (admission-webhook/tests/availability.rs): without it, a replica deleted
            // under load failed the API server's calls that reached it before it left the
            // endpoints; with it, none.
            format!("--shutdown-delay={SHUTDOWN_DELAY_SECONDS}s"),
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
    }
}

fn pod_spec(container: Container) -> PodSpec {
    let control_plane_toleration = |key: &str| Toleration {
        key: Some(key.to_owned()),
        operator: Some("Exists".to_owned()),
        effect: Some("NoSchedule".to_owned()),
        ..Toleration::default()
    };
    PodSpec {
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
        // The shutdown delay, then the open connections' last answers.
        termination_grace_period_seconds: Some(SHUTDOWN_DELAY_SECONDS + 10),
        volumes: Some(vec![Volume {
            name: "tls".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(TLS_SECRET.to_owned()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    }
}

pub(crate) fn deployment(ns: &str, image: &str) -> Deployment {
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
                spec: Some(pod_spec(container(image))),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

pub(crate) fn disruption_budget(ns: &str) -> PodDisruptionBudget {
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
