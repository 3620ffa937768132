//! How Calico's Kubernetes datastore names and labels its IPAM objects (calico-ipam.md §5), so that
//! everything this project writes or looks up matches what Calico itself writes.

use std::collections::BTreeMap;

use ipnet::IpNet;
use ippool_rules::cidr::Family;
use sha2::Digest as _;

/// Label on a BlockAffinity: base32 of sha3-256 of the node name (a node name may be longer than a
/// label value is allowed to be).
pub const LABEL_HOSTNAME_HASH: &str = "projectcalico.org/hostname-hash";
/// Label on a BlockAffinity: the affinity type (`host` or `virtual`).
pub const LABEL_AFFINITY_TYPE: &str = "projectcalico.org/affinity-type";
/// Label on a BlockAffinity: `4` or `6`.
pub const LABEL_IP_VERSION: &str = "projectcalico.org/ip-version";

/// Pod annotation written by Calico's CNI: the first address with its host prefix (`10.0.0.5/32`).
pub const ANNOTATION_POD_IP: &str = "cni.projectcalico.org/podIP";
/// Pod annotation written by Calico's CNI: every address, comma-joined.
pub const ANNOTATION_POD_IPS: &str = "cni.projectcalico.org/podIPs";
/// Pod annotation written by Calico's CNI: the sandbox's container ID.
pub const ANNOTATION_CONTAINER_ID: &str = "cni.projectcalico.org/containerID";
/// Pod or namespace annotation naming the IPv4 pools to use (JSON list of names or CIDRs).
pub const ANNOTATION_IPV4_POOLS: &str = "cni.projectcalico.org/ipv4pools";
/// Pod or namespace annotation naming the IPv6 pools to use (JSON list of names or CIDRs).
pub const ANNOTATION_IPV6_POOLS: &str = "cni.projectcalico.org/ipv6pools";

/// The CNI network name Calico's manifests use; it prefixes pod handle IDs.
pub const POD_NETWORK_NAME: &str = "k8s-pod-network";

/// Keys of an allocation's `secondary` attributes.
pub const ATTRIBUTE_NODE: &str = "node";
pub const ATTRIBUTE_POD: &str = "pod";
pub const ATTRIBUTE_NAMESPACE: &str = "namespace";
pub const ATTRIBUTE_TYPE: &str = "type";

/// Block affinity types.
pub const AFFINITY_TYPE_HOST: &str = "host";

/// Kubernetes object names may not be 253 characters or longer.
const MAX_NAME_LEN: usize = 253;
/// Hex digits of the sha256 appended to a shortened BlockAffinity name.
const AFFINITY_HASH_DIGITS: usize = 11;

/// An IPAMBlock's name: its CIDR with `.`, `:` and `/` turned into `-` (`10-0-0-0-26`,
/// `fd00--40-122` for `fd00::40/122`).
pub fn block_name(cidr: &IpNet) -> String {
    cidr.trunc().to_string().replace(['.', ':', '/'], "-")
}

/// A BlockAffinity's name: `<node>-<block name>`; when that would be 253 characters or more, the
/// node part is cut to `252 - len(block name) - 13` characters and `-<11 hex digits of
/// sha256("<node>+<block name>")>` appended, as Calico's `ipam_affinity` resource does.
pub fn block_affinity_name(node: &str, block: &IpNet) -> String {
    let block = block_name(block);
    let name = format!("{node}-{block}");
    if name.len() < MAX_NAME_LEN {
        return name;
    }
    let keep = (MAX_NAME_LEN - 1)
        .saturating_sub(block.len())
        .saturating_sub(AFFINITY_HASH_DIGITS + 2);
    let host_part = truncate_at_char_boundary(node, keep);
    let digest = sha2::Sha256::digest(format!("{node}+{block}").as_bytes());
    let hash = data_encoding::HEXLOWER.encode(&digest);
    format!("{host_part}-{block}-{}", &hash[..AFFINITY_HASH_DIGITS])
}

/// Calico slices bytes; node names are DNS names (ASCII), so this only guards against a panic on
/// input that is not.
fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The `projectcalico.org/hostname-hash` label value: base32 (standard alphabet, no padding) of
/// sha3-256 of the node name.
pub fn hostname_hash(node: &str) -> String {
    let digest = sha3::Sha3_256::digest(node.as_bytes());
    data_encoding::BASE32_NOPAD.encode(&digest)
}

/// `4` or `6`, as the `projectcalico.org/ip-version` label has it.
pub fn ip_version(family: Family) -> &'static str {
    match family {
        Family::V4 => "4",
        Family::V6 => "6",
    }
}

/// The labels Calico puts on a BlockAffinity and lists by.
pub fn block_affinity_labels(
    node: &str,
    block: &IpNet,
    affinity_type: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_HOSTNAME_HASH.to_owned(), hostname_hash(node)),
        (LABEL_AFFINITY_TYPE.to_owned(), affinity_type.to_owned()),
        (
            LABEL_IP_VERSION.to_owned(),
            ip_version(Family::of(block)).to_owned(),
        ),
    ])
}

/// An IPAMBlock's `affinity` for a node: `host:<node>`.
pub fn host_affinity(node: &str) -> String {
    format!("{AFFINITY_TYPE_HOST}:{node}")
}

/// The node a block's `affinity` names, when it is a host affinity.
pub fn affinity_host(affinity: &str) -> Option<&str> {
    affinity
        .strip_prefix(AFFINITY_TYPE_HOST)
        .and_then(|rest| rest.strip_prefix(':'))
}

/// An IPAMHandle's name: the handle ID lowercased (handle IDs may carry upper case, object names
/// may not).
pub fn handle_name(handle_id: &str) -> String {
    handle_id.to_lowercase()
}

/// The handle ID Calico's CNI uses for a pod sandbox: `k8s-pod-network.<containerID>`.
pub fn pod_handle_id(container_id: &str) -> String {
    format!("{POD_NETWORK_NAME}.{container_id}")
}

/// The container ID in a pod handle ID, when it is one.
pub fn container_id_of_pod_handle(handle_id: &str) -> Option<&str> {
    handle_id
        .strip_prefix(POD_NETWORK_NAME)
        .and_then(|rest| rest.strip_prefix('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn block_names_replace_separators() {
        assert_eq!(block_name(&net("10.0.0.0/26")), "10-0-0-0-26");
        assert_eq!(block_name(&net("192.168.100.64/26")), "192-168-100-64-26");
        assert_eq!(block_name(&net("fd00::40/122")), "fd00--40-122");
        assert_eq!(
            block_name(&net("fd00:1:2:3:4:5:6:0/122")),
            "fd00-1-2-3-4-5-6-0-122"
        );
    }

    #[test]
    fn short_affinity_names_join_node_and_block() {
        assert_eq!(
            block_affinity_name("sim-0", &net("10.0.0.0/26")),
            "sim-0-10-0-0-0-26"
        );
    }

    #[test]
    fn long_affinity_names_are_cut_and_hashed() {
        // Reference values computed independently with Python:
        //   host = "n" * 250; block = "10-0-0-0-26"
        //   host[:252 - len(block) - 13] + "-" + block + "-"
        //     + hashlib.sha256(f"{host}+{block}".encode()).hexdigest()[:11]
        let host = "n".repeat(250);
        let name = block_affinity_name(&host, &net("10.0.0.0/26"));
        assert_eq!(name.len(), 252);
        assert_eq!(name, format!("{}-10-0-0-0-26-f1d50507857", "n".repeat(228)));
        // The boundary: a 253-character name is cut, 252 stays.
        let host = "a".repeat(241);
        assert_eq!(
            block_affinity_name(&host, &net("10.0.0.0/26")),
            format!("{}-10-0-0-0-26-f2d0b24ba4a", "a".repeat(228))
        );
        let host = "a".repeat(240);
        assert_eq!(
            block_affinity_name(&host, &net("10.0.0.0/26")),
            format!("{host}-10-0-0-0-26")
        );
    }

    #[test]
    fn hostname_hash_is_base32_of_sha3() {
        // python3: base64.b32encode(hashlib.sha3_256(b"sim-0").digest()).decode().rstrip("=")
        assert_eq!(
            hostname_hash("sim-0"),
            "L3E5IOJSUDYJWBPLTFFCGVVDCRHCDZVG7EUKNKVXVLUO6OBCJ7SA"
        );
        // python3: ... sha3_256(b"").digest() ...
        assert_eq!(
            hostname_hash(""),
            "U774N6F7D3LWMUOBI5LKAYOWML2YB72N4Q5UT6UC3AFEXAHYINFA"
        );
        assert_eq!(hostname_hash("sim-0").len(), 52);
    }

    #[test]
    fn affinity_labels() {
        let labels = block_affinity_labels("sim-0", &net("fd00::/122"), AFFINITY_TYPE_HOST);
        assert_eq!(labels[LABEL_AFFINITY_TYPE], "host");
        assert_eq!(labels[LABEL_IP_VERSION], "6");
        assert_eq!(labels[LABEL_HOSTNAME_HASH], hostname_hash("sim-0"));
    }

    #[test]
    fn handles() {
        assert_eq!(
            handle_name("k8s-pod-network.ABCdef"),
            "k8s-pod-network.abcdef"
        );
        assert_eq!(pod_handle_id("abc"), "k8s-pod-network.abc");
        assert_eq!(
            container_id_of_pod_handle("k8s-pod-network.abc"),
            Some("abc")
        );
        assert_eq!(container_id_of_pod_handle("ipip-tunnel-addr-n"), None);
        assert_eq!(host_affinity("sim-1"), "host:sim-1");
        assert_eq!(affinity_host("host:sim-1"), Some("sim-1"));
        assert_eq!(affinity_host("virtual:load-balancer"), None);
    }
}
