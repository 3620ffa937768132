//! Leaked addresses released as Calico releases by handle: the block's allocations written
//! without them, then the handle's counts lowered.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ippool_rules::cidr;
use ippool_rules::model::{IpamBlock, IpamHandle};
use serde_json::json;

use super::{ATTEMPTS, LeakRelease, ReleaseError, ReleaseStep, version};
use crate::api::CalicoKind;
use crate::client::CalicoClient;
use ippool_ipam::allocation;
use ippool_ipam::names;

/// Releases the given handles' leaked ordinals in one block; returns handle → (block CIDR, count).
pub(super) async fn release_in_block(
    calico: &CalicoClient,
    block_name: &str,
    handles: &BTreeMap<&str, BTreeSet<usize>>,
    outcome: &mut LeakRelease,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<BTreeMap<String, (String, i64)>, ReleaseError> {
    for _ in 0..ATTEMPTS {
        let Some(mut block) = calico
            .get::<IpamBlock>(CalicoKind::Block, block_name)
            .await?
        else {
            return Ok(BTreeMap::new());
        };
        let current: Vec<(usize, Option<String>)> = allocation::allocations(&block)?
            .into_iter()
            .map(|a| (a.ordinal, a.handle_id().map(str::to_owned)))
            .collect();
        let mut freed: Vec<(String, Vec<IpAddr>)> = Vec::new();
        let mut skipped = Vec::new();
        for (handle, ordinals) in handles {
            let held: BTreeSet<usize> = current
                .iter()
                .filter(|(_, h)| h.as_deref() == Some(*handle))
                .map(|(o, _)| *o)
                .collect();
            if held.is_empty() {
                continue;
            }
            if !held.is_subset(ordinals) {
                // The handle holds an address here that was not found leaked: leave it all.
                let net = allocation::checked_cidr(&block)?;
                skipped.extend(ordinals.iter().filter_map(|o| {
                    cidr::nth_address(&net, *o as u128).map(|a| {
                        (
                            a,
                            format!("handle {handle} also holds addresses in use in this block"),
                        )
                    })
                }));
                continue;
            }
            let addresses = allocation::release_handle(&mut block, handle)?;
            freed.push(((*handle).to_owned(), addresses));
        }
        if freed.is_empty() {
            outcome.skipped.extend(skipped);
            return Ok(BTreeMap::new());
        }
        let spec = &block.spec;
        let patch = json!({
            "metadata": {"resourceVersion": version(&block.metadata.resource_version)},
            "spec": {
                "allocations": spec.allocations,
                "unallocated": spec.unallocated,
                "attributes": spec.attributes,
                "sequenceNumber": spec.sequence_number,
                "sequenceNumberForAllocation": spec.sequence_number_for_allocation,
            },
        });
        match calico
            .merge_patch::<IpamBlock>(CalicoKind::Block, block_name, &patch, false)
            .await
        {
            Ok(_) => {
                outcome.skipped.extend(skipped);
                let mut counts = BTreeMap::new();
                for (handle, addresses) in freed {
                    outcome.released.extend(addresses.iter().copied());
                    counts.insert(
                        handle.clone(),
                        (block.spec.cidr.clone(), addresses.len() as i64),
                    );
                    observer(ReleaseStep::AddressesReleased {
                        block: block_name.to_owned(),
                        handle,
                        addresses,
                    })
                    .await;
                }
                return Ok(counts);
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return Ok(BTreeMap::new()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReleaseError::Contended {
        object: format!("ipamblock {block_name}"),
    })
}

/// Lowers a handle's per-block counts by `released`; deletes the handle when nothing is left.
pub(super) async fn lower_handle(
    calico: &CalicoClient,
    handle_id: &str,
    released: &BTreeMap<String, i64>,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<(), ReleaseError> {
    let name = names::handle_name(handle_id);
    for _ in 0..ATTEMPTS {
        let Some(handle) = calico.get::<IpamHandle>(CalicoKind::Handle, &name).await? else {
            return Ok(());
        };
        let mut remaining = handle.spec.block.clone();
        for (cidr, count) in released {
            if let Some(held) = remaining.get_mut(cidr) {
                *held -= count;
            }
        }
        remaining.retain(|_, count| *count > 0);
        let result = if remaining.is_empty() {
            calico
                .delete(
                    CalicoKind::Handle,
                    &name,
                    handle.metadata.resource_version.as_deref(),
                    false,
                )
                .await
                .map(|_| ReleaseStep::HandleDeleted {
                    handle: handle_id.to_owned(),
                })
        } else {
            let block: serde_json::Map<String, serde_json::Value> = handle
                .spec
                .block
                .keys()
                .map(|cidr| {
                    (
                        cidr.clone(),
                        remaining
                            .get(cidr)
                            .map_or(serde_json::Value::Null, |c| json!(c)),
                    )
                })
                .collect();
            let patch = json!({
                "metadata": {"resourceVersion": version(&handle.metadata.resource_version)},
                "spec": {"block": block},
            });
            calico
                .merge_patch::<IpamHandle>(CalicoKind::Handle, &name, &patch, false)
                .await
                .map(|_| ReleaseStep::HandleUpdated {
                    handle: handle_id.to_owned(),
                })
        };
        match result {
            Ok(step) => {
                observer(step).await;
                return Ok(());
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReleaseError::Contended {
        object: format!("ipamhandle {name}"),
    })
}
