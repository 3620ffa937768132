//! What the planner reads: the cluster as plain data, read once before planning. Nothing here
//! talks to the API server; `migration::inventory` fills it in, tests build it in code.

use std::collections::BTreeMap;

use ippool_rules::context::ClusterCidrs;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt as _};
use serde::Deserialize;

use crate::api::PolicyVersion;
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
        let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty());
        if empty {
            return self.empty_selector_selects_all;
        }
        // A selector the API server accepted always converts; one that does not selects nothing,
        // as the disruption controller treats it.
        Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels))
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
            (_, Some(max)) => format!("maxUnavailable {}", int_or_string(max)),
            (Some(min), None) => format!("minAvailable {}", int_or_string(min)),
            (None, None) => "minAvailable 1 (default)".to_owned(),
        }
    }
}

/// How a percentage is turned into a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    Up,
    Down,
}

/// An int-or-percent value applied to `total`, rounded as Kubernetes does for the field in
/// question (surge and budgets round up, a rollout's maxUnavailable rounds down). An unparsable
/// percentage counts as 0, the value the API server would have refused.
pub fn scaled(value: &IntOrString, total: i32, rounding: Rounding) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let Some(percent) = s
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<i64>().ok())
            else {
                return s.trim().parse::<i32>().unwrap_or(0);
            };
            let product = percent * i64::from(total);
            let count = match rounding {
                Rounding::Up => (product + 99).div_euclid(100),
                Rounding::Down => product.div_euclid(100),
            };
            i32::try_from(count).unwrap_or(i32::MAX)
        }
    }
}

pub fn int_or_string(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
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
    fn percentages_round_as_kubernetes_does() {
        let quarter = IntOrString::String("25%".into());
        assert_eq!(scaled(&quarter, 10, Rounding::Up), 3);
        assert_eq!(scaled(&quarter, 10, Rounding::Down), 2);
        assert_eq!(scaled(&quarter, 1, Rounding::Up), 1);
        assert_eq!(scaled(&quarter, 1, Rounding::Down), 0);
        assert_eq!(scaled(&IntOrString::Int(2), 10, Rounding::Down), 2);
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
