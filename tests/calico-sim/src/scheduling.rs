//! The scheduler's part: which pending pods to place, which of the sim's nodes a pod fits
//! (nodeName, nodeSelector, required node affinity including matchFields, taints and
//! tolerations, unschedulable nodes), spreading the rest evenly; binding through the `binding`
//! subresource as kube-scheduler does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    Binding, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, Pod, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use crate::cluster::{Cluster, NodeInfo};

const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Bindings in flight at once.
const CONCURRENT_BINDINGS: usize = 32;
/// Work items taken at once.
const SCHEDULING_BATCH: usize = 1024;
/// Back-off before retrying a binding that failed for an unexpected reason.
const BIND_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a pod waits for a scheduler (and this one is it).
pub fn wants_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && matches!(phase, None | Some("Pending"))
        && spec.scheduler_name.as_deref().unwrap_or(DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => match (
            value.and_then(number),
            values.first().and_then(|x| number(x)),
        ) {
            (Some(v), Some(bound)) if req.operator == "Gt" => v > bound,
            (Some(v), Some(bound)) => v < bound,
            _ => false,
        },
        _ => false,
    }
}

/// A required node-affinity term: every expression on labels and every field (only
/// `metadata.name` exists) must match; a term with neither matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(node.name.as_str());
            requirement_matches(r, value)
        })
}

fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        _ => {
            key == taint.key
                && toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

fn node_taints(node: &NodeInfo) -> Vec<Taint> {
    let mut taints = node.taints.clone();
    if node.unschedulable {
        taints.push(Taint {
            key: "node.kubernetes.io/unschedulable".to_owned(),
            effect: "NoSchedule".to_owned(),
            ..Taint::default()
        });
    }
    taints
}

/// Whether the pod may run on the node.
pub fn fits(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if let Some(name) = spec.node_name.as_deref()
        && !name.is_empty()
        && name != node.name
    {
        return false;
    }
    let selector: &BTreeMap<String, String> = match spec.node_selector.as_ref() {
        Some(s) => s,
        None => &BTreeMap::new(),
    };
    if selector.iter().any(|(k, v)| node.labels.get(k) != Some(v)) {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(required) = required
        && !required
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node))
    {
        return false;
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    node_taints(node)
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

/// The least loaded node the pod fits (ties go to the first by name).
pub fn choose<'a>(
    pod: &Pod,
    nodes: &'a [NodeInfo],
    load: impl Fn(&str) -> usize,
) -> Option<&'a NodeInfo> {
    nodes
        .iter()
        .filter(|n| fits(pod, n))
        .min_by_key(|n| (load(&n.name), n.name.clone()))
}

/// Pods (by UID) placed on each of the sim's nodes and not finished: what spreading counts.
#[derive(Default)]
pub struct Load {
    by_node: Mutex<HashMap<String, HashSet<String>>>,
}

impl Load {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.by_node.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn place(&self, node: &str, uid: &str) {
        let mut by_node = self.lock();
        for (name, pods) in by_node.iter_mut() {
            if name != node {
                pods.remove(uid);
            }
        }
        by_node
            .entry(node.to_owned())
            .or_default()
            .insert(uid.to_owned());
    }

    pub fn remove(&self, uid: &str) {
        for pods in self.lock().values_mut() {
            pods.remove(uid);
        }
    }

    pub fn count(&self, node: &str) -> usize {
        self.lock().get(node).map_or(0, HashSet::len)
    }
}

pub enum SchedulerWork {
    /// A pod that wants scheduling, as last seen.
    Pending(Box<Pod>),
    /// A pod that no longer wants scheduling (bound, deleted).
    Settled(String),
    /// The sim's nodes changed: pods that fit nowhere may fit now.
    NodesChanged,
    /// A binding failed for a reason other than the pod being bound or gone: try again.
    BindFailed(Box<Pod>),
}

/// Places pending pods on the sim's nodes, one decision at a time, bindings in parallel.
pub async fn run(
    client: Client,
    cluster: Arc<Cluster>,
    load: Arc<Load>,
    retry: mpsc::UnboundedSender<SchedulerWork>,
    mut work: mpsc::UnboundedReceiver<SchedulerWork>,
) {
    cluster.wait_synced().await;
    let bindings = Arc::new(Semaphore::new(CONCURRENT_BINDINGS));
    let mut unplaced: HashMap<String, Pod> = HashMap::new();
    let mut attempted: HashSet<String> = HashSet::new();
    let mut batch = Vec::new();
    // Work comes in bursts (a ReplicaSet creating pods); one look at the nodes serves a burst.
    while work.recv_many(&mut batch, SCHEDULING_BATCH).await > 0 {
        let mut candidates: Vec<Pod> = Vec::new();
        for item in batch.drain(..) {
            match item {
                SchedulerWork::Pending(pod) => candidates.push(*pod),
                SchedulerWork::Settled(uid) => {
                    unplaced.remove(&uid);
                    attempted.remove(&uid);
                }
                SchedulerWork::NodesChanged => candidates.extend(unplaced.drain().map(|(_, p)| p)),
                SchedulerWork::BindFailed(pod) => {
                    attempted.remove(pod.metadata.uid.as_deref().unwrap_or(""));
                    candidates.push(*pod);
                }
            }
        }
        let nodes = cluster.nodes();
        for pod in candidates {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if attempted.contains(&uid) {
                continue;
            }
            let Some(node) = choose(&pod, &nodes, |n| load.count(n)) else {
                debug!(pod = ?pod.metadata.name, "fits none of the sim's nodes");
                unplaced.insert(uid, pod);
                continue;
            };
            unplaced.remove(&uid);
            attempted.insert(uid.clone());
            load.place(&node.name, &uid);
            let (client, load, retry) = (client.clone(), load.clone(), retry.clone());
            let node = node.name.clone();
            let permit = bindings.clone().acquire_owned().await;
            tokio::spawn(async move {
                let _permit = permit;
                match bind(client, &pod, &node).await {
                    Bound::Yes => {}
                    Bound::Elsewhere => load.remove(&uid),
                    Bound::Failed => {
                        load.remove(&uid);
                        tokio::time::sleep(BIND_RETRY_DELAY).await;
                        // The receiver lives as long as the scheduler; a send fails only at exit.
                        let _ = retry.send(SchedulerWork::BindFailed(Box::new(pod)));
                    }
                }
            });
        }
    }
}

enum Bound {
    Yes,
    /// Bound to another node meanwhile, or deleted.
    Elsewhere,
    Failed,
}

/// POSTs the pod's binding.
async fn bind(client: Client, pod: &Pod, node: &str) -> Bound {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Node".to_owned()),
            name: Some(node.to_owned()),
            ..ObjectReference::default()
        },
    };
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    match pods
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => {
            debug!(pod = %name, node, "bound");
            Bound::Yes
        }
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
            Bound::Elsewhere
        }
        Err(e) => {
            warn!(pod = %name, node, error = %e, "binding failed; will retry");
            Bound::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: &[(&str, &str)], taints: serde_json::Value) -> NodeInfo {
        NodeInfo {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            taints: serde_json::from_value(taints).unwrap(),
            ..NodeInfo::default()
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c"}]);
        serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn node_selector_and_node_name() {
        let a = node("a", &[("disk", "ssd")], json!([]));
        let b = node("b", &[], json!([]));
        let p = pod(json!({"nodeSelector": {"disk": "ssd"}}));
        assert!(fits(&p, &a));
        assert!(!fits(&p, &b));
        let named = pod(json!({"nodeName": "b"}));
        assert!(fits(&named, &b));
        assert!(!fits(&named, &a));
    }

    #[test]
    fn required_affinity_with_match_fields_as_daemonsets_use() {
        let a = node("a", &[("zone", "1")], json!([]));
        let b = node("b", &[("zone", "2")], json!([]));
        let ds = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}),
        );
        assert!(!fits(&ds, &a));
        assert!(fits(&ds, &b));
        let zone = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["9"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["2"]},
                                      {"key": "zone", "operator": "Exists"}]}]}}}}),
        );
        assert!(fits(&zone, &a));
        assert!(!fits(&zone, &b));
        let gt = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["1"]}]}]}}}}),
        );
        assert!(!fits(&gt, &a));
        assert!(fits(&gt, &b));
        let empty_term = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{}]}}}}),
        );
        assert!(!fits(&empty_term, &a));
    }

    #[test]
    fn taints_need_tolerations() {
        let tainted = node(
            "t",
            &[],
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                   {"key": "soft", "effect": "PreferNoSchedule"}]),
        );
        assert!(!fits(&pod(json!({})), &tainted));
        assert!(fits(
            &pod(
                json!({"tolerations": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]})
            ),
            &tainted
        ));
        assert!(!fits(
            &pod(json!({"tolerations": [{"key": "dedicated", "value": "web"}]})),
            &tainted
        ));
        assert!(fits(
            &pod(json!({"tolerations": [{"operator": "Exists"}]})),
            &tainted
        ));
        let mut cordoned = node("c", &[], json!([]));
        cordoned.unschedulable = true;
        assert!(!fits(&pod(json!({})), &cordoned));
        assert!(fits(
            &pod(
                json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]})
            ),
            &cordoned
        ));
    }

    #[test]
    fn spreads_to_the_least_loaded() {
        let nodes = vec![node("a", &[], json!([])), node("b", &[], json!([]))];
        let load = Load::default();
        let p = pod(json!({}));
        assert_eq!(choose(&p, &nodes, |n| load.count(n)).unwrap().name, "a");
        load.place("a", "u1");
        assert_eq!(choose(&p, &nodes, |n| load.count(n)).unwrap().name, "b");
        load.place("b", "u1");
        assert_eq!(load.count("a"), 0, "a pod is counted on one node only");
        load.remove("u1");
        assert_eq!(load.count("b"), 0);
    }

    #[test]
    fn only_unbound_pending_pods_of_the_default_scheduler() {
        assert!(wants_scheduling(&pod(json!({}))));
        assert!(!wants_scheduling(&pod(json!({"nodeName": "a"}))));
        assert!(!wants_scheduling(&pod(json!({"schedulerName": "other"}))));
    }
}
