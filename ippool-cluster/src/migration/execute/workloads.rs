//! The step that moves the planned workloads out of OLD: the watches the moves wait on, and the
//! lanes they run in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::TryStreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, ApiResource, DynamicObject};

use super::MigrateError;
use super::steps::{Migration, parse_net};
use crate::migration::events::Event;
use crate::migration::fault;
use crate::migration::mirror::Mirror;
use crate::migration::moves::pods::{name_key, pod_in, pod_keys};
use crate::migration::moves::{Mover, WorkloadMirrors};
use crate::migration::step::Step;
use ippool_ipam::plan::{MoveMethod, WorkloadMove};
use ippool_ipam::snapshot::OwnerKind;

impl Migration<'_> {
    pub(super) async fn move_workloads(&self) -> Result<(), MigrateError> {
        let plan = self.plan(Step::MoveWorkloads)?;
        let old = parse_net(&self.state.old_cidr)?;
        let new = parse_net(&self.state.to_cidr)?;
        let moving: Vec<&WorkloadMove> = plan
            .moves
            .iter()
            .filter(|m| m.method != MoveMethod::Skip)
            .collect();
        if moving.is_empty() {
            return Ok(());
        }
        let pods = Mirror::start(self.pods_api(), Self::config(), pod_keys, "pods");
        let workloads = self.workload_mirrors(&moving);
        let budgets = self.budget_mirror(&moving);
        self.synced(&pods).await?;
        for mirror in [&workloads.deployments].into_iter().flatten() {
            self.synced(mirror).await?;
        }
        for mirror in [&workloads.stateful_sets].into_iter().flatten() {
            self.synced(mirror).await?;
        }
        for mirror in [&workloads.daemon_sets].into_iter().flatten() {
            self.synced(mirror).await?;
        }
        if let Some(mirror) = &budgets {
            self.synced(mirror).await?;
        }
        let known_in_old = pods
            .all()
            .iter()
            .filter(|p| pod_in(p, &old).is_some())
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let mover = Mover::new(
            self.exec.client.clone(),
            self.exec.eviction_client.clone(),
            self.exec.apis.policy(),
            old,
            new,
            self.exec.options.timeout,
            self.exec.progress.clone(),
            pods,
            workloads,
            budgets,
            known_in_old,
        );
        self.move_in_lanes(&mover, &moving).await
    }

    /// Watches of the workload kinds the moves restart, and only of those.
    fn workload_mirrors(&self, moving: &[&WorkloadMove]) -> WorkloadMirrors {
        let restarts = |kind: OwnerKind| {
            moving
                .iter()
                .any(|m| m.method == MoveMethod::RolloutRestart && m.workload.kind == kind)
        };
        WorkloadMirrors {
            deployments: restarts(OwnerKind::Deployment).then(|| {
                Mirror::start(
                    self.workload_api::<Deployment>(),
                    Self::config(),
                    name_key,
                    "deployments",
                )
            }),
            stateful_sets: restarts(OwnerKind::StatefulSet).then(|| {
                Mirror::start(
                    self.workload_api::<StatefulSet>(),
                    Self::config(),
                    name_key,
                    "statefulsets",
                )
            }),
            daemon_sets: restarts(OwnerKind::DaemonSet).then(|| {
                Mirror::start(
                    self.workload_api::<DaemonSet>(),
                    Self::config(),
                    name_key,
                    "daemonsets",
                )
            }),
        }
    }

    /// A watch of the PodDisruptionBudgets (in the policy version served), when a move evicts.
    fn budget_mirror(&self, moving: &[&WorkloadMove]) -> Option<Mirror<DynamicObject>> {
        let evicts = moving.iter().any(|m| m.method == MoveMethod::Evict);
        match (evicts, self.exec.apis.policy()) {
            (true, Some(version)) => {
                let (group, v) = version
                    .api_version()
                    .split_once('/')
                    .unwrap_or(("policy", "v1"));
                let resource = ApiResource {
                    group: group.to_owned(),
                    version: v.to_owned(),
                    api_version: version.api_version().to_owned(),
                    kind: "PodDisruptionBudget".to_owned(),
                    plural: "poddisruptionbudgets".to_owned(),
                };
                let api: Api<DynamicObject> = match &self.state.namespace {
                    Some(ns) => Api::namespaced_with(self.exec.client.clone(), ns, &resource),
                    None => Api::all_with(self.exec.client.clone(), &resource),
                };
                Some(Mirror::start(
                    api,
                    Self::config(),
                    name_key,
                    "poddisruptionbudgets",
                ))
            }
            _ => None,
        }
    }

    /// Lanes run concurrently; the moves of one lane (they share a budget) one by one.
    async fn move_in_lanes(
        &self,
        mover: &Mover,
        moving: &[&WorkloadMove],
    ) -> Result<(), MigrateError> {
        let mut lanes: Vec<Vec<&WorkloadMove>> = Vec::new();
        let mut lane_of = BTreeMap::new();
        for m in moving {
            let index = *lane_of.entry(m.lane).or_insert_with(|| {
                lanes.push(Vec::new());
                lanes.len() - 1
            });
            lanes[index].push(m);
        }
        let total = moving.len();
        let done = AtomicUsize::new(0);
        let mid_move = format!("{}mid-move", self.prefix);
        futures::stream::iter(lanes.into_iter().map(Ok::<_, MigrateError>))
            .try_for_each_concurrent(self.exec.options.concurrency.max(1), |lane| {
                let done = &done;
                let mid_move = &mid_move;
                async move {
                    for m in lane {
                        mover.move_workload(m).await?;
                        let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
                        self.emit(Event::WorkloadDone {
                            workload: m.workload.to_string(),
                            workloads_done: finished,
                            workloads_total: total,
                            pods_moved: mover.pods_moved(),
                        });
                        if finished == 1 {
                            fault::at(mid_move);
                        }
                    }
                    Ok(())
                }
            })
            .await
    }
}
