//! Scale benchmark of calico-sim on a real control plane: a Deployment of 2,000 pods on 100 fake
//! nodes (pool with IPIP, so nodes take tunnel addresses too). Reports the time from creating the
//! Deployment until every pod is Running and Ready, and the sim's peak resident memory (VmHWM).
//!
//! `cargo bench -p calico-sim --bench scale`; `SIM_BENCH_PODS` / `SIM_BENCH_NODES` change the
//! size; the smoke size (`IPPOOL_BENCH_SMOKE=1` or `cargo test --benches`, as for every bench of
//! the workspace) is 100 pods on 10 nodes. Writes `bench-results/sim-scale.json`; at every size the
//! run fails unless every pod becomes Running and Ready with an address of its own.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bench_record::Record;
use futures::StreamExt as _;
use harness::{ControlPlane, Sim, SimOptions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;

fn size(var: &str, smoke: usize, full: usize) -> usize {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v} is not a number of pods/nodes")),
        Err(_) if bench_record::smoke() => smoke,
        Err(_) => full,
    }
}

/// Peak resident set size of a process, from /proc (kB).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Generous: the benchmark measures, it does not judge.
const WAIT_LIMIT: Duration = Duration::from_secs(3600);

/// Follows the pods until `count` are Ready; returns their addresses by UID. Counts as events
/// arrive (the harness's `wait_for_all` copies the whole set after every burst of events, which
/// at thousands of pods arriving one by one would measure the waiter rather than the sim).
async fn wait_all_ready(client: Client, count: usize) -> HashMap<String, String> {
    let api = Api::<Pod>::namespaced(client, "default");
    let mut events = std::pin::pin!(
        watcher(api, watcher::Config::default().labels("app=scale")).default_backoff()
    );
    let mut ready_pods: HashMap<String, String> = HashMap::new();
    while let Some(event) = events.next().await {
        let (pod, deleted) = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => (pod, false),
            Ok(watcher::Event::Delete(pod)) => (pod, true),
            Ok(_) => continue,
            Err(e) => {
                eprintln!("pod watch: {e}");
                continue;
            }
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        match pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
            Some(ip) if !deleted && ready(&pod) => {
                ready_pods.insert(uid, ip);
            }
            _ => {
                ready_pods.remove(&uid);
            }
        }
        if ready_pods.len() == count {
            return ready_pods;
        }
    }
    unreachable!("a watcher stream restarts itself and never ends")
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::main]
async fn main() {
    let record = Record::start(
        "sim-scale",
        "cargo bench -p calico-sim --bench scale",
        bench_record::smoke(),
    );
    let pods = size("SIM_BENCH_PODS", 100, 2000);
    let nodes = size("SIM_BENCH_NODES", 10, 100);
    let cp = ControlPlane::start().expect("control plane");
    let sim = Sim::start(
        &cp,
        SimOptions {
            nodes,
            ..SimOptions::default()
        },
    )
    .expect("calico-sim");
    let client = cp.client().await;
    harness::workloads::create_pool(
        &client,
        "default-ipv4-ippool",
        json!({"cidr": "10.128.0.0/12", "ipipMode": "Always", "natOutgoing": true}),
    )
    .await;

    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "scale"},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "scale"}},
                 "template": {"metadata": {"labels": {"app": "scale"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}}},
    }))
    .unwrap();
    let started = Instant::now();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let addresses = tokio::time::timeout(WAIT_LIMIT, wait_all_ready(client.clone(), pods))
        .await
        .unwrap_or_else(|_| {
            panic!("{pods} pods were not all Running and Ready within {WAIT_LIMIT:?}")
        });
    let elapsed = started.elapsed();
    assert_eq!(
        addresses.values().collect::<HashSet<_>>().len(),
        pods,
        "every pod has its own address"
    );
    let peak = sim.pid().and_then(peak_rss_kib);
    record
        .write(json!({
            "pods": pods,
            "nodes": nodes,
            "all_ready_s": elapsed.as_secs_f64(),
            "pods_per_s": pods as f64 / elapsed.as_secs_f64(),
            "sim_peak_rss_kib": peak,
        }))
        .expect("the bench record is written");
    println!(
        "calico-sim scale: {pods} pods on {nodes} nodes Running and Ready {:.1} s after the Deployment was created ({:.0} pods/s); calico-sim peak RSS (VmHWM) {}",
        elapsed.as_secs_f64(),
        pods as f64 / elapsed.as_secs_f64(),
        peak.map_or("unknown".to_owned(), |kib| format!(
            "{:.1} MiB",
            kib as f64 / 1024.0
        )),
    );
}
