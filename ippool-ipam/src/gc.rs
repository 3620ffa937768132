//! What `gc` may remove, decided from a [`Snapshot`]: the leftovers behind Calico issues #10778,
//! #3589 and #4471 — empty blocks no pool covers, empty blocks inside a pool whose prefix differs
//! from the pool's blockSize, and stale affinities (node gone, block missing, stuck in
//! `pendingDeletion`). Anything still holding an address is kept and said so. The removal itself
//! is [`crate::release`]'s job, in Calico's order.

use std::collections::HashSet;

use ipnet::IpNet;
use ippool_rules::cidr;
use ippool_rules::model::{BlockAffinity, IpamBlock};
use serde::Serialize;

use crate::index::PoolIndex;
use crate::ipam_ref::{AffinityRef, BlockRef};
use crate::snapshot::Snapshot;

/// Why something is a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum GcReason {
    /// An empty block inside no pool.
    BlockOutsidePools,
    /// An empty block inside `pool` whose prefix is not the pool's blockSize.
    BlockSizeMismatch { pool: String, block_size: u8 },
    /// An affinity for a node that no longer exists (its block is empty or gone).
    AffinityNodeGone,
    /// An affinity whose block does not exist.
    AffinityBlockMissing,
    /// An affinity left in `pendingDeletion` (its block is empty or gone).
    AffinityPendingDeletion,
}

impl GcReason {
    pub fn describe(&self) -> String {
        match self {
            GcReason::BlockOutsidePools => "empty block in no pool".to_owned(),
            GcReason::BlockSizeMismatch { pool, block_size } => {
                format!("empty block in pool {pool}, whose blockSize is {block_size}")
            }
            GcReason::AffinityNodeGone => "affinity of a node that no longer exists".to_owned(),
            GcReason::AffinityBlockMissing => "affinity of a block that does not exist".to_owned(),
            GcReason::AffinityPendingDeletion => "affinity stuck in pendingDeletion".to_owned(),
        }
    }
}

/// A removal gc proposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "target")]
pub enum GcCandidate {
    /// Remove an empty block, releasing its affinities first.
    Block {
        block: BlockRef,
        affinities: Vec<AffinityRef>,
        #[serde(flatten)]
        reason: GcReason,
    },
    /// Remove an affinity (and its block, when that exists and is empty).
    Affinity {
        affinity: AffinityRef,
        block: Option<BlockRef>,
        #[serde(flatten)]
        reason: GcReason,
    },
}

impl GcCandidate {
    pub fn reason(&self) -> &GcReason {
        match self {
            GcCandidate::Block { reason, .. } | GcCandidate::Affinity { reason, .. } => reason,
        }
    }

    pub fn cidr(&self) -> &str {
        match self {
            GcCandidate::Block { block, .. } => &block.cidr,
            GcCandidate::Affinity { affinity, .. } => &affinity.cidr,
        }
    }
}

/// A leftover gc will not touch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    /// `block 10-0-0-0-26` or `affinity sim-1-10-0-0-0-26`.
    pub object: String,
    pub cidr: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcPlan {
    pub candidates: Vec<GcCandidate>,
    pub kept: Vec<Kept>,
}

fn block_ref(block: &IpamBlock) -> BlockRef {
    BlockRef {
        name: block.metadata.name.clone().unwrap_or_default(),
        cidr: block.spec.cidr.clone(),
        resource_version: block.metadata.resource_version.clone(),
    }
}

fn affinity_ref(affinity: &BlockAffinity) -> AffinityRef {
    AffinityRef {
        name: affinity.metadata.name.clone().unwrap_or_default(),
        node: affinity.spec.node.clone(),
        cidr: affinity.spec.cidr.clone(),
        state: affinity.spec.state.clone(),
        resource_version: affinity.metadata.resource_version.clone(),
    }
}

fn same_cidr(a: &str, b: &IpNet) -> bool {
    cidr::parse_lenient(a).is_ok_and(|n| cidr::canonical(&n) == *b)
}

/// An affinity that no longer does its job: its node or block is gone, or a release of it
/// stopped half-way (`pendingDeletion`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaleAffinity {
    pub affinity: AffinityRef,
    #[serde(flatten)]
    pub reason: GcReason,
    /// The block, when it exists.
    pub block: Option<BlockRef>,
    /// Addresses allocated in the block (0 when it is missing).
    pub block_in_use: usize,
}

/// Every stale affinity, in the snapshot's order.
pub fn stale_affinities(snapshot: &Snapshot) -> Vec<StaleAffinity> {
    let nodes: HashSet<&str> = snapshot.nodes.iter().map(|n| n.name.as_str()).collect();
    snapshot
        .affinities
        .iter()
        .filter_map(|affinity| {
            let net = cidr::parse_lenient(&affinity.spec.cidr)
                .ok()
                .map(|n| cidr::canonical(&n))?;
            let block = snapshot.blocks.iter().find(|b| b.cidr() == Some(net));
            let reason = if block.is_none() {
                GcReason::AffinityBlockMissing
            } else if !nodes.contains(affinity.spec.node.as_str()) {
                GcReason::AffinityNodeGone
            } else if affinity.spec.state == "pendingDeletion" {
                GcReason::AffinityPendingDeletion
            } else {
                return None;
            };
            Some(StaleAffinity {
                affinity: affinity_ref(affinity),
                reason,
                block: block.map(block_ref),
                block_in_use: block.map_or(0, |b| b.allocated_count()),
            })
        })
        .collect()
}

/// The candidates within `within` (all when `None`): blocks and affinities whose CIDR overlaps it.
pub fn gc_plan(snapshot: &Snapshot, within: Option<&IpNet>) -> GcPlan {
    let pools = PoolIndex::new(&snapshot.pools);
    let in_scope = |net: &IpNet| within.is_none_or(|w| cidr::overlaps(w, net));
    let mut plan = GcPlan::default();
    let mut handled_affinities: HashSet<&str> = HashSet::new();

    for block in &snapshot.blocks {
        let Some(net) = block.cidr() else { continue };
        if !in_scope(&net) {
            continue;
        }
        let reason = match pools.pool_of_block(&net) {
            None => GcReason::BlockOutsidePools,
            Some(pool) => match pool.spec.defaulted().block_size {
                Some(size) if size != net.prefix_len() => GcReason::BlockSizeMismatch {
                    pool: pool.name().to_owned(),
                    block_size: size,
                },
                _ => continue,
            },
        };
        let name = block.metadata.name.clone().unwrap_or_default();
        let in_use = block.allocated_count();
        if in_use > 0 {
            plan.kept.push(Kept {
                object: format!("block {name}"),
                cidr: block.spec.cidr.clone(),
                why: format!(
                    "{} but {in_use} address(es) are still allocated",
                    reason.describe().replacen("empty block", "block", 1)
                ),
            });
            continue;
        }
        let affinities: Vec<&BlockAffinity> = snapshot
            .affinities
            .iter()
            .filter(|a| same_cidr(&a.spec.cidr, &net))
            .collect();
        handled_affinities.extend(affinities.iter().filter_map(|a| a.metadata.name.as_deref()));
        plan.candidates.push(GcCandidate::Block {
            block: block_ref(block),
            affinities: affinities.into_iter().map(affinity_ref).collect(),
            reason,
        });
    }

    for stale in stale_affinities(snapshot) {
        if handled_affinities.contains(stale.affinity.name.as_str()) {
            continue;
        }
        if !cidr::parse_lenient(&stale.affinity.cidr).is_ok_and(|n| in_scope(&cidr::canonical(&n)))
        {
            continue;
        }
        if stale.block_in_use > 0 {
            plan.kept.push(Kept {
                object: format!("affinity {}", stale.affinity.name),
                cidr: stale.affinity.cidr.clone(),
                why: format!(
                    "{}, but its block still has {} address(es) allocated",
                    stale.reason.describe(),
                    stale.block_in_use
                ),
            });
            continue;
        }
        plan.candidates.push(GcCandidate::Affinity {
            affinity: stale.affinity,
            block: stale.block,
            reason: stale.reason,
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            pools: vec![pool("default", "10.0.0.0/24", Some(26), false)],
            blocks: vec![
                // In use, right size: never touched.
                block(
                    "10.0.0.0/26",
                    Some("sim-1"),
                    &[(3, "k8s-pod-network.a", &workload("a", "p", "sim-1"))],
                ),
                // Empty, right size, confirmed affinity of a live node: a normal free block.
                block("10.0.0.64/26", Some("sim-2"), &[]),
                // Left by an old /25 blockSize (#3589), empty.
                block("10.0.0.128/25", Some("sim-1"), &[]),
                // Left by a deleted pool, empty.
                block("10.9.0.0/26", Some("sim-3"), &[]),
                // Left by a deleted pool, still holding an address.
                block(
                    "10.9.0.64/26",
                    None,
                    &[(1, "k8s-pod-network.b", &workload("a", "q", "sim-1"))],
                ),
            ],
            affinities: vec![
                affinity("sim-1", "10.0.0.0/26", "confirmed"),
                affinity("sim-2", "10.0.0.64/26", "confirmed"),
                affinity("sim-1", "10.0.0.128/25", "confirmed"),
                affinity("sim-3", "10.9.0.0/26", "confirmed"),
                // Block gone (#10778, #4471).
                affinity("sim-1", "10.0.0.192/26", "pendingDeletion"),
                // Node gone, block in use: kept.
                affinity("gone", "10.0.0.0/26", "confirmed"),
            ],
            nodes: vec![node("sim-1"), node("sim-2")],
            ..Snapshot::default()
        }
    }

    #[test]
    fn only_empty_leftovers_and_stale_affinities_are_candidates() {
        let plan = gc_plan(&snapshot(), None);
        let summary: Vec<(String, GcReason)> = plan
            .candidates
            .iter()
            .map(|c| (c.cidr().to_owned(), c.reason().clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "10.0.0.128/25".to_owned(),
                    GcReason::BlockSizeMismatch {
                        pool: "default".to_owned(),
                        block_size: 26
                    }
                ),
                ("10.9.0.0/26".to_owned(), GcReason::BlockOutsidePools),
                ("10.0.0.192/26".to_owned(), GcReason::AffinityBlockMissing),
            ]
        );
        // The block's own affinity goes with it, in Calico's order.
        let GcCandidate::Block { affinities, .. } = &plan.candidates[1] else {
            panic!("expected a block candidate");
        };
        assert_eq!(affinities.len(), 1);
        assert_eq!(affinities[0].node, "sim-3");
        let kept: Vec<&str> = plan.kept.iter().map(|k| k.object.as_str()).collect();
        assert_eq!(kept, ["block 10-9-0-64-26", "affinity gone-10-0-0-0-26"]);
        assert!(
            plan.kept[0]
                .why
                .contains("1 address(es) are still allocated")
        );
    }

    #[test]
    fn a_cidr_narrows_the_plan() {
        let within: IpNet = "10.9.0.0/16".parse().unwrap();
        let plan = gc_plan(&snapshot(), Some(&within));
        assert_eq!(plan.candidates.len(), 1);
        assert_eq!(plan.candidates[0].cidr(), "10.9.0.0/26");
        assert_eq!(plan.kept.len(), 1);
    }

    #[test]
    fn node_gone_and_pending_deletion_with_empty_blocks() {
        let mut s = snapshot();
        s.blocks.push(block("10.0.0.192/26", Some("sim-1"), &[]));
        s.affinities
            .push(affinity("ghost", "10.0.0.64/26", "confirmed"));
        let plan = gc_plan(&s, None);
        let reasons: Vec<&GcReason> = plan.candidates.iter().map(|c| c.reason()).collect();
        assert!(reasons.contains(&&GcReason::AffinityPendingDeletion));
        assert!(reasons.contains(&&GcReason::AffinityNodeGone));
    }
}
