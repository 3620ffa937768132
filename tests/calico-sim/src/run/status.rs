//! The status kubelet reports for a pod whose containers run as processes: each container's
//! state, last termination, restart count and readiness, and the pod's phase and conditions
//! derived from them.

use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// Seconds-precision RFC 3339, as the API server stores times.
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub started: Timestamp,
    pub finished: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting { reason: String, message: String },
    Running { started: Timestamp },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    pub container_id: String,
    pub ready: bool,
    pub restart_count: i32,
    pub state: State,
    pub last: Option<Terminated>,
}

fn terminated(t: &Terminated, container_id: &str) -> Value {
    json!({"terminated": {"exitCode": t.exit_code, "reason": t.reason,
        "startedAt": rfc3339(t.started), "finishedAt": rfc3339(t.finished),
        "containerID": format!("containerd://{container_id}")}})
}

impl ContainerStatus {
    fn to_json(&self) -> Value {
        let state = match &self.state {
            State::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            State::Running { started } => json!({"running": {"startedAt": rfc3339(*started)}}),
            State::Terminated(t) => terminated(t, &self.container_id),
        };
        let mut status = json!({
            "name": self.name,
            "image": self.image,
            "imageID": format!("{}@sim", self.image),
            "containerID": format!("containerd://{}", self.container_id),
            "ready": self.ready,
            "started": matches!(self.state, State::Running { .. }),
            "restartCount": self.restart_count,
            "state": state,
        });
        if let Some(last) = &self.last {
            status["lastState"] = terminated(last, &self.container_id);
        }
        status
    }
}

/// The pod's phase: Pending until every container has started once, Running while any runs or
/// waits to restart, then Succeeded if every container exited 0, else Failed.
pub fn phase(containers: &[ContainerStatus]) -> &'static str {
    let done = |c: &ContainerStatus| match &c.state {
        State::Terminated(t) => Some(t.exit_code == 0),
        _ => None,
    };
    if containers.iter().all(|c| done(c).is_some()) {
        return if containers.iter().all(|c| done(c) == Some(true)) {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    let never_started = |c: &ContainerStatus| {
        c.restart_count == 0 && c.last.is_none() && matches!(c.state, State::Waiting { .. })
    };
    if containers.iter().any(never_started) {
        "Pending"
    } else {
        "Running"
    }
}

/// The status patch (JSON merge patch) of a pod on `ip` (host network: pod and host address).
pub fn patch(containers: &[ContainerStatus], ip: IpAddr, started: Timestamp) -> Value {
    let at = rfc3339(Timestamp::now());
    let phase = phase(containers);
    let ready = phase == "Running" && containers.iter().all(|c| c.ready);
    let condition = |kind: &str, ok: bool| {
        let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" },
                           "lastProbeTime": null, "lastTransitionTime": at});
        if !ok {
            c["reason"] = json!(if phase == "Running" || phase == "Pending" {
                "ContainersNotReady"
            } else {
                "PodCompleted"
            });
        }
        c
    };
    json!({"status": {
        "phase": phase,
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "hostIP": ip.to_string(),
        "hostIPs": [{"ip": ip.to_string()}],
        "startTime": rfc3339(started),
        "conditions": [
            condition("Initialized", true),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", true),
        ],
        "containerStatuses": containers.iter().map(ContainerStatus::to_json).collect::<Vec<_>>(),
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: State, restarts: i32) -> ContainerStatus {
        ContainerStatus {
            name: "app".into(),
            image: "img".into(),
            container_id: "c".into(),
            ready: false,
            restart_count: restarts,
            state,
            last: None,
        }
    }

    fn exited(code: i32) -> State {
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        State::Terminated(Terminated {
            exit_code: code,
            reason: "Error".into(),
            started: t,
            finished: t,
        })
    }

    #[test]
    fn phases_follow_the_containers() {
        let waiting = State::Waiting {
            reason: "ErrImagePull".into(),
            message: "m".into(),
        };
        assert_eq!(phase(&[container(waiting.clone(), 0)]), "Pending");
        assert_eq!(phase(&[container(waiting, 1)]), "Running");
        let running = State::Running {
            started: Timestamp::now(),
        };
        assert_eq!(
            phase(&[container(running, 0), container(exited(0), 0)]),
            "Running"
        );
        assert_eq!(phase(&[container(exited(0), 0)]), "Succeeded");
        assert_eq!(
            phase(&[container(exited(0), 0), container(exited(137), 0)]),
            "Failed"
        );
    }

    #[test]
    fn patch_reports_address_readiness_and_last_state() {
        let mut c = container(
            State::Running {
                started: Timestamp::now(),
            },
            2,
        );
        c.ready = true;
        c.last = Some(Terminated {
            exit_code: 137,
            reason: "Error".into(),
            started: Timestamp::now(),
            finished: Timestamp::now(),
        });
        let p = patch(&[c], "198.18.0.9".parse().unwrap(), Timestamp::now());
        let s = &p["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "198.18.0.9");
        assert_eq!(s["hostIP"], "198.18.0.9");
        assert_eq!(s["conditions"][1]["status"], "True");
        assert_eq!(s["containerStatuses"][0]["restartCount"], 2);
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            137
        );
    }
}
