// Shared by both targets: a state with pools and blocks, so that the rules' context paths run.

use std::sync::{Arc, OnceLock};

use admission_webhook::state::{AppState, Exemptions, FixedContext};
use ippool_rules::context::{ClusterCidrs, ClusterContext, Strength};
use serde_json::json;

pub fn state() -> &'static AppState {
    static STATE: OnceLock<AppState> = OnceLock::new();
    STATE.get_or_init(|| {
        let pool = |name: &str, cidr: &str, disabled: bool| {
            serde_json::from_value(json!({
                "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
                "metadata": {"name": name, "resourceVersion": "1"},
                "spec": {"cidr": cidr, "blockSize": 26, "ipipMode": "Always", "disabled": disabled}
            }))
            .unwrap()
        };
        let block = serde_json::from_value(json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock",
            "metadata": {"name": "10-20-0-0-26"},
            "spec": {"cidr": "10.20.0.0/26", "affinity": "host:n1",
                     "allocations": [0, null, null, null], "unallocated": [1, 2, 3],
                     "attributes": [{"handle_id": "k8s-pod-network.c1", "secondary": {"pod": "p"}}]}
        }))
        .unwrap();
        let context = ClusterContext {
            pools: Some(vec![
                pool("default", "10.10.0.0/16", false),
                pool("draining", "10.20.0.0/16", true),
            ]),
            blocks: Some(vec![block]),
            cluster_cidrs: Some(ClusterCidrs {
                cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                source: "fuzz".to_owned(),
                strength: Strength::Strong,
            }),
            service_cidrs: Some(vec!["10.96.0.0/12".parse().unwrap()]),
            nodes: None,
            workloads_present: Some(true),
        };
        AppState::new(
            Arc::new(FixedContext::synced(context)),
            Exemptions::new(["group:exempt".parse().unwrap()]),
        )
    })
}

/// Judges a body; an answer must serialise to an AdmissionReview that reads back.
pub fn judge(body: &[u8]) {
    if let Ok(answer) = admission_webhook::handlers::review(body, state()) {
        let json = answer.into_json();
        let back: serde_json::Value = serde_json::from_slice(&json).expect("the answer is JSON");
        assert!(back["response"]["allowed"].is_boolean());
    }
}
