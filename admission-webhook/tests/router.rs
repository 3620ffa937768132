//! The real axum router, driven with AdmissionReview bodies: tables of cases in, verdicts out.

mod common;

use std::sync::Arc;

use admission_webhook::server::router;
use admission_webhook::state::{AppState, CALICO_API_SERVER_USER, Exemptions, FixedContext};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn app(source: FixedContext, exemptions: Exemptions) -> (Router, Arc<AppState>) {
    let state = Arc::new(AppState::new(Arc::new(source), exemptions));
    (router(Arc::clone(&state)), state)
}

fn synced_app() -> Router {
    app(FixedContext::synced(cluster()), Exemptions::default()).0
}

async fn send(app: &Router, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

/// Posts a review; returns the response part of the answer.
async fn judge(app: &Router, review: &Value) -> Value {
    let (status, body) = send(
        app,
        Method::POST,
        "/validate",
        review.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["response"]["uid"], review["request"]["uid"],
        "the response answers the request it was given"
    );
    answer["response"].clone()
}

fn message(response: &Value) -> &str {
    response["status"]["message"].as_str().unwrap_or("")
}

fn warnings(response: &Value) -> Vec<String> {
    response["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[derive(Debug)]
enum Expect {
    /// Allowed, with no warnings.
    Allow,
    /// Allowed, with a warning containing each text.
    Warn(&'static [&'static str]),
    /// Denied, the message containing each text.
    Deny(&'static [&'static str]),
}

async fn run_table(app: &Router, cases: Vec<(&str, Value, Expect)>) {
    let mut failures = Vec::new();
    for (name, review, expect) in cases {
        let response = judge(app, &review).await;
        let allowed = response["allowed"].as_bool().unwrap();
        let ok = match &expect {
            Expect::Allow => allowed && warnings(&response).is_empty(),
            Expect::Warn(texts) => {
                allowed
                    && texts
                        .iter()
                        .all(|t| warnings(&response).iter().any(|w| w.contains(t)))
            }
            Expect::Deny(texts) => !allowed && texts.iter().all(|t| message(&response).contains(t)),
        };
        if !ok {
            failures.push(format!("{name}: expected {expect:?}, got {response}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn verdicts_for_pool_changes() {
    let default = default_pool();
    let draining = draining_pool();
    let empty = empty_pool();
    let new_pool = pool(
        V1,
        "new",
        json!({"cidr": "10.40.0.0/16", "blockSize": 26, "ipipMode": "Always"}),
    );
    let mut dry_run = alice(
        "CREATE",
        Some(&pool(
            V1,
            "bad",
            json!({"cidr": "10.50.0.0/16", "blockSize": 33}),
        )),
        None,
    );
    dry_run["request"]["dryRun"] = json!(true);
    let cases = vec![
        (
            "create with blockSize 33",
            alice(
                "CREATE",
                Some(&pool(
                    V1,
                    "bad",
                    json!({"cidr": "10.50.0.0/16", "blockSize": 33}),
                )),
                None,
            ),
            Expect::Deny(&["IPP022", "spec.blockSize", "fix:"]),
        ),
        (
            "create outside the cluster CIDR",
            alice(
                "CREATE",
                Some(&pool(V1, "outside", json!({"cidr": "192.168.0.0/16"}))),
                None,
            ),
            Expect::Deny(&["IPP050", "spec.cidr", "kube-system/kubeadm-config"]),
        ),
        (
            "create overlapping an existing pool",
            alice(
                "CREATE",
                Some(&pool(V1, "overlap", json!({"cidr": "10.10.128.0/17"}))),
                None,
            ),
            Expect::Deny(&["IPP080", "default"]),
        ),
        (
            "create overlapping the service CIDR",
            alice(
                "CREATE",
                Some(&pool(V1, "services", json!({"cidr": "10.96.0.0/16"}))),
                None,
            ),
            Expect::Deny(&["IPP052"]),
        ),
        (
            "create a sound pool",
            alice("CREATE", Some(&new_pool), None),
            Expect::Allow,
        ),
        (
            "dry run is judged the same",
            dry_run,
            Expect::Deny(&["IPP022"]),
        ),
        (
            "blockSize edit",
            alice(
                "UPDATE",
                Some(&with_spec(&default, "blockSize", json!(24))),
                Some(&default),
            ),
            Expect::Deny(&["IPP061", "from 26 to 24", "kubectl ippool resize"]),
        ),
        (
            "CIDR edit",
            alice(
                "UPDATE",
                Some(&with_spec(&default, "cidr", json!("10.11.0.0/16"))),
                Some(&default),
            ),
            Expect::Deny(&["IPP060", "kubectl ippool migrate"]),
        ),
        (
            "re-applying the same pool",
            alice(
                "UPDATE",
                Some(&with_spec(&default, "natOutgoing", json!(true))),
                Some(&default),
            ),
            Expect::Allow,
        ),
        (
            "disabling the last enabled pool while pods run",
            alice(
                "UPDATE",
                Some(&with_spec(&default, "disabled", json!(true))),
                Some(&default),
            ),
            Expect::Warn(&["IPP072"]),
        ),
        (
            "deleting an enabled pool",
            alice("DELETE", None, Some(&default)),
            Expect::Deny(&["IPP070", "disable it first"]),
        ),
        (
            "deleting a disabled pool that still holds pod addresses",
            alice("DELETE", None, Some(&draining)),
            Expect::Deny(&["IPP071", "2 addresses in use"]),
        ),
        (
            "deleting a disabled, empty pool",
            alice("DELETE", None, Some(&empty)),
            Expect::Allow,
        ),
        (
            "v3 pool with blockSize 33",
            review(
                "CREATE",
                V3,
                Some(&pool(
                    V3,
                    "bad3",
                    json!({"cidr": "10.60.0.0/16", "blockSize": 33}),
                )),
                None,
                "bob",
                &[],
            ),
            Expect::Deny(&["IPP022"]),
        ),
        (
            "Calico's API server is judged like anyone",
            review(
                "CREATE",
                V1,
                Some(&pool(
                    V1,
                    "bad",
                    json!({"cidr": "10.50.0.0/16", "blockSize": 33}),
                )),
                None,
                CALICO_API_SERVER_USER,
                &["system:serviceaccounts"],
            ),
            Expect::Deny(&["IPP022"]),
        ),
    ];
    run_table(&synced_app(), cases).await;
}

#[tokio::test]
async fn a_delete_is_judged_on_the_review_s_old_object_when_the_watch_lags() {
    // The view still has `default` enabled; the review's oldObject shows it disabled a moment ago,
    // and no block of it holds addresses.
    let mut ctx = cluster();
    ctx.blocks
        .as_mut()
        .unwrap()
        .retain(|b| b.spec.cidr != "10.10.0.0/26");
    let app = app(FixedContext::synced(ctx), Exemptions::default()).0;
    let disabled = with_spec(&default_pool(), "disabled", json!(true));
    let response = judge(&app, &alice("DELETE", None, Some(&disabled))).await;
    assert_eq!(response["allowed"], true, "{response}");
}

#[tokio::test]
async fn unreadable_or_incomplete_reviews_are_denied_with_the_reason() {
    let mut not_a_pool = alice(
        "CREATE",
        Some(&pool(V1, "odd", json!({"cidr": "10.40.0.0/16"}))),
        None,
    );
    not_a_pool["request"]["object"]["spec"] = json!("a string, not a spec");
    let cases = vec![
        (
            "DELETE without oldObject",
            alice("DELETE", None, None),
            Expect::Deny(&["carries no oldObject"]),
        ),
        (
            "UPDATE without oldObject",
            alice("UPDATE", Some(&default_pool()), None),
            Expect::Deny(&["carries no oldObject"]),
        ),
        (
            "CREATE without object",
            alice("CREATE", None, None),
            Expect::Deny(&["carries no object"]),
        ),
        (
            "object that is not an IPPool",
            not_a_pool,
            Expect::Deny(&["not a readable IPPool"]),
        ),
    ];
    run_table(&synced_app(), cases).await;
}

#[tokio::test]
async fn requests_this_webhook_does_not_judge_are_allowed_with_a_warning() {
    let mut pods = alice(
        "CREATE",
        Some(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})),
        None,
    );
    pods["request"]["resource"] = json!({"group": "", "version": "v1", "resource": "pods"});
    let mut status = alice("UPDATE", Some(&default_pool()), Some(&default_pool()));
    status["request"]["subResource"] = json!("status");
    let cases = vec![
        (
            "a misregistered resource",
            pods,
            Expect::Warn(&["judges only ippools", "ValidatingWebhookConfiguration"]),
        ),
        (
            "the status subresource",
            status,
            Expect::Warn(&["status subresource"]),
        ),
    ];
    run_table(&synced_app(), cases).await;
}

#[tokio::test]
async fn exempt_requesters_are_allowed_with_the_findings_as_warnings() {
    let exemptions = Exemptions::new([
        "system:serviceaccount:tigera-operator:tigera-operator"
            .parse()
            .unwrap(),
        "group:break-glass".parse().unwrap(),
    ]);
    let app = app(FixedContext::synced(cluster()), exemptions).0;
    let default = default_pool();
    let resize = with_spec(&default, "blockSize", json!(24));
    let cases = vec![
        (
            "exempt user",
            review(
                "UPDATE",
                V1,
                Some(&resize),
                Some(&default),
                "system:serviceaccount:tigera-operator:tigera-operator",
                &[],
            ),
            Expect::Warn(&[
                "exempt (user system:serviceaccount:tigera-operator:tigera-operator), would be denied: IPP061",
            ]),
        ),
        (
            "exempt group",
            review(
                "DELETE",
                V1,
                None,
                Some(&default),
                "carol",
                &["system:authenticated", "break-glass"],
            ),
            Expect::Warn(&["exempt (group break-glass), would be denied: IPP070"]),
        ),
        (
            "same change, not exempt",
            review(
                "UPDATE",
                V1,
                Some(&resize),
                Some(&default),
                "dave",
                &["system:authenticated"],
            ),
            Expect::Deny(&["IPP061"]),
        ),
    ];
    run_table(&app, cases).await;
}

#[tokio::test]
async fn until_synced_readyz_fails_and_changes_are_denied_as_not_ready() {
    let (app, _) = app(FixedContext::not_synced(cluster()), Exemptions::default());
    let (status, body) = send(&app, Method::GET, "/readyz", Vec::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&body).contains("not ready"));
    let (status, _) = send(&app, Method::GET, "/healthz", Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "alive while not ready");

    let new_pool = pool(V1, "new", json!({"cidr": "10.40.0.0/16"}));
    let cases = vec![
        (
            "a create that needs the pools",
            alice("CREATE", Some(&new_pool), None),
            Expect::Deny(&["not ready", "retry"]),
        ),
        (
            "a delete that needs the blocks",
            alice("DELETE", None, Some(&empty_pool())),
            Expect::Deny(&["not ready"]),
        ),
        (
            "a change that is wrong whatever the cluster holds",
            alice(
                "CREATE",
                Some(&pool(
                    V1,
                    "bad",
                    json!({"cidr": "10.50.0.0/16", "blockSize": 33}),
                )),
                None,
            ),
            Expect::Deny(&["IPP022", "not finished listing"]),
        ),
    ];
    run_table(&app, cases).await;

    let synced = synced_app();
    let (status, _) = send(&synced, Method::GET, "/readyz", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn while_draining_readyz_fails_and_reviews_keep_their_verdicts() {
    let (app, state) = app(FixedContext::synced(cluster()), Exemptions::default());
    state.start_draining();
    let (status, body) = send(&app, Method::GET, "/readyz", Vec::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&body).contains("shutting down"));
    let (status, _) = send(&app, Method::GET, "/healthz", Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "alive while draining");
    let cases = vec![
        (
            "a valid create",
            alice(
                "CREATE",
                Some(&pool(V1, "new", json!({"cidr": "10.40.0.0/16"}))),
                None,
            ),
            Expect::Allow,
        ),
        (
            "a wrong one",
            alice(
                "CREATE",
                Some(&pool(
                    V1,
                    "bad",
                    json!({"cidr": "10.50.0.0/16", "blockSize": 33}),
                )),
                None,
            ),
            Expect::Deny(&["IPP022"]),
        ),
    ];
    run_table(&app, cases).await;
}

#[tokio::test]
async fn malformed_bodies_get_http_400_with_the_reason() {
    let app = synced_app();
    let mut v1beta1 = alice("CREATE", Some(&default_pool()), None);
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut wrong_kind = alice("CREATE", Some(&default_pool()), None);
    wrong_kind["kind"] = json!("ConfigMap");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not JSON",
            b"{\"apiVersion\": ".to_vec(),
            "not an AdmissionReview",
        ),
        ("empty body", Vec::new(), "not an AdmissionReview"),
        ("binary", vec![0xff, 0x00, 0xfe], "not an AdmissionReview"),
        (
            "wrong apiVersion",
            v1beta1.to_string().into_bytes(),
            "admissionReviewVersions",
        ),
        (
            "wrong kind",
            wrong_kind.to_string().into_bytes(),
            "expected kind AdmissionReview",
        ),
        (
            "no request",
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})
                .to_string()
                .into_bytes(),
            "carries no request",
        ),
        (
            "deeply nested",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            "not an AdmissionReview",
        ),
        (
            "over 3 MiB",
            vec![b' '; 3 * 1024 * 1024 + 1],
            "exceeds 3 MiB",
        ),
    ];
    let mut failures = Vec::new();
    for (name, body, text) in cases {
        let (status, reply) = send(&app, Method::POST, "/validate", body).await;
        let reply = String::from_utf8_lossy(&reply);
        if status != StatusCode::BAD_REQUEST || !reply.contains(text) {
            failures.push(format!("{name}: {status} {reply}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let (status, _) = send(&app, Method::GET, "/validate", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_body_of_exactly_3_mib_is_read() {
    // Padding with JSON whitespace keeps the review valid at the limit.
    let review = alice(
        "CREATE",
        Some(&pool(V1, "new", json!({"cidr": "10.40.0.0/16"}))),
        None,
    )
    .to_string();
    let mut body = review.into_bytes();
    body.resize(3 * 1024 * 1024, b' ');
    let (status, reply) = send(&synced_app(), Method::POST, "/validate", body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

#[tokio::test]
async fn metrics_count_requests_by_operation_and_verdict() {
    let (app, _state) = app(FixedContext::synced(cluster()), Exemptions::default());
    let default = default_pool();
    judge(&app, &alice("DELETE", None, Some(&default))).await;
    judge(&app, &alice("DELETE", None, Some(&default))).await;
    judge(
        &app,
        &alice(
            "CREATE",
            Some(&pool(V1, "new", json!({"cidr": "10.40.0.0/16"}))),
            None,
        ),
    )
    .await;
    send(&app, Method::POST, "/validate", b"nonsense".to_vec()).await;
    let (status, body) = send(&app, Method::GET, "/metrics", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    for line in [
        r#"ippool_webhook_admission_requests_total{operation="DELETE",verdict="denied"} 2"#,
        r#"ippool_webhook_admission_requests_total{operation="CREATE",verdict="allowed"} 1"#,
        r#"ippool_webhook_admission_requests_total{operation="UNKNOWN",verdict="invalid"} 1"#,
        "ippool_webhook_admission_duration_seconds_count 4",
        "ippool_webhook_cluster_view_synced 1",
        "ippool_webhook_cluster_view_pools 3",
        "ippool_webhook_cluster_view_blocks 3",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}
