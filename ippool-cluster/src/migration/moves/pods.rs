//! Pods as the moves see them: the addresses they hold, whether they are in a pool, and the keys
//! they are filed under in the pods mirror (their workload and their controller).

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

use crate::migration::mirror::Mirror;
use ippool_ipam::names::{ANNOTATION_POD_IP, ANNOTATION_POD_IPS};
use ippool_ipam::plan::WorkloadRef;
use ippool_ipam::snapshot::OwnerKind;

/// The addresses a pod holds: its status, else (before the kubelet reports) what Calico's CNI
/// wrote into its annotations.
pub fn pod_addresses(pod: &Pod) -> Vec<IpAddr> {
    let status = pod.status.as_ref();
    let mut out: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().filter_map(|ip| ip.ip.parse().ok()).collect())
        .unwrap_or_default();
    if out.is_empty()
        && let Some(ip) = status.and_then(|s| s.pod_ip.as_deref())
        && let Ok(ip) = ip.parse()
    {
        out.push(ip);
    }
    if out.is_empty() {
        let annotations = pod.metadata.annotations.as_ref();
        let written = annotations
            .and_then(|a| a.get(ANNOTATION_POD_IPS))
            .or_else(|| annotations.and_then(|a| a.get(ANNOTATION_POD_IP)));
        if let Some(written) = written {
            out.extend(
                written
                    .split(',')
                    .filter_map(|a| a.trim().split('/').next())
                    .filter_map(|a| a.parse::<IpAddr>().ok()),
            );
        }
    }
    out
}

pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub(super) fn pod_is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

pub(super) fn pod_is_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// Whether the pod holds an address in `pool` (live, on the pod network).
pub fn pod_in(pod: &Pod, pool: &IpNet) -> Option<IpAddr> {
    if pod_is_finished(pod) || pod_is_host_network(pod) {
        return None;
    }
    pod_addresses(pod).into_iter().find(|a| pool.contains(a))
}

pub(super) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The key a workload's pods are filed under in the pods mirror.
pub fn workload_key(workload: &WorkloadRef) -> String {
    format!(
        "wl:{}/{}/{}",
        workload.namespace,
        workload.kind.as_str(),
        workload.name
    )
}

pub(super) fn controller_key(uid: &str) -> String {
    format!("ctl:{uid}")
}

pub(super) fn controller_of(pod: &Pod) -> Option<&OwnerReference> {
    let refs = pod.metadata.owner_references.as_ref()?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
}

/// The keys a pod is filed under: its workload (a ReplicaSet named `<deployment>-<pod-template-hash>`
/// counts as its Deployment, as Kubernetes names them) and its controller's uid.
pub fn pod_keys(pod: &Pod) -> Vec<String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(owner) = controller_of(pod) else {
        return vec![workload_key(&WorkloadRef {
            namespace,
            kind: OwnerKind::Bare,
            name: pod.metadata.name.clone().unwrap_or_default(),
        })];
    };
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    let (kind, name) = match owner.kind.as_str() {
        "ReplicaSet" => match hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))) {
            Some(deployment) => (OwnerKind::Deployment, deployment.to_owned()),
            None => (OwnerKind::ReplicaSet, owner.name.clone()),
        },
        "Deployment" => (OwnerKind::Deployment, owner.name.clone()),
        "StatefulSet" => (OwnerKind::StatefulSet, owner.name.clone()),
        "DaemonSet" => (OwnerKind::DaemonSet, owner.name.clone()),
        "Job" => (OwnerKind::Job, owner.name.clone()),
        "CronJob" => (OwnerKind::CronJob, owner.name.clone()),
        other => (OwnerKind::Other(other.to_owned()), owner.name.clone()),
    };
    vec![
        workload_key(&WorkloadRef {
            namespace,
            kind,
            name,
        }),
        controller_key(&owner.uid),
    ]
}

/// Keys of namespaced objects in the workload and budget mirrors.
pub fn name_key<K: Resource>(object: &K) -> Vec<String> {
    let meta = object.meta();
    vec![format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )]
}

/// Pods of the plan still in the old pool, by workload, for the verify step's message.
pub fn pods_left(
    pods: &Mirror<Pod>,
    old: &IpNet,
    in_scope: impl Fn(&Pod) -> bool,
) -> Vec<(String, IpAddr)> {
    let mut left: Vec<(String, IpAddr)> = pods
        .all()
        .iter()
        .filter(|p| in_scope(p))
        .filter_map(|p| pod_in(p, old).map(|a| (pod_key(p), a)))
        .collect();
    left.sort();
    left
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pods_are_filed_under_their_workload_and_controller() {
        let web = pod(
            json!({"metadata": {"name": "web-5d4f-x", "namespace": "shop", "uid": "p1",
            "labels": {"pod-template-hash": "5d4f"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
                                 "uid": "rs1", "controller": true}]}}),
        );
        assert_eq!(
            pod_keys(&web),
            vec!["wl:shop/Deployment/web".to_owned(), "ctl:rs1".to_owned()]
        );
        let loose = pod(
            json!({"metadata": {"name": "loose-x", "namespace": "shop", "uid": "p2",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "loose",
                                 "uid": "rs2", "controller": true}]}}),
        );
        assert_eq!(pod_keys(&loose)[0], "wl:shop/ReplicaSet/loose");
        let bare = pod(json!({"metadata": {"name": "debug", "namespace": "default", "uid": "p3"}}));
        assert_eq!(pod_keys(&bare), vec!["wl:default/<none>/debug".to_owned()]);
        assert_eq!(
            workload_key(&WorkloadRef {
                namespace: "shop".into(),
                kind: OwnerKind::Deployment,
                name: "web".into()
            }),
            "wl:shop/Deployment/web"
        );
    }

    #[test]
    fn addresses_from_status_or_calico_annotations() {
        let pending = pod(json!({
            "metadata": {"name": "p", "annotations": {"cni.projectcalico.org/podIPs": "10.0.0.5/32,fd00::5/128"}},
            "status": {"phase": "Pending"}
        }));
        assert_eq!(
            pod_addresses(&pending),
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        let old: IpNet = "10.0.0.0/16".parse().unwrap();
        assert!(pod_in(&pending, &old).is_some());
        let done = pod(
            json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded", "podIP": "10.0.0.6"}}),
        );
        assert!(pod_in(&done, &old).is_none());
    }
}
