//! The webhook's availability is the cluster's: registered with `failurePolicy: Fail`, every pool
//! write waits on it. Here it runs as its own manifests deploy it — two replicas on the host
//! network, anti-affinity, a PodDisruptionBudget — as real processes on calico-sim's nodes, the
//! API server calling it through its Service's endpoints, while clients keep writing pools
//! through the API server (server-side dry runs, half of them refused by a rule). Then:
//! - one replica is killed (SIGKILL): writes keep their verdicts; the calls that reached it before
//!   it left the endpoints fail and are counted; none may fail once the Deployment has its two
//!   replicas back;
//! - one replica is deleted as a rollout or a drain deletes it: no write fails (the replica goes on
//!   answering, not ready, for its `--shutdown-delay`; `IPPOOL_TEST_SHUTDOWN_DELAY=0s` measures
//!   without);
//! - the API server is restarted while the webhook serves: once it is back, verdicts are right at
//!   once, including those that need the webhook's watch-fed view (an overlap with a pool created
//!   before the restart).
//!
//! The counts go to stdout and, as the benches write their figures, to
//! `$CARGO_TARGET_DIR/bench-results/webhook-availability.json` (README's table; with
//! `IPPOOL_TEST_SHUTDOWN_DELAY=0s`, `webhook-availability-shutdown-delay-0s.json`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_record::Record;
use harness::{ControlPlane, Sim, SimOptions, wait_for, workspace_bin};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::{Api, ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::json;
use webhook_manifest::{self as manifest, Options};

const IMAGE: &str = "ippool.dev/admission-webhook:availability-test";
const NAMESPACE: &str = "ippool-system";
const WORKERS: usize = 4;
const WAIT: Duration = Duration::from_secs(180);
const COMMAND: &str = "cargo nextest run -p admission-webhook --test availability --no-capture";

fn pools(client: kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "crd.projectcalico.org".into(),
        version: "v1".into(),
        api_version: "crd.projectcalico.org/v1".into(),
        kind: "IPPool".into(),
        plural: "ippools".into(),
    };
    Api::all_with(client, &resource)
}

fn pool(name: &str, cidr: &str, block_size: u8) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"cidr": cidr, "blockSize": block_size, "ipipMode": "Never", "natOutgoing": true}
    }))
    .unwrap()
}

/// What one write through the API server came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The verdict the rules give (allowed, or refused with the rule's code).
    Expected,
    /// The API server could not get a verdict from the webhook.
    WebhookFailed,
    /// The API server itself did not answer (it is being restarted).
    ServerAway,
    /// Any other answer: a wrong verdict.
    Wrong,
}

/// Every write the load made: when, and how it came back.
#[derive(Default)]
struct Log {
    writes: Mutex<Vec<(Instant, Outcome, String)>>,
}

impl Log {
    fn count(&self, from: Instant, to: Instant, outcome: Outcome) -> usize {
        self.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, o, _)| *at >= from && *at < to && *o == outcome)
            .count()
    }

    fn total(&self, from: Instant, to: Instant) -> usize {
        self.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _, _)| *at >= from && *at < to)
            .count()
    }

    fn samples(&self, outcome: Outcome) -> Vec<String> {
        let writes = self.writes.lock().unwrap();
        writes
            .iter()
            .filter(|(_, o, _)| *o == outcome)
            .take(3)
            .map(|(_, _, m)| m.clone())
            .collect()
    }
}

/// One dry-run create: `n` even is a valid pool, `n` odd one with blockSize 33 (IPP022).
async fn write(api: &Api<DynamicObject>, n: usize) -> (Outcome, String) {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let valid = n.is_multiple_of(2);
    let candidate = pool(
        &format!("load-{n}"),
        "10.200.0.0/24",
        if valid { 26 } else { 33 },
    );
    match (api.create(&dry_run, &candidate).await, valid) {
        (Ok(_), true) => (Outcome::Expected, String::new()),
        (Err(kube::Error::Api(s)), false) if s.message.contains("IPP022") => {
            (Outcome::Expected, String::new())
        }
        (Err(kube::Error::Api(s)), _) if s.message.contains("failed calling webhook") => {
            (Outcome::WebhookFailed, s.message.clone())
        }
        // "apiserver is shutting down" and the like: the server, not a verdict.
        (Err(kube::Error::Api(s)), _) if s.code >= 500 => (Outcome::ServerAway, s.message.clone()),
        (Err(kube::Error::Api(s)), _) => (Outcome::Wrong, s.message.clone()),
        (Err(e), _) => (Outcome::ServerAway, e.to_string()),
        (Ok(_), false) => (Outcome::Wrong, "an invalid pool was admitted".to_owned()),
    }
}

/// Closed-loop writers, as fast as the API server takes them, until `stop`.
fn load(
    client: kube::Client,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WORKERS)
        .map(|worker| {
            let (api, log, stop) = (pools(client.clone()), log.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = worker;
                while !stop.load(Ordering::Relaxed) {
                    let (outcome, message) = write(&api, n).await;
                    log.writes
                        .lock()
                        .unwrap()
                        .push((Instant::now(), outcome, message));
                    if outcome == Outcome::ServerAway {
                        // Nothing to write to: try again in a moment rather than spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    n += WORKERS;
                }
            })
        })
        .collect()
}

/// Applies the webhook's manifests, its pods labelled to run for real on the sim's nodes.
fn deploy(cp: &ControlPlane) {
    let options = Options::self_signed(NAMESPACE, IMAGE).unwrap();
    let mut documents = manifest::documents(&options).unwrap();
    for document in &mut documents {
        if document.kind == "Deployment" {
            let template = &mut document.value["spec"]["template"];
            template["metadata"]["labels"]["sim.ippool.dev/run"] = json!("true");
            // To measure another shutdown delay than the manifests' (e.g. 0s: none).
            if let Ok(delay) = std::env::var("IPPOOL_TEST_SHUTDOWN_DELAY") {
                let args = template["spec"]["containers"][0]["args"]
                    .as_array_mut()
                    .unwrap();
                args.retain(|a| !a.as_str().unwrap_or("").starts_with("--shutdown-delay"));
                args.push(json!(format!("--shutdown-delay={delay}")));
            }
        }
    }
    let yaml = manifest::render_documents(&documents).unwrap();
    let mut kubectl = std::process::Command::new(cp.binaries().join("kubectl"))
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut kubectl.stdin.take().unwrap(), yaml.as_bytes()).unwrap();
    let applied = kubectl.wait_with_output().unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
}

async fn ready_replicas(client: &kube::Client, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for(
        &deployments,
        manifest::NAME,
        move |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.ready_replicas == Some(replicas) && s.replicas == Some(replicas))
        },
        WAIT,
    )
    .await
    .unwrap();
}

/// Waits until the API server gets the webhook's verdicts (it loads registrations through an
/// informer of its own, which nothing outside it can watch: a dry run only the webhook refuses
/// is the probe).
async fn answering(api: &Api<DynamicObject>) {
    let began = Instant::now();
    loop {
        let (outcome, message) = write(api, 1).await;
        if outcome == Outcome::Expected {
            return;
        }
        assert!(
            began.elapsed() < WAIT,
            "the webhook never answered: {message}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Ready replica of the webhook.
async fn serving_replica(pods: &Api<Pod>) -> Pod {
    let replicas = pods.list(&ListParams::default()).await.unwrap();
    replicas
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .expect("a Ready replica")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until `victim` is gone (or failed) and the Deployment has two Ready replicas again.
async fn replaced(client: &kube::Client, pods: &Api<Pod>, victim: &Pod) {
    wait_for(
        pods,
        &victim.name_any(),
        |p: Option<&Pod>| p.is_none_or(|p| !is_ready(p)),
        WAIT,
    )
    .await
    .unwrap();
    ready_replicas(client, 2).await;
}

/// The process of the webhook replica serving on `ip`.
fn replica_process(ip: &str) -> i32 {
    let wanted = format!("--bind-address={ip}");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args
            .first()
            .is_some_and(|a| a.ends_with("admission-webhook"))
            && args.contains(&wanted)
        {
            return pid;
        }
    }
    panic!("no webhook process serves on {ip}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_keeps_answering_when_a_replica_dies_and_the_api_server_restarts() {
    let record = Record::start(
        &match std::env::var("IPPOOL_TEST_SHUTDOWN_DELAY") {
            Ok(delay) => format!("webhook-availability-shutdown-delay-{delay}"),
            Err(_) => "webhook-availability".to_owned(),
        },
        COMMAND,
        false,
    );
    let cp = ControlPlane::start().expect("control plane");
    let _sim = Sim::start(
        &cp,
        SimOptions {
            nodes: 3,
            start_delay_ms: 200,
            images: vec![(IMAGE.to_owned(), workspace_bin("admission-webhook"))],
            ..SimOptions::default()
        },
    )
    .expect("calico-sim");
    let client = cp.client().await;
    let writes = pools(cp.client_no_retry().await);
    deploy(&cp);
    ready_replicas(&client, 2).await;
    answering(&writes).await;
    pools(client.clone())
        .create(
            &PostParams::default(),
            &pool("existing", "10.10.0.0/16", 26),
        )
        .await
        .unwrap();

    let log = Arc::new(Log::default());
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let workers = load(cp.client_no_retry().await, log.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await; // a length of load, not a wait for a state
    let killed_at = Instant::now();

    // One replica dies at once (no SIGTERM, no draining).
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let victim = serving_replica(&pods).await;
    let ip = victim.status.as_ref().unwrap().pod_ip.clone().unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(replica_process(&ip)).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    replaced(&client, &pods, &victim).await;
    let recovered_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let deleted_at = Instant::now();

    // One replica is deleted as a rollout or a node drain deletes it: SIGTERM, then its grace
    // period.
    let victim = serving_replica(&pods).await;
    pods.delete(&victim.name_any(), &Default::default())
        .await
        .unwrap();
    replaced(&client, &pods, &victim).await;
    let redeployed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restart_at = Instant::now();

    // The API server restarts while the webhook serves.
    let stopped = tokio::task::block_in_place(|| cp.stop_apiserver().unwrap());
    tokio::time::sleep(Duration::from_secs(5)).await;
    cp.start_apiserver(stopped).await.unwrap();
    let back_at = Instant::now();
    let overlap = pools(cp.client_no_retry().await)
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &pool("overlap", "10.10.1.0/24", 26),
        )
        .await;
    let verdict = match overlap {
        Err(kube::Error::Api(s)) => s.message.clone(),
        other => format!("{other:?}"),
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let ended = Instant::now();

    let phases = [
        ("steady load", began, killed_at),
        (
            "a replica killed (SIGKILL), until replaced",
            killed_at,
            recovered_at,
        ),
        ("after that", recovered_at, deleted_at),
        (
            "a replica deleted (SIGTERM, grace), until replaced",
            deleted_at,
            redeployed_at,
        ),
        ("after that", redeployed_at, restart_at),
        (
            "API server away (stopped 5 s, starting)",
            restart_at,
            back_at,
        ),
        ("after the API server is back", back_at, ended),
    ];
    let mut table = String::from(
        "| phase | seconds | writes | expected verdicts | webhook failures | API server away | wrong verdicts |\n|---|---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for (name, from, to) in phases {
        let counts = [
            Outcome::Expected,
            Outcome::WebhookFailed,
            Outcome::ServerAway,
            Outcome::Wrong,
        ]
        .map(|o| log.count(from, to, o));
        let seconds = (to - from).as_secs_f64();
        table.push_str(&format!(
            "| {name} | {seconds:.1} | {} | {} | {} | {} | {} |\n",
            log.total(from, to),
            counts[0],
            counts[1],
            counts[2],
            counts[3]
        ));
        rows.push(json!({"phase": name, "seconds": seconds, "writes": log.total(from, to),
            "expected": counts[0], "webhook_failed": counts[1], "server_away": counts[2], "wrong": counts[3]}));
    }
    println!("webhook under faults ({WORKERS} writers through the API server):\n{table}");
    record
        .write(json!({"writers": WORKERS, "rows": rows, "markdown": table}))
        .unwrap();

    assert!(
        verdict.contains("IPP080"),
        "the view holds the pool created before the restart: {verdict}"
    );
    assert_eq!(
        log.count(began, ended, Outcome::Wrong),
        0,
        "{:?}",
        log.samples(Outcome::Wrong)
    );
    assert_eq!(
        log.count(began, killed_at, Outcome::WebhookFailed),
        0,
        "steady load fails nothing"
    );
    assert_eq!(
        log.count(recovered_at, deleted_at, Outcome::WebhookFailed)
            + log.count(redeployed_at, restart_at, Outcome::WebhookFailed)
            + log.count(back_at, ended, Outcome::WebhookFailed),
        0,
        "no failure once the replicas are back, nor after the API server restart: {:?}",
        log.samples(Outcome::WebhookFailed)
    );
    if std::env::var_os("IPPOOL_TEST_SHUTDOWN_DELAY").is_none() {
        assert_eq!(
            log.count(deleted_at, redeployed_at, Outcome::WebhookFailed),
            0,
            "a replica leaving as rollouts and drains make it leave fails no write: {:?}",
            log.samples(Outcome::WebhookFailed)
        );
    }
    assert!(
        log.count(began, killed_at, Outcome::Expected) > 0,
        "the load ran"
    );
}
