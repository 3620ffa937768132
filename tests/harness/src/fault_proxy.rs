//! `fault-proxy` (tests/fault-proxy) as a child process of a test: an HTTPS proxy in front of a
//! control plane's API server that injects faults on command (latency, error statuses, dropped
//! connections, ended watches, a cut network), with a kubeconfig that goes through it.

use std::{
    fs,
    io::{self, BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use kube::config::Kubeconfig;

use crate::{ControlPlane, HarnessError, process, workspace_bin::try_workspace_bin};

/// Generous: the proxy makes a key and binds a port, but a loaded machine may take its time.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// `drop` and `cut on` answer once the aborted connections are gone, which the proxy bounds by 5 s.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running fault-proxy in front of a [`ControlPlane`]'s API server. Its files — the kubeconfig,
/// its certificate, the request log and its own log (standard error) — are in a folder of the
/// control plane's directory; its PID is recorded there too, so `tests/cluster/down` stops a leaked
/// one. Dropping it kills it.
pub struct FaultProxy {
    binary: PathBuf,
    child: Child,
    stdin: ChildStdin,
    /// Its standard output, line by line from a reader thread, so that waiting for a line can time out.
    lines: mpsc::Receiver<String>,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl FaultProxy {
    /// Starts the proxy in front of `cp`'s API server; [`FaultProxy::kubeconfig`] is a copy of cp's
    /// admin kubeconfig whose server is the proxy (and whose CA is the proxy's).
    pub fn start(cp: &ControlPlane) -> Result<FaultProxy, HarnessError> {
        let binary = try_workspace_bin("fault-proxy")?;
        let dir = fresh_dir(cp.dir())?;
        let mut kubeconfig =
            Kubeconfig::read_from(cp.kubeconfig()).map_err(|source| HarnessError::Kubeconfig {
                path: cp.kubeconfig().to_owned(),
                source,
            })?;
        let upstream = cluster_of(&mut kubeconfig, cp.kubeconfig())?
            .server
            .clone()
            .ok_or_else(|| malformed(cp.kubeconfig(), "its cluster has no server"))?;
        let stderr_log = dir.join("fault-proxy.log");
        let stderr = fs::File::create(&stderr_log).map_err(HarnessError::io(&stderr_log))?;
        let mut command = Command::new(&binary);
        command
            .arg("--upstream")
            .arg(&upstream)
            // The API server's certificate: what cp's kubeconfig carries as certificate-authority-data.
            .arg("--upstream-ca")
            .arg(cp.dir().join("pki/apiserver.crt"))
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let shown = format!("{command:?}");
        let mut child = command.spawn().map_err(|source| HarnessError::Spawn {
            command: shown.clone(),
            source,
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HarnessError::Spawn {
                command: shown,
                source: io::Error::other("no pipes to its standard input and output"),
            });
        };
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                // A read error ends the output as its end does: the process is gone either way.
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        // From here on, dropping `proxy` (on any error below) kills the child.
        let mut proxy = FaultProxy {
            binary,
            child,
            stdin,
            lines,
            kubeconfig: dir.join("kubeconfig"),
            dir,
        };
        process::append_record(cp.dir(), "fault-proxy", proxy.child.id())?;
        let first = proxy.next_line("its `listening 127.0.0.1:PORT` line", START_TIMEOUT)?;
        let address = first
            .strip_prefix("listening ")
            .ok_or_else(|| proxy.exited(&format!("printed {first:?} instead of its address")))?;

        let cluster = cluster_of(&mut kubeconfig, cp.kubeconfig())?;
        cluster.server = Some(format!("https://{address}"));
        cluster.certificate_authority_data = None;
        cluster.certificate_authority = Some(proxy.dir.join("proxy-ca.crt").display().to_string());
        let yaml = serde_saphyr::to_string(&kubeconfig).map_err(|e| HarnessError::Io {
            path: proxy.kubeconfig.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        })?;
        fs::write(&proxy.kubeconfig, yaml).map_err(HarnessError::io(&proxy.kubeconfig))?;
        Ok(proxy)
    }

    /// The admin kubeconfig through the proxy.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Sends one control command (`latency MS`, `status CODE COUNT [RETRY_AFTER_SECONDS]`, `drop`,
    /// `close-watches`, `cut on`, `cut off`, `reset`) and waits for its `ok` line, i.e. until the
    /// fault is in place; an `error` line is an error.
    pub fn command(&mut self, command: &str) -> Result<(), HarnessError> {
        let command = command.trim();
        let refused = |message: String| HarnessError::CommandFailed {
            command: format!("fault-proxy control: {command}"),
            status: "refused".to_owned(),
            output: message,
        };
        if command.contains('\n') {
            return Err(refused("a command is one line".to_owned()));
        }
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .map_err(HarnessError::io(&self.binary))?;
        let reply = self.next_line(
            &format!("fault-proxy's answer to `{command}`"),
            REPLY_TIMEOUT,
        )?;
        if reply.strip_prefix("ok ") == Some(command) {
            Ok(())
        } else if let Some(message) = reply.strip_prefix("error ") {
            Err(refused(message.to_owned()))
        } else {
            Err(refused(format!("unexpected answer {reply:?}")))
        }
    }

    /// The requests logged so far (the lines of `requests.jsonl`): `at_ms`, `method`, `path`,
    /// `query`, `user_agent` and `outcome` (a status code, or "cut", "dropped", "error: ...").
    pub fn requests(&self) -> Result<Vec<serde_json::Value>, HarnessError> {
        let path = self.dir.join("requests.jsonl");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(HarnessError::io(&path)(e)),
        };
        text.split_inclusive('\n')
            // A line still being written is left for the next call.
            .filter(|line| line.ends_with('\n') && !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|e| HarnessError::Io {
                    path: path.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidData, e),
                })
            })
            .collect()
    }

    fn next_line(&mut self, what: &str, timeout: Duration) -> Result<String, HarnessError> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(HarnessError::Timeout {
                what: what.to_owned(),
                timeout,
                last: format!("; its log: {}", self.dir.join("fault-proxy.log").display()),
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(self.exited(&format!("exited before {what}")))
            }
        }
    }

    /// An error that shows how the proxy ended and what it said on standard error.
    fn exited(&mut self, when: &str) -> HarnessError {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => "still running".to_owned(),
            Err(e) => e.to_string(),
        };
        let log = self.dir.join("fault-proxy.log");
        HarnessError::CommandFailed {
            command: format!("{} ({when})", self.binary.display()),
            status,
            output: fs::read_to_string(&log).unwrap_or_default(),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Fails only when it has already exited; wait() then reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<control-plane dir>/fault-proxy-N` for the first N not taken, so that proxies side by side (and
/// one after another) keep their logs apart.
fn fresh_dir(cluster_dir: &Path) -> Result<PathBuf, HarnessError> {
    const MOST: u32 = 1000;
    for n in 0..MOST {
        let dir = cluster_dir.join(format!("fault-proxy-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(HarnessError::io(&dir)(e)),
        }
    }
    Err(HarnessError::Io {
        path: cluster_dir.to_owned(),
        source: io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("fault-proxy-0 to fault-proxy-{} are all taken", MOST - 1),
        ),
    })
}

/// The first (with `tests/cluster/up`, the only) cluster of a kubeconfig.
fn cluster_of<'k>(
    kubeconfig: &'k mut Kubeconfig,
    path: &Path,
) -> Result<&'k mut kube::config::Cluster, HarnessError> {
    kubeconfig
        .clusters
        .first_mut()
        .and_then(|named| named.cluster.as_mut())
        .ok_or_else(|| malformed(path, "it has no cluster"))
}

fn malformed(path: &Path, why: &str) -> HarnessError {
    HarnessError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, why.to_owned()),
    }
}
