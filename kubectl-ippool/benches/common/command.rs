//! What the cluster benches share: running a command to its end with its peak memory (as GNU time
//! reports it), and counting the API requests it made from the API server's
//! audit log (`tests/cluster/up` writes it with `IPPOOL_AUDIT_LOG=1`).
#![allow(dead_code)] // each bench uses its own subset

use std::collections::HashSet;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use harness::ControlPlane;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

/// One run of a command.
pub struct Sample {
    pub wall: Duration,
    pub max_rss_kib: i64,
    pub stdout: String,
}

/// GNU time (Debian's `time`, installed by `.ci/install-system`): it reports the peak RSS of the
/// command it runs. The kernel's rusage of a child started from this process would not do: a child
/// spawned with a shared address space (as `posix_spawn` does) records this process's own peak as
/// its peak when it execs, so a bench that holds a large world would measure itself.
const GNU_TIME: &str = "/usr/bin/time";

/// Runs `program ARGS` with `env` to its end. Fails unless it exits with one of `ok` (0, or 1 for
/// a command that reports findings so): a run that failed measured nothing.
pub fn run(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    ok: &[i32],
) -> anyhow::Result<Sample> {
    let dir = tempfile::tempdir()?;
    let out_path = dir.path().join("out");
    let err_path = dir.path().join("err");
    let rss_path = dir.path().join("rss");
    let start = Instant::now();
    let status = Command::new(GNU_TIME)
        .arg("--format=%M")
        .arg("--output")
        .arg(&rss_path)
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .status()
        .with_context(|| {
            format!("cannot run {program} under {GNU_TIME} (Debian package `time`)")
        })?;
    let wall = start.elapsed();
    let stdout = std::fs::read_to_string(&out_path)?;
    anyhow::ensure!(
        status.code().is_some_and(|code| ok.contains(&code)),
        "{program} {args:?} did not exit with {ok:?} ({status}):\n{}",
        std::fs::read_to_string(&err_path)?
    );
    // GNU time's report is the last line of its output file (a note on the exit status may
    // come before it).
    let report = std::fs::read_to_string(&rss_path)?;
    let max_rss_kib = report
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("{GNU_TIME} reported no peak RSS: {report:?}"))?;
    Ok(Sample {
        wall,
        max_rss_kib,
        stdout,
    })
}

/// The audit log from a point on: requests are counted only after it.
pub struct Audit {
    path: PathBuf,
    offset: u64,
}

impl Audit {
    /// From the log's present end.
    pub fn from_now(cp: &ControlPlane) -> anyhow::Result<Audit> {
        let path = cp.dir().join("audit.log");
        let offset = std::fs::metadata(&path)
            .with_context(|| {
                format!(
                    "{}: the control plane keeps no audit log (start it with audit_log)",
                    path.display()
                )
            })?
            .len();
        Ok(Audit { path, offset })
    }

    /// The requests whose user agent starts with `client/` since this point (for a client of
    /// several agents, see [`Audit::requests_of`]). A request of the
    /// bench's own is made first and awaited in the log (an event is written when the request
    /// ends), so every request made before it is counted.
    pub async fn requests(&self, cp: &ControlPlane, client: &str) -> anyhow::Result<u64> {
        self.requests_of(cp, &[client]).await
    }

    /// The requests whose user agent starts with any of `clients` followed by `/`.
    pub async fn requests_of(&self, cp: &ControlPlane, clients: &[&str]) -> anyhow::Result<u64> {
        let marker = format!("ippool-bench-audit-marker/{}", std::process::id());
        let mut config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(cp.kubeconfig())?,
            &KubeConfigOptions::default(),
        )
        .await?;
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_str(&marker)?,
        ));
        Client::try_from(config)?.apiserver_version().await?;
        let prefixes: Vec<String> = clients.iter().map(|c| format!("{c}/")).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut file = std::fs::File::open(&self.path)?;
            file.seek(SeekFrom::Start(self.offset))?;
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            let mut seen_marker = false;
            let mut requests = HashSet::new();
            for line in text.lines() {
                // The last line may still be being written.
                let Ok(event) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let agent = event["userAgent"].as_str().unwrap_or_default();
                seen_marker |= agent == marker;
                if prefixes.iter().any(|p| agent.starts_with(p.as_str())) {
                    requests.insert(event["auditID"].as_str().unwrap_or_default().to_owned());
                }
            }
            if seen_marker {
                return Ok(requests.len() as u64);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the audit log {} never showed the bench's marker request",
                self.path.display()
            );
            // The API server writes the marker's event right after answering it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
