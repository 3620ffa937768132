//! Prometheus metrics: requests by operation and verdict, request latency, and the state of the
//! watch-fed cluster view that verdicts depend on.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
        Metrics {
            registry,
            requests,
            duration,
            view_synced,
            view_pools,
            view_blocks,
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
}
