//! The project's copy of the IPPool CRD schema, and a JSON Schema for editors.

use serde_json::{Value, json};

use crate::model::{AllowedUse, ApiGroup, AssignmentMode, EncapMode};

/// The `openAPIV3Schema` of Calico v3.31's `ippools.crd.projectcalico.org` CRD, as the API server
/// enforces it (tests/schema.rs proves it equals the CRD in the Calico module pinned by
/// tests/upstream/calico-v3.31).
const IPPOOL_CRD_SCHEMA: &str = include_str!("../schema/ippool-crd-v1.openapi.json");

pub fn ippool_crd_schema() -> Value {
    // The embedded text is checked by the schema test; an empty object would only loosen checks.
    serde_json::from_str(IPPOOL_CRD_SCHEMA).unwrap_or_else(|_| json!({}))
}

/// A JSON Schema (draft-07) for IPPool documents of both API groups, for yaml-language-server
/// and similar editors. Stricter than the CRD: it knows Calico's enums and ranges.
pub fn json_schema() -> Value {
    let selector = json!({
        "type": "string",
        "description": "Calico selector, e.g. all(), has(k), k == 'v', k in {'a','b'}; default all()",
    });
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://example.invalid/ippool/ippool.schema.json",
        "title": "Calico IPPool",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {
                "enum": [ApiGroup::V3_API_VERSION, ApiGroup::CRD_V1_API_VERSION],
                "description": "projectcalico.org/v3 is validated by Calico; crd.projectcalico.org/v1 only by the CRD's structural schema",
            },
            "kind": {"const": "IPPool"},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {
                        "type": "string",
                        "maxLength": 253,
                        "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "spec": {
                "type": "object",
                "required": ["cidr"],
                "additionalProperties": false,
                "properties": {
                    "cidr": {
                        "type": "string",
                        "description": "Strictly masked network, e.g. 10.244.0.0/16 or fd00:10:244::/56",
                    },
                    "blockSize": {
                        "type": "integer",
                        "minimum": 20,
                        "maximum": 128,
                        "description": "Prefix length of IPAM blocks: 20-32 for IPv4 (default 26), 116-128 for IPv6 (default 122). Immutable.",
                    },
                    "ipipMode": {"enum": EncapMode::KNOWN, "description": "default Never; IPv4 only"},
                    "vxlanMode": {"enum": EncapMode::KNOWN, "description": "default Never"},
                    "natOutgoing": {"type": "boolean"},
                    "disabled": {"type": "boolean"},
                    "disableBGPExport": {"type": "boolean"},
                    "nodeSelector": selector,
                    "namespaceSelector": selector,
                    "allowedUses": {
                        "type": "array",
                        "items": {"enum": AllowedUse::KNOWN},
                        "description": "default [Workload, Tunnel]; LoadBalancer cannot be combined",
                    },
                    "assignmentMode": {"enum": AssignmentMode::KNOWN},
                    "ipip": {
                        "type": "object",
                        "deprecated": true,
                        "description": "Deprecated v1 field; Calico requires it unset: use ipipMode",
                    },
                    "nat-outgoing": {
                        "type": "boolean",
                        "deprecated": true,
                        "description": "Deprecated v1 field; Calico requires it unset: use natOutgoing",
                    },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_crd_schema_parses() {
        let schema = ippool_crd_schema();
        assert_eq!(schema["properties"]["spec"]["required"], json!(["cidr"]));
    }

    #[test]
    fn editor_schema_lists_both_groups() {
        let schema = json_schema();
        assert_eq!(
            schema["properties"]["apiVersion"]["enum"],
            json!(["projectcalico.org/v3", "crd.projectcalico.org/v1"])
        );
    }
}
