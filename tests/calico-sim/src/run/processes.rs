//! A container as a process of the host: its own process group (so that stopping it reaches
//! every process it started) and its own mount namespace, where the pod's volumes are
//! bind-mounted at the container's mountPaths as a runtime mounts them. Each group is recorded
//! on disk while it runs, so that a sim restarted after `kill -9` kills what the old one left.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::mount::{MountFlags, MountPropagationFlags, mount_bind, mount_change, mount_remount};
use rustix::process::{Pid, Signal, kill_process_group};
use rustix::thread::{UnshareFlags, unshare_unsafe};
use tokio::process::{Child, Command};
use tracing::info;

/// A volume bind-mounted into the container.
#[derive(Debug, Clone)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// What is needed to start a container's process.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    /// Where its output goes (appended across restarts).
    pub log: PathBuf,
}

/// A running container process, the leader of its process group.
pub struct Process {
    pub child: Child,
    pub pid: u32,
    record: PathBuf,
}

/// Starts the container; `records` is the node's folder of running groups.
pub fn spawn(launch: &Launch, records: &Path) -> io::Result<Process> {
    let at = |what: &str, path: &Path| {
        let context = format!("{what} {}", path.display());
        move |e: io::Error| io::Error::new(e.kind(), format!("{context}: {e}"))
    };
    let mut mounts = Vec::new();
    for mount in &launch.mounts {
        // A mount point must exist: the host's filesystem stands in for the image's.
        if mount.source.is_dir() {
            fs::create_dir_all(&mount.target).map_err(at("creating mount point", &mount.target))?;
        } else {
            if let Some(parent) = mount.target.parent() {
                fs::create_dir_all(parent).map_err(at("creating mount point", parent))?;
            }
            if !mount.target.exists() {
                fs::write(&mount.target, b"").map_err(at("creating mount point", &mount.target))?;
            }
        }
        mounts.push((
            c_path(&mount.source)?,
            c_path(&mount.target)?,
            mount.read_only,
        ));
    }
    if let Some(log_dir) = launch.log.parent() {
        fs::create_dir_all(log_dir).map_err(at("creating", log_dir))?;
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .map_err(at("opening", &launch.log))?;
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(launch.working_dir.as_deref().unwrap_or(Path::new("/")))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    // SAFETY: between fork and exec the closure makes system calls only (prctl, unshare, mount)
    // on paths converted before the fork; it allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(move || {
            // Dies with the sim, as a container's processes do with its node.
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            unshare_unsafe(UnshareFlags::NEWNS)?;
            // Mounts made here must not reach the host's namespace.
            mount_change(
                c"/",
                MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
            )?;
            for (source, target, read_only) in &mounts {
                mount_bind(source.as_c_str(), target.as_c_str())?;
                if *read_only {
                    mount_remount(
                        target.as_c_str(),
                        MountFlags::BIND | MountFlags::RDONLY,
                        c"",
                    )?;
                }
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(at("starting", &launch.program))?;
    let pid = child.id().unwrap_or_default();
    fs::create_dir_all(records).map_err(at("creating", records))?;
    let record = records.join(pid.to_string());
    fs::write(&record, start_ticks(pid).unwrap_or_default().to_string())
        .map_err(at("recording", &record))?;
    Ok(Process { child, pid, record })
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has a NUL byte", path.display()),
        )
    })
}

impl Process {
    /// Signals every process of the group.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = Pid::from_raw(self.pid as i32) {
            // The group may be gone already.
            let _ = kill_process_group(pid, signal);
        }
    }

    /// Waits for the leader to exit; the rest of its group is killed with it, as a container's
    /// processes end with it.
    pub async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        let status = self.child.wait().await;
        self.signal(Signal::KILL);
        let _ = fs::remove_file(&self.record);
        status
    }

    /// SIGTERM, then SIGKILL after `grace` if the leader has not exited.
    pub async fn stop(&mut self, grace: Duration) -> io::Result<std::process::ExitStatus> {
        self.signal(Signal::TERM);
        if let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await {
            self.signal(Signal::KILL);
            let _ = fs::remove_file(&self.record);
            return status;
        }
        self.signal(Signal::KILL);
        self.wait().await
    }
}

/// The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), and its
/// process group (field 5).
fn stat(pid: u32) -> Option<(u64, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(19)?.parse().ok()?, fields.get(2)?.parse().ok()?))
}

fn start_ticks(pid: u32) -> Option<u64> {
    stat(pid).map(|(ticks, _)| ticks)
}

/// Kills the process groups a previous sim recorded under `state` (every node's `processes`
/// folder): any process still in such a group and started no earlier than its leader is one the
/// old sim left (its leader died with the sim; a process of the same group started later can only
/// be its descendant).
pub fn reap_strays(state: &Path) {
    let Ok(nodes) = fs::read_dir(state.join("nodes")) else {
        return;
    };
    let mut strays: Vec<(u32, u64)> = Vec::new();
    for node in nodes.flatten() {
        let folder = node.path().join("processes");
        for entry in fs::read_dir(&folder).into_iter().flatten().flatten() {
            let group = entry.file_name().to_string_lossy().parse::<u32>().ok();
            let ticks = fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok());
            if let (Some(group), Some(ticks)) = (group, ticks) {
                strays.push((group, ticks));
            }
            let _ = fs::remove_file(entry.path());
        }
    }
    if strays.is_empty() {
        return;
    }
    for process in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = process.file_name().to_string_lossy().parse::<u32>().ok() else {
            continue;
        };
        let Some((ticks, group)) = stat(pid) else {
            continue;
        };
        if strays.iter().any(|&(g, t)| g == group && ticks >= t)
            && let Some(pid) = Pid::from_raw(pid as i32)
        {
            info!(
                pid = pid.as_raw_nonzero().get(),
                group, "killing a container process a previous sim left"
            );
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
    }
}
