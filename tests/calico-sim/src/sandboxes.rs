//! What a node's container runtime remembers of its pod sandboxes, kept on disk as a runtime keeps
//! it: written before the CNI ADD and removed after the CNI DEL, so that a sim restarted after
//! `kill -9` knows which sandboxes may hold addresses (and tears them down) and which are set up.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("sandbox record {path}: {source}")]
pub struct RecordError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// The suffix of a record being written.
const NEW: &str = ".json.new";

/// One sandbox of the node, by container ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    /// What the CNI ADD returned once it completed; `None` while no ADD has (since the last one
    /// failed or was cut short).
    pub addresses: Option<Vec<IpAddr>>,
}

/// The records of one node: `<state>/nodes/<node>/sandboxes/<container ID>.json`.
pub struct Records {
    dir: PathBuf,
}

impl Records {
    /// Opens the node's records, creating the folder, and reads those a previous run left.
    pub fn open(
        state: &Path,
        node: &str,
    ) -> Result<(Records, HashMap<String, Record>), RecordError> {
        let dir = state.join("nodes").join(node).join("sandboxes");
        let at = |path: &Path| {
            let path = path.to_owned();
            move |source| RecordError { path, source }
        };
        fs::create_dir_all(&dir).map_err(at(&dir))?;
        let mut found = HashMap::new();
        for entry in fs::read_dir(&dir).map_err(at(&dir))? {
            let path = entry.map_err(at(&dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(NEW) {
                // A write cut short: the record it was replacing (if any) still stands.
                fs::remove_file(&path).map_err(at(&path))?;
                continue;
            }
            let Some(container_id) = name.strip_suffix(".json") else {
                continue;
            };
            let text = fs::read(&path).map_err(at(&path))?;
            let record = serde_json::from_slice::<Record>(&text)
                .map_err(|e| at(&path)(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            found.insert(container_id.to_owned(), record);
        }
        Ok((Records { dir }, found))
    }

    fn path(&self, container_id: &str) -> PathBuf {
        self.dir.join(format!("{container_id}.json"))
    }

    /// Writes a record whole (a new file renamed over the old), so that a crash leaves either.
    pub fn write(&self, container_id: &str, record: &Record) -> Result<(), RecordError> {
        let path = self.path(container_id);
        let fresh = self.dir.join(format!("{container_id}{NEW}"));
        let text = serde_json::to_vec(record).unwrap_or_default();
        fs::write(&fresh, text)
            .and_then(|()| fs::rename(&fresh, &path))
            .map_err(|source| RecordError { path, source })
    }

    pub fn remove(&self, container_id: &str) -> Result<(), RecordError> {
        let path = self.path(container_id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RecordError { path, source: e }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_restart_and_unfinished_writes_are_dropped() {
        let state = std::env::temp_dir().join(format!("calico-sim-records-{}", std::process::id()));
        let (records, found) = Records::open(&state, "sim-0").unwrap();
        assert!(found.is_empty());
        let record = Record {
            namespace: "default".into(),
            pod: "web-1".into(),
            uid: "u1".into(),
            addresses: Some(vec!["10.0.0.5".parse().unwrap()]),
        };
        records.write("c1", &record).unwrap();
        records
            .write(
                "c2",
                &Record {
                    addresses: None,
                    ..record.clone()
                },
            )
            .unwrap();
        fs::write(records.dir.join("c3.json.new"), b"{\"namesp").unwrap();
        let (records, found) = Records::open(&state, "sim-0").unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found["c1"], record);
        assert_eq!(found["c2"].addresses, None);
        assert!(!records.dir.join("c3.json.new").exists());
        records.remove("c1").unwrap();
        records.remove("c1").unwrap();
        let (_, found) = Records::open(&state, "sim-0").unwrap();
        assert_eq!(found.len(), 1);
        fs::remove_dir_all(&state).unwrap();
    }
}
