//! `kubectl ippool policy`: the stateless part of the rules as a ValidatingAdmissionPolicy, which
//! the API server evaluates itself (CEL) — no server to run. Three objects: the parameters (a
//! ConfigMap with the cluster's pod and service CIDRs), the policy for IPPools of both API groups,
//! and its binding (deny, parameters required).

mod rules;

use std::collections::BTreeMap;

use ipnet::IpNet;
use ippool_rules::rules::catalog;
use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ParamKind, ParamRef, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};
use k8s_openapi::api::core::v1::ConfigMap;

use crate::objects::{meta, strings, to_value};
use crate::{Document, ManifestError};

pub use rules::{PolicyRule, RULES, VARIABLES};

/// The policy's and the binding's name.
pub const POLICY_NAME: &str = "ippool-rules";
/// The parameters' ConfigMap, in kube-system.
pub const PARAMS_NAME: &str = "ippool-policy-params";
pub const PARAMS_NAMESPACE: &str = "kube-system";

/// What the policy is told about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyParams {
    /// Pod CIDRs: a Workload pool must lie inside one (IPP050); none means not checked.
    pub cluster_cidrs: Vec<IpNet>,
    /// Where they were found, for the reader of the ConfigMap.
    pub cluster_cidr_source: Option<String>,
    /// Service CIDRs: no pool may overlap one (IPP052).
    pub service_cidrs: Vec<IpNet>,
}

/// The denial message of a rule: its code, the catalogue's summary, Calico's own wording where
/// Calico has the rule, and the fix.
pub fn message(rule: &PolicyRule) -> String {
    let info = catalog().iter().find(|r| r.code == rule.code);
    let summary = info.map_or("", |r| r.summary);
    match info.and_then(|r| r.calico_reason) {
        Some(calico) => format!(
            "{}: {summary} (Calico: \"{calico}\"); fix: {}",
            rule.code, rule.fix
        ),
        None => format!("{}: {summary}; fix: {}", rule.code, rule.fix),
    }
}

fn joined(cidrs: &[IpNet]) -> String {
    cidrs
        .iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn params_config_map(params: &PolicyParams) -> ConfigMap {
    let mut data = BTreeMap::from([
        ("clusterCIDRs".to_owned(), joined(&params.cluster_cidrs)),
        ("serviceCIDRs".to_owned(), joined(&params.service_cidrs)),
    ]);
    if let Some(source) = &params.cluster_cidr_source {
        data.insert("clusterCIDRSource".to_owned(), source.clone());
    }
    ConfigMap {
        metadata: meta(PARAMS_NAME, Some(PARAMS_NAMESPACE)),
        data: Some(data),
        ..ConfigMap::default()
    }
}

pub fn policy() -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: meta(POLICY_NAME, None),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".to_owned()),
            param_kind: Some(ParamKind {
                api_version: Some("v1".to_owned()),
                kind: Some("ConfigMap".to_owned()),
            }),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(strings(&["crd.projectcalico.org", "projectcalico.org"])),
                    api_versions: Some(strings(&["*"])),
                    operations: Some(strings(&["CREATE", "UPDATE", "DELETE"])),
                    resources: Some(strings(&["ippools"])),
                    ..NamedRuleWithOperations::default()
                }]),
                ..MatchResources::default()
            }),
            variables: Some(
                VARIABLES
                    .iter()
                    .map(|(name, expression)| Variable {
                        name: (*name).to_owned(),
                        expression: (*expression).to_owned(),
                    })
                    .collect(),
            ),
            validations: Some(
                RULES
                    .iter()
                    .map(|rule| Validation {
                        expression: rule.expression.to_owned(),
                        message: Some(message(rule)),
                        reason: Some("Invalid".to_owned()),
                        ..Validation::default()
                    })
                    .collect(),
            ),
            ..ValidatingAdmissionPolicySpec::default()
        }),
        ..ValidatingAdmissionPolicy::default()
    }
}

pub fn binding() -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: meta(POLICY_NAME, None),
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(POLICY_NAME.to_owned()),
            param_ref: Some(ParamRef {
                name: Some(PARAMS_NAME.to_owned()),
                namespace: Some(PARAMS_NAMESPACE.to_owned()),
                // Fail closed, as the webhook does: without its parameters the policy denies.
                parameter_not_found_action: Some("Deny".to_owned()),
                ..ParamRef::default()
            }),
            validation_actions: Some(strings(&["Deny"])),
            ..ValidatingAdmissionPolicyBindingSpec::default()
        }),
    }
}

/// The three objects, parameters first: the binding refers to both others.
pub fn documents(params: &PolicyParams) -> Vec<Document> {
    [
        to_value(&params_config_map(params)),
        to_value(&policy()),
        to_value(&binding()),
    ]
    .into_iter()
    .map(Document::from_value)
    .collect()
}

/// The objects as one YAML stream, with a header saying what it does and how to undo it.
pub fn render(params: &PolicyParams) -> Result<String, ManifestError> {
    crate::yaml_stream(
        "# ippool ValidatingAdmissionPolicy: the stateless ippool rules, evaluated by the API server.\n\
         # Generated by `kubectl-ippool policy`; see docs/policy.md for what it enforces and what only\n\
         # the webhook can. Undo: kubectl delete validatingadmissionpolicybinding,validatingadmissionpolicy ippool-rules\n",
        &documents(params),
    )
}

#[cfg(test)]
mod tests;
