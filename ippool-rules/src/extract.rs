//! Typed objects from spanned trees, leniently: a field of the wrong type is left unset (the
//! structural check reports it), so one bad field never hides the rest of the pool from the rules.

use std::collections::BTreeMap;

use crate::model::{AllowedUse, IpPool, IpPoolSpec, IpipConfig, ObjectMeta};
use crate::source::{Node, Value};

/// The IPPool an object node describes, keeping every well-typed field.
pub fn ip_pool(node: &Node<'_>) -> IpPool {
    let text = |key: &str| node.get(key).and_then(Node::as_str).unwrap_or_default();
    IpPool {
        api_version: text("apiVersion").to_owned(),
        kind: text("kind").to_owned(),
        metadata: node.get("metadata").map(object_meta).unwrap_or_default(),
        spec: node.get("spec").map(pool_spec).unwrap_or_default(),
    }
}

fn string(node: &Node<'_>) -> Option<String> {
    node.as_str().map(str::to_owned)
}

/// An integer, saturated when it is too large for `i64`: a range rule must see it as out of range,
/// not as unset.
fn integer(node: &Node<'_>) -> Option<i64> {
    node.as_i64().or(match node.value {
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 => {
            Some(if f > 0.0 { i64::MAX } else { i64::MIN })
        }
        _ => None,
    })
}

fn string_map(node: &Node<'_>) -> BTreeMap<String, String> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .filter_map(|e| Some((e.key.to_string(), string(&e.value)?)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// ObjectMeta; the fields the rules do not read go to `extra` as JSON.
pub fn object_meta(node: &Node<'_>) -> ObjectMeta {
    let mut meta = ObjectMeta::default();
    let Value::Map(entries) = &node.value else {
        return meta;
    };
    for entry in entries {
        let v = &entry.value;
        match &*entry.key {
            "name" => meta.name = string(v),
            "namespace" => meta.namespace = string(v),
            "labels" => meta.labels = string_map(v),
            "annotations" => meta.annotations = string_map(v),
            "resourceVersion" => meta.resource_version = string(v),
            "uid" => meta.uid = string(v),
            "generation" => meta.generation = v.as_i64(),
            "creationTimestamp" => meta.creation_timestamp = string(v),
            "deletionTimestamp" => meta.deletion_timestamp = string(v),
            "finalizers" => {
                if let Value::Seq(items) = &v.value {
                    meta.finalizers = items.iter().filter_map(string).collect();
                }
            }
            other => {
                meta.extra.insert(other.to_owned(), v.to_json());
            }
        }
    }
    meta
}

fn pool_spec(node: &Node<'_>) -> IpPoolSpec {
    let mut spec = IpPoolSpec::default();
    let Value::Map(entries) = &node.value else {
        return spec;
    };
    for entry in entries {
        let v = &entry.value;
        match &*entry.key {
            "cidr" => spec.cidr = string(v),
            "blockSize" => spec.block_size = integer(v),
            "ipipMode" => spec.ipip_mode = v.as_str().map(Into::into),
            "vxlanMode" => spec.vxlan_mode = v.as_str().map(Into::into),
            "natOutgoing" => spec.nat_outgoing = v.as_bool(),
            "disabled" => spec.disabled = v.as_bool(),
            "disableBGPExport" => spec.disable_bgp_export = v.as_bool(),
            "nodeSelector" => spec.node_selector = string(v),
            "namespaceSelector" => spec.namespace_selector = string(v),
            "allowedUses" => {
                if let Value::Seq(items) = &v.value {
                    spec.allowed_uses = Some(
                        items
                            .iter()
                            .filter_map(|i| i.as_str().map(AllowedUse::from))
                            .collect(),
                    );
                }
            }
            "assignmentMode" => spec.assignment_mode = v.as_str().map(Into::into),
            "ipip" => {
                if matches!(v.value, Value::Map(_)) {
                    spec.ipip = Some(IpipConfig {
                        enabled: v.get("enabled").and_then(Node::as_bool),
                        mode: v.get("mode").and_then(string),
                    });
                }
            }
            "nat-outgoing" => spec.nat_outgoing_v1 = v.as_bool(),
            other => {
                spec.extra.insert(other.to_owned(), v.to_json());
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EncapMode;
    use crate::source::parse;

    #[test]
    fn wrong_types_are_left_unset() {
        let parsed = parse(
            "p.yaml",
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p, labels: {a: b, n: 1}}\nspec: {cidr: 10.0.0.0/16, blockSize: 'x', ipipMode: Always, allowedUses: [Workload, 3], ipip: {enabled: true}}\n",
        );
        let pool = ip_pool(parsed.documents[0].root.as_ref().unwrap());
        assert_eq!(pool.name(), "p");
        assert_eq!(pool.metadata.labels.len(), 1);
        assert_eq!(pool.spec.cidr.as_deref(), Some("10.0.0.0/16"));
        assert_eq!(pool.spec.block_size, None);
        assert_eq!(pool.spec.ipip_mode, Some(EncapMode::Always));
        assert_eq!(pool.spec.allowed_uses, Some(vec![AllowedUse::Workload]));
        assert_eq!(pool.spec.ipip.unwrap().enabled, Some(true));
    }

    #[test]
    fn integers_too_large_for_i64_saturate() {
        let parsed = parse(
            "p.json",
            r#"[{"spec": {"blockSize": 18446744073709551615}}, {"spec": {"blockSize": -1e30}}]"#,
        );
        let root = parsed.documents[0].root.as_ref().unwrap();
        let Value::Seq(items) = &root.value else {
            panic!("a list")
        };
        assert_eq!(ip_pool(&items[0]).spec.block_size, Some(i64::MAX));
        assert_eq!(ip_pool(&items[1]).spec.block_size, Some(i64::MIN));
    }
}
