//! calico-sim driven through the harness: started, killed, restarted, stopped, and stopped by
//! `tests/cluster/down` when a test leaks it.

use std::time::Duration;

use harness::{ControlPlane, Expected, HarnessError, Sim, SimOptions, wait_for_all};
use k8s_openapi::api::{
    apps::v1::Deployment, core::v1::Node, core::v1::Pod, policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
    runtime::watcher,
};

fn api_error(what: &str) -> impl FnOnce(kube::Error) -> HarnessError + '_ {
    move |source| HarnessError::Api {
        what: what.to_owned(),
        source,
    }
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn sim_nodes_are_ready_and_survive_kill_and_restart() -> Result<(), HarnessError> {
    let cp = ControlPlane::start()?;
    let options = SimOptions {
        nodes: 3,
        node_prefix: "h-".into(),
        ..SimOptions::default()
    };
    let mut sim = Sim::start(&cp, options)?;
    let nodes: Api<Node> = Api::all(cp.client().await);
    let listed = nodes
        .list(&Default::default())
        .await
        .map_err(api_error("list nodes"))?;
    let mut names: Vec<String> = listed
        .iter()
        .filter(|n| ready(n))
        .map(|n| n.name_any())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "three Ready nodes: {names:?}");
    assert!(names.iter().all(|n| n.starts_with("h-")), "{names:?}");

    let first = sim.pid().expect("running after start");
    let recorded = cp.processes()?;
    let record = recorded
        .iter()
        .find(|p| p.pid == first)
        .expect("the sim's PID is recorded for down");
    assert_eq!(record.name, "calico-sim");

    sim.kill9();
    assert_eq!(sim.pid(), None);
    assert!(!record.is_running(), "SIGKILL ended the sim");

    sim.restart()?;
    let second = sim.pid().expect("running after restart");
    assert_ne!(first, second);

    let status = sim.stop()?.expect("it was running");
    assert!(
        status.success(),
        "calico-sim exits cleanly on SIGTERM: {status}"
    );
    Ok(())
}

#[tokio::test]
async fn down_also_stops_a_sim_the_test_leaked() -> Result<(), HarnessError> {
    let mut cp = ControlPlane::start()?;
    let sim = Sim::start(
        &cp,
        SimOptions {
            nodes: 1,
            ..SimOptions::default()
        },
    )?;
    let pid = sim.pid().expect("running");
    // The Sim's own drop would stop it; forget it so only the PID record is left.
    std::mem::forget(sim);
    let record = cp
        .processes()?
        .into_iter()
        .find(|p| p.pid == pid)
        .expect("recorded");
    assert!(record.is_running());
    cp.stop()?;
    assert!(!record.is_running(), "down stopped the leaked calico-sim");
    Ok(())
}

fn pool_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("crd.projectcalico.org", "v1", "IPPool"),
        "ippools",
    )
}

#[tokio::test]
async fn a_pod_disruption_budget_refuses_an_eviction() -> Result<(), HarnessError> {
    let cp = ControlPlane::start()?;
    let _sim = Sim::start(&cp, SimOptions::default())?;
    let client = cp.client().await;
    let pools: Api<DynamicObject> = Api::all_with(client.clone(), &pool_resource());
    let pool: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "IPPool",
        "metadata": {"name": "pods"},
        "spec": {"cidr": "10.10.0.0/16", "blockSize": 26, "ipipMode": "Never", "natOutgoing": true, "nodeSelector": "all()"}
    }))
    .expect("a valid IPPool");
    pools
        .create(&PostParams::default(), &pool)
        .await
        .map_err(api_error("create IPPool"))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "guarded"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "guarded"}},
            "template": {
                "metadata": {"labels": {"app": "guarded"}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}
            }
        }
    }))
    .expect("a valid Deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .map_err(api_error("create Deployment"))?;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "guarded"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}}
    }))
    .expect("a valid PodDisruptionBudget");
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .map_err(api_error("create PodDisruptionBudget"))?;

    let pods: Api<Pod> = Api::namespaced(client, "default");
    let running = wait_for_all(
        &pods,
        watcher::Config::default().labels("app=guarded"),
        "2 Running pods of Deployment guarded",
        |pods| {
            pods.len() == 2
                && pods
                    .iter()
                    .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        },
        Duration::from_secs(60),
    )
    .await?;
    // The budget controller must have counted the healthy pods before the eviction is judged.
    harness::wait_for(
        &pdbs,
        "guarded",
        |pdb: Option<&PodDisruptionBudget>| {
            pdb.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.current_healthy == 2)
        },
        Duration::from_secs(60),
    )
    .await?;

    let strict: Api<Pod> = Api::namespaced(cp.client_no_retry().await, "default");
    let victim = running[0].name_any();
    match strict.evict(&victim, &Default::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 429, "{status:?}");
            let causes = status.details.map(|d| d.causes).unwrap_or_default();
            assert!(
                causes.iter().any(|c| c.reason == "DisruptionBudget"),
                "{causes:?}"
            );
        }
        other => panic!("the eviction of {victim} should be refused by the budget, got {other:?}"),
    }
    cp.judge_ipam(&Expected::clean());
    Ok(())
}
