//! Calico resources as serde types with Calico's JSON names.
//!
//! Spec fields are `Option`s holding exactly what was written; Calico's defaults are applied only
//! by [`IpPoolSpec::defaulted`]. Unknown fields are kept in `extra` maps so a read-modify-write
//! round trip loses nothing.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cidr::{self, Family};

/// The API groups that serve IPPool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiGroup {
    /// `projectcalico.org/v3`, served by the Calico API server or calicoctl (validated by Calico).
    V3,
    /// `crd.projectcalico.org/v1`, the raw CRD (validated only by its structural schema).
    CrdV1,
}

impl ApiGroup {
    pub const V3_API_VERSION: &'static str = "projectcalico.org/v3";
    pub const CRD_V1_API_VERSION: &'static str = "crd.projectcalico.org/v1";

    pub fn from_api_version(api_version: &str) -> Option<ApiGroup> {
        match api_version {
            Self::V3_API_VERSION => Some(ApiGroup::V3),
            Self::CRD_V1_API_VERSION => Some(ApiGroup::CrdV1),
            _ => None,
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            ApiGroup::V3 => Self::V3_API_VERSION,
            ApiGroup::CrdV1 => Self::CRD_V1_API_VERSION,
        }
    }
}

/// The part of Kubernetes `ObjectMeta` the rules read; everything else lands in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An encapsulation mode (`ipipMode`, `vxlanMode`); `Other` keeps an invalid value as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EncapMode {
    Never,
    Always,
    CrossSubnet,
    Other(String),
}

/// A use a pool's addresses may be put to; `Other` keeps an invalid value as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AllowedUse {
    Workload,
    Tunnel,
    LoadBalancer,
    Other(String),
}

/// `assignmentMode`; `Other` keeps an invalid value as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AssignmentMode {
    Automatic,
    Manual,
    Other(String),
}

macro_rules! string_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                match self {
                    $($ty::$variant => $text,)+
                    $ty::Other(s) => s,
                }
            }

            /// Whether the value is one Calico accepts.
            pub fn is_known(&self) -> bool {
                !matches!(self, $ty::Other(_))
            }

            /// The values Calico accepts, for messages.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];
        }

        impl From<String> for $ty {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => $ty::$variant,)+
                    _ => $ty::Other(s),
                }
            }
        }

        impl From<&str> for $ty {
            fn from(s: &str) -> Self {
                match s {
                    $($text => $ty::$variant,)+
                    _ => $ty::Other(s.to_owned()),
                }
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_owned()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(EncapMode { Never => "Never", Always => "Always", CrossSubnet => "CrossSubnet" });
string_enum!(AllowedUse { Workload => "Workload", Tunnel => "Tunnel", LoadBalancer => "LoadBalancer" });
string_enum!(AssignmentMode { Automatic => "Automatic", Manual => "Manual" });

/// The deprecated v1 `ipip` block; Calico requires it to be unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpipConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// IPPool spec exactly as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolSpec {
    /// Kept as text: an invalid or not strictly masked CIDR must still be reportable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Kept wide: a value out of any range must still be reportable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_mode: Option<EncapMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mode: Option<EncapMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(
        default,
        rename = "disableBGPExport",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_bgp_export: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_uses: Option<Vec<AllowedUse>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_mode: Option<AssignmentMode>,
    /// Deprecated v1 field; must be unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip: Option<IpipConfig>,
    /// Deprecated v1 field `nat-outgoing`; must be unset or false.
    #[serde(
        default,
        rename = "nat-outgoing",
        skip_serializing_if = "Option::is_none"
    )]
    pub nat_outgoing_v1: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An IPPool of either API group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPool {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: IpPoolSpec,
}

/// A spec with Calico's defaults applied explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultedSpec {
    /// The written CIDR when it parses (host bits kept; see [`cidr::canonical`]).
    pub cidr: Option<IpNet>,
    /// The written blockSize (0 counts as unset, as in Calico), else the family default; `None`
    /// when neither the value nor the family is known or the value cannot be a prefix length.
    pub block_size: Option<u8>,
    pub ipip_mode: EncapMode,
    pub vxlan_mode: EncapMode,
    pub nat_outgoing: bool,
    pub disabled: bool,
    pub disable_bgp_export: bool,
    pub node_selector: String,
    pub namespace_selector: String,
    pub allowed_uses: Vec<AllowedUse>,
    pub assignment_mode: AssignmentMode,
}

impl DefaultedSpec {
    pub fn family(&self) -> Option<Family> {
        self.cidr.as_ref().map(Family::of)
    }

    /// The encapsulations this pool gives its nodes (for tunnel addresses).
    pub fn encapsulations(&self) -> impl Iterator<Item = Encapsulation> + use<> {
        let ipip = self.ipip_mode != EncapMode::Never;
        let vxlan = self.vxlan_mode != EncapMode::Never;
        [
            ipip.then_some(Encapsulation::Ipip),
            vxlan.then_some(Encapsulation::Vxlan),
        ]
        .into_iter()
        .flatten()
    }
}

/// A tunnel encapsulation that needs a tunnel address on each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encapsulation {
    Ipip,
    Vxlan,
}

impl Encapsulation {
    pub fn field(self) -> &'static str {
        match self {
            Encapsulation::Ipip => "ipipMode",
            Encapsulation::Vxlan => "vxlanMode",
        }
    }
}

impl fmt::Display for Encapsulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encapsulation::Ipip => "IPIP",
            Encapsulation::Vxlan => "VXLAN",
        })
    }
}

impl IpPoolSpec {
    /// The written CIDR parsed leniently (host bits kept), if it parses.
    pub fn cidr_net(&self) -> Option<IpNet> {
        self.cidr
            .as_deref()
            .and_then(|c| cidr::parse_lenient(c).ok())
    }

    /// Calico's defaults applied: blockSize 26/122, modes Never, selectors all(), allowedUses
    /// [Workload, Tunnel], assignmentMode Automatic, booleans false. Empty strings count as unset,
    /// as Go's zero values do in Calico.
    pub fn defaulted(&self) -> DefaultedSpec {
        let cidr = self.cidr_net();
        let family = cidr.as_ref().map(Family::of);
        let written_block = self.block_size.filter(|b| *b != 0);
        let block_size = match written_block {
            Some(b) => u8::try_from(b).ok().filter(|b| *b <= 128),
            None => family.map(cidr::default_block_size),
        };
        let mode = |m: &Option<EncapMode>| match m {
            Some(EncapMode::Other(s)) if s.is_empty() => EncapMode::Never,
            Some(m) => m.clone(),
            None => EncapMode::Never,
        };
        let selector = |s: &Option<String>| match s.as_deref() {
            None | Some("") => "all()".to_owned(),
            Some(s) => s.to_owned(),
        };
        let allowed_uses = match &self.allowed_uses {
            Some(uses) if !uses.is_empty() => uses.clone(),
            _ => vec![AllowedUse::Workload, AllowedUse::Tunnel],
        };
        let assignment_mode = match &self.assignment_mode {
            Some(AssignmentMode::Other(s)) if s.is_empty() => AssignmentMode::Automatic,
            Some(m) => m.clone(),
            None => AssignmentMode::Automatic,
        };
        DefaultedSpec {
            cidr,
            block_size,
            ipip_mode: mode(&self.ipip_mode),
            vxlan_mode: mode(&self.vxlan_mode),
            nat_outgoing: self.nat_outgoing.unwrap_or(false),
            disabled: self.disabled.unwrap_or(false),
            disable_bgp_export: self.disable_bgp_export.unwrap_or(false),
            node_selector: selector(&self.node_selector),
            namespace_selector: selector(&self.namespace_selector),
            allowed_uses,
            assignment_mode,
        }
    }
}

impl IpPool {
    pub fn api_group(&self) -> Option<ApiGroup> {
        ApiGroup::from_api_version(&self.api_version)
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// Whether Calico may allocate from this pool: not disabled and not being deleted.
    pub fn is_enabled(&self) -> bool {
        !self.spec.disabled.unwrap_or(false) && self.metadata.deletion_timestamp.is_none()
    }
}

/// The `attributes` entry an allocation ordinal points to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationAttribute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    /// `namespace`, `node`, `pod`, `timestamp`, `type` (set for tunnel addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<BTreeMap<String, String>>,
    /// Fields of newer Calico releases (3.32's `alternateOwnerAttrs`), written back as read: a
    /// block's attributes are written as a whole array.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// IPAMBlock spec (`crd.projectcalico.org/v1`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamBlockSpec {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    /// One entry per address: an index into `attributes`, or null when free.
    #[serde(default)]
    pub allocations: Vec<Option<i64>>,
    #[serde(default)]
    pub unallocated: Vec<i64>,
    #[serde(default)]
    pub attributes: Vec<AllocationAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number_for_allocation: Option<BTreeMap<String, i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_affinity: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An IPAMBlock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamBlock {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: IpamBlockSpec,
}

impl IpamBlock {
    pub fn cidr(&self) -> Option<IpNet> {
        cidr::parse_lenient(&self.spec.cidr)
            .ok()
            .map(|n| cidr::canonical(&n))
    }

    /// Addresses allocated in this block (pods and tunnel addresses alike).
    pub fn allocated_count(&self) -> usize {
        self.spec.allocations.iter().filter(|a| a.is_some()).count()
    }

    /// Allocated addresses whose attributes mark them as tunnel addresses.
    pub fn tunnel_allocation_count(&self) -> usize {
        self.spec
            .allocations
            .iter()
            .flatten()
            .filter(|idx| {
                usize::try_from(**idx)
                    .ok()
                    .and_then(|i| self.spec.attributes.get(i))
                    .and_then(|a| a.secondary.as_ref())
                    .and_then(|s| s.get("type"))
                    .is_some_and(|t| t.ends_with("TunnelAddress"))
            })
            .count()
    }
}

/// BlockAffinity spec; `deleted` is the string "true"/"false" in v1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockAffinitySpec {
    pub cidr: String,
    pub node: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default)]
    pub deleted: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockAffinity {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: BlockAffinitySpec,
}

/// IPAMHandle spec: `block` maps a block CIDR to the number of addresses this handle holds there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamHandleSpec {
    #[serde(rename = "handleID")]
    pub handle_id: String,
    #[serde(default)]
    pub block: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamHandle {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: IpamHandleSpec,
}

/// IPAMConfig spec (singleton `default`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfigSpec {
    #[serde(default)]
    pub strict_affinity: bool,
    #[serde(default)]
    pub auto_allocate_blocks: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_blocks_per_host: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfig {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: IpamConfigSpec,
}

impl IpamConfig {
    /// `maxBlocksPerHost` as a limit; 0 (no limit, Calico's default) when unset or not positive.
    pub fn max_blocks_per_host(&self) -> u64 {
        self.spec
            .max_blocks_per_host
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pool_round_trips_with_unknown_fields() {
        let v = json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": "p", "labels": {"a": "b"}, "managedFields": [{"x": 1}]},
            "spec": {"cidr": "10.0.0.0/16", "ipipMode": "Always", "nat-outgoing": false,
                     "allowedUses": ["Workload", "Bogus"], "future": 3}
        });
        let pool: IpPool = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(pool.spec.ipip_mode, Some(EncapMode::Always));
        assert_eq!(
            pool.spec.allowed_uses.as_ref().unwrap()[1],
            AllowedUse::Other("Bogus".into())
        );
        assert_eq!(pool.api_group(), Some(ApiGroup::CrdV1));
        assert_eq!(serde_json::to_value(&pool).unwrap(), v);
    }

    #[test]
    fn defaults_are_explicit() {
        let spec = IpPoolSpec {
            cidr: Some("fd00::/48".into()),
            ..Default::default()
        };
        let d = spec.defaulted();
        assert_eq!(d.block_size, Some(122));
        assert_eq!(d.ipip_mode, EncapMode::Never);
        assert_eq!(d.node_selector, "all()");
        assert_eq!(
            d.allowed_uses,
            vec![AllowedUse::Workload, AllowedUse::Tunnel]
        );
        assert_eq!(d.assignment_mode, AssignmentMode::Automatic);
        assert_eq!(d.encapsulations().count(), 0);
        let v4 = IpPoolSpec {
            cidr: Some("10.0.0.0/16".into()),
            block_size: Some(0),
            vxlan_mode: Some(EncapMode::CrossSubnet),
            ..Default::default()
        };
        assert_eq!(v4.defaulted().block_size, Some(26));
        assert_eq!(
            v4.defaulted().encapsulations().collect::<Vec<_>>(),
            vec![Encapsulation::Vxlan]
        );
        assert_eq!(IpPoolSpec::default().defaulted().block_size, None);
    }

    #[test]
    fn block_counts_tunnel_addresses() {
        let block: IpamBlock = serde_json::from_value(json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock",
            "metadata": {"name": "10-0-0-0-30"},
            "spec": {"cidr": "10.0.0.0/30", "affinity": "host:n1",
                     "allocations": [0, null, 1, null], "unallocated": [1, 3],
                     "attributes": [{"handle_id": "ipip-tunnel-addr-n1", "secondary": {"node": "n1", "type": "ipipTunnelAddress"}},
                                    {"handle_id": "k8s-pod-network.abc", "secondary": {"namespace": "default", "pod": "p"}}],
                     "strictAffinity": false}
        }))
        .unwrap();
        assert_eq!(block.allocated_count(), 2);
        assert_eq!(block.tunnel_allocation_count(), 1);
        assert_eq!(block.cidr(), Some("10.0.0.0/30".parse().unwrap()));
    }
}
