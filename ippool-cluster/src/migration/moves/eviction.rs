//! Moving pods by eviction, one at a time: each Eviction is retried while a
//! PodDisruptionBudget refuses it (waiting on the budgets), and each evicted pod's replacement
//! must be ready before the next.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::time::Instant;

use super::pods::{pod_in, pod_is_ready, pod_key, workload_key};
use super::{MoveError, Mover};
use crate::migration::events::Event;
use crate::migration::mirror::ALL;
use crate::request_error::RequestError;
use ippool_ipam::plan::PolicyVersion;
use ippool_ipam::plan::{PodInOld, WorkloadMove};

/// Longest wait between eviction attempts while a budget refuses (a budget change wakes it sooner).
const EVICTION_RETRY_AT_MOST: Duration = Duration::from_secs(5);

impl Mover {
    pub(super) async fn evict_all(&self, m: &WorkloadMove) -> Result<(), MoveError> {
        for pod in &m.pods {
            self.evict_one(m, pod).await?;
        }
        self.inspect(&workload_key(&m.workload), &m.workload)
    }

    async fn evict_one(&self, m: &WorkloadMove, planned: &PodInOld) -> Result<(), MoveError> {
        let Some(live) = self.live_pod(m, planned) else {
            return Ok(());
        };
        if pod_in(&live, &self.old).is_none() {
            return Ok(());
        }
        let watched = self.watched(m, &live);
        let ready_before =
            self.ready_under(&watched.key, &watched.uid) + usize::from(pod_is_ready(&live));
        if !self.post_eviction(m, &live).await? {
            return Ok(());
        }
        self.progress.emit(Event::PodEvicted {
            pod: pod_key(&live),
        });
        self.await_replacement(m, &live, &watched, ready_before)
            .await
    }

    /// POSTs the Eviction until the API server accepts it (`true`) or the pod is gone
    /// (`false`); while a budget refuses, waits for the budget to change (at most a few seconds)
    /// and tries again, up to `--timeout`.
    async fn post_eviction(&self, m: &WorkloadMove, pod: &Pod) -> Result<bool, MoveError> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.eviction_client.clone(), &namespace);
        let version = self.policy.unwrap_or(PolicyVersion::V1).api_version();
        let body = json!({
            "apiVersion": version,
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        });
        let started = Instant::now();
        let mut said = String::new();
        loop {
            let answer = api
                .create_subresource::<_, serde_json::Value>(
                    "eviction",
                    &name,
                    &PostParams::default(),
                    &body,
                )
                .await;
            let status = match answer {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
                Err(kube::Error::Api(status)) if status.code == 429 => status,
                Err(e) => {
                    return Err(
                        RequestError::new(format!("evict pod {namespace}/{name}"), e).into(),
                    );
                }
            };
            let causes: Vec<String> = status
                .details
                .as_ref()
                .map(|d| d.causes.iter().map(|c| c.message.clone()).collect())
                .unwrap_or_default();
            let refusal = if causes.is_empty() {
                status.message.clone()
            } else {
                format!("{} ({})", status.message, causes.join("; "))
            };
            if refusal != said {
                self.progress.emit(Event::Waiting {
                    subject: format!("Pod {namespace}/{name}"),
                    reason: format!("eviction refused: {refusal}"),
                });
                said = refusal.clone();
            }
            let waited = started.elapsed();
            if waited >= self.timeout {
                return Err(MoveError::EvictionBlocked {
                    pod: format!("{namespace}/{name}"),
                    waited: waited.as_secs(),
                    refusal,
                    budgets: self.describe_budgets(m),
                });
            }
            let retry_after = status
                .details
                .as_ref()
                .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
                .filter(|d| !d.is_zero())
                .unwrap_or(EVICTION_RETRY_AT_MOST)
                .min(EVICTION_RETRY_AT_MOST)
                .min(self.timeout - waited);
            self.wait_for_budgets(m, retry_after).await;
        }
    }

    /// Waits until a budget changes so that one of the workload's budgets allows a disruption
    /// (any budget change when none was planned), or `at_most`.
    async fn wait_for_budgets(&self, m: &WorkloadMove, at_most: Duration) {
        let Some(budgets) = &self.budgets else {
            tokio::time::sleep(at_most).await;
            return;
        };
        let allows = || {
            m.budgets.is_empty()
                || m.budgets
                    .iter()
                    .flat_map(|k| budgets.get(&k.budget))
                    .any(|b| {
                        b.data
                            .pointer("/status/disruptionsAllowed")
                            .and_then(|v| v.as_i64())
                            .unwrap_or(0)
                            > 0
                    })
        };
        // Only a change after the refusal counts: the refusal may have come from a budget the
        // plan did not know, or from a status not yet updated.
        let mut changes = budgets.subscribe(ALL);
        changes.borrow_and_update();
        let _ = tokio::time::timeout(at_most, async {
            while changes.changed().await.is_ok() {
                if allows() {
                    return;
                }
            }
        })
        .await;
    }

    fn describe_budgets(&self, m: &WorkloadMove) -> String {
        let mut out = Vec::new();
        for planned in &m.budgets {
            let live = self
                .budgets
                .as_ref()
                .and_then(|b| b.get(&planned.budget).into_iter().next());
            let now = live.map_or_else(String::new, |b| {
                let status = |f: &str| {
                    b.data
                        .pointer(&format!("/status/{f}"))
                        .and_then(|v| v.as_i64())
                        .unwrap_or(0)
                };
                format!(
                    ": {} of {} pods healthy, {} needed, {} disruption(s) allowed now",
                    status("currentHealthy"),
                    status("expectedPods"),
                    status("desiredHealthy"),
                    status("disruptionsAllowed")
                )
            });
            out.push(format!(
                "PodDisruptionBudget {} ({}){now}",
                planned.budget, planned.spec
            ));
        }
        if out.is_empty() {
            String::new()
        } else {
            format!("Blocking: {}. ", out.join("; "))
        }
    }
}
