//! The fault suite: migrations (and a resize) on the real control plane while the API server
//! restarts, etcd stalls, and a proxy between the plugin and the API server drops connections,
//! ends watches, sheds load, fails and slows down — each fault at a random moment of the run,
//! drawn from a seeded generator. The same monitors watch the whole suite: no pool deleted while
//! an address in it is allocated, no PodDisruptionBudget's minimum broken, and no write of a
//! plugin that lost the lock. Each run ends completed, or refused with a clear error and then
//! completed by running the command again; the table counts both.
//!
//! Size: one fault of each kind, outages up to 15 s (CI). `IPPOOL_FAULT_SEEDS=N` runs N faults of
//! each kind with outages up to 60 s (`./dev faults`); `IPPOOL_FAULT_SEED` picks the seed. The
//! table goes to stdout and to `$CARGO_TARGET_DIR/bench-results/faults.json` (the smoke size:
//! `bench-results/smoke/faults.json`).
//! `IPPOOL_FAULT_KINDS=etcd-pause,lease-expiry` runs only those kinds (and no resize unless
//! `resize` is named).

mod inject;
mod plugin;
mod table;

use std::time::Duration;

use crate::support::migration::*;
use harness::{ControlPlaneOptions, FaultProxy, SimOptions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;

use inject::{Fault, Kind, Size};
use plugin::{Ended, Plugin};
use table::{Row, Table};

/// Longest a run may take, outages included.
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// The host the second plugin of [`Kind::LeaseExpiry`] claims to run on.
const OTHER_HOST: &str = "fault-suite-second-machine";

struct Suite {
    c: TestCluster,
    proxy: FaultProxy,
    rng: fastrand::Rng,
    /// The pool the pods are in: `pool-N`, 10.N.0.0/16.
    pool: usize,
    block_size: u8,
    deletions: DeletionRecorder,
    availability: AvailabilityRecorder,
    table: Table,
}

fn pool_name(n: usize) -> String {
    format!("pool-{n}")
}

fn pool_cidr(n: usize) -> String {
    format!("10.{n}.0.0/16")
}

impl Suite {
    async fn start(seed: u64, smoke: bool) -> Suite {
        let c = start_with(
            &ControlPlaneOptions::default(),
            SimOptions {
                nodes: 3,
                start_delay_ms: 300,
                ..SimOptions::default()
            },
        )
        .await;
        create_pool(&c.client, &pool_name(0), &pool_cidr(0), 26, "Always").await;
        let rolling =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
        create::<Deployment>(&c.client, deployment("default", "web", 3, rolling)).await;
        // Its own strategy would take 2 of 3 down at once: the plan evicts, which the budget governs.
        let wide =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0}});
        create::<Deployment>(&c.client, deployment("default", "api", 3, wide)).await;
        create_budget(
            &c.client,
            "default",
            "api",
            "api",
            json!({"minAvailable": 2}),
        )
        .await;
        wait_pods(&c.client, &[("web", 3), ("api", 3)]).await;
        let proxy = FaultProxy::start(&c.cp).expect("fault proxy");
        let deletions = DeletionRecorder::start(&c.client).await;
        let availability = AvailabilityRecorder::start(&c.client).await;
        Suite {
            c,
            proxy,
            rng: fastrand::Rng::with_seed(seed),
            pool: 0,
            block_size: 26,
            deletions,
            availability,
            table: Table::new(seed, smoke),
        }
    }

    fn migrate_args(&self) -> Vec<String> {
        [
            "migrate",
            "--from",
            &pool_name(self.pool),
            "--to",
            &pool_name(self.pool + 1),
            "--cidr",
            &pool_cidr(self.pool + 1),
            "--yes",
            "--concurrency",
            "2",
            "--timeout",
            "5m",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// The invariants, after a run: every monitor's, and the end state's (calicoctl included).
    async fn judge(&self, old_cidr: Option<&str>, row: &mut Row) {
        let deleted_in_use = self.deletions.violations();
        let least_api = self.availability.least().get("api").copied().unwrap_or(0);
        row.violations += deleted_in_use.len() + usize::from(least_api < 2);
        assert!(deleted_in_use.is_empty(), "{deleted_in_use:?}");
        assert!(
            least_api >= 2,
            "PDB default/api (minAvailable 2) broken: {least_api} Ready"
        );
        assert_end_state(&self.c, old_cidr, &pool_cidr(self.pool), self.block_size).await;
    }

    /// A run that failed must say why; running the same command again must finish it.
    async fn finish(&mut self, args: &[String], first: Ended, row: &mut Row) {
        let mut ended = first;
        row.steps_rerun += ended.steps_rerun();
        while !ended.status.success() && row.reruns < 2 {
            let why = ended.error();
            assert!(!why.is_empty(), "a run that failed said nothing");
            eprintln!("fault suite: the run stopped ({why}); running it again");
            row.reruns += 1;
            ended = Plugin::start(args, self.proxy.kubeconfig(), &[])
                .end(RUN_LIMIT)
                .await;
            row.steps_rerun += ended.steps_rerun();
        }
        assert!(
            ended.status.success(),
            "not finished by 2 re-runs: {}",
            ended.error()
        );
        row.completed += 1;
    }

    /// One migration (or, with `resize`, a blockSize change) under `fault`.
    async fn run(&mut self, fault: Fault, resize: bool) {
        self.proxy.command("reset").expect("reset the proxy");
        let (args, old_cidr) = if resize {
            let size = if self.block_size == 26 { "27" } else { "26" };
            let args = [
                "resize",
                &pool_name(self.pool),
                "--block-size",
                size,
                "--yes",
                "--timeout",
                "5m",
            ]
            .map(str::to_owned)
            .to_vec();
            (args, None)
        } else {
            (self.migrate_args(), Some(pool_cidr(self.pool)))
        };
        let mut row = Row::new(fault.kind, resize, fault.describe());
        let mut plugin = Plugin::start(&args, self.proxy.kubeconfig(), &[]);
        plugin.after_events(fault.after_events).await;
        if fault.kind == Kind::LeaseExpiry {
            self.lease_expiry(plugin, &args, &mut row).await;
        } else {
            inject::inject(&fault, &self.c.cp, &mut self.proxy).await;
            let ended = plugin.end(RUN_LIMIT).await;
            self.finish(&args, ended, &mut row).await;
        }
        if resize {
            self.block_size = if self.block_size == 26 { 27 } else { 26 };
        } else {
            self.pool += 1;
        }
        self.judge(old_cidr.as_deref(), &mut row).await;
        self.table.push(row);
    }

    /// The plugin's network is cut past its Lease. A second plugin (on "another machine")
    /// started while the Lease is live is refused; started once it lapsed, it takes the migration
    /// over and finishes it. When the network is back, the first plugin finds it lost the lock and
    /// stops, having sent no write since the cut.
    async fn lease_expiry(&mut self, mut first: Plugin, args: &[String], row: &mut Row) {
        first.event(|e| e["event"] == "locked").await;
        assert!(
            first.has_event(|e| e["event"] == "locked"),
            "the first plugin took the lock"
        );
        self.proxy.command("cut on").expect("cut the network");
        let cut_at = now_ms();
        let other = [("IPPOOL_FAULT_HOST", OTHER_HOST)];
        let direct = self.c.kubeconfig().to_owned();
        let refused = Plugin::start(args, &direct, &other).end(RUN_LIMIT).await;
        assert!(
            !refused.status.success(),
            "a second plugin ran while the lock was live"
        );
        assert!(
            refused.error().contains("is being run right now"),
            "{}",
            refused.error()
        );

        let leases: Api<Lease> = Api::namespaced(self.c.client.clone(), "kube-system");
        let lease = leases.get("ippool-migration").await.expect("the Lease");
        let renewed = lease.spec.and_then(|s| s.renew_time).expect("renewTime").0;
        let lapses = renewed.as_millisecond() + 31_000;
        // The lapse is a moment in time, not a state to watch for.
        tokio::time::sleep(Duration::from_millis(lapses.saturating_sub(now_ms()) as u64)).await;
        row.reruns += 1;
        let second = Plugin::start(args, &direct, &other).end(RUN_LIMIT).await;
        assert!(
            second.status.success(),
            "the second plugin took over: {}",
            second.error()
        );
        assert!(
            second
                .events
                .iter()
                .any(|e| e["event"] == "locked" && e["resumed"] == true),
            "the second plugin resumed the first one's migration"
        );
        row.completed += 1;

        self.proxy.command("cut off").expect("restore the network");
        let stopped = first.end(RUN_LIMIT).await;
        assert!(!stopped.status.success(), "the first plugin stopped");
        assert!(
            stopped
                .error()
                .contains("no longer holds the migration lock"),
            "{}",
            stopped.error()
        );
        let writes_after_cut: Vec<_> = self
            .proxy
            .requests()
            .expect("the proxy's log")
            .into_iter()
            .filter(|r| r["at_ms"].as_i64().unwrap_or(0) >= cut_at)
            .filter(|r| !matches!(r["method"].as_str(), Some("GET" | "HEAD")))
            .filter(|r| !r["path"].as_str().unwrap_or("").contains("/leases"))
            .filter(|r| r["outcome"].is_number())
            .collect();
        row.violations += writes_after_cut.len();
        assert!(
            writes_after_cut.is_empty(),
            "writes after losing the lock: {writes_after_cut:?}"
        );
    }
}

fn now_ms() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_millisecond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_survive_outages_of_the_api_server_etcd_and_the_network() {
    let seeds: usize = std::env::var("IPPOOL_FAULT_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let seed = std::env::var("IPPOOL_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(18);
    let size = Size {
        max_outage: Duration::from_secs(if seeds > 1 { 60 } else { 15 }),
    };
    let only = std::env::var("IPPOOL_FAULT_KINDS").ok();
    let chosen = |slug: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|k| k == slug))
    };
    let mut suite = Suite::start(seed, seeds == 1).await;
    for _ in 0..seeds {
        for kind in Kind::ALL {
            // Drawn even when not run, so that a kind's faults are the same with or without a filter.
            let fault = Fault::draw(kind, &mut suite.rng, size);
            if chosen(kind.slug()) {
                eprintln!("fault suite: migrate {} under {fault:?}", suite.pool);
                suite.run(fault, false).await;
            }
        }
        let fault = Fault::draw(Kind::ApiServerRestart, &mut suite.rng, size);
        if chosen("resize") {
            eprintln!("fault suite: resize under {fault:?}");
            suite.run(fault, true).await;
        }
    }
    suite.table.report(seeds);
}
