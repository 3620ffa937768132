//! `kubectl ippool policy`: the stateless rules as a ValidatingAdmissionPolicy, its binding and
//! its parameters ([`webhook_manifest::policy`]), with the cluster's pod and service CIDRs found
//! as `cluster-cidr` finds them; `--check` says whether the installed objects are current.

use anyhow::Context as _;
use clap::Args;
use ippool_cluster::discovery::{self, Discovery};
use ippool_rules::context::Strength;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;
use webhook_manifest::Document;
use webhook_manifest::policy::{self, PolicyParams};

use super::Outcome;
use crate::kube_opts::{KubeOpts, block_on};
use crate::live::CidrArgs;

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub cidrs: CidrArgs,

    /// Compare the installed policy, binding and parameters with this rendering instead of
    /// printing it (exit 1 when they differ).
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: &PolicyArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    block_on(async {
        let given = !args.cidrs.cluster_cidrs.is_empty() && !args.cidrs.service_cidrs.is_empty();
        let client = if given && !args.check {
            None
        } else {
            kube.init_logging();
            Some(kube.client().await?.0)
        };
        let params = match &client {
            Some(client) => params_of(&discovery::discover(client, &args.cidrs.to_flags()).await),
            None => PolicyParams {
                cluster_cidrs: args.cidrs.cluster_cidrs.clone(),
                cluster_cidr_source: Some("--cluster-cidr flag".to_owned()),
                service_cidrs: args.cidrs.service_cidrs.clone(),
            },
        };
        if params.cluster_cidrs.is_empty() {
            eprintln!(
                "warning: no authoritative pod CIDR was found, so the policy does not check that pools lie inside it (IPP050); give it with --cluster-cidr"
            );
        }
        if params.service_cidrs.is_empty() {
            eprintln!(
                "warning: no service CIDR was found, so the policy does not check overlap with it (IPP052); give it with --service-cidr"
            );
        }
        match (&client, args.check) {
            (Some(client), true) => check(client, &policy::documents(&params)).await,
            _ => {
                print!("{}", policy::render(&params)?);
                Ok(Outcome::Clean)
            }
        }
    })
}

/// The parameters from what discovery found. A pod CIDR from a weak source (inferred from nodes)
/// only warns in the webhook (IPP051), so the policy, which can only deny, leaves it out.
fn params_of(found: &Discovery) -> PolicyParams {
    let (cluster_cidrs, cluster_cidr_source) = match &found.cluster {
        Some((source, cidrs)) if source.strength() == Strength::Strong => {
            (cidrs.clone(), Some(source.describe().to_owned()))
        }
        _ => (Vec::new(), None),
    };
    PolicyParams {
        cluster_cidrs,
        cluster_cidr_source,
        service_cidrs: found
            .service
            .as_ref()
            .map(|(_, cidrs)| cidrs.clone())
            .unwrap_or_default(),
    }
}

/// Reads each object as installed and lists where it differs from the rendering: a field the
/// rendering sets that is missing or other in the cluster (fields the API server defaults are
/// not compared).
async fn check(client: &Client, documents: &[Document]) -> anyhow::Result<Outcome> {
    let mut stale = Vec::new();
    for document in documents {
        let name = document.value["metadata"]["name"]
            .as_str()
            .unwrap_or_default();
        let namespace = document.value["metadata"]["namespace"].as_str();
        let gvk = GroupVersionKind::try_from(&kube::core::TypeMeta {
            api_version: document.api_version.clone(),
            kind: document.kind.clone(),
        })
        .context("a rendered object's apiVersion")?;
        let resource = ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let what = format!("{} {name}", document.kind);
        let Some(installed) = api
            .get_opt(name)
            .await
            .with_context(|| format!("cannot read {what}"))?
        else {
            stale.push(format!("{what}: not installed"));
            continue;
        };
        let installed = serde_json::to_value(&installed.data)?;
        for key in ["spec", "data"] {
            if let Some(wanted) = document.value.get(key) {
                differences(&what, key, wanted, &installed[key], &mut stale);
            }
        }
    }
    if stale.is_empty() {
        println!("the installed ValidatingAdmissionPolicy, binding and parameters are current");
        Ok(Outcome::Clean)
    } else {
        for line in &stale {
            println!("{line}");
        }
        println!("apply the current ones with: kubectl ippool policy | kubectl apply -f -");
        Ok(Outcome::Findings)
    }
}

fn differences(what: &str, path: &str, wanted: &Value, installed: &Value, out: &mut Vec<String>) {
    match (wanted, installed) {
        (Value::Object(w), Value::Object(i)) => {
            for (key, value) in w {
                differences(what, &format!("{path}.{key}"), value, &i[key.as_str()], out);
            }
        }
        (Value::Array(w), Value::Array(i)) if w.len() == i.len() => {
            for (index, (a, b)) in w.iter().zip(i).enumerate() {
                differences(what, &format!("{path}[{index}]"), a, b, out);
            }
        }
        _ if wanted == installed => {}
        _ => out.push(format!("{what}: {path} differs")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_fields_the_rendering_sets_are_compared() {
        let wanted =
            json!({"validations": [{"expression": "a", "message": "m"}], "failurePolicy": "Fail"});
        let defaulted = json!({"validations": [{"expression": "a", "message": "m"}], "failurePolicy": "Fail", "matchPolicy": "Equivalent"});
        let mut out = Vec::new();
        differences("VAP x", "spec", &wanted, &defaulted, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let edited = json!({"validations": [{"expression": "b", "message": "m"}], "failurePolicy": "Ignore"});
        differences("VAP x", "spec", &wanted, &edited, &mut out);
        assert_eq!(
            out,
            [
                "VAP x: spec.failurePolicy differs",
                "VAP x: spec.validations[0].expression differs"
            ]
        );
    }
}
