//! Against a real control plane: the webhook runs as a local process on 127.0.0.1, registered with
//! a ValidatingWebhookConfiguration by URL and caBundle, and `kubectl` (the client users have) shows
//! what the API server now refuses, what it allows, and that warnings reach the user.
//!
//! Skipped with a notice when the control-plane binaries are missing (an error with `CI` set).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::workloads::{IPIP_TUNNEL_ANNOTATION, wait_tunnel_addresses};
use harness::{ControlPlane, Expected, Sim, SimOptions, wait_for_all, workspace_bin};
use ipnet::IpNet;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::watcher;
use serde_json::json;
use webhook_manifest::registration::validating_webhook_configuration;
use webhook_manifest::tls::generate_tls;
use webhook_manifest::{self as manifest, Options};

const KUBECTL: &str = "/usr/bin/kubectl";
const STARTUP: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(120);

struct Kubectl {
    kubeconfig: PathBuf,
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl 1.32 at /usr/bin/kubectl");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let output = child.wait_with_output().unwrap();
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn apply(&self, yaml: &str) -> Run {
        self.run(&["apply", "-f", "-"], Some(yaml))
    }

    fn delete_pool(&self, name: &str) -> Run {
        self.run(&["delete", "ippools.crd.projectcalico.org", name], None)
    }
}

/// Asserts the API server refused with our webhook's message carrying each text.
fn assert_refused(run: &Run, texts: &[&str]) {
    assert!(
        !run.ok,
        "expected a refusal, got success: {}{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "admission webhook \"{}\" denied the request",
            manifest::WEBHOOK_NAME
        )),
        "refused, but not by the webhook: {}",
        run.stderr
    );
    for text in texts {
        assert!(
            run.stderr.contains(text),
            "missing {text:?} in: {}",
            run.stderr
        );
    }
}

fn assert_allowed(run: &Run) {
    assert!(run.ok, "expected success: {}{}", run.stdout, run.stderr);
}

fn v1_pool(name: &str, cidr: &str, extra: &str) -> String {
    format!(
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n  blockSize: 26\n  ipipMode: Always\n  natOutgoing: true\n{extra}"
    )
}

/// The webhook binary as a child process, its log in the control plane's folder.
struct WebhookProcess {
    child: Child,
    port: u16,
    ca_pem: String,
}

impl Drop for WebhookProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the webhook and returns once it serves and its watches have listed everything (it logs
/// both; the log lines are the events waited for).
fn start_webhook(cp: &ControlPlane, extra: &[&str]) -> WebhookProcess {
    let tls = generate_tls(&["127.0.0.1".to_owned()]).unwrap();
    let dir = cp.dir().join("webhook-tls");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tls.crt"), &tls.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &tls.key_pem).unwrap();
    let port = free_port();
    let mut child = Command::new(workspace_bin("admission-webhook"))
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--tls-cert={}", dir.join("tls.crt").display()))
        .arg(format!("--tls-key={}", dir.join("tls.key").display()))
        .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
        .args(extra)
        .env("RUST_LOG", "info,admission_webhook=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log_path = cp.dir().join("admission-webhook.log");
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let log_for_thread = log_path.clone();
    std::thread::spawn(move || {
        let mut log = std::fs::File::create(&log_for_thread).unwrap();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + STARTUP;
    let (mut serving, mut synced) = (false, false);
    while !(serving && synced) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                serving |= line.contains("serving HTTPS");
                synced |= line.contains("cluster view synced");
            }
            Err(_) => panic!(
                "the webhook did not become ready (serving {serving}, synced {synced}); log: {}",
                read(&log_path)
            ),
        }
    }
    WebhookProcess {
        child,
        port,
        ca_pem: tls.ca_pem,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Registers the webhook by URL and waits until the API server calls it.
async fn register(cp: &ControlPlane, webhook: &WebhookProcess) {
    let client = cp.client().await;
    let config = validating_webhook_configuration(
        manifest::NAME,
        WebhookClientConfig {
            url: Some(format!("https://127.0.0.1:{}/validate", webhook.port)),
            ca_bundle: Some(ByteString(webhook.ca_pem.clone().into_bytes())),
            service: None,
        },
        None,
    );
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    // The API server loads webhook configurations through its own informer, which nothing outside
    // it can watch: probe with a server-side dry run that only the webhook refuses until it does.
    let pools =
        Api::<DynamicObject>::all_with(client, &pool_resource("crd.projectcalico.org", "v1"));
    let canary: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": "registration-canary"},
        "spec": {"cidr": "10.255.0.0/24", "blockSize": 33}
    }))
    .unwrap();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + STARTUP;
    loop {
        match pools.create(&dry_run, &canary).await {
            Err(kube::Error::Api(status)) if status.message.contains("IPP022") => return,
            other if Instant::now() > deadline => {
                panic!("the API server does not call the webhook: last answer {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn pool_resource(group: &str, version: &str) -> ApiResource {
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: format!("{group}/{version}"),
        kind: "IPPool".to_owned(),
        plural: "ippools".to_owned(),
    }
}

/// A Deployment `web` of `replicas` pods in `default`.
async fn create_web(client: &kube::Client, replicas: i32) {
    let web: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &web)
        .await
        .unwrap();
}

fn addresses_in(pods: &[Pod], prefix: &str) -> usize {
    pods.iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .is_some_and(|ip| ip.starts_with(prefix))
        })
        .count()
}

/// Waits until the namespace holds exactly `count` pods, all with an address starting with `prefix`.
async fn wait_for_pods_in(pods: &Api<Pod>, count: usize, prefix: &str) {
    wait_for_all(
        pods,
        watcher::Config::default().labels("app=web"),
        &format!("{count} web pods with addresses in {prefix}*"),
        |all| all.len() == count && addresses_in(all, prefix) == count,
        SETTLE,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_refuses_unsafe_pool_changes_and_allows_the_migration_order() {
    let cp = ControlPlane::start().unwrap();
    let kubectl = Kubectl {
        kubeconfig: cp.kubeconfig().to_owned(),
    };
    const OPERATOR: &str = "system:serviceaccount:tigera-operator:tigera-operator";
    let webhook = start_webhook(&cp, &[&format!("--exempt={OPERATOR}")]);
    register(&cp, &webhook).await;

    // The pool pods start in. The harness seeds kubeadm-config with podSubnet 10.0.0.0/8.
    assert_allowed(&kubectl.apply(&v1_pool("old", "10.1.0.0/16", "")));

    let bad_block = kubectl.apply(
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata:\n  name: bad-block\nspec:\n  cidr: 10.9.0.0/16\n  blockSize: 33\n",
    );
    assert_refused(&bad_block, &["IPP022", "spec.blockSize"]);
    let outside = kubectl.apply(&v1_pool("outside", "192.168.0.0/16", ""));
    assert_refused(&outside, &["IPP050", "kubeadm-config"]);
    let resize =
        kubectl.apply(&v1_pool("old", "10.1.0.0/16", "").replace("blockSize: 26", "blockSize: 24"));
    assert_refused(&resize, &["IPP061", "kubectl ippool resize"]);
    let recidr = kubectl.apply(&v1_pool("old", "10.3.0.0/16", ""));
    assert_refused(&recidr, &["IPP060", "kubectl ippool migrate"]);
    assert_refused(&kubectl.delete_pool("old"), &["IPP070", "disable it first"]);
    let dry_run = kubectl.run(
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&v1_pool("outside", "192.168.0.0/16", "")),
    );
    assert_refused(&dry_run, &["IPP050"]);

    // An exempt requester (impersonated) gets through, told what would have been refused.
    let exempt = kubectl.run(
        // The impersonated operator gets RBAC from the admin group; the exemption is by user name.
        &[
            "apply",
            "--as",
            OPERATOR,
            "--as-group",
            "system:masters",
            "-f",
            "-",
        ],
        Some(
            &v1_pool("operator-managed", "10.8.0.0/16", "  disabled: true\n")
                .replace("blockSize: 26", "blockSize: 33"),
        ),
    );
    assert_allowed(&exempt);
    assert!(exempt.stderr.contains("Warning: exempt (user system:serviceaccount:tigera-operator:tigera-operator), would be denied: IPP022"), "{}", exempt.stderr);

    // Pods take addresses in the old pool.
    let sim = Sim::start(&cp, SimOptions::default()).unwrap();
    let client = cp.client().await;
    create_web(&client, 4).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for_pods_in(&pods, 4, "10.1.").await;

    // The documented migration: new pool first, then disable the old one...
    assert_allowed(&kubectl.apply(&v1_pool("new", "10.2.0.0/16", "")));
    let disable = kubectl.apply(&v1_pool("old", "10.1.0.0/16", "  disabled: true\n"));
    assert_allowed(&disable);
    // calico-node moves the nodes' IPIP tunnel addresses to the enabled pool; what is left in the
    // old one is the pods' addresses.
    let new_pool: IpNet = "10.2.0.0/16".parse().unwrap();
    wait_tunnel_addresses(
        &client,
        &sim.options().node_names(),
        IPIP_TUNNEL_ANNOTATION,
        "tunnel addresses in the new pool",
        |a| a.is_some_and(|a| new_pool.contains(&a)),
    )
    .await;
    // ...which may not be deleted while its blocks hold the pods' addresses...
    assert_refused(
        &kubectl.delete_pool("old"),
        &["IPP071", "4 addresses in use"],
    );
    // ...until the pods have moved.
    assert_allowed(&kubectl.run(&["delete", "pods", "-l", "app=web", "--wait=false"], None));
    wait_for_pods_in(&pods, 4, "10.2.").await;
    assert_allowed(&kubectl.delete_pool("old"));

    // Warnings reach the user: disabling the last enabled pool while pods run is allowed, with a
    // warning on kubectl's stderr.
    let last = kubectl.apply(&v1_pool("new", "10.2.0.0/16", "  disabled: true\n"));
    assert_allowed(&last);
    assert!(last.stderr.contains("Warning: IPP072"), "{}", last.stderr);
    // Addresses allocated in a pool since disabled are no IPAM problem (calicoctl asks about
    // pools only for addresses without an allocation).
    cp.judge_ipam(&Expected::clean());
    drop(webhook);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_pools_are_judged_and_checked_against_v1_pools() {
    let cp = ControlPlane::start().unwrap();
    cp.install_v3_crd().await.unwrap();
    let kubectl = Kubectl {
        kubeconfig: cp.kubeconfig().to_owned(),
    };
    let webhook = start_webhook(&cp, &[]);
    register(&cp, &webhook).await;

    assert_allowed(&kubectl.apply(&v1_pool("v1-pool", "10.1.0.0/16", "")));
    let v3 = |name: &str, cidr: &str, block: u8| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n  blockSize: {block}\n"
        )
    };
    assert_refused(&kubectl.apply(&v3("bad", "10.5.0.0/16", 33)), &["IPP022"]);
    // The view holds the pools of both groups: a v3 pool over a v1 pool is an overlap.
    assert_refused(
        &kubectl.apply(&v3("over", "10.1.128.0/17", 26)),
        &["IPP080", "v1-pool"],
    );
    assert_allowed(&kubectl.apply(&v3("fine", "10.6.0.0/16", 26)));
    let resize = kubectl.apply(&v3("fine", "10.6.0.0/16", 28));
    assert_refused(&resize, &["IPP061"]);
    drop(webhook);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_manifests_pass_a_server_side_dry_run() {
    let cp = ControlPlane::start().unwrap();
    let kubectl = Kubectl {
        kubeconfig: cp.kubeconfig().to_owned(),
    };
    let options = Options::self_signed("ippool-system", &manifest::default_image()).unwrap();
    let documents = manifest::documents(&options).unwrap();
    // A dry run creates nothing, so the namespaced objects need their namespace for real.
    assert_allowed(&kubectl.run(&["create", "namespace", "ippool-system"], None));
    // policy/v1 PodDisruptionBudgets arrived in Kubernetes 1.21; this control plane is 1.20.
    let served = kubectl.run(&["api-versions"], None);
    let pdb_served = served.stdout.lines().any(|l| l == "policy/v1");
    let applicable: Vec<_> = documents
        .into_iter()
        .filter(|d| d.kind != "Namespace" && (pdb_served || d.kind != "PodDisruptionBudget"))
        .collect();
    let kinds: Vec<&str> = applicable.iter().map(|d| d.kind.as_str()).collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "Deployment",
        "ValidatingWebhookConfiguration",
    ] {
        assert!(kinds.contains(&kind), "{kind} is checked");
    }
    let yaml = manifest::render_documents(&applicable).unwrap();
    let run = kubectl.run(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml));
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("deployment.apps/ippool-admission-webhook created (server dry run)"),
        "{}",
        run.stdout
    );

    // The checked-in cert-manager rendering differs only in its TLS objects; its core objects
    // are the same kinds and pass too (cert-manager's own kinds need cert-manager installed).
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/ippool-admission-webhook.yaml"
    ))
    .unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&on_disk).unwrap();
    let core: Vec<manifest::Document> = docs
        .into_iter()
        .filter(|d| {
            let api_version = d["apiVersion"].as_str().unwrap_or("");
            let kind = d["kind"].as_str().unwrap_or("");
            !api_version.starts_with("cert-manager.io/")
                && kind != "Namespace"
                && (pdb_served || kind != "PodDisruptionBudget")
        })
        .map(|value| manifest::Document {
            api_version: value["apiVersion"].as_str().unwrap().to_owned(),
            kind: value["kind"].as_str().unwrap().to_owned(),
            value,
        })
        .collect();
    let run = kubectl.run(
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&manifest::render_documents(&core).unwrap()),
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
}

/// A plain-HTTP GET of `path` on 127.0.0.1:`port`: the body, or `None` when nothing answers yet.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// The value of the sample `name{labels}` (labels as written, e.g. `ippool="a"`) in an exposition.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let rest = rest.strip_prefix('{')?;
        let (got, value) = rest.split_once("} ")?;
        let mut got: Vec<&str> = got.split(',').collect();
        got.retain(|l| !l.is_empty());
        let wanted: Vec<&str> = labels.split(',').collect();
        wanted
            .iter()
            .all(|w| got.contains(w))
            .then(|| value.trim().parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_metrics_agree_with_capacity_and_calicos_own() {
    let cp = ControlPlane::start().unwrap();
    let kubectl = Kubectl {
        kubeconfig: cp.kubeconfig().to_owned(),
    };
    assert_allowed(&kubectl.apply(&v1_pool("small", "10.1.0.0/24", "")));
    let sim = Sim::start(&cp, SimOptions::default()).unwrap();
    let client = cp.client().await;
    create_web(&client, 3).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for_pods_in(&pods, 3, "10.1.0.").await;
    // Calico's tunnel allocator takes each node's address too: wait for it, so the counts hold still.
    let small: IpNet = "10.1.0.0/24".parse().unwrap();
    wait_tunnel_addresses(
        &client,
        &sim.options().node_names(),
        IPIP_TUNNEL_ANNOTATION,
        "tunnel addresses in the pool",
        |a| a.is_some_and(|a| small.contains(&a)),
    )
    .await;

    // Every node holds its one block of the pool: at a limit of one, each is at its limit.
    // (Calico's IPAM wrote IPAMConfig "default" when it first allocated: apply over it.)
    let config = json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMConfig",
        "metadata": {"name": "default"},
        "spec": {"strictAffinity": false, "autoAllocateBlocks": true, "maxBlocksPerHost": 1}
    });
    let ipam_configs = ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("crd.projectcalico.org", "v1", "IPAMConfig"),
        "ipamconfigs",
    );
    Api::<DynamicObject>::all_with(client.clone(), &ipam_configs)
        .patch(
            "default",
            &kube::api::PatchParams::apply("test").force(),
            &kube::api::Patch::Apply(&config),
        )
        .await
        .unwrap();

    let metrics_port = free_port();
    let _webhook = start_webhook(
        &cp,
        &[&format!("--metrics-listen=127.0.0.1:{metrics_port}")],
    );
    let capacity = Command::new(workspace_bin("kubectl-ippool"))
        .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
        .args(["capacity", "small", "-o", "json"])
        .output()
        .unwrap();
    assert!(capacity.status.success(), "{capacity:?}");
    let doc: serde_json::Value = serde_json::from_slice(&capacity.stdout).unwrap();
    let pool = &doc["items"][0];
    let ours = http_get(metrics_port, "/metrics").expect("the webhook serves /metrics");
    let number = |v: &serde_json::Value| v.as_f64().unwrap();
    assert_eq!(
        sample(
            &ours,
            "ippool_webhook_pool_blocks_claimable",
            r#"ippool="small""#
        ),
        Some(number(&pool["blocksClaimable"])),
        "{ours}"
    );
    assert_eq!(
        sample(
            &ours,
            "ippool_webhook_pool_addresses_stranded",
            r#"ippool="small""#
        ),
        Some(number(&pool["addressesStranded"])),
        "{ours}"
    );
    assert!(
        ours.contains("ippool_webhook_blocks_without_pool 0"),
        "{ours}"
    );
    let at_limit = pool["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["atBlockLimit"] == true)
        .count();
    assert_eq!(at_limit, sim.options().node_names().len(), "{pool}");
    // The IPAMConfig watch is not part of the view's sync: read until its limit shows.
    let deadline = Instant::now() + SETTLE;
    loop {
        let ours = http_get(metrics_port, "/metrics").unwrap_or_default();
        let shown = sample(
            &ours,
            "ippool_webhook_pool_nodes_at_block_limit",
            r#"ippool="small""#,
        );
        if shown == Some(at_limit as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the webhook never counted {at_limit} nodes at the block limit:\n{ours}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // calico-kube-controllers' own metrics give the pool's size and the addresses in use; its IPAM
    // controller publishes them after a sync of its own, so they are read until they agree.
    let port: u16 = read(&cp.dir().join("kube-controllers-metrics-port"))
        .trim()
        .parse()
        .unwrap();
    let in_use = number(&pool["addressesInUse"]);
    let deadline = Instant::now() + SETTLE;
    loop {
        let theirs = http_get(port, "/metrics").unwrap_or_default();
        let size = sample(&theirs, "ipam_ippool_size", r#"ippool="small""#);
        let used: f64 = theirs
            .lines()
            .filter(|l| {
                l.starts_with("ipam_allocations_in_use{") && l.contains(r#"ippool="small""#)
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        if size == Some(number(&pool["addressesTotal"])) && used == in_use {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "calico-kube-controllers' metrics never agreed with capacity (size {size:?}, in use \
             {used}, capacity {pool}):\n{theirs}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    cp.judge_ipam(&Expected::clean());
}
