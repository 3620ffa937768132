//! Errors name what failed and what to do, never a bare status code: an unreachable server, a
//! missing context, a missing permission, a missing pool.

use std::time::Duration;

use crate::support::{control_plane, ippool};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, PostParams};

fn run_with(kubeconfig: &std::path::Path, args: &[&str]) -> crate::support::Run {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ippool"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl-ippool runs");
    crate::support::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn unreachable_server_and_unknown_context() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // Port 1 on loopback: nothing listens there.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    \
         insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  \
         context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
    )
    .unwrap();
    let refused = run_with(&kubeconfig, &["list"]).expect(2);
    assert!(
        refused
            .stderr
            .contains("cannot connect to the API server (connection refused)"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--kubeconfig/--context"),
        "{}",
        refused.stderr
    );
    let unknown = run_with(&kubeconfig, &["--context", "nope", "list"]).expect(2);
    assert!(
        unknown.stderr.contains("with context \"nope\""),
        "{}",
        unknown.stderr
    );
    assert!(
        unknown.stderr.contains("kubectl config get-contexts"),
        "{}",
        unknown.stderr
    );
    let missing = run_with(&dir.path().join("absent"), &["list"]).expect(2);
    assert!(
        missing.stderr.contains("cannot read kubeconfig"),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_permission_and_missing_pool() {
    let cp = control_plane();
    let client = cp.client().await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    harness::wait_for(
        &accounts,
        "default",
        kube::runtime::wait::conditions::is_created(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "nobody"}})).unwrap(),
        )
        .await
        .unwrap();
    // Since 1.24 no token secret is made for an account unless asked for: a secret of type
    // service-account-token naming the account, which the token controller fills in.
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "nobody-token",
                             "annotations": {"kubernetes.io/service-account.name": "nobody"}},
                "type": "kubernetes.io/service-account-token"
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let secret = harness::wait_for(
        &secrets,
        "nobody-token",
        |s: Option<&Secret>| {
            s.and_then(|s| s.data.as_ref())
                .is_some_and(|d| d.contains_key("token"))
        },
        Duration::from_secs(60),
    )
    .await
    .unwrap()
    .unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let admin = std::fs::read_to_string(cp.kubeconfig()).unwrap();
    let admin_token = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .expect("the harness kubeconfig has a token")
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("nobody");
    std::fs::write(&kubeconfig, admin.replace(&admin_token, &token)).unwrap();

    let forbidden = run_with(&kubeconfig, &["list"]).expect(2);
    assert!(
        forbidden.stderr.contains("permission denied"),
        "{}",
        forbidden.stderr
    );
    assert!(
        forbidden
            .stderr
            .contains("system:serviceaccount:default:nobody"),
        "{}",
        forbidden.stderr
    );
    assert!(forbidden.stderr.contains("RBAC"), "{}", forbidden.stderr);
    assert!(!forbidden.stderr.contains("403"), "{}", forbidden.stderr);

    let absent = ippool(&cp, &["show", "nope"]).expect(2);
    assert!(
        absent
            .stderr
            .contains("IP pool \"nope\" does not exist; `kubectl ippool list`"),
        "{}",
        absent.stderr
    );
    let absent = ippool(&cp, &["disable", "nope"]).expect(2);
    assert!(
        absent.stderr.contains("IP pool \"nope\" does not exist"),
        "{}",
        absent.stderr
    );
}
