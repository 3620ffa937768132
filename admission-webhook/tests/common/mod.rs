//! Fixtures shared by the router and TLS tests: AdmissionReview bodies and a cluster context.
#![allow(dead_code)] // each test binary uses its own subset

use ippool_rules::context::{ClusterCidrs, ClusterContext, Strength};
use ippool_rules::model::{IpPool, IpamBlock};
use serde_json::{Value, json};

pub const V1: &str = "crd.projectcalico.org/v1";
pub const V3: &str = "projectcalico.org/v3";

/// An IPPool object as the API server sends it (with server-set metadata).
pub fn pool(api_version: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "IPPool",
        "metadata": {
            "name": name,
            "uid": format!("uid-{name}"),
            "resourceVersion": "100",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": api_version}]
        },
        "spec": spec
    })
}

/// An `admission.k8s.io/v1` AdmissionReview for an IPPool of `api_version`.
pub fn review(
    operation: &str,
    api_version: &str,
    object: Option<&Value>,
    old_object: Option<&Value>,
    user: &str,
    groups: &[&str],
) -> Value {
    let (group, version) = api_version.split_once('/').unwrap();
    let name = object
        .or(old_object)
        .and_then(|o| o["metadata"]["name"].as_str())
        .unwrap_or("");
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("review-{operation}-{name}"),
            "kind": {"group": group, "version": version, "kind": "IPPool"},
            "resource": {"group": group, "version": version, "resource": "ippools"},
            "requestKind": {"group": group, "version": version, "kind": "IPPool"},
            "requestResource": {"group": group, "version": version, "resource": "ippools"},
            "name": name,
            "operation": operation,
            "userInfo": {"username": user, "uid": "u-1", "groups": groups,
                         "extra": {"authentication.kubernetes.io/credential-id": ["JTI=secret-token-id"]}},
            "object": object,
            "oldObject": old_object,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

pub fn alice(operation: &str, object: Option<&Value>, old: Option<&Value>) -> Value {
    review(
        operation,
        V1,
        object,
        old,
        "alice",
        &["system:authenticated"],
    )
}

fn block(cidr: &str, node: &str, pod_addresses: usize) -> IpamBlock {
    let size = 64;
    let mut allocations = vec![Value::Null; size];
    let mut attributes = Vec::new();
    for (i, slot) in allocations.iter_mut().enumerate().take(pod_addresses) {
        *slot = json!(i);
        attributes.push(json!({
            "handle_id": format!("k8s-pod-network.container{i}"),
            "secondary": {"namespace": "default", "node": node, "pod": format!("pod-{i}")}
        }));
    }
    let unallocated: Vec<usize> = (pod_addresses..size).collect();
    serde_json::from_value(json!({
        "apiVersion": V1, "kind": "IPAMBlock",
        "metadata": {"name": cidr.replace(['.', '/'], "-"), "resourceVersion": "7"},
        "spec": {"cidr": cidr, "affinity": format!("host:{node}"), "allocations": allocations,
                 "unallocated": unallocated, "attributes": attributes, "strictAffinity": false}
    }))
    .unwrap()
}

pub fn typed_pool(object: &Value) -> IpPool {
    serde_json::from_value(object.clone()).unwrap()
}

/// The cluster the table cases run against: pod CIDR 10.0.0.0/8 (authoritative), service CIDR
/// 10.96.0.0/12; pool `default` (10.10.0.0/16, enabled, pods in it), `draining` (10.20.0.0/16,
/// disabled, pods still in it), `empty` (10.30.0.0/16, disabled, nothing allocated).
pub fn cluster() -> ClusterContext {
    ClusterContext {
        pools: Some(vec![
            typed_pool(&default_pool()),
            typed_pool(&draining_pool()),
            typed_pool(&empty_pool()),
        ]),
        blocks: Some(vec![
            block("10.10.0.0/26", "node-a", 5),
            block("10.20.0.0/26", "node-b", 2),
            block("10.30.0.0/26", "node-b", 0),
        ]),
        cluster_cidrs: Some(ClusterCidrs {
            cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            source: "kube-system/kubeadm-config".to_owned(),
            strength: Strength::Strong,
        }),
        service_cidrs: Some(vec!["10.96.0.0/12".parse().unwrap()]),
        nodes: None,
        workloads_present: Some(true),
    }
}

pub fn default_pool() -> Value {
    pool(
        V1,
        "default",
        json!({"cidr": "10.10.0.0/16", "blockSize": 26, "ipipMode": "Always", "natOutgoing": true}),
    )
}

pub fn draining_pool() -> Value {
    pool(
        V1,
        "draining",
        json!({"cidr": "10.20.0.0/16", "blockSize": 26, "ipipMode": "Always", "disabled": true}),
    )
}

pub fn empty_pool() -> Value {
    pool(
        V1,
        "empty",
        json!({"cidr": "10.30.0.0/16", "blockSize": 26, "ipipMode": "Always", "disabled": true}),
    )
}

/// A copy of `object` with `spec.<field>` set to `value` (and a newer resourceVersion).
pub fn with_spec(object: &Value, field: &str, value: Value) -> Value {
    let mut copy = object.clone();
    copy["spec"][field] = value;
    copy["metadata"]["resourceVersion"] = json!("101");
    copy
}
