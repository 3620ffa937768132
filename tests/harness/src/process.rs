//! The PID records that `tests/cluster/up` keeps in `DIR/pids` ("<name> <pid> <start time>"), read
//! and extended from Rust. The start time tells our process apart from a later one reusing its PID.

use std::{fs, io::Write, path::Path};

use crate::HarnessError;

/// A process started for a control plane (etcd, kube-apiserver, kube-controller-manager, calico-sim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedProcess {
    pub name: String,
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot at which the process started.
    pub start_time: u64,
}

impl RecordedProcess {
    /// Whether this very process (not a later one with the same PID) still runs. A zombie counts as
    /// gone: an orphan's parent may be a PID 1 that never reaps it.
    pub fn is_running(&self) -> bool {
        match stat_fields(self.pid) {
            Some(fields) => fields.state != 'Z' && fields.start_time == self.start_time,
            None => false,
        }
    }
}

struct StatFields {
    state: char,
    start_time: u64,
}

fn stat_fields(pid: u32) -> Option<StatFields> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; the rest follows the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(StatFields {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Reads the records of `dir/pids`, or of `dir/pids.stopped` once `down` has run.
pub(crate) fn read_records(dir: &Path) -> Result<Vec<RecordedProcess>, HarnessError> {
    let running = dir.join("pids");
    let path = if running.exists() {
        running
    } else {
        dir.join("pids.stopped")
    };
    let text = fs::read_to_string(&path).map_err(HarnessError::io(&path))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let record = (|| {
                Some(RecordedProcess {
                    name: parts.next()?.to_owned(),
                    pid: parts.next()?.parse().ok()?,
                    start_time: parts.next()?.parse().ok()?,
                })
            })();
            record.ok_or_else(|| HarnessError::Io {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "malformed PID record {line:?} (expected \"<name> <pid> <start time>\")"
                    ),
                ),
            })
        })
        .collect()
}

/// Adds a process to `dir/pids`, so that `tests/cluster/down` stops it too should its owner leak it.
pub(crate) fn append_record(dir: &Path, name: &str, pid: u32) -> Result<(), HarnessError> {
    let path = dir.join("pids");
    let Some(fields) = stat_fields(pid) else {
        // Already gone: nothing that `down` would need to stop.
        return Ok(());
    };
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(HarnessError::io(&path))?;
    writeln!(file, "{name} {pid} {}", fields.start_time).map_err(HarnessError::io(&path))
}

/// The recorded process called `name` that is running now (a restarted component has older
/// records of the same name).
pub(crate) fn running(dir: &Path, name: &str) -> Result<Option<RecordedProcess>, HarnessError> {
    Ok(read_records(dir)?
        .into_iter()
        .find(|r| r.name == name && r.is_running()))
}

/// Stops the recorded process called `name` (SIGTERM, then SIGKILL after 10 s) and waits until it
/// is gone; a process that is not running is left as it is.
pub(crate) fn stop_recorded(dir: &Path, name: &str) -> Result<(), HarnessError> {
    let Some(record) = running(dir, name)? else {
        return Ok(());
    };
    let io_error = |source: rustix::io::Errno| HarnessError::Io {
        path: dir.join("pids"),
        source: source.into(),
    };
    let pid =
        rustix::process::Pid::from_raw(record.pid as i32).ok_or_else(|| HarnessError::Io {
            path: dir.join("pids"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "PID 0 recorded"),
        })?;
    // A pidfd names this very process from here on, so neither a signal nor the wait can reach a later
    // process reusing the PID; the record is checked again once it is open.
    let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => return Err(io_error(e)),
    };
    if !record.is_running() {
        return Ok(());
    }
    // ESRCH: it exited on its own meanwhile, which is what was wanted.
    let signal = |sig| match rustix::process::pidfd_send_signal(&pidfd, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(io_error(e)),
    };
    // A pidfd turns readable when its process exits (a zombie counts, as in `is_running`).
    let exited = |timeout: Option<&rustix::time::Timespec>| loop {
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, timeout) {
            Ok(ready) => return Ok(ready > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io_error(e)),
        }
    };
    signal(rustix::process::Signal::TERM)?;
    let grace = rustix::time::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    if !exited(Some(&grace))? {
        signal(rustix::process::Signal::KILL)?;
        exited(None)?;
    }
    Ok(())
}
