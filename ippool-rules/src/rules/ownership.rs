//! Pools reconciled by the tigera operator: direct edits are reverted.

use super::Finding;
use crate::model::IpPool;
use crate::report::FieldPath;

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const OPERATOR: &str = "tigera-operator";

fn managed(pool: &IpPool) -> bool {
    pool.metadata.labels.get(MANAGED_BY).map(String::as_str) == Some(OPERATOR)
}

pub(super) fn check(pool: &IpPool, old: Option<&IpPool>, out: &mut Vec<Finding>) {
    if managed(pool) || old.is_some_and(managed) {
        out.push(
            Finding::new(
                "IPP055",
                FieldPath::keys(&["metadata", "labels", MANAGED_BY]),
                format!("pool '{}' is managed by the tigera operator, which reverts direct edits", pool.name()),
            )
            .hint("change the pool in the operator's Installation resource (spec.calicoNetwork.ipPools) instead"),
        );
    }
}
