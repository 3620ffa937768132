//! Calico's own programs, run the way a node runs them: the `calico` CNI plugin for every sandbox
//! (it runs `calico-ipam` from the same folder, so every pod address comes from Calico's IPAM),
//! `tunnel-addresses` (calico-node's allocator) for a node's tunnel addresses, and `cni-dataplane`,
//! the fake data plane the plugin hands the pod's interface to instead of a network namespace.

use std::ffi::OsString;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tracing::debug;

/// The network name Calico's installer gives its CNI configuration; the IPAM handle of a sandbox is
/// `<network>.<container ID>`.
const NETWORK_NAME: &str = "k8s-pod-network";
/// The CNI version Calico's installer writes into its configuration.
const CNI_VERSION: &str = "0.3.1";
/// The MTU Calico's installer writes for IPIP (the fake data plane ignores it).
const MTU: u32 = 1440;
/// A Calico process that takes longer is killed: Calico's own datastore timeouts are 90 s.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(150);
/// The longest path a unix socket can have (sun_path is 108 bytes, with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Error)]
pub enum CalicoError {
    /// The error result the plugin printed, worded as container runtimes report it (libcni's
    /// `msg; details`). Calico has released whatever it allocated for the failed ADD.
    #[error("{}", plugin_message(msg, details))]
    Plugin { msg: String, details: String },
    #[error("running {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{program} did not finish within {PROCESS_TIMEOUT:?} and was killed")]
    Timeout { program: String },
    #[error("{program} exited with {status}: {output}")]
    Failed {
        program: String,
        status: ExitStatus,
        output: String,
    },
    #[error("{program} printed no usable CNI result ({reason}): {output}")]
    Result {
        program: String,
        reason: String,
        output: String,
    },
    #[error(
        "the data plane's socket path {path} is longer than {MAX_SOCKET_PATH} bytes: choose a shorter --state-dir"
    )]
    SocketPath { path: PathBuf },
    #[error("cni-dataplane exited before serving: {output}")]
    DataplaneStart { output: String },
}

impl CalicoError {
    /// Whether Calico itself reported the failure (so it cleaned up after itself), rather than the
    /// process being lost, killed or unreadable.
    pub fn is_calico_error(&self) -> bool {
        matches!(self, CalicoError::Plugin { .. })
    }
}

fn plugin_message(msg: &str, details: &str) -> String {
    if details.is_empty() {
        msg.to_owned()
    } else {
        format!("{msg}; {details}")
    }
}

/// Which families a sandbox gets addresses of: what Calico's installer writes as the IPAM plugin's
/// `assign_ipv4` / `assign_ipv6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

/// A pod sandbox as the runtime names it to CNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container_id: String,
}

#[derive(Deserialize)]
struct AddResult {
    #[serde(default)]
    ips: Vec<ResultIp>,
}

#[derive(Deserialize)]
struct ResultIp {
    address: String,
}

#[derive(Deserialize)]
struct ErrorResult {
    msg: String,
    #[serde(default)]
    details: String,
}

pub struct Calico {
    bin: PathBuf,
    cni_kubeconfig: PathBuf,
    node_agent_kubeconfig: PathBuf,
    state: PathBuf,
    socket: PathBuf,
    permits: Semaphore,
}

impl Calico {
    pub fn new(
        bin: PathBuf,
        cni_kubeconfig: PathBuf,
        node_agent_kubeconfig: PathBuf,
        state: PathBuf,
        parallel: usize,
    ) -> Calico {
        let socket = state.join("dataplane.sock");
        Calico {
            bin,
            cni_kubeconfig,
            node_agent_kubeconfig,
            state,
            socket,
            permits: Semaphore::new(parallel),
        }
    }

    /// Starts the fake data plane the plugin talks to and waits until it serves.
    pub async fn start_dataplane(&self) -> Result<Child, CalicoError> {
        if self.socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(CalicoError::SocketPath {
                path: self.socket.clone(),
            });
        }
        let program = self.bin.join("cni-dataplane");
        let mut command = Command::new(&program);
        command
            .arg("-socket")
            .arg(&self.socket)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|source| CalicoError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        let Some(stderr) = child.stderr.take() else {
            unreachable!("stderr is piped")
        };
        let mut lines = BufReader::new(stderr).lines();
        let mut said = Vec::new();
        // It says so once it listens; anything else first is why it could not.
        loop {
            match lines.next_line().await {
                Ok(Some(line)) if line.contains("serving on") => break,
                Ok(Some(line)) => said.push(line),
                Ok(None) | Err(_) => {
                    return Err(CalicoError::DataplaneStart {
                        output: said.join("\n"),
                    });
                }
            }
        }
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                debug!(target: "cni-dataplane", "{line}");
            }
        });
        Ok(child)
    }

    /// The network configuration as Calico's installer writes it, for one node.
    fn net_conf(&self, node: &str, families: Families) -> Value {
        let flag = |on: bool| if on { "true" } else { "false" };
        json!({
            "cniVersion": CNI_VERSION,
            "name": NETWORK_NAME,
            "type": "calico",
            "log_level": "info",
            "log_file_path": self.state.join("calico-cni.log"),
            "datastore_type": "kubernetes",
            "nodename": node,
            "nodename_file_optional": true,
            "mtu": MTU,
            "ipam": {
                "type": "calico-ipam",
                "assign_ipv4": flag(families.ipv4),
                "assign_ipv6": flag(families.ipv6),
            },
            "policy": {"type": "k8s"},
            "kubernetes": {"kubeconfig": self.cni_kubeconfig},
            // Calico's default lock is host-wide; each fake node is a host of its own.
            "ipam_lock_file": self.state.join("nodes").join(node).join("ipam.lock"),
            "dataplane_options": {
                "type": "grpc",
                "socket": format!("unix://{}", self.socket.display()),
            },
        })
    }

    fn cni_env(&self, command: &str, sandbox: &Sandbox) -> Vec<(&'static str, OsString)> {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            sandbox.namespace, sandbox.pod, sandbox.container_id, sandbox.uid
        );
        vec![
            ("CNI_COMMAND", command.into()),
            ("CNI_CONTAINERID", sandbox.container_id.clone().into()),
            // Never opened: the gRPC data plane receives the path and ignores it.
            (
                "CNI_NETNS",
                self.state
                    .join("netns")
                    .join(&sandbox.container_id)
                    .into_os_string(),
            ),
            ("CNI_IFNAME", "eth0".into()),
            ("CNI_PATH", self.bin.clone().into_os_string()),
            ("CNI_ARGS", args.into()),
        ]
    }

    /// CNI ADD: the sandbox's addresses, IPv4 first.
    pub async fn add(
        &self,
        sandbox: &Sandbox,
        families: Families,
    ) -> Result<Vec<IpAddr>, CalicoError> {
        let conf = self.net_conf(&sandbox.node, families);
        let stdout = self.cni(&self.cni_env("ADD", sandbox), &conf).await?;
        let program = "calico (ADD)";
        let result: AddResult =
            serde_json::from_slice(&stdout).map_err(|e| CalicoError::Result {
                program: program.to_owned(),
                reason: e.to_string(),
                output: String::from_utf8_lossy(&stdout).into_owned(),
            })?;
        let mut addresses = Vec::new();
        for ip in &result.ips {
            let net: IpNet = ip.address.parse().map_err(|_| CalicoError::Result {
                program: program.to_owned(),
                reason: format!("'{}' is not an address with a prefix", ip.address),
                output: String::from_utf8_lossy(&stdout).into_owned(),
            })?;
            addresses.push(net.addr());
        }
        if addresses.is_empty() {
            return Err(CalicoError::Result {
                program: program.to_owned(),
                reason: "no addresses".to_owned(),
                output: String::from_utf8_lossy(&stdout).into_owned(),
            });
        }
        addresses.sort_by_key(|a| (a.is_ipv6(), *a));
        Ok(addresses)
    }

    /// CNI DEL: Calico releases the sandbox's addresses (by its handle) and clears the pod's
    /// address annotations.
    pub async fn del(&self, sandbox: &Sandbox) -> Result<(), CalicoError> {
        // DEL releases by handle whatever families were assigned.
        let all = Families {
            ipv4: true,
            ipv6: true,
        };
        let conf = self.net_conf(&sandbox.node, all);
        self.cni(&self.cni_env("DEL", sandbox), &conf)
            .await
            .map(drop)
    }

    /// Runs the plugin; its stdout on success, its error result as [`CalicoError::Plugin`].
    async fn cni(
        &self,
        env: &[(&'static str, OsString)],
        conf: &Value,
    ) -> Result<Vec<u8>, CalicoError> {
        let program = self.bin.join("calico");
        let stdin = serde_json::to_vec(conf).unwrap_or_default();
        let output = self.run(&program, env, Some(stdin)).await?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        match serde_json::from_slice::<ErrorResult>(&output.stdout) {
            Ok(e) => Err(CalicoError::Plugin {
                msg: e.msg,
                details: e.details,
            }),
            Err(_) => Err(CalicoError::Failed {
                program: program.display().to_string(),
                status: output.status,
                output: last_words(&output),
            }),
        }
    }

    /// Runs Calico's tunnel-address allocator once for the node: it assigns, moves or removes the
    /// node's IPIP and VXLAN addresses as the pools now say.
    pub async fn allocate_tunnel_addresses(&self, node: &str) -> Result<(), CalicoError> {
        let program = self.bin.join("tunnel-addresses");
        let env = [
            ("NODENAME", OsString::from(node)),
            ("DATASTORE_TYPE", "kubernetes".into()),
            (
                "KUBECONFIG",
                self.node_agent_kubeconfig.clone().into_os_string(),
            ),
        ];
        let output = self.run(&program, &env, None).await?;
        if output.status.success() {
            return Ok(());
        }
        Err(CalicoError::Failed {
            program: format!("{} for node {node}", program.display()),
            status: output.status,
            output: last_words(&output),
        })
    }

    async fn run(
        &self,
        program: &Path,
        env: &[(&'static str, OsString)],
        stdin: Option<Vec<u8>>,
    ) -> Result<std::process::Output, CalicoError> {
        let name = program.display().to_string();
        // Never closed, so acquiring cannot fail.
        let _permit = self.permits.acquire().await;
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let spawn_error = |source| CalicoError::Spawn {
            program: name.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // The configuration is far smaller than a pipe's buffer, and Calico reads it first.
            pipe.write_all(&data).await.map_err(spawn_error)?;
        }
        match tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output()).await {
            Ok(output) => output.map_err(spawn_error),
            // Dropping the child killed it.
            Err(_) => Err(CalicoError::Timeout { program: name }),
        }
    }
}

/// The last line a failed Calico program wrote (its fatal log line), else its output.
fn last_words(output: &std::process::Output) -> String {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    let stderr = text(&output.stderr);
    match stderr.lines().last() {
        Some(line) => line.to_owned(),
        None => text(&output.stdout),
    }
}

/// Calico's processes die with the sim, as a node's do when it goes down: none outlives a
/// `kill -9` to finish an ADD behind the back of the sim that replaces it.
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only makes one system call (prctl),
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(io::Error::from)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calico() -> Calico {
        Calico::new(
            "/opt/calico".into(),
            "/k/cni".into(),
            "/k/node".into(),
            "/state".into(),
            1,
        )
    }

    #[test]
    fn net_conf_is_what_calicos_installer_writes_for_one_node() {
        let conf = calico().net_conf(
            "sim-0",
            Families {
                ipv4: true,
                ipv6: false,
            },
        );
        assert_eq!(conf["name"], "k8s-pod-network");
        assert_eq!(conf["type"], "calico");
        assert_eq!(conf["datastore_type"], "kubernetes");
        assert_eq!(conf["nodename"], "sim-0");
        assert_eq!(conf["nodename_file_optional"], true);
        assert_eq!(conf["ipam"]["type"], "calico-ipam");
        assert_eq!(conf["ipam"]["assign_ipv4"], "true");
        assert_eq!(conf["ipam"]["assign_ipv6"], "false");
        assert_eq!(conf["policy"]["type"], "k8s");
        assert_eq!(conf["kubernetes"]["kubeconfig"], "/k/cni");
        assert_eq!(conf["ipam_lock_file"], "/state/nodes/sim-0/ipam.lock");
        assert_eq!(conf["dataplane_options"]["type"], "grpc");
        assert_eq!(
            conf["dataplane_options"]["socket"],
            "unix:///state/dataplane.sock"
        );
    }

    #[test]
    fn cni_arguments_name_the_pod_and_sandbox() {
        let sandbox = Sandbox {
            node: "sim-0".into(),
            namespace: "default".into(),
            pod: "web-1".into(),
            uid: "u1".into(),
            container_id: "c1".into(),
        };
        let env = calico().cni_env("ADD", &sandbox);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
                .unwrap()
        };
        assert_eq!(get("CNI_COMMAND"), "ADD");
        assert_eq!(get("CNI_CONTAINERID"), "c1");
        assert_eq!(get("CNI_IFNAME"), "eth0");
        assert_eq!(get("CNI_PATH"), "/opt/calico");
        assert_eq!(
            get("CNI_ARGS"),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u1"
        );
    }

    #[test]
    fn plugin_errors_read_as_runtimes_report_them() {
        let e = CalicoError::Plugin {
            msg: "error getting ClusterInformation".into(),
            details: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "error getting ClusterInformation; connection refused"
        );
        assert!(e.is_calico_error());
        let e = CalicoError::Plugin {
            msg: "the given pool (10.53.0.0/24) does not exist, or is not enabled".into(),
            details: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "the given pool (10.53.0.0/24) does not exist, or is not enabled"
        );
    }
}
