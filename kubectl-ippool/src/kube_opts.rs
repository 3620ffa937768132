//! kubectl's connection flags, parsed by the plugin itself (kubectl passes everything after the
//! plugin name through): `--kubeconfig`, `--context`, `--cluster`, `--user`, `--request-timeout`,
//! and `-v` for verbosity. The client is built from the kubeconfig through kube's own loader, so
//! tokens, client certificates and exec credential plugins work as they do for kubectl.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use http::HeaderValue;
use http::header::USER_AGENT;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Sent with every request (kube sends no user agent of its own), so that the API server's audit
/// log and metrics tell this plugin's requests apart from kubectl's and other clients'.
pub const USER_AGENT_VALUE: &str = concat!("kubectl-ippool/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Default, Args)]
pub struct KubeOpts {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// How long to wait for one API request (e.g. 30s, 2m; 0 = kube's defaults).
    #[arg(long = "request-timeout", global = true, value_name = "DURATION", value_parser = ippool_cluster::duration::parse)]
    pub request_timeout: Option<Duration>,

    /// More output on stderr: -v says which APIs are used and where CIDRs came from; -vv adds
    /// each list request; -vvv the HTTP traffic.
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl KubeOpts {
    /// Installs a stderr logger at the level `-v` asks for.
    pub fn init_logging(&self) {
        let filter = match self.verbose {
            // kube's own error logs repeat what the command reports, less helpfully.
            0 => "off,kubectl_ippool=warn,ippool_cluster=warn",
            1 => "off,kubectl_ippool=info,ippool_cluster=info",
            2 => "info,kubectl_ippool=debug,ippool_cluster=debug",
            _ => "debug,kube=trace,kube_client=trace",
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .without_time()
            .try_init();
    }

    fn explicit(&self) -> bool {
        self.kubeconfig.is_some()
            || self.context.is_some()
            || self.cluster.is_some()
            || self.user.is_some()
    }

    /// The client configuration: the kubeconfig (with the chosen context, cluster and user), or
    /// the in-cluster service account when no kubeconfig exists and none was asked for.
    pub async fn config(&self) -> anyhow::Result<Config> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        };
        let mut config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).with_context(|| {
                    format!(
                        "cannot read kubeconfig {}; check the path given to --kubeconfig",
                        path.display()
                    )
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot use kubeconfig {}{}",
                            path.display(),
                            self.context
                                .as_ref()
                                .map(|c| format!(" with context {c:?} (see `kubectl config get-contexts`)"))
                                .unwrap_or_default()
                        )
                    })?
            }
            None if self.explicit() => Config::from_kubeconfig(&options).await.with_context(|| {
                "cannot use the kubeconfig ($KUBECONFIG or ~/.kube/config) with the given \
                 --context/--cluster/--user; see `kubectl config get-contexts`"
            })?,
            None => Config::infer().await.context(
                "no cluster to talk to: no kubeconfig ($KUBECONFIG, ~/.kube/config) and not running \
                 in a pod; pass --kubeconfig",
            )?,
        };
        if let Some(timeout) = self.request_timeout.filter(|t| !t.is_zero()) {
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
        }
        config
            .headers
            .push((USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE)));
        Ok(config)
    }

    /// The client and the API server's URL (for messages).
    pub async fn client(&self) -> anyhow::Result<(Client, String)> {
        let config = self.config().await?;
        let server = config.cluster_url.to_string();
        tracing::info!("API server {server}");
        let client = Client::try_from(config).with_context(|| {
            format!("cannot build a client for {server}; check the kubeconfig's certificates")
        })?;
        Ok((client, server))
    }

    /// The namespace of the kubeconfig context (kubectl's default for namespaced commands).
    pub async fn default_namespace(&self) -> String {
        self.config()
            .await
            .map(|c| c.default_namespace)
            .unwrap_or_else(|_| "default".to_owned())
    }
}

/// Runs a command's async body on a runtime of its own (one per process).
pub fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_request_names_the_plugin_as_its_user_agent() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    \
             user: u\ncurrent-context: x\n",
        )
        .unwrap();
        let opts = KubeOpts {
            kubeconfig: Some(kubeconfig),
            ..KubeOpts::default()
        };
        let config = opts.config().await.unwrap();
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(name, _)| name == USER_AGENT)
            .map(|(_, value)| value.to_str().unwrap())
            .collect();
        assert_eq!(agents, [USER_AGENT_VALUE]);
    }
}
