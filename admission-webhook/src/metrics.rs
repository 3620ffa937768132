//! Prometheus metrics: requests by operation and verdict, request latency, the state of the
//! watch-fed cluster view that verdicts depend on, and the pools' room that calico-kube-controllers'
//! own `ipam_*` metrics do not give (blocks still claimable, addresses stranded in affine blocks,
//! nodes at IPAMConfig's maxBlocksPerHost, blocks of the wrong size or outside every pool). No name
//! repeats one of Calico's.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    /// Named as in calico-kube-controllers' metrics, so that the two join on it.
    ippool: String,
}

/// One pool's room, as the metrics carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRoom {
    pub pool: String,
    pub blocks_claimable: i64,
    pub addresses_stranded: i64,
    /// Nodes holding `maxBlocksPerHost` blocks of the pool (0 when IPAMConfig sets no limit).
    pub nodes_at_block_limit: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    verdict: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    view_synced: Gauge,
    view_pools: Gauge,
    view_blocks: Gauge,
    pool_blocks_claimable: Family<PoolLabels, Gauge>,
    pool_addresses_stranded: Family<PoolLabels, Gauge>,
    pool_nodes_at_block_limit: Family<PoolLabels, Gauge>,
    blocks_size_mismatch: Gauge,
    blocks_without_pool: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ippool_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission reviews answered, by operation and verdict",
            requests.clone(),
        );
        // 25 µs … ~0.8 s: the target is well under a millisecond, the API server gives up at 5 s.
        let duration = Histogram::new(exponential_buckets(0.000_025, 2.0, 16));
        registry.register(
            "admission_duration_seconds",
            "Time from a complete request body to the serialised review",
            duration.clone(),
        );
        let view_synced = Gauge::default();
        registry.register(
            "cluster_view_synced",
            "1 once the ippool and ipamblock watches have listed everything, else 0",
            view_synced.clone(),
        );
        let view_pools = Gauge::default();
        registry.register(
            "cluster_view_pools",
            "IP pools in the watch-fed cluster view",
            view_pools.clone(),
        );
        let view_blocks = Gauge::default();
        registry.register(
            "cluster_view_blocks",
            "IPAM blocks in the watch-fed cluster view",
            view_blocks.clone(),
        );
        let pool_blocks_claimable = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "pool_blocks_claimable",
            "Blocks a pool can still give nodes (its CIDR's blocks of blockSize not yet claimed)",
            pool_blocks_claimable.clone(),
        );
        let pool_addresses_stranded = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "pool_addresses_stranded",
            "Free addresses in blocks affine to a node: only that node allocates from them",
            pool_addresses_stranded.clone(),
        );
        let pool_nodes_at_block_limit = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "pool_nodes_at_block_limit",
            "Nodes holding IPAMConfig's maxBlocksPerHost blocks of a pool: they can claim no more",
            pool_nodes_at_block_limit.clone(),
        );
        let blocks_size_mismatch = Gauge::default();
        registry.register(
            "blocks_size_mismatch",
            "IPAM blocks whose size is not their pool's blockSize",
            blocks_size_mismatch.clone(),
        );
        let blocks_without_pool = Gauge::default();
        registry.register(
            "blocks_without_pool",
            "IPAM blocks no pool covers",
            blocks_without_pool.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            view_synced,
            view_pools,
            view_blocks,
            pool_blocks_claimable,
            pool_addresses_stranded,
            pool_nodes_at_block_limit,
            blocks_size_mismatch,
            blocks_without_pool,
        }
    }

    pub fn observe(&self, operation: &'static str, verdict: &'static str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { operation, verdict })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    pub fn set_view(&self, synced: bool, pools: usize, blocks: usize) {
        self.view_synced.set(i64::from(synced));
        self.view_pools.set(pools as i64);
        self.view_blocks.set(blocks as i64);
    }

    /// The pools' room; pools no longer present leave the metrics.
    pub fn set_room(&self, pools: &[PoolRoom], size_mismatch: usize, without_pool: usize) {
        self.pool_blocks_claimable.clear();
        self.pool_addresses_stranded.clear();
        self.pool_nodes_at_block_limit.clear();
        for room in pools {
            let labels = PoolLabels {
                ippool: room.pool.clone(),
            };
            self.pool_blocks_claimable
                .get_or_create(&labels)
                .set(room.blocks_claimable);
            self.pool_addresses_stranded
                .get_or_create(&labels)
                .set(room.addresses_stranded);
            self.pool_nodes_at_block_limit
                .get_or_create(&labels)
                .set(room.nodes_at_block_limit);
        }
        self.blocks_size_mismatch.set(size_mismatch as i64);
        self.blocks_without_pool.set(without_pool as i64);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_requests_latency_and_view_state() {
        let metrics = Metrics::new();
        metrics.observe("CREATE", "denied", Duration::from_micros(300));
        metrics.observe("CREATE", "denied", Duration::from_micros(300));
        metrics.set_view(true, 3, 12);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"ippool_webhook_admission_requests_total{operation="CREATE",verdict="denied"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("ippool_webhook_admission_duration_seconds_count 2"));
        assert!(text.contains("ippool_webhook_cluster_view_synced 1"));
        assert!(text.contains("ippool_webhook_cluster_view_pools 3"));
        assert!(text.contains("ippool_webhook_cluster_view_blocks 12"));
    }

    #[test]
    fn exposes_each_pools_room_and_forgets_gone_pools() {
        let metrics = Metrics::new();
        let room = |pool: &str, claimable| PoolRoom {
            pool: pool.to_owned(),
            blocks_claimable: claimable,
            addresses_stranded: 7,
            nodes_at_block_limit: 2,
        };
        metrics.set_room(&[room("old", 2), room("new", 30)], 1, 0);
        metrics.set_room(&[room("new", 29)], 0, 1);
        let text = metrics.encode();
        assert!(
            text.contains(r#"ippool_webhook_pool_blocks_claimable{ippool="new"} 29"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ippool_webhook_pool_addresses_stranded{ippool="new"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ippool_webhook_pool_nodes_at_block_limit{ippool="new"} 2"#),
            "{text}"
        );
        assert!(!text.contains(r#"ippool="old""#), "{text}");
        assert!(
            text.contains("ippool_webhook_blocks_size_mismatch 0"),
            "{text}"
        );
        assert!(
            text.contains("ippool_webhook_blocks_without_pool 1"),
            "{text}"
        );
    }
}
