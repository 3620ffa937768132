//! Pods that really run (`sim.ippool.dev/run: "true"`): a small HTTP server's lifecycle on a fake
//! node — Ready by its probe, listed by the real EndpointSlice controller, serving its ConfigMap
//! volume and a service-account token bound to it, restarted or failed by restartPolicy when its
//! process is killed, stopped on deletion — and the admission webhook deployed from its own
//! manifests, called by the API server through its Service.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use harness::workloads::*;
use harness::{SimOptions, wait_for, wait_for_all, workspace_bin};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::runtime::{conditions, watcher};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PYTHON: &str = "sim.local/python:3";
const RUN_LABEL: &str = "sim.ippool.dev/run";

async fn with_images(nodes: usize, images: Vec<(String, PathBuf)>) -> SimCluster {
    SimCluster::start_with(SimOptions {
        nodes,
        images,
        ..SimOptions::default()
    })
    .await
}

/// A pod serving `/` over HTTP on its address, port 8080.
fn web_pod(name: &str, restart_policy: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name, RUN_LABEL: "true"}},
        "spec": {
            "hostNetwork": true,
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "web",
                "image": PYTHON,
                "args": ["-m", "http.server", "--bind", "$(POD_IP)", "--directory", "/", "8080"],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/srv/web/index.html", "port": "http"},
                                   "periodSeconds": 1},
                "volumeMounts": [{"name": "content", "mountPath": "/srv/web", "readOnly": true}],
            }],
            "volumes": [{"name": "content", "configMap": {"name": "web"}}],
        }
    }))
    .expect("a pod")
}

/// `GET path` over HTTP/1.0: the status code and body.
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connecting to {address}: {e}"));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    (status.unwrap_or(0), body.to_owned())
}

/// PIDs of this host's processes whose command line has all of `parts`.
fn processes_with(parts: &[&str]) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if parts.iter().all(|p| line.contains(p)) {
            found.push(pid);
        }
    }
    found
}

fn kill9(pid: i32) {
    let status = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -9 {pid}");
}

fn ip_of(pod: &Pod) -> IpAddr {
    pod_ips(pod).first().copied().expect("a pod IP")
}

async fn wait_pod(
    api: &Api<Pod>,
    name: &str,
    what: &str,
    done: impl Fn(&Pod) -> bool + Send + 'static,
) -> Pod {
    wait_for(
        api,
        name,
        move |p: Option<&Pod>| p.is_some_and(&done),
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {what}: {e}"))
    .expect("the pod")
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(0, |c| c.restart_count)
}

#[tokio::test]
async fn a_running_pod_serves_through_its_service_and_follows_its_process() {
    let env = with_images(
        2,
        vec![(PYTHON.to_owned(), PathBuf::from("/usr/bin/python3"))],
    )
    .await;
    let client = &env.client;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let content = "hello from a ConfigMap volume";
    let config_map: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "data": {"index.html": content}}),
    )
    .unwrap();
    Api::<ConfigMap>::default_namespaced(client.clone())
        .create(&PostParams::default(), &config_map)
        .await
        .expect("ConfigMap");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web-always"},
        "spec": {"selector": {"app": "web-always"}, "ports": [{"port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    Api::<Service>::default_namespaced(client.clone())
        .create(&PostParams::default(), &service)
        .await
        .expect("Service");
    for (name, policy) in [("web-always", "Always"), ("web-never", "Never")] {
        pods.create(&PostParams::default(), &web_pod(name, policy))
            .await
            .expect("pod");
    }
    let always = wait_running(client, "default", "app=web-always", 1)
        .await
        .remove(0);
    let ip = ip_of(&always);
    let node_range: ipnet::IpNet = "198.18.0.0/15".parse().unwrap();
    assert!(
        node_range.contains(&ip),
        "the pod runs on its node's address, got {ip}"
    );
    assert_eq!(
        always.status.as_ref().and_then(|s| s.host_ip.as_deref()),
        Some(ip.to_string().as_str())
    );

    // The real EndpointSlice controller lists it; the address it lists serves the volume.
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let listed = wait_for_all(
        &slices,
        watcher::Config::default().labels("kubernetes.io/service-name=web-always"),
        "an EndpointSlice of web-always with one ready endpoint",
        |slices: &[EndpointSlice]| {
            slices
                .iter()
                .flat_map(|s| &s.endpoints)
                .any(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        },
        TIMEOUT,
    )
    .await
    .expect("EndpointSlice");
    let slice = listed.iter().find(|s| !s.endpoints.is_empty()).unwrap();
    let endpoint: IpAddr = slice.endpoints[0].addresses[0].parse().unwrap();
    let port = slice.ports.as_ref().unwrap()[0].port.unwrap();
    assert_eq!((endpoint, port), (ip, 8080));
    let address = SocketAddr::new(endpoint, 8080);
    assert_eq!(
        get(address, "/srv/web/index.html").await,
        (200, content.to_owned())
    );

    // Its service-account token is one the API server issued for this pod.
    let (status, token) = get(
        address,
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    )
    .await;
    assert_eq!(status, 200);
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("TokenReview");
    let status = reviewed.status.expect("review status");
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    let user = status.user.expect("user");
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:default:default")
    );
    let extra = user.extra.unwrap_or_default();
    assert_eq!(
        extra["authentication.kubernetes.io/pod-name"],
        vec!["web-always".to_owned()]
    );

    // Killing the process restarts it under Always ...
    let server = [ip.to_string(), "http.server".to_owned()];
    let pids = processes_with(&[&server[0], &server[1]]);
    assert_eq!(pids.len(), 1, "one server process on {ip}: {pids:?}");
    kill9(pids[0]);
    wait_pod(&pods, "web-always", "restarted and Ready", |p| {
        restarts(p) == 1 && is_running_and_ready(p)
    })
    .await;
    assert_eq!(get(address, "/srv/web/index.html").await.0, 200);

    // ... and fails the pod under Never.
    let never = wait_running(client, "default", "app=web-never", 1)
        .await
        .remove(0);
    let never_ip = ip_of(&never).to_string();
    let pids = processes_with(&[&never_ip, "http.server"]);
    assert_eq!(pids.len(), 1, "{pids:?}");
    kill9(pids[0]);
    let failed = wait_pod(&pods, "web-never", "Failed", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await;
    let state = failed.status.unwrap().container_statuses.unwrap()[0].clone();
    assert_eq!(state.state.unwrap().terminated.unwrap().exit_code, 137);

    // Deletion stops the process before the pod goes.
    let deleted = pods
        .delete("web-always", &DeleteParams::default())
        .await
        .expect("delete");
    let uid = deleted.left().and_then(|p| p.metadata.uid).expect("uid");
    kube::runtime::wait::await_condition(pods.clone(), "web-always", conditions::is_deleted(&uid))
        .await
        .expect("deleted");
    assert!(
        processes_with(&[&server[0], &server[1]]).is_empty(),
        "the server was stopped"
    );
}

/// The webhook's own manifests (`kubectl ippool webhook manifest`), its pods selected to run.
fn webhook_manifest() -> Vec<Value> {
    let output = Command::new(workspace_bin("kubectl-ippool"))
        .args(["webhook", "manifest"])
        .output()
        .expect("kubectl-ippool webhook manifest");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let mut documents: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    for document in &mut documents {
        if document["kind"] == "Deployment" {
            document["spec"]["template"]["metadata"]["labels"][RUN_LABEL] = json!("true");
        }
    }
    documents
}

#[tokio::test]
async fn the_admission_webhook_runs_from_its_manifests_and_judges_pool_writes() {
    let documents = webhook_manifest();
    let image = deployment_image(&documents);
    let env = with_images(2, vec![(image, workspace_bin("admission-webhook"))]).await;
    let client = &env.client;
    apply(&env.cp, &documents);

    let selector = "app.kubernetes.io/name=ippool-admission-webhook";
    let running = wait_running(client, "ippool-system", selector, 2).await;
    let ips: Vec<IpAddr> = running.iter().map(ip_of).collect();
    assert_ne!(ips[0], ips[1], "one replica per node");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "ippool-system");
    wait_for_all(
        &slices,
        watcher::Config::default().labels("kubernetes.io/service-name=ippool-admission-webhook"),
        "both webhook replicas ready in the Service's EndpointSlice",
        |slices: &[EndpointSlice]| {
            let ready: Vec<&String> = slices
                .iter()
                .flat_map(|s| &s.endpoints)
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .flat_map(|e| &e.addresses)
                .collect();
            ready.len() == 2
        },
        TIMEOUT,
    )
    .await
    .expect("EndpointSlice");

    let pools = Api::<DynamicObject>::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("crd.projectcalico.org", "v1", "IPPool"),
            "ippools",
        ),
    );
    let pool = |name: &str, cidr: &str| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": name},
            "spec": {"cidr": cidr, "blockSize": 26, "ipipMode": "Never", "vxlanMode": "Never",
                     "natOutgoing": true, "nodeSelector": "all()"}
        }))
        .unwrap()
    };
    // Outside the cluster's pod CIDR (10.0.0.0/8, from kubeadm-config): refused by the webhook.
    let refused = pools
        .create(&PostParams::default(), &pool("outside", "192.168.0.0/16"))
        .await
        .expect_err("a pool outside the cluster CIDR is refused");
    let kube::Error::Api(status) = refused else {
        panic!("expected the API server's refusal, got {refused}");
    };
    assert!(
        status
            .message
            .contains("admission webhook \"ippools.admission.ippool.dev\" denied the request")
            && status.message.contains("192.168.0.0/16"),
        "{}",
        status.message
    );
    pools
        .create(&PostParams::default(), &pool("inside", "10.50.0.0/16"))
        .await
        .expect("a pool inside the cluster CIDR is admitted");
}
