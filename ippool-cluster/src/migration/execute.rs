//! The executor: a plan carried out as ordered steps — create/verify NEW → disable OLD → move
//! workloads → verify → release OLD → delete OLD — each checked before the next, each recorded in
//! the migration's Lease when done, each safe to run again. A run that is interrupted is
//! continued by running the same command: the record says which steps are done, and the cluster
//! says what is left (pods still in OLD are planned again).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::TryStreamExt as _;
use ipnet::IpNet;
use ippool_rules::cidr;
use ippool_rules::context::ClusterCidrs;
use ippool_rules::model::{IpPool, IpamBlock};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::time::Instant;

use super::events::{Event, Progress};
use super::fault;
use super::inventory::{self, InventoryError};
use super::mirror::{ALL, Mirror};
use super::moves::{MoveError, Mover, WorkloadMirrors, name_key, pod_in, pod_keys, pods_left};
use super::record::{self, Held, Job, MigrateRecord, Record, RecordError};
use super::step::Step;
use crate::api::{CalicoKind, ServedApis};
use crate::index::{AllocationUse, allocations_of};
use crate::plan::{self, Intent, MoveMethod, Plan, PlanError, TargetAction, WorkloadMove};
use crate::pool_delete::{DeleteError, DeleteRefusal, assess, delete_pool};
use crate::pool_write::{Decision, PoolWriteError, update_pool};
use crate::release::{ReleaseError, ReleaseStep, Released, release_block, release_stale_affinity};
use crate::request_error::RequestError;
use crate::resources::from_dynamic;
use crate::rest::CalicoClient;
use crate::snapshot::{OwnerKind, Parts, Snapshot};

/// What the release and delete steps read.
const RELEASE_PARTS: Parts = Parts {
    pools: true,
    blocks: true,
    affinities: true,
    handles: false,
    pods: true,
    nodes: true,
    namespaces: false,
};

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Workloads moved at once.
    pub concurrency: usize,
    /// Longest wait for any one thing (a rollout, an eviction, tunnel addresses).
    pub timeout: Duration,
    /// Where the Lease lives.
    pub state_namespace: String,
}

/// Everything a run needs to talk to the cluster and report.
#[derive(Clone)]
pub struct Executor {
    pub client: Client,
    /// `default_retry = false`, for evictions (a budget's 429 must come back at once).
    pub eviction_client: Client,
    pub apis: ServedApis,
    pub progress: Arc<dyn Progress>,
    pub options: Options,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Move(#[from] MoveError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Delete(#[from] DeleteError),
    #[error("the plan has {0} blocker(s); nothing was changed")]
    Blocked(usize),
    #[error(
        "migration {id} is in progress with {field} {recorded}, but this command asks for {asked}; \
         run it as it was started, or `kubectl ippool migrate --abort` it first"
    )]
    Mismatch {
        id: String,
        field: &'static str,
        recorded: String,
        asked: String,
    },
    #[error("pool {name:?} {problem}; the migration stopped before moving anything")]
    NewPoolUnusable { name: String, problem: String },
    #[error(
        "pool {name:?} no longer exists although the migration still needs it; `kubectl ippool \
         migrate --abort` ends the migration"
    )]
    PoolGone { name: String },
    #[error(
        "{count} pod(s) still hold addresses in {old} after {waited}s: {pods}; move them (or wait \
         for them to finish), then run the command again"
    )]
    PodsRemain {
        old: IpNet,
        count: usize,
        waited: u64,
        pods: String,
    },
    #[error(
        "the tunnel address of node(s) {nodes} is still in {old} after {waited}s: calico-node moves \
         it once the old pool is disabled and an enabled pool has the same encapsulation; check \
         calico-node on those nodes, then run the command again"
    )]
    TunnelsRemain {
        old: IpNet,
        nodes: String,
        waited: u64,
    },
    #[error("the old pool cannot be deleted yet: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Refused(Vec<DeleteRefusal>),
    #[error(
        "block {block} of the old pool still holds {allocations} allocation(s); the pool is never \
         deleted while an address in it is allocated. Run the command again once it is empty"
    )]
    AllocationsRemain { block: String, allocations: usize },
    #[error("no migration is in progress (no Lease {namespace}/{lease})", lease = record::LEASE_NAME)]
    NothingToAbort { namespace: String },
    #[error("{0}")]
    Watch(String),
}

impl From<PoolWriteError<Infallible>> for MigrateError {
    fn from(e: PoolWriteError<Infallible>) -> MigrateError {
        match e {
            PoolWriteError::NotFound { name } => MigrateError::PoolGone { name },
            PoolWriteError::Request(e) => MigrateError::Request(e),
            PoolWriteError::Contended { name } => MigrateError::Request(RequestError::new(
                format!("update IP pool {name:?}"),
                kube::Error::Api(
                    kube::core::Status::failure(
                        "the pool kept changing while being updated",
                        "Conflict",
                    )
                    .with_code(409)
                    .boxed(),
                ),
            )),
            PoolWriteError::Refused(never) => match never {},
        }
    }
}

/// Where a migration's progress lives in the record: the record itself, or the migration a
/// resize is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Migrate,
    InResize,
}

impl Slot {
    pub fn get(self, record: &Record) -> Option<&MigrateRecord> {
        match (self, &record.job) {
            (Slot::Migrate, Job::Migrate(m)) => Some(m),
            (Slot::InResize, Job::Resize(r)) => r.migration.as_ref(),
            _ => None,
        }
    }

    fn get_mut(self, record: &mut Record) -> Option<&mut MigrateRecord> {
        match (self, &mut record.job) {
            (Slot::Migrate, Job::Migrate(m)) => Some(m),
            (Slot::InResize, Job::Resize(r)) => r.migration.as_mut(),
            _ => None,
        }
    }
}

/// A migration ready to run: its plan (unless an earlier run got past moving workloads) and the
/// record to start from.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub plan: Option<Plan>,
    /// An earlier, interrupted run of this migration.
    pub resumed: bool,
    pub record: MigrateRecord,
}

fn check_same(
    id: &str,
    field: &'static str,
    recorded: &Option<String>,
    asked: &Option<String>,
) -> Result<(), MigrateError> {
    if recorded != asked {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
        return Err(MigrateError::Mismatch {
            id: id.to_owned(),
            field,
            recorded: show(recorded),
            asked: show(asked),
        });
    }
    Ok(())
}

/// Reads the record and the cluster and plans. A lock held by another migration is an error
/// (with `dry_run`, a warning: nothing will be written).
pub async fn prepare(
    exec: &Executor,
    intent: &Intent,
    cluster_cidrs: Option<ClusterCidrs>,
    dry_run: bool,
) -> Result<Prepared, MigrateError> {
    let id = record::migrate_id(&intent.from, &intent.to);
    let found = record::read(&exec.client, &exec.options.state_namespace).await?;
    let mut earlier = None;
    if let Some(found) = found {
        match Slot::Migrate.get(&found.record) {
            Some(m) if found.record.id == id => earlier = Some(m.clone()),
            _ => {
                let locked = RecordError::Locked {
                    namespace: exec.options.state_namespace.clone(),
                    holder: found.record.id.clone(),
                    summary: found.record.summary(),
                };
                if !dry_run {
                    return Err(locked.into());
                }
                exec.progress.emit(Event::Warning {
                    message: locked.to_string(),
                });
            }
        }
    }
    if let Some(m) = &earlier {
        check_same(
            &id,
            "--cidr",
            &m.new_cidr,
            &intent.new_cidr.map(|c| c.to_string()),
        )?;
        check_same(&id, "-n", &m.namespace, &intent.scope.namespace)?;
        check_same(&id, "--selector", &m.selector, &intent.scope.selector)?;
        if m.is_done(Step::MoveWorkloads) {
            return Ok(Prepared {
                id,
                plan: None,
                resumed: true,
                record: m.clone(),
            });
        }
    }
    let plan = plan_now(exec, intent, cluster_cidrs).await?;
    let record = match earlier {
        Some(m) => m,
        None => MigrateRecord {
            from: intent.from.clone(),
            to: intent.to.clone(),
            new_cidr: intent.new_cidr.map(|c| c.to_string()),
            old_cidr: plan.from.cidr.to_string(),
            to_cidr: plan.to.cidr.to_string(),
            old_was_enabled: plan.from.enabled,
            keep_old_pool: plan.keep_old_pool.is_some(),
            namespace: intent.scope.namespace.clone(),
            selector: intent.scope.selector.clone(),
            done: Vec::new(),
        },
    };
    Ok(Prepared {
        id,
        resumed: !record.done.is_empty(),
        plan: Some(plan),
        record,
    })
}

/// Reads the cluster and plans (the plan event is emitted).
pub async fn plan_now(
    exec: &Executor,
    intent: &Intent,
    cluster_cidrs: Option<ClusterCidrs>,
) -> Result<Plan, MigrateError> {
    let mut intent = intent.clone();
    let inventory =
        inventory::load(&exec.client, &exec.apis, cluster_cidrs, &mut intent.scope).await?;
    plan_from(exec, &inventory, &intent)
}

/// Plans from what was read (the plan event is emitted).
pub fn plan_from(
    exec: &Executor,
    inventory: &plan::Inventory,
    intent: &Intent,
) -> Result<Plan, MigrateError> {
    let plan = plan::plan(inventory, intent)?;
    exec.progress.emit(Event::Plan {
        plan: serde_json::to_value(&plan).unwrap_or_default(),
    });
    Ok(plan)
}

/// Takes the lock and runs the migration to its end, releasing the lock when done.
pub async fn execute(exec: &Executor, prepared: Prepared) -> Result<(), MigrateError> {
    if let Some(plan) = &prepared.plan
        && plan.is_blocked()
    {
        return Err(MigrateError::Blocked(plan.blockers.len()));
    }
    let fresh = Record::new(prepared.id.clone(), Job::Migrate(prepared.record.clone()));
    let acquired = record::acquire(&exec.client, &exec.options.state_namespace, fresh).await?;
    let state = Slot::Migrate
        .get(&acquired.record)
        .cloned()
        .unwrap_or(prepared.record);
    exec.progress.emit(Event::Locked {
        id: prepared.id.clone(),
        resumed: acquired.resumed,
        done: state.done.iter().map(|s| s.to_string()).collect(),
    });
    let held = acquired.held;
    let migration = Migration {
        exec,
        held: &held,
        slot: Slot::Migrate,
        prefix: "",
        state,
        plan: prepared.plan.as_ref(),
    };
    with_renewal::<_, MigrateError>(&held, migration.run()).await?;
    fault::at("unlock");
    held.release().await?;
    Ok(())
}

/// Runs `work` while the lease is renewed; a lost lock stops it.
pub async fn with_renewal<T, E: From<MigrateError>>(
    held: &Held,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let mut renewal = held.keep_renewed();
    let result = tokio::select! {
        result = work => result,
        lost = &mut renewal => Err(E::from(match lost {
            Ok(e) => e.into(),
            Err(e) => MigrateError::Watch(format!("the lock renewal task failed: {e}")),
        })),
    };
    renewal.abort();
    result
}

/// One migration's steps, with where its progress is recorded.
pub struct Migration<'a> {
    pub exec: &'a Executor,
    pub held: &'a Held,
    pub slot: Slot,
    /// Prefix of fault points and step names in events (`to-temp/`, `back/` in a resize).
    pub prefix: &'a str,
    pub state: MigrateRecord,
    pub plan: Option<&'a Plan>,
}

fn parse_net(text: &str) -> Result<IpNet, MigrateError> {
    cidr::parse_lenient(text)
        .map(|n| cidr::canonical(&n))
        .map_err(|e| {
            MigrateError::Watch(format!("the record holds an unreadable CIDR {text:?}: {e}"))
        })
}

impl Migration<'_> {
    fn calico(&self) -> CalicoClient {
        CalicoClient::new(self.exec.client.clone(), self.exec.apis)
    }

    fn emit(&self, event: Event) {
        self.exec.progress.emit(event);
    }

    fn plan(&self, step: Step) -> Result<&Plan, MigrateError> {
        // Steps up to moving workloads only run when prepare() planned (it plans unless they
        // are done).
        self.plan.ok_or_else(|| {
            MigrateError::Watch(format!("step {step} needs a plan, and none was made"))
        })
    }

    pub async fn run(mut self) -> Result<(), MigrateError> {
        for step in Step::ALL {
            let name = format!("{}{step}", self.prefix);
            if self.state.is_done(step) {
                self.emit(Event::StepDone {
                    step: name,
                    skipped: true,
                });
                continue;
            }
            fault::at(&name);
            let kept =
                self.state.keep_old_pool && matches!(step, Step::ReleaseOld | Step::DeleteOld);
            if !kept {
                self.emit(Event::StepStarted { step: name.clone() });
                match step {
                    Step::CreateNew => self.create_new().await?,
                    Step::DisableOld => self.disable_old().await?,
                    Step::MoveWorkloads => self.move_workloads().await?,
                    Step::Verify => self.verify().await?,
                    Step::ReleaseOld => self.release_old().await?,
                    Step::DeleteOld => self.delete_old().await?,
                }
            }
            let slot = self.slot;
            let updated = self
                .held
                .update(|record| {
                    if let Some(m) = slot.get_mut(record)
                        && !m.done.contains(&step)
                    {
                        m.done.push(step);
                    }
                })
                .await?;
            if let Some(m) = slot.get(&updated) {
                self.state = m.clone();
            }
            if !kept {
                self.emit(Event::StepDone {
                    step: name,
                    skipped: false,
                });
            }
        }
        Ok(())
    }

    async fn create_new(&self) -> Result<(), MigrateError> {
        let plan = self.plan(Step::CreateNew)?;
        let calico = self.calico();
        let name = &plan.to.name;
        match plan.target_action {
            TargetAction::Create => {
                if let Some(pool) = &plan.new_pool {
                    match calico.create(CalicoKind::Pool, name, pool, false).await {
                        Ok(IpPool { .. }) => {}
                        Err(e) if e.status_code() == Some(409) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            TargetAction::Enable => {
                update_pool::<Infallible>(&calico, name, false, &mut async |p: &IpPool| {
                    Ok(if p.is_enabled() {
                        Decision::Unchanged
                    } else {
                        Decision::Patch(json!({"spec": {"disabled": false}}))
                    })
                })
                .await?;
            }
            TargetAction::Use => {}
        }
        // Usable: it is there, enabled, and has the planned CIDR.
        let pool = calico
            .get::<IpPool>(CalicoKind::Pool, name)
            .await?
            .ok_or_else(|| MigrateError::NewPoolUnusable {
                name: name.clone(),
                problem: "does not exist after being created".to_owned(),
            })?;
        if !pool.is_enabled() {
            return Err(MigrateError::NewPoolUnusable {
                name: name.clone(),
                problem: "is disabled or being deleted".to_owned(),
            });
        }
        let cidr = pool.spec.cidr_net().map(|c| cidr::canonical(&c));
        if cidr != Some(plan.to.cidr) {
            return Err(MigrateError::NewPoolUnusable {
                name: name.clone(),
                problem: format!(
                    "has CIDR {}, not the planned {}",
                    pool.spec.cidr.as_deref().unwrap_or("(none)"),
                    plan.to.cidr
                ),
            });
        }
        Ok(())
    }

    async fn disable_old(&self) -> Result<(), MigrateError> {
        update_pool::<Infallible>(
            &self.calico(),
            &self.state.from,
            false,
            &mut async |p: &IpPool| {
                Ok(if p.spec.disabled == Some(true) {
                    Decision::Unchanged
                } else {
                    Decision::Patch(json!({"spec": {"disabled": true}}))
                })
            },
        )
        .await?;
        Ok(())
    }

    fn pods_api(&self) -> Api<Pod> {
        match &self.state.namespace {
            Some(ns) => Api::namespaced(self.exec.client.clone(), ns),
            None => Api::all(self.exec.client.clone()),
        }
    }

    fn workload_api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.state.namespace {
            Some(ns) => Api::namespaced(self.exec.client.clone(), ns),
            None => Api::all(self.exec.client.clone()),
        }
    }

    fn config() -> watcher::Config {
        watcher::Config::default().page_size(500)
    }

    async fn synced<K: kube::Resource>(&self, mirror: &Mirror<K>) -> Result<(), MigrateError> {
        mirror
            .synced(self.exec.options.timeout)
            .await
            .map_err(MigrateError::Watch)
    }

    async fn move_workloads(&self) -> Result<(), MigrateError> {
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
        let restarts = |kind: OwnerKind| {
            moving
                .iter()
                .any(|m| m.method == MoveMethod::RolloutRestart && m.workload.kind == kind)
        };
        let workloads = WorkloadMirrors {
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
        };
        let evicts = moving.iter().any(|m| m.method == MoveMethod::Evict);
        let budgets = match (evicts, self.exec.apis.policy()) {
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
        };
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

        // Lanes run concurrently; the moves of one lane (they share a budget) one by one.
        let mut lanes: Vec<Vec<&WorkloadMove>> = Vec::new();
        let mut lane_of = std::collections::BTreeMap::new();
        for m in &moving {
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
                let mover = &mover;
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

    /// The pods this migration is responsible for: its namespace and selector.
    async fn scope_filter(&self) -> Result<impl Fn(&Pod) -> bool + use<>, MigrateError> {
        let namespace = self.state.namespace.clone();
        let selected: Option<BTreeSet<(String, String)>> = match &self.state.selector {
            Some(selector) => {
                let matched = self
                    .pods_api()
                    .list_metadata(&ListParams::default().labels(selector))
                    .await
                    .map_err(|e| {
                        RequestError::new(format!("list pods matching --selector {selector:?}"), e)
                    })?;
                Some(
                    matched
                        .items
                        .into_iter()
                        .map(|p| {
                            (
                                p.metadata.namespace.unwrap_or_default(),
                                p.metadata.name.unwrap_or_default(),
                            )
                        })
                        .collect(),
                )
            }
            None => None,
        };
        Ok(move |pod: &Pod| {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            namespace.as_ref().is_none_or(|n| *n == ns)
                && selected.as_ref().is_none_or(|s| s.contains(&(ns, name)))
        })
    }

    async fn verify(&self) -> Result<(), MigrateError> {
        let old = parse_net(&self.state.old_cidr)?;
        let timeout = self.exec.options.timeout;
        let in_scope = self.scope_filter().await?;
        let pods = Mirror::start(self.pods_api(), Self::config(), pod_keys, "pods");
        self.synced(&pods).await?;
        let deadline = Instant::now() + timeout;
        let mut said = 0;
        let clear = pods
            .wait(ALL, deadline, |m| {
                let left = pods_left(m, &old, &in_scope);
                if !left.is_empty() && left.len() != said {
                    said = left.len();
                    self.emit(Event::Waiting {
                        subject: format!("pool {}", self.state.from),
                        reason: format!("{} pod(s) still hold addresses in it", left.len()),
                    });
                }
                left.is_empty().then_some(())
            })
            .await;
        if clear.is_none() {
            let left = pods_left(&pods, &old, &in_scope);
            let shown: Vec<String> = left
                .iter()
                .take(10)
                .map(|(p, a)| format!("{p} ({a})"))
                .collect();
            return Err(MigrateError::PodsRemain {
                old,
                count: left.len(),
                waited: timeout.as_secs(),
                pods: shown.join(", "),
            });
        }
        drop(pods);
        if self.state.keep_old_pool {
            return Ok(());
        }
        // Tunnel addresses: calico-node re-homes them once OLD is disabled; wait, bounded.
        let resource = self.exec.apis.resource(CalicoKind::Block);
        let blocks = Mirror::start(
            Api::<DynamicObject>::all_with(self.exec.client.clone(), &resource),
            Self::config(),
            |_| Vec::new(),
            "ipamblocks",
        );
        self.synced(&blocks).await?;
        let deadline = Instant::now() + timeout;
        let mut said = 0;
        let moved = blocks
            .wait(ALL, deadline, |m| {
                let nodes = Remaining::in_pool(m, &resource, &old).tunnel_nodes;
                if !nodes.is_empty() && nodes.len() != said {
                    said = nodes.len();
                    self.emit(Event::Waiting {
                        subject: "tunnel addresses".to_owned(),
                        reason: format!(
                            "calico-node moving the tunnel address of {} node(s) out of {}",
                            nodes.len(),
                            self.state.from
                        ),
                    });
                }
                nodes.is_empty().then_some(())
            })
            .await;
        if moved.is_none() {
            let remaining = Remaining::in_pool(&blocks, &resource, &old);
            let nodes: Vec<String> = remaining.tunnel_nodes.into_iter().collect();
            return Err(MigrateError::TunnelsRemain {
                old,
                nodes: nodes.join(", "),
                waited: timeout.as_secs(),
            });
        }
        self.await_teardowns(&blocks, &resource, &old).await;
        Ok(())
    }

    /// A pod deleted at once (grace period 0, or forced) leaves the API before its kubelet has torn
    /// its sandbox down, and Calico's CNI releases the address only then: such allocations are
    /// waited for, bounded by [`TEARDOWN_WAIT`], before the release step judges what is left as
    /// leaked (it then refuses and names `--release-leaked`).
    async fn await_teardowns(
        &self,
        blocks: &Mirror<DynamicObject>,
        resource: &ApiResource,
        old: &IpNet,
    ) {
        let left = Remaining::in_pool(blocks, resource, old).others;
        if left == 0 {
            return;
        }
        self.emit(Event::Waiting {
            subject: format!("pool {}", self.state.from),
            reason: format!(
                "kubelets releasing {left} address(es) of deleted pods (Calico's CNI DEL)"
            ),
        });
        let deadline = Instant::now() + TEARDOWN_WAIT.min(self.exec.options.timeout);
        blocks
            .wait(ALL, deadline, |m| {
                (Remaining::in_pool(m, resource, old).others == 0).then_some(())
            })
            .await;
    }

    async fn snapshot(&self) -> Result<Snapshot, MigrateError> {
        Ok(Snapshot::load(&self.exec.client, &self.exec.apis, RELEASE_PARTS).await?)
    }

    async fn release_old(&self) -> Result<(), MigrateError> {
        let snapshot = self.snapshot().await?;
        let Some(assessment) = assess(&snapshot, &self.state.from) else {
            return Ok(());
        };
        let refusals = assessment.refusals(false);
        if !refusals.is_empty() {
            return Err(MigrateError::Refused(refusals));
        }
        let calico = self.calico();
        let progress = self.exec.progress.clone();
        let mut observer = async |step: ReleaseStep| {
            progress.emit(Event::Released {
                change: step.to_string(),
            });
        };
        for entry in &assessment.blocks {
            let outcome = match &entry.block {
                Some(block) => {
                    release_block(&calico, block, &entry.affinities, true, &mut observer).await?
                }
                None => {
                    let mut last = Released::AlreadyGone;
                    for affinity in &entry.affinities {
                        last =
                            release_stale_affinity(&calico, affinity, None, &mut observer).await?;
                    }
                    last
                }
            };
            if let Released::KeptInUse { allocations } | Released::LostRace { allocations } =
                outcome
            {
                return Err(MigrateError::AllocationsRemain {
                    block: entry.cidr.clone(),
                    allocations,
                });
            }
        }
        Ok(())
    }

    async fn delete_old(&self) -> Result<(), MigrateError> {
        // Whatever an earlier interrupted release left is released again (it is idempotent).
        self.release_old().await?;
        let snapshot = self.snapshot().await?;
        let Some(assessment) = assess(&snapshot, &self.state.from) else {
            return Ok(());
        };
        let progress = self.exec.progress.clone();
        let mut observer = async |step: ReleaseStep| {
            progress.emit(Event::Released {
                change: step.to_string(),
            });
        };
        match delete_pool(&self.calico(), &assessment, false, &mut observer).await {
            Ok(_) | Err(DeleteError::Gone { .. }) => Ok(()),
            Err(DeleteError::Refused(refusals)) => Err(MigrateError::Refused(refusals)),
            Err(e) => Err(e.into()),
        }
    }
}

/// What OLD's blocks still hold while the workloads leave it.
struct Remaining {
    /// Nodes whose tunnel address is still in OLD (calico-node re-homes it once OLD is disabled).
    tunnel_nodes: BTreeSet<String>,
    /// Every other allocation: pods, and addresses of other IPAM clients.
    others: usize,
}

impl Remaining {
    fn in_pool(blocks: &Mirror<DynamicObject>, resource: &ApiResource, old: &IpNet) -> Remaining {
        let mut remaining = Remaining {
            tunnel_nodes: BTreeSet::new(),
            others: 0,
        };
        let blocks: Vec<IpamBlock> = blocks
            .all()
            .iter()
            .filter_map(|o| from_dynamic::<IpamBlock>(resource, (**o).clone()).ok())
            .filter(|b| b.cidr().is_some_and(|c| cidr::contains_net(old, &c)))
            .collect();
        for allocation in blocks.iter().flat_map(allocations_of) {
            match allocation.use_() {
                AllocationUse::Tunnel { node, .. } => {
                    remaining.tunnel_nodes.insert(node.to_owned());
                }
                AllocationUse::Workload { .. } | AllocationUse::Unknown => remaining.others += 1,
            }
        }
        remaining
    }
}

/// How long the release step waits for kubelets to tear down the sandboxes of pods deleted at
/// once: a live node's kubelet does so within seconds; one that is down never will.
const TEARDOWN_WAIT: Duration = Duration::from_secs(60);
