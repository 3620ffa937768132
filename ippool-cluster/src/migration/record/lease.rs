//! The record's place in the Lease: the annotations that hold the record and the session, the
//! Lease a new lock is created as, and when a session that holds it is over.

use std::fmt;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

use super::{
    LEASE_NAME, LEASE_SECONDS, RECORD_ANNOTATION, Record, RecordError, SESSION_ANNOTATION,
};

/// The process running a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub host: String,
    pub pid: u32,
}

impl Session {
    pub fn current() -> Session {
        let host = crate::migration::fault::session_host()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
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

pub(super) fn parse_record(lease: &Lease, namespace: &str) -> Result<Record, RecordError> {
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

pub(super) fn session_of(lease: &Lease) -> Option<String> {
    lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SESSION_ANNOTATION))
        .cloned()
}

pub(super) fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// `Some((session, seconds since renewal))` when another process may still be running the
/// migration held by this Lease.
pub(super) fn live_session(lease: &Lease, here: &Session) -> Option<(String, i64)> {
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

pub(super) fn set_session(lease: &mut Lease, session: &Session) {
    lease
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SESSION_ANNOTATION.to_owned(), session.to_string());
}

pub(super) fn new_lease(
    namespace: &str,
    record: &Record,
    session: &Session,
) -> Result<Lease, RecordError> {
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

#[cfg(test)]
mod tests {
    use super::super::{Job, MigrateRecord, resize_id};
    use super::*;

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
