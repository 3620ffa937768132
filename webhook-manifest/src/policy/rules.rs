//! The rules the ValidatingAdmissionPolicy enforces, one CEL expression each (true: the request
//! passes), written against the policy's variables ([`VARIABLES`]). Codes, summaries and Calico's
//! wording come from the rules crate's catalogue; only the expression and the fix are written here.
//! Rules that need other objects (overlap with other pools, blocks in use, the last pool of a
//! family) or a Calico selector parser are the webhook's alone: `docs/policy.md` lists both.

/// One rule as CEL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRule {
    pub code: &'static str,
    pub expression: &'static str,
    /// The safe way, as the webhook's hint names it.
    pub fix: &'static str,
}

/// The policy's variables, in order (later ones read earlier ones). `pool` is the object written,
/// or on DELETE the object as stored. Calico's defaults are applied as the rules crate applies
/// them: blockSize 26/122 (0 counts as unset), modes Never (the empty string too), nodeSelector
/// all(), allowedUses [Workload, Tunnel].
pub const VARIABLES: &[(&str, &str)] = &[
    ("pool", "request.operation == 'DELETE' ? oldObject : object"),
    ("writing", "request.operation != 'DELETE'"),
    ("hasSpec", "has(variables.pool.spec)"),
    (
        "cidrText",
        "variables.hasSpec && has(variables.pool.spec.cidr) ? variables.pool.spec.cidr : ''",
    ),
    ("validCidr", "isCIDR(variables.cidrText)"),
    (
        "net",
        "variables.validCidr ? cidr(variables.cidrText).masked() : cidr('0.0.0.0/32')",
    ),
    (
        "v4",
        "variables.validCidr && variables.net.ip().family() == 4",
    ),
    (
        "writtenBlockSize",
        "variables.hasSpec && has(variables.pool.spec.blockSize) ? variables.pool.spec.blockSize : 0",
    ),
    (
        "blockSize",
        "variables.writtenBlockSize != 0 ? variables.writtenBlockSize : (variables.v4 ? 26 : 122)",
    ),
    (
        "blockSizeInRange",
        "variables.writtenBlockSize == 0 || (variables.v4 ? variables.writtenBlockSize >= 20 && variables.writtenBlockSize <= 32 : variables.writtenBlockSize >= 116 && variables.writtenBlockSize <= 128)",
    ),
    (
        "ipipMode",
        "variables.hasSpec && has(variables.pool.spec.ipipMode) && variables.pool.spec.ipipMode != '' ? variables.pool.spec.ipipMode : 'Never'",
    ),
    (
        "vxlanMode",
        "variables.hasSpec && has(variables.pool.spec.vxlanMode) && variables.pool.spec.vxlanMode != '' ? variables.pool.spec.vxlanMode : 'Never'",
    ),
    (
        "writtenUses",
        "variables.hasSpec && has(variables.pool.spec.allowedUses) ? variables.pool.spec.allowedUses : []",
    ),
    (
        "uses",
        "size(variables.writtenUses) > 0 ? variables.writtenUses : ['Workload', 'Tunnel']",
    ),
    (
        "enabled",
        "!(variables.hasSpec && has(variables.pool.spec.disabled) && variables.pool.spec.disabled)",
    ),
    (
        "nodeSelector",
        "variables.hasSpec && has(variables.pool.spec.nodeSelector) && variables.pool.spec.nodeSelector != '' ? variables.pool.spec.nodeSelector : 'all()'",
    ),
    (
        "namespaceSelector",
        "variables.hasSpec && has(variables.pool.spec.namespaceSelector) ? variables.pool.spec.namespaceSelector : ''",
    ),
    (
        "clusterCidrs",
        "has(params.data) && 'clusterCIDRs' in params.data ? params.data.clusterCIDRs.split(',').map(c, c.trim()).filter(c, c != '') : []",
    ),
    (
        "serviceCidrs",
        "has(params.data) && 'serviceCIDRs' in params.data ? params.data.serviceCIDRs.split(',').map(c, c.trim()).filter(c, c != '') : []",
    ),
    ("updating", "request.operation == 'UPDATE'"),
    (
        "oldCidrText",
        "variables.updating && has(oldObject.spec) && has(oldObject.spec.cidr) ? oldObject.spec.cidr : ''",
    ),
    (
        "oldWrittenBlockSize",
        "variables.updating && has(oldObject.spec) && has(oldObject.spec.blockSize) ? oldObject.spec.blockSize : 0",
    ),
    (
        "oldUses",
        "variables.updating && has(oldObject.spec) && has(oldObject.spec.allowedUses) && size(oldObject.spec.allowedUses) > 0 ? oldObject.spec.allowedUses : ['Workload', 'Tunnel']",
    ),
];

pub const RULES: &[PolicyRule] = &[
    PolicyRule {
        code: "IPP012",
        expression: "!variables.writing || variables.cidrText != ''",
        fix: "add spec.cidr, e.g. cidr: 10.244.0.0/16",
    },
    PolicyRule {
        code: "IPP020",
        expression: "!variables.writing || variables.cidrText == '' || variables.validCidr",
        fix: "write the network with its prefix length, e.g. 10.244.0.0/16 or fd00:10:244::/56",
    },
    PolicyRule {
        code: "IPP021",
        expression: "!variables.writing || !variables.validCidr || cidr(variables.cidrText).ip() == variables.net.ip()",
        fix: "write the network address, with the host bits cleared",
    },
    PolicyRule {
        code: "IPP022",
        expression: "!variables.writing || !variables.validCidr || variables.blockSizeInRange",
        fix: "use a blockSize of 20-32 for IPv4 (default 26) or 116-128 for IPv6 (default 122)",
    },
    PolicyRule {
        code: "IPP023",
        expression: "!variables.writing || !variables.validCidr || !variables.blockSizeInRange || !variables.enabled || variables.net.prefixLength() <= variables.blockSize",
        fix: "widen the CIDR to at least one block, or raise blockSize",
    },
    PolicyRule {
        code: "IPP024",
        expression: "!variables.writing || variables.ipipMode == 'Never' || variables.vxlanMode == 'Never'",
        fix: "set one of ipipMode and vxlanMode to Never",
    },
    PolicyRule {
        code: "IPP025",
        expression: "!variables.writing || !variables.validCidr || variables.v4 || variables.ipipMode == 'Never'",
        fix: "set ipipMode: Never (use vxlanMode for IPv6 encapsulation)",
    },
    PolicyRule {
        code: "IPP026",
        expression: "!variables.writing || !variables.validCidr || !['169.254.0.0/16', 'fe80::/10'].exists(r, cidr(r).containsIP(variables.net.ip()) || variables.net.containsIP(cidr(r).ip()))",
        fix: "choose a range outside the link-local range",
    },
    PolicyRule {
        code: "IPP027",
        expression: "!variables.writing || (variables.ipipMode in ['Never', 'Always', 'CrossSubnet'] && variables.vxlanMode in ['Never', 'Always', 'CrossSubnet'])",
        fix: "values are case-sensitive: Never, Always or CrossSubnet",
    },
    PolicyRule {
        code: "IPP028",
        expression: "!variables.writing || variables.writtenUses.all(u, u in ['Workload', 'Tunnel', 'LoadBalancer'])",
        fix: "allowed uses are Workload, Tunnel and LoadBalancer",
    },
    PolicyRule {
        code: "IPP029",
        expression: "!variables.writing || !variables.hasSpec || (!has(variables.pool.spec.ipip) && !('nat-outgoing' in variables.pool.spec && variables.pool.spec['nat-outgoing']))",
        fix: "remove ipip and nat-outgoing; use ipipMode and natOutgoing",
    },
    PolicyRule {
        code: "IPP031",
        expression: "!variables.writing || !(variables.nodeSelector.contains('global(') || variables.namespaceSelector.contains('global('))",
        fix: "replace global() with all()",
    },
    PolicyRule {
        code: "IPP032",
        expression: "!variables.writing || !('LoadBalancer' in variables.uses) || !(variables.ipipMode in ['Always', 'CrossSubnet'] || variables.vxlanMode in ['Always', 'CrossSubnet'])",
        fix: "set ipipMode and vxlanMode to Never",
    },
    PolicyRule {
        code: "IPP033",
        expression: "!variables.writing || !('LoadBalancer' in variables.uses) || !variables.uses.exists(u, u == 'Workload' || u == 'Tunnel')",
        fix: "use a separate pool for LoadBalancer addresses",
    },
    PolicyRule {
        code: "IPP034",
        expression: "!variables.writing || !('LoadBalancer' in variables.uses) || variables.nodeSelector == 'all()'",
        fix: "set nodeSelector: all() or remove it",
    },
    PolicyRule {
        code: "IPP035",
        expression: "!variables.writing || !('LoadBalancer' in variables.uses) || !(has(variables.pool.spec.disableBGPExport) && variables.pool.spec.disableBGPExport)",
        fix: "remove disableBGPExport or set it to false",
    },
    PolicyRule {
        code: "IPP036",
        expression: "!variables.writing || !('Tunnel' in variables.writtenUses) || variables.namespaceSelector == ''",
        fix: "remove namespaceSelector, or put tunnel addresses in a separate pool",
    },
    PolicyRule {
        code: "IPP050",
        expression: "!variables.writing || !variables.validCidr || !('Workload' in variables.uses) || size(variables.clusterCidrs) == 0 || variables.clusterCidrs.exists(c, isCIDR(c) && cidr(c).containsCIDR(variables.net))",
        fix: "choose a CIDR inside the cluster's pod CIDR (in the policy's parameters), or widen the cluster CIDR first",
    },
    PolicyRule {
        code: "IPP052",
        expression: "!variables.writing || !variables.validCidr || !variables.serviceCidrs.exists(s, isCIDR(s) && (cidr(s).containsIP(variables.net.ip()) || variables.net.containsIP(cidr(s).masked().ip())))",
        fix: "choose a CIDR that does not overlap the service CIDR",
    },
    // CEL's cidr() refuses IPv4-mapped IPv6 networks (::ffff:0:0/96), so such a pool is refused
    // as IPP020 here (the rules crate says IPP053): the same verdict.
    PolicyRule {
        code: "IPP053",
        expression: "!variables.writing || !variables.validCidr || !['0.0.0.0/8', '127.0.0.0/8', '224.0.0.0/4', '::/128', '::1/128', 'ff00::/8'].exists(r, cidr(r).containsIP(variables.net.ip()) || variables.net.containsIP(cidr(r).ip()))",
        fix: "choose a private range, e.g. 10.244.0.0/16 or fd00:10:244::/56",
    },
    PolicyRule {
        code: "IPP060",
        expression: "!variables.updating || (isCIDR(variables.oldCidrText) && variables.validCidr ? cidr(variables.oldCidrText).masked() == variables.net : variables.oldCidrText == variables.cidrText)",
        fix: "create a new pool and move the pods to it: kubectl ippool migrate",
    },
    PolicyRule {
        code: "IPP061",
        expression: "!variables.updating || (variables.oldWrittenBlockSize != 0 ? variables.oldWrittenBlockSize : (isCIDR(variables.oldCidrText) && cidr(variables.oldCidrText).ip().family() == 4 ? 26 : 122)) == variables.blockSize",
        fix: "change the block size with kubectl ippool resize",
    },
    PolicyRule {
        code: "IPP062",
        expression: "!variables.updating || !('LoadBalancer' in variables.oldUses) || !variables.uses.exists(u, u == 'Workload' || u == 'Tunnel')",
        fix: "create a separate pool for Workload or Tunnel addresses",
    },
    // The Tigera operator deletes the pools it owns when they leave its Installation, without
    // disabling them first: its ServiceAccount may.
    PolicyRule {
        code: "IPP070",
        expression: "variables.writing || !variables.enabled || request.userInfo.username == 'system:serviceaccount:tigera-operator:tigera-operator'",
        fix: "set spec.disabled: true, move the pods off the pool (kubectl ippool migrate), then delete it",
    },
];
