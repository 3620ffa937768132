//! Calico's own `calicoctl`, the independent judge of a test cluster's IPAM state: what
//! `calicoctl ipam check` finds and what `calicoctl ipam show --show-blocks` counts, parsed from its
//! output (the pinned release prints both as plain text; `ipam check` exits 0 whatever it finds).

use std::{collections::BTreeMap, net::IpAddr, path::Path, process::Command};

use ipnet::IpNet;

use crate::HarnessError;

/// What `calicoctl ipam check --show-problem-ips` reported, problem by problem.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpamCheck {
    /// `Check complete; found N problems.`
    pub problems: u64,
    /// Allocated in IPAM but not in use by a workload or node (`… leaked; attrs …`).
    pub leaked: Vec<IpAddr>,
    /// In use by a workload or node but in no active pool (`… is not in any active IP pool.`).
    pub not_in_active_pool: Vec<IpAddr>,
    /// In use and in an active pool but without an allocation (`… has no IPAM allocation.`).
    pub without_allocation: Vec<IpAddr>,
    /// Handles with no matching address (`Found N handles with no matching IPs`).
    pub handles_without_ips: u64,
    /// Handles named in blocks that do not exist (`… is in use in a block but doesn't exist.`).
    pub missing_handles: Vec<String>,
    /// The whole output, for failure messages.
    pub text: String,
}

impl IpamCheck {
    fn parse(text: &str) -> IpamCheck {
        let mut check = IpamCheck {
            text: text.to_owned(),
            ..IpamCheck::default()
        };
        let first_ip = |line: &str| {
            line.split_whitespace()
                .next()
                .and_then(|w| w.parse::<IpAddr>().ok())
        };
        for line in text.lines().map(str::trim) {
            if let Some(n) = number_after(line, "Check complete; found ") {
                check.problems = n;
            } else if line.contains(" leaked; attrs ") {
                check.leaked.extend(first_ip(line));
            } else if line.ends_with("is not in any active IP pool.") {
                check.not_in_active_pool.extend(first_ip(line));
            } else if line.ends_with("has no IPAM allocation.") {
                check.without_allocation.extend(first_ip(line));
            } else if line.ends_with("is in use in a block but doesn't exist.") {
                check
                    .missing_handles
                    .extend(line.split_whitespace().next().map(str::to_owned));
            } else if let Some(n) = number_after(line, "Found ")
                && line.contains("handles with no matching IPs")
            {
                check.handles_without_ips = n;
            }
        }
        check
    }
}

/// One row of `calicoctl ipam show --show-blocks`: a pool or a block with its address counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub total: u64,
    pub in_use: u64,
    pub free: u64,
}

/// `calicoctl ipam show --show-blocks`: usage per pool and per block, by CIDR.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpamShow {
    pub pools: BTreeMap<IpNet, Usage>,
    pub blocks: BTreeMap<IpNet, Usage>,
    pub text: String,
}

impl IpamShow {
    fn parse(text: &str) -> IpamShow {
        let mut show = IpamShow {
            text: text.to_owned(),
            ..IpamShow::default()
        };
        for line in text.lines() {
            let cells: Vec<&str> = line
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let [grouping, cidr, total, in_use, free] = cells[..] else {
                continue;
            };
            let (Ok(cidr), Some(total), Some(in_use), Some(free)) = (
                cidr.parse::<IpNet>(),
                leading_number(total),
                leading_number(in_use),
                leading_number(free),
            ) else {
                continue;
            };
            let usage = Usage {
                total,
                in_use,
                free,
            };
            match grouping {
                "IP Pool" => show.pools.insert(cidr, usage),
                "Block" => show.blocks.insert(cidr, usage),
                _ => None,
            };
        }
        show
    }
}

/// The number at the start of `line` after `prefix`, if it starts so.
fn number_after(line: &str, prefix: &str) -> Option<u64> {
    line.strip_prefix(prefix).and_then(leading_number)
}

/// `12 (5%)` → 12.
fn leading_number(cell: &str) -> Option<u64> {
    let digits: String = cell.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Runs `calicoctl ARGS` from `binaries` against the cluster of `kubeconfig` (Kubernetes datastore).
pub(crate) fn run(
    binaries: &Path,
    kubeconfig: &Path,
    args: &[&str],
) -> Result<String, HarnessError> {
    let calicoctl = binaries.join("calicoctl");
    let output = Command::new(&calicoctl)
        .args(args)
        .env("DATASTORE_TYPE", "kubernetes")
        .env("KUBECONFIG", kubeconfig)
        .output()
        .map_err(|source| HarnessError::Spawn {
            command: calicoctl.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(HarnessError::CommandFailed {
            command: format!("calicoctl {}", args.join(" ")),
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn ipam_check(binaries: &Path, kubeconfig: &Path) -> Result<IpamCheck, HarnessError> {
    run(
        binaries,
        kubeconfig,
        &["ipam", "check", "--show-problem-ips"],
    )
    .map(|t| IpamCheck::parse(&t))
}

pub(crate) fn ipam_show(binaries: &Path, kubeconfig: &Path) -> Result<IpamShow, HarnessError> {
    run(binaries, kubeconfig, &["ipam", "show", "--show-blocks"]).map(|t| IpamShow::parse(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as calicoctl v3.31.0 prints them (calicoctl/calicoctl/commands/ipam/check.go, show.go).
    #[test]
    fn a_check_report_is_read_problem_by_problem() {
        let check = IpamCheck::parse(
            "Checking IPAM for inconsistencies...\n\
             Scanning for IPs that are allocated but not actually in use...\n\
             \x20 10.0.0.5 leaked; attrs Main:k8s-pod-network.abc Extra:namespace=default,node=n0,pod=gone\n\
             Found 1 IPs that are allocated in IPAM but not actually in use.\n\
             \x20 192.168.9.9 in use by Workload(default/p) is not in any active IP pool.\n\
             \x20 10.0.0.9 in use by Workload(default/q) and in active IPAM pool but has no IPAM allocation.\n\
             Found 2 handles with no matching IPs (and 7 handles with matches).\n\
             \x20 k8s-pod-network.xyz is in use in a block but doesn't exist.\n\
             Check complete; found 5 problems.\n",
        );
        assert_eq!(check.problems, 5);
        assert_eq!(check.leaked, ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            check.not_in_active_pool,
            ["192.168.9.9".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            check.without_allocation,
            ["10.0.0.9".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(check.handles_without_ips, 2);
        assert_eq!(check.missing_handles, ["k8s-pod-network.xyz"]);
    }

    #[test]
    fn a_show_table_is_read_by_pool_and_block() {
        let show = IpamShow::parse(
            "+----------+----------------+-----------+------------+--------------+\n\
             | GROUPING |      CIDR      | IPS TOTAL | IPS IN USE |   IPS FREE   |\n\
             +----------+----------------+-----------+------------+--------------+\n\
             | IP Pool  | 10.0.0.0/16    |     65536 | 3 (0%)     | 65533 (100%) |\n\
             | Block    | 10.0.0.0/26    |        64 | 3 (5%)     | 61 (95%)     |\n\
             +----------+----------------+-----------+------------+--------------+\n",
        );
        let pool: IpNet = "10.0.0.0/16".parse().unwrap();
        let block: IpNet = "10.0.0.0/26".parse().unwrap();
        assert_eq!(
            show.pools[&pool],
            Usage {
                total: 65536,
                in_use: 3,
                free: 65533
            }
        );
        assert_eq!(
            show.blocks[&block],
            Usage {
                total: 64,
                in_use: 3,
                free: 61
            }
        );
    }
}
