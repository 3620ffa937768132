//! Scale benchmark (not a test): the plugin's read commands and `migrate --dry-run` side by side with
//! `kubectl get pods -A -o json` and Calico's own `calicoctl ipam check` and `calicoctl ipam show
//! --show-blocks`, in one run at two sizes — 10,000 pods on 500 nodes, and 100,000 pods on 5,000
//! nodes — each in a control plane of its own whose world (`world.rs`) is seeded straight into the
//! API. calico-kube-controllers does not run (its garbage collector would change the seeded leaks
//! while they are measured); etcd's quota is raised to 8 GiB. Per command: wall time (median of
//! RUNS), peak RSS (the kernel's rusage of the child), API requests (the API server's audit log, by
//! user agent), and for the plugin the bytes of peak memory per pod. The targets (README) are
//! checked and recorded as met or missed; a command that fails fails the bench at any size.
//!
//! Run: `cargo bench -p kubectl-ippool --bench scale`; `IPPOOL_BENCH_SIZES=10000` for the quick
//! size alone; `IPPOOL_BENCH_SMOKE=1` (and `cargo test --benches`) for one 200-pod world. Writes
//! `bench-results/scale.json`.

#[path = "../common/command.rs"]
mod command;
mod world;

use std::time::Instant;

use bench_record::Record;
use command::{Audit, run};
use harness::{ControlPlane, ControlPlaneOptions};
use serde_json::{Value, json};
use world::World;

const RUNS: usize = 3;
/// `migrate --dry-run` moves pool `bench` here.
const MIGRATE_TO_CIDR: &str = "10.72.0.0/13";

fn sizes() -> Vec<usize> {
    if bench_record::smoke() {
        return vec![200];
    }
    std::env::var("IPPOOL_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000])
}

/// One command of the comparison: how to run it and whose requests are its.
struct Subject {
    name: &'static str,
    program: String,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// The user agents' first parts in the audit log.
    agents: &'static [&'static str],
    /// Exit statuses that mean it ran (`check` exits 1 on the problems it is there to find).
    ok: &'static [i32],
    ours: bool,
}

fn subjects(cp: &ControlPlane) -> Vec<Subject> {
    let kubeconfig = cp.kubeconfig().display().to_string();
    let plugin = |name: &'static str, args: &[&str], ok: &'static [i32]| Subject {
        name,
        program: env!("CARGO_BIN_EXE_kubectl-ippool").to_owned(),
        args: ["--kubeconfig", &kubeconfig]
            .iter()
            .chain(args)
            .map(|s| (*s).to_owned())
            .collect(),
        env: Vec::new(),
        agents: &["kubectl-ippool"],
        ok,
        ours: true,
    };
    let calicoctl = |name: &'static str, args: &[&str]| Subject {
        name,
        program: cp.binaries().join("calicoctl").display().to_string(),
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        env: vec![
            ("DATASTORE_TYPE", "kubernetes".to_owned()),
            ("KUBECONFIG", kubeconfig.clone()),
        ],
        // Some of calicoctl's clients send Go's default user agent (nothing else in this
        // cluster does while a command is measured: calico-kube-controllers is not running).
        agents: &["calicoctl", "Go-http-client"],
        ok: &[0, 1],
        ours: false,
    };
    vec![
        plugin("kubectl ippool list", &["list"], &[0]),
        plugin("kubectl ippool blocks", &["blocks"], &[0]),
        plugin("kubectl ippool pods second", &["pods", "second"], &[0]),
        plugin("kubectl ippool check", &["check"], &[0, 1]),
        plugin("kubectl ippool gc (dry run)", &["gc"], &[0]),
        plugin(
            "kubectl ippool migrate --dry-run",
            &[
                "migrate",
                "--from",
                "bench",
                "--to",
                "moved",
                "--cidr",
                MIGRATE_TO_CIDR,
                "--delete-bare-pods",
                "--dry-run",
            ],
            &[0, 1],
        ),
        Subject {
            name: "kubectl get pods -A -o json",
            program: cp.binaries().join("kubectl").display().to_string(),
            args: [
                "--kubeconfig",
                &kubeconfig,
                "get",
                "pods",
                "-A",
                "-o",
                "json",
            ]
            .map(str::to_owned)
            .to_vec(),
            env: Vec::new(),
            agents: &["kubectl"],
            ok: &[0],
            ours: false,
        },
        calicoctl("calicoctl ipam check", &["ipam", "check"]),
        calicoctl(
            "calicoctl ipam show --show-blocks",
            &["ipam", "show", "--show-blocks"],
        ),
    ]
}

/// RUNS runs of one command: its figures.
async fn measure(cp: &ControlPlane, subject: &Subject, pods: usize) -> anyhow::Result<Value> {
    let mut walls = Vec::new();
    let mut rss_kib = 0;
    let mut requests = 0;
    for _ in 0..RUNS {
        let audit = Audit::from_now(cp)?;
        let args: Vec<&str> = subject.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = subject.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sample =
            tokio::task::block_in_place(|| run(&subject.program, &args, &env, subject.ok))?;
        walls.push(sample.wall);
        rss_kib = rss_kib.max(sample.max_rss_kib);
        requests = audit.requests_of(cp, subject.agents).await?;
    }
    walls.sort();
    let median = walls[RUNS / 2];
    println!(
        "| {} | {:.2} s | {:.2} s | {:.1} MiB | {requests} |",
        subject.name,
        median.as_secs_f64(),
        walls[0].as_secs_f64(),
        rss_kib as f64 / 1024.0
    );
    Ok(json!({
        "command": subject.name,
        "ours": subject.ours,
        "runs": RUNS,
        "median_s": median.as_secs_f64(),
        "fastest_s": walls[0].as_secs_f64(),
        "peak_rss_kib": rss_kib,
        "api_requests": requests,
        "peak_rss_bytes_per_pod": (rss_kib * 1024) as f64 / pods as f64,
    }))
}

/// The README's targets, each with the figure that meets or misses it.
fn targets(commands: &[Value], pods: usize) -> Vec<Value> {
    let find = |name: &str| commands.iter().find(|c| c["command"] == name).cloned();
    let (Some(kubectl), Some(calicoctl_check), Some(check)) = (
        find("kubectl get pods -A -o json"),
        find("calicoctl ipam check"),
        find("kubectl ippool check"),
    ) else {
        return Vec::new();
    };
    let time = |c: &Value| c["median_s"].as_f64().unwrap_or(f64::MAX);
    let rss = |c: &Value| c["peak_rss_kib"].as_f64().unwrap_or(f64::MAX);
    let mut out = Vec::new();
    for read in [
        "kubectl ippool list",
        "kubectl ippool blocks",
        "kubectl ippool pods second",
        "kubectl ippool check",
        "kubectl ippool gc (dry run)",
    ] {
        let Some(c) = find(read) else { continue };
        let speed = time(&kubectl) / time(&c);
        let memory = rss(&c) / rss(&kubectl);
        out.push(
            json!({"target": format!("{read}: ≥ 8× faster than kubectl get pods -A -o json"),
            "value": format!("{speed:.1}×"), "met": speed >= 8.0}),
        );
        out.push(json!({"target": format!("{read}: ≤ 1/8 of its memory"),
            "value": format!("{memory:.3}"), "met": memory <= 0.125}));
    }
    out.push(
        json!({"target": "kubectl ippool check faster than calicoctl ipam check",
        "value": format!("{:.2} s vs {:.2} s", time(&check), time(&calicoctl_check)),
        "met": time(&check) < time(&calicoctl_check)}),
    );
    out.push(json!({"target": "kubectl ippool check: less memory than calicoctl ipam check",
        "value": format!("{:.1} vs {:.1} MiB", rss(&check) / 1024.0, rss(&calicoctl_check) / 1024.0),
        "met": rss(&check) < rss(&calicoctl_check)}));
    if pods >= 100_000
        && let Some(dry) = find("kubectl ippool migrate --dry-run")
    {
        out.push(
            json!({"target": "migrate --dry-run at 100,000 pods: under 10 s",
            "value": format!("{:.2} s", time(&dry)), "met": time(&dry) < 10.0}),
        );
        out.push(json!({"target": "migrate --dry-run at 100,000 pods: under 300 MB",
            "value": format!("{:.0} MB", rss(&dry) * 1024.0 / 1e6), "met": rss(&dry) * 1024.0 < 300e6}));
    }
    out
}

async fn one_size(pods: usize) -> anyhow::Result<Value> {
    let world = World::build(pods)?;
    let counts = world.counts();
    let cp = ControlPlane::start_with(&ControlPlaneOptions {
        audit_log: true,
        without_kube_controllers: true,
        etcd_quota_bytes: Some(8 << 30),
        ..ControlPlaneOptions::default()
    })?;
    let started = Instant::now();
    world.create(&cp.client().await).await?;
    let seeding = started.elapsed();
    println!(
        "\n{counts:?} seeded in {:.0} s (calico-kube-controllers not running).\n",
        seeding.as_secs_f64()
    );
    println!("| command | median of {RUNS} | fastest | peak RSS | API requests |");
    println!("|---|---|---|---|---|");
    let mut commands = Vec::new();
    for subject in subjects(&cp) {
        commands.push(measure(&cp, &subject, pods).await?);
    }
    let targets = targets(&commands, pods);
    for t in &targets {
        println!(
            "{} {}: {}",
            if t["met"] == true { "met" } else { "MISSED" },
            t["target"],
            t["value"]
        );
    }
    Ok(json!({
        "world": counts,
        "seeding_s": seeding.as_secs_f64(),
        "kube_controllers_running": false,
        "commands": commands,
        "targets": targets,
    }))
}

fn main() -> anyhow::Result<()> {
    let smoke = bench_record::smoke();
    let record = Record::start(
        "scale",
        "cargo bench -p kubectl-ippool --bench scale",
        smoke,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for pods in sizes() {
        // Each size's control plane is stopped (dropped) before the next starts.
        results.push(runtime.block_on(one_size(pods))?);
    }
    record.write(json!({ "sizes": results }))?;
    Ok(())
}
