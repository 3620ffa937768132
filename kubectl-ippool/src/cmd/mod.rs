//! The command line: a `Command` enum with one variant per subcommand, each implemented in its
//! own file. To add a subcommand: add a variant here, a file `cmd/<name>.rs`, and a match arm in
//! [`run`].

pub mod advise;
pub mod apply;
pub mod auto;
pub mod blocks;
pub mod capacity;
pub mod check;
pub mod cluster_cidr;
pub mod completion;
pub mod create;
pub mod delete;
pub mod disable;
pub mod enable;
pub mod explain;
pub mod gc;
pub mod in_cluster;
pub mod list;
pub mod migrate;
pub mod pods;
pub mod policy;
pub mod resize;
pub mod schema;
pub mod show;
pub mod status;
pub mod validate;
pub mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Safe changes to Calico IP pools.
#[derive(Debug, Parser)]
#[command(name = "kubectl-ippool", bin_name = "kubectl ippool", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub kube: crate::kube_opts::KubeOpts,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check IPPool manifests against Calico's rules and the project's safety rules (no cluster needed).
    Validate(validate::ValidateArgs),
    /// Print a JSON Schema for IPPool manifests (for yaml-language-server and other editors).
    Schema,
    /// List every pool with its settings and usage (blocks, addresses, pods, nodes).
    List(list::ListArgs),
    /// Show one pool in depth: blocks, pods by owner, tunnel addresses, leftovers, rule findings.
    Show(show::ShowArgs),
    /// IPAM blocks per pool, plus blocks no pool covers, wrong-size blocks and stale affinities.
    Blocks(blocks::BlocksArgs),
    /// Pods holding addresses in a pool, with owner and node.
    Pods(pods::PodsArgs),
    /// Which pools Calico would give a pod's address from, and why each other pool is out.
    Explain(explain::ExplainArgs),
    /// The room each pool has left, and what a growth would run out of first.
    Capacity(capacity::CapacityArgs),
    /// A block size and pool size for a cluster of N nodes and P pods per node, with the trade-offs
    /// (no cluster needed).
    Advise(advise::AdviseArgs),
    /// Create a pool, validated against the live cluster first.
    Create(create::CreateArgs),
    /// Create or change pools from a manifest, validated against the live cluster first.
    Apply(apply::ApplyArgs),
    /// Let Calico allocate from a pool again.
    Enable(enable::ToggleArgs),
    /// Stop new allocations from a pool (pods keep their addresses).
    Disable(enable::ToggleArgs),
    /// Delete a disabled pool that no pod uses, releasing its blocks in Calico's order.
    Delete(delete::DeleteArgs),
    /// Check IPAM consistency like `calicoctl ipam check` (exit 1 on problems).
    Check(check::CheckArgs),
    /// Remove leftover blocks and stale affinities (dry run unless --yes).
    Gc(gc::GcArgs),
    /// Move every pod out of one pool into another without downtime, then delete the old pool
    /// (plan first; resumable; --abort stops it).
    Migrate(migrate::MigrateArgs),
    /// Change a pool's blockSize through a temporary pool (Calico's nine steps as one command).
    Resize(resize::ResizeArgs),
    /// The migration or resize in progress, wherever it runs: steps, the process running it, pods
    /// left in the old pool (--follow: until it ends).
    Status(status::StatusArgs),
    /// Show the cluster's pod CIDR and where it was found.
    ClusterCidr(cluster_cidr::ClusterCidrArgs),
    /// Print a shell completion script (bash, zsh, fish).
    Completion(completion::CompletionArgs),
    /// The admission webhook that makes the API server refuse unsafe pool changes from any client.
    Webhook(webhook::WebhookArgs),
    /// Print the stateless rules as a ValidatingAdmissionPolicy the API server enforces itself
    /// (no server to run); --check compares the installed one.
    Policy(policy::PolicyArgs),
}

/// How a subcommand ended, when it ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing wrong found.
    Clean,
    /// The subcommand found errors in its input (exit status 1).
    Findings,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Findings => ExitCode::from(1),
        }
    }
}

/// Runs a parsed command line. `Err` means a usage or I/O problem (exit status 2).
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Validate(args) => validate::run(&args, &cli.kube),
        Command::Schema => schema::run(),
        Command::List(args) => list::run(&args, &cli.kube),
        Command::Show(args) => show::run(&args, &cli.kube),
        Command::Blocks(args) => blocks::run(&args, &cli.kube),
        Command::Pods(args) => pods::run(&args, &cli.kube),
        Command::Explain(args) => explain::run(&args, &cli.kube),
        Command::Capacity(args) => capacity::run(&args, &cli.kube),
        Command::Advise(args) => advise::run(&args),
        Command::Create(args) => create::run(&args, &cli.kube),
        Command::Apply(args) => apply::run(&args, &cli.kube),
        Command::Enable(args) => enable::run(&args, &cli.kube),
        Command::Disable(args) => disable::run(&args, &cli.kube),
        Command::Delete(args) => delete::run(&args, &cli.kube),
        Command::Check(args) => check::run(&args, &cli.kube),
        Command::Gc(args) => gc::run(&args, &cli.kube),
        Command::Migrate(args) => migrate::run(&args, &cli.kube),
        Command::Resize(args) => resize::run(&args, &cli.kube),
        Command::Status(args) => status::run(&args, &cli.kube),
        Command::ClusterCidr(args) => cluster_cidr::run(&args, &cli.kube),
        Command::Completion(args) => completion::run(&args),
        Command::Webhook(args) => webhook::run(&args),
        Command::Policy(args) => policy::run(&args, &cli.kube),
    }
}
