//! Scale benchmark (not a test): `kubectl ippool list` and `kubectl ippool check` against a control
//! plane holding 10,000 pods and 2,000 IPAM blocks (with their affinities and 10,000 handles),
//! seeded directly into the API by this program — not by calico-sim — and timed beside
//! `kubectl get pods -A -o json` in the same run. Reports wall time (median of 5) and peak RSS of
//! each command; every run of every command must exit 0 (at any size), or the bench fails.
//!
//! Run: `cargo bench -p kubectl-ippool --bench scale`. Sizes: IPPOOL_BENCH_PODS (10000),
//! IPPOOL_BENCH_BLOCKS (2000); IPPOOL_BENCH_SMOKE=1 (and `cargo test --benches`) for a quick
//! 200-pod / 40-block run. Needs kubectl on PATH. Writes `bench-results/scale.json`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bench_record::Record;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use harness::ControlPlane;
use ipnet::IpNet;
use ippool_cluster::api::{CalicoKind, ServedApis, Serving};
use ippool_cluster::client::CalicoClient;
use ippool_cluster::resources::CalicoResource as _;
use ippool_ipam::allocation::{self, AffinityState};
use ippool_ipam::names;
use ippool_rules::cidr;
use ippool_rules::model::{BlockAffinity, IpPool, IpPoolSpec, IpamBlock, ObjectMeta};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// Requests in flight while seeding.
const CONCURRENCY: usize = 48;
const NODES: usize = 50;
const NAMESPACES: usize = 20;
const RUNS: usize = 5;

struct Sizes {
    pods: usize,
    blocks: usize,
}

fn sizes() -> Sizes {
    let read = |key: &str, default: usize| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if bench_record::smoke() {
        return Sizes {
            pods: 200,
            blocks: 40,
        };
    }
    Sizes {
        pods: read("IPPOOL_BENCH_PODS", 10_000),
        blocks: read("IPPOOL_BENCH_BLOCKS", 2_000),
    }
}

/// Creates every item with at most `CONCURRENCY` requests in flight.
/// The bench's control plane serves Calico's plain `crd.projectcalico.org/v1` CRDs.
fn calico(client: &Client) -> CalicoClient {
    CalicoClient::new(client.clone(), ServedApis::new(Serving::Crds, None))
}

async fn create_all<T, F, Fut>(items: Vec<T>, create: F) -> anyhow::Result<()>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    stream::iter(items.into_iter().map(create))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn seed(client: &Client, sizes: &Sizes) -> anyhow::Result<()> {
    let pool_net: IpNet = "10.64.0.0/14".parse()?;
    anyhow::ensure!(
        sizes.blocks as u128 <= cidr::block_count(&pool_net, 26),
        "at most {} blocks fit in {pool_net}",
        cidr::block_count(&pool_net, 26)
    );
    let per_block = sizes.pods.div_ceil(sizes.blocks.max(1));
    anyhow::ensure!(
        per_block <= 64,
        "{} pods do not fit in {} /26 blocks",
        sizes.pods,
        sizes.blocks
    );

    let pool = bench_pool(pool_net);
    calico(client)
        .create(CalicoKind::Pool, pool.name(), &pool, false)
        .await?;
    seed_nodes_and_namespaces(client).await?;
    let seeded = SeededIpam::build(sizes, pool_net, per_block)?;
    seeded.create(client).await
}

fn bench_pool(pool_net: IpNet) -> IpPool {
    IpPool {
        api_version: "crd.projectcalico.org/v1".to_owned(),
        kind: "IPPool".to_owned(),
        metadata: ObjectMeta {
            name: Some("bench".to_owned()),
            ..ObjectMeta::default()
        },
        spec: IpPoolSpec {
            cidr: Some(pool_net.to_string()),
            block_size: Some(26),
            node_selector: Some("all()".to_owned()),
            ..IpPoolSpec::default()
        },
    }
}

async fn seed_nodes_and_namespaces(client: &Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    create_all((0..NODES).collect(), |i| {
        let nodes = nodes.clone();
        async move {
            let node: Node =
                serde_json::from_value(json!({"metadata": {"name": format!("node-{i}")}}))?;
            nodes.create(&PostParams::default(), &node).await?;
            Ok(())
        }
    })
    .await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    create_all((0..NAMESPACES).collect(), |i| {
        let namespaces = namespaces.clone();
        let client = client.clone();
        async move {
            let name = format!("ns-{i}");
            let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
            namespaces.create(&PostParams::default(), &ns).await?;
            let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
            harness::wait_for(
                &accounts,
                "default",
                kube::runtime::wait::conditions::is_created(),
                Duration::from_secs(120),
            )
            .await?;
            Ok(())
        }
    })
    .await
}

/// A seeded pod: namespace, name, node, address, container ID and the block it is in.
type SeededPod = (String, String, String, IpAddr, String, IpNet);

/// Blocks with their allocations, affinities, and the pods and handles the allocations name.
struct SeededIpam {
    blocks: Vec<IpamBlock>,
    affinities: Vec<BlockAffinity>,
    pods: Vec<SeededPod>,
}

impl SeededIpam {
    fn build(sizes: &Sizes, pool_net: IpNet, per_block: usize) -> anyhow::Result<SeededIpam> {
        let mut blocks = Vec::with_capacity(sizes.blocks);
        let mut pods = Vec::with_capacity(sizes.pods);
        let mut affinities = Vec::with_capacity(sizes.blocks);
        for (b, net) in cidr::blocks(&pool_net, 26).take(sizes.blocks).enumerate() {
            let node = format!("node-{}", b % NODES);
            let mut block = allocation::new_block(net, Some(names::host_affinity(&node)), 1)?;
            for p in (b * per_block)..((b + 1) * per_block).min(sizes.pods) {
                let namespace = format!("ns-{}", p % NAMESPACES);
                let name = format!("p-{p}");
                let container = format!("{p:064x}");
                let owner = BTreeMap::from([
                    ("namespace".to_owned(), namespace.clone()),
                    ("pod".to_owned(), name.clone()),
                    ("node".to_owned(), node.clone()),
                ]);
                let address =
                    allocation::assign(&mut block, 1, &names::pod_handle_id(&container), &owner)?
                        [0];
                pods.push((namespace, name, node.clone(), address, container, net));
            }
            affinities.push(allocation::new_block_affinity(
                &node,
                &net,
                AffinityState::Confirmed,
            ));
            blocks.push(block);
        }
        Ok(SeededIpam {
            blocks,
            affinities,
            pods,
        })
    }

    async fn create(self, client: &Client) -> anyhow::Result<()> {
        let SeededIpam {
            blocks,
            affinities,
            pods,
        } = self;
        let calico = calico(client);
        create_all(blocks, |block| {
            let calico = calico.clone();
            async move {
                calico
                    .create(CalicoKind::Block, block.name(), &block, false)
                    .await?;
                Ok(())
            }
        })
        .await?;
        create_all(affinities, |affinity| {
            let calico = calico.clone();
            async move {
                calico
                    .create(CalicoKind::Affinity, affinity.name(), &affinity, false)
                    .await?;
                Ok(())
            }
        })
        .await?;
        let client = client.clone();
        create_all(pods, |(namespace, name, node, address, container, net)| {
            let calico = calico.clone();
            let client = client.clone();
            async move {
                let handle = allocation::new_handle(
                    &names::pod_handle_id(&container),
                    BTreeMap::from([(net.to_string(), 1)]),
                );
                calico
                    .create(CalicoKind::Handle, handle.name(), &handle, false)
                    .await?;
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": namespace, "annotations": {
                        names::ANNOTATION_POD_IPS: format!("{address}/32"),
                        names::ANNOTATION_POD_IP: format!("{address}/32"),
                        names::ANNOTATION_CONTAINER_ID: container,
                    }},
                    "spec": {"nodeName": node, "automountServiceAccountToken": false,
                             "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]},
                }))?;
                Api::<Pod>::namespaced(client, &namespace)
                    .create(&PostParams::default(), &pod)
                    .await?;
                Ok(())
            }
        })
        .await?;
        Ok(())
    }
}

/// Wall time and peak resident set size of one run of a command.
struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

/// Runs the command with its output discarded; the kernel's rusage for exactly this child gives
/// the peak RSS. Fails unless the command exits 0: a run that failed measured nothing.
fn measure(program: &str, args: &[&str]) -> anyhow::Result<Sample> {
    let stderr = tempfile::tempfile()?;
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr.try_clone()?)
        .spawn()
        .with_context(|| format!("cannot run {program} (is it on PATH?)"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain old data that wait4 fills in; `pid` is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    anyhow::ensure!(reaped == pid, "wait4 failed for {program}");
    // `child` was reaped by wait4 above; dropping it neither waits nor kills.
    drop(child);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut stderr = stderr;
        let mut output = String::new();
        std::io::Seek::rewind(&mut stderr)?;
        std::io::Read::read_to_string(&mut stderr, &mut output)?;
        anyhow::bail!("{program} {args:?} did not exit 0 (wait status {status}):\n{output}");
    }
    Ok(Sample {
        wall,
        max_rss_kib: usage.ru_maxrss,
    })
}

/// RUNS runs of one command: prints its table row and returns its figures.
fn row(name: &str, program: &str, args: &[&str]) -> anyhow::Result<Value> {
    let mut samples = (0..RUNS)
        .map(|_| measure(program, args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    samples.sort_by_key(|s| s.wall);
    let median = samples[RUNS / 2].wall;
    let min = samples[0].wall;
    let rss = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
    println!(
        "| {name} | {:.2} s | {:.2} s | {:.1} MiB |",
        median.as_secs_f64(),
        min.as_secs_f64(),
        rss as f64 / 1024.0
    );
    Ok(json!({
        "command": name,
        "runs": RUNS,
        "median_s": median.as_secs_f64(),
        "fastest_s": min.as_secs_f64(),
        "peak_rss_kib": rss,
    }))
}

fn main() -> anyhow::Result<()> {
    let smoke = bench_record::smoke();
    let record = Record::start(
        "scale",
        "cargo bench -p kubectl-ippool --bench scale",
        smoke,
    );
    let sizes = sizes();
    let cp = ControlPlane::start()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    runtime.block_on(async {
        let client = cp.client().await;
        seed(&client, &sizes).await
    })?;
    let seeding = started.elapsed();
    let kubeconfig = cp.kubeconfig().display().to_string();
    let plugin = env!("CARGO_BIN_EXE_kubectl-ippool");
    println!(
        "Seeded {} pods, {} blocks, {} affinities, {} handles, {NODES} nodes in {:.0} s.\n",
        sizes.pods,
        sizes.blocks,
        sizes.blocks,
        sizes.pods,
        seeding.as_secs_f64()
    );
    println!("| command | median of {RUNS} | fastest | peak RSS |");
    println!("|---|---|---|---|");
    let commands = [
        row(
            "kubectl ippool list",
            plugin,
            &["--kubeconfig", &kubeconfig, "list"],
        )?,
        row(
            "kubectl ippool check",
            plugin,
            &["--kubeconfig", &kubeconfig, "check"],
        )?,
        row(
            "kubectl get pods -A -o json",
            "kubectl",
            &[
                "--kubeconfig",
                &kubeconfig,
                "get",
                "pods",
                "-A",
                "-o",
                "json",
            ],
        )?,
    ];
    record.write(json!({
        "pods": sizes.pods,
        "blocks": sizes.blocks,
        "affinities": sizes.blocks,
        "handles": sizes.pods,
        "nodes": NODES,
        "seeding_s": seeding.as_secs_f64(),
        "commands": commands,
    }))?;
    Ok(())
}
