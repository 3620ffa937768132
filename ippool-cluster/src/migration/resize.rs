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

use std::collections::BTreeMap;

use ipnet::IpNet;
use ippool_rules::cidr::{self, Family};
use ippool_rules::context::{ClusterCidrs, Operation};
use ippool_rules::model::{IpPool, ObjectMeta};
use ippool_rules::report::Severity;
use ippool_rules::rules::check_pool;

use super::events::Event;
use super::execute::{Executor, MigrateError, Migration, Slot, plan_from, plan_now, with_renewal};
use super::fault;
use super::inventory;
use super::record::{self, Job, MigrateRecord, Record, RecordError, ResizeRecord};
use super::step::{ResizeStep, Step};
use crate::api::CalicoKind;
use crate::gc::{GcCandidate, gc_plan};
use crate::plan::{Blocker, Intent, KeepReason, Plan, PlanError, Scope};
use crate::release::{ReleaseStep, Released, release_block, release_stale_affinity};
use crate::rest::CalicoClient;
use crate::snapshot::{Parts, Snapshot};

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

/// The temporary pool's name for pool `name`.
pub fn temp_name(name: &str) -> String {
    format!("{name}-resize-tmp")
}

/// The prefix of a temporary pool that holds `pods` pods and `tunnels` tunnel addresses with
/// room to spare, and one `block_size` block for each of `nodes` nodes: twice the addresses
/// needed, rounded up to a power of two, never smaller than one block.
pub fn temp_prefix(
    family: Family,
    pods: usize,
    tunnels: usize,
    nodes: usize,
    block_size: u8,
) -> u8 {
    let bits = family.bits();
    let block = 1u128 << (bits - block_size);
    let needed = ((pods + tunnels) as u128 * 2)
        .max(block * nodes.max(1) as u128)
        .max(block);
    let exponent = 128 - (needed - 1).leading_zeros() as u8;
    bits.saturating_sub(exponent.min(bits)).min(block_size)
}

/// The first range of length `prefix` inside one of `cluster` (of `family`) that overlaps none of
/// `taken`. Skips past taken ranges instead of walking every candidate, so that IPv6 ranges are
/// searched quickly.
pub fn free_range(cluster: &[IpNet], taken: &[IpNet], prefix: u8) -> Option<IpNet> {
    for outer in cluster {
        if outer.prefix_len() > prefix {
            continue;
        }
        let family = Family::of(outer);
        let bits = family.bits();
        let size: u128 = 1u128 << (bits - prefix);
        let (start, end) = cidr::bounds(outer);
        let mut candidate = start;
        loop {
            let last = candidate.checked_add(size - 1)?;
            if last > end {
                break;
            }
            let clash = taken
                .iter()
                .filter(|t| Family::of(t) == family)
                .map(cidr::bounds)
                .filter(|(s, e)| *s <= last && *e >= candidate)
                .map(|(_, e)| e)
                .max();
            match clash {
                None => return net_at(family, candidate, prefix),
                Some(taken_end) => {
                    let next = taken_end.checked_add(1)?;
                    candidate = next.div_ceil(size).checked_mul(size)?;
                }
            }
        }
    }
    None
}

fn net_at(family: Family, start: u128, prefix: u8) -> Option<IpNet> {
    let address: std::net::IpAddr = match family {
        Family::V4 => std::net::Ipv4Addr::from(u32::try_from(start).ok()?).into(),
        Family::V6 => std::net::Ipv6Addr::from(start).into(),
    };
    IpNet::new(address, prefix).ok()
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

/// NAME's definition as it must be re-created: name, labels, annotations and spec, nothing the
/// server set.
fn definition(pool: &IpPool) -> IpPool {
    IpPool {
        api_version: pool.api_version.clone(),
        kind: pool.kind.clone(),
        metadata: ObjectMeta {
            name: pool.metadata.name.clone(),
            labels: pool.metadata.labels.clone(),
            annotations: pool.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: pool.spec.clone(),
    }
}

fn recreated(record: &ResizeRecord) -> IpPool {
    let mut pool = record.original.clone();
    pool.spec.block_size = Some(i64::from(record.block_size));
    pool
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

/// The re-created pool checked by the shared rules as a creation, in the cluster as it will be
/// then: without NAME, and without the blocks in NAME's CIDR (step 3 removes them).
fn recreate_blockers(
    snapshot: &Snapshot,
    pool: &IpPool,
    cidrs: Option<ClusterCidrs>,
) -> Vec<Blocker> {
    let own = pool.spec.cidr_net().map(|c| cidr::canonical(&c));
    let mut ctx = snapshot
        .rules_context(Parts::RULES, cidrs, None)
        .without_pool(pool.name());
    if let (Some(blocks), Some(own)) = (ctx.blocks.as_mut(), own) {
        blocks.retain(|b| !b.cidr().is_some_and(|c| cidr::overlaps(&c, &own)));
    }
    // NAME's pods are in the temporary pool by then.
    ctx.workloads_present = Some(true);
    check_pool(pool, &ctx, &Operation::Create)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| Blocker {
            subject: format!(
                "pool {} with blockSize {}",
                pool.name(),
                pool.spec.block_size.unwrap_or(0)
            ),
            problem: f.message,
            fix: f
                .hint
                .unwrap_or_else(|| "choose another --block-size".to_owned()),
        })
        .collect()
}

/// Reads the record and the cluster, picks the temporary pool and plans the first migration.
pub async fn prepare(
    exec: &Executor,
    intent: &ResizeIntent,
    cluster_cidrs: Option<ClusterCidrs>,
    dry_run: bool,
) -> Result<ResizePrepared, ResizeError> {
    let id = record::resize_id(&intent.name);
    if let Some(found) = record::read(&exec.client, &exec.options.state_namespace).await? {
        match &found.record.job {
            Job::Resize(r) if found.record.id == id => {
                if r.block_size != intent.block_size {
                    return Err(MigrateError::Mismatch {
                        id,
                        field: "--block-size",
                        recorded: r.block_size.to_string(),
                        asked: intent.block_size.to_string(),
                    }
                    .into());
                }
                if let Some(asked) = intent.temp_cidr
                    && asked.to_string() != r.temp_cidr
                {
                    return Err(MigrateError::Mismatch {
                        id,
                        field: "--temp-cidr",
                        recorded: r.temp_cidr.clone(),
                        asked: asked.to_string(),
                    }
                    .into());
                }
                let in_first = !r.done.contains(&ResizeStep::ToTemp)
                    && !r
                        .migration
                        .as_ref()
                        .is_some_and(|m| m.is_done(Step::MoveWorkloads));
                let plan = if in_first {
                    Some(plan_now(exec, &intent_to_temp(intent, r), cluster_cidrs).await?)
                } else {
                    None
                };
                return Ok(ResizePrepared {
                    id,
                    record: (**r).clone(),
                    resumed: true,
                    plan,
                    blockers: Vec::new(),
                    temp_origin: "chosen by the earlier run".to_owned(),
                });
            }
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

    let mut scope = Scope::default();
    let inventory =
        inventory::load(&exec.client, &exec.apis, cluster_cidrs.clone(), &mut scope).await?;
    let snapshot = &inventory.snapshot;
    let pool = snapshot
        .pool(&intent.name)
        .ok_or_else(|| PlanError::NoOldPool {
            name: intent.name.clone(),
        })?;
    let spec = pool.spec.defaulted();
    let net = spec
        .cidr
        .map(|c| cidr::canonical(&c))
        .ok_or_else(|| PlanError::BadCidr {
            name: intent.name.clone(),
            cidr: pool.spec.cidr.clone().unwrap_or_default(),
        })?;
    if spec.block_size == Some(intent.block_size) {
        return Err(ResizeError::SameBlockSize {
            name: intent.name.clone(),
            block_size: intent.block_size,
        });
    }
    let temp = temp_name(&intent.name);
    if snapshot.pool(&temp).is_some() {
        return Err(ResizeError::TempExists {
            temp,
            name: intent.name.clone(),
        });
    }
    let family = Family::of(&net);
    let (temp_cidr, temp_origin) = match intent.temp_cidr {
        Some(given) => (given, "given with --temp-cidr".to_owned()),
        None => {
            let cluster: Vec<IpNet> = cluster_cidrs
                .iter()
                .flat_map(|c| c.cidrs.iter().copied())
                .filter(|c| Family::of(c) == family)
                .collect();
            if cluster.is_empty() {
                return Err(ResizeError::NoClusterCidr {
                    name: intent.name.clone(),
                });
            }
            let pods = snapshot
                .pods
                .iter()
                .filter(|p| p.holds_addresses() && p.addresses.iter().any(|a| net.contains(a)))
                .count();
            let nodes = snapshot.nodes.len();
            let block_size = spec.block_size.unwrap_or(cidr::default_block_size(family));
            let prefix = temp_prefix(family, pods, nodes, nodes, block_size);
            let taken: Vec<IpNet> = snapshot
                .pools
                .iter()
                .filter_map(|p| p.spec.cidr_net())
                .chain(snapshot.blocks.iter().filter_map(|b| b.cidr()))
                .collect();
            let picked =
                free_range(&cluster, &taken, prefix).ok_or_else(|| ResizeError::NoFreeRange {
                    prefix,
                    cluster: cluster
                        .iter()
                        .map(IpNet::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            (
                picked,
                format!(
                    "a free range inside the cluster CIDR, sized for {pods} pod(s) on {nodes} node(s)"
                ),
            )
        }
    };
    let record = ResizeRecord {
        name: intent.name.clone(),
        block_size: intent.block_size,
        original: definition(pool),
        temp,
        temp_cidr: temp_cidr.to_string(),
        done: Vec::new(),
        migration: None,
    };
    let blockers = recreate_blockers(snapshot, &recreated(&record), cluster_cidrs);
    let plan = plan_from(exec, &inventory, &intent_to_temp(intent, &record))?;
    Ok(ResizePrepared {
        id,
        record,
        resumed: false,
        plan: Some(plan),
        blockers,
        temp_origin,
    })
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
    let acquired = record::acquire(&exec.client, &exec.options.state_namespace, fresh).await?;
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
    held: &'a record::Held,
    intent: &'a ResizeIntent,
    cluster_cidrs: Option<ClusterCidrs>,
    first_plan: Option<Plan>,
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
            match step {
                ResizeStep::ToTemp => {
                    let plan = self.first_plan.take();
                    self.migrate(
                        &state,
                        intent_to_temp(self.intent, &state),
                        plan,
                        "to-temp/",
                    )
                    .await?
                }
                ResizeStep::CleanOldCidr => self.clean(&state).await?,
                ResizeStep::Recreate => self.recreate(&state).await?,
                ResizeStep::Back => {
                    self.migrate(&state, intent_back(self.intent, &state), None, "back/")
                        .await?
                }
            }
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
            (true, None) => Some(plan_now(self.exec, &intent, self.cluster_cidrs.clone()).await?),
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
        Migration {
            exec: self.exec,
            held: self.held,
            slot: Slot::InResize,
            prefix,
            state: migration,
            plan: plan.as_ref(),
        }
        .run()
        .await?;
        Ok(())
    }

    /// Removes every block and affinity in NAME's CIDR (NAME is gone by now) and checks that
    /// none remain.
    async fn clean(&self, state: &ResizeRecord) -> Result<(), ResizeError> {
        let cidr = state
            .original
            .spec
            .cidr_net()
            .map(|c| cidr::canonical(&c))
            .ok_or_else(|| PlanError::BadCidr {
                name: state.name.clone(),
                cidr: state.original.spec.cidr.clone().unwrap_or_default(),
            })?;
        let parts = Parts {
            pools: true,
            blocks: true,
            affinities: true,
            handles: false,
            pods: false,
            nodes: true,
            namespaces: false,
        };
        let snapshot = Snapshot::load(&self.exec.client, &self.exec.apis, parts).await?;
        let gc = gc_plan(&snapshot, Some(&cidr));
        if !gc.kept.is_empty() {
            return Err(ResizeError::CidrNotClean {
                cidr: cidr.to_string(),
                items: gc
                    .kept
                    .iter()
                    .map(|k| format!("{} ({})", k.object, k.why))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let calico = self.calico();
        let progress = self.exec.progress.clone();
        let mut observer = async |step: ReleaseStep| {
            progress.emit(Event::Released {
                change: step.to_string(),
            });
        };
        for candidate in &gc.candidates {
            let outcome = match candidate {
                GcCandidate::Block {
                    block, affinities, ..
                } => release_block(&calico, block, affinities, true, &mut observer)
                    .await
                    .map_err(MigrateError::from)?,
                GcCandidate::Affinity {
                    affinity, block, ..
                } => release_stale_affinity(
                    &calico,
                    affinity,
                    block.as_ref().map(|b| b.name.as_str()),
                    &mut observer,
                )
                .await
                .map_err(MigrateError::from)?,
            };
            if let Released::KeptInUse { allocations } | Released::LostRace { allocations } =
                outcome
            {
                return Err(ResizeError::CidrNotClean {
                    cidr: cidr.to_string(),
                    items: format!("{} ({allocations} allocation(s))", candidate.cidr()),
                });
            }
        }
        let after = Snapshot::load(&self.exec.client, &self.exec.apis, parts).await?;
        let mut left: BTreeMap<String, &str> = BTreeMap::new();
        for block in &after.blocks {
            if block.cidr().is_some_and(|b| cidr::overlaps(&b, &cidr)) {
                left.insert(format!("ipamblock {}", block.spec.cidr), "block");
            }
        }
        for affinity in &after.affinities {
            if cidr::parse_lenient(&affinity.spec.cidr).is_ok_and(|a| cidr::overlaps(&a, &cidr)) {
                left.insert(
                    format!(
                        "blockaffinity {}",
                        affinity.metadata.name.as_deref().unwrap_or("")
                    ),
                    "affinity",
                );
            }
        }
        if !left.is_empty() {
            return Err(ResizeError::CidrNotClean {
                cidr: cidr.to_string(),
                items: left.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(())
    }

    async fn recreate(&self, state: &ResizeRecord) -> Result<(), ResizeError> {
        let pool = recreated(state);
        let calico = self.calico();
        match calico
            .create(CalicoKind::Pool, &state.name, &pool, false)
            .await
        {
            Ok(IpPool { .. }) => Ok(()),
            Err(e) if e.status_code() == Some(409) => {
                let existing = calico
                    .get::<IpPool>(CalicoKind::Pool, &state.name)
                    .await?
                    .ok_or_else(|| ResizeError::Recreated {
                        name: state.name.clone(),
                        detail: "it vanished right after a create said it exists".to_owned(),
                    })?;
                let same_cidr = existing.spec.cidr_net().map(|c| cidr::canonical(&c))
                    == pool.spec.cidr_net().map(|c| cidr::canonical(&c));
                let same_size = existing.spec.defaulted().block_size == Some(state.block_size);
                if same_cidr && same_size {
                    Ok(())
                } else {
                    Err(ResizeError::Recreated {
                        name: state.name.clone(),
                        detail: format!(
                            "CIDR {} blockSize {:?}",
                            existing.spec.cidr.as_deref().unwrap_or("(none)"),
                            existing.spec.block_size
                        ),
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `--abort` of a resize: NAME must exist afterwards — re-created with its original definition
/// when the resize had deleted it. Pods stay where they are.
pub async fn abort_resize(
    exec: &Executor,
    state: &ResizeRecord,
) -> Result<Vec<String>, MigrateError> {
    let calico = CalicoClient::new(exec.client.clone(), exec.apis);
    if calico
        .get::<IpPool>(CalicoKind::Pool, &state.name)
        .await?
        .is_some()
    {
        return Ok(Vec::new());
    }
    match calico
        .create(CalicoKind::Pool, &state.name, &state.original, false)
        .await
    {
        Ok(IpPool { .. }) => {}
        Err(e) if e.status_code() == Some(409) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(vec![format!(
        "pool {} re-created with its original definition; pods in {} stay there (move them back \
         with `kubectl ippool migrate --from {} --to {}`)",
        state.name, state.temp, state.temp, state.name
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn temporary_pools_are_sized_for_pods_and_nodes() {
        // 10 pods on 3 nodes with /26 blocks: 3 blocks of 64 addresses → /24.
        assert_eq!(temp_prefix(Family::V4, 10, 3, 3, 26), 24);
        // 3000 pods: 6006 addresses → 8192 → /19.
        assert_eq!(temp_prefix(Family::V4, 3000, 3, 3, 26), 19);
        // Never smaller than one block.
        assert_eq!(temp_prefix(Family::V4, 0, 0, 0, 28), 28);
        assert_eq!(temp_prefix(Family::V6, 5, 0, 2, 122), 121);
    }

    #[test]
    fn free_ranges_skip_pools_and_blocks() {
        let cluster = [net("10.0.0.0/8")];
        let taken = [net("10.0.0.0/16"), net("10.1.0.0/26")];
        assert_eq!(free_range(&cluster, &taken, 24), Some(net("10.1.1.0/24")));
        assert_eq!(free_range(&cluster, &[], 24), Some(net("10.0.0.0/24")));
        // Full: nothing.
        assert_eq!(
            free_range(&[net("10.0.0.0/24")], &[net("10.0.0.0/24")], 25),
            None
        );
        // IPv6: a taken /64 inside a /48 is skipped at once.
        let v6 = [net("fd00:10::/48")];
        assert_eq!(
            free_range(&v6, &[net("fd00:10::/64")], 120),
            Some(net("fd00:10:0:1::/120"))
        );
        // Other families are ignored.
        assert_eq!(
            free_range(&v6, &[net("10.0.0.0/8")], 64),
            Some(net("fd00:10::/64"))
        );
    }

    #[test]
    fn the_recreated_pool_keeps_everything_but_the_block_size() {
        let mut original: IpPool = serde_json::from_value(serde_json::json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": "p", "resourceVersion": "9", "uid": "u", "labels": {"a": "b"},
                         "annotations": {"note": "kept"}, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"cidr": "192.168.0.0/16", "blockSize": 26, "ipipMode": "Always", "natOutgoing": true}
        }))
        .unwrap();
        original = definition(&original);
        assert_eq!(original.metadata.resource_version, None);
        assert_eq!(original.metadata.uid, None);
        assert!(original.metadata.extra.is_empty());
        let record = ResizeRecord {
            name: "p".into(),
            block_size: 28,
            original: original.clone(),
            temp: temp_name("p"),
            temp_cidr: "10.1.0.0/24".into(),
            done: vec![],
            migration: None,
        };
        let again = recreated(&record);
        assert_eq!(again.spec.block_size, Some(28));
        assert_eq!(again.metadata.labels, original.metadata.labels);
        assert_eq!(again.metadata.annotations["note"], "kept");
        assert_eq!(
            serde_json::to_value(&again.spec).unwrap()["ipipMode"],
            "Always"
        );
        assert_eq!(record.temp, "p-resize-tmp");
    }
}
