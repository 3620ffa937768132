//! `--abort`, for a migration and for a resize alike: the record says which, and the resize's own
//! undoing comes first.

use std::convert::Infallible;

use ippool_rules::model::IpPool;
use serde_json::json;

use super::execute::{Executor, MigrateError};
use super::job::{self, JOB_NAME};
use super::record::Job;
use super::record::lock::{self, Found};
use super::resize::recreate::abort_resize;
use crate::client::CalicoClient;
use crate::pool_write::{Decision, PoolWriteError, update_pool};

/// `--abort`: enables the old pool again (when it was enabled before and still exists) and
/// releases the lock; pods already moved stay where they are. Returns what was done, in words.
pub async fn abort(exec: &Executor) -> Result<Vec<String>, MigrateError> {
    let namespace = &exec.options.state_namespace;
    let found: Found =
        lock::read(&exec.client, namespace)
            .await?
            .ok_or_else(|| MigrateError::NothingToAbort {
                namespace: namespace.clone(),
            })?;
    let calico = CalicoClient::new(exec.client.clone(), exec.apis);
    let mut done = Vec::new();
    // A run in the cluster stops first, so that nothing of it writes after the undoing.
    if job::stop(&exec.client, namespace, exec.options.timeout).await? {
        done.push(format!("Job {namespace}/{JOB_NAME} and its pod stopped"));
    }
    let migration = match &found.record.job {
        Job::Migrate(m) => Some(m.clone()),
        Job::Resize(r) => {
            done.extend(abort_resize(exec, r).await?);
            r.migration.clone()
        }
    };
    if let Some(m) = migration
        && m.old_was_enabled
    {
        let enabled =
            update_pool::<Infallible>(&calico, &m.from, false, &mut async |p: &IpPool| {
                Ok(if p.spec.disabled == Some(true) {
                    Decision::Patch(json!({"spec": {"disabled": false}}))
                } else {
                    Decision::Unchanged
                })
            })
            .await;
        match enabled {
            Ok(_) => done.push(format!("pool {} enabled again", m.from)),
            Err(PoolWriteError::NotFound { .. }) => {
                done.push(format!("pool {} was already deleted", m.from))
            }
            Err(e) => return Err(e.into()),
        }
    }
    lock::remove(&exec.client, namespace, &found).await?;
    done.push(format!(
        "lock released (migration {} aborted; moved pods stay where they are)",
        found.record.id
    ));
    Ok(done)
}
