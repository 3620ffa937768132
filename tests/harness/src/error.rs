use std::{io, path::PathBuf, time::Duration};

/// Everything that can go wrong while bringing up or driving the test cluster.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("the control plane's binaries are missing ({why}): {how}")]
    BinariesMissing { why: String, how: String },

    #[error("`{command}` failed ({status}):\n{output}")]
    CommandFailed {
        command: String,
        status: String,
        output: String,
    },

    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error("cannot load kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },

    #[error("cannot build a client from kubeconfig {path}: {source}")]
    Client { path: PathBuf, source: kube::Error },

    #[error("API request to {what} failed: {source}")]
    Api { what: String, source: kube::Error },

    #[error("{path} is not a CustomResourceDefinition manifest: {message}")]
    Manifest { path: PathBuf, message: String },

    #[error("timed out after {timeout:?} waiting for {what}{last}")]
    Timeout {
        what: String,
        timeout: Duration,
        last: String,
    },

    #[error(
        "calico-sim runs Calico's own binaries, and {dir} lacks {missing}: build them with tests/upstream/build calico-v3.31"
    )]
    CalicoMissing { dir: PathBuf, missing: String },

    #[error("calico-sim exited ({status}) {when}; last lines of {log}:\n{tail}")]
    SimExited {
        status: String,
        when: String,
        log: PathBuf,
        tail: String,
    },
}

impl HarnessError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
