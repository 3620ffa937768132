//! Taking, holding and releasing the lock: reads and writes of the Lease, each conditional on the
//! version last seen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::sync::Mutex;

use super::lease::{
    Session, live_session, new_lease, now_micro, parse_record, session_of, set_session,
};
use super::{ATTEMPTS, LEASE_NAME, RECORD_ANNOTATION, RENEW_EVERY, Record, RecordError};
use crate::migration::fence::LeaseClock;
use crate::request_error::RequestError;

/// A record found in the cluster.
#[derive(Debug, Clone)]
pub struct Found {
    pub record: Record,
    pub session: Option<String>,
    pub lease: Lease,
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

impl Found {
    /// The process running the migration and the seconds since it renewed the Lease, when one
    /// may still be running it (as far as this host can tell); `None` means no process holds it:
    /// running the command again resumes it.
    pub fn running_session(&self) -> Option<(String, i64)> {
        live_session(&self.lease, &Session::current())
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
    /// When this session last wrote the Lease (what the fence in front of the clients reads).
    clock: LeaseClock,
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
/// record found there (the earlier run's progress). `clock` is told of every write of the Lease.
pub async fn acquire(
    client: &Client,
    namespace: &str,
    fresh: Record,
    clock: &LeaseClock,
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
            let sent = Instant::now();
            match api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    clock.confirm(sent);
                    return Ok(Acquired {
                        held: Held::new(api, namespace, session, &fresh.id, created, clock),
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
        let sent = Instant::now();
        match api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(taken) => {
                clock.confirm(sent);
                return Ok(Acquired {
                    held: Held::new(api, namespace, session, &fresh.id, taken, clock),
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

impl Held {
    fn new(
        api: Api<Lease>,
        namespace: &str,
        session: Session,
        id: &str,
        lease: Lease,
        clock: &LeaseClock,
    ) -> Held {
        Held {
            inner: Arc::new(HeldInner {
                api,
                namespace: namespace.to_owned(),
                session,
                id: id.to_owned(),
                lease: Mutex::new(lease),
                clock: clock.clone(),
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
        self.inner.clock.lose();
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
            let sent = Instant::now();
            match inner
                .api
                .replace(LEASE_NAME, &PostParams::default(), &next)
                .await
            {
                Ok(written) => {
                    inner.clock.confirm(sent);
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

    /// Makes sure this session may act: when it has not confirmed its hold for a while (the API
    /// server or the network was away), renews the Lease, trying again with backoff while the
    /// failure passes, for up to `timeout`. Another process holding the Lease now is
    /// [`RecordError::LostLock`].
    pub async fn ensure(&self, timeout: Duration) -> Result<(), RecordError> {
        let began = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            if self.inner.clock.may_act() {
                return Ok(());
            }
            match self.renew().await {
                Ok(()) => return Ok(()),
                Err(e @ (RecordError::LostLock { .. } | RecordError::Unreadable { .. })) => {
                    return Err(e);
                }
                Err(e) if began.elapsed() + delay > timeout => return Err(e),
                Err(e) => {
                    tracing::info!("cannot confirm the migration lock yet ({e}); trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
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
                Ok(_) => {
                    inner.clock.release();
                    return Ok(());
                }
                Err(e) if status_code(&e) == Some(404) => {
                    inner.clock.release();
                    return Ok(());
                }
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
