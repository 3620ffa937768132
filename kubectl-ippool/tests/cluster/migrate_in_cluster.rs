//! `migrate --in-cluster` and `resize --in-cluster`: planned and confirmed here, run by a Job whose
//! pods run the plugin for real (calico-sim runs pods labelled `sim.ippool.dev/run=true` as
//! processes, with their ServiceAccount's token mounted). The migration's pod is killed while it
//! moves workloads; the Job's next pod resumes from the record and completes, and `status
//! --follow` shows it to the end. The API server's audit log shows that each run used exactly what
//! the RBAC generated from its plan grants, and was never refused. `--abort` stops the Job before
//! it undoes the migration.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::support::migration::*;
use harness::{ControlPlaneOptions, SimOptions, wait_for};
use ippool_cluster::migration::job::{JOB_NAME, stop};
use ippool_cluster::resources::ip_pools;
use ippool_rules::model::ApiGroup;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use serde_json::{Value, json};

const IMAGE: &str = "localhost/kubectl-ippool:test";
const ACCOUNT: &str = "system:serviceaccount:kube-system:ippool-migration";

/// (group, resource, verb) for every verb a rule grants.
fn granted(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

/// What the audit log shows `ACCOUNT` asking for (resource requests only), and which were refused.
fn used(log: &str) -> (BTreeSet<(String, String, String)>, Vec<String>) {
    let mut used = BTreeSet::new();
    let mut refused = Vec::new();
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["user"]["username"] != ACCOUNT || event["objectRef"]["resource"].is_null() {
            continue;
        }
        let object = &event["objectRef"];
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{}/{sub}", object["resource"].as_str().unwrap()),
            None => object["resource"].as_str().unwrap().to_owned(),
        };
        let group = object["apiGroup"].as_str().unwrap_or("").to_owned();
        let verb = event["verb"].as_str().unwrap().to_owned();
        if event["responseStatus"]["code"] == 403 {
            refused.push(format!("{verb} {group}/{resource}"));
        }
        used.insert((group, resource, verb));
    }
    (used, refused)
}

/// A cluster whose fake nodes run the plugin's image for real, with the audit log on, the pool
/// `default-ipv4-ippool` (/26 blocks) at `cidr` and three Deployments of two pods.
async fn cluster(cidr: &str) -> TestCluster {
    let c = start_with(
        &ControlPlaneOptions {
            audit_log: true,
            ..ControlPlaneOptions::default()
        },
        SimOptions {
            nodes: 3,
            start_delay_ms: 400,
            images: vec![(
                IMAGE.to_owned(),
                PathBuf::from(env!("CARGO_BIN_EXE_kubectl-ippool")),
            )],
            ..SimOptions::default()
        },
    )
    .await;
    create_pool(&c.client, "default-ipv4-ippool", cidr, 26, "Always").await;
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    for name in ["a", "b", "c"] {
        create::<Deployment>(&c.client, deployment("default", name, 2, rolling.clone())).await;
    }
    wait_pods(&c.client, &[("a", 2), ("b", 2), ("c", 2)]).await;
    c
}

/// Starts `command` with `--in-cluster`, as a user would.
async fn start_in_cluster(c: &TestCluster, command: &[&str]) {
    let mut args = command.to_vec();
    args.extend([
        "--in-cluster",
        "--image",
        IMAGE,
        "--job-label",
        "sim.ippool.dev/run=true",
        "--yes",
    ]);
    let out = c.ippool(&args, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("Job kube-system/ippool-migration runs it in the cluster"),
        "{}",
        text(&out)
    );
}

/// Starts the tutorial's migration (192.168.0.0/16 → new-pool 10.0.0.0/16) with `--in-cluster`
/// and waits until the Job's run has disabled the old pool; returns the Leases of kube-system.
async fn migrate_in_cluster_until_moving(c: &TestCluster) -> Api<Lease> {
    start_in_cluster(
        c,
        &[
            "migrate",
            "--from",
            "default-ipv4-ippool",
            "--to",
            "new-pool",
            "--cidr",
            "10.0.0.0/16",
            "--concurrency",
            "1",
        ],
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
    wait_for(
        &leases,
        "ippool-migration",
        |lease: Option<&Lease>| {
            lease
                .and_then(|l| l.metadata.annotations.as_ref())
                .and_then(|a| a.get("ippool.io/migration-record"))
                .is_some_and(|r| r.contains("disable-old"))
        },
        WAIT,
    )
    .await
    .expect("the Job's run disables the old pool");
    leases
}

/// Follows the run to its end, checks the Job completed (with at least `failed` failed pods),
/// removes it, and compares what the run asked for with what its RBAC grants.
async fn finish_and_audit(c: &TestCluster, failed: i32) {
    let followed = c.ippool(&["status", "--follow", "-o", "json"], &[]).await;
    assert!(followed.status.success(), "{}", text(&followed));
    let last: Value = serde_json::from_str(stdout(&followed).lines().last().unwrap()).unwrap();
    assert_eq!(last["state"], "finished", "{}", text(&followed));

    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "kube-system");
    let job = wait_for(
        &jobs,
        JOB_NAME,
        |job: Option<&Job>| {
            job.and_then(|j| j.status.as_ref())
                .is_some_and(|s| s.succeeded == Some(1))
        },
        WAIT,
    )
    .await
    .expect("the Job completes")
    .unwrap();
    assert!(
        job.status.unwrap().failed.unwrap_or(0) >= failed,
        "killed pods count as failed"
    );

    let log = std::fs::read_to_string(c.cp.audit_log()).unwrap();
    let (used, refused) = used(&log);
    assert!(refused.is_empty(), "the run was refused: {refused:?}");
    let roles: Api<ClusterRole> = Api::all(c.client.clone());
    let namespaced: Api<Role> = Api::namespaced(c.client.clone(), "kube-system");
    let mut rules = roles.get(JOB_NAME).await.unwrap().rules.unwrap_or_default();
    rules.extend(
        namespaced
            .get(JOB_NAME)
            .await
            .unwrap()
            .rules
            .unwrap_or_default(),
    );
    let granted = granted(&rules);
    let beyond: Vec<_> = used.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        beyond.is_empty() && unused.is_empty(),
        "the generated RBAC is not what the run used: used without a grant {beyond:?}, granted and unused {unused:?}"
    );
    // The finished Job's pods are not Ready pods: remove them before judging the cluster.
    assert!(stop(&c.client, "kube-system", WAIT).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_cluster_migration_survives_its_pod_being_killed() {
    let c = cluster("192.168.0.0/16").await;
    // Kill the Job's pod once it is moving workloads.
    migrate_in_cluster_until_moving(&c).await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "kube-system");
    let running = pods
        .list(&ListParams::default().labels(&format!("job-name={JOB_NAME}")))
        .await
        .unwrap();
    assert_eq!(running.items.len(), 1, "one pod runs the migration");
    let killed = running.items[0].metadata.name.clone().unwrap();
    pods.delete(&killed, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();

    finish_and_audit(&c, 1).await;
    assert_end_state(&c, Some("192.168.0.0/16"), "10.0.0.0/16", 26).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_cluster_resize_runs_to_the_end() {
    // Inside kubeadm-config's podSubnet (10.0.0.0/8), where the re-created pool may go.
    let c = cluster("10.244.0.0/16").await;
    start_in_cluster(&c, &["resize", "default-ipv4-ippool", "--block-size", "28"]).await;
    finish_and_audit(&c, 0).await;
    assert_end_state(&c, None, "10.244.0.0/16", 28).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_stops_the_job_before_undoing() {
    let c = cluster("192.168.0.0/16").await;
    let leases = migrate_in_cluster_until_moving(&c).await;

    let abort = c.ippool(&["migrate", "--abort"], &[]).await;
    assert!(abort.status.success(), "{}", text(&abort));
    assert!(
        stdout(&abort).contains("Job kube-system/ippool-migration and its pod stopped"),
        "{}",
        text(&abort)
    );
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "kube-system");
    assert!(jobs.get_opt(JOB_NAME).await.unwrap().is_none());
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "kube-system");
    let left = pods
        .list(&ListParams::default().labels(&format!("job-name={JOB_NAME}")))
        .await
        .unwrap();
    assert!(left.items.is_empty(), "no pod of the Job runs on");
    assert!(leases.get_opt("ippool-migration").await.unwrap().is_none());
    let pools = Api::<DynamicObject>::all_with(c.client.clone(), &ip_pools(ApiGroup::CrdV1));
    let old = pools.get("default-ipv4-ippool").await.unwrap();
    assert_eq!(old.data["spec"]["disabled"], false, "enabled again");
    let status = c.ippool(&["status"], &[]).await;
    assert_eq!(stdout(&status).trim(), "no migration or resize in progress");
}
