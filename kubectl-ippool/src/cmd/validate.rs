//! `kubectl ippool validate`: check IPPool manifests offline, print compiler-style diagnostics or
//! the JSON report.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::described::{OldPoolError, described_context, old_pool};
use ippool_rules::report::Report;
use ippool_rules::{Source, cidr};

use super::Outcome;

#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 no errors (warnings allowed), 1 errors found, 2 usage or I/O error.
Positions are 1-based lines and columns counted in UTF-16 code units.")]
pub struct ValidateArgs {
    /// Manifest file, directory (its *.yaml, *.yml and *.json files) or - for stdin; repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<PathBuf>,

    /// The cluster's pod CIDR (kube-controller-manager --cluster-cidr); repeatable. Workload
    /// pools outside it are errors.
    #[arg(long = "cluster-cidr", value_name = "CIDR", value_parser = parse_cidr)]
    pub cluster_cidrs: Vec<IpNet>,

    /// The cluster's service CIDR; repeatable. Pools overlapping it are errors.
    #[arg(long = "service-cidr", value_name = "CIDR", value_parser = parse_cidr)]
    pub service_cidrs: Vec<IpNet>,

    /// A snapshot of the cluster's existing IPPools and IPAMBlocks (any accepted format);
    /// repeatable. Objects it does not hold are taken as absent.
    #[arg(long, value_name = "FILE")]
    pub against: Vec<PathBuf>,

    /// Take existing pools, blocks, nodes and the cluster CIDRs from the cluster (kubeconfig);
    /// --cluster-cidr/--service-cidr still win over what is discovered.
    #[arg(long, conflicts_with = "against")]
    pub live: bool,

    /// What is being done with the pools.
    #[arg(long, value_enum, default_value_t = OperationArg::Create)]
    pub operation: OperationArg,

    /// The pool as it is now (required with --operation update).
    #[arg(long, value_name = "FILE", required_if_eq("operation", "update"))]
    pub old: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OperationArg {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

fn parse_cidr(text: &str) -> Result<IpNet, String> {
    cidr::parse_strict(text).map_err(|e| e.to_string())
}

/// An input read into memory under the name it is reported by.
struct Input {
    name: String,
    text: String,
}

impl Input {
    fn source(&self) -> Source<'_> {
        Source {
            name: &self.name,
            text: &self.text,
        }
    }
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn read_file(path: &Path) -> anyhow::Result<Input> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(Input {
        name: path.display().to_string(),
        text,
    })
}

/// Reads every -f argument: files, the manifests directly inside directories, and stdin.
fn read_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut inputs = Vec::new();
    let mut stdin_read = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if stdin_read {
                bail!("-f - (stdin) can be given only once");
            }
            stdin_read = true;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin as UTF-8 text")?;
            inputs.push(Input {
                name: "-".to_owned(),
                text,
            });
        } else if path.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(path)
                .with_context(|| format!("cannot list directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_manifest(p))
                .collect();
            if entries.is_empty() {
                bail!(
                    "directory {} has no *.yaml, *.yml or *.json files; pass files with -f",
                    path.display()
                );
            }
            entries.sort();
            for entry in entries {
                inputs.push(read_file(&entry)?);
            }
        } else if path.exists() {
            inputs.push(read_file(path)?);
        } else {
            bail!(
                "{} does not exist; pass an existing file, a directory or - for stdin",
                path.display()
            );
        }
    }
    Ok(inputs)
}

/// Prints a report about a context file (which is not what is being validated) and fails.
fn context_error(flag: &str, report: &Report) -> anyhow::Error {
    eprint!("{}", report.render_text());
    anyhow::anyhow!("{flag} input has errors (listed above); fix it or leave it out")
}

fn build_context(args: &ValidateArgs) -> anyhow::Result<ClusterContext> {
    let inputs = read_inputs(&args.against)?;
    let against: Vec<Source<'_>> = inputs.iter().map(Input::source).collect();
    described_context(&args.cluster_cidrs, &args.service_cidrs, &against)
        .map_err(|report| context_error("--against", &report))
}

fn build_operation(args: &ValidateArgs) -> anyhow::Result<Operation> {
    Ok(match args.operation {
        OperationArg::Create => Operation::Create,
        OperationArg::Delete => Operation::Delete,
        OperationArg::Update => {
            let Some(path) = &args.old else {
                bail!("--operation update needs --old FILE (the pool as it is now)");
            };
            let input = read_file(path)?;
            let old = old_pool(input.source()).map_err(|e| match e {
                OldPoolError::Unreadable(report) => context_error("--old", &report),
                OldPoolError::Count(n) => anyhow::anyhow!(
                    "--old {} holds {n} IPPools; give exactly one (the current version of the pool being updated)",
                    path.display()
                ),
            })?;
            Operation::Update { old }
        }
    })
}

pub fn run(args: &ValidateArgs, kube: &crate::kube_opts::KubeOpts) -> anyhow::Result<Outcome> {
    let inputs = read_inputs(&args.files)?;
    let ctx = if args.live {
        crate::live::validate_context(kube, &args.cluster_cidrs, &args.service_cidrs)?
    } else {
        build_context(args)?
    };
    let op = build_operation(args)?;
    let sources: Vec<Source<'_>> = inputs.iter().map(Input::source).collect();
    let report = ippool_rules::validate(&sources, &ctx, &op);
    match args.output {
        OutputFormat::Text => print!("{}", report.render_text()),
        OutputFormat::Json => println!("{}", report.to_json()),
    }
    Ok(if report.has_errors() {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}
