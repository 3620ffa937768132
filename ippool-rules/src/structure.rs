//! Structural check of an IPPool object against the CRD's `openAPIV3Schema` (types, enums,
//! required fields) plus Kubernetes' ObjectMeta field types, and unknown fields, which the API
//! server prunes rather than rejects.
//!
//! This is the project's own checker (it also runs in the wasm build); a differential test keeps
//! it in agreement with the `jsonschema` crate on the same schema.

use std::sync::OnceLock;

use serde_json::Value as Json;

use crate::report::{FieldPath, PathSegment};
use crate::schema::ippool_crd_schema;
use crate::source::{Node, Value};

/// What is structurally wrong at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueKind {
    /// The value has the wrong JSON type.
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    /// A required field is absent (or null, which the API server drops).
    MissingRequired,
    /// The value is not one of the schema's enum values.
    NotInEnum { allowed: Vec<String> },
    /// The schema does not know the field: the API server prunes it.
    Unknown,
    /// An explicit null on a non-nullable field: the API server drops it.
    NullDropped,
}

/// One structural finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: FieldPath,
    pub kind: IssueKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl JsonType {
    fn parse(name: &str) -> Option<JsonType> {
        Some(match name {
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "string" => JsonType::String,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "boolean" => JsonType::Boolean,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
        }
    }

    fn admits(self, value: &Value<'_>) -> bool {
        match (self, value) {
            (JsonType::Object, Value::Map(_))
            | (JsonType::Array, Value::Seq(_))
            | (JsonType::String, Value::Str(_))
            | (JsonType::Boolean, Value::Bool(_))
            | (JsonType::Integer, Value::Int(_))
            | (JsonType::Number, Value::Int(_) | Value::Float(_)) => true,
            // JSON Schema counts 26.0 as an integer.
            (JsonType::Integer, Value::Float(f)) => f.is_finite() && f.fract() == 0.0,
            _ => false,
        }
    }
}

/// A compiled schema node (the subset of OpenAPI v3 the CRD uses).
#[derive(Debug, Default)]
struct Shape {
    ty: Option<JsonType>,
    properties: Option<Vec<(String, Shape)>>,
    required: Vec<String>,
    allowed: Option<Vec<Json>>,
    items: Option<Box<Shape>>,
    additional: Option<Box<Shape>>,
    nullable: bool,
}

impl Shape {
    fn compile(schema: &Json) -> Shape {
        let properties = schema["properties"].as_object().map(|props| {
            props
                .iter()
                .map(|(k, v)| (k.clone(), Shape::compile(v)))
                .collect()
        });
        let strings = |v: &Json| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Shape {
            ty: schema["type"].as_str().and_then(JsonType::parse),
            properties,
            required: strings(&schema["required"]),
            allowed: schema["enum"].as_array().cloned(),
            items: schema.get("items").map(|i| Box::new(Shape::compile(i))),
            additional: schema
                .get("additionalProperties")
                .filter(|a| a.is_object())
                .map(|a| Box::new(Shape::compile(a))),
            nullable: schema["nullable"].as_bool().unwrap_or(false),
        }
    }

    fn property(&self, key: &str) -> Option<&Shape> {
        self.properties
            .as_ref()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s)
    }
}

fn crd_shape() -> &'static Shape {
    static SHAPE: OnceLock<Shape> = OnceLock::new();
    SHAPE.get_or_init(|| Shape::compile(&ippool_crd_schema()))
}

/// Issues from the CRD schema alone (what `jsonschema` would find on the pruned object, plus
/// unknown and null fields).
pub fn check_schema(object: &Node<'_>) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut path = Vec::new();
    walk(crd_shape(), object, &mut path, &mut issues);
    issues
}

/// [`check_schema`] plus the ObjectMeta types and fields the API server enforces.
pub fn check(object: &Node<'_>) -> Vec<Issue> {
    let mut issues = check_schema(object);
    if let Some(meta) = object.get("metadata") {
        check_metadata(meta, &mut issues);
    }
    issues
}

/// A path step borrowed from the tree; a [`FieldPath`] is built only for an issue.
#[derive(Clone, Copy)]
enum Step<'n> {
    Key(&'n str),
    Index(usize),
}

fn issue(path: &[Step<'_>], kind: IssueKind) -> Issue {
    Issue {
        path: FieldPath(
            path.iter()
                .map(|s| match s {
                    Step::Key(k) => PathSegment::Key((*k).to_owned()),
                    Step::Index(i) => PathSegment::Index(*i),
                })
                .collect(),
        ),
        kind,
    }
}

fn walk<'n>(
    shape: &'n Shape,
    node: &'n Node<'_>,
    path: &mut Vec<Step<'n>>,
    issues: &mut Vec<Issue>,
) {
    if node.value == Value::Null {
        if shape.nullable {
            return;
        }
        // The API server drops a null field, but a null list item stays and has the wrong type.
        let kind = match (path.last(), shape.ty) {
            (Some(Step::Index(_)), Some(ty)) => IssueKind::WrongType {
                expected: ty.name(),
                found: "null",
            },
            _ => IssueKind::NullDropped,
        };
        issues.push(issue(path, kind));
        return;
    }
    let mistyped = shape.ty.is_some_and(|ty| !ty.admits(&node.value));
    if let (true, Some(ty)) = (mistyped, shape.ty) {
        issues.push(issue(
            path,
            IssueKind::WrongType {
                expected: ty.name(),
                found: node.value.type_name(),
            },
        ));
    }
    // JSON Schema checks an enum independently of the type.
    if let Some(allowed) = &shape.allowed
        && !allowed.contains(&node.to_json())
    {
        issues.push(issue(
            path,
            IssueKind::NotInEnum {
                allowed: allowed
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect(),
            },
        ));
    }
    if mistyped {
        return;
    }
    match &node.value {
        Value::Map(entries) => {
            for required in &shape.required {
                let present = entries
                    .iter()
                    .any(|e| e.key == required.as_str() && e.value.value != Value::Null);
                if !present {
                    path.push(Step::Key(required));
                    issues.push(issue(path, IssueKind::MissingRequired));
                    path.pop();
                }
            }
            // `status` at the top is ignored on writes of the main resource rather than pruned.
            let at_root = path.is_empty();
            for entry in entries {
                path.push(Step::Key(&entry.key));
                match (shape.property(&entry.key), shape.additional.as_deref()) {
                    (Some(child), _) | (None, Some(child)) => {
                        walk(child, &entry.value, path, issues)
                    }
                    (None, None)
                        if shape.properties.is_some() && !(at_root && entry.key == "status") =>
                    {
                        issues.push(issue(path, IssueKind::Unknown))
                    }
                    (None, None) => {}
                }
                path.pop();
            }
        }
        Value::Seq(items) => {
            if let Some(item_shape) = &shape.items {
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    walk(item_shape, item, path, issues);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// ObjectMeta fields and the JSON type each must have.
const META_FIELDS: &[(&str, JsonType)] = &[
    ("name", JsonType::String),
    ("generateName", JsonType::String),
    ("namespace", JsonType::String),
    ("selfLink", JsonType::String),
    ("uid", JsonType::String),
    ("resourceVersion", JsonType::String),
    ("generation", JsonType::Integer),
    ("creationTimestamp", JsonType::String),
    ("deletionTimestamp", JsonType::String),
    ("deletionGracePeriodSeconds", JsonType::Integer),
    ("labels", JsonType::Object),
    ("annotations", JsonType::Object),
    ("ownerReferences", JsonType::Array),
    ("finalizers", JsonType::Array),
    ("managedFields", JsonType::Array),
];

fn check_metadata(meta: &Node<'_>, issues: &mut Vec<Issue>) {
    let Value::Map(entries) = &meta.value else {
        return;
    };
    // Paths are built only for issues: this runs for every object.
    for entry in entries {
        let path = || FieldPath::keys(&["metadata", &entry.key]);
        let Some((_, ty)) = META_FIELDS.iter().find(|(k, _)| *k == entry.key) else {
            issues.push(Issue {
                path: path(),
                kind: IssueKind::Unknown,
            });
            continue;
        };
        if entry.value.value == Value::Null {
            continue;
        }
        if !ty.admits(&entry.value.value) {
            issues.push(Issue {
                path: path(),
                kind: IssueKind::WrongType {
                    expected: ty.name(),
                    found: entry.value.value.type_name(),
                },
            });
            continue;
        }
        let string_values = matches!(&*entry.key, "labels" | "annotations");
        if let (true, Value::Map(pairs)) = (string_values, &entry.value.value) {
            for pair in pairs {
                if !JsonType::String.admits(&pair.value.value) {
                    issues.push(Issue {
                        path: path().key(&pair.key),
                        kind: IssueKind::WrongType {
                            expected: "string",
                            found: pair.value.value.type_name(),
                        },
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse;

    fn issues(text: &str) -> Vec<(String, IssueKind)> {
        let parsed = parse("t.yaml", text);
        let root = parsed.documents[0].root.as_ref().unwrap();
        check(root)
            .into_iter()
            .map(|i| (i.path.to_string(), i.kind))
            .collect()
    }

    #[test]
    fn clean_pool_has_no_issues() {
        assert!(issues("apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p, labels: {a: b}}\nspec: {cidr: 10.0.0.0/16, blockSize: 26, allowedUses: [Workload]}\n").is_empty());
    }

    #[test]
    fn types_enums_required_unknown() {
        let found = issues(
            "kind: IPPool\nmetadata: {name: p, labels: {a: 1}, bogus: x}\nspec: {blockSize: '26', assignmentMode: Sometimes, natOutgoing: yes, color: red, nodeSelector: ~}\n",
        );
        assert!(found.contains(&(
            "spec.blockSize".into(),
            IssueKind::WrongType {
                expected: "integer",
                found: "string"
            }
        )));
        assert!(found.contains(&("spec.cidr".into(), IssueKind::MissingRequired)));
        assert!(
            found.iter().any(
                |(p, k)| p == "spec.assignmentMode" && matches!(k, IssueKind::NotInEnum { .. })
            )
        );
        assert!(found.contains(&("spec.color".into(), IssueKind::Unknown)));
        assert!(found.contains(&("spec.nodeSelector".into(), IssueKind::NullDropped)));
        assert!(found.contains(&("metadata.bogus".into(), IssueKind::Unknown)));
        assert!(found.contains(&(
            "metadata.labels.a".into(),
            IssueKind::WrongType {
                expected: "string",
                found: "integer"
            }
        )));
        assert!(!found.iter().any(|(p, _)| p == "spec.natOutgoing"));
    }
}
