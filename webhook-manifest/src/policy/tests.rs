use std::collections::BTreeSet;

use super::*;

#[test]
fn every_rule_is_a_catalogued_error_and_its_message_names_code_and_fix() {
    let mut seen = BTreeSet::new();
    for rule in RULES {
        assert!(seen.insert(rule.code), "{} is written twice", rule.code);
        let info = catalog()
            .iter()
            .find(|r| r.code == rule.code)
            .unwrap_or_else(|| panic!("{} is not in the catalogue", rule.code));
        assert_eq!(
            info.severity,
            ippool_rules::report::Severity::Error,
            "{}: the policy denies, so it enforces errors only",
            rule.code
        );
        let text = message(rule);
        assert!(
            text.starts_with(&format!("{}: {}", rule.code, info.summary)),
            "{text}"
        );
        assert!(text.ends_with(&format!("fix: {}", rule.fix)), "{text}");
        if let Some(calico) = info.calico_reason {
            assert!(text.contains(calico), "{text}");
        }
    }
}

#[test]
fn expressions_read_only_declared_variables() {
    let declared: Vec<&str> = VARIABLES.iter().map(|(name, _)| *name).collect();
    let texts = VARIABLES
        .iter()
        .map(|(_, e)| *e)
        .chain(RULES.iter().map(|r| r.expression));
    for text in texts {
        for used in text.split("variables.").skip(1) {
            let name: String = used
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(declared.contains(&name.as_str()), "{name} in {text}");
        }
    }
}

#[test]
fn the_rendering_carries_parameters_policy_and_binding() {
    let params = PolicyParams {
        cluster_cidrs: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/48".parse().unwrap()],
        cluster_cidr_source: Some("--cluster-cidr flag".to_owned()),
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
    };
    let text = render(&params).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]
    );
    assert_eq!(docs[0]["data"]["clusterCIDRs"], "10.0.0.0/8,fd00::/48");
    assert_eq!(docs[0]["data"]["serviceCIDRs"], "10.96.0.0/12");
    assert_eq!(docs[0]["metadata"]["namespace"], PARAMS_NAMESPACE);
    let spec = &docs[1]["spec"];
    assert_eq!(spec["failurePolicy"], "Fail");
    assert_eq!(
        spec["matchConstraints"]["resourceRules"][0]["apiGroups"],
        serde_json::json!(["crd.projectcalico.org", "projectcalico.org"])
    );
    assert_eq!(spec["validations"].as_array().unwrap().len(), RULES.len());
    let binding = &docs[2]["spec"];
    assert_eq!(binding["policyName"], POLICY_NAME);
    assert_eq!(binding["paramRef"]["parameterNotFoundAction"], "Deny");
    assert_eq!(binding["validationActions"], serde_json::json!(["Deny"]));
}

#[test]
fn docs_mark_exactly_the_rules_the_policy_holds() {
    let docs = include_str!("../../../docs/policy.md");
    let marked: BTreeSet<&str> = docs
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let code = cells.next()?;
            let _rule = cells.next()?;
            let place = cells.next()?;
            (code.starts_with("IPP") && place.starts_with("policy")).then_some(code)
        })
        .collect();
    let held: BTreeSet<&str> = RULES.iter().map(|r| r.code).collect();
    assert_eq!(marked, held);
    for info in catalog() {
        let listed = docs.contains(&format!("| {} |", info.code))
            || ["IPP001", "IPP002", "IPP004", "IPP005", "IPP006", "IPP007"].contains(&info.code);
        assert!(listed, "{} is not in docs/policy.md's table", info.code);
    }
}
