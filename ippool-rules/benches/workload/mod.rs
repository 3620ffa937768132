//! The generated workload shared by the benches: a YAML stream of non-overlapping pools and a
//! context with cluster CIDRs.

use ippool_rules::context::{ClusterCidrs, ClusterContext, Strength};

/// A number from the environment variable `name`, else `default`; a value that is not a number
/// stops the bench rather than being ignored.
pub fn setting(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

/// Pool count from `IPPOOL_BENCH_POOLS` (default 10,000; `./dev test` uses 200 for a smoke run).
pub fn pool_count() -> usize {
    setting("IPPOOL_BENCH_POOLS", 10_000)
}

/// `count` pools, each a /24 of 10.0.0.0/8 (so none overlap), as one multi-document stream.
pub fn pool_stream(count: usize) -> String {
    let mut text = String::with_capacity(count * 260);
    for i in 0..count {
        let (b, c) = (i / 256, i % 256);
        text.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool-{i}\n  labels:\n    team: t{}\nspec:\n  cidr: 10.{b}.{c}.0/24\n  blockSize: 26\n  ipipMode: Never\n  vxlanMode: CrossSubnet\n  natOutgoing: true\n  nodeSelector: all()\n",
            i % 7
        ));
    }
    text
}

/// Cluster CIDRs from a strong source, a service CIDR, and an empty cluster otherwise.
pub fn context() -> ClusterContext {
    ClusterContext {
        pools: Some(Vec::new()),
        blocks: Some(Vec::new()),
        cluster_cidrs: Some(ClusterCidrs {
            cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            source: "bench".into(),
            strength: Strength::Strong,
        }),
        service_cidrs: Some(vec!["192.168.0.0/16".parse().unwrap()]),
        nodes: None,
        workloads_present: Some(true),
    }
}
