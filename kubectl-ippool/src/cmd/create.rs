//! `kubectl ippool create NAME --cidr CIDR …`: a new pool, validated against the live cluster
//! (existing pools and blocks, cluster CIDR, nodes) before anything is written.

use clap::Args;
use ippool_cluster::api::CalicoKind;
use ippool_ipam::snapshot::Parts;
use ippool_rules::cidr::{self, Family};
use ippool_rules::context::Operation;
use ippool_rules::model::{EncapMode, IpPool, IpPoolSpec, ObjectMeta};
use ippool_rules::rules::check_pool;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::{CidrArgs, DryRun, DryRunArg, Live, judge, pool_ref, rules_context};
use crate::output::to_yaml;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The pool's name.
    pub name: String,

    /// The pool's CIDR, e.g. 10.244.0.0/16.
    #[arg(long)]
    pub cidr: String,

    /// Prefix length of the blocks handed to nodes (default 26 for IPv4, 122 for IPv6).
    #[arg(long = "block-size")]
    pub block_size: Option<i64>,

    /// IPIP encapsulation: Never, Always or CrossSubnet.
    #[arg(long = "ipip-mode", value_parser = ["Never", "Always", "CrossSubnet"])]
    pub ipip_mode: Option<String>,

    /// VXLAN encapsulation: Never, Always or CrossSubnet.
    #[arg(long = "vxlan-mode", value_parser = ["Never", "Always", "CrossSubnet"])]
    pub vxlan_mode: Option<String>,

    /// SNAT traffic from pods to destinations outside the pools.
    #[arg(long = "nat-outgoing")]
    pub nat_outgoing: bool,

    /// Calico selector of the nodes that may use the pool (default all()).
    #[arg(long = "node-selector")]
    pub node_selector: Option<String>,

    /// Create the pool disabled (no new allocations from it).
    #[arg(long)]
    pub disabled: bool,

    #[command(flatten)]
    pub dry_run: DryRunArg,

    #[command(flatten)]
    pub cidrs: CidrArgs,
}

/// The pool as it will be stored, Calico's defaults written out as calicoctl stores them.
pub fn new_pool(args: &CreateArgs, api_version: &str) -> IpPool {
    let family = cidr::parse_lenient(&args.cidr).ok().map(|n| Family::of(&n));
    IpPool {
        api_version: api_version.to_owned(),
        kind: "IPPool".to_owned(),
        metadata: ObjectMeta {
            name: Some(args.name.clone()),
            ..ObjectMeta::default()
        },
        spec: IpPoolSpec {
            cidr: Some(args.cidr.clone()),
            block_size: args
                .block_size
                .or_else(|| family.map(|f| i64::from(cidr::default_block_size(f)))),
            ipip_mode: Some(EncapMode::from(
                args.ipip_mode.as_deref().unwrap_or("Never"),
            )),
            vxlan_mode: Some(EncapMode::from(
                args.vxlan_mode.as_deref().unwrap_or("Never"),
            )),
            nat_outgoing: Some(args.nat_outgoing),
            disabled: Some(args.disabled),
            node_selector: Some(
                args.node_selector
                    .clone()
                    .unwrap_or_else(|| "all()".to_owned()),
            ),
            ..IpPoolSpec::default()
        },
    }
}

pub fn run(args: &CreateArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let (snapshot, found) = tokio::join!(
            live.snapshot(Parts::RULES),
            live.discover_cidrs(&args.cidrs)
        );
        let snapshot = snapshot?;
        let pool = new_pool(args, live.apis.pool_group().api_version());
        let ctx = rules_context(&snapshot, Parts::RULES, &found);
        let findings = check_pool(&pool, &ctx, &Operation::Create);
        if let Err(refused) = judge(&args.name, &findings) {
            eprintln!("error: {refused}");
            return Ok(Outcome::Findings);
        }
        let reference = pool_ref(&live.apis, &args.name);
        match args.dry_run.dry_run {
            DryRun::Client => {
                print!("{}", to_yaml(&pool)?);
                eprintln!("{reference} created (dry run: validated, nothing written)");
            }
            mode => {
                live.calico
                    .create(CalicoKind::Pool, &args.name, &pool, mode == DryRun::Server)
                    .await?;
                println!("{reference} created{}", mode.suffix());
            }
        }
        Ok(Outcome::Clean)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: CreateArgs,
    }

    #[test]
    fn defaults_are_written_out_for_the_pool_family() {
        let w = Wrapper::parse_from([
            "x",
            "blue",
            "--cidr",
            "fd00:10::/64",
            "--vxlan-mode",
            "Always",
        ]);
        let pool = new_pool(&w.args, "projectcalico.org/v3");
        assert_eq!(pool.spec.block_size, Some(122));
        assert_eq!(pool.spec.vxlan_mode, Some(EncapMode::Always));
        assert_eq!(pool.spec.node_selector.as_deref(), Some("all()"));
        assert_eq!(pool.api_version, "projectcalico.org/v3");
        assert_eq!(w.args.dry_run.dry_run, DryRun::None);
        let w = Wrapper::parse_from(["x", "b", "--cidr", "10.0.0.0/16", "--dry-run"]);
        assert_eq!(w.args.dry_run.dry_run, DryRun::Client);
        assert_eq!(new_pool(&w.args, "v").spec.block_size, Some(26));
    }
}
