//! The one way every benchmark of the workspace leaves its figures: a JSON file
//! `$CARGO_TARGET_DIR/bench-results/NAME.json` (smoke-size runs: `bench-results/smoke/NAME.json`, so a CI
//! run never overwrites full figures) holding the figures, the command that reproduces them, the exact
//! command line and benchmark settings of this run, the git commit, and the machine (cores, memory, load
//! average at the start and at the end). README figures are copied from these files.
//!
//! Rust benches call [`Record::start`] first thing and [`Record::write`] last; benches in other languages
//! run under the `bench-record` binary (see `src/main.rs`). Only std and serde_json: ippool-rules' benches
//! use it without pulling in anything heavier.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot find the cargo target directory: set CARGO_TARGET_DIR")]
    NoTargetDir,
    #[error("figures must be a JSON object, not {0}")]
    FiguresNotAnObject(Value),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether a benchmark runs at its smoke size: under `cargo test --benches` (as CI runs them), which,
/// unlike `cargo bench`, passes no `--bench` argument, or when `IPPOOL_BENCH_SMOKE` is set.
pub fn smoke() -> bool {
    std::env::var_os("IPPOOL_BENCH_SMOKE").is_some() || !std::env::args().any(|a| a == "--bench")
}

/// A benchmark run in progress: what is known at its start.
#[derive(Debug)]
pub struct Record {
    name: String,
    command: String,
    smoke: bool,
    started: SystemTime,
    start: Value,
}

impl Record {
    /// Starts the record of benchmark `name`; `command` is the committed command that produces its full
    /// figures (e.g. `cargo bench -p ippool-rules --bench validate`). Call it before any work, so the load
    /// average is the machine's own and not the bench's.
    pub fn start(name: &str, command: &str, smoke: bool) -> Record {
        Record {
            name: name.to_owned(),
            command: command.to_owned(),
            smoke,
            started: SystemTime::now(),
            start: json!({
                "load_average": load_average(),
                "argv": std::env::args().collect::<Vec<_>>(),
                "cwd": std::env::current_dir().ok(),
                "settings": settings(),
                // The commit measured is the one checked out when the run starts.
                "git": git(),
            }),
        }
    }

    /// Writes the record with `figures` (a JSON object) and returns the file's path. The file is
    /// replaced whole (written beside it, then renamed), so a reader never sees half a record.
    pub fn write(self, figures: Value) -> Result<PathBuf, RecordError> {
        let target = target_dir()?;
        self.write_in(&target, figures)
    }

    fn write_in(self, target: &Path, figures: Value) -> Result<PathBuf, RecordError> {
        if !figures.is_object() {
            return Err(RecordError::FiguresNotAnObject(figures));
        }
        let finished = SystemTime::now();
        let mut dir = target.join("bench-results");
        if self.smoke {
            dir.push("smoke");
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RecordError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let record = json!({
            "bench": self.name,
            "command": self.command,
            "smoke": self.smoke,
            "argv": self.start["argv"],
            "cwd": self.start["cwd"],
            "settings": self.start["settings"],
            "git": self.start["git"],
            "machine": machine(&self.start["load_average"]),
            "started_unix_s": unix_seconds(self.started),
            "finished_unix_s": unix_seconds(finished),
            "figures": figures,
        });
        let path = dir.join(format!("{}.json", self.name));
        let partial = dir.join(format!(".{}.json.partial", self.name));
        let text = serde_json::to_string_pretty(&record).expect("a JSON value serialises") + "\n";
        std::fs::write(&partial, text).map_err(io(&partial))?;
        std::fs::rename(&partial, &path).map_err(io(&path))?;
        eprintln!("bench-record: {}", path.display());
        Ok(path)
    }
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `$CARGO_TARGET_DIR`, else the cargo target directory this executable was built into (the nearest
/// ancestor holding cargo's `CACHEDIR.TAG`).
fn target_dir() -> Result<PathBuf, RecordError> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(|_| RecordError::NoTargetDir)?;
    exe.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_owned)
        .ok_or(RecordError::NoTargetDir)
}

/// The environment variables that size or tune a benchmark (every name containing `BENCH`).
fn settings() -> Map<String, Value> {
    let mut settings: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.contains("BENCH"))
        .collect();
    settings.sort();
    settings
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The 1, 5 and 15 minute load averages (Linux).
fn load_average() -> Value {
    read("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .filter_map(|v| v.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .map_or(Value::Null, |v| json!(v))
}

/// A `key: value` line's value from a /proc file.
fn proc_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

fn machine(load_at_start: &Value) -> Value {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let meminfo = read("/proc/meminfo").unwrap_or_default();
    let memory_bytes = proc_field(&meminfo, "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024);
    let os = read("/etc/os-release").and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
    });
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu": proc_field(&cpuinfo, "model name"),
        "memory_bytes": memory_bytes,
        "load_average_start": load_at_start,
        "load_average_end": load_average(),
        "kernel": read("/proc/sys/kernel/osrelease").map(|v| v.trim().to_owned()),
        "os": os,
    })
}

/// The commit of the working directory's checkout, and whether tracked files differ from it.
fn git() -> Value {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    json!({
        "commit": run(&["rev-parse", "HEAD"]),
        "dirty": run(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_file_per_bench_with_the_figures_and_the_machine() {
        let dir = std::env::temp_dir().join(format!("bench-record-test-{}", std::process::id()));
        let path = Record::start("unit", "cargo bench -p x --bench unit", true)
            .write_in(&dir, json!({"pools_per_s": 5}))
            .unwrap();
        assert_eq!(path, dir.join("bench-results/smoke/unit.json"));
        let record: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(record["figures"]["pools_per_s"], 5);
        assert_eq!(record["command"], "cargo bench -p x --bench unit");
        assert_eq!(record["smoke"], true);
        assert!(record["machine"]["cores"].as_u64().unwrap() >= 1);
        assert_eq!(
            record["machine"]["load_average_start"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(
            Record::start("unit", "x", true)
                .write_in(&dir, json!([1]))
                .is_err(),
            "figures that are not an object are refused"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reads_proc_style_fields() {
        let text = "MemTotal:       24576000 kB\nmodel name\t: Some CPU @ 2.0GHz\n";
        assert_eq!(proc_field(text, "MemTotal").as_deref(), Some("24576000 kB"));
        assert_eq!(
            proc_field(text, "model name").as_deref(),
            Some("Some CPU @ 2.0GHz")
        );
        assert_eq!(proc_field(text, "missing"), None);
    }
}
