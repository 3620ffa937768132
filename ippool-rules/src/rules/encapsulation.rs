//! Tunnel addresses: calico-node removes a node's IPIP/VXLAN tunnel address when no enabled
//! Tunnel pool of that encapsulation selects the node. Warn when a delete, disable or mode change
//! takes the last such pool away from some nodes.

use super::{Checker, Finding, PoolView, spec_path};
use crate::cidr::Family;
use crate::model::{AllowedUse, Encapsulation, IpPool};
use crate::report::FieldPath;
use crate::selector::Selector;

/// How many affected node names a message lists.
const NAMED_NODES: usize = 5;

pub(super) fn check_delete(checker: &Checker<'_>, view: &PoolView<'_>, out: &mut Vec<Finding>) {
    let live = PoolView::new(checker.existing(view.name()).unwrap_or(view.pool));
    if live.is_enabled() {
        check_loss(checker, &live, None, out);
    }
}

pub(super) fn check_update(
    checker: &Checker<'_>,
    old: &PoolView<'_>,
    new: &PoolView<'_>,
    out: &mut Vec<Finding>,
) {
    if old.is_enabled() {
        check_loss(checker, old, Some(new), out);
    }
}

/// The node selector of `pool` if it gives tunnel addresses of `encap` in `family`.
fn tunnel_selector(pool: &PoolView<'_>, family: Family, encap: Encapsulation) -> Option<Selector> {
    let spec = &pool.spec;
    let gives = pool.is_enabled()
        && spec.family() == Some(family)
        && spec.allowed_uses.contains(&AllowedUse::Tunnel)
        && spec.encapsulations().any(|e| e == encap);
    if gives {
        Selector::parse(&spec.node_selector).ok()
    } else {
        None
    }
}

fn check_loss(
    checker: &Checker<'_>,
    old: &PoolView<'_>,
    new: Option<&PoolView<'_>>,
    out: &mut Vec<Finding>,
) {
    let Some(family) = old.spec.family() else {
        return;
    };
    let encaps: Vec<Encapsulation> = old.spec.encapsulations().collect();
    for encap in encaps {
        let Some(old_selector) = tunnel_selector(old, family, encap) else {
            continue;
        };
        let kept = new.and_then(|n| tunnel_selector(n, family, encap));
        if kept.as_ref() == Some(&old_selector) {
            continue;
        }
        let Some(pools) = &checker.ctx.pools else {
            out.push(Finding::skipped(
                "loss of tunnel addresses",
                "the cluster's pools",
                "give the existing pools (kubectl-ippool: --against)",
            ));
            continue;
        };
        let others: Vec<Selector> = pools
            .iter()
            .filter(|p| p.name() != old.name())
            .filter_map(|p: &IpPool| tunnel_selector(&PoolView::new(p), family, encap))
            .chain(kept)
            .collect();
        let path = match new {
            Some(n) if !n.is_enabled() => spec_path("disabled"),
            Some(_) => spec_path(encap.field()),
            None => FieldPath::root(),
        };
        let lead = format!(
            "after this change no enabled {family} pool gives {encap} tunnel addresses to",
        );
        let hint = format!(
            "first create or enable a pool with {}: {} (allowedUses including Tunnel) selecting those nodes",
            encap.field(),
            "Always or CrossSubnet"
        );
        if let Some(nodes) = &checker.ctx.nodes {
            let affected: Vec<&str> = nodes
                .iter()
                .filter(|n| old_selector.matches(&n.labels))
                .filter(|n| !others.iter().any(|s| s.matches(&n.labels)))
                .map(|n| n.name.as_str())
                .collect();
            if !affected.is_empty() {
                let mut named = affected
                    .iter()
                    .take(NAMED_NODES)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                if affected.len() > NAMED_NODES {
                    named.push_str(", …");
                }
                out.push(
                    Finding::new(
                        "IPP054",
                        path,
                        format!(
                            "{lead} {} nodes ({named}): calico-node will remove their tunnel addresses",
                            affected.len()
                        ),
                    )
                    .hint(hint),
                );
            }
        } else if !others.iter().any(|s| s.is_all() || *s == old_selector) {
            out.push(
                Finding::new(
                    "IPP054",
                    path,
                    format!(
                        "{lead} the nodes matching {old_selector}: calico-node will remove their tunnel addresses (no node list was given to narrow this down)"
                    ),
                )
                .hint(hint),
            );
        }
    }
}
