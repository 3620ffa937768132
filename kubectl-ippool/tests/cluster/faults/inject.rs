//! The faults, drawn from a seeded generator and injected into the running control plane or the
//! proxy between the plugin and the API server.

use std::time::Duration;

use harness::{ControlPlane, FaultProxy};

/// A kind of fault, as the suite's table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// kube-apiserver stopped (SIGTERM) and started again after a while.
    ApiServerRestart,
    /// kube-apiserver stopped and started three times in a row.
    ApiServerRestarts,
    /// etcd paused (SIGSTOP) and resumed.
    EtcdPause,
    /// Every connection between the plugin and the API server cut, several times.
    DroppedConnections,
    /// Every watch the plugin holds ended by the proxy, several times.
    ClosedWatches,
    /// Every request answered 429 with `Retry-After` for a while.
    TooManyRequests,
    /// Every request answered 503, then 500, for a while.
    ServerErrors,
    /// Every request delayed.
    Latency,
    /// The plugin's network cut for longer than its Lease lasts, with a second plugin started
    /// during the cut: refused while the lock is live, taking over once it lapsed.
    LeaseExpiry,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::ApiServerRestart,
        Kind::ApiServerRestarts,
        Kind::EtcdPause,
        Kind::DroppedConnections,
        Kind::ClosedWatches,
        Kind::TooManyRequests,
        Kind::ServerErrors,
        Kind::Latency,
        Kind::LeaseExpiry,
    ];

    /// Its name in `IPPOOL_FAULT_KINDS`.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::ApiServerRestart => "apiserver-restart",
            Kind::ApiServerRestarts => "apiserver-restarts",
            Kind::EtcdPause => "etcd-pause",
            Kind::DroppedConnections => "drop",
            Kind::ClosedWatches => "close-watches",
            Kind::TooManyRequests => "429",
            Kind::ServerErrors => "5xx",
            Kind::Latency => "latency",
            Kind::LeaseExpiry => "lease-expiry",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::ApiServerRestart => "kube-apiserver restarted",
            Kind::ApiServerRestarts => "kube-apiserver restarted 3 times",
            Kind::EtcdPause => "etcd paused (SIGSTOP)",
            Kind::DroppedConnections => "connections dropped",
            Kind::ClosedWatches => "watches closed mid-stream",
            Kind::TooManyRequests => "429 burst with Retry-After",
            Kind::ServerErrors => "503 and 500 bursts",
            Kind::Latency => "added latency",
            Kind::LeaseExpiry => "network cut past the Lease, second plugin",
        }
    }
}

/// One fault to inject: when (after how many of the plugin's progress events) and how hard.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub kind: Kind,
    /// Injected once the plugin has printed this many events (a random moment of the run).
    pub after_events: usize,
    /// How long the outage lasts (or the latency is added), where that applies.
    pub length: Duration,
    /// Milliseconds of latency, or repetitions.
    pub amount: u64,
}

/// The outage lengths of a size: the smoke size keeps CI short, the full size goes to a minute.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub max_outage: Duration,
}

impl Fault {
    pub fn draw(kind: Kind, rng: &mut fastrand::Rng, size: Size) -> Fault {
        let outage = |rng: &mut fastrand::Rng| {
            Duration::from_secs(rng.u64(5..=size.max_outage.as_secs().max(5)))
        };
        let (length, amount) = match kind {
            Kind::ApiServerRestart | Kind::EtcdPause => (outage(rng), 1),
            Kind::ApiServerRestarts => (Duration::from_secs(5), 3),
            Kind::DroppedConnections | Kind::ClosedWatches => {
                (Duration::from_secs(rng.u64(1..=3)), rng.u64(3..=6))
            }
            Kind::TooManyRequests | Kind::ServerErrors => (outage(rng), 1),
            Kind::Latency => (outage(rng), rng.u64(100..=800)),
            Kind::LeaseExpiry => (Duration::ZERO, 1),
        };
        Fault {
            kind,
            after_events: rng.usize(2..=14),
            length,
            amount,
        }
    }

    /// What the table's detail column says of this fault.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::ApiServerRestart | Kind::EtcdPause => format!("{}s", self.length.as_secs()),
            Kind::ApiServerRestarts => format!("3 × {}s", self.length.as_secs()),
            Kind::DroppedConnections | Kind::ClosedWatches => format!("{} times", self.amount),
            Kind::TooManyRequests | Kind::ServerErrors => format!("{}s", self.length.as_secs()),
            Kind::Latency => format!("{} ms for {}s", self.amount, self.length.as_secs()),
            Kind::LeaseExpiry => "cut past the 30s Lease".to_owned(),
        }
    }
}

/// Requests a burst answers: more than any run sends, so the burst is ended by `reset`.
const EVERY: u64 = 1_000_000;

fn harness<T>(result: Result<T, harness::HarnessError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("injecting the fault ({what}) failed: {e}"))
}

async fn restart_apiserver(cp: &ControlPlane, down: Duration) {
    let stopped =
        tokio::task::block_in_place(|| harness(cp.stop_apiserver(), "stop the API server"));
    tokio::time::sleep(down).await;
    harness(cp.start_apiserver(stopped).await, "start the API server");
}

/// Injects every kind but [`Kind::LeaseExpiry`] (which the suite plays out itself); returns when
/// the fault is over.
pub async fn inject(fault: &Fault, cp: &ControlPlane, proxy: &mut FaultProxy) {
    let mut command = |line: String| harness(proxy.command(&line), &line);
    match fault.kind {
        Kind::ApiServerRestart => restart_apiserver(cp, fault.length).await,
        Kind::ApiServerRestarts => {
            for _ in 0..fault.amount {
                restart_apiserver(cp, fault.length).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
        Kind::EtcdPause => {
            harness(cp.pause("etcd"), "pause etcd");
            tokio::time::sleep(fault.length).await;
            harness(cp.resume("etcd"), "resume etcd");
        }
        Kind::DroppedConnections | Kind::ClosedWatches => {
            let line = match fault.kind {
                Kind::DroppedConnections => "drop",
                _ => "close-watches",
            };
            for _ in 0..fault.amount {
                command(line.to_owned());
                tokio::time::sleep(fault.length).await;
            }
        }
        // Every request answered so for the whole burst: what a server shedding load or failing
        // for a while looks like to a client.
        Kind::TooManyRequests => {
            command(format!("status 429 {EVERY} 1"));
            tokio::time::sleep(fault.length).await;
            command("reset".to_owned());
        }
        Kind::ServerErrors => {
            for code in [503, 500] {
                command(format!("status {code} {EVERY}"));
                tokio::time::sleep(fault.length / 2).await;
                command("reset".to_owned());
            }
        }
        Kind::Latency => {
            command(format!("latency {}", fault.amount));
            tokio::time::sleep(fault.length).await;
            command("latency 0".to_owned());
        }
        Kind::LeaseExpiry => unreachable!("the suite plays the Lease's expiry out itself"),
    }
}
