//! The `options` argument of `validate`: what the caller knows about the cluster and the change,
//! turned into the rules crate's context. Pure Rust, so it is tested natively.

use ipnet::IpNet;
use ippool_rules::Source;
use ippool_rules::cidr::{self, CidrError};
use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::described::{OldPoolError, described_context, old_pool};
use ippool_rules::report::Report;
use serde::Deserialize;

/// Source name used when the caller gives none; `kubectl-ippool validate` uses the same for stdin.
pub const DEFAULT_SOURCE_NAME: &str = "-";
/// Source names of the texts passed in options, as they appear in the reports of thrown errors.
const AGAINST_SOURCE: &str = "options.against";
const OLD_SOURCE: &str = "options.old";

/// `validate(text, options)`'s options, as JSON from JavaScript (`JSON.stringify(options)`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateOptions {
    /// Source name in the report (a file name); default `-`.
    pub name: Option<String>,
    /// The cluster's pod CIDRs (kube-controller-manager `--cluster-cidr`), authoritative.
    pub cluster_cidrs: Option<Vec<String>>,
    /// The cluster's service CIDR.
    pub service_cidr: Option<String>,
    /// Text (YAML or JSON) of the pools and IPAM blocks already in the cluster.
    pub against: Option<String>,
    pub operation: Option<OperationName>,
    /// Text of the pool as it is in the cluster now; required for `update`.
    pub old: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationName {
    Create,
    Update,
    Delete,
}

/// Options the validator refuses. Messages name the option and say how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error(
        "invalid options: {0} (accepted: name, clusterCidrs, serviceCidr, against, operation, old)"
    )]
    Shape(#[source] serde_json::Error),
    #[error("options.{option}: {value:?} is not a valid CIDR: {source}")]
    Cidr {
        option: String,
        value: String,
        #[source]
        source: CidrError,
    },
    #[error(
        "options.operation is \"update\" but options.old is missing: pass the pool as it is in the cluster now (YAML or JSON) as options.old"
    )]
    UpdateWithoutOld,
    #[error(
        "options.old is only used with operation \"update\", but operation is \"{0}\": drop options.old or set operation to \"update\""
    )]
    OldWithoutUpdate(&'static str),
    #[error("options.old must hold exactly one IPPool (the pool before the update), found {0}")]
    OldPoolCount(usize),
    #[error("options.old could not be read:\n{}", .0.render_text())]
    Old(Report),
    #[error("options.against could not be read:\n{}", .0.render_text())]
    Against(Report),
}

impl OptionsError {
    /// The report behind an error in `options.old` or `options.against`, for callers that show it.
    pub fn report(&self) -> Option<&Report> {
        match self {
            OptionsError::Old(report) | OptionsError::Against(report) => Some(report),
            _ => None,
        }
    }
}

impl ValidateOptions {
    /// Parses the JSON text of the options; `None` (JavaScript `undefined`/`null`) means no options.
    pub fn from_json(json: Option<&str>) -> Result<ValidateOptions, OptionsError> {
        match json {
            None | Some("null") => Ok(ValidateOptions::default()),
            Some(json) => serde_json::from_str(json).map_err(OptionsError::Shape),
        }
    }

    pub fn source_name(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_SOURCE_NAME)
    }

    /// The cluster context and operation these options describe.
    pub fn resolve(&self) -> Result<(ClusterContext, Operation), OptionsError> {
        let cluster_cidrs = self
            .cluster_cidrs
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| parse_cidr(&format!("clusterCidrs[{i}]"), c))
            .collect::<Result<Vec<_>, _>>()?;
        let service_cidrs = self
            .service_cidr
            .iter()
            .map(|s| parse_cidr("serviceCidr", s))
            .collect::<Result<Vec<_>, _>>()?;
        let against: Vec<Source<'_>> = self
            .against
            .iter()
            .map(|text| Source {
                name: AGAINST_SOURCE,
                text,
            })
            .collect();
        let ctx = described_context(&cluster_cidrs, &service_cidrs, &against)
            .map_err(OptionsError::Against)?;
        let operation = match (self.operation, &self.old) {
            (None | Some(OperationName::Create), None) => Operation::Create,
            (Some(OperationName::Delete), None) => Operation::Delete,
            (Some(OperationName::Update), None) => return Err(OptionsError::UpdateWithoutOld),
            (None | Some(OperationName::Update), Some(old)) => Operation::Update {
                old: old_pool(Source {
                    name: OLD_SOURCE,
                    text: old,
                })
                .map_err(|e| match e {
                    OldPoolError::Unreadable(report) => OptionsError::Old(report),
                    OldPoolError::Count(n) => OptionsError::OldPoolCount(n),
                })?,
            },
            (Some(OperationName::Create), Some(_)) => {
                return Err(OptionsError::OldWithoutUpdate("create"));
            }
            (Some(OperationName::Delete), Some(_)) => {
                return Err(OptionsError::OldWithoutUpdate("delete"));
            }
        };
        Ok((ctx, operation))
    }
}

fn parse_cidr(option: &str, value: &str) -> Result<IpNet, OptionsError> {
    cidr::parse_strict(value).map_err(|source| OptionsError::Cidr {
        option: option.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// Validates `text` with the context and operation of `options`.
pub fn validate_text(text: &str, options: &ValidateOptions) -> Result<Report, OptionsError> {
    let (ctx, operation) = options.resolve()?;
    let source = Source {
        name: options.source_name(),
        text,
    };
    Ok(ippool_rules::validate(&[source], &ctx, &operation))
}

#[cfg(test)]
mod tests {
    use ippool_rules::context::Strength;
    use ippool_rules::described::CLUSTER_CIDRS_SOURCE;

    use super::*;

    const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/16\n";

    fn options(json: &str) -> Result<ValidateOptions, OptionsError> {
        ValidateOptions::from_json(Some(json))
    }

    #[test]
    fn absent_options_mean_create_without_context() {
        for json in [None, Some("null"), Some("{}")] {
            let (ctx, op) = ValidateOptions::from_json(json).unwrap().resolve().unwrap();
            assert_eq!(ctx, ClusterContext::default());
            assert_eq!(op, Operation::Create);
        }
    }

    #[test]
    fn unknown_keys_and_operations_are_refused_by_name() {
        let err = options(r#"{"clusterCidr": ["10.0.0.0/8"]}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `clusterCidr`"),
            "{err}"
        );
        let err = options(r#"{"operation": "replace"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `replace`"),
            "{err}"
        );
    }

    #[test]
    fn cidrs_are_strict_and_named_by_position() {
        let err = options(r#"{"clusterCidrs": ["10.0.0.0/8", "10.0.0.1/8"]}"#)
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("options.clusterCidrs[1]: \"10.0.0.1/8\" is not a valid CIDR"),
            "{err}"
        );
        let err = options(r#"{"serviceCidr": "banana"}"#)
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("options.serviceCidr: \"banana\""),
            "{err}"
        );
    }

    #[test]
    fn cluster_cidrs_are_authoritative_and_quoted_like_the_cli_flag() {
        let (ctx, _) =
            options(r#"{"clusterCidrs": ["10.0.0.0/8"], "serviceCidr": "10.96.0.0/12"}"#)
                .unwrap()
                .resolve()
                .unwrap();
        let cluster = ctx.cluster_cidrs.unwrap();
        assert_eq!(cluster.strength, Strength::Strong);
        assert_eq!(cluster.source, CLUSTER_CIDRS_SOURCE);
        assert_eq!(cluster.cidrs, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert_eq!(
            ctx.service_cidrs,
            Some(vec!["10.96.0.0/12".parse().unwrap()])
        );
        let (ctx, _) = options(r#"{"clusterCidrs": []}"#)
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(
            ctx.cluster_cidrs, None,
            "an empty list says nothing about the cluster"
        );
    }

    #[test]
    fn update_needs_exactly_one_old_pool() {
        let err = options(r#"{"operation": "update"}"#)
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(matches!(err, OptionsError::UpdateWithoutOld));

        let old = serde_json::to_string(POOL).unwrap();
        let (_, op) = options(&format!(r#"{{"old": {old}}}"#))
            .unwrap()
            .resolve()
            .unwrap();
        assert!(matches!(op, Operation::Update { ref old } if old.name() == "p"));

        let err = options(&format!(r#"{{"operation": "delete", "old": {old}}}"#))
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(matches!(err, OptionsError::OldWithoutUpdate("delete")));

        let two = serde_json::to_string(&format!("{POOL}---\n{POOL}")).unwrap();
        let err = options(&format!(r#"{{"old": {two}}}"#))
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(matches!(err, OptionsError::OldPoolCount(2)));
    }

    #[test]
    fn unreadable_context_texts_carry_their_report() {
        let err = options(r#"{"against": "items: [unclosed"}"#)
            .unwrap()
            .resolve()
            .unwrap_err();
        let report = err.report().expect("a report for options.against");
        assert!(report.has_errors());
        assert_eq!(report.documents[0].source, AGAINST_SOURCE);
        assert!(
            err.to_string()
                .starts_with("options.against could not be read:\n")
        );
    }

    #[test]
    fn the_report_names_the_source_as_given() {
        let report = validate_text(POOL, &options(r#"{"name": "pool.yaml"}"#).unwrap()).unwrap();
        assert_eq!(report.documents[0].source, "pool.yaml");
        let report = validate_text(POOL, &ValidateOptions::default()).unwrap();
        assert_eq!(report.documents[0].source, DEFAULT_SOURCE_NAME);
    }
}
