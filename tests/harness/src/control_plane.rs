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
    HarnessError, IpamCheck, IpamShow, calicoctl, crds,
    process::{self, RecordedProcess},
    wait::wait_for,
};

const GET_BINARIES: &str = "build them with `tests/upstream/build` (Kubernetes, etcd and Calico from \
the Go module proxy, cached under ~/.cache/ippool/upstream; `./dev test` does this), or set KUBE_BINARIES \
to a folder holding them; to run without the cluster tests, opt out with `IPPOOL_SKIP_CLUSTER=1 ./dev test`";

/// What `tests/cluster/up` runs; a folder missing one of them cannot start a control plane.
const REQUIRED: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kube-controllers",
];

/// When set, every control plane's directory (logs, kubeconfig) is kept, not only a panicking test's.
const KEEP_LOGS: &str = "IPPOOL_KEEP_CLUSTER_LOGS";

/// How [`ControlPlane::start_with`] configures the control plane.
#[derive(Debug, Clone, Default)]
pub struct ControlPlaneOptions {
    /// calico-kube-controllers' grace period before it releases a leaked address
    /// (`leakGracePeriod`; `tests/cluster/up` defaults to 15m). It syncs IPAM every half of it.
    pub leak_grace_period: Option<Duration>,
    /// Every request the API server serves goes to [`ControlPlane::audit_log`] (JSON lines at
    /// the Metadata level: user, verb, resource).
    pub audit_log: bool,
    /// calico-kube-controllers is not started (its IPAM garbage collector would change a state a
    /// bench seeds on purpose while it measures).
    pub without_kube_controllers: bool,
    /// etcd's `--quota-backend-bytes` (etcd's default is 2 GiB).
    pub etcd_quota_bytes: Option<u64>,
}

/// A private Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager on loopback
/// ports) started by `tests/cluster/up` in a temporary directory, with the Calico CRDs installed and
/// the kubeadm-config ConfigMap seeded. Each one is a separate cluster with its own etcd. Dropping
/// it runs `tests/cluster/down`, also when the test panics; after a panic (or always, with
/// `IPPOOL_KEEP_CLUSTER_LOGS` set) the directory with the components' logs is kept and its path printed.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    running: bool,
    binaries: PathBuf,
}

impl ControlPlane {
    /// Starts a fresh control plane. Without the upstream binaries this is an error that says how
    /// to build them: a cluster test never passes without running.
    pub fn start() -> Result<ControlPlane, HarnessError> {
        ControlPlane::start_with(&ControlPlaneOptions::default())
    }

    /// Starts a fresh control plane configured by `options`.
    pub fn start_with(options: &ControlPlaneOptions) -> Result<ControlPlane, HarnessError> {
        let binaries = upstream_binaries()?;
        // The ports `up` gets from the kernel are free when asked for, but a parallel test may
        // take one before etcd or the API server binds it: that failure is worth another try.
        let up = cluster_script("up");
        let mut attempts = 0;
        let (dir, output) =
            loop {
                attempts += 1;
                let dir = tempfile::Builder::new()
                    .prefix("ippool-cluster-")
                    .tempdir()
                    .map_err(HarnessError::io(std::env::temp_dir()))?;
                let mut command = Command::new(&up);
                command.arg(dir.path()).env("KUBE_BINARIES", &binaries);
                if options.audit_log {
                    command.env("IPPOOL_AUDIT_LOG", "1");
                }
                if options.without_kube_controllers {
                    command.env("IPPOOL_KUBE_CONTROLLERS", "0");
                }
                if let Some(bytes) = options.etcd_quota_bytes {
                    command.env("IPPOOL_ETCD_QUOTA_BYTES", bytes.to_string());
                }
                if let Some(period) = options.leak_grace_period {
                    command.env(
                        "IPPOOL_LEAK_GRACE_PERIOD",
                        format!("{}ms", period.as_millis()),
                    );
                }
                let output = command.stdin(Stdio::null()).output().map_err(|source| {
                    HarnessError::Spawn {
                        command: up.display().to_string(),
                        source,
                    }
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
        Ok(ControlPlane {
            dir,
            kubeconfig,
            running: true,
            binaries,
        })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's audit log (with [`ControlPlaneOptions::audit_log`]).
    pub fn audit_log(&self) -> PathBuf {
        self.dir().join("audit.log")
    }

    /// The kubeconfig of one of the component identities of `tests/cluster/rbac.yaml`
    /// (`calico-cni-plugin`, `calico-node`, `calico-kube-controllers`, `calico-sim`).
    pub fn kubeconfig_of(&self, user: &str) -> PathBuf {
        self.dir().join(format!("kubeconfig-{user}"))
    }

    /// The folder of upstream binaries this control plane runs (`tests/upstream/build`'s `bin/`):
    /// kubectl, calicoctl, Calico's CNI plugin and the rest come from here too.
    pub fn binaries(&self) -> &Path {
        &self.binaries
    }

    /// The directory holding the kubeconfig, the components' logs (`*.log`) and the PID records.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `calicoctl ARGS` (the pinned release's) against this cluster; its standard output.
    pub fn calicoctl(&self, args: &[&str]) -> Result<String, HarnessError> {
        calicoctl::run(&self.binaries, &self.kubeconfig, args)
    }

    /// What `calicoctl ipam check` finds in this cluster: the independent judge of IPAM state.
    pub fn ipam_check(&self) -> Result<IpamCheck, HarnessError> {
        calicoctl::ipam_check(&self.binaries, &self.kubeconfig)
    }

    /// What `calicoctl ipam show --show-blocks` counts per pool and block.
    pub fn ipam_show(&self) -> Result<IpamShow, HarnessError> {
        calicoctl::ipam_show(&self.binaries, &self.kubeconfig)
    }

    /// Stops calico-kube-controllers (its IPAM garbage collector would race a state a test seeds on
    /// purpose); the rest of the control plane runs on.
    pub fn stop_kube_controllers(&self) -> Result<(), HarnessError> {
        process::stop_recorded(self.dir(), "kube-controllers")
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
    /// the project's `tests/cluster/crds/v3-preview/`.
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

/// The folder with the upstream binaries: `$KUBE_BINARIES` when set (as `./dev` does), else what
/// `tests/upstream/build --cached` has already built (it never builds); looked up once per process.
pub fn upstream_binaries() -> Result<PathBuf, HarnessError> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(find_binaries)
        .clone()
        .map_err(|why| HarnessError::BinariesMissing {
            why,
            how: GET_BINARIES.to_owned(),
        })
}

fn find_binaries() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("KUBE_BINARIES").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = crate::repo_root().join("tests/upstream/build");
            let output = Command::new(&script)
                .arg("--cached")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            if !output.status.success() {
                return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
            }
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
    };
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    if missing.is_empty() {
        Ok(dir)
    } else {
        Err(format!("{} has no {}", dir.display(), missing.join(", ")))
    }
}
