//! The migration's state in the cluster: one `coordination.k8s.io/v1` Lease, `ippool-migration`
//! in the state namespace (`kube-system` unless `--state-namespace`), that outlives both pools.
//!
//! - The Lease is the lock: `spec.holderIdentity` is the migration's id (`migrate:OLD->NEW`,
//!   `resize:NAME`). Another migration is refused while it exists; the same command run again
//!   resumes.
//! - The annotation `ippool.io/migration-record` holds the [`Record`] (JSON): the request and the
//!   steps done. A resize keeps the pool's original definition there, because the pool itself is
//!   deleted and re-created.
//! - The annotation `ippool.io/migration-session` names the process running it (`host/pid`) and
//!   `spec.renewTime` is renewed while it runs: a second process refuses to run the same
//!   migration while the first is alive. A session is over when its Lease was not renewed for
//!   `leaseDurationSeconds`, or at once when it ran on this host and its process is gone.
//!
//! Every write carries the resourceVersion last read (optimistic concurrency); on a conflict the
//! Lease is read again, and the write is retried only if this session still holds it.

mod lease;
pub mod lock;

use std::time::Duration;

use ippool_rules::model::IpPool;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::step::{ResizeStep, Step};
use crate::request_error::RequestError;

pub const LEASE_NAME: &str = "ippool-migration";
pub const DEFAULT_STATE_NAMESPACE: &str = "kube-system";
pub const RECORD_ANNOTATION: &str = "ippool.io/migration-record";
pub const SESSION_ANNOTATION: &str = "ippool.io/migration-session";
/// A session not renewed for this long is over.
const LEASE_SECONDS: i32 = 30;
/// How often a running session renews its Lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// Conflicting writes in a row before giving up.
const ATTEMPTS: usize = 10;

/// A migration's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateRecord {
    pub from: String,
    pub to: String,
    /// `--cidr`, when NEW was to be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_cidr: Option<String>,
    /// OLD's CIDR, as planned (OLD itself is gone after the last step).
    pub old_cidr: String,
    /// NEW's CIDR, as planned.
    pub to_cidr: String,
    /// Whether OLD was enabled when the migration started (`--abort` enables it again).
    pub old_was_enabled: bool,
    /// OLD stays at the end (`--keep-old-pool`, or `-n`/`--selector`).
    #[serde(default)]
    pub keep_old_pool: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default)]
    pub done: Vec<Step>,
}

impl MigrateRecord {
    pub fn is_done(&self, step: Step) -> bool {
        self.done.contains(&step)
    }
}

/// A resize's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizeRecord {
    pub name: String,
    pub block_size: u8,
    /// The pool as it was before the resize: spec, labels and annotations (no server fields).
    pub original: IpPool,
    pub temp: String,
    pub temp_cidr: String,
    #[serde(default)]
    pub done: Vec<ResizeStep>,
    /// The migration under way (to the temporary pool, or back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrateRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Job {
    Migrate(MigrateRecord),
    /// Boxed: it carries the pool's whole original definition.
    Resize(Box<ResizeRecord>),
}

/// What the Lease's record annotation holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: String,
    pub started_at: String,
    pub job: Job,
}

impl Record {
    pub fn new(id: String, job: Job) -> Record {
        Record {
            id,
            started_at: Timestamp::now().to_string(),
            job,
        }
    }

    /// One line for messages: what it does and how far it got.
    pub fn summary(&self) -> String {
        let steps = |done: &[Step]| {
            done.last().map_or_else(
                || "no step done yet".to_owned(),
                |s| format!("done up to {s}"),
            )
        };
        match &self.job {
            Job::Migrate(m) => format!(
                "migrate {} → {} ({}), started {}",
                m.from,
                m.to,
                steps(&m.done),
                self.started_at
            ),
            Job::Resize(r) => format!(
                "resize {} to blockSize {} via {} ({}), started {}",
                r.name,
                r.block_size,
                r.temp,
                r.done.last().map_or_else(
                    || "no step done yet".to_owned(),
                    |s| format!("done up to {s}")
                ),
                self.started_at
            ),
        }
    }
}

pub fn migrate_id(from: &str, to: &str) -> String {
    format!("migrate:{from}->{to}")
}

pub fn resize_id(name: &str) -> String {
    format!("resize:{name}")
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(
        "another migration holds the lock (Lease {namespace}/{LEASE_NAME}): {summary}. Run that \
         migration's command again to finish it, or `kubectl ippool migrate --abort` to stop it"
    )]
    Locked {
        namespace: String,
        holder: String,
        summary: String,
    },
    #[error(
        "migration {id} is being run right now by {session} (Lease {namespace}/{LEASE_NAME} renewed \
         {renewed_secs}s ago); wait for it, or stop that process — its lock lapses {LEASE_SECONDS}s \
         after its last renewal"
    )]
    Busy {
        namespace: String,
        id: String,
        session: String,
        renewed_secs: i64,
    },
    #[error(
        "this process no longer holds the migration lock (Lease {namespace}/{LEASE_NAME}): it was \
         aborted or taken over; nothing more is written"
    )]
    LostLock { namespace: String },
    #[error(
        "the migration record in Lease {namespace}/{LEASE_NAME} cannot be read ({detail}); inspect \
         it with `kubectl -n {namespace} get lease {LEASE_NAME} -o yaml`"
    )]
    Unreadable { namespace: String, detail: String },
    #[error(
        "Lease {namespace}/{LEASE_NAME} kept changing while being written ({ATTEMPTS} conflicts in a \
         row); run the command again"
    )]
    Contended { namespace: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_as_documented() {
        let record = Record {
            id: migrate_id("old", "new"),
            started_at: "2026-01-01T00:00:00Z".into(),
            job: Job::Migrate(MigrateRecord {
                from: "old".into(),
                to: "new".into(),
                new_cidr: Some("10.0.0.0/16".into()),
                old_cidr: "192.168.0.0/16".into(),
                to_cidr: "10.0.0.0/16".into(),
                old_was_enabled: true,
                keep_old_pool: false,
                namespace: None,
                selector: None,
                done: vec![Step::CreateNew, Step::DisableOld],
            }),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(
            text,
            r#"{"id":"migrate:old->new","startedAt":"2026-01-01T00:00:00Z","job":{"kind":"migrate","from":"old","to":"new","newCidr":"10.0.0.0/16","oldCidr":"192.168.0.0/16","toCidr":"10.0.0.0/16","oldWasEnabled":true,"keepOldPool":false,"done":["create-new","disable-old"]}}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), record);
        assert!(record.summary().contains("done up to disable-old"));
    }
}
