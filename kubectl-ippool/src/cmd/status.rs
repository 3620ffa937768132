//! `kubectl ippool status [--follow]`: the migration or resize in progress, from its record in the
//! cluster (the Lease `ippool-migration`), wherever it runs: its steps done, the one under way, the
//! process running it and whether it is alive, and the pods still holding addresses in the pool
//! being left. `--follow` prints again on every change until the record is gone, then says whether
//! the migration finished or was stopped.

use std::net::IpAddr;
use std::pin::pin;

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt as _;
use ipnet::IpNet;
use ippool_cluster::api::CalicoKind;
use ippool_cluster::migration::job::JOB_NAME;
use ippool_cluster::migration::record::lock::{self, Found};
use ippool_cluster::migration::record::{DEFAULT_STATE_NAMESPACE, Job, LEASE_NAME, MigrateRecord};
use ippool_cluster::migration::step::{ResizeStep, Step};
use ippool_ipam::snapshot::Parts;
use ippool_rules::model::IpPool;
use k8s_openapi::api::batch::v1::Job as BatchJob;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::watch_object;
use serde::Serialize;

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::Live;
use crate::output::{Format, OutputArgs};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print again on every change until the migration ends (exit 1 if it ends unfinished).
    #[arg(long, short = 'f')]
    pub follow: bool,

    /// Namespace of the migration's record (the Lease `ippool-migration`).
    #[arg(long = "state-namespace", default_value = DEFAULT_STATE_NAMESPACE, value_name = "NS")]
    pub state_namespace: String,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// One step and where the run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepState {
    pub step: String,
    pub state: &'static str,
}

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: &'static str,
    /// `running`, `stalled` (no live process holds it: run its command again), `finished`,
    /// `stopped` (aborted, or ended unfinished), or `none`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewed_seconds_ago: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepState>,
    /// The pool being left and the pods still holding an address in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaving: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods_left: Option<usize>,
}

pub fn run(args: &StatusArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let live = Live::connect(kube).await?;
        let ns = args.state_namespace.as_str();
        let mut found = lock::read(&live.client, ns).await?;
        if found.is_none() && args.follow && job_starting(&live, ns).await? {
            // An --in-cluster run whose pod has not taken the lock yet.
            found = wait_for_record(&live, ns).await?;
        }
        let Some(found) = found else {
            print!("{}", render(&idle(), &args.output)?);
            return Ok(Outcome::Clean);
        };
        let mut shown = status_of(&live, &found).await?;
        print!("{}", render(&shown, &args.output)?);
        if !args.follow {
            return Ok(Outcome::Clean);
        }
        let api: Api<Lease> = Api::namespaced(live.client.clone(), ns);
        let mut events = pin!(watch_object(api, LEASE_NAME).default_backoff());
        // A run that died leaves the Lease unchanged: look again now and then.
        let mut tick = tokio::time::interval(RECHECK);
        let mut last = found;
        let end = loop {
            tokio::select! {
                event = events.next() => {
                    // The event only says that the Lease changed (or is gone): read it again.
                    let Some(event) = event else { break ended(&live, &last).await? };
                    let lease = event.with_context(|| format!("watch Lease {ns}/{LEASE_NAME}"))?;
                    if lease.is_none() {
                        break ended(&live, &last).await?;
                    }
                }
                _ = tick.tick() => {}
            }
            let Some(found) = lock::read(&live.client, ns).await? else {
                break ended(&live, &last).await?;
            };
            let now = status_of(&live, &found).await?;
            if now.state == "stalled" && job_failed(&live, ns).await? {
                break Status {
                    state: "stopped",
                    summary: Some(format!(
                        "the Job running it failed: see `kubectl -n {ns} logs job/{JOB_NAME}`, then run the migration again or abort it"
                    )),
                    ..now
                };
            }
            if !same_progress(&now, &shown) {
                print!("{}", render(&now, &args.output)?);
                shown = now;
            }
            last = found;
        };
        print!("{}", render(&end, &args.output)?);
        Ok(if end.state == "finished" {
            Outcome::Clean
        } else {
            Outcome::Findings
        })
    })
}

/// How often `--follow` looks again without a change of the Lease.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Equal but for the seconds since the last renewal, which change every renewal.
fn same_progress(a: &Status, b: &Status) -> bool {
    let plain = |s: &Status| Status {
        renewed_seconds_ago: None,
        ..s.clone()
    };
    plain(a) == plain(b)
}

/// The migration's Job (an `--in-cluster` run), if there is one.
async fn job(live: &Live, namespace: &str) -> anyhow::Result<Option<BatchJob>> {
    let jobs: Api<BatchJob> = Api::namespaced(live.client.clone(), namespace);
    jobs.get_opt(JOB_NAME)
        .await
        .with_context(|| format!("read Job {namespace}/{JOB_NAME}"))
}

fn has_condition(job: &BatchJob, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// Whether the migration's Job has failed for good.
async fn job_failed(live: &Live, namespace: &str) -> anyhow::Result<bool> {
    Ok(job(live, namespace)
        .await?
        .is_some_and(|j| has_condition(&j, "Failed")))
}

/// Whether a Job runs a migration that has not taken the lock yet.
async fn job_starting(live: &Live, namespace: &str) -> anyhow::Result<bool> {
    Ok(job(live, namespace)
        .await?
        .is_some_and(|j| !has_condition(&j, "Failed") && !has_condition(&j, "Complete")))
}

/// Waits until the Job's run has written its record (or the Job has ended without one).
async fn wait_for_record(live: &Live, namespace: &str) -> anyhow::Result<Option<Found>> {
    let api: Api<Lease> = Api::namespaced(live.client.clone(), namespace);
    let mut events = pin!(watch_object(api, LEASE_NAME).default_backoff());
    let mut tick = tokio::time::interval(RECHECK);
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return Ok(None) };
                let lease = event.with_context(|| format!("watch Lease {namespace}/{LEASE_NAME}"))?;
                if lease.is_some() {
                    return Ok(lock::read(&live.client, namespace).await?);
                }
            }
            _ = tick.tick() => {
                if !job_starting(live, namespace).await? {
                    return Ok(lock::read(&live.client, namespace).await?);
                }
            }
        }
    }
}

fn idle() -> Status {
    Status {
        kind: "MigrationStatus",
        state: "none",
        migration: None,
        summary: None,
        session: None,
        renewed_seconds_ago: None,
        steps: Vec::new(),
        leaving: None,
        pods_left: None,
    }
}

/// The migration under way inside a record: the migration itself, or a resize's current one.
fn current_migration(job: &Job) -> Option<&MigrateRecord> {
    match job {
        Job::Migrate(m) => Some(m),
        Job::Resize(r) => r.migration.as_ref(),
    }
}

fn steps<S: Copy + PartialEq + ToString>(all: &[S], done: &[S], prefix: &str) -> Vec<StepState> {
    let mut current_seen = false;
    all.iter()
        .map(|step| {
            let state = if done.contains(step) {
                "done"
            } else if !current_seen {
                current_seen = true;
                "current"
            } else {
                "pending"
            };
            StepState {
                step: format!("{prefix}{}", step.to_string()),
                state,
            }
        })
        .collect()
}

async fn status_of(live: &Live, found: &Found) -> anyhow::Result<Status> {
    let record = &found.record;
    let renewed = found
        .lease
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| (Timestamp::now().as_second() - t.0.as_second()).max(0));
    let running = found.running_session().is_some();
    let mut all = match &record.job {
        Job::Migrate(m) => steps(&Step::ALL, &m.done, ""),
        Job::Resize(r) => steps(&ResizeStep::ALL, &r.done, ""),
    };
    if let Job::Resize(r) = &record.job
        && let Some(m) = &r.migration
    {
        all.extend(steps(
            &Step::ALL,
            &m.done,
            &format!("{} → {}: ", m.from, m.to),
        ));
    }
    let leaving = current_migration(&record.job).map(|m| (m.from.clone(), m.old_cidr.clone()));
    let pods_left = match &leaving {
        Some((_, cidr)) => Some(pods_in(live, cidr).await?),
        None => None,
    };
    Ok(Status {
        kind: "MigrationStatus",
        state: if running { "running" } else { "stalled" },
        migration: Some(record.id.clone()),
        summary: Some(record.summary()),
        session: found.session.clone(),
        renewed_seconds_ago: renewed,
        steps: all,
        leaving: leaving.map(|(pool, cidr)| format!("{pool} ({cidr})")),
        pods_left,
    })
}

/// Pods (not on the host network) with an address in `cidr`.
async fn pods_in(live: &Live, cidr: &str) -> anyhow::Result<usize> {
    let Ok(net) = cidr.parse::<IpNet>() else {
        return Ok(0);
    };
    let snapshot = live
        .snapshot(Parts {
            pods: true,
            ..Parts::NONE
        })
        .await?;
    Ok(snapshot
        .pods
        .iter()
        .filter(|p| !p.host_network && p.addresses.iter().any(|a: &IpAddr| net.contains(a)))
        .count())
}

/// The record is gone: the pools say whether the migration finished or was stopped.
async fn ended(live: &Live, last: &Found) -> anyhow::Result<Status> {
    let pool = |name: String| async move {
        live.calico
            .get::<IpPool>(CalicoKind::Pool, &name)
            .await
            .map_err(anyhow::Error::from)
    };
    let finished = match &last.record.job {
        Job::Migrate(m) => {
            let old = pool(m.from.clone()).await?;
            let new = pool(m.to.clone()).await?;
            new.is_some_and(|p| p.is_enabled())
                && old.is_none_or(|p| m.keep_old_pool && !p.is_enabled())
        }
        Job::Resize(r) => {
            let temp = pool(r.temp.clone()).await?;
            let resized = pool(r.name.clone()).await?;
            temp.is_none()
                && resized.is_some_and(|p| p.spec.block_size == Some(i64::from(r.block_size)))
        }
    };
    Ok(Status {
        state: if finished { "finished" } else { "stopped" },
        migration: Some(last.record.id.clone()),
        summary: Some(if finished {
            "its record is gone and the pools are as planned".to_owned()
        } else {
            "its record is gone but the pools are not as planned: it was aborted".to_owned()
        }),
        ..idle()
    })
}

fn render(status: &Status, output: &OutputArgs) -> anyhow::Result<String> {
    if output.format == Format::Json {
        // One JSON object per line, so that --follow is a stream of documents.
        return Ok(format!("{}\n", serde_json::to_string(status)?));
    }
    if let Some(text) = output.structured(status)? {
        return Ok(format!("---\n{text}"));
    }
    let Some(id) = &status.migration else {
        return Ok("no migration or resize in progress\n".to_owned());
    };
    let mut out = format!("{id}: {}", status.state);
    if let Some(summary) = &status.summary {
        out.push_str(&format!(" — {summary}"));
    }
    out.push('\n');
    if let Some(session) = &status.session {
        let renewed = status
            .renewed_seconds_ago
            .map_or_else(String::new, |s| format!(", renewed {s}s ago"));
        out.push_str(&format!("  run by {session}{renewed}\n"));
    }
    if status.state == "stalled" {
        out.push_str("  no live process holds it: run the same command again to resume, or `kubectl ippool migrate --abort`\n");
    }
    for step in &status.steps {
        let mark = match step.state {
            "done" => "✓",
            "current" => "▶",
            _ => "·",
        };
        out.push_str(&format!("  {mark} {}\n", step.step));
    }
    if let (Some(pool), Some(pods)) = (&status.leaving, status.pods_left) {
        out.push_str(&format!("  pods with an address in {pool}: {pods}\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_step_not_done_is_current() {
        let states = steps(&Step::ALL, &[Step::CreateNew, Step::DisableOld], "");
        let shown: Vec<(&str, &str)> = states.iter().map(|s| (s.step.as_str(), s.state)).collect();
        assert_eq!(
            shown,
            [
                ("create-new", "done"),
                ("disable-old", "done"),
                ("move-workloads", "current"),
                ("verify", "pending"),
                ("release-old", "pending"),
                ("delete-old", "pending")
            ]
        );
    }

    #[test]
    fn text_shows_steps_liveness_and_pods_left() {
        let status = Status {
            state: "stalled",
            migration: Some("migrate:a->b".to_owned()),
            summary: Some("migrate a → b (done up to disable-old)".to_owned()),
            session: Some("laptop/42".to_owned()),
            renewed_seconds_ago: Some(95),
            steps: steps(&Step::ALL, &[Step::CreateNew, Step::DisableOld], ""),
            leaving: Some("a (10.1.0.0/16)".to_owned()),
            pods_left: Some(4),
            ..idle()
        };
        let text = render(&status, &OutputArgs::default()).unwrap();
        assert!(
            text.starts_with("migrate:a->b: stalled — migrate a → b"),
            "{text}"
        );
        assert!(
            text.contains("  run by laptop/42, renewed 95s ago\n"),
            "{text}"
        );
        assert!(
            text.contains("run the same command again to resume"),
            "{text}"
        );
        assert!(
            text.contains("  ✓ disable-old\n  ▶ move-workloads\n  · verify\n"),
            "{text}"
        );
        assert!(
            text.contains("pods with an address in a (10.1.0.0/16): 4"),
            "{text}"
        );
        let json = render(
            &status,
            &OutputArgs {
                format: Format::Json,
                no_headers: false,
            },
        )
        .unwrap();
        assert_eq!(json.lines().count(), 1);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["steps"][2]["state"], "current");
        assert_eq!(value["podsLeft"], 4);
    }
}
