//! The project's own copy of the Calico CRDs (tests/cluster/crds/, used where ../shared is absent)
//! must describe the same resources as the shared reference copy.

use std::collections::BTreeMap;

use harness::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn by_name(crds: Vec<CustomResourceDefinition>) -> BTreeMap<String, CustomResourceDefinition> {
    crds.into_iter()
        .map(|crd| (crd.metadata.name.clone().unwrap_or_default(), crd))
        .collect()
}

/// Descriptions are prose, not schema; the project's v3 copy leaves them out.
fn without_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("description").is_some_and(|d| d.is_string()) {
                map.remove("description");
            }
            map.values_mut().for_each(without_descriptions);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_descriptions),
        _ => {}
    }
}

fn assert_same_resources(
    project: BTreeMap<String, CustomResourceDefinition>,
    shared: BTreeMap<String, CustomResourceDefinition>,
    ignore_descriptions: bool,
) {
    assert_eq!(
        project.keys().collect::<Vec<_>>(),
        shared.keys().collect::<Vec<_>>(),
        "the project copy has the same CRDs as the shared one"
    );
    for (name, ours) in &project {
        let theirs = &shared[name];
        assert_eq!(ours.spec.group, theirs.spec.group, "{name}: group");
        assert_eq!(ours.spec.names, theirs.spec.names, "{name}: names");
        assert_eq!(ours.spec.scope, theirs.spec.scope, "{name}: scope");
        assert_eq!(
            ours.spec.preserve_unknown_fields, theirs.spec.preserve_unknown_fields,
            "{name}: preserveUnknownFields"
        );
        assert_eq!(
            ours.spec.versions.len(),
            theirs.spec.versions.len(),
            "{name}: number of versions"
        );
        for (v_ours, v_theirs) in ours.spec.versions.iter().zip(&theirs.spec.versions) {
            let version = &v_theirs.name;
            assert_eq!(v_ours.name, v_theirs.name, "{name}: version name");
            assert_eq!(
                (v_ours.served, v_ours.storage),
                (v_theirs.served, v_theirs.storage),
                "{name} {version}: served/storage"
            );
            assert_eq!(
                v_ours.subresources, v_theirs.subresources,
                "{name} {version}: subresources"
            );
            let mut schemas = [&v_ours.schema, &v_theirs.schema].map(|s| {
                serde_json::to_value(s.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()))
                    .expect("a schema serializes")
            });
            let mut columns = [
                &v_ours.additional_printer_columns,
                &v_theirs.additional_printer_columns,
            ]
            .map(|c| serde_json::to_value(c).expect("printer columns serialize"));
            if ignore_descriptions {
                schemas
                    .iter_mut()
                    .chain(columns.iter_mut())
                    .for_each(without_descriptions);
            }
            assert!(
                schemas[0] != serde_json::Value::Null,
                "{name} {version}: has an openAPIV3Schema"
            );
            assert_eq!(schemas[0], schemas[1], "{name} {version}: openAPIV3Schema");
            assert_eq!(
                columns[0], columns[1],
                "{name} {version}: additionalPrinterColumns"
            );
        }
    }
}

#[test]
fn the_project_copy_of_the_v1_crds_matches_the_shared_one() {
    let project = by_name(crds::read_dir(&crds::project_dir()).expect("the project's CRDs parse"));
    assert_eq!(
        project.len(),
        7,
        "ippools, ipamblocks, blockaffinities, ipamhandles, ipamconfigs, ipreservations, clusterinformations"
    );
    let Some(shared) = crds::shared_dir() else {
        eprintln!(
            "SKIPPED (no ../shared/calico-crds beside the repository): nothing to compare the project copy with"
        );
        return;
    };
    let shared = by_name(crds::read_dir(&shared).expect("the shared CRDs parse"));
    assert_same_resources(project, shared, false);
}

#[test]
fn the_project_copy_of_the_v3_preview_crd_matches_the_shared_one_but_for_descriptions() {
    let project = by_name(
        crds::read_dir(&crds::project_dir().join("v3-preview"))
            .expect("the project's v3 CRD parses"),
    );
    assert_eq!(
        project.keys().collect::<Vec<_>>(),
        ["ippools.projectcalico.org"]
    );
    let Some(shared) = crds::shared_dir() else {
        eprintln!(
            "SKIPPED (no ../shared/calico-crds beside the repository): nothing to compare the project copy with"
        );
        return;
    };
    let shared =
        by_name(crds::read_dir(&shared.join("v3-preview")).expect("the shared v3 CRD parses"));
    assert_same_resources(project, shared, true);
}
