//! Calico's block allocation as pure functions over `ippool_rules::model` values: building the
//! IPAM objects Calico writes, assigning and releasing addresses inside an IPAMBlock the way
//! libcalico-go's `allocationBlock` does (take ordinals from the front of `unallocated`, return
//! them to its end, share one attribute entry per handle and owner, drop attributes nobody points
//! at). The plugin releases with these; its tests seed with them states Calico would not reach.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use ippool_rules::cidr;
use ippool_rules::model::{
    AllocationAttribute, BlockAffinity, BlockAffinitySpec, IpamBlock, IpamBlockSpec, IpamHandle,
    IpamHandleSpec, ObjectMeta,
};
use thiserror::Error;

use crate::names;

const CRD_API_VERSION: &str = "crd.projectcalico.org/v1";

/// Blocks bigger than this are refused rather than materialised (an allocation array of 2^k
/// entries); Calico's own limits stop at /20 for IPv4 and /116 for IPv6 (4096 addresses).
const MAX_BLOCK_ADDRESSES: u128 = 1 << 16;

/// A block whose stored form cannot be worked on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockError {
    #[error("IPAMBlock {block}: spec.cidr '{cidr}' is not a CIDR")]
    BadCidr { block: String, cidr: String },
    #[error(
        "IPAMBlock {block}: {addresses} addresses are too many to allocate from; Calico blocks hold at most 4096"
    )]
    TooLarge { block: String, addresses: u128 },
    #[error(
        "IPAMBlock {block}: spec.allocations has {found} entries but a block of {expected} addresses needs {expected}"
    )]
    AllocationsLength {
        block: String,
        found: usize,
        expected: usize,
    },
    #[error(
        "IPAMBlock {block}: allocation {ordinal} points at attribute {index}, but there are {count} attributes"
    )]
    AttributeIndex {
        block: String,
        ordinal: usize,
        index: i64,
        count: usize,
    },
    #[error("IPAMBlock {block}: spec.unallocated holds ordinal {ordinal}, outside the block")]
    UnallocatedOrdinal { block: String, ordinal: i64 },
}

/// The state of a BlockAffinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityState {
    Pending,
    Confirmed,
    PendingDeletion,
}

impl AffinityState {
    pub fn as_str(self) -> &'static str {
        match self {
            AffinityState::Pending => "pending",
            AffinityState::Confirmed => "confirmed",
            AffinityState::PendingDeletion => "pendingDeletion",
        }
    }
}

fn meta(name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels,
        ..ObjectMeta::default()
    }
}

/// A new, empty block: every ordinal free in order, `sequenceNumber` seeded (Calico uses the
/// current time in nanoseconds so that a re-created block never repeats a sequence number).
pub fn new_block(
    cidr: IpNet,
    affinity: Option<String>,
    sequence_number: i64,
) -> Result<IpamBlock, BlockError> {
    let cidr = cidr.trunc();
    let size = block_len(&cidr)?;
    Ok(IpamBlock {
        api_version: CRD_API_VERSION.to_owned(),
        kind: "IPAMBlock".to_owned(),
        metadata: meta(names::block_name(&cidr), BTreeMap::new()),
        spec: IpamBlockSpec {
            cidr: cidr.to_string(),
            affinity,
            allocations: vec![None; size],
            unallocated: (0..size as i64).collect(),
            attributes: Vec::new(),
            sequence_number: Some(sequence_number),
            sequence_number_for_allocation: Some(BTreeMap::new()),
            deleted: Some(false),
            strict_affinity: Some(false),
            extra: BTreeMap::new(),
        },
    })
}

/// A BlockAffinity of `node` for `block`, named and labelled as Calico does.
pub fn new_block_affinity(node: &str, block: &IpNet, state: AffinityState) -> BlockAffinity {
    let block = block.trunc();
    BlockAffinity {
        api_version: CRD_API_VERSION.to_owned(),
        kind: "BlockAffinity".to_owned(),
        metadata: meta(
            names::block_affinity_name(node, &block),
            names::block_affinity_labels(node, &block, names::AFFINITY_TYPE_HOST),
        ),
        spec: BlockAffinitySpec {
            cidr: block.to_string(),
            node: node.to_owned(),
            state: state.as_str().to_owned(),
            r#type: Some(names::AFFINITY_TYPE_HOST.to_owned()),
            deleted: "false".to_owned(),
        },
    }
}

/// An IPAMHandle holding `counts` (block CIDR → number of addresses).
pub fn new_handle(handle_id: &str, counts: BTreeMap<String, i64>) -> IpamHandle {
    IpamHandle {
        api_version: CRD_API_VERSION.to_owned(),
        kind: "IPAMHandle".to_owned(),
        metadata: meta(names::handle_name(handle_id), BTreeMap::new()),
        spec: IpamHandleSpec {
            handle_id: handle_id.to_owned(),
            block: counts,
            deleted: Some(false),
        },
    }
}

fn block_label(block: &IpamBlock) -> String {
    block
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| block.spec.cidr.clone())
}

fn block_len(cidr: &IpNet) -> Result<usize, BlockError> {
    let addresses = cidr::address_count(cidr);
    if addresses > MAX_BLOCK_ADDRESSES {
        return Err(BlockError::TooLarge {
            block: names::block_name(cidr),
            addresses,
        });
    }
    Ok(addresses as usize)
}

/// The block's CIDR after checking that its arrays fit it.
pub fn checked_cidr(block: &IpamBlock) -> Result<IpNet, BlockError> {
    let cidr = block.cidr().ok_or_else(|| BlockError::BadCidr {
        block: block_label(block),
        cidr: block.spec.cidr.clone(),
    })?;
    let expected = block_len(&cidr)?;
    let spec = &block.spec;
    if spec.allocations.len() != expected {
        return Err(BlockError::AllocationsLength {
            block: block_label(block),
            found: spec.allocations.len(),
            expected,
        });
    }
    for (ordinal, index) in spec.allocations.iter().enumerate() {
        if let Some(index) = *index
            && usize::try_from(index).map_or(true, |i| i >= spec.attributes.len())
        {
            return Err(BlockError::AttributeIndex {
                block: block_label(block),
                ordinal,
                index,
                count: spec.attributes.len(),
            });
        }
    }
    if let Some(&ordinal) = spec
        .unallocated
        .iter()
        .find(|&&o| usize::try_from(o).map_or(true, |o| o >= expected))
    {
        return Err(BlockError::UnallocatedOrdinal {
            block: block_label(block),
            ordinal,
        });
    }
    Ok(cidr)
}

/// One allocated address of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation<'a> {
    pub address: IpAddr,
    pub ordinal: usize,
    pub attribute: &'a AllocationAttribute,
}

impl Allocation<'_> {
    pub fn handle_id(&self) -> Option<&str> {
        self.attribute.handle_id.as_deref()
    }

    /// A `secondary` attribute (`node`, `pod`, `namespace`, `type`, `timestamp`).
    pub fn secondary(&self, key: &str) -> Option<&str> {
        self.attribute
            .secondary
            .as_ref()
            .and_then(|s| s.get(key))
            .map(String::as_str)
    }
}

/// Every allocated address of the block, in ordinal order.
pub fn allocations(block: &IpamBlock) -> Result<Vec<Allocation<'_>>, BlockError> {
    let cidr = checked_cidr(block)?;
    Ok(block
        .spec
        .allocations
        .iter()
        .enumerate()
        .filter_map(|(ordinal, index)| {
            let attribute = &block.spec.attributes[(*index)? as usize];
            Some(Allocation {
                address: cidr::nth_address(&cidr, ordinal as u128)?,
                ordinal,
                attribute,
            })
        })
        .collect())
}

/// Assigns up to `count` free addresses to `handle_id` with the owner's `secondary` attributes,
/// taking ordinals from the front of `unallocated` and recording the sequence number of each
/// allocation; bumps `sequenceNumber` as every block write does. Returns the addresses taken
/// (fewer than `count` when the block runs out).
pub fn assign(
    block: &mut IpamBlock,
    count: usize,
    handle_id: &str,
    secondary: &BTreeMap<String, String>,
) -> Result<Vec<IpAddr>, BlockError> {
    let cidr = checked_cidr(block)?;
    let take = count.min(block.spec.unallocated.len());
    if take == 0 {
        return Ok(Vec::new());
    }
    let attribute = AllocationAttribute {
        handle_id: Some(handle_id.to_owned()),
        secondary: Some(secondary.clone()),
        ..AllocationAttribute::default()
    };
    let spec = &mut block.spec;
    let index = match spec.attributes.iter().position(|a| *a == attribute) {
        Some(i) => i,
        None => {
            spec.attributes.push(attribute);
            spec.attributes.len() - 1
        }
    };
    let sequence = spec.sequence_number.unwrap_or(0);
    let taken: Vec<i64> = spec.unallocated.drain(..take).collect();
    let per_ordinal = spec.sequence_number_for_allocation.get_or_insert_default();
    let mut addresses = Vec::with_capacity(take);
    for ordinal in taken {
        spec.allocations[ordinal as usize] = Some(index as i64);
        per_ordinal.insert(ordinal.to_string(), sequence);
        addresses.extend(cidr::nth_address(&cidr, ordinal as u128));
    }
    spec.sequence_number = Some(sequence + 1);
    Ok(addresses)
}

/// Releases every address the block holds for `handle_id`: ordinals go back to the end of
/// `unallocated`, attributes no allocation points at any more are removed (indexes of the others
/// renumbered); bumps `sequenceNumber` when anything was released. Returns the addresses freed.
pub fn release_handle(block: &mut IpamBlock, handle_id: &str) -> Result<Vec<IpAddr>, BlockError> {
    let cidr = checked_cidr(block)?;
    let spec = &mut block.spec;
    let mut freed = Vec::new();
    for (ordinal, slot) in spec.allocations.iter_mut().enumerate() {
        let Some(index) = *slot else { continue };
        if spec.attributes[index as usize].handle_id.as_deref() != Some(handle_id) {
            continue;
        }
        *slot = None;
        spec.unallocated.push(ordinal as i64);
        if let Some(per_ordinal) = spec.sequence_number_for_allocation.as_mut() {
            per_ordinal.remove(&ordinal.to_string());
        }
        freed.extend(cidr::nth_address(&cidr, ordinal as u128));
    }
    if freed.is_empty() {
        return Ok(freed);
    }
    drop_unreferenced_attributes(spec);
    spec.sequence_number = Some(spec.sequence_number.unwrap_or(0) + 1);
    Ok(freed)
}

fn drop_unreferenced_attributes(spec: &mut IpamBlockSpec) {
    let mut used = vec![false; spec.attributes.len()];
    for index in spec.allocations.iter().flatten() {
        used[*index as usize] = true;
    }
    let mut renumber = vec![None; spec.attributes.len()];
    let mut next = 0i64;
    for (old, keep) in used.iter().enumerate() {
        if *keep {
            renumber[old] = Some(next);
            next += 1;
        }
    }
    let mut old = 0;
    spec.attributes.retain(|_| {
        let keep = used[old];
        old += 1;
        keep
    });
    for slot in spec.allocations.iter_mut() {
        if let Some(index) = *slot {
            *slot = renumber[index as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn owner(pod: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("node".to_owned(), "n1".to_owned()),
            ("pod".to_owned(), pod.to_owned()),
        ])
    }

    #[test]
    fn new_block_is_named_and_all_free() {
        let b = new_block(net("10.0.0.0/30"), Some("host:n1".into()), 5).unwrap();
        assert_eq!(b.metadata.name.as_deref(), Some("10-0-0-0-30"));
        assert_eq!(b.spec.cidr, "10.0.0.0/30");
        assert_eq!(b.spec.allocations, vec![None; 4]);
        assert_eq!(b.spec.unallocated, vec![0, 1, 2, 3]);
        assert_eq!(b.spec.strict_affinity, Some(false));
        assert_eq!(b.spec.affinity.as_deref(), Some("host:n1"));
        assert!(allocations(&b).unwrap().is_empty());
        assert!(matches!(
            new_block(net("10.0.0.0/8"), None, 0),
            Err(BlockError::TooLarge { .. })
        ));
    }

    #[test]
    fn assign_takes_from_the_front_and_shares_attributes() {
        let mut b = new_block(net("10.0.0.0/30"), None, 100).unwrap();
        assert_eq!(
            assign(&mut b, 1, "h1", &owner("a")).unwrap(),
            vec![addr("10.0.0.0")]
        );
        assert_eq!(
            assign(&mut b, 2, "h2", &owner("b")).unwrap(),
            vec![addr("10.0.0.1"), addr("10.0.0.2")]
        );
        assert_eq!(b.spec.allocations, vec![Some(0), Some(1), Some(1), None]);
        assert_eq!(b.spec.attributes.len(), 2);
        assert_eq!(b.spec.unallocated, vec![3]);
        assert_eq!(b.spec.sequence_number, Some(102));
        let per = b.spec.sequence_number_for_allocation.as_ref().unwrap();
        assert_eq!(per["0"], 100);
        assert_eq!(per["2"], 101);
        // Only one left.
        assert_eq!(assign(&mut b, 5, "h3", &owner("c")).unwrap().len(), 1);
        assert!(assign(&mut b, 1, "h4", &owner("d")).unwrap().is_empty());
        assert!(b.spec.unallocated.is_empty());
    }

    #[test]
    fn a_release_keeps_the_fields_of_newer_calico_releases() {
        // Calico 3.32 adds `alternateOwnerAttrs` to an allocation's attributes; a release writes
        // the block's whole attributes array, so the other allocations' fields must survive it.
        let mut b: IpamBlock = serde_json::from_value(serde_json::json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock",
            "metadata": {"name": "10-0-0-0-30"},
            "spec": {"cidr": "10.0.0.0/30", "allocations": [0, 1, null, null], "unallocated": [2, 3],
                     "attributes": [
                         {"handle_id": "h1", "secondary": {"pod": "a"}},
                         {"handle_id": "h2", "secondary": {"pod": "b"},
                          "alternateOwnerAttrs": {"pod": "b-next"}}]}
        }))
        .unwrap();
        release_handle(&mut b, "h1").unwrap();
        let written = serde_json::to_value(&b).unwrap();
        assert_eq!(
            written["spec"]["attributes"],
            serde_json::json!([{"handle_id": "h2", "secondary": {"pod": "b"},
                                "alternateOwnerAttrs": {"pod": "b-next"}}])
        );
    }

    #[test]
    fn release_returns_ordinals_to_the_end_and_compacts_attributes() {
        let mut b = new_block(net("10.0.0.0/30"), None, 0).unwrap();
        assign(&mut b, 1, "h1", &owner("a")).unwrap();
        assign(&mut b, 1, "h2", &owner("b")).unwrap();
        assign(&mut b, 1, "h3", &owner("c")).unwrap();
        assert_eq!(
            release_handle(&mut b, "h2").unwrap(),
            vec![addr("10.0.0.1")]
        );
        assert_eq!(b.spec.unallocated, vec![3, 1]);
        assert_eq!(b.spec.allocations, vec![Some(0), None, Some(1), None]);
        assert_eq!(
            b.spec.attributes[1].handle_id.as_deref(),
            Some("h3"),
            "h3 renumbered into h2's place"
        );
        assert!(
            !b.spec
                .sequence_number_for_allocation
                .as_ref()
                .unwrap()
                .contains_key("1")
        );
        let h3: Vec<IpAddr> = allocations(&b)
            .unwrap()
            .iter()
            .filter(|a| a.handle_id() == Some("h3"))
            .map(|a| a.address)
            .collect();
        assert_eq!(h3, vec![addr("10.0.0.2")]);
        // Releasing an unknown handle changes nothing.
        let before = b.clone();
        assert!(release_handle(&mut b, "nope").unwrap().is_empty());
        assert_eq!(b, before);
        // The next assignment takes ordinal 3 (front of unallocated), not the freed 1.
        assert_eq!(
            assign(&mut b, 1, "h4", &owner("d")).unwrap(),
            vec![addr("10.0.0.3")]
        );
        release_handle(&mut b, "h1").unwrap();
        release_handle(&mut b, "h3").unwrap();
        release_handle(&mut b, "h4").unwrap();
        assert!(allocations(&b).unwrap().is_empty());
        assert!(b.spec.attributes.is_empty());
    }

    #[test]
    fn allocations_list_owners() {
        let mut b = new_block(net("fd00::/126"), None, 0).unwrap();
        assign(&mut b, 1, "h1", &owner("a")).unwrap();
        let all = allocations(&b).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].address, addr("fd00::"));
        assert_eq!(all[0].handle_id(), Some("h1"));
        assert_eq!(all[0].secondary("pod"), Some("a"));
    }

    #[test]
    fn malformed_blocks_are_refused_with_the_reason() {
        let mut b = new_block(net("10.0.0.0/30"), None, 0).unwrap();
        b.spec.allocations.pop();
        assert!(matches!(
            assign(&mut b, 1, "h", &owner("a")),
            Err(BlockError::AllocationsLength {
                found: 3,
                expected: 4,
                ..
            })
        ));
        let mut b = new_block(net("10.0.0.0/30"), None, 0).unwrap();
        b.spec.allocations[2] = Some(7);
        let err = allocations(&b).unwrap_err();
        assert!(
            err.to_string()
                .contains("allocation 2 points at attribute 7"),
            "{err}"
        );
        let mut b = new_block(net("10.0.0.0/30"), None, 0).unwrap();
        b.spec.unallocated.push(9);
        assert!(matches!(
            checked_cidr(&b),
            Err(BlockError::UnallocatedOrdinal { ordinal: 9, .. })
        ));
        b.spec.cidr = "nonsense".into();
        assert!(matches!(checked_cidr(&b), Err(BlockError::BadCidr { .. })));
    }

    #[test]
    fn affinity_and_handle_objects_follow_calico_naming() {
        let a = new_block_affinity("sim-0", &net("10.0.0.64/26"), AffinityState::Pending);
        assert_eq!(a.metadata.name.as_deref(), Some("sim-0-10-0-0-64-26"));
        assert_eq!(a.spec.state, "pending");
        assert_eq!(a.spec.deleted, "false");
        assert_eq!(a.spec.r#type.as_deref(), Some("host"));
        assert_eq!(a.metadata.labels[names::LABEL_IP_VERSION], "4");
        let h = new_handle(
            "k8s-pod-network.ABC",
            BTreeMap::from([("10.0.0.64/26".to_owned(), 1)]),
        );
        assert_eq!(h.metadata.name.as_deref(), Some("k8s-pod-network.abc"));
        assert_eq!(h.spec.handle_id, "k8s-pod-network.ABC");
    }
}
