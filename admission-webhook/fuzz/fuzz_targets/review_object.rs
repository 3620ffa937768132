//! Arbitrary JSON as the object (and, from the same input, the old object) of an otherwise valid
//! review: reaches the pool reading and the rules, where raw bytes rarely get.
#![no_main]

mod common;

use serde_json::{Value, json};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(object) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for (operation, new, old) in [
        ("CREATE", object.clone(), Value::Null),
        ("UPDATE", object.clone(), object.clone()),
        ("DELETE", Value::Null, object.clone()),
    ] {
        for groups in [json!(["system:authenticated"]), json!(["exempt"])] {
            let review = json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "fuzz",
                    "kind": {"group": "crd.projectcalico.org", "version": "v1", "kind": "IPPool"},
                    "resource": {"group": "crd.projectcalico.org", "version": "v1", "resource": "ippools"},
                    "name": "fuzz", "operation": operation,
                    "userInfo": {"username": "fuzzer", "groups": groups},
                    "object": new, "oldObject": old, "dryRun": false
                }
            });
            common::judge(review.to_string().as_bytes());
        }
    }
});
