//! AdmissionReview in, AdmissionResponse out: a translation between the wire format and
//! `ippool_rules::rules::check_pool`. The rules decide; this module only picks the pool, the
//! operation and the context, and words the verdict.
//!
//! Structural checks (types, unknown fields) are the API server's: it applies the CRD schema and
//! prunes unknown fields before validating webhooks are called, so only the rules run here.

use ippool_cluster::resources::{from_dynamic, ip_pools};
use std::sync::Arc;

use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::model::{ApiGroup, IpPool};
use ippool_rules::report::Severity;
use ippool_rules::rules::{Finding, check_pool};
use kube::core::DynamicObject;
use kube::core::admission::{
    self, AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND,
};

use crate::state::AppState;

/// Largest request body accepted. The API server caps an object near 3 MiB (etcd's default limit
/// is 1.5 MiB), and an IP pool review is a few KiB: anything bigger is not a real review.
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;

const POOL_RESOURCE: &str = "ippools";

/// A body that is not an `admission.k8s.io/v1` AdmissionReview with a request: answered with
/// HTTP 400, since there is no request uid to answer a review for.
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error("request body exceeds {} MiB", BODY_LIMIT / (1024 * 1024))]
    TooLarge,
    #[error("request body is not an AdmissionReview: {0}")]
    Malformed(serde_json::Error),
    #[error(
        "AdmissionReview apiVersion {0:?} is not supported: register the webhook with admissionReviewVersions: [\"v1\"] ({META_API_VERSION_V1})"
    )]
    WrongApiVersion(String),
    #[error("expected kind {META_KIND}, got {0:?}")]
    WrongKind(String),
    #[error("AdmissionReview carries no request")]
    NoRequest,
}

/// How a request was answered (the `verdict` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed, nothing to say.
    Allowed,
    /// Allowed with warnings.
    Warned,
    /// Denied by the rules.
    Denied,
    /// The rules would deny, but the requester is exempt.
    Exempted,
    /// Denied because the cluster view has not synced.
    NotReady,
    /// Not an IP pool change this webhook judges (another resource, a subresource, CONNECT).
    Ignored,
    /// Not an AdmissionReview (HTTP 400).
    Invalid,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Warned => "warned",
            Verdict::Denied => "denied",
            Verdict::Exempted => "exempted",
            Verdict::NotReady => "not_ready",
            Verdict::Ignored => "ignored",
            Verdict::Invalid => "invalid",
        }
    }
}

/// The answer to one review.
#[derive(Debug)]
pub struct Answer {
    pub response: AdmissionResponse,
    pub operation: &'static str,
    pub verdict: Verdict,
}

impl Answer {
    /// The AdmissionReview to send back.
    pub fn into_json(self) -> Vec<u8> {
        // Strings, booleans and string maps only: serialising cannot fail.
        serde_json::to_vec(&self.response.into_review())
            .expect("an AdmissionReview always serialises")
    }
}

fn operation_label(op: &admission::Operation) -> &'static str {
    match op {
        admission::Operation::Create => "CREATE",
        admission::Operation::Update => "UPDATE",
        admission::Operation::Delete => "DELETE",
        admission::Operation::Connect => "CONNECT",
    }
}

/// Judges one AdmissionReview body.
pub fn review(body: &[u8], state: &AppState) -> Result<Answer, BadReview> {
    if body.len() > BODY_LIMIT {
        return Err(BadReview::TooLarge);
    }
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(BadReview::Malformed)?;
    if review.types.api_version != META_API_VERSION_V1 {
        return Err(BadReview::WrongApiVersion(review.types.api_version));
    }
    if review.types.kind != META_KIND {
        return Err(BadReview::WrongKind(review.types.kind));
    }
    let request: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| BadReview::NoRequest)?;
    Ok(judge(request, state))
}

fn judge(request: AdmissionRequest<DynamicObject>, state: &AppState) -> Answer {
    let operation = operation_label(&request.operation);
    let base = AdmissionResponse::from(&request);
    let answer = |response, verdict| Answer {
        response,
        operation,
        verdict,
    };

    let group = match pool_group(&request) {
        Ok(group) => group,
        Err(why) => {
            tracing::debug!(uid = %request.uid, %why, "allowed unchecked");
            return answer(with_warnings(base, vec![why]), Verdict::Ignored);
        }
    };

    let (subject, op) = match subject_and_operation(&request, group) {
        Ok(found) => found,
        Err(message) => {
            tracing::info!(uid = %request.uid, operation, %message, "denied: unreadable review");
            return answer(base.deny(message), Verdict::Denied);
        }
    };

    let ready = state.view.has_synced();
    let mut context = state.view.context();
    if matches!(op, Operation::Delete) {
        context = with_live_copy(context, &subject);
    }
    let findings = check_pool(&subject, &context, &op);
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let mut warnings: Vec<String> = findings
        .iter()
        .filter(|f| f.severity != Severity::Error)
        .map(describe)
        .collect();
    let codes: Vec<&str> = findings.iter().map(|f| f.code).collect();
    let user = request.user_info.username.as_deref().unwrap_or("");
    let pool = subject.name();

    if let Some(exemption) = state.exemptions.matching(&request.user_info) {
        let mut exempt_warnings: Vec<String> = errors
            .iter()
            .map(|f| format!("exempt ({exemption}), would be denied: {}", describe(f)))
            .collect();
        exempt_warnings.append(&mut warnings);
        if !ready {
            exempt_warnings.push(NOT_SYNCED_NOTE.to_owned());
        }
        tracing::info!(
            uid = %request.uid, operation, pool, user, %exemption, dry_run = request.dry_run,
            ?codes, "exempt requester: allowed with findings as warnings"
        );
        return answer(with_warnings(base, exempt_warnings), Verdict::Exempted);
    }

    if !errors.is_empty() {
        let mut message = errors
            .iter()
            .map(|f| describe(f))
            .collect::<Vec<_>>()
            .join("; ");
        if !ready {
            message.push_str("; (");
            message.push_str(NOT_SYNCED_NOTE);
            message.push(')');
        }
        tracing::info!(
            uid = %request.uid, operation, pool, user, dry_run = request.dry_run, ?codes,
            "denied"
        );
        return answer(with_warnings(base, warnings).deny(message), Verdict::Denied);
    }

    if !ready {
        tracing::info!(uid = %request.uid, operation, pool, user, "denied: cluster view not synced");
        return answer(base.deny(NOT_READY), Verdict::NotReady);
    }

    tracing::debug!(uid = %request.uid, operation, pool, user, dry_run = request.dry_run, ?codes, "allowed");
    let verdict = if warnings.is_empty() {
        Verdict::Allowed
    } else {
        Verdict::Warned
    };
    answer(with_warnings(base, warnings), verdict)
}

const NOT_SYNCED_NOTE: &str = "checks against existing pools and IPAM blocks not run: the webhook has not finished listing them";

const NOT_READY: &str = "not ready: the ippool admission webhook has not finished listing the cluster's IP pools \
     and IPAM blocks, so it cannot judge this change yet; retry in a few seconds (if it stays \
     unready, check the webhook's logs and RBAC; in an emergency delete its \
     ValidatingWebhookConfiguration)";

/// The IP pool API group of the request, or why the request is not one this webhook judges.
fn pool_group(request: &AdmissionRequest<DynamicObject>) -> Result<ApiGroup, String> {
    let resource = &request.resource;
    let api_version = format!("{}/{}", resource.group, resource.version);
    let group = match ApiGroup::from_api_version(&api_version) {
        Some(group) if resource.resource == POOL_RESOURCE => group,
        _ => {
            return Err(format!(
                "the ippool admission webhook judges only ippools (crd.projectcalico.org/v1, projectcalico.org/v3); \
                 {}.{} was allowed unchecked: correct the ValidatingWebhookConfiguration's rules",
                resource.resource, api_version
            ));
        }
    };
    if let Some(sub) = request.sub_resource.as_deref().filter(|s| !s.is_empty()) {
        return Err(format!(
            "the {sub} subresource of an IP pool does not change its spec; allowed unchecked"
        ));
    }
    if request.operation == admission::Operation::Connect {
        return Err("CONNECT is not an IP pool change; allowed unchecked".to_owned());
    }
    Ok(group)
}

/// The pool the rules judge (the new object, or the old one for DELETE) and the rules' operation.
fn subject_and_operation(
    request: &AdmissionRequest<DynamicObject>,
    group: ApiGroup,
) -> Result<(IpPool, Operation), String> {
    let read = |object: &Option<DynamicObject>, field: &str| -> Result<IpPool, String> {
        let object = object.clone().ok_or_else(|| {
            format!(
                "the AdmissionReview for {} of ippool {:?} carries no {field}, so the change cannot be judged",
                operation_label(&request.operation),
                request.name
            )
        })?;
        from_dynamic(&ip_pools(group), object).map_err(|e| match e.decode_error() {
            Some(source) => {
                format!("{field} is not a readable IPPool ({source}); the change cannot be judged")
            }
            None => format!("{field}: {e}"),
        })
    };
    match request.operation {
        admission::Operation::Create => Ok((read(&request.object, "object")?, Operation::Create)),
        admission::Operation::Update => {
            let new = read(&request.object, "object")?;
            let old = read(&request.old_object, "oldObject")?;
            Ok((new, Operation::Update { old }))
        }
        admission::Operation::Delete => {
            Ok((read(&request.old_object, "oldObject")?, Operation::Delete))
        }
        admission::Operation::Connect => Err("CONNECT is not an IP pool change".to_owned()),
    }
}

/// The delete rules judge the cluster's copy of the pool. The review's oldObject *is* that copy,
/// and may be newer than the watch (a pool disabled a moment ago), so it replaces the view's.
fn with_live_copy(context: Arc<ClusterContext>, live: &IpPool) -> Arc<ClusterContext> {
    let Some(pools) = &context.pools else {
        return context;
    };
    let seen = pools.iter().find(|p| p.name() == live.name());
    if seen.is_some_and(|p| p.metadata.resource_version == live.metadata.resource_version) {
        return context;
    }
    let mut fresher = ClusterContext::clone(&context);
    if let Some(pools) = fresher.pools.as_mut() {
        pools.retain(|p| p.name() != live.name());
        pools.push(live.clone());
    }
    Arc::new(fresher)
}

/// One finding as a line: code, field, reason and, when the rule knows one, the safe way.
fn describe(finding: &Finding) -> String {
    let path = finding.path.to_string();
    let mut line = if path.is_empty() {
        format!("{}: {}", finding.code, finding.message)
    } else {
        format!("{} {path}: {}", finding.code, finding.message)
    };
    if let Some(hint) = &finding.hint {
        line.push_str(" (fix: ");
        line.push_str(hint);
        line.push(')');
    }
    line
}

fn with_warnings(mut response: AdmissionResponse, warnings: Vec<String>) -> AdmissionResponse {
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response
}
