//! Calico's own checks of an IPPool spec (libcalico-go clientv3/ippool.go and validator/v3).

use ipnet::IpNet;

use super::{Finding, PoolView, spec_path};
use crate::cidr::{self, CidrError, Family};
use crate::model::{AllowedUse, AssignmentMode, EncapMode};

pub(super) fn check(view: &PoolView<'_>, out: &mut Vec<Finding>) {
    check_modes(view, out);
    check_enums(view, out);
    check_deprecated(view, out);
    let Some(net) = check_cidr(view, out) else {
        return;
    };
    let family = Family::of(&net);
    check_block_size(view, net, family, out);
    if family == Family::V6 && view.spec.ipip_mode != EncapMode::Never {
        out.push(
            Finding::new(
                "IPP025",
                spec_path("ipipMode"),
                format!(
                    "ipipMode is {} but IPIP is not supported on an IPv6 IP pool",
                    view.spec.ipip_mode
                ),
            )
            .hint("set ipipMode: Never (use vxlanMode for IPv6 encapsulation)"),
        );
    }
    let link_local = cidr::link_local(family);
    if cidr::overlaps(&net, &link_local) {
        out.push(
            Finding::new(
                "IPP026",
                spec_path("cidr"),
                format!("IPPool CIDR {net} overlaps with {family} Link Local range {link_local}"),
            )
            .hint("choose a range outside the link-local range"),
        );
    }
}

/// The written CIDR's network when it parses; reports missing, invalid and unmasked CIDRs.
fn check_cidr(view: &PoolView<'_>, out: &mut Vec<Finding>) -> Option<IpNet> {
    let written = view.pool.spec.cidr.as_deref().unwrap_or("");
    match cidr::parse_strict(written) {
        Ok(net) => Some(net),
        Err(CidrError::Empty) => {
            out.push(
                Finding::new("IPP012", spec_path("cidr"), "IPPool CIDR must be specified")
                    .hint("add spec.cidr, e.g. cidr: 10.244.0.0/16"),
            );
            None
        }
        Err(CidrError::Invalid { input }) => {
            out.push(
                Finding::new(
                    "IPP020",
                    spec_path("cidr"),
                    format!("IPPool CIDR must be a valid subnet: '{input}' is not ADDRESS/PREFIX"),
                )
                .hint("write the network with its prefix length, e.g. 10.244.0.0/16 or fd00:10:244::/56"),
            );
            None
        }
        Err(CidrError::NotStrictlyMasked { input, network }) => {
            out.push(
                Finding::new(
                    "IPP021",
                    spec_path("cidr"),
                    format!("IPPool CIDR is not strictly masked: '{input}' has host bits set"),
                )
                .hint(format!("did you mean {network}?")),
            );
            Some(network)
        }
    }
}

fn check_block_size(view: &PoolView<'_>, net: IpNet, family: Family, out: &mut Vec<Finding>) {
    let range = cidr::block_size_range(family);
    let written = view.pool.spec.block_size.filter(|b| *b != 0);
    if let Some(b) = written
        && !(i64::from(*range.start())..=i64::from(*range.end())).contains(&b)
    {
        out.push(
            Finding::new(
                "IPP022",
                spec_path("blockSize"),
                format!(
                    "{family} block size must be between {} and {}, not {b}",
                    range.start(),
                    range.end()
                ),
            )
            .hint(format!(
                "use a value in {}-{} (default {})",
                range.start(),
                range.end(),
                cidr::default_block_size(family)
            )),
        );
        return;
    }
    let Some(block_size) = view.spec.block_size else {
        return;
    };
    if view.is_enabled() && net.prefix_len() > block_size {
        out.push(
            Finding::new(
                "IPP023",
                spec_path("cidr"),
                format!(
                    "IP pool size is too small for use with Calico IPAM: /{} is smaller than one /{block_size} block",
                    net.prefix_len()
                ),
            )
            .hint(format!(
                "use a CIDR of /{block_size} or larger, or a blockSize of at least {}",
                net.prefix_len()
            )),
        );
    }
}

fn check_modes(view: &PoolView<'_>, out: &mut Vec<Finding>) {
    for (field, mode) in [
        ("ipipMode", &view.spec.ipip_mode),
        ("vxlanMode", &view.spec.vxlan_mode),
    ] {
        if let EncapMode::Other(value) = mode {
            out.push(
                Finding::new(
                    "IPP027",
                    spec_path(field),
                    format!(
                        "{field} '{value}' is not one of {}",
                        EncapMode::KNOWN.join(", ")
                    ),
                )
                .hint("values are case-sensitive: Never, Always or CrossSubnet"),
            );
        }
    }
    if view.spec.ipip_mode != EncapMode::Never && view.spec.vxlan_mode != EncapMode::Never {
        out.push(
            Finding::new(
                "IPP024",
                spec_path("vxlanMode"),
                "Cannot enable both VXLAN and IPIP on the same IPPool",
            )
            .hint("set one of ipipMode and vxlanMode to Never"),
        );
    }
}

fn check_enums(view: &PoolView<'_>, out: &mut Vec<Finding>) {
    if let Some(uses) = &view.pool.spec.allowed_uses {
        for (i, used) in uses.iter().enumerate() {
            if let AllowedUse::Other(value) = used {
                out.push(
                    Finding::new(
                        "IPP028",
                        spec_path("allowedUses").index(i),
                        format!("unknown use: {value}"),
                    )
                    .hint(format!("allowed uses are {}", AllowedUse::KNOWN.join(", "))),
                );
            }
        }
    }
    if let Some(AssignmentMode::Other(value)) = &view.pool.spec.assignment_mode {
        out.push(
            Finding::new(
                "IPP013",
                spec_path("assignmentMode"),
                format!(
                    "assignmentMode '{value}' is not one of {}",
                    AssignmentMode::KNOWN.join(", ")
                ),
            )
            .hint("use Automatic (the default) or Manual"),
        );
    }
}

fn check_deprecated(view: &PoolView<'_>, out: &mut Vec<Finding>) {
    if view.pool.spec.ipip.is_some() {
        out.push(
            Finding::new(
                "IPP029",
                spec_path("ipip"),
                "the deprecated v1 field ipip must not be set",
            )
            .hint("remove ipip and use ipipMode: Always or CrossSubnet"),
        );
    }
    if view.pool.spec.nat_outgoing_v1 == Some(true) {
        out.push(
            Finding::new(
                "IPP029",
                spec_path("nat-outgoing"),
                "the deprecated v1 field nat-outgoing must not be set",
            )
            .hint("remove nat-outgoing and use natOutgoing: true"),
        );
    }
}
