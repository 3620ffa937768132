//! CRD manifests: the `crd.projectcalico.org/v1` CRDs come from the pinned Calico release itself
//! (`tests/upstream/build` puts them in its `bin/crds/`, and `tests/cluster/up` installs them); the
//! project keeps only the `projectcalico.org/v3` IPPool CRD of Calico 3.32's native-v3 preview,
//! which the Go module proxy does not serve here (see `tests/upstream/README.md`).

use std::{
    fs,
    path::{Path, PathBuf},
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::HarnessError;

/// Calico's own CRDs in a folder of upstream binaries (see [`crate::ControlPlane::binaries`]).
pub fn calico_dir(binaries: &Path) -> PathBuf {
    binaries.join("crds")
}

/// The project's copy of the `projectcalico.org/v3` IPPool CRD (Calico 3.32's native-v3 preview).
pub fn v3_preview_dir() -> PathBuf {
    crate::repo_root().join("tests/cluster/crds/v3-preview")
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
