//! Outages of the control plane's own components, for the fault suite: the API server stopped and
//! started again as an upgrade or a reboot does (same flags, port, certificates and etcd), and a
//! process paused (SIGSTOP) and resumed, as a stalled etcd is.

use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    ControlPlane, HarnessError,
    control_plane::client_from_kubeconfig,
    process::{self, RecordedProcess},
};

/// The API server, stopped: what starts it again.
#[derive(Debug)]
pub struct StoppedApiServer {
    argv: Vec<String>,
}

const API_SERVER: &str = "kube-apiserver";

impl ControlPlane {
    fn running(&self, name: &str) -> Result<RecordedProcess, HarnessError> {
        process::running(self.dir(), name)?.ok_or_else(|| HarnessError::Io {
            path: self.dir().join("pids"),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no running {name} is recorded"),
            ),
        })
    }

    /// Stops the API server (SIGTERM, then SIGKILL after 10 s) and waits until it is gone.
    pub fn stop_apiserver(&self) -> Result<StoppedApiServer, HarnessError> {
        let server = self.running(API_SERVER)?;
        let path = PathBuf::from(format!("/proc/{}/cmdline", server.pid));
        let cmdline = fs::read(&path).map_err(HarnessError::io(&path))?;
        let argv = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        process::stop_recorded(self.dir(), API_SERVER)?;
        Ok(StoppedApiServer { argv })
    }

    /// Starts the stopped API server again with the same flags (its log continues in
    /// `kube-apiserver.log`) and waits until `/readyz` answers `ok`.
    pub async fn start_apiserver(&self, stopped: StoppedApiServer) -> Result<(), HarnessError> {
        let log_path = self.dir().join("kube-apiserver.log");
        let log = fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(HarnessError::io(&log_path))?;
        let err = log.try_clone().map_err(HarnessError::io(&log_path))?;
        let (program, args) = stopped
            .argv
            .split_first()
            .ok_or_else(|| HarnessError::Spawn {
                command: API_SERVER.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command line"),
            })?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                command: program.clone(),
                source,
            })?;
        process::append_record(self.dir(), API_SERVER, child.id())?;
        self.await_ready(Duration::from_secs(60)).await
    }

    /// Waits until the API server answers `/readyz` with `ok` (it has just been started: there
    /// is nothing to watch yet).
    async fn await_ready(&self, timeout: Duration) -> Result<(), HarnessError> {
        let client = client_from_kubeconfig(self.kubeconfig(), false).await?;
        let began = Instant::now();
        let mut last = String::new();
        while began.elapsed() < timeout {
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("a static request");
            match client.request_text(request).await {
                Ok(text) if text.trim() == "ok" => return Ok(()),
                Ok(text) => last = text,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(HarnessError::Timeout {
            what: "the restarted API server's /readyz".to_owned(),
            timeout,
            last: format!("; last answer: {last}"),
        })
    }

    /// Pauses a component (SIGSTOP): it holds its connections and answers nothing, as a stalled
    /// etcd does.
    pub fn pause(&self, name: &str) -> Result<(), HarnessError> {
        self.signal(name, rustix::process::Signal::STOP)
    }

    /// Resumes a paused component (SIGCONT).
    pub fn resume(&self, name: &str) -> Result<(), HarnessError> {
        self.signal(name, rustix::process::Signal::CONT)
    }

    fn signal(&self, name: &str, signal: rustix::process::Signal) -> Result<(), HarnessError> {
        let target = self.running(name)?;
        let pid =
            rustix::process::Pid::from_raw(target.pid as i32).ok_or_else(|| HarnessError::Io {
                path: self.dir().join("pids"),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "PID 0 recorded"),
            })?;
        rustix::process::kill_process(pid, signal).map_err(|e| HarnessError::Io {
            path: self.dir().join("pids"),
            source: e.into(),
        })
    }
}
