//! Every diagnostic code, its severity and why it exists. Codes are stable and never renumbered;
//! ippool-rules/RULES.md documents each one.

use crate::report::Severity;

/// A rule's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    pub code: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    /// Calico's own reason text, where Calico has the rule.
    pub calico_reason: Option<&'static str>,
}

const fn rule(
    code: &'static str,
    severity: Severity,
    summary: &'static str,
    calico_reason: Option<&'static str>,
) -> RuleInfo {
    RuleInfo {
        code,
        severity,
        summary,
        calico_reason,
    }
}

use Severity::{Error, Info, Warning};

static CATALOG: &[RuleInfo] = &[
    rule(
        "IPP001",
        Error,
        "the input is not valid YAML or JSON, or uses a construct a Kubernetes object cannot have",
        None,
    ),
    rule(
        "IPP002",
        Error,
        "the input exceeds a size, nesting or alias-expansion limit",
        None,
    ),
    rule(
        "IPP003",
        Error,
        "apiVersion/kind missing, or an IPPool with an apiVersion other than projectcalico.org/v3 or crd.projectcalico.org/v1",
        None,
    ),
    rule(
        "IPP004",
        Info,
        "the document is not an IPPool and was skipped",
        None,
    ),
    rule(
        "IPP005",
        Info,
        "a rule was skipped because the context it needs was not given",
        None,
    ),
    rule("IPP006", Warning, "the source contains no documents", None),
    rule("IPP007", Error, "a mapping key is written twice", None),
    rule("IPP010", Error, "a field has the wrong type", None),
    rule(
        "IPP011",
        Warning,
        "a field is unknown (or null) and is dropped by the API server",
        None,
    ),
    rule(
        "IPP012",
        Error,
        "spec.cidr is missing",
        Some("IPPool CIDR must be specified"),
    ),
    rule(
        "IPP013",
        Error,
        "assignmentMode is not Automatic or Manual",
        None,
    ),
    rule("IPP014", Error, "metadata.name is missing", None),
    rule(
        "IPP020",
        Error,
        "spec.cidr is not a valid subnet",
        Some("IPPool CIDR must be a valid subnet"),
    ),
    rule(
        "IPP021",
        Error,
        "spec.cidr has host bits set",
        Some("IPPool CIDR is not strictly masked"),
    ),
    rule(
        "IPP022",
        Error,
        "blockSize is outside 20-32 (IPv4) or 116-128 (IPv6)",
        Some("IPv4 block size must be between 20 and 32"),
    ),
    rule(
        "IPP023",
        Error,
        "an enabled pool is smaller than one block",
        Some(
            "IP pool size is too small for use with Calico IPAM. It must be equal to or greater than the block size.",
        ),
    ),
    rule(
        "IPP024",
        Error,
        "both ipipMode and vxlanMode are enabled",
        Some("Cannot enable both VXLAN and IPIP on the same IPPool"),
    ),
    rule(
        "IPP025",
        Error,
        "ipipMode is enabled on an IPv6 pool",
        Some("IPIP is not supported on an IPv6 IP pool"),
    ),
    rule(
        "IPP026",
        Error,
        "the pool overlaps the link-local range",
        Some("IPPool CIDR overlaps with IPv4 Link Local range 169.254.0.0/16"),
    ),
    rule(
        "IPP027",
        Error,
        "ipipMode or vxlanMode is not Never, Always or CrossSubnet",
        None,
    ),
    rule(
        "IPP028",
        Error,
        "allowedUses has a value other than Workload, Tunnel or LoadBalancer",
        Some("unknown use"),
    ),
    rule(
        "IPP029",
        Error,
        "a deprecated v1 field (ipip, nat-outgoing) is set",
        None,
    ),
    rule(
        "IPP030",
        Error,
        "nodeSelector or namespaceSelector is not a valid Calico selector",
        None,
    ),
    rule(
        "IPP031",
        Error,
        "global( appears in an IPPool selector",
        Some("global() selector is not valid for IPPool nodeSelector - use all() instead"),
    ),
    rule(
        "IPP032",
        Error,
        "a LoadBalancer pool enables IPIP or VXLAN",
        Some("Neither IPIPMode nor VXLANMode can be enabled on AllowedUses LoadBalancer IP pool"),
    ),
    rule(
        "IPP033",
        Error,
        "LoadBalancer is combined with other allowed uses",
        Some("LoadBalancer cannot be used at the same time as: Workload"),
    ),
    rule(
        "IPP034",
        Error,
        "a LoadBalancer pool's nodeSelector is not all()",
        Some("IP Pool with AllowedUse LoadBalancer must have node selector set to all()"),
    ),
    rule(
        "IPP035",
        Error,
        "a LoadBalancer pool sets disableBGPExport",
        None,
    ),
    rule(
        "IPP036",
        Error,
        "a Tunnel pool has a namespaceSelector",
        None,
    ),
    rule(
        "IPP040",
        Error,
        "metadata.name is not a DNS-1123 subdomain of at most 253 characters",
        None,
    ),
    rule(
        "IPP041",
        Error,
        "a label key is not a valid qualified name",
        None,
    ),
    rule("IPP042", Error, "a label value is not valid", None),
    rule(
        "IPP043",
        Error,
        "an annotation key is not a valid qualified name",
        None,
    ),
    rule("IPP044", Error, "annotations exceed 256 KiB in total", None),
    rule(
        "IPP050",
        Error,
        "a Workload pool lies outside the cluster's pod CIDR(s) (authoritative source)",
        None,
    ),
    rule(
        "IPP051",
        Warning,
        "a Workload pool lies outside the cluster's pod CIDR(s) (inferred source)",
        None,
    ),
    rule("IPP052", Error, "the pool overlaps the service CIDR", None),
    rule(
        "IPP053",
        Error,
        "the pool overlaps a loopback, multicast, unspecified or IPv4-mapped range",
        None,
    ),
    rule(
        "IPP054",
        Warning,
        "the change leaves some nodes without any enabled pool of an encapsulation: their tunnel addresses will be removed",
        None,
    ),
    rule(
        "IPP055",
        Warning,
        "the pool is managed by the tigera operator, which reverts direct edits",
        None,
    ),
    rule(
        "IPP060",
        Error,
        "update changes spec.cidr",
        Some("IPPool CIDR cannot be modified"),
    ),
    rule(
        "IPP061",
        Error,
        "update changes spec.blockSize",
        Some("IPPool BlockSize cannot be modified"),
    ),
    rule(
        "IPP062",
        Error,
        "update changes allowedUses from LoadBalancer to Workload or Tunnel",
        Some("IPPool allowed use cannot be changed from LoadBalacer to Workload or Tunnel"),
    ),
    rule(
        "IPP063",
        Error,
        "update names a different pool than the old object",
        None,
    ),
    rule(
        "IPP070",
        Error,
        "delete of a pool that is still enabled",
        None,
    ),
    rule(
        "IPP071",
        Error,
        "delete of a pool whose blocks still hold allocations",
        None,
    ),
    rule(
        "IPP072",
        Warning,
        "disabling the last enabled Workload pool of an IP family while workloads exist",
        None,
    ),
    rule(
        "IPP080",
        Error,
        "create of a pool overlapping an existing pool",
        Some("IPPool(<new>) CIDR overlaps with IPPool(<existing>) CIDR <cidr>"),
    ),
    rule(
        "IPP081",
        Error,
        "create of a pool over existing IPAM blocks of another size",
        Some(
            "IPPool blocksSize conflicts with existing allocations that use a different blockSize",
        ),
    ),
    rule(
        "IPP082",
        Error,
        "create of a pool whose name already exists",
        Some("resource already exists"),
    ),
    rule(
        "IPP083",
        Error,
        "the pool overlaps another pool created by the same input",
        None,
    ),
    rule(
        "IPP084",
        Error,
        "two pools in the input have the same name",
        None,
    ),
];

/// All rules, in code order.
pub fn catalog() -> &'static [RuleInfo] {
    CATALOG
}

/// The rule with `code`.
pub fn rule_info(code: &str) -> Option<&'static RuleInfo> {
    CATALOG.iter().find(|r| r.code == code)
}

/// Severity of a catalogued code (codes used in this crate are all catalogued; a test checks it).
pub(crate) fn severity_of(code: &str) -> Severity {
    rule_info(code).map_or(Severity::Error, |r| r.severity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_ordered() {
        let codes: Vec<_> = CATALOG.iter().map(|r| r.code).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes, sorted);
        assert!(codes.iter().all(|c| c.len() == 6 && c.starts_with("IPP")));
    }
}
