//! Changing a pool's blockSize, which Calico forbids in place: Calico's nine-step procedure as one
//! resumable run built on two migrations.
//!
//! 1. Pick a temporary pool: `--temp-cidr`, or a free range inside the cluster CIDR big enough
//!    for the pool's pods (else the operator is asked for `--temp-cidr`).
//! 2. Migrate NAME → temporary pool (created with NAME's settings); the migration's last steps
//!    release NAME's blocks and delete NAME.
//! 3. Remove every block and affinity left in NAME's CIDR (gc's candidates there, in Calico's
//!    release order) and check that none remain — the step Calico's guide leaves out, whose
//!    leftovers hand nodes blocks of the old size overlapping the new ones (#10778, #3589).
//! 4. Re-create NAME with exactly its old spec, labels and annotations, but the new blockSize.
//! 5. Migrate the temporary pool → NAME; its last steps release and delete the temporary pool.
//!
//! The record keeps NAME's original definition, since NAME itself is gone for a while.

mod prepare;
pub mod recreate;
mod temp;

use ipnet::IpNet;
use ippool_rules::cidr;
use ippool_rules::context::ClusterCidrs;

use super::events::Event;
use super::execute::{Executor, MigrateError, Transient, with_renewal};
use super::fault;
use super::inventory;
use super::record::lock::{self, Held};
use super::record::{self, Job, MigrateRecord, Record, RecordError, ResizeRecord};
use super::step::{ResizeStep, Step};
use crate::client::CalicoClient;
use ippool_ipam::plan::{Blocker, Intent, KeepReason, Plan, PlanError, Scope};

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResizeIntent {
    pub name: String,
    pub block_size: u8,
    pub temp_cidr: Option<IpNet>,
    pub evict_jobs: bool,
    pub delete_bare_pods: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("pool {name:?} already has blockSize {block_size}; nothing to do")]
    SameBlockSize { name: String, block_size: u8 },
    #[error(
        "no cluster CIDR of pool {name:?}'s family is known, so no temporary pool can be chosen \
         inside it: pass --temp-cidr CIDR (a free range that can hold the pool's pods), or \
         --cluster-cidr"
    )]
    NoClusterCidr { name: String },
    #[error(
        "no free /{prefix} is left inside the cluster CIDR {cluster} for the temporary pool: pass \
         --temp-cidr CIDR"
    )]
    NoFreeRange { prefix: u8, cluster: String },
    #[error(
        "a pool named {temp:?} exists already (a temporary pool from an earlier resize?); remove \
         it, or migrate its pods back first (`kubectl ippool migrate --from {temp} --to {name}`)"
    )]
    TempExists { temp: String, name: String },
    #[error(
        "blocks or affinities in {cidr} could not be removed: {items}; the pool is not re-created \
         over them. Check them with `kubectl ippool blocks --orphaned`, then run the command again"
    )]
    CidrNotClean { cidr: String, items: String },
    #[error(
        "pool {name:?} exists but is not the re-created pool this resize expects ({detail}); run \
         `kubectl ippool resize --abort` and check the pools"
    )]
    Recreated { name: String, detail: String },
    #[error("the resize's plan has {0} blocker(s); nothing was changed")]
    Blocked(usize),
}

impl From<RecordError> for ResizeError {
    fn from(e: RecordError) -> Self {
        ResizeError::Migrate(e.into())
    }
}

impl From<PlanError> for ResizeError {
    fn from(e: PlanError) -> Self {
        ResizeError::Migrate(e.into())
    }
}

impl From<inventory::InventoryError> for ResizeError {
    fn from(e: inventory::InventoryError) -> Self {
        ResizeError::Migrate(e.into())
    }
}

impl From<crate::request_error::RequestError> for ResizeError {
    fn from(e: crate::request_error::RequestError) -> Self {
        ResizeError::Migrate(e.into())
    }
}

/// A resize ready to run.
#[derive(Debug, Clone)]
pub struct ResizePrepared {
    pub id: String,
    pub record: ResizeRecord,
    pub resumed: bool,
    /// The first migration's plan (NAME → temporary pool), unless it got past moving workloads.
    pub plan: Option<Plan>,
    /// Problems with the pool as it would be re-created.
    pub blockers: Vec<Blocker>,
    /// Where the temporary CIDR came from, for the text.
    pub temp_origin: String,
}

impl ResizePrepared {
    pub fn blocker_count(&self) -> usize {
        self.blockers.len() + self.plan.as_ref().map_or(0, |p| p.blockers.len())
    }
}

fn intent_to_temp(intent: &ResizeIntent, record: &ResizeRecord) -> Intent {
    Intent {
        from: record.name.clone(),
        to: record.temp.clone(),
        new_cidr: cidr::parse_lenient(&record.temp_cidr).ok(),
        scope: Scope::default(),
        evict_jobs: intent.evict_jobs,
        delete_bare_pods: intent.delete_bare_pods,
        keep_old_pool: false,
    }
}

fn intent_back(intent: &ResizeIntent, record: &ResizeRecord) -> Intent {
    Intent {
        from: record.temp.clone(),
        to: record.name.clone(),
        new_cidr: None,
        scope: Scope::default(),
        evict_jobs: intent.evict_jobs,
        delete_bare_pods: intent.delete_bare_pods,
        keep_old_pool: false,
    }
}

/// Reads the record and the cluster, picks the temporary pool and plans the first migration.
pub async fn prepare(
    exec: &Executor,
    intent: &ResizeIntent,
    cluster_cidrs: Option<ClusterCidrs>,
    dry_run: bool,
) -> Result<ResizePrepared, ResizeError> {
    let id = record::resize_id(&intent.name);
    if let Some(found) = lock::read(&exec.client, &exec.options.state_namespace).await? {
        match &found.record.job {
            Job::Resize(r) if found.record.id == id => {
                return prepare::resume(exec, intent, id, r, cluster_cidrs).await;
            }
            _ => exec.held_elsewhere(&found, dry_run)?,
        }
    }
    prepare::start(exec, intent, id, cluster_cidrs).await
}

/// Takes the lock and runs the resize to its end.
pub async fn execute(
    exec: &Executor,
    intent: &ResizeIntent,
    prepared: ResizePrepared,
    cluster_cidrs: Option<ClusterCidrs>,
) -> Result<(), ResizeError> {
    let blockers = prepared.blocker_count();
    if blockers > 0 {
        return Err(ResizeError::Blocked(blockers));
    }
    let fresh = Record::new(
        prepared.id.clone(),
        Job::Resize(Box::new(prepared.record.clone())),
    );
    let acquired = exec.acquire(fresh).await?;
    let Job::Resize(state) = acquired.record.job.clone() else {
        return Err(RecordError::Locked {
            namespace: exec.options.state_namespace.clone(),
            holder: acquired.record.id.clone(),
            summary: acquired.record.summary(),
        }
        .into());
    };
    exec.progress.emit(Event::Locked {
        id: prepared.id.clone(),
        resumed: acquired.resumed,
        done: state.done.iter().map(|s| s.to_string()).collect(),
    });
    let held = acquired.held;
    let run = Resize {
        exec,
        held: &held,
        intent,
        cluster_cidrs,
        first_plan: prepared.plan,
    };
    with_renewal(&held, run.run(*state)).await?;
    fault::at("unlock");
    held.release().await?;
    Ok(())
}

struct Resize<'a> {
    exec: &'a Executor,
    held: &'a Held,
    intent: &'a ResizeIntent,
    cluster_cidrs: Option<ClusterCidrs>,
    first_plan: Option<Plan>,
}

impl Transient for ResizeError {
    fn is_transient(&self) -> bool {
        matches!(self, ResizeError::Migrate(e) if e.is_transient())
    }
}

impl Resize<'_> {
    fn calico(&self) -> CalicoClient {
        CalicoClient::new(self.exec.client.clone(), self.exec.apis)
    }

    async fn run(mut self, mut state: ResizeRecord) -> Result<(), ResizeError> {
        for step in ResizeStep::ALL {
            if state.done.contains(&step) {
                self.exec.progress.emit(Event::StepDone {
                    step: step.to_string(),
                    skipped: true,
                });
                continue;
            }
            match step {
                ResizeStep::CleanOldCidr | ResizeStep::Recreate => fault::at(step.name()),
                ResizeStep::ToTemp | ResizeStep::Back => {}
            }
            self.exec.progress.emit(Event::StepStarted {
                step: step.to_string(),
            });
            let (exec, held) = (self.exec, self.held);
            let name = step.to_string();
            exec.ride_out(held, &name, async || match step {
                ResizeStep::ToTemp => {
                    let plan = self.first_plan.take();
                    let intent = intent_to_temp(self.intent, &state);
                    self.migrate(&state, intent, plan, "to-temp/").await
                }
                ResizeStep::CleanOldCidr => self.clean(&state).await,
                ResizeStep::Recreate => self.recreate(&state).await,
                ResizeStep::Back => {
                    let intent = intent_back(self.intent, &state);
                    self.migrate(&state, intent, None, "back/").await
                }
            })
            .await?;
            let updated = self
                .held
                .update(|record| {
                    if let Job::Resize(r) = &mut record.job {
                        if !r.done.contains(&step) {
                            r.done.push(step);
                        }
                        r.migration = None;
                    }
                })
                .await?;
            if let Job::Resize(r) = updated.job {
                state = *r;
            }
            self.exec.progress.emit(Event::StepDone {
                step: step.to_string(),
                skipped: false,
            });
        }
        Ok(())
    }

    /// One of the two migrations, continued from the record when an earlier run started it.
    async fn migrate(
        &self,
        state: &ResizeRecord,
        intent: Intent,
        plan: Option<Plan>,
        prefix: &str,
    ) -> Result<(), ResizeError> {
        let started = state
            .migration
            .clone()
            .filter(|m| m.from == intent.from && m.to == intent.to);
        let needs_plan = started
            .as_ref()
            .is_none_or(|m| !m.is_done(Step::MoveWorkloads));
        let plan = match (needs_plan, plan) {
            (false, _) => None,
            (true, Some(plan)) => Some(plan),
            (true, None) => Some(self.exec.plan(&intent, self.cluster_cidrs.clone()).await?),
        };
        if let Some(plan) = &plan
            && plan.is_blocked()
        {
            return Err(ResizeError::Blocked(plan.blockers.len()));
        }
        let migration = match started {
            Some(m) => m,
            None => {
                let plan = plan.as_ref().ok_or_else(|| {
                    MigrateError::Watch("a migration that has not started needs a plan".to_owned())
                })?;
                let fresh = MigrateRecord {
                    from: intent.from.clone(),
                    to: intent.to.clone(),
                    new_cidr: intent.new_cidr.map(|c| c.to_string()),
                    old_cidr: plan.from.cidr.to_string(),
                    to_cidr: plan.to.cidr.to_string(),
                    old_was_enabled: plan.from.enabled,
                    keep_old_pool: plan.keep_old_pool == Some(KeepReason::Asked),
                    namespace: None,
                    selector: None,
                    done: Vec::new(),
                };
                let copy = fresh.clone();
                self.held
                    .update(|record| {
                        if let Job::Resize(r) = &mut record.job {
                            r.migration = Some(copy.clone());
                        }
                    })
                    .await?;
                fresh
            }
        };
        self.exec
            .run_in_resize(self.held, prefix, migration, plan.as_ref())
            .await?;
        Ok(())
    }
}
