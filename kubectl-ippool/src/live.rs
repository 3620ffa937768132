//! What the cluster commands share: a connection with the APIs discovered, the snapshot, the
//! live rules context (pools, blocks, cluster CIDRs, nodes) and the printing of rule findings.

use std::io::Write as _;

use anyhow::Context as _;

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use ippool_cluster::api::{CalicoKind, ServedApis};
use ippool_cluster::client::CalicoClient;
use ippool_cluster::discovery::{self, CidrFlags, Discovery};
use ippool_ipam::snapshot::{Parts, Snapshot};
use ippool_rules::cidr;
use ippool_rules::context::ClusterContext;
use ippool_rules::model::IpamConfig;
use ippool_rules::report::Severity;
use ippool_rules::rules::Finding;
use kube::Client;

use crate::kube_opts::KubeOpts;

/// A connected client with the API choice made.
pub struct Live {
    pub client: Client,
    pub apis: ServedApis,
    pub calico: CalicoClient,
}

impl Live {
    pub async fn connect(opts: &KubeOpts) -> anyhow::Result<Live> {
        opts.init_logging();
        let (client, server) = opts.client().await?;
        let apis = ServedApis::discover(&client)
            .await
            .with_context(|| format!("API server {server}"))?;
        tracing::info!("{apis}");
        Ok(Live {
            calico: CalicoClient::new(client.clone(), apis),
            client,
            apis,
        })
    }

    /// IPAMConfig's `maxBlocksPerHost` (0: no limit, or no IPAMConfig yet).
    pub async fn max_blocks_per_host(&self) -> anyhow::Result<u64> {
        let config = self
            .calico
            .get::<IpamConfig>(CalicoKind::IpamConfig, "default")
            .await?;
        Ok(config.map_or(0, |c| c.max_blocks_per_host()))
    }

    pub async fn snapshot(&self, parts: Parts) -> anyhow::Result<Snapshot> {
        Ok(ippool_cluster::load::snapshot(&self.client, &self.apis, parts).await?)
    }

    /// Cluster and service CIDRs: the flags, else what the cluster says (each source tried is
    /// logged at -v).
    pub async fn discover_cidrs(&self, flags: &CidrArgs) -> Discovery {
        let found = discovery::discover(&self.client, &flags.to_flags()).await;
        for attempt in &found.attempts {
            tracing::info!(
                "cluster CIDR source {}: {:?}",
                attempt.source,
                attempt.outcome
            );
        }
        match &found.cluster {
            Some((source, cidrs)) => tracing::info!(
                "cluster CIDR {} (from {source})",
                cidrs
                    .iter()
                    .map(IpNet::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => tracing::info!("cluster CIDR not found; rules that need it will say so"),
        }
        found
    }
}

/// The context `validate --live` judges manifests in: the cluster's pools, blocks, nodes and
/// pods, and its CIDRs (the flags, else discovery).
pub fn validate_context(
    kube: &KubeOpts,
    cluster_cidrs: &[IpNet],
    service_cidrs: &[IpNet],
) -> anyhow::Result<ClusterContext> {
    let flags = CidrArgs {
        cluster_cidrs: cluster_cidrs.to_vec(),
        service_cidrs: service_cidrs.to_vec(),
    };
    crate::kube_opts::block_on(async {
        let live = Live::connect(kube).await?;
        let (snapshot, found) =
            tokio::join!(live.snapshot(Parts::RULES), live.discover_cidrs(&flags));
        Ok(rules_context(&snapshot?, Parts::RULES, &found))
    })
}

/// `--cluster-cidr` / `--service-cidr` for commands that validate against the cluster.
#[derive(Debug, Clone, Default, Args)]
pub struct CidrArgs {
    /// The cluster's pod CIDR, overriding discovery; repeatable.
    #[arg(long = "cluster-cidr", value_name = "CIDR", value_parser = parse_cidr)]
    pub cluster_cidrs: Vec<IpNet>,

    /// The cluster's service CIDR, overriding discovery; repeatable.
    #[arg(long = "service-cidr", value_name = "CIDR", value_parser = parse_cidr)]
    pub service_cidrs: Vec<IpNet>,
}

impl CidrArgs {
    pub fn to_flags(&self) -> CidrFlags {
        CidrFlags {
            cluster_cidrs: self.cluster_cidrs.clone(),
            service_cidrs: self.service_cidrs.clone(),
        }
    }
}

pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    cidr::parse_strict(text).map_err(|e| e.to_string())
}

/// The rules' view of the cluster from a snapshot and the CIDRs discovered beside it.
pub fn rules_context(snapshot: &Snapshot, parts: Parts, found: &Discovery) -> ClusterContext {
    snapshot.rules_context(parts, found.cluster_cidrs(), found.service_cidrs())
}

/// `--dry-run`: `client` validates and prints without calling the server; `server` has the API
/// server validate the write without storing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DryRun {
    #[default]
    None,
    Client,
    Server,
}

impl DryRun {
    pub fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }
}

/// The `--dry-run` flag as kubectl spells it (a bare `--dry-run` means `client`).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct DryRunArg {
    /// Validate only: `client` (no write at all) or `server` (the API server checks the write but
    /// does not store it).
    #[arg(
        long = "dry-run",
        value_enum,
        default_value_t = DryRun::None,
        num_args = 0..=1,
        default_missing_value = "client"
    )]
    pub dry_run: DryRun,
}

/// `ippool.crd.projectcalico.org/NAME`, as kubectl names what it changed.
pub fn pool_ref(apis: &ServedApis, name: &str) -> String {
    format!("ippool.{}/{name}", apis.resource(CalicoKind::Pool).group)
}

/// A change refused before anything was written; the message says why and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Prints the findings and refuses when any is an error.
pub fn judge(name: &str, findings: &[Finding]) -> Result<Tally, Refused> {
    let tally = print_findings(name, findings);
    if tally.errors > 0 {
        return Err(Refused(format!(
            "refused: {} error(s) in IP pool {name} (listed above); nothing was written",
            tally.errors
        )));
    }
    Ok(tally)
}

/// Counts of findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub errors: usize,
    pub warnings: usize,
}

/// Prints findings for pool `name` to stderr, compiler style, and counts them.
pub fn print_findings(name: &str, findings: &[Finding]) -> Tally {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(render_findings(name, findings).as_bytes());
    let mut tally = Tally::default();
    for f in findings {
        match f.severity {
            Severity::Error => tally.errors += 1,
            Severity::Warning => tally.warnings += 1,
            Severity::Info => {}
        }
    }
    tally
}

pub fn render_findings(name: &str, findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let label = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "note",
        };
        let path = if f.path.is_root() {
            String::new()
        } else {
            format!(" {}", f.path)
        };
        out.push_str(&format!(
            "{label}[{}] ippool/{name}{path}: {}\n",
            f.code, f.message
        ));
        if let Some(hint) = &f.hint {
            out.push_str(&format!("  = hint: {hint}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_rules::report::FieldPath;

    #[test]
    fn findings_read_like_compiler_diagnostics() {
        let findings = vec![
            Finding {
                code: "IPP012",
                severity: Severity::Error,
                path: FieldPath::keys(&["spec", "blockSize"]),
                message: "IPv4 block size must be between 20 and 32".to_owned(),
                hint: Some("use 26".to_owned()),
            },
            Finding {
                code: "IPP005",
                severity: Severity::Info,
                path: FieldPath::root(),
                message: "cluster CIDR not checked".to_owned(),
                hint: None,
            },
        ];
        assert_eq!(
            render_findings("p", &findings),
            "error[IPP012] ippool/p spec.blockSize: IPv4 block size must be between 20 and 32\n  \
             = hint: use 26\nnote[IPP005] ippool/p: cluster CIDR not checked\n"
        );
    }
}
