//! Migration benchmark (not a test): 2,000 pods in 200 Deployments on 100 calico-sim nodes whose
//! pods take 2 s to start, moved from 192.168.0.0/16 to 10.0.0.0/16 — by `kubectl ippool migrate`,
//! and, on an identical fresh cluster in the same run, by Calico's documented procedure done
//! with kubectl (create the new pool, disable the old one, `kubectl delete pod -A --all`, wait
//! until every pod is Ready again, delete the old pool).
//!
//! Reported for both, measured the same way: wall time from the procedure's start to one end point,
//! every pod Ready with an address in the new pool and the old pool gone (seen by the bench's own
//! watches, which start before the procedure; the procedure's exit is reported beside it);
//! unavailable pod-seconds (the integral over time of, per Deployment, how many of its replicas are
//! not Ready, from a watch of every pod); API requests, counted in the API server's audit log
//! (`IPPOOL_AUDIT_LOG=1` for `tests/cluster/up`, set by this bench) as the requests whose user agent
//! is the procedure's client: `kubectl-ippool/…` for ours, `kubectl/…` for the documented one (the
//! bench's own waiting is neither); peak RSS of our process.
//!
//! The Deployments use `maxUnavailable: 0, maxSurge: 25%` — the setting an operator who wants no
//! downtime during rollouts picks; `IPPOOL_BENCH_STRATEGY=default` uses Kubernetes' defaults
//! (25%/25%) instead, which lets rollouts take pods down by design.
//!
//! Run: `cargo bench -p kubectl-ippool --bench migrate`. Knobs: IPPOOL_BENCH_SMOKE=1 (5
//! Deployments × 4 pods on 5 nodes; also what `cargo test --benches` runs),
//! IPPOOL_BENCH_DEPLOYMENTS (200), IPPOOL_BENCH_REPLICAS (10), IPPOOL_BENCH_NODES (100),
//! IPPOOL_BENCH_START_DELAY_MS (2000), IPPOOL_BENCH_CONCURRENCY (workloads moved at once by
//! ours; 50). Needs kubectl on PATH. Writes `bench-results/migrate.json`. At every size the run
//! fails unless every command exits 0, both procedures reach the end point and, with the
//! zero-downtime strategy, ours has zero unavailable pod-seconds.

#[path = "common/command.rs"]
mod command;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_record::Record;
use command::{Audit, Sample, run};
use futures::{StreamExt as _, TryStreamExt as _, stream};
use harness::{ControlPlane, Sim, SimOptions, wait_for_all};
use ippool_cluster::resources::ip_pools;
use ippool_rules::model::ApiGroup;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kubectl_ippool::kube_opts::USER_AGENT_VALUE;
use serde_json::{Value, json};

const OLD: &str = "default-ipv4-ippool";
const NEW: &str = "new-pool";
const NEW_CIDR: &str = "10.0.0.0/16";
/// Generous: the benchmark measures, it does not judge.
const WAIT_LIMIT: Duration = Duration::from_secs(1800);

struct Sizes {
    deployments: usize,
    replicas: usize,
    nodes: usize,
    start_delay_ms: u64,
    concurrency: usize,
    surge_only: bool,
}

fn sizes() -> Sizes {
    let read = |key: &str, default: usize| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let smoke = bench_record::smoke();
    Sizes {
        deployments: read("IPPOOL_BENCH_DEPLOYMENTS", if smoke { 5 } else { 200 }),
        replicas: read("IPPOOL_BENCH_REPLICAS", if smoke { 4 } else { 10 }),
        nodes: read("IPPOOL_BENCH_NODES", if smoke { 5 } else { 100 }),
        start_delay_ms: read("IPPOOL_BENCH_START_DELAY_MS", 2000) as u64,
        concurrency: read("IPPOOL_BENCH_CONCURRENCY", 50),
        surge_only: std::env::var("IPPOOL_BENCH_STRATEGY").as_deref() != Ok("default"),
    }
}

#[derive(Debug)]
struct Figures {
    /// From the procedure's start to the end point (every pod Ready in the new pool, old pool gone).
    wall: Duration,
    /// From the procedure's start to the exit of its last command.
    commands_done: Duration,
    unavailable_pod_seconds: f64,
    /// Requests in the audit log with the procedure's client as user agent.
    api_requests: u64,
    peak_rss_kib: Option<i64>,
}

impl Figures {
    fn json(&self) -> Value {
        json!({
            "wall_s": self.wall.as_secs_f64(),
            "commands_done_s": self.commands_done.as_secs_f64(),
            "unavailable_pod_seconds": self.unavailable_pod_seconds,
            "api_requests": self.api_requests,
            "peak_rss_kib": self.peak_rss_kib,
        })
    }
}

/// Integrates, from a watch of every pod, the replicas each Deployment is missing over time.
struct Unavailability {
    unavailable: Arc<Mutex<f64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Unavailability {
    async fn start(client: &Client, apps: usize, replicas: usize) -> Unavailability {
        let unavailable = Arc::new(Mutex::new(0.0_f64));
        let shared = unavailable.clone();
        let (synced_tx, mut synced_rx) = tokio::sync::mpsc::channel::<()>(1);
        let api: Api<Pod> = Api::all(client.clone());
        let task = tokio::spawn(async move {
            let stream =
                watcher::watcher(api, watcher::Config::default().page_size(500)).default_backoff();
            futures::pin_mut!(stream);
            let mut ready: HashMap<String, (String, bool)> = HashMap::new();
            let mut synced = false;
            let mut last = Instant::now();
            let mut missing = 0usize;
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                if synced {
                    *shared.lock().unwrap() += missing as f64 * (now - last).as_secs_f64();
                }
                last = now;
                match event {
                    Ok(Event::Apply(p) | Event::InitApply(p)) => {
                        let app = p
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("app"))
                            .cloned()
                            .unwrap_or_default();
                        ready.insert(
                            p.metadata.uid.clone().unwrap_or_default(),
                            (app, is_ready(&p)),
                        );
                    }
                    Ok(Event::Delete(p)) => {
                        ready.remove(&p.metadata.uid.clone().unwrap_or_default());
                    }
                    Ok(Event::InitDone) if !synced => {
                        synced = true;
                        let _ = synced_tx.send(()).await;
                    }
                    _ => {}
                }
                let mut per_app: HashMap<&str, usize> = HashMap::new();
                for (app, is_ready) in ready.values() {
                    if *is_ready {
                        *per_app.entry(app.as_str()).or_default() += 1;
                    }
                }
                missing = (0..apps)
                    .map(|i| {
                        replicas.saturating_sub(*per_app.get(app_name(i).as_str()).unwrap_or(&0))
                    })
                    .sum();
            }
        });
        synced_rx.recv().await;
        Unavailability { unavailable, task }
    }

    fn stop(self) -> f64 {
        self.task.abort();
        *self.unavailable.lock().unwrap()
    }
}

fn app_name(i: usize) -> String {
    format!("d{i:03}")
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn in_new(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| ip.starts_with("10.0."))
}

async fn setup(sizes: &Sizes) -> anyhow::Result<(ControlPlane, Sim, Client)> {
    let cp = ControlPlane::start()?;
    let sim = Sim::start(
        &cp,
        SimOptions {
            nodes: sizes.nodes,
            start_delay_ms: sizes.start_delay_ms,
            ..SimOptions::default()
        },
    )?;
    let client = cp.client().await;
    let pools: Api<DynamicObject> = Api::all_with(client.clone(), &ip_pools(ApiGroup::CrdV1));
    pools
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
                "metadata": {"name": OLD},
                "spec": {"cidr": "192.168.0.0/16", "blockSize": 26, "ipipMode": "Always",
                         "natOutgoing": true, "nodeSelector": "all()"}
            }))?,
        )
        .await?;
    let strategy = if sizes.surge_only {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}})
    } else {
        json!({"type": "RollingUpdate"})
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    stream::iter(0..sizes.deployments)
        .map(|i| {
            let api = deployments.clone();
            let strategy = strategy.clone();
            let replicas = sizes.replicas;
            async move {
                let name = app_name(i);
                let d: Deployment = serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                             "strategy": strategy,
                             "template": {"metadata": {"labels": {"app": name}},
                                          "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}],
                                                   "terminationGracePeriodSeconds": 0}}}
                }))?;
                api.create(&PostParams::default(), &d).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    all_ready(&client, sizes.deployments * sizes.replicas, |_| true).await?;
    Ok((cp, sim, client))
}

/// Waits until `total` pods exist, every one Ready and passing `placed`.
async fn all_ready(client: &Client, total: usize, placed: fn(&Pod) -> bool) -> anyhow::Result<()> {
    wait_for_all(
        &Api::<Pod>::all(client.clone()),
        watcher::Config::default().page_size(500),
        "every pod Ready",
        |pods: &[Pod]| pods.len() == total && pods.iter().all(|p| is_ready(p) && placed(p)),
        WAIT_LIMIT,
    )
    .await?;
    Ok(())
}

/// The moment both procedures are timed to: every pod Ready with an address in the new pool, and
/// the old pool gone. Started before the procedure, so that it is the cluster's moment and not when
/// a command happens to exit.
fn end_point(client: &Client, total: usize) -> tokio::task::JoinHandle<anyhow::Result<Instant>> {
    let client = client.clone();
    tokio::spawn(async move {
        let pods = async {
            all_ready(&client, total, in_new).await?;
            anyhow::Ok(Instant::now())
        };
        let pool = async {
            let pools: Api<DynamicObject> =
                Api::all_with(client.clone(), &ip_pools(ApiGroup::CrdV1));
            wait_for_all(
                &pools,
                watcher::Config::default().fields(&format!("metadata.name={OLD}")),
                "the old pool deleted",
                |pools: &[DynamicObject]| pools.is_empty(),
                WAIT_LIMIT,
            )
            .await?;
            anyhow::Ok(Instant::now())
        };
        let (pods, pool) = tokio::try_join!(pods, pool)?;
        Ok(pods.max(pool))
    })
}

/// Runs a command to completion (exit 0) off the async threads.
async fn run_blocking(program: &'static str, args: Vec<String>) -> anyhow::Result<Sample> {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(program, &args, &[], &[0])
    })
    .await?
}

async fn ours(sizes: &Sizes) -> anyhow::Result<Figures> {
    let (cp, _sim, client) = setup(sizes).await?;
    let unavailable = Unavailability::start(&client, sizes.deployments, sizes.replicas).await;
    let end = end_point(&client, sizes.deployments * sizes.replicas);
    let audit = Audit::from_now(&cp)?;
    let started = Instant::now();
    let args: Vec<String> = [
        "--kubeconfig",
        &cp.kubeconfig().display().to_string(),
        "migrate",
        "--from",
        OLD,
        "--to",
        NEW,
        "--cidr",
        NEW_CIDR,
        "--yes",
        "-o",
        "json",
        "--concurrency",
        &sizes.concurrency.to_string(),
        "--timeout",
        "10m",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let Sample {
        stdout,
        max_rss_kib: rss,
        ..
    } = run_blocking(env!("CARGO_BIN_EXE_kubectl-ippool"), args).await?;
    let commands_done = started.elapsed();
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|e| e["event"] == "finished")
        .ok_or_else(|| anyhow::anyhow!("no finished event in:\n{stdout}"))?;
    let wall = end.await?? - started;
    let plugin = USER_AGENT_VALUE
        .split_once('/')
        .map_or(USER_AGENT_VALUE, |(name, _)| name);
    Ok(Figures {
        wall,
        commands_done,
        unavailable_pod_seconds: unavailable.stop(),
        api_requests: audit.requests(&cp, plugin).await?,
        peak_rss_kib: Some(rss),
    })
}

async fn documented(sizes: &Sizes) -> anyhow::Result<Figures> {
    let (cp, _sim, client) = setup(sizes).await?;
    let dir = tempfile::tempdir()?;
    let manifest = dir.path().join("new-pool.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata:\n  name: {NEW}\nspec:\n  \
             cidr: {NEW_CIDR}\n  blockSize: 26\n  ipipMode: Always\n  natOutgoing: true\n  \
             nodeSelector: all()\n"
        ),
    )?;
    let kubeconfig = cp.kubeconfig().display().to_string();
    let kubectl = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--kubeconfig".to_owned(), kubeconfig.clone()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    };
    let total = sizes.deployments * sizes.replicas;
    let unavailable = Unavailability::start(&client, sizes.deployments, sizes.replicas).await;
    let end = end_point(&client, total);
    let audit = Audit::from_now(&cp)?;
    let started = Instant::now();
    for args in [
        kubectl(&["apply", "-f", &manifest.display().to_string()]),
        kubectl(&[
            "patch",
            "ippools.crd.projectcalico.org",
            OLD,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"disabled":true}}"#,
        ]),
        kubectl(&["delete", "pod", "-A", "--all"]),
    ] {
        run_blocking("kubectl", args).await?;
    }
    // The documented step "wait until every pod is Ready again" is the operator watching; the
    // bench's watch stands in for them (and is not counted as kubectl's requests).
    all_ready(&client, total, in_new).await?;
    run_blocking(
        "kubectl",
        kubectl(&["delete", "ippools.crd.projectcalico.org", OLD]),
    )
    .await?;
    let commands_done = started.elapsed();
    let wall = end.await?? - started;
    Ok(Figures {
        wall,
        commands_done,
        unavailable_pod_seconds: unavailable.stop(),
        api_requests: audit.requests(&cp, "kubectl").await?,
        peak_rss_kib: None,
    })
}

fn main() -> anyhow::Result<()> {
    let smoke = bench_record::smoke();
    let record = Record::start(
        "migrate",
        "cargo bench -p kubectl-ippool --bench migrate",
        smoke,
    );
    // SAFETY: no other thread exists yet; tests/cluster/up (started by the harness) reads it.
    unsafe { std::env::set_var("IPPOOL_AUDIT_LOG", "1") };
    let sizes = sizes();
    let runtime = tokio::runtime::Runtime::new()?;
    let (ours, documented) = runtime.block_on(async {
        let ours = ours(&sizes).await?;
        let documented = documented(&sizes).await?;
        anyhow::Ok((ours, documented))
    })?;
    println!(
        "{} pods in {} Deployments (strategy: {}) on {} nodes, pods start in {} ms; ours with \
         --concurrency {}.\n",
        sizes.deployments * sizes.replicas,
        sizes.deployments,
        if sizes.surge_only {
            "maxUnavailable 0, maxSurge 25%"
        } else {
            "Kubernetes defaults, 25%/25%"
        },
        sizes.nodes,
        sizes.start_delay_ms,
        sizes.concurrency
    );
    println!(
        "| procedure | wall time to the end point | commands done | unavailable pod-seconds | API requests (audit log) | peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, f) in [
        ("kubectl ippool migrate", &ours),
        ("documented (kubectl)", &documented),
    ] {
        println!(
            "| {name} | {:.1} s | {:.1} s | {:.1} | {} | {} |",
            f.wall.as_secs_f64(),
            f.commands_done.as_secs_f64(),
            f.unavailable_pod_seconds,
            f.api_requests,
            f.peak_rss_kib.map_or_else(
                || "–".to_owned(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0)
            ),
        );
    }
    let ratio = ours.wall.as_secs_f64() / documented.wall.as_secs_f64();
    println!("\nwall time ratio ours/documented: {ratio:.2}");
    record.write(json!({
        "pods": sizes.deployments * sizes.replicas,
        "deployments": sizes.deployments,
        "replicas": sizes.replicas,
        "nodes": sizes.nodes,
        "start_delay_ms": sizes.start_delay_ms,
        "concurrency": sizes.concurrency,
        "strategy": if sizes.surge_only { "maxUnavailable 0, maxSurge 25%" } else { "Kubernetes defaults" },
        "ours": ours.json(),
        "documented": documented.json(),
        "wall_ratio_ours_to_documented": ratio,
    }))?;
    // What a run of any size exists to show (every command exited 0 and both reached the end point,
    // or we would not be here); timings are figures, never asserted.
    if sizes.surge_only {
        anyhow::ensure!(
            ours.unavailable_pod_seconds == 0.0,
            "kubectl ippool migrate left replicas unavailable for {} pod-seconds",
            ours.unavailable_pod_seconds
        );
    }
    Ok(())
}
