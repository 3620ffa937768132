//! Running a migration or resize in the cluster (`--in-cluster`): a Job in the state namespace
//! that runs the plugin's own command with `--yes`, under a ServiceAccount of its own bound to
//! exactly the permissions a run uses. The run keeps its record in the Lease as any run does, so
//! a pod killed mid-move is replaced by the Job and the next pod resumes; `status --follow` shows
//! it from anywhere and `--abort` deletes the Job before it undoes the migration.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

use ippool_ipam::plan::{MoveMethod, Plan};
use ippool_ipam::snapshot::OwnerKind;
use ippool_rules::model::ApiGroup;

use crate::api::ServedApis;
use crate::request_error::RequestError;
use crate::resources::{CRD_GROUP, V3_GROUP};

/// The Job's name, and its ServiceAccount's, Roles' and bindings' (one migration at a time).
pub const JOB_NAME: &str = "ippool-migration";
const MANAGER: &str = "kubectl-ippool";
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// What to run in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    /// The state namespace: the Job, its ServiceAccount and the Lease live there.
    pub namespace: String,
    /// An image whose entrypoint is kubectl-ippool (`kubectl-ippool/Containerfile`).
    pub image: String,
    /// The command's arguments, e.g. `["migrate", "--from", "a", …, "--yes"]`.
    pub args: Vec<String>,
    /// Extra labels on the Job's pods.
    pub pod_labels: BTreeMap<String, String>,
    /// What the run will do: its RBAC.
    pub needs: Needs,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(
        "Job {namespace}/{JOB_NAME} is still running a migration; follow it with `kubectl ippool \
         status --follow`, or stop it with `kubectl ippool migrate --abort`"
    )]
    Running { namespace: String },
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// What a run will do, from its plan: the permissions follow from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    pub apis: ServedApis,
    /// It creates a pool (NEW with `--cidr`; a resize's temporary pool and the re-created one).
    pub creates_pool: bool,
    /// It releases OLD's blocks and deletes OLD (not with `--keep-old-pool`, `-n` or `-l`).
    pub deletes_pool: bool,
    /// The kinds (plural resource names) whose pods move by a rollout restart.
    pub rollouts: BTreeSet<&'static str>,
    /// Pods move through the eviction API.
    pub evicts: bool,
    /// Bare pods are deleted.
    pub deletes_pods: bool,
}

impl Needs {
    /// The needs of a run that creates and deletes pools as said, and moves the workloads of
    /// `plan` (none when it got past moving them).
    pub fn new(
        apis: ServedApis,
        plan: Option<&Plan>,
        creates_pool: bool,
        deletes_pool: bool,
    ) -> Needs {
        let mut needs = Needs {
            apis,
            creates_pool,
            deletes_pool,
            rollouts: BTreeSet::new(),
            evicts: false,
            deletes_pods: false,
        };
        for m in plan.iter().flat_map(|p| &p.moves) {
            match m.method {
                MoveMethod::RolloutRestart => {
                    needs.rollouts.extend(match m.workload.kind {
                        OwnerKind::Deployment => Some("deployments"),
                        OwnerKind::StatefulSet => Some("statefulsets"),
                        OwnerKind::DaemonSet => Some("daemonsets"),
                        _ => None,
                    });
                }
                MoveMethod::Evict => needs.evicts = true,
                MoveMethod::Delete => needs.deletes_pods = true,
                MoveMethod::Skip => {}
            }
        }
        needs
    }
}

fn group_name(group: ApiGroup) -> &'static str {
    match group {
        ApiGroup::CrdV1 => CRD_GROUP,
        ApiGroup::V3 => V3_GROUP,
    }
}

/// Cluster-wide, exactly what a run with `needs` asks the API server for: Calico's pools and
/// IPAM objects in the groups this cluster serves them in, the pods and controllers it reads,
/// restarts, evicts or deletes, the budgets it respects, and nodes and namespaces.
pub fn cluster_rules(needs: &Needs) -> Vec<PolicyRule> {
    let pools = group_name(needs.apis.pool_group());
    let ipam = group_name(needs.apis.ipam_group());
    let mut pool_verbs = vec!["get", "list", "patch"];
    if needs.creates_pool {
        pool_verbs.push("create");
    }
    if needs.deletes_pool {
        pool_verbs.push("delete");
    }
    let mut rules = vec![rule(&[pools], &["ippools"], &pool_verbs)];
    if needs.deletes_pool {
        rules.push(rule(
            &[ipam],
            &["ipamblocks"],
            &["get", "list", "watch", "delete"],
        ));
        rules.push(rule(
            &[ipam],
            &["blockaffinities"],
            &["get", "list", "patch", "delete"],
        ));
    } else {
        rules.push(rule(&[ipam], &["ipamblocks"], &["get", "list", "watch"]));
    }
    rules.push(rule(&[""], &["namespaces", "nodes"], &["list"]));
    let mut pod_verbs = vec!["list", "watch"];
    if needs.deletes_pods {
        pod_verbs.push("delete");
    }
    rules.push(rule(&[""], &["pods"], &pod_verbs));
    if needs.evicts {
        rules.push(rule(&[""], &["pods/eviction"], &["create"]));
    }
    rules.push(rule(
        &["apps"],
        &["daemonsets", "deployments", "replicasets", "statefulsets"],
        &["list"],
    ));
    if !needs.rollouts.is_empty() {
        let kinds: Vec<&str> = needs.rollouts.iter().copied().collect();
        rules.push(rule(&["apps"], &kinds, &["patch", "watch"]));
    }
    rules.push(rule(&["policy"], &["poddisruptionbudgets"], &["list"]));
    rules
}

/// In the state namespace only: the Lease that is the lock and the record.
pub fn namespace_rules() -> Vec<PolicyRule> {
    vec![rule(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "create", "update", "delete"],
    )]
}

fn labels(component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "kubectl-ippool",
        "app.kubernetes.io/managed-by": MANAGER,
        COMPONENT_LABEL: component,
    })
}

/// The objects, in the order they are applied: ServiceAccount, ClusterRole and its binding, Role
/// and its binding, then the Job.
pub fn objects(request: &JobRequest) -> Vec<Value> {
    let ns = request.namespace.as_str();
    let meta = |namespaced: bool| {
        let mut meta = json!({"name": JOB_NAME, "labels": labels("migration")});
        if namespaced {
            meta["namespace"] = json!(ns);
        }
        meta
    };
    let subjects = json!([{"kind": "ServiceAccount", "name": JOB_NAME, "namespace": ns}]);
    let mut pod_labels = labels("migration");
    for (key, value) in &request.pod_labels {
        pod_labels[key.as_str()] = json!(value);
    }
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(true)}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": meta(false), "rules": cluster_rules(&request.needs)}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": meta(false), "subjects": subjects,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": JOB_NAME}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": meta(true), "rules": namespace_rules()}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": meta(true), "subjects": subjects,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": JOB_NAME}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta(true), "spec": {
            // A killed pod is replaced and the next resumes from the record; a run that fails
            // for good (a blocker, a timeout) fails the same way each time, so a few tries do.
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 86_400,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": JOB_NAME,
                    "restartPolicy": "Never",
                    // On the host's network the pod holds no address from any pool, so the
                    // migration never has itself to move (and cannot strand itself).
                    "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "containers": [{
                        "name": "migrate",
                        "image": request.image,
                        "args": request.args,
                        "securityContext": {
                            "runAsNonRoot": true,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}
                        },
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"memory": "512Mi"}}
                    }]
                }
            }
        }}),
    ]
}

fn api_of(client: &Client, object: &Value) -> (Api<DynamicObject>, String) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        _ => "jobs",
    };
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    (api, format!("{kind} {JOB_NAME}"))
}

fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

/// Starts the Job (a finished one of an earlier run is replaced; a running one is refused).
pub async fn start(client: &Client, request: &JobRequest) -> Result<(), JobError> {
    let ns = request.namespace.as_str();
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let existing = jobs
        .get_opt(JOB_NAME)
        .await
        .map_err(|e| RequestError::new(format!("read Job {ns}/{JOB_NAME}"), e))?;
    match existing {
        Some(job) if !finished(&job) => {
            return Err(JobError::Running {
                namespace: ns.to_owned(),
            });
        }
        Some(_) => {
            delete(client, ns).await?;
        }
        None => {}
    }
    let params = PatchParams::apply(MANAGER).force();
    for object in objects(request) {
        let (api, what) = api_of(client, &object);
        api.patch(JOB_NAME, &params, &Patch::Apply(&object))
            .await
            .map_err(|e| RequestError::new(format!("apply {what}"), e))?;
    }
    Ok(())
}

/// Deletes the migration's Job and waits, up to `timeout`, until it and its pods are gone, so that
/// nothing of the run is left to write; returns whether there was one.
pub async fn stop(
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> Result<bool, RequestError> {
    if !delete(client, namespace).await? {
        return Ok(false);
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let gone = await_condition(jobs, JOB_NAME, |job: Option<&Job>| job.is_none());
    match tokio::time::timeout(timeout, gone).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(RequestError::new(
            format!("watch Job {namespace}/{JOB_NAME} go"),
            kube::Error::Service(Box::new(e)),
        )),
        Err(_) => Err(RequestError::new(
            format!("wait for Job {namespace}/{JOB_NAME} and its pods to go"),
            kube::Error::Service(format!("still there after {timeout:?}").into()),
        )),
    }
}

/// Deletes the migration's Job and its pods, if there is one; returns whether there was.
pub async fn delete(client: &Client, namespace: &str) -> Result<bool, RequestError> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..DeleteParams::default()
    };
    match jobs.delete(JOB_NAME, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(e) => Err(RequestError::new(
            format!("delete Job {namespace}/{JOB_NAME}"),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_runs_the_command_under_its_own_account() {
        let request = JobRequest {
            namespace: "kube-system".to_owned(),
            image: "registry.example/kubectl-ippool:1".to_owned(),
            args: vec!["migrate".to_owned(), "--yes".to_owned()],
            pod_labels: BTreeMap::from([("team".to_owned(), "net".to_owned())]),
            needs: Needs {
                apis: ServedApis::new(crate::api::Serving::Crds, None),
                creates_pool: true,
                deletes_pool: true,
                rollouts: BTreeSet::from(["deployments"]),
                evicts: false,
                deletes_pods: false,
            },
        };
        let objects = objects(&request);
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Job"
            ]
        );
        let job = &objects[5];
        let pod = &job["spec"]["template"];
        assert_eq!(pod["spec"]["serviceAccountName"], JOB_NAME);
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["spec"]["hostNetwork"], true);
        assert_eq!(pod["metadata"]["labels"]["team"], "net");
        let container = &pod["spec"]["containers"][0];
        assert_eq!(container["image"], "registry.example/kubectl-ippool:1");
        assert_eq!(container["args"], json!(["migrate", "--yes"]));
        assert_eq!(objects[2]["subjects"][0]["namespace"], "kube-system");
        // The Lease is the only namespaced permission, and nothing may read Secrets.
        assert_eq!(objects[3]["rules"][0]["resources"], json!(["leases"]));
        let text = serde_json::to_string(&objects).unwrap();
        assert!(!text.contains("secrets"), "{text}");
    }
}
