//! Calico's `calicoctl` as the independent judge of a test's end state: `calicoctl ipam check`
//! must report exactly the problems the test expects (none, unless it leaves a broken state on
//! purpose), and `calicoctl ipam show --show-blocks` must agree with `kubectl ippool blocks -o json`.
//!
//! "Agree" means: the same block CIDRs, each with the same number of addresses and the same number
//! in use, and each pool calicoctl lists with the same number in use. One exception is Calico's
//! own: calicoctl files blocks no pool covers under `0.0.0.0/0`, so an IPv6 block no pool covers is
//! listed by the plugin only.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    process::Command,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use serde::Deserialize;

use crate::{ControlPlane, HarnessError, IpamCheck, IpamShow, try_workspace_bin};

/// How long the judge waits for IPAM blocks to hold still between two reads.
const SETTLE: Duration = Duration::from_secs(60);

/// The problems `calicoctl ipam check` is expected to report; [`Expected::clean`] is none.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expected {
    pub leaked: Vec<IpAddr>,
    pub not_in_active_pool: Vec<IpAddr>,
    pub without_allocation: Vec<IpAddr>,
    pub handles_without_ips: u64,
    pub missing_handles: Vec<String>,
}

impl Expected {
    /// No problem at all: the end state of every completed operation.
    pub fn clean() -> Expected {
        Expected::default()
    }

    pub fn leaked(mut self, addresses: impl IntoIterator<Item = IpAddr>) -> Expected {
        self.leaked.extend(addresses);
        self
    }

    pub fn not_in_active_pool(mut self, addresses: impl IntoIterator<Item = IpAddr>) -> Expected {
        self.not_in_active_pool.extend(addresses);
        self
    }

    pub fn without_allocation(mut self, addresses: impl IntoIterator<Item = IpAddr>) -> Expected {
        self.without_allocation.extend(addresses);
        self
    }

    pub fn handles_without_ips(mut self, count: u64) -> Expected {
        self.handles_without_ips = count;
        self
    }

    /// calicoctl's total: missing handles are listed but not counted as problems.
    fn problems(&self) -> u64 {
        (self.leaked.len() + self.not_in_active_pool.len() + self.without_allocation.len()) as u64
            + self.handles_without_ips
    }
}

/// Where calicoctl and the expectation, or calicoctl and the plugin, differ.
fn check_disagreements(expected: &Expected, check: &IpamCheck) -> Vec<String> {
    let sorted = |list: &[IpAddr]| {
        let mut list = list.to_vec();
        list.sort();
        list
    };
    let mut found = Vec::new();
    let mut compare = |what: &str, want: String, got: String| {
        if want != got {
            found.push(format!("{what}: expected {want}, calicoctl reports {got}"));
        }
    };
    compare(
        "leaked addresses",
        format!("{:?}", sorted(&expected.leaked)),
        format!("{:?}", sorted(&check.leaked)),
    );
    compare(
        "in-use addresses in no active pool",
        format!("{:?}", sorted(&expected.not_in_active_pool)),
        format!("{:?}", sorted(&check.not_in_active_pool)),
    );
    compare(
        "in-use addresses without allocation",
        format!("{:?}", sorted(&expected.without_allocation)),
        format!("{:?}", sorted(&check.without_allocation)),
    );
    compare(
        "handles without addresses",
        expected.handles_without_ips.to_string(),
        check.handles_without_ips.to_string(),
    );
    let mut missing = check.missing_handles.clone();
    missing.sort();
    let mut want_missing = expected.missing_handles.clone();
    want_missing.sort();
    compare(
        "handles named in blocks that do not exist",
        format!("{want_missing:?}"),
        format!("{missing:?}"),
    );
    compare(
        "problem count",
        expected.problems().to_string(),
        check.problems.to_string(),
    );
    found
}

/// What `kubectl ippool blocks -o json` prints, as far as the judge compares it.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PluginBlocks {
    pools: Vec<PluginPool>,
    blocks: Vec<PluginBlock>,
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PluginPool {
    cidr: String,
    addresses_in_use: u64,
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PluginBlock {
    cidr: IpNet,
    size: u64,
    in_use: u64,
}

fn show_disagreements(show: &IpamShow, plugin: &PluginBlocks) -> Vec<String> {
    let mut found = Vec::new();
    let plugin_blocks: BTreeMap<IpNet, (u64, u64)> = plugin
        .blocks
        .iter()
        .map(|b| (b.cidr, (b.size, b.in_use)))
        .collect();
    for (cidr, usage) in &show.blocks {
        match plugin_blocks.get(cidr) {
            None => found.push(format!(
                "block {cidr}: calicoctl lists it, `kubectl ippool blocks` does not"
            )),
            Some(&(size, in_use)) if (size, in_use) != (usage.total, usage.in_use) => {
                found.push(format!(
                    "block {cidr}: calicoctl counts {} of {} in use, `kubectl ippool blocks` {in_use} of {size}",
                    usage.in_use, usage.total
                ))
            }
            Some(_) => {}
        }
    }
    let covered = |cidr: &IpNet| {
        show.pools
            .keys()
            .any(|pool| pool.contains(cidr) || cidr.contains(pool))
    };
    for cidr in plugin_blocks.keys() {
        let calicoctl_lists = matches!(cidr, IpNet::V4(_)) || covered(cidr);
        if calicoctl_lists && !show.blocks.contains_key(cidr) {
            found.push(format!(
                "block {cidr}: `kubectl ippool blocks` lists it, calicoctl does not"
            ));
        }
    }
    let plugin_pools: BTreeMap<IpNet, u64> = plugin
        .pools
        .iter()
        .filter_map(|p| Some((p.cidr.parse::<IpNet>().ok()?.trunc(), p.addresses_in_use)))
        .collect();
    for (cidr, usage) in &show.pools {
        match plugin_pools.get(cidr) {
            None => found.push(format!(
                "pool {cidr}: calicoctl lists it, `kubectl ippool blocks` does not"
            )),
            Some(&in_use) if in_use != usage.in_use => found.push(format!(
                "pool {cidr}: calicoctl counts {} in use, `kubectl ippool blocks` {in_use}",
                usage.in_use
            )),
            Some(_) => {}
        }
    }
    found
}

impl ControlPlane {
    /// Judges this cluster's IPAM state with calicoctl and panics, as a failed assertion does,
    /// naming every disagreement: `calicoctl ipam check` must report exactly `expected`, and
    /// `calicoctl ipam show --show-blocks` must agree with `kubectl ippool blocks -o json`. Returns
    /// calicoctl's report for further assertions.
    pub fn judge_ipam(&self, expected: &Expected) -> IpamCheck {
        match self.try_judge_ipam(expected) {
            Ok((check, disagreements)) if disagreements.is_empty() => check,
            Ok((check, disagreements)) => panic!(
                "calicoctl disagrees:\n  {}\n--- calicoctl ipam check:\n{}",
                disagreements.join("\n  "),
                check.text
            ),
            Err(e) => panic!("the IPAM state could not be judged: {e}"),
        }
    }

    /// calicoctl and the plugin read the cluster at different moments: their reports are
    /// compared only when the plugin's reads before and after calicoctl's are the same, so that a
    /// state still settling (pods a controller is still replacing) is not taken for a disagreement.
    fn try_judge_ipam(
        &self,
        expected: &Expected,
    ) -> Result<(IpamCheck, Vec<String>), HarnessError> {
        let deadline = Instant::now() + SETTLE;
        let (check, show, plugin) = loop {
            let before = self.plugin_blocks()?;
            let check = self.ipam_check()?;
            let show = self.ipam_show()?;
            let after = self.plugin_blocks()?;
            if before == after {
                break (check, show, after);
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: "IPAM blocks to stop changing while calicoctl reads them".to_owned(),
                    timeout: SETTLE,
                    last: format!("; the last two reads: {before:?} and {after:?}"),
                });
            }
        };
        let mut disagreements = check_disagreements(expected, &check);
        let shown = show_disagreements(&show, &plugin);
        if !shown.is_empty() {
            disagreements.extend(shown);
            disagreements.push(format!("calicoctl ipam show --show-blocks:\n{}", show.text));
        }
        Ok((check, disagreements))
    }

    fn plugin_blocks(&self) -> Result<PluginBlocks, HarnessError> {
        let plugin = try_workspace_bin("kubectl-ippool")?;
        let command = "kubectl ippool blocks -o json";
        let output = Command::new(&plugin)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["blocks", "-o", "json"])
            .env_remove("KUBECONFIG")
            .output()
            .map_err(|source| HarnessError::Spawn {
                command: plugin.display().to_string(),
                source,
            })?;
        let failed = |why: String| HarnessError::CommandFailed {
            command: command.to_owned(),
            status: output.status.to_string(),
            output: why,
        };
        if !output.status.success() {
            return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| failed(format!("its output is not the blocks report: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Usage;

    fn addr(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    #[test]
    fn a_clean_state_is_judged_clean_and_a_leak_is_not() {
        let clean = IpamCheck::default();
        assert!(check_disagreements(&Expected::clean(), &clean).is_empty());
        let leaked = IpamCheck {
            problems: 1,
            leaked: vec![addr("10.0.0.5")],
            ..IpamCheck::default()
        };
        let found = check_disagreements(&Expected::clean(), &leaked);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("leaked addresses: expected [], calicoctl reports [10.0.0.5]")
        );
        assert!(
            check_disagreements(&Expected::clean().leaked([addr("10.0.0.5")]), &leaked).is_empty()
        );
    }

    fn usage(total: u64, in_use: u64) -> Usage {
        Usage {
            total,
            in_use,
            free: total - in_use,
        }
    }

    fn net(cidr: &str) -> IpNet {
        cidr.parse().unwrap()
    }

    #[test]
    fn blocks_agree_by_cidr_size_and_use() {
        let show = IpamShow {
            pools: [(net("10.0.0.0/16"), usage(65536, 3))].into(),
            blocks: [(net("10.0.0.0/26"), usage(64, 3))].into(),
            text: String::new(),
        };
        let mut plugin = PluginBlocks {
            pools: vec![PluginPool {
                cidr: "10.0.0.0/16".to_owned(),
                addresses_in_use: 3,
            }],
            blocks: vec![PluginBlock {
                cidr: net("10.0.0.0/26"),
                size: 64,
                in_use: 3,
            }],
        };
        assert!(show_disagreements(&show, &plugin).is_empty());
        // An IPv6 block no pool covers: calicoctl's catch-all for such blocks is IPv4 only.
        plugin.blocks.push(PluginBlock {
            cidr: net("fd00:9::/122"),
            size: 64,
            in_use: 0,
        });
        assert!(show_disagreements(&show, &plugin).is_empty());
        plugin.blocks[0].in_use = 2;
        plugin.blocks.push(PluginBlock {
            cidr: net("10.9.0.0/26"),
            size: 64,
            in_use: 0,
        });
        assert_eq!(
            show_disagreements(&show, &plugin),
            [
                "block 10.0.0.0/26: calicoctl counts 3 of 64 in use, `kubectl ippool blocks` 2 of 64",
                "block 10.9.0.0/26: `kubectl ippool blocks` lists it, calicoctl does not",
            ]
        );
    }
}
