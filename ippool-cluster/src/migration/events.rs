//! Progress of a migration or resize, as events; the plugin shows them as plain lines, live bars
//! on a terminal, or with `-o json` one JSON object per line (`Line`) for automation.
//!
//! # JSON event schema (`-o json`)
//!
//! Every line is one object with `"ts"` (RFC 3339 UTC time the event was emitted) and `"event"`
//! (its name); the other fields depend on the event. Field names are camelCase. A consumer should
//! ignore events and fields it does not know: new ones may be added, existing ones keep their
//! meaning.
//!
//! | `event`            | fields |
//! |--------------------|--------|
//! | `plan`             | `plan`: the plan object (`from`, `to`, `targetAction`, `findings`, `moves`, `disruptions`, `blockers`, `warnings`, `keepOldPool`, `tunnelNodes`, `terminatingPods`) |
//! | `locked`           | `id`: the migration's id (the lock holder); `resumed`: whether an earlier run's record was found; `done`: step names already done |
//! | `step-started`     | `step`: step name (`create-new`, `disable-old`, `move-workloads`, `verify`, `release-old`, `delete-old`; a resize adds `clean-old-cidr`, `recreate` and prefixes its migrations' steps with `to-temp/` or `back/`) |
//! | `step-done`        | `step`; `skipped`: true when an earlier run had done it |
//! | `workload-started` | `workload` (`Deployment ns/name`), `method` (`rollout-restart`, `evict`, `delete`), `pods`: its pods in the old pool |
//! | `pod-evicted`      | `pod` (`ns/name`) |
//! | `pod-deleted`      | `pod` |
//! | `pod-moved`        | `pod`, `address`: a pod of a moving workload got an address in the new pool |
//! | `waiting`          | `subject` (what is waited on), `reason` (for what, e.g. `rollout: 3 of 4 updated`, `eviction refused by PodDisruptionBudget shop/web`) |
//! | `workload-done`    | `workload`, `workloadsDone`, `workloadsTotal`, `podsMoved` (totals so far) |
//! | `released`         | `change`: one write of the release (`blockaffinity … marked pendingDeletion`, `ipamblock … deleted`) |
//! | `warning`          | `message` |
//! | `finished`         | `outcome`: `completed`, `dry-run`, `blocked`, `declined`, `aborted`; `stats`: `apiRequests` (requests this process made), `seconds` (wall time) |
//! | `failed`           | `error`: what stopped the run and what to do; the run can be started again |

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    Completed,
    DryRun,
    Blocked,
    Declined,
    Aborted,
}

/// What a run cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStats {
    /// API requests this process made (discovery, reads, watches, writes).
    pub api_requests: u64,
    /// Wall time from connecting to the end, in seconds.
    pub seconds: f64,
}

/// One progress event; see the module documentation for the JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "event",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    Plan {
        plan: serde_json::Value,
    },
    Locked {
        id: String,
        resumed: bool,
        done: Vec<String>,
    },
    StepStarted {
        step: String,
    },
    StepDone {
        step: String,
        skipped: bool,
    },
    WorkloadStarted {
        workload: String,
        method: String,
        pods: usize,
    },
    PodEvicted {
        pod: String,
    },
    PodDeleted {
        pod: String,
    },
    PodMoved {
        pod: String,
        address: IpAddr,
    },
    Waiting {
        subject: String,
        reason: String,
    },
    WorkloadDone {
        workload: String,
        workloads_done: usize,
        workloads_total: usize,
        pods_moved: usize,
    },
    Released {
        change: String,
    },
    Warning {
        message: String,
    },
    Finished {
        outcome: RunOutcome,
        /// Set when the run got as far as connecting.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stats: Option<RunStats>,
    },
    Failed {
        error: String,
    },
}

/// An event as written on a JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub ts: String,
    #[serde(flatten)]
    pub event: Event,
}

/// Where events go.
pub trait Progress: Send + Sync {
    fn emit(&self, event: Event);
}
