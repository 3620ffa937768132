//! Pods that really run: a pod labelled `sim.ippool.dev/run: "true"` has each container's
//! command run as a process of this host, on its node's address (host network), with the
//! container's environment and the pod's volumes bind-mounted where the container expects them.
//! Its status follows the processes as kubelet's follows containers: Running when started, Ready
//! when the readiness probe passes, restarted with a back-off or failed by restartPolicy when a
//! process exits, stopped with SIGTERM and, after the grace period, SIGKILL when the pod goes.

mod env;
mod probes;
pub mod processes;
mod sources;
mod status;
mod volumes;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use self::env::Context;
use self::processes::{Launch, Mount};
use self::sources::Sources;
use self::status::{ContainerStatus, State, Terminated};
use crate::pod_status;

/// The label that selects a pod to run for real.
pub const RUN_LABEL: &str = "sim.ippool.dev/run";

/// Kubelet's container restart back-off: 10 s doubling to 5 min, the first restart at once.
const RESTART_BACKOFF: Duration = Duration::from_secs(10);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long starts its back-off afresh.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// Back-off between attempts to prepare a pod's volumes and environment.
const PREPARE_BACKOFF: Duration = Duration::from_secs(2);
/// Kubelet's default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;

pub fn selected(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(RUN_LABEL))
        .is_some_and(|v| v == "true")
}

/// What every running pod shares.
pub struct Runtime {
    pub client: Client,
    /// Image reference → the executable it stands for (`--image REF=PATH`).
    pub images: BTreeMap<String, PathBuf>,
    /// Where the API server is, for KUBERNETES_SERVICE_HOST/PORT: there is no kube-proxy to
    /// reach it by its Service's ClusterIP.
    pub api_host: String,
    pub api_port: u16,
    pub state: PathBuf,
}

/// A running pod, as its node's worker holds it.
pub struct RunHandle {
    stop: watch::Sender<Option<Duration>>,
}

impl RunHandle {
    /// Stops the pod's containers with this grace period; the `stopped` callback given to
    /// [`start`] runs when they have ended.
    pub fn stop(&self, grace: Duration) {
        self.stop.send_if_modified(|current| {
            let sooner = current.is_none_or(|g| grace < g);
            if sooner {
                *current = Some(grace);
            }
            sooner
        });
    }
}

/// The grace period of a pod being deleted.
pub fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// Starts the pod on `node` at `ip`; `stopped` runs once its containers have been stopped.
pub fn start(
    runtime: Arc<Runtime>,
    pod: Pod,
    node: String,
    ip: IpAddr,
    stopped: Box<dyn FnOnce() + Send>,
) -> RunHandle {
    let (stop, stop_rx) = watch::channel(None);
    tokio::spawn(async move {
        let run = PodRun {
            runtime,
            pod,
            node,
            ip,
            started: Timestamp::now(),
        };
        run.run(stop_rx).await;
        stopped();
    });
    RunHandle { stop }
}

struct PodRun {
    runtime: Arc<Runtime>,
    pod: Pod,
    node: String,
    ip: IpAddr,
    started: Timestamp,
}

fn label(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    let asked = stop
        .wait_for(Option::is_some)
        .await
        .map(|grace| grace.unwrap_or_default());
    match asked {
        Ok(grace) => grace,
        // The handle is gone: nobody will ask any more.
        Err(_) => std::future::pending().await,
    }
}

impl PodRun {
    fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }

    fn dir(&self) -> PathBuf {
        self.runtime.state.join("pods").join(self.uid())
    }

    fn containers(&self) -> Vec<Container> {
        self.pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default()
    }

    async fn run(self, mut stop: watch::Receiver<Option<Duration>>) {
        let containers = self.containers();
        let mut statuses: Vec<ContainerStatus> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                container_id: container_id(&self.uid(), i),
                ready: false,
                restart_count: 0,
                state: State::Waiting {
                    reason: "ContainerCreating".to_owned(),
                    message: String::new(),
                },
                last: None,
            })
            .collect();
        let mut programs = Vec::new();
        for (i, c) in containers.iter().enumerate() {
            let image = c.image.clone().unwrap_or_default();
            match self.runtime.images.get(&image) {
                Some(program) => programs.push(program.clone()),
                None => {
                    let message = format!(
                        "Failed to pull image \"{image}\": calico-sim has no executable for this image; start calico-sim with --image {image}=PATH"
                    );
                    statuses[i].state = State::Waiting {
                        reason: "ErrImagePull".to_owned(),
                        message: message.clone(),
                    };
                    self.event("Failed", &message).await;
                }
            }
        }
        self.report(&statuses).await;
        if programs.len() < containers.len() {
            stop_requested(&mut stop).await;
            return;
        }
        let Some((launches, refresh)) = self.prepare(&containers, &programs, &mut stop).await
        else {
            return;
        };
        let (events, mut updates) = mpsc::unbounded_channel();
        for (index, (container, launch)) in containers.into_iter().zip(launches).enumerate() {
            let run = ContainerRun {
                index,
                container,
                launch,
                ip: self.ip,
                restart_policy: self
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.restart_policy.clone())
                    .unwrap_or_else(|| "Always".to_owned()),
                records: self
                    .runtime
                    .state
                    .join("nodes")
                    .join(&self.node)
                    .join("processes"),
                status: statuses[index].clone(),
                events: events.clone(),
            };
            tokio::spawn(run.run(stop.clone()));
        }
        drop(events);
        let mut refresh_at = refresh.map(|r| tokio::time::Instant::now() + r);
        loop {
            let refresh_due = async {
                match refresh_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                update = updates.recv() => match update {
                    Some((index, status)) => {
                        statuses[index] = status;
                        self.report(&statuses).await;
                    }
                    None => break,
                },
                () = refresh_due => {
                    refresh_at = match self.refresh_volumes().await {
                        Ok(next) => next.map(|r| tokio::time::Instant::now() + r),
                        Err(e) => {
                            warn!(pod = label(&self.pod), error = %e, "refreshing the pod's volumes failed; retrying");
                            Some(tokio::time::Instant::now() + PREPARE_BACKOFF)
                        }
                    };
                }
            }
        }
        // Every container has ended: by a stop, or for good under its restartPolicy.
        stop_requested(&mut stop).await;
        let _ = std::fs::remove_dir_all(self.dir());
    }

    async fn read_sources(&self) -> Result<Sources, String> {
        Sources::read(&self.runtime.client, &self.pod)
            .await
            .map_err(|e| format!("reading the pod's Secrets and ConfigMaps: {e}"))
    }

    /// Writes the pod's volumes; returns when their tokens need refreshing.
    async fn write_volumes(&self, sources: &Sources) -> Result<Option<Duration>, String> {
        let context = self.context(sources);
        volumes::materialise(&self.runtime.client, &context, &self.dir().join("volumes"))
            .await
            .map_err(|e| e.to_string())
    }

    async fn refresh_volumes(&self) -> Result<Option<Duration>, String> {
        self.write_volumes(&self.read_sources().await?).await
    }

    fn context<'a>(&'a self, sources: &'a Sources) -> Context<'a> {
        Context {
            pod: &self.pod,
            node: &self.node,
            ip: self.ip,
            api_host: &self.runtime.api_host,
            api_port: self.runtime.api_port,
            sources,
        }
    }

    /// Volumes and environments, retried until they can be had or the pod is stopped.
    async fn prepare(
        &self,
        containers: &[Container],
        programs: &[PathBuf],
        stop: &mut watch::Receiver<Option<Duration>>,
    ) -> Option<(Vec<Launch>, Option<Duration>)> {
        let mut reported = String::new();
        loop {
            match self.try_prepare(containers, programs).await {
                Ok(prepared) => return Some(prepared),
                Err(error) => {
                    if error != reported {
                        warn!(
                            pod = label(&self.pod),
                            error, "preparing the pod failed; retrying"
                        );
                        self.event("FailedMount", &error).await;
                        reported = error;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(PREPARE_BACKOFF) => {}
                _ = stop_requested(stop) => return None,
            }
        }
    }

    async fn try_prepare(
        &self,
        containers: &[Container],
        programs: &[PathBuf],
    ) -> Result<(Vec<Launch>, Option<Duration>), String> {
        let sources = self.read_sources().await?;
        let refresh = self.write_volumes(&sources).await?;
        let context = self.context(&sources);
        let volumes = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        let mut launches = Vec::new();
        for (container, program) in containers.iter().zip(programs) {
            let env = env::environment(&context, container)
                .map_err(|e| format!("container {}: {e}", container.name))?;
            let expand = |list: &Option<Vec<String>>| -> Vec<String> {
                list.iter()
                    .flatten()
                    .map(|a| env::expand(a, &env))
                    .collect()
            };
            // The image's filesystem is the host's: `command` names a host program, and without
            // one the image's executable runs.
            let mut command = expand(&container.command);
            let program = if command.is_empty() {
                program.clone()
            } else {
                PathBuf::from(command.remove(0))
            };
            let mut mounts = Vec::new();
            for mount in container.volume_mounts.iter().flatten() {
                let volume = volumes
                    .iter()
                    .find(|v| v.name == mount.name)
                    .ok_or_else(|| {
                        format!(
                            "container {}: volumeMount {} names no volume of the pod",
                            container.name, mount.name
                        )
                    })?;
                let mut source = volumes::host_folder(volume, &self.dir().join("volumes"));
                if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    source = source.join(sub);
                }
                mounts.push(Mount {
                    source,
                    target: PathBuf::from(&mount.mount_path),
                    read_only: mount.read_only.unwrap_or(false),
                });
            }
            launches.push(Launch {
                program,
                args: command.into_iter().chain(expand(&container.args)).collect(),
                env,
                working_dir: container.working_dir.as_ref().map(PathBuf::from),
                mounts,
                log: self.dir().join(format!("{}.log", container.name)),
            });
        }
        Ok((launches, refresh))
    }

    async fn report(&self, statuses: &[ContainerStatus]) {
        let patch = status::patch(statuses, self.ip, self.started);
        let api: Api<Pod> = Api::namespaced(
            self.runtime.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = self.pod.metadata.name.as_deref().unwrap_or("");
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // Deleted meanwhile: nothing left to report on.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => warn!(pod = label(&self.pod), error = %e, "patching the pod's status failed"),
        }
    }

    async fn event(&self, reason: &str, message: &str) {
        let event = pod_status::warning_event(&self.pod, &self.node, reason, message);
        let api: Api<Event> = Api::namespaced(
            self.runtime.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            warn!(pod = label(&self.pod), error = %e, "recording the event failed");
        }
    }
}

/// Each container of a pod gets an ID derived from the pod's UID.
fn container_id(uid: &str, index: usize) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("calico-sim-container/{uid}/{index}").as_bytes());
    data_encoding::HEXLOWER.encode(&digest)
}

/// One container: started, probed, restarted under the pod's restartPolicy, stopped.
struct ContainerRun {
    index: usize,
    container: Container,
    launch: Launch,
    ip: IpAddr,
    restart_policy: String,
    records: PathBuf,
    status: ContainerStatus,
    events: mpsc::UnboundedSender<(usize, ContainerStatus)>,
}

fn exit_code(status: &std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(_) => 128,
    }
}

impl ContainerRun {
    fn send(&self) {
        let _ = self.events.send((self.index, self.status.clone()));
    }

    async fn run(mut self, mut stop: watch::Receiver<Option<Duration>>) {
        let mut backoff = Duration::ZERO;
        loop {
            let started = Timestamp::now();
            let exited = match processes::spawn(&self.launch, &self.records) {
                Ok(process) => match self.supervise(process, started, &mut stop).await {
                    Some(code) => code,
                    None => return,
                },
                Err(e) => {
                    self.status.state = State::Waiting {
                        reason: "RunContainerError".to_owned(),
                        message: e.to_string(),
                    };
                    self.send();
                    128
                }
            };
            let finished = Timestamp::now();
            let ran = finished.duration_since(started).unsigned_abs();
            let termination = Terminated {
                exit_code: exited,
                reason: if exited == 0 { "Completed" } else { "Error" }.to_owned(),
                started,
                finished,
            };
            self.status.ready = false;
            let restart = match self.restart_policy.as_str() {
                "Never" => false,
                "OnFailure" => exited != 0,
                _ => true,
            };
            if !restart {
                self.status.state = State::Terminated(termination);
                self.send();
                return;
            }
            backoff = if ran >= BACKOFF_RESET {
                Duration::ZERO
            } else {
                backoff
            };
            self.status.last = Some(termination);
            if !backoff.is_zero() {
                self.status.state = State::Waiting {
                    reason: "CrashLoopBackOff".to_owned(),
                    message: format!(
                        "back-off {}s restarting failed container={}",
                        backoff.as_secs(),
                        self.container.name
                    ),
                };
                self.send();
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop_requested(&mut stop) => return,
                }
            }
            backoff = (backoff * 2).clamp(RESTART_BACKOFF, MAX_RESTART_BACKOFF);
            self.status.restart_count += 1;
        }
    }

    /// Runs the started process until it exits (its exit code) or the pod is stopped (None).
    async fn supervise(
        &mut self,
        mut process: processes::Process,
        started: Timestamp,
        stop: &mut watch::Receiver<Option<Duration>>,
    ) -> Option<i32> {
        let mut readiness =
            probes::Readiness::new(&self.container, self.ip, self.launch.env.clone());
        self.status.state = State::Running { started };
        self.status.ready = readiness.ready();
        self.send();
        info!(
            container = self.container.name,
            pid = process.pid,
            "container started"
        );
        loop {
            tokio::select! {
                exited = process.wait() => {
                    let code = exit_code(&exited);
                    info!(container = self.container.name, code, "container exited");
                    return Some(code);
                }
                grace = stop_requested(stop) => {
                    let exited = process.stop(grace).await;
                    self.status.ready = false;
                    self.status.state = State::Terminated(Terminated {
                        exit_code: exit_code(&exited),
                        reason: "Completed".to_owned(),
                        started,
                        finished: Timestamp::now(),
                    });
                    self.send();
                    return None;
                }
                () = tokio::time::sleep_until(readiness.next) => {
                    if readiness.probe(process.pid).await {
                        self.status.ready = readiness.ready();
                        self.send();
                    }
                }
            }
        }
    }
}

/// Kills what a previous sim left running (see [`processes::reap_strays`]).
pub fn reap_strays(state: &Path) {
    processes::reap_strays(state);
}
