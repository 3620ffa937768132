//! Which pools Calico's IPAM gives a new pod's address from, and why every other pool is out, in
//! the order Calico v3.31 decides it:
//! - the CNI plugin takes the pod's `cni.projectcalico.org/ipv4pools` (`ipv6pools`) annotation over
//!   its namespace's (`cni-plugin/pkg/k8s/k8s.go`) and resolves each entry, a CIDR or a pool's name
//!   (`cni-plugin/internal/pkg/utils/utils.go`, `ResolvePools`);
//! - IPAM keeps the enabled pools of the family (`libcalico-go/lib/clientv3/client.go`,
//!   `filterIPPool`); named pools are used whatever their selectors, otherwise a pool must be
//!   `Automatic` and select the node and the namespace (`libcalico-go/lib/ipam/ipam.go`,
//!   `determinePools`); last, its `allowedUses` must include `Workload` (`filterPoolsByUse`).
//!
//! Calico gives eligible pools no order of preference: a pod's address may come from any of them
//! (projectcalico/calico#8120).

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use ippool_rules::cidr::Family;
use ippool_rules::model::{AllowedUse, AssignmentMode, IpPool};
use ippool_rules::selector::Selector;
use serde::Serialize;

use crate::snapshot::{NamespaceRecord, NodeRecord};

/// A new pod's address request, as Calico's CNI plugin sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub family: Family,
    pub node: &'a NodeRecord,
    pub namespace: &'a NamespaceRecord,
    /// The pod's own pool annotation for `family`, as written.
    pub pod_pools: Option<&'a str>,
}

/// What decides the candidate pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    PodAnnotation,
    NamespaceAnnotation,
    /// No annotation: every enabled pool is a candidate, judged by its selectors.
    Selectors,
}

/// Why a pool cannot give the pod its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Exclusion {
    OtherFamily,
    UnparsableCidr,
    Disabled,
    Deleting,
    NotNamed { source: Source },
    Manual,
    NodeNotSelected { selector: String },
    NamespaceNotSelected { selector: String },
    NotForWorkloads { allowed_uses: Vec<String> },
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::OtherFamily => f.write_str("of the other address family"),
            Exclusion::UnparsableCidr => f.write_str("its CIDR does not parse"),
            Exclusion::Disabled => f.write_str("disabled"),
            Exclusion::Deleting => f.write_str("being deleted"),
            Exclusion::NotNamed {
                source: Source::PodAnnotation,
            } => f.write_str("not named in the pod's pool annotation"),
            Exclusion::NotNamed { .. } => {
                f.write_str("not named in the namespace's pool annotation")
            }
            Exclusion::Manual => f.write_str(
                "assignmentMode Manual: only pods or namespaces naming it get addresses from it",
            ),
            Exclusion::NodeNotSelected { selector } => {
                write!(f, "its nodeSelector {selector:?} does not select the node")
            }
            Exclusion::NamespaceNotSelected { selector } => {
                write!(
                    f,
                    "its namespaceSelector {selector:?} does not select the namespace"
                )
            }
            Exclusion::NotForWorkloads { allowed_uses } => write!(
                f,
                "its allowedUses ({}) do not include Workload",
                allowed_uses.join(", ")
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Excluded {
    pub pool: String,
    #[serde(flatten)]
    pub why: Exclusion,
}

/// The verdict for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub source: Source,
    /// The annotation that decides, as written, when one does.
    pub annotation: Option<String>,
    /// The pools the address may come from, in the order Calico lists them; no preference among
    /// them.
    pub eligible: Vec<String>,
    pub excluded: Vec<Excluded>,
    /// Calico's own error when no address can be given (the CNI ADD fails with it).
    pub failure: Option<String>,
}

/// Which of `pools` Calico would allocate `request`'s address from.
pub fn explain(pools: &[IpPool], request: &Request<'_>) -> Explanation {
    let (source, annotation) = deciding_annotation(request);
    let mut explanation = Explanation {
        source,
        annotation: annotation.map(str::to_owned),
        eligible: Vec::new(),
        excluded: Vec::new(),
        failure: None,
    };
    // Calico lists pools in name order.
    let mut pools: Vec<&IpPool> = pools.iter().collect();
    pools.sort_by(|a, b| a.name().cmp(b.name()));
    let requested = match annotation.map(|text| resolve(text, &pools, request.family)) {
        Some(Err(failure)) => return explanation.fail(failure),
        Some(Ok(nets)) => nets,
        None => Vec::new(),
    };
    let mut enabled: BTreeMap<IpNet, &IpPool> = BTreeMap::new();
    let mut candidates = Vec::new();
    for pool in &pools {
        match enabled_in(pool, request.family) {
            Ok(net) => {
                enabled.entry(net).or_insert(pool);
                candidates.push((*pool, net));
            }
            Err(why) => explanation.exclude(pool, why),
        }
    }
    if enabled.is_empty() {
        return explanation.fail("cannot find a qualified ippool".to_owned());
    }
    let matching = if requested.is_empty() {
        match by_selectors(&candidates, request, &mut explanation) {
            Ok(matching) => matching,
            Err(failure) => return explanation.fail(failure),
        }
    } else {
        if let Some(missing) = requested.iter().find(|net| !enabled.contains_key(net)) {
            return explanation.fail(format!(
                "the given pool ({missing}) does not exist, or is not enabled"
            ));
        }
        for (pool, net) in &candidates {
            if !requested.contains(net) {
                explanation.exclude(pool, Exclusion::NotNamed { source });
            }
        }
        requested.iter().map(|net| enabled[net]).collect()
    };
    if matching.is_empty() {
        return explanation.fail(format!(
            "no configured Calico pools for node {}",
            request.node.name
        ));
    }
    for pool in matching {
        let uses = pool.spec.defaulted().allowed_uses;
        if uses.contains(&AllowedUse::Workload) {
            explanation.eligible.push(pool.name().to_owned());
        } else {
            let allowed_uses = uses.iter().map(|u| u.as_str().to_owned()).collect();
            explanation.exclude(pool, Exclusion::NotForWorkloads { allowed_uses });
        }
    }
    if explanation.eligible.is_empty() {
        return explanation.fail(
            "cannot find a qualified ippool, no pools match the required use (Workload)".to_owned(),
        );
    }
    explanation
}

impl Explanation {
    fn fail(mut self, failure: String) -> Explanation {
        self.eligible.clear();
        self.failure = Some(failure);
        self
    }

    fn exclude(&mut self, pool: &IpPool, why: Exclusion) {
        self.excluded.push(Excluded {
            pool: pool.name().to_owned(),
            why,
        });
    }
}

/// The pod's annotation for the family when set, else the namespace's.
fn deciding_annotation<'a>(request: &Request<'a>) -> (Source, Option<&'a str>) {
    let namespace = match request.family {
        Family::V4 => request.namespace.ipv4_pools.as_deref(),
        Family::V6 => request.namespace.ipv6_pools.as_deref(),
    };
    match (request.pod_pools, namespace) {
        (Some(pod), _) if !pod.is_empty() => (Source::PodAnnotation, Some(pod)),
        (_, Some(ns)) if !ns.is_empty() => (Source::NamespaceAnnotation, Some(ns)),
        _ => (Source::Selectors, None),
    }
}

/// An annotation's entries as networks: a CIDR as written, or the CIDR of the pool so named.
fn resolve(text: &str, pools: &[&IpPool], family: Family) -> Result<Vec<IpNet>, String> {
    let entries: Vec<String> = serde_json::from_str(text)
        .map_err(|e| format!("the pool annotation {text:?} is not a JSON list of strings: {e}"))?;
    let mut nets = Vec::with_capacity(entries.len());
    for entry in &entries {
        let net = match entry.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => pools
                .iter()
                .find(|p| p.name() == entry)
                .and_then(|p| p.spec.cidr_net())
                .map(|net| net.trunc())
                .ok_or_else(|| {
                    format!("error parsing pool {entry:?}: invalid CIDR address: {entry}")
                })?,
        };
        if Family::of(&net) != family {
            return Err(format!("\"{}\" isn't a {family} address", net.network()));
        }
        nets.push(net);
    }
    Ok(nets)
}

/// The pool's network when IPAM counts it as enabled for `family`.
fn enabled_in(pool: &IpPool, family: Family) -> Result<IpNet, Exclusion> {
    if pool.metadata.deletion_timestamp.is_some() {
        return Err(Exclusion::Deleting);
    }
    if pool.spec.disabled.unwrap_or(false) {
        return Err(Exclusion::Disabled);
    }
    let net = pool.spec.cidr_net().ok_or(Exclusion::UnparsableCidr)?;
    if Family::of(&net) != family {
        return Err(Exclusion::OtherFamily);
    }
    Ok(net.trunc())
}

/// With no annotation: the Automatic pools whose selectors take the node and the namespace. A
/// selector that does not parse fails the whole request, as in Calico.
fn by_selectors<'p>(
    candidates: &[(&'p IpPool, IpNet)],
    request: &Request<'_>,
    explanation: &mut Explanation,
) -> Result<Vec<&'p IpPool>, String> {
    let mut matching = Vec::new();
    for (pool, _) in candidates {
        let spec = pool.spec.defaulted();
        if spec.assignment_mode != AssignmentMode::Automatic {
            explanation.exclude(pool, Exclusion::Manual);
            continue;
        }
        let selects = |text: &str, labels: &BTreeMap<String, String>| {
            Selector::parse(text)
                .map(|s| s.matches(labels))
                .map_err(|e| format!("pool {}: selector {text:?}: {e}", pool.name()))
        };
        if !selects(&spec.node_selector, &request.node.labels)? {
            let selector = spec.node_selector;
            explanation.exclude(pool, Exclusion::NodeNotSelected { selector });
            continue;
        }
        if !selects(&spec.namespace_selector, &request.namespace.labels)? {
            let selector = spec.namespace_selector;
            explanation.exclude(pool, Exclusion::NamespaceNotSelected { selector });
            continue;
        }
        matching.push(*pool);
    }
    Ok(matching)
}

#[cfg(test)]
mod tests;
