//! The control plane that `tests/cluster/up` brings up, seen through the harness.

use std::time::Duration;

use harness::{ControlPlane, Expected, HarnessError, crds, wait_for, wait_for_all};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::ConfigMap, core::v1::Pod},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, ResourceExt,
    api::PostParams,
    discovery,
    runtime::{
        wait::{Condition, conditions},
        watcher,
    },
};

fn established(crd: &CustomResourceDefinition) -> bool {
    conditions::is_crd_established().matches_object(Some(crd))
}

#[tokio::test]
async fn calico_crds_are_established_and_kubeadm_config_is_seeded() -> Result<(), HarnessError> {
    let cp = ControlPlane::start()?;
    let client = cp.client().await;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let installed = crds
        .list(&Default::default())
        .await
        .map_err(|source| HarnessError::Api {
            what: "list CRDs".into(),
            source,
        })?;
    let mut names: Vec<String> = installed
        .iter()
        .filter(|c| established(c))
        .map(|c| c.name_any())
        .collect();
    names.sort();
    let mut calicos: Vec<String> = crds::read_dir(&crds::calico_dir(cp.binaries()))?
        .into_iter()
        .map(|c| c.name_any())
        .collect();
    calicos.sort();
    assert_eq!(
        names, calicos,
        "every CRD of the pinned Calico release is installed and Established, and nothing else"
    );

    let config_maps: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    let seeded = config_maps
        .get("kubeadm-config")
        .await
        .map_err(|source| HarnessError::Api {
            what: "get kube-system/kubeadm-config".into(),
            source,
        })?;
    let text = &seeded.data.unwrap_or_default()["ClusterConfiguration"];
    let cluster_configuration: serde_json::Value =
        serde_saphyr::from_str(text).expect("ClusterConfiguration is YAML");
    assert_eq!(cluster_configuration["kind"], "ClusterConfiguration");
    assert_eq!(
        cluster_configuration["networking"]["podSubnet"],
        "10.0.0.0/8"
    );
    assert_eq!(
        cluster_configuration["networking"]["serviceSubnet"],
        "10.96.0.0/12"
    );

    // What calico-node would have written: without it Calico's CNI plugin refuses to run, and
    // calicoctl compares its own version with calicoVersion.
    let info = cp.calicoctl(&["get", "clusterinformation", "default", "-o", "json"])?;
    let info: serde_json::Value = serde_json::from_str(&info).expect("calicoctl prints JSON");
    assert_eq!(info["spec"]["datastoreReady"], true);
    assert_eq!(info["spec"]["calicoVersion"], "v3.31.0");
    cp.judge_ipam(&Expected::clean());
    Ok(())
}

#[tokio::test]
async fn the_controller_manager_turns_a_deployment_into_pods() -> Result<(), HarnessError> {
    let cp = ControlPlane::start()?;
    let client = cp.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]}
            }
        }
    }))
    .expect("a valid Deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .map_err(|source| HarnessError::Api {
            what: "create Deployment default/web".into(),
            source,
        })?;

    // No scheduler and no kubelet: the pods exist, owned by the ReplicaSet, and stay Pending.
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let created = wait_for_all(
        &pods,
        watcher::Config::default().labels("app=web"),
        "3 pods of Deployment web",
        |pods| pods.len() == 3,
        Duration::from_secs(60),
    )
    .await?;
    for pod in &created {
        let owner = &pod.owner_references()[0];
        assert_eq!(
            owner.kind,
            "ReplicaSet",
            "{} is owned by the Deployment's ReplicaSet",
            pod.name_any()
        );
        assert!(owner.name.starts_with("web-"));
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Pending")
        );
    }
    Ok(())
}

#[tokio::test]
async fn down_stops_every_recorded_process() -> Result<(), HarnessError> {
    let mut cp = ControlPlane::start()?;
    let started = cp.processes()?;
    let names: Vec<&str> = started.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kube-controllers"
        ]
    );
    assert!(
        started.iter().all(|p| p.is_running()),
        "all running after start: {started:?}"
    );

    cp.stop()?;
    let left: Vec<_> = cp
        .processes()?
        .into_iter()
        .filter(|p| p.is_running())
        .collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    Ok(())
}

#[tokio::test]
async fn a_panicking_test_still_tears_the_control_plane_down() -> Result<(), HarnessError> {
    let cp = ControlPlane::start()?;
    let started = cp.processes()?;
    let dir = cp.dir().to_owned();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _cp = cp;
        panic!("a failing assertion in a test");
    }));
    assert!(outcome.is_err());
    let left: Vec<_> = started.iter().filter(|p| p.is_running()).collect();
    assert!(left.is_empty(), "still running after the panic: {left:?}");
    assert!(
        dir.join("kube-apiserver.log").is_file(),
        "the logs are kept for a failed test"
    );
    std::fs::remove_dir_all(&dir).map_err(|source| HarnessError::Io { path: dir, source })?;
    Ok(())
}

#[tokio::test]
async fn the_v3_preview_crd_adds_the_projectcalico_org_group() -> Result<(), HarnessError> {
    let cp = ControlPlane::start()?;
    let client = cp.client().await;
    cp.install_v3_crd().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = wait_for(
        &crds,
        "ippools.projectcalico.org",
        conditions::is_crd_established(),
        Duration::from_secs(10),
    )
    .await?
    .expect("an Established CRD exists");
    assert_eq!(crd.spec.versions[0].name, "v3");

    let group = discovery::group(&client, "projectcalico.org")
        .await
        .map_err(|source| HarnessError::Api {
            what: "discover group projectcalico.org".into(),
            source,
        })?;
    let (resource, _) = group
        .recommended_kind("IPPool")
        .expect("the group serves IPPool");
    assert_eq!(
        (resource.version.as_str(), resource.plural.as_str()),
        ("v3", "ippools")
    );
    Ok(())
}
