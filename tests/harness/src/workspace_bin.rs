//! Finding (and if need be building) the workspace's own binaries for cluster tests.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::SystemTime,
};

use crate::HarnessError;

/// Path of a workspace binary (e.g. "calico-sim", "kubectl-ippool", "admission-webhook").
/// Panics with the build's output when it cannot be had; see [`try_workspace_bin`].
pub fn workspace_bin(name: &str) -> PathBuf {
    try_workspace_bin(name).unwrap_or_else(|e| panic!("{e}"))
}

/// The binary next to the running test executable (`target/<profile>/<name>`) when it is newer
/// than every source file of the workspace; otherwise `cargo build --bin <name>` into
/// `target/harness-nested/` — a separate target directory, because the outer `cargo test` holds
/// the lock of its own. Built at most once per test process.
pub fn try_workspace_bin(name: &str) -> Result<PathBuf, HarnessError> {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(name) {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe().map_err(HarnessError::io("the running test executable"))?;
    let profile_dir = profile_dir(&exe);
    let beside = profile_dir.join(name);
    let path = if is_fresh(&beside) {
        beside
    } else {
        nested_build(name, &profile_dir)?
    };
    built.insert(name.to_owned(), path.clone());
    Ok(path)
}

/// `target/<profile>` for an executable in `target/<profile>/deps/` (tests) or `target/<profile>/`.
fn profile_dir(exe: &Path) -> PathBuf {
    let parent = exe.parent().unwrap_or(Path::new("."));
    match parent.file_name() {
        Some(dir) if dir == "deps" => parent.parent().unwrap_or(parent).to_owned(),
        _ => parent.to_owned(),
    }
}

fn is_fresh(binary: &Path) -> bool {
    let Ok(built) = fs::metadata(binary).and_then(|m| m.modified()) else {
        return false;
    };
    newest_source(&crate::repo_root()).is_some_and(|newest| newest <= built)
}

/// The newest modification time among the workspace's Rust sources and manifests.
fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let modified = if kind.is_dir() {
            if name.starts_with('.') || matches!(name.as_ref(), "target" | "tgt" | "node_modules") {
                continue;
            }
            newest_source(&path)
        } else if name.ends_with(".rs") || name == "Cargo.toml" || name == "Cargo.lock" {
            entry.metadata().and_then(|m| m.modified()).ok()
        } else {
            continue;
        };
        newest = newest.max(modified);
    }
    newest
}

fn nested_build(name: &str, profile_dir: &Path) -> Result<PathBuf, HarnessError> {
    let target_dir = profile_dir
        .parent()
        .unwrap_or(profile_dir)
        .join("harness-nested");
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(crate::repo_root())
        // As a test build of the plugin would: with its fault points (`IPPOOL_FAULT_AT`).
        .args([
            "build",
            "--workspace",
            "--features",
            "ippool-cluster/fault-injection",
        ])
        .args(["--bin", name, "--target-dir"])
        .arg(&target_dir)
        .stdin(Stdio::null());
    if release {
        command.arg("--release");
    }
    let shown = format!("{command:?}");
    eprintln!("harness: building {name}: {shown}");
    let output = command.output().map_err(|source| HarnessError::Spawn {
        command: shown.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(HarnessError::CommandFailed {
            command: shown,
            status: output.status.to_string(),
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(target_dir
        .join(if release { "release" } else { "debug" })
        .join(name))
}
