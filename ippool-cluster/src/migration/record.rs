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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ippool_rules::model::IpPool;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

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

/// The process running a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub host: String,
    pub pid: u32,
}

impl Session {
    pub fn current() -> Session {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown-host".to_owned());
        Session {
            host,
            pid: std::process::id(),
        }
    }

    fn parse(text: &str) -> Option<Session> {
        let (host, pid) = text.rsplit_once('/')?;
        Some(Session {
            host: host.to_owned(),
            pid: pid.parse().ok()?,
        })
    }

    /// Whether a process of this session can still be running, as far as this host can tell.
    fn may_be_alive(&self, here: &Session) -> bool {
        if self.host != here.host {
            return true;
        }
        std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.pid)
    }
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

/// A record found in the cluster.
#[derive(Debug, Clone)]
pub struct Found {
    pub record: Record,
    pub session: Option<String>,
    pub lease: Lease,
}

fn parse_record(lease: &Lease, namespace: &str) -> Result<Record, RecordError> {
    let text = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECORD_ANNOTATION))
        .ok_or_else(|| RecordError::Unreadable {
            namespace: namespace.to_owned(),
            detail: format!("annotation {RECORD_ANNOTATION} is missing"),
        })?;
    serde_json::from_str(text).map_err(|e| RecordError::Unreadable {
        namespace: namespace.to_owned(),
        detail: e.to_string(),
    })
}

fn session_of(lease: &Lease) -> Option<String> {
    lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SESSION_ANNOTATION))
        .cloned()
}

fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn request_error(action: String, e: kube::Error) -> RecordError {
    RecordError::Request(RequestError::new(action, e))
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Reads the record, if a migration is in progress.
pub async fn read(client: &Client, namespace: &str) -> Result<Option<Found>, RecordError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let lease = api
        .get_opt(LEASE_NAME)
        .await
        .map_err(|e| request_error(format!("read Lease {namespace}/{LEASE_NAME}"), e))?;
    let Some(lease) = lease else {
        return Ok(None);
    };
    Ok(Some(Found {
        record: parse_record(&lease, namespace)?,
        session: session_of(&lease),
        lease,
    }))
}

/// Deletes the Lease that was read (`--abort`): conditional on its uid, so that a lock taken
/// since by another migration is not removed.
pub async fn remove(client: &Client, namespace: &str, found: &Found) -> Result<(), RecordError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams::default().preconditions(Preconditions {
        uid: found.lease.metadata.uid.clone(),
        resource_version: None,
    });
    match api.delete(LEASE_NAME, &params).await {
        Ok(_) => Ok(()),
        Err(e) if status_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(request_error(
            format!("delete Lease {namespace}/{LEASE_NAME}"),
            e,
        )),
    }
}

/// The lock and record, held by this process.
#[derive(Clone)]
pub struct Held {
    inner: Arc<HeldInner>,
}

struct HeldInner {
    api: Api<Lease>,
    namespace: String,
    session: Session,
    id: String,
    /// The Lease as last written or read by this session.
    lease: Mutex<Lease>,
}

/// The result of taking the lock.
pub struct Acquired {
    pub held: Held,
    pub record: Record,
    /// Whether an earlier run's record was found (and is continued).
    pub resumed: bool,
}

/// Takes the lock for `fresh.id`: creates the Lease with `fresh` as its record, or — when the
/// Lease already holds the same id and its session is over — takes it over and returns the
/// record found there (the earlier run's progress).
pub async fn acquire(
    client: &Client,
    namespace: &str,
    fresh: Record,
) -> Result<Acquired, RecordError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let session = Session::current();
    let what = || format!("take the migration lock (Lease {namespace}/{LEASE_NAME})");
    for _ in 0..ATTEMPTS {
        let existing = api
            .get_opt(LEASE_NAME)
            .await
            .map_err(|e| request_error(what(), e))?;
        let Some(mut lease) = existing else {
            let lease = new_lease(namespace, &fresh, &session)?;
            match api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    return Ok(Acquired {
                        held: Held::new(api, namespace, session, &fresh.id, created),
                        record: fresh,
                        resumed: false,
                    });
                }
                Err(e) if status_code(&e) == Some(409) => continue,
                Err(e) => return Err(request_error(what(), e)),
            }
        };
        let record = parse_record(&lease, namespace)?;
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        if holder != fresh.id || record.id != fresh.id {
            return Err(RecordError::Locked {
                namespace: namespace.to_owned(),
                holder,
                summary: record.summary(),
            });
        }
        if let Some(busy) = live_session(&lease, &session) {
            return Err(RecordError::Busy {
                namespace: namespace.to_owned(),
                id: fresh.id,
                session: busy.0,
                renewed_secs: busy.1,
            });
        }
        set_session(&mut lease, &session);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.renew_time = Some(now_micro());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        match api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(taken) => {
                return Ok(Acquired {
                    held: Held::new(api, namespace, session, &fresh.id, taken),
                    record,
                    resumed: true,
                });
            }
            Err(e) if status_code(&e) == Some(409) => continue,
            Err(e) => return Err(request_error(what(), e)),
        }
    }
    Err(RecordError::Contended {
        namespace: namespace.to_owned(),
    })
}

/// `Some((session, seconds since renewal))` when another process may still be running the
/// migration held by this Lease.
fn live_session(lease: &Lease, here: &Session) -> Option<(String, i64)> {
    let text = session_of(lease)?;
    let session = Session::parse(&text)?;
    if &session == here {
        return None;
    }
    let spec = lease.spec.as_ref()?;
    let renewed = spec.renew_time.as_ref()?.0;
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    let since = Timestamp::now().as_second() - renewed.as_second();
    (since < duration && session.may_be_alive(here)).then_some((text, since.max(0)))
}

fn set_session(lease: &mut Lease, session: &Session) {
    lease
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SESSION_ANNOTATION.to_owned(), session.to_string());
}

fn new_lease(namespace: &str, record: &Record, session: &Session) -> Result<Lease, RecordError> {
    let text = serde_json::to_string(record).map_err(|e| RecordError::Unreadable {
        namespace: namespace.to_owned(),
        detail: e.to_string(),
    })?;
    let now = now_micro();
    let mut lease = Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "kubectl-ippool".to_owned(),
                )]
                .into(),
            ),
            annotations: Some([(RECORD_ANNOTATION.to_owned(), text)].into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(record.id.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    };
    set_session(&mut lease, session);
    Ok(lease)
}

impl Held {
    fn new(api: Api<Lease>, namespace: &str, session: Session, id: &str, lease: Lease) -> Held {
        Held {
            inner: Arc::new(HeldInner {
                api,
                namespace: namespace.to_owned(),
                session,
                id: id.to_owned(),
                lease: Mutex::new(lease),
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    fn lost(&self) -> RecordError {
        RecordError::LostLock {
            namespace: self.inner.namespace.clone(),
        }
    }

    fn still_ours(&self, lease: &Lease) -> bool {
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        holder == Some(self.inner.id.as_str())
            && session_of(lease).as_deref() == Some(self.inner.session.to_string().as_str())
    }

    /// Changes the Lease with `change`, conditional on the version last seen; on a conflict the
    /// Lease is read again and `change` re-applied, as long as this session still holds it.
    async fn write(
        &self,
        mut change: impl FnMut(&mut Lease) -> Result<(), RecordError>,
    ) -> Result<Lease, RecordError> {
        let inner = &self.inner;
        let what = || format!("update Lease {}/{LEASE_NAME}", inner.namespace);
        let mut current = inner.lease.lock().await;
        for _ in 0..ATTEMPTS {
            let mut next = current.clone();
            change(&mut next)?;
            match inner
                .api
                .replace(LEASE_NAME, &PostParams::default(), &next)
                .await
            {
                Ok(written) => {
                    *current = written.clone();
                    return Ok(written);
                }
                Err(e) if status_code(&e) == Some(409) => {
                    let fresh = inner
                        .api
                        .get_opt(LEASE_NAME)
                        .await
                        .map_err(|e| request_error(what(), e))?
                        .ok_or_else(|| self.lost())?;
                    if !self.still_ours(&fresh) {
                        return Err(self.lost());
                    }
                    *current = fresh;
                }
                Err(e) if status_code(&e) == Some(404) => return Err(self.lost()),
                Err(e) => return Err(request_error(what(), e)),
            }
        }
        Err(RecordError::Contended {
            namespace: inner.namespace.clone(),
        })
    }

    /// Applies `change` to the record and writes it (renewing the Lease as well).
    pub async fn update(&self, mut change: impl FnMut(&mut Record)) -> Result<Record, RecordError> {
        let namespace = self.inner.namespace.clone();
        let written = self
            .write(|lease| {
                let mut record = parse_record(lease, &namespace)?;
                change(&mut record);
                let text = serde_json::to_string(&record).map_err(|e| RecordError::Unreadable {
                    namespace: namespace.clone(),
                    detail: e.to_string(),
                })?;
                lease
                    .metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(RECORD_ANNOTATION.to_owned(), text);
                lease.spec.get_or_insert_with(LeaseSpec::default).renew_time = Some(now_micro());
                Ok(())
            })
            .await?;
        parse_record(&written, &namespace)
    }

    /// Renews the Lease so that another process sees this session alive.
    pub async fn renew(&self) -> Result<(), RecordError> {
        self.write(|lease| {
            lease.spec.get_or_insert_with(LeaseSpec::default).renew_time = Some(now_micro());
            Ok(())
        })
        .await
        .map(drop)
    }

    /// Renews every [`RENEW_EVERY`] until the returned task is aborted or the lock is lost.
    pub fn keep_renewed(&self) -> tokio::task::JoinHandle<RecordError> {
        let held = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(e @ (RecordError::LostLock { .. } | RecordError::Unreadable { .. })) =
                    held.renew().await
                {
                    return e;
                }
            }
        })
    }

    /// Releases the lock: deletes the Lease at the version this session last wrote.
    pub async fn release(self) -> Result<(), RecordError> {
        let inner = &self.inner;
        let what = || {
            format!(
                "release the migration lock (Lease {}/{LEASE_NAME})",
                inner.namespace
            )
        };
        let mut current = inner.lease.lock().await;
        for _ in 0..ATTEMPTS {
            let params = DeleteParams::default().preconditions(Preconditions {
                uid: current.metadata.uid.clone(),
                resource_version: current.metadata.resource_version.clone(),
            });
            match inner.api.delete(LEASE_NAME, &params).await {
                Ok(_) => return Ok(()),
                Err(e) if status_code(&e) == Some(404) => return Ok(()),
                Err(e) if status_code(&e) == Some(409) => {
                    let fresh = inner
                        .api
                        .get_opt(LEASE_NAME)
                        .await
                        .map_err(|e| request_error(what(), e))?;
                    match fresh {
                        Some(fresh) if self.still_ours(&fresh) => *current = fresh,
                        Some(_) => return Err(self.lost()),
                        None => return Ok(()),
                    }
                }
                Err(e) => return Err(request_error(what(), e)),
            }
        }
        Err(RecordError::Contended {
            namespace: inner.namespace.clone(),
        })
    }
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

    #[test]
    fn sessions_parse_and_a_dead_local_process_is_over() {
        let here = Session::current();
        let me = Session::parse(&here.to_string()).unwrap();
        assert_eq!(me, here);
        assert!(me.may_be_alive(&here));
        let gone = Session {
            host: here.host.clone(),
            pid: u32::MAX - 1,
        };
        assert!(!gone.may_be_alive(&here));
        let elsewhere = Session {
            host: "another-host".into(),
            pid: 1,
        };
        assert!(elsewhere.may_be_alive(&here));
        assert_eq!(Session::parse("no-pid"), None);
    }

    #[test]
    fn a_lease_renewed_long_ago_has_no_live_session() {
        let here = Session::current();
        let other = Session {
            host: "another-host".into(),
            pid: 7,
        };
        let record = Record::new(
            resize_id("p"),
            Job::Migrate(MigrateRecord {
                from: "a".into(),
                to: "b".into(),
                new_cidr: None,
                old_cidr: "10.0.0.0/24".into(),
                to_cidr: "10.1.0.0/24".into(),
                old_was_enabled: true,
                keep_old_pool: false,
                namespace: None,
                selector: None,
                done: vec![],
            }),
        );
        let mut lease = new_lease("kube-system", &record, &other).unwrap();
        assert!(live_session(&lease, &here).is_some());
        let stale = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(60);
        lease.spec.as_mut().unwrap().renew_time = Some(MicroTime(stale));
        assert_eq!(live_session(&lease, &here), None);
    }
}
