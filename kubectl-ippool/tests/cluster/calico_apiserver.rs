//! The Calico 3.31 layout: `projectcalico.org/v3` served by Calico's own API server (v3.31.0's
//! `calico-apiserver`, installed from Calico's manifest and running as a pod on a calico-sim node),
//! aggregated by kube-apiserver as the APIService `v3.projectcalico.org`. Discovery finds the v3
//! group, kubectl lists and creates v3 IPPools through it, Calico's API server stores them as
//! `crd.projectcalico.org/v1` IPPools, and the plugin reads and writes pools through v3.

use std::path::Path;
use std::process::Command;

use harness::workloads::*;
use harness::{SimOptions, upstream_binaries, wait_for};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

const RUN_LABEL: &str = "sim.ippool.dev/run";
const NAMESPACE: &str = "calico-apiserver";
/// The name kube-apiserver verifies the serving certificate against: `<service>.<namespace>.svc`.
const SERVICE_HOST: &str = "calico-api.calico-apiserver.svc";

/// Calico's manifest (`tests/cluster/calico-apiserver.yaml`, a verbatim copy), with what a fake node
/// needs changed in the Deployment's pod template.
fn manifest() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/cluster/calico-apiserver.yaml");
    let text = std::fs::read_to_string(&path).expect("Calico's API server manifest");
    let mut documents: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    documents.retain(|d| !d.is_null());
    let deployment = documents
        .iter_mut()
        .find(|d| d["kind"] == "Deployment")
        .expect("the manifest's Deployment");
    let template = &mut deployment["spec"]["template"];
    // Run the container for real (calico-sim's opt-in).
    template["metadata"]["labels"][RUN_LABEL] = json!("true");
    let container = &mut template["spec"]["containers"][0];
    // The image's WORKDIR (apiserver/Dockerfile), which the relative default --cert-dir
    // (apiserver.local.config/certificates, where the manifest mounts the Secret) is resolved in.
    container["workingDir"] = json!("/code");
    // Every sim pod shares the host's network: listen on the pod's (node's) address only, so that
    // clusters of concurrent tests do not contend for 0.0.0.0:5443.
    container["args"]
        .as_array_mut()
        .expect("args")
        .push(json!("--bind-address=$(POD_IP)"));
    container["env"]
        .as_array_mut()
        .expect("env")
        .push(json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}));
    // The manifest probes every 60 s; a first probe that comes before the server listens would
    // then hold the pod unready for a minute. The probe itself (HTTPS /readyz on 5443) is Calico's.
    container["readinessProbe"]["periodSeconds"] = json!(1);
    documents
}

/// A self-signed serving certificate and its key (PEM) for `SERVICE_HOST`, made the way Calico's
/// manifest install documents (openssl).
fn serving_certificate(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let (cert, key) = (dir.join("apiserver.crt"), dir.join("apiserver.key"));
    let output = Command::new("openssl")
        .args([
            "req", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={SERVICE_HOST}")])
        .args(["-addext", &format!("subjectAltName=DNS:{SERVICE_HOST}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        std::fs::read(cert).expect("certificate"),
        std::fs::read(key).expect("key"),
    )
}

fn crd_pools(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("crd.projectcalico.org", "v1", "IPPool"),
            "ippools",
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn calico_api_server_serves_v3_pools_to_kubectl_and_the_plugin() {
    let documents = manifest();
    let binaries = upstream_binaries().unwrap_or_else(|e| panic!("{e}"));
    let env = SimCluster::start_with(SimOptions {
        nodes: 1,
        images: vec![(
            deployment_image(&documents),
            binaries.join("calico-apiserver"),
        )],
        ..SimOptions::default()
    })
    .await;
    let client = &env.client;

    apply(&env.cp, &documents);
    // The serving certificate: the Secret the Deployment mounts, and the APIService's caBundle.
    let pki = tempfile::tempdir().expect("temporary directory");
    let (cert, key) = serving_certificate(pki.path());
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "calico-apiserver-certs", "namespace": NAMESPACE},
        "data": {
            "apiserver.crt": k8s_openapi::ByteString(cert.clone()),
            "apiserver.key": k8s_openapi::ByteString(key),
        }
    }))
    .expect("a Secret");
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("the certificate Secret");
    let api_services: Api<APIService> = Api::all(client.clone());
    api_services
        .patch(
            "v3.projectcalico.org",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"caBundle": k8s_openapi::ByteString(cert)}})),
        )
        .await
        .expect("caBundle set");

    wait_running(client, NAMESPACE, "apiserver=true", 1).await;
    // Available means kube-apiserver reached the pod through the Service's endpoints, trusted its
    // certificate and got its discovery document.
    wait_for(
        &api_services,
        "v3.projectcalico.org",
        |s: Option<&APIService>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                })
        },
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Discovery: the v3 group is the aggregated one, not a CRD.
    let resources = kubectl(
        &env.cp,
        &["api-resources", "--api-group=projectcalico.org"],
        "",
    );
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("ippools ") && l.contains("projectcalico.org/v3")),
        "{resources}"
    );

    // A projectcalico.org/v3 IPPool created through Calico's API server is stored as a
    // crd.projectcalico.org/v1 IPPool.
    let v3_pool = json!({
        "apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": "blue"},
        "spec": {"cidr": "10.20.0.0/16", "blockSize": 26, "ipipMode": "Never",
                 "vxlanMode": "Always", "natOutgoing": true, "nodeSelector": "all()"}
    });
    let created = kubectl(&env.cp, &["create", "-f", "-"], &v3_pool.to_string());
    assert_eq!(created, "ippool.projectcalico.org/blue created\n");
    let listed = kubectl(
        &env.cp,
        &["get", "ippools.projectcalico.org", "-o", "json"],
        "",
    );
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    let blue = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["metadata"]["name"] == "blue")
        .unwrap_or_else(|| panic!("blue in the v3 list: {listed}"));
    assert_eq!(blue["apiVersion"], "projectcalico.org/v3");
    assert_eq!(blue["spec"]["cidr"], "10.20.0.0/16");
    let stored = crd_pools(client)
        .get("blue")
        .await
        .expect("blue stored in crd.projectcalico.org/v1");
    assert_eq!(stored.data["spec"]["cidr"], "10.20.0.0/16");
    assert_eq!(stored.data["spec"]["vxlanMode"], "Always");

    // The plugin discovers the v3 group and reads the pool through it.
    let run =
        crate::support::ippool(&env.cp, &["-v", "list", "-o", "wide", "--no-headers"]).expect(0);
    assert!(
        run.stderr.contains(
            "IP pools via projectcalico.org/v3 (the cluster serves projectcalico.org/v3)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("blue ") && l.contains("10.20.0.0/16")),
        "{}",
        run.stdout
    );

    // And writes through it: Calico's API server validates and stores the plugin's pool.
    let red =
        crate::support::ippool(&env.cp, &["create", "red", "--cidr", "10.30.0.0/16"]).expect(0);
    assert_eq!(red.stdout, "ippool.projectcalico.org/red created\n");
    let stored = crd_pools(client)
        .get("red")
        .await
        .expect("red stored in crd.projectcalico.org/v1");
    assert_eq!(stored.data["spec"]["cidr"], "10.30.0.0/16");
}
