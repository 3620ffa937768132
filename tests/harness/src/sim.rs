//! calico-sim as a child process of the test: started against a control plane, killed, restarted.

use std::{
    fs,
    io::{self, BufRead as _, Write},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use k8s_openapi::api::core::v1::Node;
use kube::{Api, ResourceExt, runtime::watcher};
use rustix::process::{Pid, Signal, kill_process};
use tokio::sync::watch;

use crate::{
    ControlPlane, HarnessError,
    control_plane::{client_from_kubeconfig, upstream_binaries},
    process,
    runtime::block_on,
    wait::wait_for_all,
    workspace_bin::try_workspace_bin,
};

/// What calico-sim runs of Calico's, from the folder `tests/upstream/build` fills.
const CALICO_BINARIES: [&str; 4] = ["calico", "calico-ipam", "tunnel-addresses", "cni-dataplane"];

/// How long calico-sim gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The line calico-sim logs once its nodes are registered (its `main.rs`).
const REGISTERED: &[u8] = b"nodes registered";

/// The command line of calico-sim (see `calico-sim --help`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOptions {
    /// Fake nodes to create and keep Ready.
    pub nodes: usize,
    /// Node names start with this; give concurrent sims on one control plane distinct prefixes.
    pub node_prefix: String,
    pub node_labels: Vec<(String, String)>,
    /// Delay before a pod with an address turns Ready.
    pub start_delay_ms: u64,
    /// Delay before a deleted pod's address is released and its deletion completed.
    pub stop_delay_ms: u64,
    /// Image reference → executable, for pods labelled `sim.ippool.dev/run=true` (run for real).
    pub images: Vec<(String, PathBuf)>,
}

impl SimOptions {
    /// The names the sim gives its nodes: the prefix and an index.
    pub fn node_names(&self) -> Vec<String> {
        (0..self.nodes)
            .map(|i| format!("{}{i}", self.node_prefix))
            .collect()
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            nodes: 3,
            node_prefix: "sim-".to_owned(),
            node_labels: Vec::new(),
            start_delay_ms: 0,
            stop_delay_ms: 0,
            images: Vec::new(),
        }
    }
}

/// Where the sim finds its cluster and Calico: the control plane's kubeconfig for each identity
/// (`up` writes `kubeconfig-<identity>` with that identity's RBAC; the admin one stands in where
/// there is none), Calico's binaries, and the folder for the nodes' state.
#[derive(Debug, Clone)]
struct Launch {
    kubeconfig: PathBuf,
    cni_kubeconfig: PathBuf,
    node_agent_kubeconfig: PathBuf,
    calico_bin: PathBuf,
    state_dir: PathBuf,
}

impl Launch {
    fn new(cp: &ControlPlane, options: &SimOptions) -> Result<Launch, HarnessError> {
        let identity = |name: &str| {
            let own = cp.dir().join(format!("kubeconfig-{name}"));
            if own.is_file() {
                own
            } else {
                cp.kubeconfig().to_owned()
            }
        };
        let calico_bin = upstream_binaries()?;
        let missing: Vec<&str> = CALICO_BINARIES
            .into_iter()
            .filter(|b| !calico_bin.join(b).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(HarnessError::CalicoMissing {
                dir: calico_bin,
                missing: missing.join(", "),
            });
        }
        Ok(Launch {
            kubeconfig: identity("calico-sim"),
            cni_kubeconfig: identity("calico-cni-plugin"),
            node_agent_kubeconfig: identity("calico-node"),
            calico_bin,
            state_dir: cp.dir().join(state_dir_name(&options.node_prefix)),
        })
    }
}

/// The sim's state folder, per node prefix: the data plane's unix socket lives in it, and a socket
/// path has at most 107 bytes, so a long prefix (nodes may have names of 253 characters) is cut and
/// told apart by a hash of the whole.
fn state_dir_name(prefix: &str) -> String {
    const KEEP: usize = 16;
    if prefix.len() <= KEEP {
        return format!("{prefix}calico-sim");
    }
    let fnv1a = prefix.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let cut: String = prefix.chars().take(KEEP).collect();
    format!("{cut}{fnv1a:016x}-calico-sim")
}

impl SimOptions {
    fn args(&self, launch: &Launch) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        let mut args = vec![
            "--kubeconfig".to_owned(),
            path(&launch.kubeconfig),
            "--cni-kubeconfig".to_owned(),
            path(&launch.cni_kubeconfig),
            "--node-agent-kubeconfig".to_owned(),
            path(&launch.node_agent_kubeconfig),
            "--calico-bin".to_owned(),
            path(&launch.calico_bin),
            "--state-dir".to_owned(),
            path(&launch.state_dir),
            "--nodes".to_owned(),
            self.nodes.to_string(),
            "--node-prefix".to_owned(),
            self.node_prefix.clone(),
            "--start-delay-ms".to_owned(),
            self.start_delay_ms.to_string(),
            "--stop-delay-ms".to_owned(),
            self.stop_delay_ms.to_string(),
        ];
        if !self.node_labels.is_empty() {
            let labels: Vec<String> = self
                .node_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            args.extend(["--node-labels".to_owned(), labels.join(",")]);
        }
        for (image, executable) in &self.images {
            args.extend([
                "--image".to_owned(),
                format!("{image}={}", path(executable)),
            ]);
        }
        args
    }
}

/// A running calico-sim. Its output goes to `<control-plane dir>/<node prefix>calico-sim.log`, its
/// nodes' state (and Calico's CNI log) to `<control-plane dir>/<node prefix>calico-sim/`; its PID is
/// also recorded for `tests/cluster/down`, so a leaked sim is stopped with the control plane.
/// Dropping it sends SIGTERM and waits (SIGKILL after 10 s).
pub struct Sim {
    binary: PathBuf,
    /// The admin kubeconfig, for the harness's own waits.
    kubeconfig: PathBuf,
    launch: Launch,
    cluster_dir: PathBuf,
    log: PathBuf,
    options: SimOptions,
    process: Option<SimProcess>,
}

struct SimProcess {
    child: Child,
    /// Turns true when the sim's output pipe closes, i.e. when the process has exited.
    exited: watch::Receiver<bool>,
    /// Turns true when this process says it has registered its nodes. Nodes a killed sim left
    /// stay Ready, so after a restart only this tells that the new process is up (and has its
    /// SIGTERM handler).
    registered: watch::Receiver<bool>,
}

impl Sim {
    /// Starts `calico-sim` (see [`crate::workspace_bin`]) and waits until its nodes exist and are Ready.
    pub fn start(cp: &ControlPlane, options: SimOptions) -> Result<Sim, HarnessError> {
        let binary = try_workspace_bin("calico-sim")?;
        let log = cp
            .dir()
            .join(format!("{}calico-sim.log", options.node_prefix));
        let launch = Launch::new(cp, &options)?;
        let mut sim = Sim {
            binary,
            kubeconfig: cp.kubeconfig().to_owned(),
            launch,
            cluster_dir: cp.dir().to_owned(),
            log,
            options,
            process: None,
        };
        sim.spawn_and_wait()?;
        Ok(sim)
    }

    pub fn options(&self) -> &SimOptions {
        &self.options
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The running process's PID (None after `kill9` or `stop`).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.child.id())
    }

    /// SIGKILL: the sim dies mid-work without any cleanup, as for restart tests.
    pub fn kill9(&mut self) {
        if let Some(mut process) = self.process.take() {
            // Fails only when it has already exited; wait() then reaps it.
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }

    /// SIGTERM and wait for the exit (SIGKILL after 10 s); returns how it exited.
    pub fn stop(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        let Some(mut process) = self.process.take() else {
            return Ok(None);
        };
        let mut exited = process.exited.clone();
        let _ = kill_process(Pid::from_child(&process.child), Signal::TERM);
        let in_time = block_on(async {
            tokio::time::timeout(STOP_GRACE, exited.wait_for(|gone| *gone))
                .await
                .is_ok()
        });
        if !in_time {
            eprintln!("harness: calico-sim ignored SIGTERM for {STOP_GRACE:?}; killing it");
            let _ = process.child.kill();
        }
        let status = process
            .child
            .wait()
            .map_err(HarnessError::io(&self.binary))?;
        Ok(Some(status))
    }

    /// Starts the sim again with the same options (stopping it first if it runs) and waits until
    /// its nodes are Ready.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop()?;
        self.spawn_and_wait()
    }

    fn spawn_and_wait(&mut self) -> Result<(), HarnessError> {
        let process = self.spawn()?;
        let (exited, mut registered) = (process.exited.clone(), process.registered.clone());
        self.process = Some(process);
        let timeout =
            Duration::from_secs(30) + Duration::from_millis(100) * self.options.nodes as u32;
        let (prefix, count) = (self.options.node_prefix.clone(), self.options.nodes);
        let kubeconfig = self.kubeconfig.clone();
        let outcome = block_on(async move {
            let nodes: Api<Node> = Api::all(client_from_kubeconfig(&kubeconfig, true).await?);
            let what = format!("{count} Ready nodes named {prefix}*");
            let ready = wait_for_all(
                &nodes,
                watcher::Config::default(),
                &what,
                |nodes: &[Node]| {
                    nodes
                        .iter()
                        .filter(|n| n.name_any().starts_with(&prefix) && is_ready(n))
                        .count()
                        >= count
                },
                timeout,
            );
            let up = async move {
                if registered.wait_for(|r| *r).await.is_err() {
                    return Ok(false);
                }
                ready.await.map(|_| true)
            };
            let mut exited = exited;
            tokio::select! {
                up = up => up,
                _ = exited.wait_for(|gone| *gone) => Ok(false),
            }
        });
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.exited_error("before its nodes were Ready")),
            Err(e) => Err(e),
        }
    }

    fn spawn(&self) -> Result<SimProcess, HarnessError> {
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(HarnessError::io(&self.log))?;
        let args = self.options.args(&self.launch);
        let command_line = format!("{} {}", self.binary.display(), args.join(" "));
        writeln!(log, "----- harness: {command_line}").map_err(HarnessError::io(&self.log))?;
        let spawn_error = |source| HarnessError::Spawn {
            command: command_line.clone(),
            source,
        };
        // One pipe for stdout and stderr: its end of file tells us the process has exited.
        let (reader, writer) = io::pipe().map_err(spawn_error)?;
        let child = Command::new(&self.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().map_err(spawn_error)?)
            .stderr(writer)
            .spawn()
            .map_err(spawn_error)?;
        let (gone, exited) = watch::channel(false);
        let (up, registered) = watch::channel(false);
        std::thread::spawn(move || {
            let mut reader = io::BufReader::new(reader);
            let mut line = Vec::new();
            // A read error ends the output as its end does; a failed log write only loses a line.
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let _ = log.write_all(&line);
                if line.windows(REGISTERED.len()).any(|w| w == REGISTERED) {
                    up.send_replace(true);
                }
                line.clear();
            }
            gone.send_replace(true);
        });
        process::append_record(&self.cluster_dir, "calico-sim", child.id())?;
        Ok(SimProcess {
            child,
            exited,
            registered,
        })
    }

    fn exited_error(&mut self, when: &str) -> HarnessError {
        let status = match self.process.take() {
            Some(mut process) => process
                .child
                .wait()
                .map_or_else(|e| e.to_string(), |s| s.to_string()),
            None => "not running".to_owned(),
        };
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        HarnessError::SimExited {
            status,
            when: when.to_owned(),
            log: self.log.clone(),
            tail,
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("harness: stopping calico-sim failed: {e}");
        }
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_folders_stay_short_and_distinct() {
        assert_eq!(state_dir_name("sim-"), "sim-calico-sim");
        let a = state_dir_name(&format!("{}a", "x".repeat(240)));
        let b = state_dir_name(&format!("{}b", "x".repeat(240)));
        assert_ne!(a, b);
        assert!(a.len() < 48, "{a}");
    }
}
