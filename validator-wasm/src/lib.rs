//! The ippool rules as a WebAssembly module for browsers, Node and editors.
//!
//! `validate` returns the very report `kubectl-ippool validate -o json` prints: the rules crate
//! serialises it to compact JSON and JavaScript's `JSON.parse` turns that into a plain object, so
//! `JSON.stringify(validate(...))` equals the CLI's output byte for byte. Every failure is a thrown
//! JavaScript `Error`; nothing here panics, because a panic in wasm32 aborts the whole module.

mod address_map;
mod options;

pub use address_map::address_map_svg;
pub use options::{
    DEFAULT_SOURCE_NAME, OperationName, OptionsError, ValidateOptions, validate_text,
};

use ippool_rules::rules::{RuleInfo, catalog};
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** How bad a diagnostic is. */
export type Severity = "error" | "warning" | "info";

/** One finding. Lines and columns are 1-based; columns count UTF-16 code units; the end is exclusive. */
export interface Diagnostic {
  code: string;
  severity: Severity;
  /** Field path in the document, e.g. `spec.blockSize` or `items[3].spec.cidr`; `""` for the document. */
  path: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  message: string;
  hint?: string;
}

/** The diagnostics of one document (YAML streams and lists hold several). */
export interface DocumentReport {
  source: string;
  /** 0-based position of the document in its source. */
  index: number;
  apiVersion: string | null;
  kind: string | null;
  name: string | null;
  diagnostics: Diagnostic[];
}

/** The same shape as `kubectl-ippool validate -o json`. */
export interface Report {
  documents: DocumentReport[];
  errors: number;
  warnings: number;
}

/** What is known about the cluster and the change. Every field is optional. */
export interface ValidateOptions {
  /** Source name shown in the report (a file name); default "-". */
  name?: string;
  /** The cluster's pod CIDRs (kube-controller-manager --cluster-cidr). */
  clusterCidrs?: string[];
  /** The cluster's service CIDR. */
  serviceCidr?: string;
  /** YAML or JSON of the pools and IPAM blocks already in the cluster. */
  against?: string;
  /** Default "create"; "update" needs `old`. */
  operation?: "create" | "update" | "delete";
  /** YAML or JSON of the pool as it is in the cluster now (for "update"). */
  old?: string;
}

/** One rule of the catalogue. */
export interface RuleInfo {
  code: string;
  severity: Severity;
  summary: string;
  /** Calico's own wording of the refusal, when Calico itself enforces the rule. */
  calicoReason?: string;
}

/** Thrown by `validate` when the options are refused; `report` is set when `against`/`old` did not parse. */
export interface ValidateError extends Error {
  report?: Report;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// The options object as JavaScript passes it; read through `JSON.stringify`.
    #[wasm_bindgen(typescript_type = "ValidateOptions")]
    pub type JsOptions;
}

/// Validates a manifest (YAML or JSON; several documents allowed) and returns the report.
#[wasm_bindgen(unchecked_return_type = "Report")]
pub fn validate(
    #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
    options: Option<JsOptions>,
) -> Result<JsValue, JsValue> {
    let json = validate_json(text, options)?;
    js_sys::JSON::parse(&json)
}

/// Like `validate`, but returns the report as compact JSON text — exactly what the CLI prints.
#[wasm_bindgen(js_name = validateJson)]
pub fn validate_json(
    #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
    options: Option<JsOptions>,
) -> Result<String, JsValue> {
    let (text, options) = arguments("validate", &text, options.as_ref())?;
    validate_text(&text, &options)
        .map(|report| report.to_json())
        .map_err(|err| options_error(&err))
}

/// The address-space map of the pools in `text` among those of `options.against` (an SVG
/// element as text): the same map `kubectl ippool capacity -o html` draws.
#[wasm_bindgen(js_name = addressMap)]
pub fn address_map(
    #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
    options: Option<JsOptions>,
) -> Result<String, JsValue> {
    let (text, options) = arguments("addressMap", &text, options.as_ref())?;
    address_map_svg(&text, &options).map_err(|err| options_error(&err))
}

/// The validator's version (the workspace version of the rules it was built from).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Every rule: code, severity, summary and, where Calico enforces it, Calico's reason.
#[wasm_bindgen(unchecked_return_type = "RuleInfo[]")]
pub fn rules() -> Result<JsValue, JsValue> {
    js_sys::JSON::parse(&rules_json())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleEntry<'a> {
    code: &'a str,
    severity: ippool_rules::report::Severity,
    summary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    calico_reason: Option<&'a str>,
}

/// The rule catalogue as compact JSON (the `rules()` array).
pub fn rules_json() -> String {
    let entries: Vec<RuleEntry<'_>> = catalog()
        .iter()
        .map(|r: &RuleInfo| RuleEntry {
            code: r.code,
            severity: r.severity,
            summary: r.summary,
            calico_reason: r.calico_reason,
        })
        .collect();
    // Strings and enums only: serialisation cannot fail.
    serde_json::to_string(&entries).unwrap_or_default()
}

/// The `(text, options)` every entry point takes, checked and read; errors name `function`.
fn arguments(
    function: &str,
    text: &JsValue,
    options: Option<&JsOptions>,
) -> Result<(String, ValidateOptions), JsValue> {
    let Some(text) = text.as_string() else {
        return Err(type_error(&format!(
            "{function}(text, options): text must be a string holding the manifest's YAML or JSON, got {}",
            js_type(text)
        )));
    };
    let options = options_from_js(function, options.map(|o| o.as_ref()))?;
    Ok((text, options))
}

fn options_from_js(function: &str, options: Option<&JsValue>) -> Result<ValidateOptions, JsValue> {
    let Some(options) = options.filter(|o| !o.is_undefined() && !o.is_null()) else {
        return Ok(ValidateOptions::default());
    };
    if !options.is_object() || js_sys::Array::is_array(options) {
        return Err(type_error(&format!(
            "{function}(text, options): options must be an object such as {{ clusterCidrs: [\"10.0.0.0/8\"] }}, got {}",
            js_type(options)
        )));
    }
    let json = js_sys::JSON::stringify(options)
        .map_err(|err| {
            type_error(&format!(
                "{function}(text, options): options cannot be read as JSON ({})",
                error_message(&err)
            ))
        })?
        .as_string();
    ValidateOptions::from_json(json.as_deref()).map_err(|err| options_error(&err))
}

/// A JavaScript `Error` for refused options, carrying the `report` of an unreadable `old`/`against`.
fn options_error(err: &OptionsError) -> JsValue {
    let error = js_sys::Error::new(&err.to_string());
    if let Some(report) = err.report()
        && let Ok(report) = js_sys::JSON::parse(&report.to_json())
    {
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&error, &JsValue::from_str("report"), &report);
    }
    error.into()
}

fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

fn js_type(value: &JsValue) -> String {
    if value.is_null() {
        "null".to_owned()
    } else if js_sys::Array::is_array(value) {
        "an array".to_owned()
    } else {
        value.js_typeof().as_string().unwrap_or_default()
    }
}

fn error_message(err: &JsValue) -> String {
    err.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|| format!("{err:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_json_lists_the_whole_catalogue() {
        let rules: Vec<serde_json::Value> = serde_json::from_str(&rules_json()).unwrap();
        assert_eq!(rules.len(), catalog().len());
        for (json, info) in rules.iter().zip(catalog()) {
            assert_eq!(json["code"], info.code);
            assert_eq!(json["severity"], info.severity.as_str());
            assert_eq!(json["summary"], info.summary);
            assert_eq!(
                json.get("calicoReason").and_then(|v| v.as_str()),
                info.calico_reason
            );
        }
    }
}
