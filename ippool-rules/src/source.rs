//! Parsing YAML and JSON text into documents with spans.
//!
//! A source is a YAML stream (JSON is a subset) of one or more documents. A document whose root
//! has an `items` sequence and a kind ending in `List` (`List`, `IPPoolList`, calicoctl exports) or
//! no kind at all is split into objects addressed by path (`items[3]`). Limits on input size,
//! nesting depth and alias expansion turn hostile input into diagnostics.

mod position;
mod scalar;
mod tree;

use std::borrow::Cow;

pub use position::{LineIndex, Mark, Pos, RawSpan, Span};

use crate::report::{FieldPath, PathSegment};

/// Bounds on what one source may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Larger sources are refused without parsing.
    pub max_bytes: usize,
    /// Deepest allowed nesting of mappings and sequences.
    pub max_depth: usize,
    /// Nodes that alias expansion may copy, over the whole source.
    pub max_alias_nodes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 4 * 1024 * 1024,
            max_depth: 64,
            max_alias_nodes: 100_000,
        }
    }
}

/// A resolved value (the JSON data model, which is what the API server sees).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    Map(Vec<Entry<'a>>),
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    pub value: Value<'a>,
    pub span: RawSpan,
}

/// One key of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub key: Cow<'a, str>,
    pub key_span: RawSpan,
    pub value: Node<'a>,
}

/// One document of a YAML stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document<'a> {
    /// Position in the stream, counting empty documents.
    pub index: usize,
    /// Where the document starts.
    pub start: Mark,
    /// `None` for an empty document.
    pub root: Option<Node<'a>>,
}

/// What went wrong while reading a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Not valid YAML/JSON.
    Syntax,
    /// Size, depth or alias-expansion limit exceeded.
    Limit,
    /// Valid YAML that cannot be a Kubernetes object (non-scalar keys).
    Unsupported,
    /// A mapping key written twice.
    DuplicateKey,
}

/// A problem found while reading, located in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    /// The document it belongs to.
    pub index: usize,
    pub kind: ProblemKind,
    pub message: String,
    pub span: RawSpan,
}

/// Converts parser positions of one text into report positions.
#[derive(Debug, Clone)]
pub struct Positions<'a> {
    text: &'a str,
    lines: LineIndex,
}

impl<'a> Positions<'a> {
    pub fn new(text: &'a str) -> Positions<'a> {
        Positions {
            text,
            lines: LineIndex::new(text),
        }
    }

    /// Converts a parser span into report positions (UTF-16 columns).
    pub fn span(&self, raw: RawSpan) -> Span {
        self.lines.span(self.text, raw)
    }

    /// Where to point for `path` inside `object`: the value of a scalar; the key of a mapping or
    /// sequence; for a missing field, its parent's key; for the object itself, its first key.
    pub fn locate(&self, object: &Node<'_>, path: &FieldPath) -> Span {
        let steps = path.0.iter().map(|s| match s {
            PathSegment::Key(k) => Step::Key(k),
            PathSegment::Index(i) => Step::Index(*i),
        });
        self.span(locate_raw(object, steps))
    }

    /// [`Positions::locate`] for a path of plain keys, without building a [`FieldPath`].
    pub fn locate_keys(&self, object: &Node<'_>, keys: &[&str]) -> Span {
        self.span(locate_raw(object, keys.iter().map(|k| Step::Key(k))))
    }
}

enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// A parsed source.
#[derive(Debug, Clone)]
pub struct Parsed<'a> {
    pub name: &'a str,
    pub text: &'a str,
    pub documents: Vec<Document<'a>>,
    pub problems: Vec<ParseProblem>,
    pub positions: Positions<'a>,
}

/// An object to validate: a document, or one item of a list document.
#[derive(Debug, Clone, Copy)]
pub struct Object<'d, 'a> {
    /// The document's index in its source.
    pub index: usize,
    /// `Some(i)` for `items[i]` of a list document.
    pub item: Option<usize>,
    pub node: &'d Node<'a>,
}

impl Object<'_, '_> {
    /// The path of this object inside its document (`items[3]` or empty).
    pub fn prefix(&self) -> FieldPath {
        match self.item {
            Some(i) => FieldPath::keys(&["items"]).index(i),
            None => FieldPath::root(),
        }
    }
}

/// Parses `text` with the default [`Limits`]. Never panics; problems are in [`Parsed::problems`].
pub fn parse<'a>(name: &'a str, text: &'a str) -> Parsed<'a> {
    parse_with_limits(name, text, Limits::default())
}

pub fn parse_with_limits<'a>(name: &'a str, text: &'a str, limits: Limits) -> Parsed<'a> {
    let mut documents = Vec::new();
    let (problems, positions) = parse_each(text, limits, |d, _| documents.push(d));
    Parsed {
        name,
        text,
        documents,
        problems,
        positions,
    }
}

/// Parses `text`, handing each document (with the text's position converter) to `on_document`
/// as soon as it is complete, so that a long stream need not be held in memory at once. Returns
/// the problems found and the position converter.
pub fn parse_each<'a>(
    text: &'a str,
    limits: Limits,
    mut on_document: impl FnMut(Document<'a>, &Positions<'a>),
) -> (Vec<ParseProblem>, Positions<'a>) {
    if text.len() > limits.max_bytes {
        let problem = ParseProblem {
            index: 0,
            kind: ProblemKind::Limit,
            message: format!(
                "input is {} bytes, more than the limit of {} bytes; split it into smaller files",
                text.len(),
                limits.max_bytes
            ),
            span: RawSpan::at(Mark { line: 1, col: 0 }),
        };
        return (vec![problem], Positions::new(""));
    }
    let positions = Positions::new(text);
    let problems = tree::build(text, limits, |d| on_document(d, &positions));
    (problems, positions)
}

impl Parsed<'_> {
    /// Converts a parser span into report positions (UTF-16 columns).
    pub fn span(&self, raw: RawSpan) -> Span {
        self.positions.span(raw)
    }

    /// See [`Positions::locate`].
    pub fn locate(&self, object: &Node<'_>, path: &FieldPath) -> Span {
        self.positions.locate(object, path)
    }
}

fn locate_raw<'p>(object: &Node<'_>, steps: impl Iterator<Item = Step<'p>>) -> RawSpan {
    let mut node = object;
    let mut via_key: Option<RawSpan> = None;
    for step in steps {
        let next = match (step, &node.value) {
            (Step::Key(k), Value::Map(entries)) => entries
                .iter()
                .find(|e| e.key == k)
                .map(|e| (&e.value, Some(e.key_span))),
            (Step::Index(i), Value::Seq(items)) => items.get(i).map(|n| (n, None)),
            _ => None,
        };
        match next {
            Some((n, key)) => {
                node = n;
                via_key = key;
            }
            None => break,
        }
    }
    let is_container = matches!(node.value, Value::Map(_) | Value::Seq(_));
    match via_key {
        Some(key) if is_container => key,
        None if std::ptr::eq(node, object) => first_token(object),
        _ => node.span,
    }
}

/// The first key of a mapping (an object's `apiVersion:` line, usually), else the node's start.
fn first_token(node: &Node<'_>) -> RawSpan {
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => entries
            .iter()
            .map(|e| e.key_span)
            .min_by_key(|s| s.start)
            .unwrap_or(node.span),
        _ => RawSpan::at(node.span.start),
    }
}

impl<'a> Document<'a> {
    /// The objects in this document: the list items of a list document, else the document.
    pub fn objects(&self) -> Vec<Object<'_, 'a>> {
        let root = match &self.root {
            Some(root) if root.value != Value::Null => root,
            _ => return Vec::new(),
        };
        if let Some(items) = list_items(root) {
            return items
                .iter()
                .enumerate()
                .map(|(i, node)| Object {
                    index: self.index,
                    item: Some(i),
                    node,
                })
                .collect();
        }
        vec![Object {
            index: self.index,
            item: None,
            node: root,
        }]
    }
}

fn list_items<'d, 'a>(root: &'d Node<'a>) -> Option<&'d [Node<'a>]> {
    let Value::Seq(items) = &root.get("items")?.value else {
        return None;
    };
    let is_list = match root.get("kind").map(|k| &k.value) {
        None => true,
        Some(Value::Str(kind)) => kind.ends_with("List"),
        Some(_) => false,
    };
    is_list.then_some(items.as_slice())
}

impl<'a> Node<'a> {
    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    /// The value at a path of plain keys.
    pub fn at(&self, keys: &[&str]) -> Option<&Node<'a>> {
        keys.iter().try_fold(self, |node, k| node.get(k))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// An integer, also from a float with no fractional part (as JSON Schema counts integers).
    pub fn as_i64(&self) -> Option<i64> {
        match self.value {
            Value::Int(i) => Some(i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
            _ => None,
        }
    }

    /// Number of nodes in this subtree (itself included).
    pub fn size(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|e| e.value.size()).sum(),
            _ => 0,
        }
    }

    /// The JSON value the API server would receive (non-finite floats become null: kubectl
    /// cannot send them).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.to_string()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.to_string(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

impl Value<'_> {
    /// The JSON type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "array",
            Value::Map(_) => "object",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/16\n  blockSize: 26\n";

    #[test]
    fn single_document_with_spans() {
        let parsed = parse("pool.yaml", POOL);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(parsed.documents.len(), 1);
        let objects = parsed.documents[0].objects();
        assert_eq!(objects.len(), 1);
        let node = objects[0].node;
        let span = parsed.locate(node, &FieldPath::keys(&["spec", "blockSize"]));
        assert_eq!(
            (span.start.line, span.start.column, span.end.column),
            (7, 14, 16)
        );
        // Missing field: its parent's key.
        let span = parsed.locate(node, &FieldPath::keys(&["spec", "ipipMode"]));
        assert_eq!(
            (span.start.line, span.start.column, span.end.column),
            (5, 1, 5)
        );
        // The object itself: its first key.
        let span = parsed.locate(node, &FieldPath::root());
        assert_eq!((span.start.line, span.start.column), (1, 1));
        assert_eq!(
            node.at(&["spec", "blockSize"]).and_then(Node::as_i64),
            Some(26)
        );
    }

    #[test]
    fn streams_lists_and_json() {
        let stream = format!("{POOL}---\n---\n{POOL}");
        let parsed = parse("s.yaml", &stream);
        let indexes: Vec<_> = parsed
            .documents
            .iter()
            .flat_map(|d| d.objects())
            .map(|o| o.index)
            .collect();
        assert_eq!(indexes, vec![0, 2]);

        let list = r#"{"apiVersion": "v1", "kind": "List", "items": [{"kind": "IPPool"}, {"kind": "IPPool", "spec": {"cidr": 5}}]}"#;
        let parsed = parse("l.json", list);
        let objects = parsed.documents[0].objects();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].prefix().to_string(), "items[1]");
        let span = parsed.locate(objects[1].node, &FieldPath::keys(&["spec", "cidr"]));
        assert_eq!((span.start.line, span.start.column), (1, 104));
    }

    #[test]
    fn aliases_and_merge_keys_expand() {
        let text = "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n";
        let parsed = parse("a.yaml", text);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let root = parsed.documents[0].root.as_ref().unwrap();
        assert_eq!(
            root.get("use").unwrap().to_json(),
            serde_json::json!({"y": 3, "x": 1})
        );
    }

    #[test]
    fn problems_are_located() {
        let parsed = parse("bad.yaml", "a: b\nc: [1, 2\n");
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].kind, ProblemKind::Syntax);
        let dup = parse("dup.yaml", "a: 1\nb: 2\na: 3\n");
        assert_eq!(dup.problems[0].kind, ProblemKind::DuplicateKey);
        assert_eq!(dup.span(dup.problems[0].span).start.line, 3);
        let big = "x".repeat(100);
        let limited = parse_with_limits(
            "big",
            &big,
            Limits {
                max_bytes: 10,
                ..Limits::default()
            },
        );
        assert_eq!(limited.problems[0].kind, ProblemKind::Limit);
    }

    #[test]
    fn billion_laughs_and_deep_nesting_are_refused() {
        let mut lol = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            lol.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let parsed = parse("lol.yaml", &lol);
        assert!(parsed.problems.iter().any(|p| p.kind == ProblemKind::Limit));

        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let parsed = parse("deep.yaml", &deep);
        assert!(parsed.problems.iter().any(|p| p.kind == ProblemKind::Limit));
    }
}
