//! nodeSelector and namespaceSelector must be valid Calico selectors, and not use global().

use super::{Finding, PoolView, spec_path};
use crate::selector::Selector;

pub(super) fn check(view: &PoolView<'_>, out: &mut Vec<Finding>) {
    let spec = &view.pool.spec;
    for (field, written) in [
        ("nodeSelector", &spec.node_selector),
        ("namespaceSelector", &spec.namespace_selector),
    ] {
        let Some(text) = written.as_deref() else {
            continue;
        };
        match Selector::parse(text) {
            Err(err) => out.push(
                Finding::new(
                    "IPP030",
                    spec_path(field),
                    format!("{field} '{text}' is not a valid selector: {} (at offset {})", err.reason, err.offset),
                )
                .hint("e.g. all(), has(zone), zone == 'a', zone in {'a', 'b'}, !has(gpu) && role != 'edge'"),
            ),
            // Calico's check is textual: `global(` anywhere, even inside a quoted value, is
            // refused (such a value is no valid label value, so the selector could never match).
            Ok(_) if text.contains("global(") => out.push(
                Finding::new(
                    "IPP031",
                    spec_path(field),
                    format!("global() selector is not valid for IPPool {field} - use all() instead"),
                )
                .hint("replace global() with all(); Calico refuses the text global( anywhere in the selector"),
            ),
            Ok(_) => {}
        }
    }
}
