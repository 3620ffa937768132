//! The executor: a plan carried out as ordered steps — create/verify NEW → disable OLD → move
//! workloads → verify → release OLD → delete OLD — each checked before the next, each recorded in
//! the migration's Lease when done, each safe to run again. A run that is interrupted is
//! continued by running the same command: the record says which steps are done, and the cluster
//! says what is left (pods still in OLD are planned again).
//!
//! A resize runs its two migrations through the same steps; what it builds on is [`Executor`]'s
//! methods and [`with_renewal`], so that the steps themselves stay private here.

mod pools;
mod steps;
mod verify;
mod workloads;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use ippool_rules::context::ClusterCidrs;
use kube::Client;

use super::events::{Event, Progress};
use super::fault;
use super::fence::LeaseClock;
use super::inventory::{self, InventoryError};
use super::moves::MoveError;
use super::record::lock::{self, Found, Held};
use super::record::{self, Job, MigrateRecord, Record, RecordError};
use super::step::Step;
use crate::api::ServedApis;
use crate::pool_delete::DeleteError;
use crate::pool_write::PoolWriteError;
use crate::release::ReleaseError;
use crate::request_error::RequestError;
use ippool_ipam::plan::{self, Intent, Plan, PlanError};
use ippool_ipam::pool_delete::DeleteRefusal;
use steps::{Migration, Slot};

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
    /// When the lock was last confirmed; the clients' fence reads it.
    pub clock: LeaseClock,
}

impl Executor {
    /// Reads the cluster and plans (the plan event is emitted).
    pub async fn plan(
        &self,
        intent: &Intent,
        cluster_cidrs: Option<ClusterCidrs>,
    ) -> Result<Plan, MigrateError> {
        let mut intent = intent.clone();
        let inventory =
            inventory::load(&self.client, &self.apis, cluster_cidrs, &mut intent.scope).await?;
        self.plan_from(&inventory, &intent)
    }

    /// Plans from what was read (the plan event is emitted).
    pub fn plan_from(
        &self,
        inventory: &plan::Inventory,
        intent: &Intent,
    ) -> Result<Plan, MigrateError> {
        let plan = plan::plan(inventory, intent)?;
        self.progress.emit(Event::Plan {
            plan: serde_json::to_value(&plan).unwrap_or_default(),
        });
        Ok(plan)
    }

    /// Takes the lock for `fresh` (or resumes the run it records), in the state namespace; the
    /// clients' fence follows the hold from here on.
    pub async fn acquire(&self, fresh: Record) -> Result<lock::Acquired, RecordError> {
        lock::acquire(
            &self.client,
            &self.options.state_namespace,
            fresh,
            &self.clock,
        )
        .await
    }

    /// A lock found held by another job refuses the run; with `dry_run` it is only a warning,
    /// since nothing will be written.
    pub fn held_elsewhere(&self, found: &Found, dry_run: bool) -> Result<(), RecordError> {
        let locked = RecordError::Locked {
            namespace: self.options.state_namespace.clone(),
            holder: found.record.id.clone(),
            summary: found.record.summary(),
        };
        if !dry_run {
            return Err(locked);
        }
        self.progress.emit(Event::Warning {
            message: locked.to_string(),
        });
        Ok(())
    }

    /// Runs the steps of the migration a resize holds under `held` (the record's
    /// `Job::Resize`, whose `migration` must be `state`), recording each step there. `prefix`
    /// names the migration in fault points and events (`to-temp/`, `back/`); `plan` is needed
    /// unless the workloads were moved already.
    pub async fn run_in_resize(
        &self,
        held: &Held,
        prefix: &str,
        state: MigrateRecord,
        plan: Option<&Plan>,
    ) -> Result<(), MigrateError> {
        Migration {
            exec: self,
            held,
            slot: Slot::InResize,
            prefix,
            state,
            plan,
        }
        .run()
        .await
    }
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

/// An error that may pass: the same work tried again later may succeed.
pub trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for MigrateError {
    fn is_transient(&self) -> bool {
        let release = |e: &ReleaseError| matches!(e, ReleaseError::Request(r) if r.is_transient());
        match self {
            MigrateError::Request(e)
            | MigrateError::Record(RecordError::Request(e))
            | MigrateError::Inventory(InventoryError::Request(e))
            | MigrateError::Move(MoveError::Request(e))
            | MigrateError::Delete(DeleteError::Request(e)) => e.is_transient(),
            MigrateError::Release(e) | MigrateError::Delete(DeleteError::Release(e)) => release(e),
            // A watch of the moves failed: kube's watcher resumes by itself, unless the API
            // server stayed away for longer than the move could wait.
            MigrateError::Move(MoveError::Watch { .. }) => true,
            _ => false,
        }
    }
}

impl Executor {
    /// Runs one step, and runs it again while it fails in passing (the API server or the
    /// network away longer than a request's retries): every step is safe to run again. Before
    /// each try the lock is confirmed, so that nothing is done by a process that may have lost
    /// it. Gives up once it has tried for the run's timeout.
    pub async fn ride_out<T, E>(
        &self,
        held: &Held,
        step: &str,
        mut attempt: impl AsyncFnMut() -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: Transient + From<MigrateError>,
    {
        let began = std::time::Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            held.ensure(self.options.timeout)
                .await
                .map_err(|e| E::from(MigrateError::from(e)))?;
            match attempt().await {
                Err(e) if e.is_transient() && began.elapsed() + delay < self.options.timeout => {
                    self.progress.emit(Event::Warning {
                        message: format!("step {step} was interrupted ({e}); running it again"),
                    });
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    // A step that fails for good may have read what another process did after
                    // taking the migration over while this one was cut off: the lost lock is then
                    // the cause to report.
                    if let Err(lost @ RecordError::LostLock { .. }) =
                        held.ensure(self.options.timeout).await
                    {
                        return Err(E::from(MigrateError::from(lost)));
                    }
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }
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
    let found = lock::read(&exec.client, &exec.options.state_namespace).await?;
    let mut earlier = None;
    if let Some(found) = found {
        match Slot::Migrate.get(&found.record) {
            Some(m) if found.record.id == id => earlier = Some(m.clone()),
            _ => exec.held_elsewhere(&found, dry_run)?,
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
    let plan = exec.plan(intent, cluster_cidrs).await?;
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

/// Takes the lock and runs the migration to its end, releasing the lock when done.
pub async fn execute(exec: &Executor, prepared: Prepared) -> Result<(), MigrateError> {
    if let Some(plan) = &prepared.plan
        && plan.is_blocked()
    {
        return Err(MigrateError::Blocked(plan.blockers.len()));
    }
    let fresh = Record::new(prepared.id.clone(), Job::Migrate(prepared.record.clone()));
    let acquired = exec.acquire(fresh).await?;
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
