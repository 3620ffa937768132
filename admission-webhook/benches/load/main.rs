//! Load benchmark (not a test): the webhook binary against a real control plane.
//!
//! 1. Open-loop, constant-rate AdmissionReviews over TLS keep-alive connections at each rate in
//!    `WEBHOOK_BENCH_RATES` (default 500,1000,2000 per second) for `WEBHOOK_BENCH_SECONDS` each
//!    (default 60). Every request has an intended send time fixed in advance; latency is measured
//!    from it, so a stalled server cannot hide queued requests (no coordinated omission). Beside it,
//!    each request's time is split into three parts that add up to it: the generator's own lateness
//!    (intended send time → handed to the connections), the time queued behind the server (waiting
//!    for a free keep-alive connection → actually sent), and the service time (sent → answered).
//! 2. IPPool creates through the real API server, `WEBHOOK_BENCH_CREATES` (default 200) without
//!    and then with the webhook registered.
//!
//! Run: `cargo bench -p admission-webhook --bench load`; smoke size (3 s per rate, 30 creates):
//! `IPPOOL_BENCH_SMOKE=1 cargo bench -p admission-webhook --bench load`, or `cargo test --benches`.
//! `WEBHOOK_BENCH_BIN=PATH` runs that webhook binary instead of the workspace's (which is rebuilt
//! in release mode when any source is newer than it). Writes `bench-results/webhook-load.json`; at
//! every size the run fails unless every review got its expected verdict (zero errors) and the
//! webhook is still running at the end.

mod generator;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_record::Record;
use generator::{histogram, open_loop};
use harness::{ControlPlane, workspace_bin};
use hdrhistogram::Histogram;
use hyper::body::Bytes;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use kube::api::{Api, PostParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::{Value, json};
use webhook_manifest::registration::validating_webhook_configuration;
use webhook_manifest::tls::{GeneratedTls, generate_tls};
use webhook_manifest::{self as manifest};

const CONNECTIONS: usize = 16;
const SEEDED_POOLS: usize = 20;
const SEEDED_BLOCKS: usize = 200;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let smoke = bench_record::smoke();
    let record = Record::start(
        "webhook-load",
        "cargo bench -p admission-webhook --bench load",
        smoke,
    );
    // The seeded blocks hold addresses of nodes and pods that do not exist: calico-kube-controllers'
    // IPAM garbage collector would release them mid-run and turn "deleting a pool in use" into an
    // allowed delete. The control plane runs without it (tests/cluster/up).
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("IPPOOL_KUBE_CONTROLLERS", "0") };
    let seconds = env_number("WEBHOOK_BENCH_SECONDS", if smoke { 3 } else { 60 });
    let creates = env_number("WEBHOOK_BENCH_CREATES", if smoke { 30 } else { 200 }) as usize;
    let rates: Vec<u64> = std::env::var("WEBHOOK_BENCH_RATES")
        .unwrap_or_else(|_| "500,1000,2000".to_owned())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (figures, errors, webhook_exit) =
        runtime.block_on(run(Duration::from_secs(seconds), &rates, creates));
    record.write(figures).expect("the bench record is written");
    // The invariants a run of any size exists to show; timings are figures, never asserted.
    assert_eq!(errors, 0, "reviews without their expected verdict");
    assert_eq!(webhook_exit, None, "the webhook exited during the run");
}

/// The figures; the number of reviews without their expected verdict; the webhook's exit status if
/// it is no longer running.
async fn run(
    duration: Duration,
    rates: &[u64],
    creates: usize,
) -> (Value, u64, Option<std::process::ExitStatus>) {
    let cp = ControlPlane::start().expect("control plane");
    let client = cp.client().await;
    let pools = Api::<DynamicObject>::all_with(client.clone(), &resource("IPPool", "ippools"));
    let blocks =
        Api::<DynamicObject>::all_with(client.clone(), &resource("IPAMBlock", "ipamblocks"));
    seed(&pools, &blocks).await;

    let tls = generate_tls(&["127.0.0.1".to_owned()]).unwrap();
    let mut webhook = Webhook::start(&cp, &tls);
    println!(
        "webhook pid {} on 127.0.0.1:{}, view: {SEEDED_POOLS} pools, {SEEDED_BLOCKS} blocks; {CONNECTIONS} TLS keep-alive connections",
        webhook.child.id(),
        webhook.address.port()
    );

    let bodies = Arc::new(review_bodies());
    let mut rows = Vec::new();
    let rss_start = rss_kib(webhook.child.id());
    for &rate in rates {
        let before = rss_kib(webhook.child.id());
        let result = open_loop(webhook.address, &tls, Arc::clone(&bodies), rate, duration).await;
        let after = rss_kib(webhook.child.id());
        rows.push((rate, result, before, after));
    }

    println!();
    println!(
        "| rate/s | sent | errors | p50 ms | p99 ms | max ms | service p50 ms | service p99 ms | queued p99 ms | generator lateness p99 ms | RSS before → after MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut errors = 0;
    let mut rate_figures = Vec::new();
    for (rate, r, before, after) in &rows {
        println!(
            "| {rate} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} → {:.1} |",
            r.sent,
            r.errors,
            ms(r.latency.value_at_quantile(0.5)),
            ms(r.latency.value_at_quantile(0.99)),
            ms(r.latency.max()),
            ms(r.service.value_at_quantile(0.5)),
            ms(r.service.value_at_quantile(0.99)),
            ms(r.queued.value_at_quantile(0.99)),
            ms(r.lateness.value_at_quantile(0.99)),
            *before as f64 / 1024.0,
            *after as f64 / 1024.0,
        );
        errors += r.errors;
        rate_figures.push(json!({
            "rate_per_s": rate,
            "sent": r.sent,
            "errors": r.errors,
            "latency_ms": quantiles(&r.latency),
            "service_ms": quantiles(&r.service),
            "queued_ms": quantiles(&r.queued),
            "generator_lateness_ms": quantiles(&r.lateness),
            "webhook_rss_kib": {"before": before, "after": after},
        }));
    }
    let rss_end = rss_kib(webhook.child.id());
    println!(
        "webhook RSS over the whole run: {:.1} → {:.1} MiB",
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    let mut figures = json!({
        "connections": CONNECTIONS,
        "seconds_per_rate": duration.as_secs(),
        "view": {"pools": SEEDED_POOLS, "blocks": SEEDED_BLOCKS},
        "rates": rate_figures,
        "webhook_rss_kib": {"start": rss_start, "end": rss_end},
    });

    if creates > 0 {
        let without = time_creates(&pools, "bench-without", 0, creates).await;
        register(&client, &webhook, &tls).await;
        let with = time_creates(&pools, "bench-with", 1, creates).await;
        println!();
        println!("| IPPool create via API server | n | p50 ms | p99 ms | mean ms |");
        println!("|---|---:|---:|---:|---:|");
        for (label, h) in [("without webhook", &without), ("with webhook", &with)] {
            println!(
                "| {label} | {} | {:.2} | {:.2} | {:.2} |",
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                h.mean() / 1000.0
            );
        }
        println!(
            "with/without: p50 {:.2}x, mean {:.2}x",
            with.value_at_quantile(0.5) as f64 / without.value_at_quantile(0.5) as f64,
            with.mean() / without.mean()
        );
        figures["api_server_creates"] = json!({
            "count": creates,
            "without_webhook_ms": quantiles(&without),
            "with_webhook_ms": quantiles(&with),
            "p50_ratio": with.value_at_quantile(0.5) as f64 / without.value_at_quantile(0.5) as f64,
            "mean_ratio": with.mean() / without.mean(),
        });
    }
    let exit = webhook.child.try_wait().expect("the webhook's status");
    (figures, errors, exit)
}

/// The quantiles the README reports, in milliseconds.
fn quantiles(h: &Histogram<u64>) -> Value {
    json!({
        "p50": ms(h.value_at_quantile(0.5)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": h.mean() / 1000.0,
    })
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "crd.projectcalico.org".to_owned(),
        version: "v1".to_owned(),
        api_version: "crd.projectcalico.org/v1".to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

fn pool_json(name: &str, cidr: &str, disabled: bool) -> Value {
    json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"cidr": cidr, "blockSize": 26, "ipipMode": "Always", "natOutgoing": true, "disabled": disabled}
    })
}

/// Pools `seed-0…` at 10.(100+i).0.0/16 (the last one disabled) and blocks with pod addresses in
/// the first pools, so that verdicts look things up in a view of realistic size.
async fn seed(pools: &Api<DynamicObject>, blocks: &Api<DynamicObject>) {
    let params = PostParams::default();
    for i in 0..SEEDED_POOLS {
        let disabled = i == SEEDED_POOLS - 1;
        let pool = pool_json(
            &format!("seed-{i}"),
            &format!("10.{}.0.0/16", 100 + i),
            disabled,
        );
        pools.create(&params, &object(pool)).await.unwrap();
    }
    for i in 0..SEEDED_BLOCKS {
        let (third, fourth) = (i / 4, (i % 4) * 64);
        let cidr = format!("10.{}.{third}.{fourth}/26", 100 + SEEDED_POOLS - 1 - i % 2);
        let mut allocations = vec![Value::Null; 64];
        allocations[0] = json!(0);
        let block = json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock",
            "metadata": {"name": cidr.replace(['.', '/'], "-")},
            "spec": {"cidr": cidr, "affinity": format!("host:node-{}", i % 10), "allocations": allocations,
                     "unallocated": (1..64).collect::<Vec<_>>(),
                     "attributes": [{"handle_id": format!("k8s-pod-network.c{i}"), "secondary": {"namespace": "default", "node": format!("node-{}", i % 10), "pod": format!("p{i}")}}],
                     "strictAffinity": false}
        });
        blocks.create(&params, &object(block)).await.unwrap();
    }
}

/// The mix sent: an allowed create, and three changes the rules refuse (resize, overlap, deleting
/// a pool in use). Each body with the verdict it must get.
fn review_bodies() -> Vec<(Bytes, bool)> {
    let review = |operation: &str, object: Value, old: Value| {
        Bytes::from(
            json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "bench",
                    "kind": {"group": "crd.projectcalico.org", "version": "v1", "kind": "IPPool"},
                    "resource": {"group": "crd.projectcalico.org", "version": "v1", "resource": "ippools"},
                    "name": "bench", "operation": operation,
                    "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
                    "object": object, "oldObject": old, "dryRun": false
                }
            })
            .to_string(),
        )
    };
    // As stored: the API server sends objects with their resourceVersion.
    let stored = |mut pool: Value| {
        pool["metadata"]["resourceVersion"] = json!("1");
        pool
    };
    let old = stored(pool_json("seed-0", "10.100.0.0/16", false));
    let mut resized = old.clone();
    resized["spec"]["blockSize"] = json!(24);
    let last = SEEDED_POOLS - 1;
    let draining = stored(pool_json(
        &format!("seed-{last}"),
        &format!("10.{}.0.0/16", 100 + last),
        true,
    ));
    vec![
        (
            review(
                "CREATE",
                pool_json("fresh", "10.200.0.0/16", false),
                Value::Null,
            ),
            true,
        ),
        (review("UPDATE", resized, old), false),
        (
            review(
                "CREATE",
                pool_json("overlap", "10.101.128.0/17", false),
                Value::Null,
            ),
            false,
        ),
        (review("DELETE", Value::Null, draining), false),
    ]
}

struct Webhook {
    child: Child,
    address: SocketAddr,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Webhook {
    /// Starts the release binary and returns when it serves with a synced view (it logs both).
    fn start(cp: &ControlPlane, tls: &GeneratedTls) -> Webhook {
        let dir = cp.dir().join("bench-tls");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), &tls.cert_pem).unwrap();
        std::fs::write(dir.join("tls.key"), &tls.key_pem).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = std::env::var_os("WEBHOOK_BENCH_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| workspace_bin("admission-webhook"));
        let mut child = Command::new(binary)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--tls-cert={}", dir.join("tls.crt").display()))
            .arg(format!("--tls-key={}", dir.join("tls.key").display()))
            .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
            // Verdict logs at the default level would measure the terminal, not the webhook.
            .env(
                "RUST_LOG",
                "warn,admission_webhook=warn,ippool_cluster=info",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("cluster view synced") {
                    let _ = ready_tx.send(());
                }
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("webhook: {line}");
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the webhook's view syncs");
        Webhook {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Registers the webhook by URL and waits until the API server calls it (probing with a dry run
/// only the webhook refuses: the API server's own informer cannot be watched from outside).
async fn register(client: &kube::Client, webhook: &Webhook, tls: &GeneratedTls) {
    let config = validating_webhook_configuration(
        manifest::NAME,
        WebhookClientConfig {
            url: Some(format!("https://{}/validate", webhook.address)),
            ca_bundle: Some(ByteString(tls.ca_pem.clone().into_bytes())),
            service: None,
        },
        None,
    );
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let pools = Api::<DynamicObject>::all_with(client.clone(), &resource("IPPool", "ippools"));
    let mut canary = pool_json("canary", "10.250.0.0/24", false);
    canary["spec"]["blockSize"] = json!(33);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Err(kube::Error::Api(status)) = pools.create(&dry_run, &object(canary.clone())).await
            && status.message.contains("IPP022")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the API server does not call the webhook");
}

/// Sequential creates of valid pools (10.<second>.<i>.0/24 … inside the cluster CIDR).
async fn time_creates(
    pools: &Api<DynamicObject>,
    prefix: &str,
    second: u8,
    count: usize,
) -> Histogram<u64> {
    let mut h = histogram();
    for i in 0..count {
        let cidr = format!("10.{}.{}.{}/26", second, i / 4, (i % 4) * 64);
        let pool = pool_json(&format!("{prefix}-{i}"), &cidr, false);
        let started = Instant::now();
        pools
            .create(&PostParams::default(), &object(pool))
            .await
            .unwrap_or_else(|e| panic!("create {prefix}-{i}: {e}"));
        h.saturating_record(started.elapsed().as_micros() as u64);
    }
    h
}
