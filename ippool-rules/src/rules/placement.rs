//! Where a pool may lie in the cluster's address plan (rules Calico does not have): inside the
//! pod CIDR(s), clear of the service CIDR, and clear of loopback, multicast and unspecified ranges.

use super::{Checker, Finding, PoolView, spec_path};
use crate::cidr::{self, Family};
use crate::context::Strength;
use crate::model::AllowedUse;

pub(super) fn check(checker: &Checker<'_>, view: &PoolView<'_>, out: &mut Vec<Finding>) {
    let Some(net) = view.net else {
        return;
    };
    let family = Family::of(&net);
    for (what, range) in cidr::unusable_ranges(family) {
        if cidr::overlaps(&net, range) {
            out.push(
                Finding::new(
                    "IPP053",
                    spec_path("cidr"),
                    format!("pool {net} overlaps the {what} range {range}: those addresses cannot be given to pods"),
                )
                .hint("choose a private range, e.g. 10.244.0.0/16 or fd00:10:244::/56"),
            );
        }
    }
    check_pod_cidrs(checker, view, net, out);
    check_service_cidrs(checker, net, out);
}

fn check_pod_cidrs(
    checker: &Checker<'_>,
    view: &PoolView<'_>,
    net: ipnet::IpNet,
    out: &mut Vec<Finding>,
) {
    if !view.spec.allowed_uses.contains(&AllowedUse::Workload) {
        return;
    }
    let Some(cluster) = &checker.ctx.cluster_cidrs else {
        out.push(Finding::skipped(
            "pod CIDR containment",
            "the cluster's pod CIDR(s)",
            "give the cluster CIDR(s) (kubectl-ippool: --cluster-cidr)",
        ));
        return;
    };
    if cluster.cidrs.iter().any(|c| cidr::contains_net(c, &net)) {
        return;
    }
    let code = match cluster.strength {
        Strength::Strong => "IPP050",
        Strength::Weak => "IPP051",
    };
    let same_family: Vec<String> = cluster
        .cidrs
        .iter()
        .filter(|c| Family::of(c) == Family::of(&net))
        .map(ToString::to_string)
        .collect();
    let message = if same_family.is_empty() {
        format!(
            "pool {net} is {} but the cluster's pod CIDRs (from {}) have no {} range: pods given these addresses will not be routed",
            Family::of(&net),
            cluster.source,
            Family::of(&net)
        )
    } else {
        format!(
            "pool {net} lies outside the cluster's pod CIDR {} (from {}): pods given these addresses will not be routed",
            same_family.join(", "),
            cluster.source
        )
    };
    out.push(
        Finding::new(code, spec_path("cidr"), message)
            .hint("choose a CIDR inside the cluster's pod CIDR, or widen the cluster CIDR first"),
    );
}

fn check_service_cidrs(checker: &Checker<'_>, net: ipnet::IpNet, out: &mut Vec<Finding>) {
    let Some(services) = &checker.ctx.service_cidrs else {
        out.push(Finding::skipped(
            "overlap with the service CIDR",
            "the service CIDR",
            "give the service CIDR (kubectl-ippool: --service-cidr)",
        ));
        return;
    };
    for service in services.iter().filter(|s| cidr::overlaps(s, &net)) {
        out.push(
            Finding::new(
                "IPP052",
                spec_path("cidr"),
                format!("pool {net} overlaps the service CIDR {service}: pod and service addresses would collide"),
            )
            .hint("choose a CIDR that does not overlap the service CIDR"),
        );
    }
}
