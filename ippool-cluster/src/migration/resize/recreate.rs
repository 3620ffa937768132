//! Steps 3 and 4 of a resize: every block and affinity left in NAME's CIDR removed, then NAME
//! re-created with its old definition and the new blockSize; and `--abort`'s re-creation of NAME
//! as it was.

use std::collections::BTreeMap;

use ippool_rules::cidr;
use ippool_rules::model::{IpPool, ObjectMeta};

use super::{Resize, ResizeError};
use crate::api::CalicoKind;
use crate::client::CalicoClient;
use crate::migration::events::Event;
use crate::migration::execute::{Executor, MigrateError};
use crate::migration::record::ResizeRecord;
use crate::release::{ReleaseStep, Released, release_block, release_stale_affinity};
use ippool_ipam::gc::{GcCandidate, gc_plan};
use ippool_ipam::plan::PlanError;
use ippool_ipam::snapshot::Parts;

/// What cleaning NAME's CIDR reads: blocks and affinities, with the pools and nodes that tell
/// which are leftovers.
const GC_PARTS: Parts = Parts {
    pools: true,
    blocks: true,
    affinities: true,
    handles: false,
    pods: false,
    nodes: true,
    namespaces: false,
};

/// NAME's definition as it must be re-created: name, labels, annotations and spec, nothing the
/// server set.
pub(super) fn definition(pool: &IpPool) -> IpPool {
    IpPool {
        api_version: pool.api_version.clone(),
        kind: pool.kind.clone(),
        metadata: ObjectMeta {
            name: pool.metadata.name.clone(),
            labels: pool.metadata.labels.clone(),
            annotations: pool.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: pool.spec.clone(),
    }
}

pub(super) fn recreated(record: &ResizeRecord) -> IpPool {
    let mut pool = record.original.clone();
    pool.spec.block_size = Some(i64::from(record.block_size));
    pool
}

impl Resize<'_> {
    /// Removes every block and affinity in NAME's CIDR (NAME is gone by now) and checks that
    /// none remain.
    pub(super) async fn clean(&self, state: &ResizeRecord) -> Result<(), ResizeError> {
        let cidr = state
            .original
            .spec
            .cidr_net()
            .map(|c| cidr::canonical(&c))
            .ok_or_else(|| PlanError::BadCidr {
                name: state.name.clone(),
                cidr: state.original.spec.cidr.clone().unwrap_or_default(),
            })?;
        let snapshot = crate::load::snapshot(&self.exec.client, &self.exec.apis, GC_PARTS).await?;
        let gc = gc_plan(&snapshot, Some(&cidr));
        if !gc.kept.is_empty() {
            return Err(ResizeError::CidrNotClean {
                cidr: cidr.to_string(),
                items: gc
                    .kept
                    .iter()
                    .map(|k| format!("{} ({})", k.object, k.why))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let calico = self.calico();
        let progress = self.exec.progress.clone();
        let mut observer = async |step: ReleaseStep| {
            progress.emit(Event::Released {
                change: step.to_string(),
            });
        };
        for candidate in &gc.candidates {
            let outcome = match candidate {
                GcCandidate::Block {
                    block, affinities, ..
                } => release_block(&calico, block, affinities, true, &mut observer)
                    .await
                    .map_err(MigrateError::from)?,
                GcCandidate::Affinity {
                    affinity, block, ..
                } => release_stale_affinity(
                    &calico,
                    affinity,
                    block.as_ref().map(|b| b.name.as_str()),
                    &mut observer,
                )
                .await
                .map_err(MigrateError::from)?,
            };
            if let Released::KeptInUse { allocations } | Released::LostRace { allocations } =
                outcome
            {
                return Err(ResizeError::CidrNotClean {
                    cidr: cidr.to_string(),
                    items: format!("{} ({allocations} allocation(s))", candidate.cidr()),
                });
            }
        }
        let after = crate::load::snapshot(&self.exec.client, &self.exec.apis, GC_PARTS).await?;
        let mut left: BTreeMap<String, &str> = BTreeMap::new();
        for block in &after.blocks {
            if block.cidr().is_some_and(|b| cidr::overlaps(&b, &cidr)) {
                left.insert(format!("ipamblock {}", block.spec.cidr), "block");
            }
        }
        for affinity in &after.affinities {
            if cidr::parse_lenient(&affinity.spec.cidr).is_ok_and(|a| cidr::overlaps(&a, &cidr)) {
                left.insert(
                    format!(
                        "blockaffinity {}",
                        affinity.metadata.name.as_deref().unwrap_or("")
                    ),
                    "affinity",
                );
            }
        }
        if !left.is_empty() {
            return Err(ResizeError::CidrNotClean {
                cidr: cidr.to_string(),
                items: left.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(())
    }

    pub(super) async fn recreate(&self, state: &ResizeRecord) -> Result<(), ResizeError> {
        let pool = recreated(state);
        let calico = self.calico();
        match calico
            .create(CalicoKind::Pool, &state.name, &pool, false)
            .await
        {
            Ok(IpPool { .. }) => Ok(()),
            Err(e) if e.status_code() == Some(409) => {
                let existing = calico
                    .get::<IpPool>(CalicoKind::Pool, &state.name)
                    .await?
                    .ok_or_else(|| ResizeError::Recreated {
                        name: state.name.clone(),
                        detail: "it vanished right after a create said it exists".to_owned(),
                    })?;
                let same_cidr = existing.spec.cidr_net().map(|c| cidr::canonical(&c))
                    == pool.spec.cidr_net().map(|c| cidr::canonical(&c));
                let same_size = existing.spec.defaulted().block_size == Some(state.block_size);
                if same_cidr && same_size {
                    Ok(())
                } else {
                    Err(ResizeError::Recreated {
                        name: state.name.clone(),
                        detail: format!(
                            "CIDR {} blockSize {:?}",
                            existing.spec.cidr.as_deref().unwrap_or("(none)"),
                            existing.spec.block_size
                        ),
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `--abort` of a resize: NAME must exist afterwards — re-created with its original definition
/// when the resize had deleted it. Pods stay where they are.
pub async fn abort_resize(
    exec: &Executor,
    state: &ResizeRecord,
) -> Result<Vec<String>, MigrateError> {
    let calico = CalicoClient::new(exec.client.clone(), exec.apis);
    if calico
        .get::<IpPool>(CalicoKind::Pool, &state.name)
        .await?
        .is_some()
    {
        return Ok(Vec::new());
    }
    match calico
        .create(CalicoKind::Pool, &state.name, &state.original, false)
        .await
    {
        Ok(IpPool { .. }) => {}
        Err(e) if e.status_code() == Some(409) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(vec![format!(
        "pool {} re-created with its original definition; pods in {} stay there (move them back \
         with `kubectl ippool migrate --from {} --to {}`)",
        state.name, state.temp, state.temp, state.name
    )])
}

#[cfg(test)]
mod tests {
    use super::super::temp::temp_name;
    use super::*;

    #[test]
    fn the_recreated_pool_keeps_everything_but_the_block_size() {
        let mut original: IpPool = serde_json::from_value(serde_json::json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": "p", "resourceVersion": "9", "uid": "u", "labels": {"a": "b"},
                         "annotations": {"note": "kept"}, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"cidr": "192.168.0.0/16", "blockSize": 26, "ipipMode": "Always", "natOutgoing": true}
        }))
        .unwrap();
        original = definition(&original);
        assert_eq!(original.metadata.resource_version, None);
        assert_eq!(original.metadata.uid, None);
        assert!(original.metadata.extra.is_empty());
        let record = ResizeRecord {
            name: "p".into(),
            block_size: 28,
            original: original.clone(),
            temp: temp_name("p"),
            temp_cidr: "10.1.0.0/24".into(),
            done: vec![],
            migration: None,
        };
        let again = recreated(&record);
        assert_eq!(again.spec.block_size, Some(28));
        assert_eq!(again.metadata.labels, original.metadata.labels);
        assert_eq!(again.metadata.annotations["note"], "kept");
        assert_eq!(
            serde_json::to_value(&again.spec).unwrap()["ipipMode"],
            "Always"
        );
        assert_eq!(record.temp, "p-resize-tmp");
    }
}
