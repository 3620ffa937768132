//! Small builders of pools, blocks, affinities, handles, pods and nodes for the analysis tests
//! (and, behind the `fixtures` feature, the cluster crate's unit tests).

use ippool_rules::model::{
    AllocationAttribute, BlockAffinity, BlockAffinitySpec, IpPool, IpPoolSpec, IpamBlock,
    IpamBlockSpec, IpamHandle, IpamHandleSpec, ObjectMeta,
};
use std::collections::BTreeMap;

use crate::snapshot::{NodeRecord, Owner, PodInfo};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        resource_version: Some("1".to_owned()),
        ..ObjectMeta::default()
    }
}

pub fn pool(name: &str, cidr: &str, block_size: Option<i64>, disabled: bool) -> IpPool {
    IpPool {
        api_version: "crd.projectcalico.org/v1".to_owned(),
        kind: "IPPool".to_owned(),
        metadata: meta(name),
        spec: IpPoolSpec {
            cidr: Some(cidr.to_owned()),
            block_size,
            disabled: Some(disabled),
            ..IpPoolSpec::default()
        },
    }
}

pub fn block_name(cidr: &str) -> String {
    cidr.replace(['.', ':', '/'], "-")
}

/// An allocation to seed: ordinal, handle, secondary attributes.
pub type Used<'a> = (usize, &'a str, &'a [(&'a str, &'a str)]);

/// A block with the given allocations.
pub fn block(cidr: &str, node: Option<&str>, used: &[Used<'_>]) -> IpamBlock {
    let net: ipnet::IpNet = cidr.parse().unwrap();
    let size = 1usize << (net.max_prefix_len() - net.prefix_len());
    let mut allocations = vec![None; size];
    let mut attributes = Vec::new();
    for (ordinal, handle, secondary) in used {
        allocations[*ordinal] = Some(attributes.len() as i64);
        attributes.push(AllocationAttribute {
            handle_id: Some((*handle).to_owned()),
            secondary: Some(
                secondary
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..AllocationAttribute::default()
        });
    }
    let unallocated = (0..size as i64)
        .filter(|o| allocations[*o as usize].is_none())
        .collect();
    IpamBlock {
        api_version: "crd.projectcalico.org/v1".to_owned(),
        kind: "IPAMBlock".to_owned(),
        metadata: meta(&block_name(cidr)),
        spec: IpamBlockSpec {
            cidr: cidr.to_owned(),
            affinity: node.map(|n| format!("host:{n}")),
            allocations,
            unallocated,
            attributes,
            strict_affinity: Some(false),
            ..IpamBlockSpec::default()
        },
    }
}

pub fn affinity(node: &str, cidr: &str, state: &str) -> BlockAffinity {
    BlockAffinity {
        api_version: "crd.projectcalico.org/v1".to_owned(),
        kind: "BlockAffinity".to_owned(),
        metadata: meta(&format!("{node}-{}", block_name(cidr))),
        spec: BlockAffinitySpec {
            cidr: cidr.to_owned(),
            node: node.to_owned(),
            state: state.to_owned(),
            r#type: Some("host".to_owned()),
            deleted: "false".to_owned(),
        },
    }
}

pub fn handle(id: &str, blocks: &[(&str, i64)]) -> IpamHandle {
    IpamHandle {
        api_version: "crd.projectcalico.org/v1".to_owned(),
        kind: "IPAMHandle".to_owned(),
        metadata: meta(&id.to_lowercase()),
        spec: IpamHandleSpec {
            handle_id: id.to_owned(),
            block: blocks
                .iter()
                .map(|(b, n)| ((*b).to_owned(), *n))
                .collect::<BTreeMap<_, _>>(),
            deleted: None,
        },
    }
}

pub fn pod(namespace: &str, name: &str, node: &str, address: &str, container: &str) -> PodInfo {
    PodInfo {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: format!("uid-{name}"),
        node: Some(node.to_owned()),
        addresses: vec![address.parse().unwrap()],
        host_network: false,
        phase: "Running".to_owned(),
        ready: true,
        creation_timestamp: None,
        terminating: false,
        owner: Owner::bare(),
        labels: BTreeMap::new(),
        container_id: Some(container.to_owned()),
        ipv4_pools: None,
        ipv6_pools: None,
        ip_addrs: None,
    }
}

pub fn node(name: &str) -> NodeRecord {
    NodeRecord {
        name: name.to_owned(),
        labels: BTreeMap::new(),
        tunnel_addresses: Vec::new(),
        pod_cidrs: Vec::new(),
        max_pods: None,
    }
}

/// Attributes Calico's CNI writes for a pod.
pub fn workload<'a>(namespace: &'a str, pod: &'a str, node: &'a str) -> [(&'a str, &'a str); 3] {
    [("namespace", namespace), ("pod", pod), ("node", node)]
}
