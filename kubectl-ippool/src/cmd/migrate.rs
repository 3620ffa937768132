//! `kubectl ippool migrate --from OLD --to NEW [--cidr CIDR]`: Calico's pool migration as one
//! command — plan (printed before anything is written), then create/verify NEW → disable OLD →
//! move workloads → verify → release and delete OLD, resumable and exclusive. `--abort` stops a
//! migration in progress. The work is done by `ippool_cluster::migration`; this file parses
//! flags, connects, prints and asks.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use crate::progress::{Bars, JsonLines, TextLines};
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use ippool_cluster::api::ServedApis;
use ippool_cluster::client::CalicoClient;
use ippool_cluster::migration::abort;
use ippool_cluster::migration::events::{Event, Progress, RunOutcome, RunStats};
use ippool_cluster::migration::execute::{self, Executor, Options};
use ippool_cluster::migration::fence::{Fence, LeaseClock};
use ippool_cluster::migration::job::Needs;
use ippool_cluster::migration::record::DEFAULT_STATE_NAMESPACE;
use ippool_cluster::migration::requests::RequestCounter;
use ippool_cluster::migration::retry::RetryTransient;
use ippool_ipam::plan::{Intent, Scope, TargetAction};
use kube::Client;
use kube::client::ClientBuilder;
use tokio::time::Instant;
use tower::buffer::BufferLayer;
use tower::retry::RetryLayer;

use super::Outcome;
use super::auto::{self, OrAuto, parse_cidr_or_auto};
use super::in_cluster::{self, InClusterArgs};
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::{CidrArgs, Live};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// The plan, then progress: live bars on a terminal, plain lines otherwise.
    #[default]
    Text,
    /// One JSON event per line (schema: `ippool_cluster::migration::events`).
    Json,
}

/// The flags migrate and resize share.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Workloads moved at the same time (workloads sharing a PodDisruptionBudget always move one
    /// after the other).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,

    /// Longest wait for any one thing: a rollout, a refused eviction, tunnel addresses (e.g. 90s, 10m).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = ippool_cluster::duration::parse)]
    pub timeout: Duration,

    /// Print the plan and stop.
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    /// Do not ask before starting.
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Leave the old pool (disabled) in place at the end.
    #[arg(long = "keep-old-pool")]
    pub keep_old_pool: bool,

    /// Delete pods no controller owns (they are not recreated); without it they block the run.
    #[arg(long = "delete-bare-pods")]
    pub delete_bare_pods: bool,

    /// Evict Jobs' running pods (each eviction counts against the Job's backoffLimit); without
    /// it they block the run.
    #[arg(long = "evict-jobs")]
    pub evict_jobs: bool,

    /// Stop the migration in progress: re-enable the old pool and release the lock; pods
    /// already moved stay where they are.
    #[arg(long)]
    pub abort: bool,

    /// Output: `text` or `json` (one event per line).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,

    /// Only this namespace's pods (keeps the old pool).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,

    /// Only pods matching this label selector, as kubectl's -l (keeps the old pool).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Namespace of the migration's Lease (lock and record).
    #[arg(long = "state-namespace", default_value = DEFAULT_STATE_NAMESPACE, value_name = "NS")]
    pub state_namespace: String,

    #[command(flatten)]
    pub cidrs: CidrArgs,

    #[command(flatten)]
    pub in_cluster: InClusterArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The pool to move pods out of.
    #[arg(long, value_name = "OLD", required_unless_present = "abort")]
    pub from: Option<String>,

    /// The pool to move pods into.
    #[arg(long, value_name = "NEW", required_unless_present = "abort")]
    pub to: Option<String>,

    /// Create NEW with this CIDR and the old pool's other settings; `auto`: the first free range
    /// inside the cluster CIDR that holds every node's blocks twice over, and at least OLD's size.
    #[arg(long, value_name = "CIDR|auto", value_parser = parse_cidr_or_auto)]
    pub cidr: Option<OrAuto<IpNet>>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// The progress sink for the chosen output.
pub fn progress(format: Format) -> Arc<dyn Progress> {
    match format {
        Format::Json => Arc::new(JsonLines::new(std::io::stdout())),
        Format::Text if std::io::stderr().is_terminal() => Arc::new(Bars::new()),
        Format::Text => Arc::new(TextLines::new(std::io::stdout())),
    }
}

/// A connected run: the executor (a normal client, and one that does not retry for evictions,
/// both counting their requests), and how to report.
pub struct Run {
    pub live: Live,
    pub exec: Executor,
    pub format: Format,
    counter: RequestCounter,
    started: Instant,
}

impl Run {
    pub async fn connect(kube: &KubeOpts, args: &RunArgs) -> anyhow::Result<Run> {
        kube.init_logging();
        let started = Instant::now();
        let counter = RequestCounter::default();
        let config = kube.config().await?;
        let server = config.cluster_url.to_string();
        // Outermost first: a request is retried while it fails in passing (each try counted, and
        // each write let through only while the lock is confirmed). An eviction's 429 is a
        // disruption budget's answer, so its client hands that back at once.
        let clock = LeaseClock::default();
        let build = |too_many_requests: bool| -> anyhow::Result<Client> {
            let mut config = config.clone();
            config.default_retry = false;
            Ok(ClientBuilder::try_from(config)
                .with_context(|| {
                    format!(
                        "cannot build a client for {server}; check the kubeconfig's certificates"
                    )
                })?
                .with_layer(&counter)
                .with_layer(&Fence::new(clock.clone()))
                .with_layer(&BufferLayer::new(1024))
                .with_layer(&RetryLayer::new(RetryTransient::new(
                    args.timeout,
                    too_many_requests,
                )))
                .build())
        };
        let client = build(true)?;
        let eviction_client = build(false)?;
        let apis = ServedApis::discover(&client).await?;
        tracing::info!("{apis}");
        let live = Live {
            calico: CalicoClient::new(client.clone(), apis),
            client: client.clone(),
            apis,
        };
        let exec = Executor {
            client,
            eviction_client,
            apis,
            progress: progress(args.output),
            options: Options {
                concurrency: args.concurrency.max(1),
                timeout: args.timeout,
                state_namespace: args.state_namespace.clone(),
            },
            clock,
        };
        Ok(Run {
            live,
            exec,
            format: args.output,
            counter,
            started,
        })
    }

    /// The closing event, with what the run cost.
    pub fn finish(&self, outcome: RunOutcome) {
        self.exec.progress.emit(Event::Finished {
            outcome,
            stats: Some(RunStats {
                api_requests: self.counter.count(),
                seconds: self.started.elapsed().as_secs_f64(),
            }),
        });
    }

    /// Reports a failure as an event in JSON mode (in text mode the error is printed once, on
    /// stderr).
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        if self.format == Format::Json {
            self.exec.progress.emit(Event::Failed {
                error: error.to_string(),
            });
        }
    }

    /// Prints text meant for people (not in JSON mode).
    pub fn say(&self, text: &str) {
        if self.format == Format::Text {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }

    /// Runs `--abort`.
    pub async fn abort(&self) -> anyhow::Result<Outcome> {
        match abort::abort(&self.exec).await {
            Ok(done) => {
                self.say(&done.iter().map(|d| format!("{d}\n")).collect::<String>());
                self.finish(RunOutcome::Aborted);
                Ok(Outcome::Clean)
            }
            Err(e) => {
                self.failed(&e);
                Err(e.into())
            }
        }
    }
}

/// Asks on the terminal; refuses without one (use --yes).
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "not starting without confirmation: stdin is not a terminal; pass --yes to run \
             without the question"
        );
    }
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{question} [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

pub fn run(args: &MigrateArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let run = Run::connect(kube, &args.run).await?;
        let exec = &run.exec;
        if args.run.abort {
            return run.abort().await;
        }
        let (Some(from), Some(to)) = (&args.from, &args.to) else {
            anyhow::bail!("--from and --to are required (or --abort)");
        };
        let found = run.live.discover_cidrs(&args.run.cidrs).await;
        let new_cidr = match args.cidr {
            Some(OrAuto::Auto) => {
                let choice =
                    auto::cidr(&run.live, from, to, &found, &args.run.state_namespace).await?;
                run.say(&format!("--cidr auto: {} ({})\n", choice.value, choice.why));
                Some(choice.value)
            }
            Some(OrAuto::Given(cidr)) => Some(cidr),
            None => None,
        };
        let cidrs = found.cluster_cidrs();
        let in_cluster_command = || {
            let mut command = vec![
                "migrate".to_owned(),
                format!("--from={from}"),
                format!("--to={to}"),
            ];
            command.extend(new_cidr.map(|c| format!("--cidr={c}")));
            command.extend(in_cluster::shared_args(&args.run, &found));
            command
        };
        let intent = Intent {
            from: from.clone(),
            to: to.clone(),
            new_cidr,
            scope: Scope {
                namespace: args.run.namespace.clone(),
                selector: args.run.selector.clone(),
                selected: None,
            },
            evict_jobs: args.run.evict_jobs,
            delete_bare_pods: args.run.delete_bare_pods,
            keep_old_pool: args.run.keep_old_pool,
        };
        let prepared = match execute::prepare(exec, &intent, cidrs, args.run.dry_run).await {
            Ok(p) => p,
            Err(e) => {
                run.failed(&e);
                return Err(e.into());
            }
        };
        match &prepared.plan {
            Some(plan) => run.say(&crate::plan_text::migration(plan)),
            None => run.say(&format!(
                "Migration {} was interrupted after moving workloads; continuing with: {}\n",
                prepared.id,
                ["verify", "release-old", "delete-old"]
                    .iter()
                    .filter(|s| !prepared.record.done.iter().any(|d| d.name() == **s))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        if prepared.plan.as_ref().is_some_and(|p| p.is_blocked()) {
            run.finish(RunOutcome::Blocked);
            return Ok(Outcome::Findings);
        }
        if args.run.dry_run {
            run.finish(RunOutcome::DryRun);
            return Ok(Outcome::Clean);
        }
        if !args.run.yes {
            let question = match &prepared.plan {
                Some(plan) => format!(
                    "\nMigrate {} pod(s) from {} to {}{}?",
                    plan.pods_to_move(),
                    from,
                    to,
                    if prepared.resumed {
                        " (continuing the interrupted run)"
                    } else {
                        ""
                    }
                ),
                None => format!("\nContinue migration {}?", prepared.id),
            };
            if !confirm(&question)? {
                run.finish(RunOutcome::Declined);
                return Ok(Outcome::Findings);
            }
        }
        if args.run.in_cluster.in_cluster {
            let plan = prepared.plan.as_ref();
            let needs = Needs::new(
                run.live.apis,
                plan,
                plan.is_some_and(|p| p.target_action == TargetAction::Create),
                !prepared.record.keep_old_pool,
            );
            in_cluster::start(&run, &args.run, in_cluster_command(), needs).await?;
            return Ok(Outcome::Clean);
        }
        match execute::execute(exec, prepared).await {
            Ok(()) => {
                run.finish(RunOutcome::Completed);
                Ok(Outcome::Clean)
            }
            Err(e) => {
                run.failed(&e);
                Err(e.into())
            }
        }
    })
}
