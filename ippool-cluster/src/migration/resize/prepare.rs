//! Preparing a resize: continuing the one recorded, or starting afresh — the pool checked, the
//! temporary pool chosen, the first migration planned and the re-created pool checked by the
//! shared rules.

use ippool_rules::cidr;
use ippool_rules::context::{ClusterCidrs, Operation};
use ippool_rules::model::IpPool;
use ippool_rules::report::Severity;
use ippool_rules::rules::check_pool;

use super::recreate::{definition, recreated};
use super::temp::{choose_cidr, temp_name};
use super::{ResizeError, ResizeIntent, ResizePrepared, intent_to_temp};
use crate::migration::execute::{Executor, MigrateError};
use crate::migration::inventory;
use crate::migration::record::ResizeRecord;
use crate::migration::step::{ResizeStep, Step};
use ippool_ipam::plan::{Blocker, PlanError, Scope};
use ippool_ipam::snapshot::{Parts, Snapshot};

/// The resize recorded by an earlier run, asked for again: the command must ask for what it
/// recorded; the first migration is planned again unless it got past moving workloads.
pub(super) async fn resume(
    exec: &Executor,
    intent: &ResizeIntent,
    id: String,
    r: &ResizeRecord,
    cluster_cidrs: Option<ClusterCidrs>,
) -> Result<ResizePrepared, ResizeError> {
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
        Some(exec.plan(&intent_to_temp(intent, r), cluster_cidrs).await?)
    } else {
        None
    };
    Ok(ResizePrepared {
        id,
        record: r.clone(),
        resumed: true,
        plan,
        blockers: Vec::new(),
        temp_origin: "chosen by the earlier run".to_owned(),
    })
}

/// A new resize: checks the pool and the temporary pool's name, picks its CIDR, and plans.
pub(super) async fn start(
    exec: &Executor,
    intent: &ResizeIntent,
    id: String,
    cluster_cidrs: Option<ClusterCidrs>,
) -> Result<ResizePrepared, ResizeError> {
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
    let (temp_cidr, temp_origin) = choose_cidr(
        intent,
        snapshot,
        &net,
        spec.block_size,
        cluster_cidrs.as_ref(),
    )?;
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
    let plan = exec.plan_from(&inventory, &intent_to_temp(intent, &record))?;
    Ok(ResizePrepared {
        id,
        record,
        resumed: false,
        plan: Some(plan),
        blockers,
        temp_origin,
    })
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
