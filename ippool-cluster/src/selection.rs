//! Which pools Calico IPAM may allocate from for a request (calico-ipam.md §4; libcalico-go
//! `determinePools` and `filterPoolsByUse`, the CNI plugin's `ResolvePools`): enabled pools of the
//! family with a usable block size; pools named in the `ipv4pools`/`ipv6pools` annotation are used
//! regardless of selectors and assignment mode; otherwise automatic pools whose nodeSelector and
//! namespaceSelector match; then only pools allowing the intended use.

use std::collections::BTreeMap;

use ipnet::IpNet;
use ippool_rules::cidr::{self, Family};
use ippool_rules::model::{AllowedUse, AssignmentMode, DefaultedSpec, IpPool};
use ippool_rules::selector::Selector;
use thiserror::Error;

/// Why no pool can serve a request; messages follow Calico's where Calico has one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectionError {
    #[error("cannot find a qualified ippool")]
    NoQualifiedPool,
    #[error("the given pool ({cidr}) does not exist, or is not enabled")]
    RequestedPoolUnavailable { cidr: IpNet },
    #[error("no configured Calico pools for node {node}")]
    NoPoolForNode { node: String },
    #[error("cannot find a qualified ippool, no pools match the required use ({use_})")]
    NoPoolForUse { use_: AllowedUse },
    #[error("IPPool {pool}: {selector_field} '{selector}' does not parse: {reason}")]
    BadSelector {
        pool: String,
        selector_field: &'static str,
        selector: String,
        reason: String,
    },
    #[error(
        "annotation {annotation} = '{text}' is not a JSON list of pool names or CIDRs: {reason}"
    )]
    BadAnnotation {
        annotation: String,
        text: String,
        reason: String,
    },
    #[error("error parsing pool \"{entry}\": it is neither a CIDR nor the name of an IP pool")]
    UnknownPool { entry: String },
    #[error("\"{entry}\" isn't a {family} pool (annotation {annotation})")]
    WrongFamily {
        entry: String,
        family: Family,
        annotation: String,
    },
}

/// A pool Calico may allocate from: enabled, CIDR and block size usable.
#[derive(Debug, Clone)]
pub struct UsablePool<'a> {
    pub pool: &'a IpPool,
    /// The pool's network (host bits cleared).
    pub cidr: IpNet,
    pub block_size: u8,
    pub spec: DefaultedSpec,
}

impl UsablePool<'_> {
    pub fn name(&self) -> &str {
        self.pool.name()
    }

    fn selects(
        &self,
        field: &'static str,
        text: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, SelectionError> {
        let selector = Selector::parse(text).map_err(|e| SelectionError::BadSelector {
            pool: self.name().to_owned(),
            selector_field: field,
            selector: text.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(selector.matches(labels))
    }

    /// Whether the pool's nodeSelector matches the node's labels.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> Result<bool, SelectionError> {
        self.selects("nodeSelector", &self.spec.node_selector, labels)
    }

    /// Whether the pool's namespaceSelector matches the namespace's labels.
    pub fn selects_namespace(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, SelectionError> {
        self.selects("namespaceSelector", &self.spec.namespace_selector, labels)
    }

    pub fn allows(&self, use_: &AllowedUse) -> bool {
        self.spec.allowed_uses.contains(use_)
    }
}

/// Enabled pools of `family` whose block size Calico can allocate with, in the given order
/// (Calico lists pools by name).
pub fn usable_pools(pools: &[IpPool], family: Family) -> Vec<UsablePool<'_>> {
    pools
        .iter()
        .filter(|p| p.is_enabled())
        .filter_map(|pool| {
            let spec = pool.spec.defaulted();
            let cidr = spec.cidr?.trunc();
            let block_size = spec.block_size?;
            let fits = Family::of(&cidr) == family
                && cidr::block_size_range(family).contains(&block_size)
                && block_size >= cidr.prefix_len();
            fits.then_some(UsablePool {
                pool,
                cidr,
                block_size,
                spec,
            })
        })
        .collect()
}

/// Resolves a `cni.projectcalico.org/ipv4pools`/`ipv6pools` annotation (a JSON list of pool
/// names or CIDRs) to CIDRs, as Calico's CNI plugin does: an entry that parses as a CIDR is
/// taken as it is, otherwise it must name a pool (enabled or not: enablement is checked later).
pub fn resolve_pool_annotation(
    annotation: &str,
    text: &str,
    pools: &[IpPool],
    family: Family,
) -> Result<Vec<IpNet>, SelectionError> {
    let entries: Vec<String> =
        serde_json::from_str(text).map_err(|e| SelectionError::BadAnnotation {
            annotation: annotation.to_owned(),
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
    entries
        .into_iter()
        .map(|entry| {
            let cidr = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => pools
                    .iter()
                    .find(|p| p.name() == entry)
                    .and_then(|p| p.spec.cidr_net())
                    .map(|n| n.trunc())
                    .ok_or_else(|| SelectionError::UnknownPool {
                        entry: entry.clone(),
                    })?,
            };
            if Family::of(&cidr) != family {
                return Err(SelectionError::WrongFamily {
                    entry,
                    family,
                    annotation: annotation.to_owned(),
                });
            }
            Ok(cidr)
        })
        .collect()
}

/// What an allocation asks for.
#[derive(Debug, Clone)]
pub struct PoolRequest<'a> {
    pub node: &'a str,
    pub node_labels: &'a BTreeMap<String, String>,
    /// `None` when the request has no namespace (tunnel addresses): matched as no labels.
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// Pools named by annotation, already resolved to CIDRs; empty when none were named.
    pub requested: &'a [IpNet],
    pub use_: AllowedUse,
}

/// The result of selection: pools to allocate from, and the enabled pools that select the node
/// for any use (Calico releases an emptied affine block only when its pool is not among those).
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    pub allowed: Vec<UsablePool<'a>>,
    pub selecting_node: Vec<UsablePool<'a>>,
}

/// Calico's pool selection for one family.
pub fn select_pools<'a>(
    usable: &[UsablePool<'a>],
    request: &PoolRequest<'_>,
) -> Result<Selection<'a>, SelectionError> {
    if usable.is_empty() {
        return Err(SelectionError::NoQualifiedPool);
    }
    let selecting_node: Vec<UsablePool<'a>> = if request.requested.is_empty() {
        let no_labels = BTreeMap::new();
        let namespace_labels = request.namespace_labels.unwrap_or(&no_labels);
        let mut chosen = Vec::new();
        for pool in usable {
            if pool.spec.assignment_mode != AssignmentMode::Automatic {
                continue;
            }
            if pool.selects_node(request.node_labels)?
                && pool.selects_namespace(namespace_labels)?
            {
                chosen.push(pool.clone());
            }
        }
        chosen
    } else {
        request
            .requested
            .iter()
            .map(|cidr| {
                usable
                    .iter()
                    .find(|p| p.cidr == *cidr)
                    .cloned()
                    .ok_or(SelectionError::RequestedPoolUnavailable { cidr: *cidr })
            })
            .collect::<Result<_, _>>()?
    };
    if selecting_node.is_empty() {
        return Err(SelectionError::NoPoolForNode {
            node: request.node.to_owned(),
        });
    }
    let allowed: Vec<UsablePool<'a>> = selecting_node
        .iter()
        .filter(|p| p.allows(&request.use_))
        .cloned()
        .collect();
    if allowed.is_empty() {
        return Err(SelectionError::NoPoolForUse {
            use_: request.use_.clone(),
        });
    }
    Ok(Selection {
        allowed,
        selecting_node,
    })
}

/// The pool (of those given) containing `net`.
pub fn containing_pool<'p, 'a>(
    pools: &'p [UsablePool<'a>],
    net: &IpNet,
) -> Option<&'p UsablePool<'a>> {
    pools.iter().find(|p| cidr::contains_net(&p.cidr, net))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(name: &str, spec: serde_json::Value) -> IpPool {
        serde_json::from_value(json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(pools: &[UsablePool<'_>]) -> Vec<String> {
        pools.iter().map(|p| p.name().to_owned()).collect()
    }

    fn request<'a>(
        node_labels: &'a BTreeMap<String, String>,
        ns: Option<&'a BTreeMap<String, String>>,
        requested: &'a [IpNet],
        use_: AllowedUse,
    ) -> PoolRequest<'a> {
        PoolRequest {
            node: "n1",
            node_labels,
            namespace_labels: ns,
            requested,
            use_,
        }
    }

    #[test]
    fn usable_pools_skip_disabled_other_family_and_bad_block_sizes() {
        let pools = vec![
            pool("a", json!({"cidr": "10.0.0.0/16"})),
            pool("b", json!({"cidr": "10.1.0.0/16", "disabled": true})),
            pool("c", json!({"cidr": "fd00::/64"})),
            pool("d", json!({"cidr": "10.2.0.0/28", "blockSize": 26})),
            pool("e", json!({"cidr": "10.3.0.0/16", "blockSize": 33})),
            pool("f", json!({"cidr": "10.4.0.1/16", "blockSize": 24})),
        ];
        let v4 = usable_pools(&pools, Family::V4);
        assert_eq!(names(&v4), vec!["a", "f"]);
        assert_eq!(v4[1].cidr, "10.4.0.0/16".parse::<IpNet>().unwrap());
        assert_eq!(v4[0].block_size, 26);
        assert_eq!(names(&usable_pools(&pools, Family::V6)), vec!["c"]);
    }

    #[test]
    fn selectors_assignment_mode_and_use_filter_automatic_selection() {
        let pools = vec![
            pool("any", json!({"cidr": "10.0.0.0/16"})),
            pool(
                "rack1",
                json!({"cidr": "10.1.0.0/16", "nodeSelector": "rack == '1'"}),
            ),
            pool(
                "team",
                json!({"cidr": "10.2.0.0/16", "namespaceSelector": "team == 'x'"}),
            ),
            pool(
                "manual",
                json!({"cidr": "10.3.0.0/16", "assignmentMode": "Manual"}),
            ),
            pool(
                "tunnel",
                json!({"cidr": "10.4.0.0/16", "allowedUses": ["Tunnel"]}),
            ),
        ];
        let usable = usable_pools(&pools, Family::V4);
        let rack2 = labels(&[("rack", "2")]);
        let rack1 = labels(&[("rack", "1")]);
        let team_x = labels(&[("team", "x")]);
        let s = select_pools(&usable, &request(&rack2, None, &[], AllowedUse::Workload)).unwrap();
        assert_eq!(names(&s.allowed), vec!["any"]);
        assert_eq!(names(&s.selecting_node), vec!["any", "tunnel"]);
        let s = select_pools(
            &usable,
            &request(&rack1, Some(&team_x), &[], AllowedUse::Workload),
        )
        .unwrap();
        assert_eq!(names(&s.allowed), vec!["any", "rack1", "team"]);
        let s = select_pools(&usable, &request(&rack2, None, &[], AllowedUse::Tunnel)).unwrap();
        assert_eq!(names(&s.allowed), vec!["any", "tunnel"]);
    }

    #[test]
    fn requested_pools_ignore_selectors_and_mode_but_must_be_enabled() {
        let pools = vec![
            pool(
                "manual",
                json!({"cidr": "10.3.0.0/16", "assignmentMode": "Manual",
                                  "nodeSelector": "!all()"}),
            ),
            pool("off", json!({"cidr": "10.5.0.0/16", "disabled": true})),
        ];
        let usable = usable_pools(&pools, Family::V4);
        let none = labels(&[]);
        let manual = ["10.3.0.0/16".parse().unwrap()];
        let s = select_pools(
            &usable,
            &request(&none, None, &manual, AllowedUse::Workload),
        )
        .unwrap();
        assert_eq!(names(&s.allowed), vec!["manual"]);
        let off = ["10.5.0.0/16".parse().unwrap()];
        let err =
            select_pools(&usable, &request(&none, None, &off, AllowedUse::Workload)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the given pool (10.5.0.0/16) does not exist, or is not enabled"
        );
        // Without a request, a Manual pool is never chosen.
        let err =
            select_pools(&usable, &request(&none, None, &[], AllowedUse::Workload)).unwrap_err();
        assert_eq!(err.to_string(), "no configured Calico pools for node n1");
        assert_eq!(
            select_pools(&[], &request(&none, None, &[], AllowedUse::Workload)).unwrap_err(),
            SelectionError::NoQualifiedPool
        );
    }

    #[test]
    fn use_filter_reports_the_use() {
        let pools = vec![pool(
            "t",
            json!({"cidr": "10.0.0.0/16", "allowedUses": ["Tunnel"]}),
        )];
        let usable = usable_pools(&pools, Family::V4);
        let none = labels(&[]);
        let err =
            select_pools(&usable, &request(&none, None, &[], AllowedUse::Workload)).unwrap_err();
        assert!(err.to_string().contains("required use (Workload)"), "{err}");
    }

    #[test]
    fn annotations_resolve_names_and_cidrs() {
        let pools = vec![
            pool("blue", json!({"cidr": "10.7.0.0/16"})),
            pool("six", json!({"cidr": "fd00::/64"})),
        ];
        let a = "cni.projectcalico.org/ipv4pools";
        assert_eq!(
            resolve_pool_annotation(a, r#"["blue", "10.9.0.0/16"]"#, &pools, Family::V4).unwrap(),
            vec![
                "10.7.0.0/16".parse::<IpNet>().unwrap(),
                "10.9.0.0/16".parse().unwrap()
            ]
        );
        assert!(matches!(
            resolve_pool_annotation(a, r#"["green"]"#, &pools, Family::V4),
            Err(SelectionError::UnknownPool { .. })
        ));
        assert!(matches!(
            resolve_pool_annotation(a, r#"["six"]"#, &pools, Family::V4),
            Err(SelectionError::WrongFamily { .. })
        ));
        let err = resolve_pool_annotation(a, "blue", &pools, Family::V4).unwrap_err();
        assert!(err.to_string().contains("not a JSON list"), "{err}");
    }

    #[test]
    fn bad_selectors_name_the_pool() {
        let pools = vec![pool(
            "p",
            json!({"cidr": "10.0.0.0/16", "nodeSelector": "a == "}),
        )];
        let usable = usable_pools(&pools, Family::V4);
        let none = labels(&[]);
        let err =
            select_pools(&usable, &request(&none, None, &[], AllowedUse::Workload)).unwrap_err();
        assert!(
            err.to_string().starts_with("IPPool p: nodeSelector"),
            "{err}"
        );
    }

    #[test]
    fn containing_pool_finds_the_block_pool() {
        let pools = vec![pool("a", json!({"cidr": "10.0.0.0/16"}))];
        let usable = usable_pools(&pools, Family::V4);
        let block: IpNet = "10.0.3.0/26".parse().unwrap();
        assert_eq!(containing_pool(&usable, &block).unwrap().name(), "a");
        assert!(containing_pool(&usable, &"10.1.0.0/26".parse().unwrap()).is_none());
    }
}
