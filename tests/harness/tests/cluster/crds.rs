//! The CRDs the test world installs are Calico's own (from the pinned release, via
//! `tests/upstream/build`), and the project's copy of the `projectcalico.org/v3` IPPool CRD (Calico
//! 3.32's native-v3 preview, which the module proxy does not serve) describes the same pool spec.

use std::collections::{BTreeMap, BTreeSet};

use harness::{crds, upstream_binaries};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn by_name(crds: Vec<CustomResourceDefinition>) -> BTreeMap<String, CustomResourceDefinition> {
    crds.into_iter()
        .map(|crd| (crd.metadata.name.clone().unwrap_or_default(), crd))
        .collect()
}

/// The served version's `spec` properties of a CRD, as JSON.
fn spec_properties(crd: &CustomResourceDefinition) -> serde_json::Map<String, serde_json::Value> {
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.served)
        .expect("a served version");
    let schema = serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref()),
    )
    .expect("a schema serializes");
    schema["properties"]["spec"]["properties"]
        .as_object()
        .cloned()
        .expect("spec has properties")
}

/// Calico's CRDs as the control plane installs them (failing, with how to build them, without).
fn calico_crds() -> BTreeMap<String, CustomResourceDefinition> {
    let binaries = upstream_binaries().unwrap_or_else(|e| panic!("{e}"));
    by_name(crds::read_dir(&crds::calico_dir(&binaries)).expect("Calico's CRDs parse"))
}

#[test]
fn calicos_own_crds_serve_every_resource_the_project_reads_and_writes() {
    let calico = calico_crds();
    for plural in [
        "ippools",
        "ipamblocks",
        "blockaffinities",
        "ipamhandles",
        "ipamconfigs",
        "ipreservations",
        "clusterinformations",
        "kubecontrollersconfigurations",
    ] {
        let name = format!("{plural}.crd.projectcalico.org");
        let crd = calico
            .get(&name)
            .unwrap_or_else(|| panic!("Calico ships {name}"));
        assert_eq!(crd.spec.scope, "Cluster", "{name}: cluster-scoped");
        assert!(
            crd.spec
                .versions
                .iter()
                .any(|v| v.name == "v1" && v.served && v.storage),
            "{name}: serves and stores v1"
        );
    }
}

#[test]
fn the_v3_preview_ippool_crd_has_the_fields_and_types_of_calicos_pool_spec() {
    let calico = calico_crds();
    let v1 = &calico["ippools.crd.projectcalico.org"];
    let v3 = by_name(crds::read_dir(&crds::v3_preview_dir()).expect("the v3 CRD parses"));
    assert_eq!(v3.keys().collect::<Vec<_>>(), ["ippools.projectcalico.org"]);
    let v3 = &v3["ippools.projectcalico.org"];
    assert_eq!(v3.spec.group, "projectcalico.org");
    assert_eq!(v3.spec.names.kind, v1.spec.names.kind);
    assert_eq!(v3.spec.scope, v1.spec.scope);

    let ours = spec_properties(v3);
    let mut theirs = spec_properties(v1);
    // v1 still carries the pre-v3 field names `ipip` and `nat-outgoing`; the v3 API has neither.
    for legacy in ["ipip", "nat-outgoing"] {
        assert!(
            theirs.remove(legacy).is_some(),
            "Calico's v1 CRD has {legacy}"
        );
    }
    let names = |m: &serde_json::Map<String, serde_json::Value>| -> BTreeSet<String> {
        m.keys().cloned().collect()
    };
    assert_eq!(names(&ours), names(&theirs), "the same spec fields");
    // 3.32's v3 CRD adds enums, limits and list types to the fields; their JSON types are the same.
    for (field, schema) in &ours {
        assert_eq!(schema["type"], theirs[field]["type"], "spec.{field}: type");
    }
}
