//! Shared steps of the tests of Calico's behaviour: a control plane with a calico-sim (whose pods
//! get their addresses from Calico's own CNI plugin and IPAM), and the check that the IPAM objects
//! Calico wrote are what this crate's naming and block model say they are.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

pub use harness::Expected;
pub use harness::workloads::*;
use ipnet::IpNet;
use ippool_cluster::api::{CalicoKind, ServedApis, Serving};
use ippool_cluster::client::CalicoClient;
use ippool_ipam::allocation;
use ippool_ipam::names;
use ippool_rules::cidr::Family;
use ippool_rules::model::{BlockAffinity, Encapsulation, IpamBlock, IpamHandle};
use k8s_openapi::api::core::v1::Pod;
use kube::{Client, ResourceExt as _};

/// Calico's objects as the test control plane serves them: plain `crd.projectcalico.org/v1` CRDs.
pub fn crds(client: &Client) -> CalicoClient {
    CalicoClient::new(client.clone(), ServedApis::new(Serving::Crds, None))
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The node a block is affine to, by the affinity as this crate reads it (`host:<node>`).
pub fn affine_node(block: &IpamBlock) -> Option<&str> {
    block
        .spec
        .affinity
        .as_deref()
        .and_then(names::affinity_host)
}

/// Calico's tunnel-address names for an encapsulation: the IPAM handle of a node's address, the
/// allocation's `type` attribute, and the Node annotation Calico's datastore keeps it in. The
/// plugin recognises tunnel allocations by `type` (ending in `TunnelAddress`) and `node`.
pub fn tunnel_names(
    encapsulation: Encapsulation,
    node: &str,
) -> (String, &'static str, &'static str) {
    match encapsulation {
        Encapsulation::Ipip => (
            format!("ipip-tunnel-addr-{node}"),
            "ipipTunnelAddress",
            IPIP_TUNNEL_ANNOTATION,
        ),
        Encapsulation::Vxlan => (
            format!("vxlan-tunnel-addr-{node}"),
            "vxlanTunnelAddress",
            VXLAN_TUNNEL_ANNOTATION,
        ),
    }
}

/// Every IPAM object of the cluster.
#[derive(Debug)]
pub struct Ipam {
    pub blocks: Vec<IpamBlock>,
    pub affinities: Vec<BlockAffinity>,
    pub handles: Vec<IpamHandle>,
}

impl Ipam {
    pub async fn read(client: &Client) -> Ipam {
        let calico = crds(client);
        Ipam {
            blocks: calico.list(CalicoKind::Block).await.unwrap(),
            affinities: calico.list(CalicoKind::Affinity).await.unwrap(),
            handles: calico.list(CalicoKind::Handle).await.unwrap(),
        }
    }

    /// Address → (handle ID, secondary attributes) of every allocation.
    pub fn allocations(&self) -> BTreeMap<IpAddr, (String, BTreeMap<String, String>)> {
        let mut out = BTreeMap::new();
        for block in &self.blocks {
            for a in allocation::allocations(block).expect("well-formed block") {
                let previous = out.insert(
                    a.address,
                    (
                        a.handle_id().unwrap_or_default().to_owned(),
                        a.attribute.secondary.clone().unwrap_or_default(),
                    ),
                );
                assert!(previous.is_none(), "{} allocated in two blocks", a.address);
            }
        }
        out
    }

    /// Addresses held by a handle.
    pub fn handle_addresses(&self, handle_id: &str) -> Vec<IpAddr> {
        self.allocations()
            .into_iter()
            .filter(|(_, (h, _))| h == handle_id)
            .map(|(a, _)| a)
            .collect()
    }
}

/// Checks that the IPAM objects are exactly what Calico's datastore holds for these running pods:
/// one allocation per pod address under handle `k8s-pod-network.<containerID>` with the pod's
/// attributes, annotations agreeing with the status, distinct addresses, handles counting their
/// blocks, blocks and affinities named and labelled as Calico names them. Returns the IPAM
/// objects for further checks.
pub async fn assert_calico_consistent(client: &Client, pods: &[Pod]) -> Ipam {
    let ipam = Ipam::read(client).await;
    let allocations = ipam.allocations();
    let mut seen: HashMap<IpAddr, String> = HashMap::new();
    for pod in pods {
        let name = pod.name_any();
        let ips = pod_ips(pod);
        assert!(!ips.is_empty(), "pod {name} has no address");
        for ip in &ips {
            if let Some(other) = seen.insert(*ip, name.clone()) {
                panic!("{ip} is held by both {other} and {name}");
            }
        }
        let annotations = pod.annotations();
        let container_id = &annotations[names::ANNOTATION_CONTAINER_ID];
        let with_prefix: Vec<String> = ips
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(a) => format!("{a}/32"),
                IpAddr::V6(a) => format!("{a}/128"),
            })
            .collect();
        assert_eq!(
            annotations[names::ANNOTATION_POD_IP],
            with_prefix[0],
            "pod {name}"
        );
        assert_eq!(
            annotations[names::ANNOTATION_POD_IPS],
            with_prefix.join(","),
            "pod {name}"
        );
        let handle_id = names::pod_handle_id(container_id);
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for ip in &ips {
            let (handle, owner) = allocations
                .get(ip)
                .unwrap_or_else(|| panic!("pod {name}'s {ip} has no allocation"));
            assert_eq!(*handle, handle_id, "owner of {ip}");
            assert_eq!(owner[names::ATTRIBUTE_POD], name);
            assert_eq!(owner[names::ATTRIBUTE_NAMESPACE], pod.namespace().unwrap());
            assert_eq!(owner[names::ATTRIBUTE_NODE], node_of(pod));
            let block = ipam
                .blocks
                .iter()
                .find(|b| b.cidr().is_some_and(|c| c.contains(ip)))
                .unwrap();
            *counts.entry(block.spec.cidr.clone()).or_default() += 1;
        }
        assert_eq!(
            ipam.handle_addresses(&handle_id).len(),
            ips.len(),
            "pod {name}: every allocation of its handle is one of its addresses"
        );
        let handle = ipam
            .handles
            .iter()
            .find(|h| h.metadata.name.as_deref() == Some(names::handle_name(&handle_id).as_str()))
            .unwrap_or_else(|| panic!("pod {name} has no IPAMHandle {handle_id}"));
        assert_eq!(handle.spec.handle_id, handle_id);
        assert_eq!(handle.spec.block, counts, "IPAMHandle of {name}");
    }
    for block in &ipam.blocks {
        let cidr = block.cidr().unwrap();
        assert_eq!(
            block.metadata.name.as_deref(),
            Some(names::block_name(&cidr).as_str())
        );
        assert_eq!(
            block.spec.allocations.len(),
            ippool_rules::cidr::address_count(&cidr) as usize
        );
        let free = block
            .spec
            .allocations
            .iter()
            .filter(|a| a.is_none())
            .count();
        assert_eq!(
            block.spec.unallocated.len(),
            free,
            "block {cidr} unallocated list"
        );
        if let Some(node) = affine_node(block) {
            let name = names::block_affinity_name(node, &cidr);
            let affinity = ipam
                .affinities
                .iter()
                .find(|a| a.metadata.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| {
                    panic!("block {cidr} affine to {node} has no BlockAffinity {name}")
                });
            assert_eq!(affinity.spec.state, "confirmed");
            assert_eq!(affinity.spec.node, node);
            assert_eq!(affinity.spec.cidr, cidr.to_string());
            assert_eq!(affinity.spec.deleted, "false");
            assert_eq!(
                affinity.metadata.labels[names::LABEL_HOSTNAME_HASH],
                names::hostname_hash(node)
            );
            assert_eq!(affinity.metadata.labels[names::LABEL_AFFINITY_TYPE], "host");
            assert_eq!(
                affinity.metadata.labels[names::LABEL_IP_VERSION],
                names::ip_version(Family::of(&cidr))
            );
        }
    }
    for handle in &ipam.handles {
        assert_eq!(
            handle.metadata.name.as_deref(),
            Some(names::handle_name(&handle.spec.handle_id).as_str())
        );
        let held = ipam.handle_addresses(&handle.spec.handle_id).len() as i64;
        assert_eq!(
            held,
            handle.spec.block.values().sum::<i64>(),
            "IPAMHandle {}",
            handle.spec.handle_id
        );
    }
    ipam
}

/// Pod handles (`k8s-pod-network.*`) in the blocks.
pub fn pod_handles(ipam: &Ipam) -> BTreeSet<String> {
    ipam.allocations()
        .into_values()
        .map(|(h, _)| h)
        .filter(|h| names::container_id_of_pod_handle(h).is_some())
        .collect()
}
