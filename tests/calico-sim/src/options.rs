//! The command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

/// Plays kubelet and container runtime for fake nodes on a real control plane: creates Ready nodes,
/// sets up the sandboxes of the pods the scheduler binds to them through Calico's own `calico` CNI
/// plugin (which runs `calico-ipam`, so every address comes from Calico's IPAM), keeps their tunnel
/// addresses with Calico's own allocator, reports pod phases and readiness, and completes pod
/// deletions. Runs until SIGTERM or SIGINT.
#[derive(Debug, Parser)]
#[command(name = "calico-sim", version)]
pub struct Options {
    /// kubeconfig of the cluster to play the data plane of.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Number of fake nodes (named <prefix>0 … <prefix>N-1).
    #[arg(long)]
    pub nodes: usize,
    /// Node name prefix; sims with different prefixes can share a cluster.
    #[arg(long, default_value = "sim-")]
    pub node_prefix: String,
    /// Extra labels for every node, as k=v,k2=v2.
    #[arg(long, value_parser = parse_labels, default_value = "")]
    pub node_labels: Labels,
    /// Delay between a pod's containers starting and the pod turning Ready.
    #[arg(long, default_value_t = 0)]
    pub start_delay_ms: u64,
    /// Delay between a pod being deleted and its address being released and deletion completed.
    #[arg(long, default_value_t = 0)]
    pub stop_delay_ms: u64,
    /// Folder with Calico's binaries: calico (and calico-ipam beside it), tunnel-addresses and
    /// cni-dataplane, as tests/upstream/build makes them.
    #[arg(long)]
    pub calico_bin: PathBuf,
    /// kubeconfig Calico's CNI plugin runs with (its own identity on a real cluster); default:
    /// --kubeconfig.
    #[arg(long)]
    pub cni_kubeconfig: Option<PathBuf>,
    /// kubeconfig Calico's tunnel-address allocator runs with (calico-node's identity); default:
    /// --kubeconfig.
    #[arg(long)]
    pub node_agent_kubeconfig: Option<PathBuf>,
    /// Folder for what a node keeps on disk: sandbox records, IPAM lock files, the data plane's
    /// socket and Calico's CNI log; default: <prefix>calico-sim beside the kubeconfig.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Calico processes (CNI plugin, tunnel allocator) running at once across all nodes: the fake
    /// nodes share one machine, so its cores, not the nodes, are the limit.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel_calico: u16,
    /// The executable an image reference stands for, as REF=PATH (repeatable): pods labelled
    /// sim.ippool.dev/run=true run their containers as processes of this host.
    #[arg(long = "image", value_parser = parse_image)]
    pub images: Vec<(String, PathBuf)>,
}

/// Node labels from `--node-labels`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(pub BTreeMap<String, String>);

impl Options {
    pub fn node_names(&self) -> Vec<String> {
        (0..self.nodes)
            .map(|i| format!("{}{i}", self.node_prefix))
            .collect()
    }

    pub fn start_delay(&self) -> Duration {
        Duration::from_millis(self.start_delay_ms)
    }

    pub fn stop_delay(&self) -> Duration {
        Duration::from_millis(self.stop_delay_ms)
    }

    pub fn cni_kubeconfig(&self) -> &Path {
        self.cni_kubeconfig.as_deref().unwrap_or(&self.kubeconfig)
    }

    pub fn node_agent_kubeconfig(&self) -> &Path {
        self.node_agent_kubeconfig
            .as_deref()
            .unwrap_or(&self.kubeconfig)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| {
            let beside = self.kubeconfig.parent().unwrap_or(Path::new("."));
            beside.join(format!("{}calico-sim", self.node_prefix))
        })
    }
}

fn parse_image(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((image, path)) if !image.is_empty() && !path.is_empty() => {
            Ok((image.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!(
            "'{text}' is not an image mapping: write REF=PATH (e.g. localhost/web:1=/usr/bin/web)"
        )),
    }
}

fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            format!("'{pair}' is not a label: write key=value (e.g. topology.kubernetes.io/zone=a)")
        })?;
        if key.is_empty() {
            return Err(format!("'{pair}' has an empty label key: write key=value"));
        }
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(Labels(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_bad_ones_say_how_to_fix() {
        let labels = parse_labels("rack=1, zone=a,,").unwrap().0;
        assert_eq!(labels["rack"], "1");
        assert_eq!(labels["zone"], "a");
        assert!(parse_labels("").unwrap().0.is_empty());
        assert!(parse_labels("rack").unwrap_err().contains("key=value"));
        assert!(parse_labels("=1").unwrap_err().contains("empty label key"));
    }

    #[test]
    fn command_line() {
        let o = Options::try_parse_from([
            "calico-sim",
            "--kubeconfig",
            "/k",
            "--nodes",
            "2",
            "--node-labels",
            "a=b",
            "--calico-bin",
            "/bin",
        ])
        .unwrap();
        assert_eq!(o.node_names(), vec!["sim-0", "sim-1"]);
        assert_eq!(o.node_labels.0["a"], "b");
        assert_eq!(o.stop_delay(), Duration::ZERO);
        assert_eq!(o.cni_kubeconfig(), Path::new("/k"));
        assert_eq!(o.state_dir(), Path::new("/sim-calico-sim"));
        assert!(Options::try_parse_from(["calico-sim", "--nodes", "1"]).is_err());
        assert!(o.images.is_empty());
        assert_eq!(
            parse_image("localhost/web:1=/usr/bin/web").unwrap(),
            ("localhost/web:1".to_owned(), PathBuf::from("/usr/bin/web"))
        );
        assert!(parse_image("web").unwrap_err().contains("REF=PATH"));
    }
}
