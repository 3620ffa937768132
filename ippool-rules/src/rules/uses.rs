//! What allowedUses permit: LoadBalancer pools stand alone, without encapsulation, on all nodes,
//! exported over BGP; Tunnel pools cannot be limited to namespaces.

use super::{Finding, PoolView, spec_path};
use crate::model::{AllowedUse, EncapMode};

pub(super) fn check(view: &PoolView<'_>, out: &mut Vec<Finding>) {
    let uses = &view.spec.allowed_uses;
    if uses.contains(&AllowedUse::LoadBalancer) {
        check_load_balancer(view, out);
    }
    let explicit_tunnel = view
        .pool
        .spec
        .allowed_uses
        .as_ref()
        .is_some_and(|u| u.contains(&AllowedUse::Tunnel));
    // Calico refuses any written selector, even a blank one (which would select everything).
    let has_namespace_selector = view
        .pool
        .spec
        .namespace_selector
        .as_deref()
        .is_some_and(|s| !s.is_empty());
    if explicit_tunnel && has_namespace_selector {
        out.push(
            Finding::new(
                "IPP036",
                spec_path("namespaceSelector"),
                "a pool with allowedUses Tunnel cannot have a namespaceSelector: tunnel addresses belong to nodes, not namespaces",
            )
            .hint("remove namespaceSelector, or put tunnel addresses in a separate pool"),
        );
    }
}

fn check_load_balancer(view: &PoolView<'_>, out: &mut Vec<Finding>) {
    let spec = &view.spec;
    // As Calico: only a mode that enables encapsulation counts; a misspelt one is IPP027's.
    let enables = |m: &EncapMode| matches!(m, EncapMode::Always | EncapMode::CrossSubnet);
    if enables(&spec.ipip_mode) || enables(&spec.vxlan_mode) {
        let field = if enables(&spec.ipip_mode) {
            "ipipMode"
        } else {
            "vxlanMode"
        };
        out.push(
            Finding::new(
                "IPP032",
                spec_path(field),
                "Neither IPIPMode nor VXLANMode can be enabled on AllowedUses LoadBalancer IP pool",
            )
            .hint("set ipipMode and vxlanMode to Never"),
        );
    }
    for (i, other) in spec
        .allowed_uses
        .iter()
        .enumerate()
        .filter(|(_, u)| matches!(u, AllowedUse::Workload | AllowedUse::Tunnel))
    {
        out.push(
            Finding::new(
                "IPP033",
                spec_path("allowedUses").index(i),
                format!("LoadBalancer cannot be used at the same time as: {other}"),
            )
            .hint("use a separate pool for LoadBalancer addresses"),
        );
    }
    if spec.node_selector != "all()" {
        out.push(
            Finding::new(
                "IPP034",
                spec_path("nodeSelector"),
                "IP Pool with AllowedUse LoadBalancer must have node selector set to all()",
            )
            .hint("set nodeSelector: all() or remove it"),
        );
    }
    if spec.disable_bgp_export {
        out.push(
            Finding::new(
                "IPP035",
                spec_path("disableBGPExport"),
                "an IP pool with AllowedUse LoadBalancer must be exported over BGP: disableBGPExport cannot be true",
            )
            .hint("remove disableBGPExport or set it to false"),
        );
    }
}
