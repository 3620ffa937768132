//! What a kubelet writes about a pod: sandbox identity, status patches for a running, ready or
//! stuck pod, and its Warning events (a failed sandbox). (The CNI's annotations are Calico's to write.)

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use sha2::Digest as _;

/// The sandbox container ID of a pod: derived from its UID, so that a restarted sim finds the
/// allocation it made before (same handle) instead of making a second one.
pub fn container_id(pod_uid: &str) -> String {
    let digest = sha2::Sha256::digest(format!("calico-sim-sandbox/{pod_uid}").as_bytes());
    data_encoding::HEXLOWER.encode(&digest)
}

fn now() -> String {
    rfc3339(Timestamp::now())
}

/// Seconds-precision RFC 3339, as the API server stores times.
fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn condition(kind: &str, ok: bool, at: &str, reason: Option<&str>) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": at,
    });
    if let Some(reason) = reason {
        c["reason"] = json!(reason);
    }
    c
}

fn containers(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn init_containers(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// When the pod's containers started, if it is running.
pub fn started_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    status.start_time.as_ref().map(|Time(t)| *t)
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A status patch (JSON merge patch of `status`) for a pod whose sandbox is up with
/// `addresses` on `host_ip`; `started` is when its containers started.
pub fn running(
    pod: &Pod,
    container_id: &str,
    host_ip: Option<IpAddr>,
    addresses: &[IpAddr],
    started: Timestamp,
    ready: bool,
) -> Value {
    let at = now();
    let started_text = rfc3339(started);
    let container_statuses: Vec<Value> = containers(pod)
        .into_iter()
        .enumerate()
        .map(|(i, (name, image))| {
            json!({
                "name": name,
                "image": image,
                "imageID": format!("{image}@sim"),
                "containerID": format!("containerd://{}", &container_id_of(container_id, i)),
                "ready": ready,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": started_text}},
            })
        })
        .collect();
    let init_statuses: Vec<Value> = init_containers(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({
                "name": name,
                "image": image,
                "imageID": format!("{image}@sim"),
                "ready": true,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                          "startedAt": started_text, "finishedAt": started_text}},
            })
        })
        .collect();
    let not_ready = (!ready).then_some("ContainersNotReady");
    let mut status = json!({
        "phase": "Running",
        "podIP": addresses.first().map(IpAddr::to_string),
        "podIPs": addresses.iter().map(|a| json!({"ip": a.to_string()})).collect::<Vec<_>>(),
        "startTime": started_text,
        "conditions": [
            condition("Initialized", true, &at, None),
            condition("Ready", ready, &at, not_ready),
            condition("ContainersReady", ready, &at, not_ready),
            condition("PodScheduled", true, &at, None),
        ],
        "containerStatuses": container_statuses,
    });
    if let Some(ip) = host_ip {
        status["hostIP"] = json!(ip.to_string());
    }
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    json!({ "status": status })
}

/// Each container of the sandbox gets its own ID derived from the sandbox's.
fn container_id_of(sandbox: &str, index: usize) -> String {
    let digest = sha2::Sha256::digest(format!("{sandbox}/{index}").as_bytes());
    data_encoding::HEXLOWER.encode(&digest)
}

/// A status patch for a pod whose sandbox could not be created: Pending, containers waiting in
/// ContainerCreating.
pub fn sandbox_failed(pod: &Pod, host_ip: Option<IpAddr>) -> Value {
    let at = now();
    let container_statuses: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({
                "name": name,
                "image": image,
                "imageID": "",
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            })
        })
        .collect();
    let mut status = json!({
        "phase": "Pending",
        "conditions": [
            condition("Initialized", true, &at, None),
            condition("Ready", false, &at, Some("ContainersNotReady")),
            condition("ContainersReady", false, &at, Some("ContainersNotReady")),
            condition("PodScheduled", true, &at, None),
        ],
        "containerStatuses": container_statuses,
    });
    if let Some(ip) = host_ip {
        status["hostIP"] = json!(ip.to_string());
    }
    json!({ "status": status })
}

/// Whether the pod already shows a sandbox failure (so the patch need not be repeated).
pub fn shows_sandbox_failure(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            !cs.is_empty()
                && cs.iter().all(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("ContainerCreating")
                })
        })
}

/// The Warning event a kubelet records when the CNI plugin fails to set up a sandbox.
pub fn sandbox_failed_event(pod: &Pod, node: &str, container_id: &str, error: &str) -> Event {
    warning_event(
        pod,
        node,
        "FailedCreatePodSandBox",
        &format!(
            "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox \"{container_id}\": plugin type=\"calico\" failed (add): {error}"
        ),
    )
}

/// A Warning event about the pod, as the kubelet of `node` records it.
pub fn warning_event(pod: &Pod, node: &str, reason: &str, message: &str) -> Event {
    let now = Timestamp::now();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{pod_name}.{:x}", now.as_nanosecond())),
            namespace: pod.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Pod".to_owned()),
            name: Some(pod_name),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        type_: Some("Warning".to_owned()),
        source: Some(EventSource {
            component: Some("kubelet".to_owned()),
            host: Some(node.to_owned()),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some("kubelet".to_owned()),
        reporting_instance: Some(node.to_owned()),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1",
                         "annotations": {"other": "x"}},
            "spec": {"containers": [{"name": "app", "image": "nginx"}],
                     "initContainers": [{"name": "init", "image": "busybox"}]}
        }))
        .unwrap()
    }

    #[test]
    fn container_ids_are_stable_per_uid() {
        assert_eq!(container_id("u1"), container_id("u1"));
        assert_ne!(container_id("u1"), container_id("u2"));
        assert_eq!(container_id("u1").len(), 64);
    }

    #[test]
    fn running_status_lists_addresses_containers_and_readiness() {
        let ips: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap()];
        let started = Timestamp::from_second(1_700_000_000).unwrap();
        let patch = running(
            &pod(),
            "c1",
            "198.18.0.1".parse().ok(),
            &ips,
            started,
            false,
        );
        let s = &patch["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.0.0.5");
        assert_eq!(s["podIPs"][0]["ip"], "10.0.0.5");
        assert_eq!(s["hostIP"], "198.18.0.1");
        assert_eq!(s["startTime"], "2023-11-14T22:13:20Z");
        assert_eq!(s["conditions"][1]["type"], "Ready");
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["containerStatuses"][0]["name"], "app");
        assert_eq!(s["containerStatuses"][0]["ready"], false);
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let ready = running(&pod(), "c1", None, &ips, started, true);
        assert_eq!(ready["status"]["conditions"][1]["status"], "True");
        let typed: Pod = serde_json::from_value(json!({"status": ready["status"]})).unwrap();
        assert!(is_ready(&typed));
        assert_eq!(started_at(&typed), Some(started));
    }

    #[test]
    fn failed_sandbox_status_and_event() {
        let patch = sandbox_failed(&pod(), None);
        let typed: Pod = serde_json::from_value(json!({"status": patch["status"]})).unwrap();
        assert!(shows_sandbox_failure(&typed));
        assert!(!is_ready(&typed));
        let event = sandbox_failed_event(
            &pod(),
            "sim-0",
            "c1",
            "no configured Calico pools for node sim-0",
        );
        assert_eq!(event.reason.as_deref(), Some("FailedCreatePodSandBox"));
        assert_eq!(event.involved_object.uid.as_deref(), Some("u1"));
        assert!(
            event
                .message
                .unwrap()
                .ends_with("no configured Calico pools for node sim-0")
        );
        assert!(event.metadata.name.unwrap().starts_with("web-1."));
    }
}
