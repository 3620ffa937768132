//! The registration with the API server: which pool writes it sends, and how it fails.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::objects::labels;
use crate::{TIMEOUT_SECONDS, WEBHOOK_NAME};

/// The IP pool rules the webhook registers for: both groups, every operation that changes a pool.
pub fn pool_rules() -> Vec<RuleWithOperations> {
    [("crd.projectcalico.org", "v1"), ("projectcalico.org", "v3")]
        .into_iter()
        .map(|(group, version)| RuleWithOperations {
            api_groups: Some(vec![group.to_owned()]),
            api_versions: Some(vec![version.to_owned()]),
            operations: Some(vec![
                "CREATE".to_owned(),
                "UPDATE".to_owned(),
                "DELETE".to_owned(),
            ]),
            resources: Some(vec!["ippools".to_owned()]),
            scope: Some("Cluster".to_owned()),
        })
        .collect()
}

/// The registration, for any way of reaching the webhook (Service here, URL in tests).
pub fn validating_webhook_configuration(
    name: &str,
    client_config: WebhookClientConfig,
    annotations: Option<BTreeMap<String, String>>,
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels()),
            annotations,
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: WEBHOOK_NAME.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config,
            rules: Some(pool_rules()),
            failure_policy: Some("Fail".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            ..ValidatingWebhook::default()
        }]),
    }
}
