//! `kubectl ippool policy` on the real API server, differentially: each case of the table is
//! judged by the webhook's router (in-process, on a cluster with no other pools or blocks, so
//! only the stateless rules can fire) and sent to the API server with the generated
//! ValidatingAdmissionPolicy installed and no webhook running. Verdicts must agree; a denial must
//! carry a code the webhook also gives, and the fix. The Tigera operator may delete an enabled
//! pool it owns. Runs in the compatibility pass on the oldest supported API server as well.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use admission_webhook::server::router;
use admission_webhook::state::{AppState, Exemptions, FixedContext};
use axum::body::Body;
use axum::http::{Method, Request};
use common::*;
use harness::{ControlPlane, workspace_bin};
use ippool_rules::context::{ClusterCidrs, ClusterContext, Strength};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Client, Config};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const OPERATOR: &str = "system:serviceaccount:tigera-operator:tigera-operator";

/// What the policy is given, and the webhook's context: the same CIDRs, nothing else.
fn context() -> ClusterContext {
    ClusterContext {
        pools: Some(Vec::new()),
        blocks: Some(Vec::new()),
        cluster_cidrs: Some(ClusterCidrs {
            cidrs: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/48".parse().unwrap()],
            source: "--cluster-cidr flag".to_owned(),
            strength: Strength::Strong,
        }),
        service_cidrs: Some(vec!["10.96.0.0/12".parse().unwrap()]),
        nodes: None,
        workloads_present: Some(false),
    }
}

enum Case {
    Create(Value),
    /// The old pool (created first), then the new one.
    Update(Value, Value),
    /// The pool (created first), then deleted.
    Delete(Value),
}

fn p(name: &str, spec: Value) -> Value {
    pool(V1, name, spec)
}

fn cases() -> Vec<(&'static str, Case)> {
    use Case::*;
    let lb = json!({"cidr": "10.3.0.0/24", "allowedUses": ["LoadBalancer"]});
    let base = json!({"cidr": "10.5.0.0/16", "blockSize": 26, "ipipMode": "Always"});
    vec![
        (
            "a sound pool",
            Create(p("sound", json!({"cidr": "10.1.0.0/16"}))),
        ),
        (
            "a sound IPv6 pool",
            Create(p(
                "sound6",
                json!({"cidr": "fd00:0:0:1::/64", "vxlanMode": "Always"}),
            )),
        ),
        ("an empty CIDR", Create(p("empty", json!({"cidr": ""})))),
        (
            "an address without prefix",
            Create(p("bare", json!({"cidr": "10.1.0.0"}))),
        ),
        (
            "host bits set",
            Create(p("hostbits", json!({"cidr": "10.1.0.1/16"}))),
        ),
        (
            "blockSize 33",
            Create(p("bs33", json!({"cidr": "10.1.0.0/16", "blockSize": 33}))),
        ),
        (
            "blockSize 19",
            Create(p("bs19", json!({"cidr": "10.1.0.0/16", "blockSize": 19}))),
        ),
        (
            "IPv6 blockSize 112",
            Create(p(
                "bs112",
                json!({"cidr": "fd00:0:0:1::/64", "blockSize": 112}),
            )),
        ),
        (
            "blockSize 0 is the default",
            Create(p("bs0", json!({"cidr": "10.1.0.0/16", "blockSize": 0}))),
        ),
        (
            "a pool smaller than a block",
            Create(p("small", json!({"cidr": "10.1.0.0/28"}))),
        ),
        (
            "a small disabled pool",
            Create(p(
                "small-off",
                json!({"cidr": "10.1.0.0/28", "disabled": true}),
            )),
        ),
        (
            "IPIP and VXLAN",
            Create(p(
                "both",
                json!({"cidr": "10.1.0.0/16", "ipipMode": "Always", "vxlanMode": "CrossSubnet"}),
            )),
        ),
        (
            "IPIP on IPv6",
            Create(p(
                "ipip6",
                json!({"cidr": "fd00:0:0:1::/64", "ipipMode": "Always"}),
            )),
        ),
        (
            "the link-local range",
            Create(p(
                "linklocal",
                json!({"cidr": "169.254.0.0/16", "allowedUses": ["Tunnel"]}),
            )),
        ),
        (
            "a misspelt mode",
            Create(p(
                "mode",
                json!({"cidr": "10.1.0.0/16", "vxlanMode": "always"}),
            )),
        ),
        (
            "an empty mode is Never",
            Create(p(
                "mode-empty",
                json!({"cidr": "10.1.0.0/16", "ipipMode": ""}),
            )),
        ),
        (
            "an unknown use",
            Create(p(
                "use",
                json!({"cidr": "10.1.0.0/16", "allowedUses": ["Workload", "Pods"]}),
            )),
        ),
        (
            "the deprecated ipip",
            Create(p(
                "ipip-v1",
                json!({"cidr": "10.1.0.0/16", "ipip": {"enabled": true}}),
            )),
        ),
        (
            "the deprecated nat-outgoing",
            Create(p(
                "nat-v1",
                json!({"cidr": "10.1.0.0/16", "nat-outgoing": true}),
            )),
        ),
        (
            "nat-outgoing false",
            Create(p(
                "nat-v1-off",
                json!({"cidr": "10.1.0.0/16", "nat-outgoing": false}),
            )),
        ),
        (
            "global() in nodeSelector",
            Create(p(
                "global",
                json!({"cidr": "10.1.0.0/16", "nodeSelector": "global()"}),
            )),
        ),
        ("a LoadBalancer pool", Create(p("lb", lb.clone()))),
        (
            "LoadBalancer with IPIP",
            Create(p(
                "lb-ipip",
                json!({"cidr": "10.3.0.0/24", "allowedUses": ["LoadBalancer"], "ipipMode": "CrossSubnet"}),
            )),
        ),
        (
            "LoadBalancer with Workload",
            Create(p(
                "lb-wl",
                json!({"cidr": "10.3.0.0/24", "allowedUses": ["LoadBalancer", "Workload"]}),
            )),
        ),
        (
            "LoadBalancer on some nodes",
            Create(p(
                "lb-sel",
                json!({"cidr": "10.3.0.0/24", "allowedUses": ["LoadBalancer"], "nodeSelector": "zone == 'a'"}),
            )),
        ),
        (
            "LoadBalancer not exported",
            Create(p(
                "lb-bgp",
                json!({"cidr": "10.3.0.0/24", "allowedUses": ["LoadBalancer"], "disableBGPExport": true}),
            )),
        ),
        (
            "Tunnel with a namespaceSelector",
            Create(p(
                "tunnel-ns",
                json!({"cidr": "10.1.0.0/16", "allowedUses": ["Tunnel"], "namespaceSelector": "all()"}),
            )),
        ),
        (
            "default uses with a namespaceSelector",
            Create(p(
                "ns",
                json!({"cidr": "10.1.0.0/16", "namespaceSelector": "team == 'a'"}),
            )),
        ),
        (
            "outside the pod CIDR",
            Create(p("outside", json!({"cidr": "192.168.0.0/16"}))),
        ),
        (
            "a Tunnel pool outside the pod CIDR",
            Create(p(
                "outside-tunnel",
                json!({"cidr": "192.168.0.0/16", "allowedUses": ["Tunnel"]}),
            )),
        ),
        (
            "IPv6 outside the pod CIDR",
            Create(p("outside6", json!({"cidr": "fd01::/64"}))),
        ),
        (
            "over the service CIDR",
            Create(p("services", json!({"cidr": "10.96.0.0/16"}))),
        ),
        (
            "around the service CIDR",
            Create(p("services-wide", json!({"cidr": "10.64.0.0/10"}))),
        ),
        (
            "loopback",
            Create(p(
                "loopback",
                json!({"cidr": "127.0.0.0/16", "allowedUses": ["Tunnel"]}),
            )),
        ),
        (
            "multicast",
            Create(p(
                "multicast",
                json!({"cidr": "224.0.0.0/8", "allowedUses": ["LoadBalancer"]}),
            )),
        ),
        (
            "IPv6 multicast",
            Create(p(
                "multicast6",
                json!({"cidr": "ff00::/64", "allowedUses": ["Tunnel"], "vxlanMode": "Never"}),
            )),
        ),
        (
            "a CIDR edit",
            Update(
                p("edit-cidr", base.clone()),
                p(
                    "edit-cidr",
                    json!({"cidr": "10.6.0.0/16", "blockSize": 26, "ipipMode": "Always"}),
                ),
            ),
        ),
        (
            "a blockSize edit",
            Update(
                p("edit-bs", base.clone()),
                p(
                    "edit-bs",
                    json!({"cidr": "10.5.0.0/16", "blockSize": 24, "ipipMode": "Always"}),
                ),
            ),
        ),
        (
            "blockSize written out as its default",
            Update(
                p("edit-default", json!({"cidr": "10.5.0.0/16"})),
                p(
                    "edit-default",
                    json!({"cidr": "10.5.0.0/16", "blockSize": 26}),
                ),
            ),
        ),
        (
            "the CIDR written otherwise",
            Update(
                p("edit-v6", json!({"cidr": "fd00:0:0:5::/64"})),
                p("edit-v6", json!({"cidr": "fd00:0:0:5:0::/64"})),
            ),
        ),
        (
            "natOutgoing on",
            Update(
                p("edit-nat", base.clone()),
                p(
                    "edit-nat",
                    json!({"cidr": "10.5.0.0/16", "blockSize": 26, "ipipMode": "Always", "natOutgoing": true}),
                ),
            ),
        ),
        (
            "disabling",
            Update(
                p("edit-off", base.clone()),
                p(
                    "edit-off",
                    json!({"cidr": "10.5.0.0/16", "blockSize": 26, "ipipMode": "Always", "disabled": true}),
                ),
            ),
        ),
        (
            "LoadBalancer to Workload",
            Update(
                p("edit-lb", lb),
                p(
                    "edit-lb",
                    json!({"cidr": "10.3.0.0/24", "allowedUses": ["Workload"]}),
                ),
            ),
        ),
        (
            "an update that breaks a rule",
            Update(
                p("edit-bad", base.clone()),
                p(
                    "edit-bad",
                    json!({"cidr": "10.5.0.0/16", "blockSize": 26, "ipipMode": "Always", "vxlanMode": "Always"}),
                ),
            ),
        ),
        ("deleting an enabled pool", Delete(p("del-on", base))),
        (
            "deleting a disabled pool",
            Delete(p(
                "del-off",
                json!({"cidr": "10.7.0.0/16", "disabled": true}),
            )),
        ),
    ]
}

/// The webhook's verdict: whether it allows, and its denial message.
async fn webhook_verdict(app: &axum::Router, case: &Case) -> (bool, String) {
    let review = match case {
        Case::Create(object) => alice("CREATE", Some(object), None),
        Case::Update(old, new) => alice("UPDATE", Some(new), Some(old)),
        Case::Delete(old) => alice("DELETE", None, Some(old)),
    };
    let request = Request::builder()
        .method(Method::POST)
        .uri("/validate")
        .header("content-type", "application/json")
        .body(Body::from(review.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let response = &answer["response"];
    (
        response["allowed"].as_bool().unwrap(),
        response["status"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

fn ippools(client: &Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("crd.projectcalico.org", "v1", "IPPool"),
        "ippools",
    );
    Api::all_with(client.clone(), &resource)
}

/// The pool as a new object (the table's pools carry the uid and resourceVersion a review would).
fn object(value: &Value) -> DynamicObject {
    let mut object: DynamicObject = serde_json::from_value(value.clone()).unwrap();
    object.metadata.resource_version = None;
    object.metadata.uid = None;
    object
}

/// The API server's verdict (the request itself is a dry run): whether it allows, and why not.
async fn api_verdict(api: &Api<DynamicObject>, case: &Case) -> (bool, String) {
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let result = match case {
        Case::Create(new) => api.create(&dry, &object(new)).await.map(|_| ()),
        Case::Update(old, new) => {
            let stored = api.create(&PostParams::default(), &object(old)).await;
            let stored =
                stored.unwrap_or_else(|e| panic!("the old pool of an update is created: {e}"));
            let mut new = object(new);
            new.metadata.resource_version = stored.metadata.resource_version;
            api.replace(new.metadata.name.as_deref().unwrap(), &dry, &new)
                .await
                .map(|_| ())
        }
        Case::Delete(old) => {
            let stored = api.create(&PostParams::default(), &object(old)).await;
            stored.unwrap_or_else(|e| panic!("the pool to delete is created: {e}"));
            let name = old["metadata"]["name"].as_str().unwrap();
            let params = DeleteParams {
                dry_run: true,
                ..DeleteParams::default()
            };
            api.delete(name, &params).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => (true, String::new()),
        Err(kube::Error::Api(status)) => (false, status.message),
        Err(e) => panic!("the API server did not answer: {e}"),
    }
}

/// Codes (IPPnnn) a message names.
fn codes(message: &str) -> Vec<&str> {
    message
        .match_indices("IPP")
        .filter_map(|(at, _)| message.get(at..at + 6))
        .filter(|c| c[3..].bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

/// Applies `kubectl ippool policy`'s rendering (server-side apply, so a rerun is harmless).
async fn install_policy(cp: &ControlPlane, client: &Client) {
    let out = std::process::Command::new(workspace_bin("kubectl-ippool"))
        .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
        .args([
            "policy",
            "--cluster-cidr=10.0.0.0/8",
            "--cluster-cidr=fd00::/48",
            "--service-cidr=10.96.0.0/12",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    for document in documents {
        let gvk = GroupVersionKind::try_from(&kube::core::TypeMeta {
            api_version: document["apiVersion"].as_str().unwrap().to_owned(),
            kind: document["kind"].as_str().unwrap().to_owned(),
        })
        .unwrap();
        let plural = match gvk.kind.as_str() {
            "ConfigMap" => "configmaps",
            "ValidatingAdmissionPolicy" => "validatingadmissionpolicies",
            _ => "validatingadmissionpolicybindings",
        };
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let name = document["metadata"]["name"].as_str().unwrap();
        let api: Api<DynamicObject> = match document["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply("policy-test"),
            &Patch::Apply(&document),
        )
        .await
        .unwrap_or_else(|e| panic!("{} {name} is applied: {e}", gvk.kind));
    }
}

/// The API server loads a new policy asynchronously: a pool with blockSize 33 is tried (as a dry
/// run) until the policy refuses it.
async fn wait_policy_active(api: &Api<DynamicObject>) {
    let probe = Case::Create(p("probe", json!({"cidr": "10.1.0.0/16", "blockSize": 33})));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (allowed, message) = api_verdict(api, &probe).await;
        if !allowed && message.contains("IPP022") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the policy never took effect: {message:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_refuses_and_allows_what_the_webhook_does() {
    let cp = ControlPlane::start().unwrap();
    let client = cp.client().await;
    install_policy(&cp, &client).await;
    let api = ippools(&client);
    wait_policy_active(&api).await;

    let state = Arc::new(AppState::new(
        Arc::new(FixedContext::synced(context())),
        Exemptions::default(),
    ));
    let app = router(state);
    let mut disagreements = Vec::new();
    let (mut allowed, mut denied) = (0, 0);
    for (name, case) in cases() {
        let (webhook_allows, webhook_says) = webhook_verdict(&app, &case).await;
        let (policy_allows, policy_says) = api_verdict(&api, &case).await;
        if webhook_allows != policy_allows {
            disagreements.push(format!(
                "{name}: the webhook {} ({webhook_says}), the policy {} ({policy_says})",
                if webhook_allows { "allows" } else { "denies" },
                if policy_allows { "allows" } else { "denies" },
            ));
            continue;
        }
        if policy_allows {
            allowed += 1;
            continue;
        }
        denied += 1;
        let ours = codes(&webhook_says);
        let theirs = codes(&policy_says);
        if !theirs.iter().any(|c| ours.contains(c)) || !policy_says.contains("fix: ") {
            disagreements.push(format!(
                "{name}: the policy's reason {policy_says:?} names none of the webhook's codes {ours:?}, or no fix"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(
        allowed >= 10 && denied >= 30,
        "{allowed} allowed, {denied} denied"
    );

    // --check: current as installed; a changed parameter is named.
    let check = |cidr: &str| {
        std::process::Command::new(workspace_bin("kubectl-ippool"))
            .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
            .args(["policy", "--check", "--cluster-cidr", cidr])
            .args(["--cluster-cidr=fd00::/48", "--service-cidr=10.96.0.0/12"])
            .output()
            .unwrap()
    };
    let current = check("10.0.0.0/8");
    assert!(current.status.success(), "{current:?}");
    let stale = check("10.0.0.0/9");
    assert_eq!(stale.status.code(), Some(1), "{stale:?}");
    assert!(
        String::from_utf8_lossy(&stale.stdout)
            .contains("ConfigMap ippool-policy-params: data.clusterCIDRs differs"),
        "{stale:?}"
    );

    // The Tigera operator deletes the enabled pools it owns when they leave its Installation.
    let role: ClusterRole = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "operator-pools"},
        "rules": [{"apiGroups": ["crd.projectcalico.org"], "resources": ["ippools"], "verbs": ["delete"]}]
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "operator-pools"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "operator-pools"},
        "subjects": [{"kind": "ServiceAccount", "name": "tigera-operator", "namespace": "tigera-operator"}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let owned = p("owned", json!({"cidr": "10.8.0.0/16"}));
    api.create(&PostParams::default(), &object(&owned))
        .await
        .unwrap();
    let kubeconfig = Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(OPERATOR.to_owned());
    let as_operator = ippools(&Client::try_from(config).unwrap());
    as_operator
        .delete("owned", &DeleteParams::default())
        .await
        .expect("the operator deletes an enabled pool it owns");
}
