//! Arbitrary bytes as source text through parsing, the structural check and every rule.
//! The first byte picks the operation; the context has every field so context rules run too.

#![no_main]

use std::sync::OnceLock;

use ippool_rules::context::{ClusterCidrs, ClusterContext, NodeInfo, Operation, Strength};
use ippool_rules::{Source, parse_pools, validate};
use libfuzzer_sys::fuzz_target;

const EXISTING: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: existing}\nspec: {cidr: 10.244.0.0/16, vxlanMode: Always}\n";

fn context() -> &'static (ClusterContext, Operation) {
    static CONTEXT: OnceLock<(ClusterContext, Operation)> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        let pools = parse_pools(Source { name: "existing", text: EXISTING }).unwrap_or_default();
        let ctx = ClusterContext {
            pools: Some(pools.clone()),
            blocks: Some(Vec::new()),
            cluster_cidrs: Some(ClusterCidrs {
                cidrs: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/48".parse().unwrap()],
                source: "fuzz".into(),
                strength: Strength::Weak,
            }),
            service_cidrs: Some(vec!["10.96.0.0/12".parse().unwrap()]),
            nodes: Some(vec![NodeInfo { name: "n1".into(), labels: [("zone".to_owned(), "a".to_owned())].into() }]),
            workloads_present: Some(true),
        };
        let old = pools.into_iter().next().map(|old| Operation::Update { old });
        (ctx, old.unwrap_or(Operation::Delete))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (ctx, update) = context();
    let op = match selector % 3 {
        0 => &Operation::Create,
        1 => &Operation::Delete,
        _ => update,
    };
    let report = validate(&[Source { name: "fuzz.yaml", text: &text }], ctx, op);
    // The report must always serialise.
    let _ = report.to_json();
});
