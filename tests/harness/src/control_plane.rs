use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, Config,
    api::{Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::conditions,
};

use crate::{
    HarnessError, crds,
    process::{self, RecordedProcess},
    wait::wait_for,
};

const GET_BINARIES: &str = "run tests/cluster/kube-binaries once (builds kube-apiserver and \
kube-controller-manager from Debian's kubernetes source package in about 9 minutes; .ci/install-system \
installs what it needs), or set KUBEBUILDER_ASSETS to a folder holding etcd, kube-apiserver and \
kube-controller-manager";

/// When set, every control plane's directory (logs, kubeconfig) is kept, not only a panicking test's.
const KEEP_LOGS: &str = "IPPOOL_KEEP_CLUSTER_LOGS";

/// A private Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager on loopback
/// ports) started by `tests/cluster/up` in a temporary directory, with the Calico CRDs installed and
/// the kubeadm-config ConfigMap seeded. Each one is a separate cluster with its own etcd. Dropping
/// it runs `tests/cluster/down`, also when the test panics; after a panic (or always, with
/// `IPPOOL_KEEP_CLUSTER_LOGS` set) the directory with the components' logs is kept and its path printed.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    running: bool,
}

impl ControlPlane {
    /// Starts a fresh control plane. Without control-plane binaries this prints a
    /// `SKIPPED (no control-plane binaries): …` notice and returns `Ok(None)`, unless `CI` is set,
    /// where it is an error.
    pub fn start() -> Result<Option<ControlPlane>, HarnessError> {
        let Some(binaries) = kube_binaries()? else {
            if in_ci() {
                return Err(HarnessError::BinariesMissing {
                    how: GET_BINARIES.to_owned(),
                });
            }
            eprintln!("SKIPPED (no control-plane binaries): {GET_BINARIES}");
            return Ok(None);
        };
        // The ports `up` gets from the kernel are free when asked for, but a parallel test may
        // take one before etcd or the API server binds it: that failure is worth another try.
        let up = cluster_script("up");
        let mut attempts = 0;
        let (dir, output) = loop {
            attempts += 1;
            let dir = tempfile::Builder::new()
                .prefix("ippool-cluster-")
                .tempdir()
                .map_err(HarnessError::io(std::env::temp_dir()))?;
            let output = Command::new(&up)
                .arg(dir.path())
                .env("KUBE_BINARIES", &binaries)
                .stdin(Stdio::null())
                .output()
                .map_err(|source| HarnessError::Spawn {
                    command: up.display().to_string(),
                    source,
                })?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.success() {
                break (dir, output);
            }
            if attempts < 3 && stderr.contains("address already in use") {
                eprintln!(
                    "harness: a port was taken while the control plane started; trying again"
                );
                continue;
            }
            // `up` stops what it started when it fails; keep the logs it points to.
            let kept = dir.keep();
            return Err(HarnessError::CommandFailed {
                command: format!("{} {}", up.display(), kept.display()),
                status: output.status.to_string(),
                output: stderr.into_owned(),
            });
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprint!("{stderr}");
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        Ok(Some(ControlPlane {
            dir,
            kubeconfig,
            running: true,
        }))
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The directory holding the kubeconfig, the components' logs (`*.log`) and the PID records.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client with kube's default retries (HTTP 429 is retried with backoff).
    pub async fn client(&self) -> Client {
        self.try_client(true)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A client that does not retry, so that HTTP 429 (e.g. an eviction refused by a
    /// PodDisruptionBudget) comes back at once as `kube::Error::Api` with code 429.
    pub async fn client_no_retry(&self) -> Client {
        self.try_client(false)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A client; `retry` as kube's `Config::default_retry`.
    pub async fn try_client(&self, retry: bool) -> Result<Client, HarnessError> {
        client_from_kubeconfig(&self.kubeconfig, retry).await
    }

    /// Installs the `projectcalico.org/v3` IPPool CRD (Calico 3.32's native-v3 preview), for tests
    /// of the v3 group, and waits until it is Established. Taken from
    /// `../shared/calico-crds/v3-preview/` when present, else from `tests/cluster/crds/v3-preview/`.
    pub async fn install_v3_crd(&self) -> Result<(), HarnessError> {
        let client = self.try_client(true).await?;
        let api: Api<CustomResourceDefinition> = Api::all(client);
        for crd in crds::read_dir(&crds::v3_preview_dir())? {
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(
                &name,
                &PatchParams::apply("ippool-harness").force(),
                &Patch::Apply(&crd),
            )
            .await
            .map_err(|source| HarnessError::Api {
                what: format!("apply CRD {name}"),
                source,
            })?;
            wait_for(
                &api,
                &name,
                conditions::is_crd_established(),
                Duration::from_secs(30),
            )
            .await?;
        }
        Ok(())
    }

    /// The processes `up` started (and any calico-sim started on this control plane).
    pub fn processes(&self) -> Result<Vec<RecordedProcess>, HarnessError> {
        process::read_records(self.dir())
    }

    /// Stops every recorded process (`tests/cluster/down`). Dropping does this too.
    pub fn stop(&mut self) -> Result<(), HarnessError> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let down = cluster_script("down");
        let output = Command::new(&down)
            .arg(self.dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|source| HarnessError::Spawn {
                command: down.display().to_string(),
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(HarnessError::CommandFailed {
                command: format!("{} {}", down.display(), self.dir().display()),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "harness: stopping the control plane in {} failed: {e}",
                self.dir().display()
            );
        }
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "harness: the test failed; control-plane logs are kept in {}",
                self.dir().display()
            );
        } else if std::env::var_os(KEEP_LOGS).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "harness: ${KEEP_LOGS} is set; control-plane logs are kept in {}",
                self.dir().display()
            );
        }
    }
}

pub(crate) async fn client_from_kubeconfig(
    path: &Path,
    retry: bool,
) -> Result<Client, HarnessError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| HarnessError::Kubeconfig {
        path: path.to_owned(),
        source,
    })?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| HarnessError::Kubeconfig {
            path: path.to_owned(),
            source,
        })?;
    config.default_retry = retry;
    Client::try_from(config).map_err(|source| HarnessError::Client {
        path: path.to_owned(),
        source,
    })
}

/// `tests/cluster/<name>` of this repository.
pub(crate) fn cluster_script(name: &str) -> PathBuf {
    crate::repo_root().join("tests/cluster").join(name)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The folder with etcd, kube-apiserver and kube-controller-manager: `$KUBE_BINARIES` when set
/// (as `./dev` does), else what `kube-binaries --cached` finds without building; looked up once
/// per test process.
fn kube_binaries() -> Result<Option<PathBuf>, HarnessError> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    if let Some(found) = FOUND.get() {
        return Ok(found.clone());
    }
    if let Some(dir) = std::env::var_os("KUBE_BINARIES").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let complete = ["etcd", "kube-apiserver", "kube-controller-manager"]
            .iter()
            .all(|b| dir.join(b).is_file());
        return Ok(FOUND.get_or_init(|| complete.then_some(dir)).clone());
    }
    let script = cluster_script("kube-binaries");
    let output = Command::new(&script)
        .arg("--cached")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| HarnessError::Spawn {
            command: script.display().to_string(),
            source,
        })?;
    let found = output
        .status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    Ok(FOUND.get_or_init(|| found).clone())
}
