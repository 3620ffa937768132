//! What the planner reads: the cluster as plain data, read once before planning. Nothing here
//! talks to the API server; `migration::inventory` fills it in, tests build it in code.

use std::collections::BTreeMap;

use ippool_rules::context::ClusterCidrs;
use serde::Deserialize;

use super::objects::{
    DaemonSet, Deployment, IntOrString, LabelSelector, Rounding, StatefulSet, scaled,
};
use crate::snapshot::Snapshot;

/// The API server's version, as far as the planner cares (which rollout features it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    /// From `/version`'s `major`/`minor`, which some distributions suffix (`"20+"`).
    pub fn parse(major: &str, minor: &str) -> Option<ServerVersion> {
        let digits = |s: &str| {
            s.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse::<u32>()
                .ok()
        };
        Some(ServerVersion {
            major: digits(major)?,
            minor: digits(minor)?,
        })
    }

    /// DaemonSet `maxSurge` is honoured from Kubernetes 1.22 (beta, on by default); older servers
    /// drop the field and replace each node's pod in place.
    pub fn surges_daemon_sets(self) -> bool {
        self >= ServerVersion {
            major: 1,
            minor: 22,
        }
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The PodDisruptionBudget API the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    /// `policy/v1` (Kubernetes 1.21+).
    V1,
    /// `policy/v1beta1` (Kubernetes up to 1.24; the only one on 1.20).
    V1Beta1,
}

impl PolicyVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            PolicyVersion::V1 => "policy/v1",
            PolicyVersion::V1Beta1 => "policy/v1beta1",
        }
    }
}

/// A PodDisruptionBudget in either policy version (`policy/v1beta1` has no Rust types, and the
/// fields read here are the same in both).
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub namespace: String,
    pub name: String,
    pub selector: Option<LabelSelector>,
    /// `policy/v1`: an empty selector selects every pod of the namespace; `policy/v1beta1`: none.
    pub empty_selector_selects_all: bool,
    pub min_available: Option<IntOrString>,
    pub max_unavailable: Option<IntOrString>,
    pub disruptions_allowed: i32,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BudgetObject {
    metadata: BudgetMeta,
    #[serde(default)]
    spec: BudgetSpec,
    #[serde(default)]
    status: BudgetStatus,
}

#[derive(Deserialize, Default)]
struct BudgetMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct BudgetSpec {
    selector: Option<LabelSelector>,
    min_available: Option<IntOrString>,
    max_unavailable: Option<IntOrString>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct BudgetStatus {
    #[serde(default)]
    disruptions_allowed: i32,
    #[serde(default)]
    current_healthy: i32,
    #[serde(default)]
    desired_healthy: i32,
    #[serde(default)]
    expected_pods: i32,
}

impl Budget {
    /// Reads a PodDisruptionBudget object as served in `version`.
    pub fn from_json(
        value: serde_json::Value,
        version: PolicyVersion,
    ) -> Result<Budget, serde_json::Error> {
        let object: BudgetObject = serde_json::from_value(value)?;
        Ok(Budget {
            namespace: object.metadata.namespace,
            name: object.metadata.name,
            selector: object.spec.selector,
            empty_selector_selects_all: version == PolicyVersion::V1,
            min_available: object.spec.min_available,
            max_unavailable: object.spec.max_unavailable,
            disruptions_allowed: object.status.disruptions_allowed,
            current_healthy: object.status.current_healthy,
            desired_healthy: object.status.desired_healthy,
            expected_pods: object.status.expected_pods,
        })
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether this budget covers a pod with these labels in `namespace`.
    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        if namespace != self.namespace {
            return false;
        }
        let Some(selector) = &self.selector else {
            return false;
        };
        if selector.is_empty() {
            return self.empty_selector_selects_all;
        }
        selector.matches(labels)
    }

    /// How many of `pods` covered pods may be down at once by this budget's spec, when all are
    /// healthy: the number the disruption controller allows once the workload is settled.
    pub fn allowed_when_healthy(&self, pods: i32) -> i32 {
        if let Some(max) = &self.max_unavailable {
            return scaled(max, pods, Rounding::Up).max(0);
        }
        if let Some(min) = &self.min_available {
            return (pods - scaled(min, pods, Rounding::Up)).max(0);
        }
        // Neither set: the API server defaults minAvailable to 1 (v1beta1 and v1 alike).
        (pods - 1).max(0)
    }

    /// The spec as people write it, for messages ("minAvailable 3", "maxUnavailable 25%").
    pub fn describe_spec(&self) -> String {
        match (&self.min_available, &self.max_unavailable) {
            (_, Some(max)) => format!("maxUnavailable {}", max),
            (Some(min), None) => format!("minAvailable {}", min),
            (None, None) => "minAvailable 1 (default)".to_owned(),
        }
    }
}

/// The workload controllers whose strategies decide how their pods move.
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
}

/// The cluster as the planner sees it.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Pools, blocks, affinities, pods (those in scope), nodes and namespaces.
    pub snapshot: Snapshot,
    pub workloads: Workloads,
    pub budgets: Vec<Budget>,
    pub cluster_cidrs: Option<ClusterCidrs>,
    pub server: ServerVersion,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_versions_with_suffixes() {
        let v = ServerVersion::parse("1", "20+").unwrap();
        assert_eq!(
            v,
            ServerVersion {
                major: 1,
                minor: 20
            }
        );
        assert!(!v.surges_daemon_sets());
        assert!(
            ServerVersion::parse("1", "22")
                .unwrap()
                .surges_daemon_sets()
        );
        assert_eq!(ServerVersion::parse("x", "1"), None);
    }

    #[test]
    fn budgets_of_either_version() {
        let object = json!({
            "apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"minAvailable": "100%", "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 3, "desiredHealthy": 3, "expectedPods": 3}
        });
        let budget = Budget::from_json(object, PolicyVersion::V1Beta1).unwrap();
        assert_eq!(budget.key(), "shop/web");
        assert_eq!(budget.allowed_when_healthy(3), 0);
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        assert!(budget.selects("shop", &labels));
        assert!(!budget.selects("other", &labels));
        assert_eq!(budget.describe_spec(), "minAvailable 100%");

        let empty = json!({"metadata": {"name": "all", "namespace": "shop"}, "spec": {"selector": {}, "maxUnavailable": 1}});
        let v1 = Budget::from_json(empty.clone(), PolicyVersion::V1).unwrap();
        let v1beta1 = Budget::from_json(empty, PolicyVersion::V1Beta1).unwrap();
        assert!(v1.selects("shop", &labels));
        assert!(!v1beta1.selects("shop", &labels));
        assert_eq!(v1.allowed_when_healthy(5), 1);
    }
}
