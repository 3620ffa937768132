//! `resize --block-size auto` and `migrate --cidr auto`: what [`ippool_ipam::auto`] picks for the
//! cluster as it is. A run resumed from its record keeps what the first run picked.

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use ippool_cluster::api::CalicoKind;
use ippool_cluster::discovery::Discovery;
use ippool_cluster::migration::record::{Job, lock};
use ippool_ipam::auto::{self, Choice};
use ippool_ipam::snapshot::Parts;
use ippool_rules::cidr::{self as cidr_text, Family};
use ippool_rules::model::IpPool;

use crate::live::{Live, parse_cidr};

/// A value, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrAuto<T> {
    Auto,
    Given(T),
}

pub fn parse_block_size(text: &str) -> Result<OrAuto<u8>, String> {
    match text {
        "auto" => Ok(OrAuto::Auto),
        n => n
            .parse()
            .map(OrAuto::Given)
            .map_err(|_| format!("{n:?} is neither a block size (20-32, 116-128) nor auto")),
    }
}

pub fn parse_cidr_or_auto(text: &str) -> Result<OrAuto<IpNet>, String> {
    match text {
        "auto" => Ok(OrAuto::Auto),
        c => parse_cidr(c).map(OrAuto::Given),
    }
}

async fn pool(live: &Live, name: &str) -> anyhow::Result<IpPool> {
    live.calico
        .get::<IpPool>(CalicoKind::Pool, name)
        .await?
        .with_context(|| {
            format!(
                "IP pool {name:?} does not exist; `kubectl ippool list` shows the pools there are"
            )
        })
}

/// `resize NAME --block-size auto`.
pub async fn block_size(
    live: &Live,
    name: &str,
    state_namespace: &str,
) -> anyhow::Result<Choice<u8>> {
    if let Some(found) = lock::read(&live.client, state_namespace).await?
        && let Job::Resize(r) = &found.record.job
        && r.name == name
    {
        return Ok(Choice {
            value: r.block_size,
            why: "as the interrupted run chose".to_owned(),
        });
    }
    let pool = pool(live, name).await?;
    let net = pool
        .spec
        .cidr_net()
        .with_context(|| format!("pool {name} has no valid CIDR"))?;
    let snapshot = live
        .snapshot(Parts {
            nodes: true,
            ..Parts::NONE
        })
        .await?;
    let shape = auto::shape_of(
        &snapshot.nodes,
        Family::of(&net),
        live.max_blocks_per_host().await?,
    );
    let choice = auto::block_size(&shape).map_err(anyhow::Error::msg)?;
    if pool.spec.defaulted().block_size == Some(choice.value) {
        bail!(
            "pool {name} already has blockSize {}, the size advised for this cluster ({}): nothing to change",
            choice.value,
            choice.why
        );
    }
    Ok(choice)
}

/// `migrate --from OLD --to NEW --cidr auto`.
pub async fn cidr(
    live: &Live,
    from: &str,
    to: &str,
    found: &Discovery,
    state_namespace: &str,
) -> anyhow::Result<Choice<IpNet>> {
    if let Some(record) = lock::read(&live.client, state_namespace).await?
        && let Job::Migrate(m) = &record.record.job
        && (m.from.as_str(), m.to.as_str()) == (from, to)
        && let Some(chosen) = m.new_cidr.as_deref().and_then(|c| parse_cidr(c).ok())
    {
        return Ok(Choice {
            value: chosen,
            why: "as the interrupted run chose".to_owned(),
        });
    }
    if let Some(new) = live.calico.get::<IpPool>(CalicoKind::Pool, to).await?
        && let Some(net) = new.spec.cidr_net()
    {
        return Ok(Choice {
            value: cidr_text::canonical(&net),
            why: format!("pool {to} exists already"),
        });
    }
    let old = pool(live, from).await?;
    let spec = old.spec.defaulted();
    let net = spec
        .cidr
        .with_context(|| format!("pool {from} has no valid CIDR"))?;
    let block_size = spec
        .block_size
        .with_context(|| format!("pool {from} has no valid blockSize"))?;
    let snapshot = live
        .snapshot(Parts {
            pools: true,
            blocks: true,
            nodes: true,
            ..Parts::NONE
        })
        .await?;
    let shape = auto::shape_of(
        &snapshot.nodes,
        Family::of(&net),
        live.max_blocks_per_host().await?,
    );
    let taken: Vec<IpNet> = snapshot
        .pools
        .iter()
        .filter_map(|p| p.spec.cidr_net())
        .chain(snapshot.blocks.iter().filter_map(|b| b.cidr()))
        .chain(found.service_cidrs().into_iter().flatten())
        .collect();
    let cluster = found.cluster_cidrs().map(|c| c.cidrs).unwrap_or_default();
    auto::cidr(&shape, block_size, &net, &cluster, &taken).map_err(anyhow::Error::msg)
}
