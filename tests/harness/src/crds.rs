//! The Calico CRD manifests the control plane installs: `../shared/calico-crds/` beside the
//! repository when it exists (the reference copy), else the project's own `tests/cluster/crds/`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::HarnessError;

/// The project's own copy of the `crd.projectcalico.org/v1` CRDs.
pub fn project_dir() -> PathBuf {
    crate::repo_root().join("tests/cluster/crds")
}

/// The shared reference copy, when this checkout has one beside it.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = crate::repo_root().join("../shared/calico-crds");
    dir.is_dir().then_some(dir)
}

/// Where the `projectcalico.org/v3` preview CRD is taken from (shared copy first).
pub fn v3_preview_dir() -> PathBuf {
    shared_dir().unwrap_or_else(project_dir).join("v3-preview")
}

/// Every CRD in the `*.yaml` files directly inside `dir` (as `kubectl apply -f dir` reads them), by
/// file name.
pub fn read_dir(dir: &Path) -> Result<Vec<CustomResourceDefinition>, HarnessError> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(HarnessError::io(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    paths.sort();
    paths.iter().map(|path| read_file(path)).collect()
}

pub fn read_file(path: &Path) -> Result<CustomResourceDefinition, HarnessError> {
    let text = fs::read_to_string(path).map_err(HarnessError::io(path))?;
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&text).map_err(|e| HarnessError::Manifest {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if crd.metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err(HarnessError::Manifest {
            path: path.to_owned(),
            message: "metadata.name is missing".into(),
        });
    }
    Ok(crd)
}
