//! Changing a pool safely: read it, let the caller decide (and validate) the change on what was
//! read, write only the changed fields as a merge patch conditional on the resourceVersion read,
//! and on a conflict start over from a fresh read — so that two writers never overwrite each
//! other's changes and every write is validated against the pool it actually replaces.

use ippool_rules::model::IpPool;
use serde_json::{Map, Value, json};

use crate::api::CalicoKind;
use crate::client::CalicoClient;
use crate::request_error::RequestError;

/// Attempts before giving up on a pool that keeps changing.
const ATTEMPTS: usize = 8;

/// What the caller decided on the pool as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write these fields (a merge patch body without `metadata.resourceVersion`; it is added).
    Patch(Value),
    /// Nothing to change.
    Unchanged,
}

/// How an update ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Updated {
    /// Written (or, with dry-run, accepted by the server); the pool as the server returned it.
    Written { pool: IpPool, attempts: usize },
    /// The pool already had the wanted state.
    Unchanged { pool: IpPool },
}

#[derive(Debug, thiserror::Error)]
pub enum PoolWriteError<E: std::error::Error + 'static> {
    #[error("IP pool {name:?} does not exist; `kubectl ippool list` shows the pools there are")]
    NotFound { name: String },
    /// The caller refused the change (e.g. the rules found errors).
    #[error(transparent)]
    Refused(E),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(
        "IP pool {name:?} changed {ATTEMPTS} times while this command tried to update it; \
         another writer is busy with it — run the command again later"
    )]
    Contended { name: String },
}

/// Reads pool `name`, asks `decide` what to change, and writes it conditionally; on conflict,
/// reads again and asks again. `decide` sees every version it is asked to change, so validation
/// inside it always judges the pool actually being replaced.
pub async fn update_pool<E: std::error::Error + 'static>(
    calico: &CalicoClient,
    name: &str,
    dry_run: bool,
    decide: &mut impl AsyncFnMut(&IpPool) -> Result<Decision, E>,
) -> Result<Updated, PoolWriteError<E>> {
    for attempt in 1..=ATTEMPTS {
        let pool = calico
            .get::<IpPool>(CalicoKind::Pool, name)
            .await?
            .ok_or_else(|| PoolWriteError::NotFound {
                name: name.to_owned(),
            })?;
        let patch = match decide(&pool).await.map_err(PoolWriteError::Refused)? {
            Decision::Unchanged => return Ok(Updated::Unchanged { pool }),
            Decision::Patch(patch) => conditional(patch, pool.metadata.resource_version.as_deref()),
        };
        match calico
            .merge_patch::<IpPool>(CalicoKind::Pool, name, &patch, dry_run)
            .await
        {
            Ok(pool) => {
                return Ok(Updated::Written {
                    pool,
                    attempts: attempt,
                });
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => {
                return Err(PoolWriteError::NotFound {
                    name: name.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PoolWriteError::Contended {
        name: name.to_owned(),
    })
}

/// Adds `metadata.resourceVersion` to a merge patch, making it conditional.
fn conditional(mut patch: Value, resource_version: Option<&str>) -> Value {
    if let (Some(rv), Some(map)) = (resource_version, patch.as_object_mut()) {
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("resourceVersion".to_owned(), json!(rv));
        }
    }
    patch
}

/// The merge patch turning `old` into `new`: changed spec fields, labels and annotations only
/// (removed ones as `null`), or `None` when nothing differs.
pub fn pool_diff(old: &IpPool, new: &IpPool) -> Option<Value> {
    let mut patch = Map::new();
    let old_spec = serde_json::to_value(&old.spec).unwrap_or(Value::Null);
    let new_spec = serde_json::to_value(&new.spec).unwrap_or(Value::Null);
    if let Some(spec) = object_diff(&old_spec, &new_spec) {
        patch.insert("spec".to_owned(), spec);
    }
    let mut metadata = Map::new();
    for (key, old_map, new_map) in [
        ("labels", &old.metadata.labels, &new.metadata.labels),
        (
            "annotations",
            &old.metadata.annotations,
            &new.metadata.annotations,
        ),
    ] {
        let old_value = serde_json::to_value(old_map).unwrap_or(Value::Null);
        let new_value = serde_json::to_value(new_map).unwrap_or(Value::Null);
        if let Some(diff) = object_diff(&old_value, &new_value) {
            metadata.insert(key.to_owned(), diff);
        }
    }
    if !metadata.is_empty() {
        patch.insert("metadata".to_owned(), Value::Object(metadata));
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// Top-level keys of two JSON objects that differ: new values, `null` for removed keys. Nested
/// values are replaced whole (a pool spec has no nested objects worth merging).
fn object_diff(old: &Value, new: &Value) -> Option<Value> {
    let empty = Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut diff = Map::new();
    for (key, value) in new {
        if old.get(key) != Some(value) {
            diff.insert(key.clone(), value.clone());
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            diff.insert(key.clone(), Value::Null);
        }
    }
    (!diff.is_empty()).then_some(Value::Object(diff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_ipam::fixtures::pool;

    #[test]
    fn diff_names_only_changed_fields() {
        let old = pool("p", "10.0.0.0/24", Some(26), false);
        let mut new = old.clone();
        assert_eq!(pool_diff(&old, &new), None);
        new.spec.disabled = Some(true);
        new.spec.nat_outgoing = Some(true);
        new.metadata
            .labels
            .insert("team".to_owned(), "net".to_owned());
        assert_eq!(
            pool_diff(&old, &new),
            Some(json!({
                "spec": {"disabled": true, "natOutgoing": true},
                "metadata": {"labels": {"team": "net"}},
            }))
        );
        // A field dropped from the new spec is removed.
        let mut dropped = old.clone();
        dropped.spec.block_size = None;
        assert_eq!(
            pool_diff(&old, &dropped),
            Some(json!({"spec": {"blockSize": null}}))
        );
    }

    #[test]
    fn patches_are_made_conditional() {
        let patch = conditional(json!({"spec": {"disabled": true}}), Some("42"));
        assert_eq!(
            patch,
            json!({"spec": {"disabled": true}, "metadata": {"resourceVersion": "42"}})
        );
    }
}
