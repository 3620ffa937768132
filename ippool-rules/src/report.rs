//! The one report shape shared by the CLI, the webhook and the WebAssembly build.
//!
//! Positions: `line` and `column` are 1-based; columns count UTF-16 code units (as LSP, CodeMirror
//! and JavaScript do); `endLine`/`endColumn` point just after the last unit (exclusive).

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A path to a field inside a source document, e.g. `items[3].spec.blockSize`.
///
/// Keys that are not plain identifiers (label keys such as `app.kubernetes.io/name`) are written
/// as JSON strings in brackets: `metadata.labels["app.kubernetes.io/name"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<PathSegment>);

impl FieldPath {
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// A path from dotted plain keys, e.g. `FieldPath::keys(&["spec", "cidr"])`.
    pub fn keys(keys: &[&str]) -> FieldPath {
        FieldPath(
            keys.iter()
                .map(|k| PathSegment::Key((*k).to_owned()))
                .collect(),
        )
    }

    pub fn key(&self, key: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(PathSegment::Key(key.to_owned()));
        p
    }

    pub fn index(&self, index: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(PathSegment::Index(index));
        p
    }

    /// `self` followed by all of `rest`.
    pub fn join(&self, rest: &FieldPath) -> FieldPath {
        let mut p = self.clone();
        p.0.extend(rest.0.iter().cloned());
        p
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn parent(&self) -> Option<FieldPath> {
        if self.0.is_empty() {
            None
        } else {
            Some(FieldPath(self.0[..self.0.len() - 1].to_vec()))
        }
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    f.write_str(k)?;
                }
                PathSegment::Key(k) => {
                    let quoted = serde_json::to_string(k).map_err(|_| fmt::Error)?;
                    write!(f, "[{quoted}]")?;
                }
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A finding placed in its source text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    pub code: String,
    pub severity: Severity,
    /// Field path inside the document (`""` for the document itself).
    pub path: String,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The diagnostics for one document of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentReport {
    /// The source's name (a file name, `-` for stdin, or what the caller chose).
    pub source: String,
    /// The document's position in its source (0-based; YAML stream order).
    pub index: usize,
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The result of validating some sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub documents: Vec<DocumentReport>,
    pub errors: usize,
    pub warnings: usize,
}

impl Report {
    /// Builds a report and counts its errors and warnings.
    pub fn new(documents: Vec<DocumentReport>) -> Report {
        let mut report = Report {
            documents,
            errors: 0,
            warnings: 0,
        };
        report.recount();
        report
    }

    /// Recomputes `errors` and `warnings` from the diagnostics.
    pub fn recount(&mut self) {
        let all = self.documents.iter().flat_map(|d| &d.diagnostics);
        let (mut errors, mut warnings) = (0, 0);
        for d in all {
            match d.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
                Severity::Info => {}
            }
        }
        self.errors = errors;
        self.warnings = warnings;
    }

    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// Compact JSON; "identical reports" means equal strings from this function.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Compiler-style text: `pool.yaml:7:14: error[IPP012]: message`, then `  = hint: …`,
    /// then a summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for doc in &self.documents {
            for d in &doc.diagnostics {
                let _ = writeln!(
                    out,
                    "{}:{}:{}: {}[{}]: {}",
                    doc.source, d.line, d.column, d.severity, d.code, d.message
                );
                if let Some(hint) = &d.hint {
                    let _ = writeln!(out, "  = hint: {hint}");
                }
            }
        }
        let documents = self.documents.len();
        let _ = writeln!(
            out,
            "{} {}, {} {} in {} {}",
            self.errors,
            plural(self.errors, "error", "errors"),
            self.warnings,
            plural(self.warnings, "warning", "warnings"),
            documents,
            plural(documents, "document", "documents"),
        );
        out
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report::new(vec![DocumentReport {
            source: "pool.yaml".into(),
            index: 0,
            api_version: Some("projectcalico.org/v3".into()),
            kind: Some("IPPool".into()),
            name: Some("p".into()),
            diagnostics: vec![
                Diagnostic {
                    code: "IPP022".into(),
                    severity: Severity::Error,
                    path: "spec.blockSize".into(),
                    line: 7,
                    column: 14,
                    end_line: 7,
                    end_column: 16,
                    message: "bad".into(),
                    hint: Some("fix".into()),
                },
                Diagnostic {
                    code: "IPP005".into(),
                    severity: Severity::Info,
                    path: String::new(),
                    line: 1,
                    column: 1,
                    end_line: 1,
                    end_column: 1,
                    message: "skipped".into(),
                    hint: None,
                },
            ],
        }])
    }

    #[test]
    fn json_shape_matches_the_contract() {
        let json = sample().to_json();
        assert_eq!(
            json,
            r#"{"documents":[{"source":"pool.yaml","index":0,"apiVersion":"projectcalico.org/v3","kind":"IPPool","name":"p","diagnostics":[{"code":"IPP022","severity":"error","path":"spec.blockSize","line":7,"column":14,"endLine":7,"endColumn":16,"message":"bad","hint":"fix"},{"code":"IPP005","severity":"info","path":"","line":1,"column":1,"endLine":1,"endColumn":1,"message":"skipped"}]}],"errors":1,"warnings":0}"#
        );
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn text_reads_like_a_compiler() {
        assert_eq!(
            sample().render_text(),
            "pool.yaml:7:14: error[IPP022]: bad\n  = hint: fix\npool.yaml:1:1: info[IPP005]: skipped\n1 error, 0 warnings in 1 document\n"
        );
    }

    #[test]
    fn paths_quote_non_plain_keys() {
        let p = FieldPath::keys(&["items"])
            .index(3)
            .key("metadata")
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(
            p.to_string(),
            r#"items[3].metadata.labels["app.kubernetes.io/name"]"#
        );
        assert_eq!(
            FieldPath::keys(&["spec", "blockSize"]).to_string(),
            "spec.blockSize"
        );
    }
}
