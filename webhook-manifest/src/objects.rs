//! What every object of the deployment shares: labels, metadata, and the conversion to JSON.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::NAME;

const APP_LABEL: &str = "app.kubernetes.io/name";

pub(crate) fn to_value<T: serde::Serialize>(object: &T) -> Value {
    // k8s-openapi types and plain maps only: conversion to a JSON value cannot fail.
    serde_json::to_value(object).expect("Kubernetes objects convert to JSON")
}

pub(crate) fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_LABEL.to_owned(), NAME.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "ippool".to_owned()),
    ])
}

pub(crate) fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(APP_LABEL.to_owned(), NAME.to_owned())])
}

pub(crate) fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

pub(crate) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub(crate) fn namespace(ns: &str) -> Namespace {
    Namespace {
        metadata: meta(ns, None),
        ..Namespace::default()
    }
}
