//! What an update may not change. Values are compared after Calico's defaults and in canonical
//! form, so re-applying the same pool (blockSize left unset, CIDR written differently) passes.

use super::{Finding, PoolView, spec_path};
use crate::model::AllowedUse;
use crate::report::FieldPath;

pub(super) fn check(old: &PoolView<'_>, new: &PoolView<'_>, out: &mut Vec<Finding>) {
    if old.name() != new.name() {
        out.push(
            Finding::new(
                "IPP063",
                FieldPath::keys(&["metadata", "name"]),
                format!(
                    "this update is for pool '{}' but the old object is pool '{}'",
                    new.name(),
                    old.name()
                ),
            )
            .hint("give the current version of the same pool as the old object"),
        );
    }
    let cidr_changed = match (old.net, new.net) {
        (Some(a), Some(b)) => a != b,
        _ => old.pool.spec.cidr != new.pool.spec.cidr,
    };
    if cidr_changed {
        out.push(
            Finding::new(
                "IPP060",
                spec_path("cidr"),
                format!(
                    "IPPool CIDR cannot be modified (from {} to {})",
                    shown(old.pool.spec.cidr.as_deref()),
                    shown(new.pool.spec.cidr.as_deref())
                ),
            )
            .hint("create a new pool and move the pods to it: kubectl ippool migrate"),
        );
    }
    let block_changed = match (old.spec.block_size, new.spec.block_size) {
        (Some(a), Some(b)) => a != b,
        _ => old.pool.spec.block_size != new.pool.spec.block_size,
    };
    if block_changed {
        let show = |v: &PoolView<'_>| {
            v.spec
                .block_size
                .map_or_else(|| "unset".to_owned(), |b| b.to_string())
        };
        out.push(
            Finding::new(
                "IPP061",
                spec_path("blockSize"),
                format!(
                    "IPPool BlockSize cannot be modified (from {} to {})",
                    show(old),
                    show(new)
                ),
            )
            .hint("change the block size with kubectl ippool resize"),
        );
    }
    let was_load_balancer = old.spec.allowed_uses.contains(&AllowedUse::LoadBalancer);
    if was_load_balancer {
        for (i, used) in new.spec.allowed_uses.iter().enumerate() {
            if matches!(used, AllowedUse::Workload | AllowedUse::Tunnel) {
                out.push(
                    Finding::new(
                        "IPP062",
                        spec_path("allowedUses").index(i),
                        format!("IPPool allowed use cannot be changed from LoadBalancer to {used}"),
                    )
                    .hint("create a separate pool for Workload or Tunnel addresses"),
                );
            }
        }
    }
}

fn shown(cidr: Option<&str>) -> &str {
    match cidr {
        Some(c) if !c.is_empty() => c,
        _ => "unset",
    }
}
