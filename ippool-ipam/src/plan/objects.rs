//! The fields of Kubernetes objects the planner reads — workload controllers' rollout strategies,
//! int-or-percent amounts, label selectors — decoded straight from the API's JSON, so the planner
//! needs no client library's types.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `metadata.name` and `metadata.namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl Meta {
    /// Whether this is the object `namespace/name`.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace.as_deref() == Some(namespace) && self.name.as_deref() == Some(name)
    }
}

/// A count or a percentage (`maxSurge`, `maxUnavailable`, `minAvailable`), as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl std::fmt::Display for IntOrString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrString::Int(n) => write!(f, "{n}"),
            IntOrString::String(s) => f.write_str(s),
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

/// A label selector (`matchLabels` and `matchExpressions`), as a PodDisruptionBudget carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub match_expressions: Option<Vec<LabelRequirement>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LabelRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

impl LabelSelector {
    /// Selects nothing and everything alike: no labels, no expressions.
    pub fn is_empty(&self) -> bool {
        self.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && self.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    }

    /// Whether `labels` satisfy every label and every expression. A requirement the API server
    /// would not have accepted (an unknown operator, `In` without values) selects nothing, as the
    /// disruption controller treats a selector that does not convert.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let by_label = self
            .match_labels
            .iter()
            .flatten()
            .all(|(key, value)| labels.get(key) == Some(value));
        by_label
            && self
                .match_expressions
                .iter()
                .flatten()
                .all(|requirement| requirement.matches(labels))
    }
}

impl LabelRequirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let values = self.values.as_deref().unwrap_or_default();
        let value = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => !values.is_empty() && value.is_some_and(|v| values.contains(v)),
            "NotIn" => !values.is_empty() && value.is_none_or(|v| !values.contains(v)),
            "Exists" => values.is_empty() && value.is_some(),
            "DoesNotExist" => values.is_empty() && value.is_none(),
            _ => false,
        }
    }
}

/// A rollout strategy: a Deployment's `strategy`, a StatefulSet's or DaemonSet's
/// `updateStrategy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdate {
    #[serde(default)]
    pub max_surge: Option<IntOrString>,
    #[serde(default)]
    pub max_unavailable: Option<IntOrString>,
    /// StatefulSets only.
    #[serde(default)]
    pub partition: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Deployment {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: Option<DeploymentSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DeploymentSpec {
    #[serde(default)]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub paused: Option<bool>,
    #[serde(default)]
    pub strategy: Option<UpdateStrategy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StatefulSet {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: Option<StatefulSetSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpec {
    #[serde(default)]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub update_strategy: Option<UpdateStrategy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DaemonSet {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: Option<DaemonSetSpec>,
    #[serde(default)]
    pub status: Option<DaemonSetStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetSpec {
    #[serde(default)]
    pub update_strategy: Option<UpdateStrategy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    #[serde(default)]
    pub desired_number_scheduled: i32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn percentages_round_as_kubernetes_does() {
        let quarter = IntOrString::String("25%".into());
        assert_eq!(scaled(&quarter, 10, Rounding::Up), 3);
        assert_eq!(scaled(&quarter, 10, Rounding::Down), 2);
        assert_eq!(scaled(&quarter, 1, Rounding::Up), 1);
        assert_eq!(scaled(&quarter, 1, Rounding::Down), 0);
        assert_eq!(scaled(&IntOrString::Int(2), 10, Rounding::Down), 2);
        assert_eq!(
            scaled(&IntOrString::String("x%".into()), 10, Rounding::Up),
            0
        );
    }

    #[test]
    fn amounts_read_as_numbers_or_text() {
        let rolling: RollingUpdate =
            serde_json::from_value(json!({"maxSurge": 1, "maxUnavailable": "25%"})).unwrap();
        assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
        assert_eq!(rolling.max_unavailable.unwrap().to_string(), "25%");
    }

    #[test]
    fn selectors_match_as_the_api_server_defines_them() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        // (selector, matches the web pod's labels)
        let cases = [
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
                false,
            ),
            (
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
                false,
            ),
            // Not valid: selects nothing.
            (
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Matches", "values": ["web"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["web"]}]}),
                false,
            ),
        ];
        for (selector, expected) in cases {
            let parsed: LabelSelector = serde_json::from_value(selector.clone()).unwrap();
            assert_eq!(parsed.matches(&web), expected, "{selector}");
        }
        assert!(LabelSelector::default().is_empty());
    }

    #[test]
    fn controllers_read_the_fields_of_their_rollouts() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "managedFields": []},
            "spec": {"replicas": 3, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%"}},
                     "template": {"spec": {"containers": []}}}
        }))
        .unwrap();
        assert!(d.metadata.is("shop", "web"));
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.strategy.unwrap().rolling_update.unwrap().max_surge,
            Some(IntOrString::String("50%".into()))
        );
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ops"},
            "spec": {"updateStrategy": {"type": "OnDelete"}},
            "status": {"desiredNumberScheduled": 4, "numberReady": 4}
        }))
        .unwrap();
        assert_eq!(ds.status.unwrap().desired_number_scheduled, 4);
    }
}
