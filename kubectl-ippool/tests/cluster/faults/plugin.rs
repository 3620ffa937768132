//! A run of the plugin in the background, whose progress events the suite follows to pick the
//! moment of a fault.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
use tokio::sync::watch;

pub struct Plugin {
    child: tokio::process::Child,
    events: Arc<Mutex<Vec<Value>>>,
    count: watch::Receiver<usize>,
    stderr: tokio::task::JoinHandle<String>,
}

/// How a run ended.
pub struct Ended {
    pub status: ExitStatus,
    pub events: Vec<Value>,
    pub stderr: String,
}

impl Ended {
    /// How many steps this run ran again after an interruption that passed.
    pub fn steps_rerun(&self) -> usize {
        self.events
            .iter()
            .filter(|e| e["event"] == "warning")
            .filter(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("running it again"))
            })
            .count()
    }

    /// The error the run ended with, from its events or its standard error.
    pub fn error(&self) -> String {
        self.events
            .iter()
            .rev()
            .find_map(|e| e["error"].as_str().or(e["message"].as_str()))
            .map(str::to_owned)
            .unwrap_or_else(|| self.stderr.trim().to_owned())
    }
}

impl Plugin {
    /// Starts `kubectl-ippool ARGS -o json` against `kubeconfig`, with `env`.
    pub fn start(args: &[String], kubeconfig: &Path, env: &[(&str, &str)]) -> Plugin {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ippool"))
            .args(args)
            .args(["-o", "json", "--kubeconfig"])
            .arg(kubeconfig)
            .env_remove("IPPOOL_FAULT_AT")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run kubectl-ippool");
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, count) = watch::channel(0);
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let seen = events.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not an event ({e}): {line}"));
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(event);
                    seen.len()
                };
                let _ = tx.send(n);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text).await;
            text
        });
        Plugin {
            child,
            events,
            count,
            stderr,
        }
    }

    /// Waits until the run has printed `n` events, or has ended.
    pub async fn after_events(&mut self, n: usize) {
        let _ = self.count.wait_for(|seen| *seen >= n).await;
    }

    /// Whether one of the events so far satisfies `test`.
    pub fn has_event(&self, test: impl Fn(&Value) -> bool) -> bool {
        self.events.lock().unwrap().iter().any(test)
    }

    /// Waits until an event satisfies `test`, or the run has ended.
    pub async fn event(&mut self, test: impl Fn(&Value) -> bool) {
        let events = self.events.clone();
        let _ = self
            .count
            .wait_for(|_| events.lock().unwrap().iter().any(&test))
            .await;
    }

    /// Waits for the run to end (at most `limit`: a run that hangs is a failure).
    pub async fn end(mut self, limit: Duration) -> Ended {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the plugin was still running after {limit:?}"))
            .expect("wait for kubectl-ippool");
        // The output readers finish at the pipes' end.
        let _ = self.count.wait_for(|_| false).await;
        let stderr = self.stderr.await.unwrap_or_default();
        let events = self.events.lock().unwrap().clone();
        Ended {
            status,
            events,
            stderr,
        }
    }
}
