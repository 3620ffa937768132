//! From source text to a [`Report`]: parse, check structure, run the rules, place every finding
//! at a line and column. Documents are checked as the parser completes them and their trees are
//! dropped right after, so memory grows with the report, not with the input's syntax trees.

use std::collections::HashSet;

use crate::context::{ClusterContext, Operation};
use crate::extract;
use crate::model::{IpPool, IpamBlock};
use crate::report::{Diagnostic, DocumentReport, FieldPath, Report};
use crate::rules::{self, BATCH_PATHS, BatchPool, Checker, Finding};
use crate::source::{self, Limits, Node, Object, Positions, ProblemKind, RawSpan, Span};
use crate::structure::{self, IssueKind};

/// One input text and the name it is reported under (a file name, `-`, or a caller's label).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

const IPPOOL: &str = "IPPool";
const SKIPPED: &str = "IPP005";

/// A document's report, kept after its tree is gone, with what later checks need.
struct Checked {
    report: DocumentReport,
    prefix: FieldPath,
    /// Set for IPPools: what the checks across the input need.
    pool: Option<BatchPool>,
    /// Positions of [`BATCH_PATHS`], resolved while the tree existed.
    batch_spans: Vec<Span>,
}

impl Checked {
    fn bare(source: &str, index: usize) -> Checked {
        Checked {
            report: DocumentReport {
                source: source.to_owned(),
                index,
                api_version: None,
                kind: None,
                name: None,
                diagnostics: Vec::new(),
            },
            prefix: FieldPath::root(),
            pool: None,
            batch_spans: Vec::new(),
        }
    }

    fn add(&mut self, finding: Finding, span: Span) {
        self.report.diagnostics.push(Diagnostic {
            code: finding.code.to_owned(),
            severity: finding.severity,
            path: self.prefix.join(&finding.path).to_string(),
            line: span.start.line.max(1),
            column: span.start.column.max(1),
            end_line: span.end.line.max(1),
            end_column: span.end.column.max(1),
            message: finding.message,
            hint: finding.hint,
        });
    }

    fn finish(mut self) -> DocumentReport {
        // The structural check and the rules may both report a field (a missing cidr, a bad
        // enum); one diagnostic per code and path is enough. Skipped-rule notes differ by message.
        let mut seen = HashSet::new();
        self.report.diagnostics.retain(|d| {
            let message = if d.code == SKIPPED {
                d.message.as_str()
            } else {
                ""
            };
            seen.insert((d.code.clone(), d.path.clone(), message.to_owned()))
        });
        self.report
            .diagnostics
            .sort_by(|a, b| (a.line, a.column, &a.code).cmp(&(b.line, b.column, &b.code)));
        self.report
    }
}

/// Validates every IPPool in `sources` for `op` against `ctx`. Never panics: unreadable input
/// becomes diagnostics.
pub fn validate(sources: &[Source<'_>], ctx: &ClusterContext, op: &Operation) -> Report {
    let checker = Checker::new(ctx);
    let mut checked: Vec<Checked> = Vec::new();
    for s in sources {
        let first = checked.len();
        let (problems, positions) =
            source::parse_each(s.text, Limits::default(), |doc, positions| {
                for object in doc.objects() {
                    checked.push(check_object(s.name, positions, object, &checker, op));
                }
            });
        attach_problems(s.name, &problems, &positions, &mut checked, first);
    }
    let pools: Vec<(usize, &BatchPool)> = checked
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, c.pool.as_ref()?)))
        .collect();
    let just_pools: Vec<&BatchPool> = pools.iter().map(|(_, p)| *p).collect();
    let batch: Vec<(usize, Finding)> = rules::check_batch(&just_pools, op)
        .into_iter()
        .map(|(i, f)| (pools[i].0, f))
        .collect();
    for (i, finding) in batch {
        let at = BATCH_PATHS
            .iter()
            .position(|p| FieldPath::keys(p) == finding.path)
            .and_then(|k| checked[i].batch_spans.get(k).copied())
            .unwrap_or_default();
        checked[i].add(finding, at);
    }
    Report::new(checked.into_iter().map(Checked::finish).collect())
}

/// Puts parse problems on the report of their document (or a report of their own), and notes
/// a source with no documents at all.
fn attach_problems(
    source: &str,
    problems: &[source::ParseProblem],
    positions: &Positions<'_>,
    checked: &mut Vec<Checked>,
    first: usize,
) {
    let before = checked.len();
    for problem in problems {
        let finding = problem_finding(problem.kind, &problem.message);
        let span = positions.span(problem.span);
        let own = checked[first..before]
            .iter()
            .position(|c| c.report.index == problem.index && c.prefix.is_root());
        match own {
            Some(i) => checked[first + i].add(finding, span),
            None => {
                let mut c = Checked::bare(source, problem.index);
                c.add(finding, span);
                checked.push(c);
            }
        }
    }
    if checked.len() == first {
        let mut c = Checked::bare(source, 0);
        c.add(
            Finding::new("IPP006", FieldPath::root(), "no documents found")
                .hint("the input is empty or holds only comments"),
            positions.span(RawSpan::default()),
        );
        checked.push(c);
    }
}

fn problem_finding(kind: ProblemKind, message: &str) -> Finding {
    let (code, what, hint) = match kind {
        ProblemKind::Syntax => (
            "IPP001",
            "syntax error",
            "fix the YAML/JSON syntax at this position",
        ),
        ProblemKind::Unsupported => (
            "IPP001",
            "unsupported YAML",
            "write mapping keys as plain strings",
        ),
        ProblemKind::Limit => (
            "IPP002",
            "input limit",
            "split the input or remove deep nesting and alias chains",
        ),
        ProblemKind::DuplicateKey => ("IPP007", "duplicate key", "keep one of the two keys"),
    };
    Finding::new(code, FieldPath::root(), format!("{what}: {message}")).hint(hint)
}

fn text_field(node: &Node<'_>, key: &str) -> Option<String> {
    node.get(key).and_then(Node::as_str).map(str::to_owned)
}

/// A document report started for `object`, with its identity filled in.
fn start(source: &str, object: &Object<'_, '_>) -> Checked {
    let node = object.node;
    let mut c = Checked::bare(source, object.index);
    c.prefix = object.prefix();
    c.report.api_version = text_field(node, "apiVersion");
    c.report.kind = text_field(node, "kind");
    c.report.name = node
        .at(&["metadata", "name"])
        .and_then(Node::as_str)
        .map(str::to_owned);
    c
}

fn check_object(
    source: &str,
    positions: &Positions<'_>,
    object: Object<'_, '_>,
    checker: &Checker<'_>,
    op: &Operation,
) -> Checked {
    let node = object.node;
    let mut c = start(source, &object);
    let add = |c: &mut Checked, finding: Finding| {
        let span = positions.locate(node, &finding.path);
        c.add(finding, span);
    };
    match c.report.kind.as_deref() {
        Some(IPPOOL) => {}
        Some(other) => {
            let finding = Finding::new(
                "IPP004",
                FieldPath::root(),
                format!("{other} is not an IPPool; skipped"),
            )
            .hint("only IPPool documents are validated");
            add(&mut c, finding);
            return c;
        }
        None => {
            let finding = Finding::new(
                "IPP003",
                FieldPath::root(),
                "kind is missing (expected kind: IPPool)",
            )
            .hint("add kind: IPPool");
            add(&mut c, finding);
            return c;
        }
    }
    let api_version_missing = c.report.api_version.is_none();
    if api_version_missing {
        let finding = Finding::new("IPP003", FieldPath::root(), "apiVersion is missing")
            .hint("add apiVersion: projectcalico.org/v3 or crd.projectcalico.org/v1");
        add(&mut c, finding);
    }
    let issues = structure::check(node);
    let mistyped: Vec<&FieldPath> = issues
        .iter()
        .filter(|i| matches!(i.kind, IssueKind::WrongType { .. }))
        .map(|i| &i.path)
        .collect();
    for issue in &issues {
        // A value of the wrong type is not also reported as outside the enum.
        let repeat =
            matches!(issue.kind, IssueKind::NotInEnum { .. }) && mistyped.contains(&&issue.path);
        if !repeat {
            add(&mut c, structural_finding(&issue.path, &issue.kind));
        }
    }
    let pool = extract::ip_pool(node);
    for finding in checker.check(&pool, op) {
        let duplicate_kind_check = api_version_missing && finding.code == "IPP003";
        // Findings at or under a mistyped field would repeat its type error.
        let repeats_type_error = mistyped.iter().any(|m| finding.path.0.starts_with(&m.0));
        if !duplicate_kind_check && !repeats_type_error {
            add(&mut c, finding);
        }
    }
    c.batch_spans = BATCH_PATHS
        .iter()
        .map(|p| positions.locate_keys(node, p))
        .collect();
    c.pool = Some(BatchPool::of(&pool));
    c
}

fn structural_finding(path: &FieldPath, kind: &IssueKind) -> Finding {
    let field = path.to_string();
    match kind {
        IssueKind::WrongType { expected, found } => Finding::new(
            "IPP010",
            path.clone(),
            format!(
                "{field} must be {} {expected}, not {} {found}",
                article(expected),
                article(found)
            ),
        )
        .hint(type_hint(expected)),
        IssueKind::MissingRequired if field == "spec.cidr" => {
            Finding::new("IPP012", path.clone(), "IPPool CIDR must be specified")
                .hint("add spec.cidr, e.g. cidr: 10.244.0.0/16")
        }
        IssueKind::MissingRequired => {
            Finding::new("IPP010", path.clone(), format!("{field} is required"))
        }
        IssueKind::NotInEnum { allowed } => Finding::new(
            "IPP013",
            path.clone(),
            format!("{field} must be one of {}", allowed.join(", ")),
        )
        .hint("values are case-sensitive"),
        IssueKind::Unknown => Finding::new(
            "IPP011",
            path.clone(),
            format!("unknown field {field} is pruned by the API server"),
        )
        .hint("check the spelling; the field has no effect"),
        IssueKind::NullDropped => Finding::new(
            "IPP011",
            path.clone(),
            format!("{field} is null and is dropped by the API server (it stays unset)"),
        )
        .hint("remove the field or give it a value"),
    }
}

fn article(type_name: &str) -> &'static str {
    if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn type_hint(expected: &str) -> &'static str {
    match expected {
        "integer" => "write a number without quotes, e.g. blockSize: 26",
        "boolean" => "write true or false without quotes",
        "string" => "quote the value to make it a string",
        "object" => "write a mapping of keys to values",
        "array" => "write a list, e.g. [Workload, Tunnel]",
        _ => "fix the value's type",
    }
}

/// Reads each object of `source` with `read`, collecting error reports; parse problems are
/// errors too.
fn read_objects(
    source: &Source<'_>,
    mut read: impl FnMut(&Object<'_, '_>) -> Result<(), Finding>,
) -> Vec<DocumentReport> {
    let mut bad: Vec<Checked> = Vec::new();
    let (problems, positions) =
        source::parse_each(source.text, Limits::default(), |doc, positions| {
            for object in doc.objects() {
                if let Err(finding) = read(&object) {
                    let mut c = start(source.name, &object);
                    let span = positions.locate(object.node, &finding.path);
                    c.add(finding, span);
                    bad.push(c);
                }
            }
        });
    for problem in &problems {
        let mut c = Checked::bare(source.name, problem.index);
        c.add(
            problem_finding(problem.kind, &problem.message),
            positions.span(problem.span),
        );
        bad.push(c);
    }
    bad.into_iter().map(Checked::finish).collect()
}

/// Pools and IPAM blocks from any accepted format, for use as context (`--against`). Other
/// kinds are ignored; unreadable input or malformed objects are returned as an error report.
pub fn load_context_objects(
    sources: &[Source<'_>],
) -> Result<(Vec<IpPool>, Vec<IpamBlock>), Report> {
    let mut pools = Vec::new();
    let mut blocks = Vec::new();
    let mut documents = Vec::new();
    for s in sources {
        documents.extend(read_objects(s, |object| {
            match object.node.get("kind").and_then(Node::as_str) {
                Some(IPPOOL) => pools.push(extract::ip_pool(object.node)),
                Some("IPAMBlock") => {
                    let block = serde_json::from_value::<IpamBlock>(object.node.to_json()).map_err(|err| {
                        Finding::new("IPP010", FieldPath::root(), format!("IPAMBlock cannot be read: {err}"))
                            .hint("export blocks with kubectl get ipamblocks.crd.projectcalico.org -o yaml")
                    })?;
                    blocks.push(block);
                }
                _ => {}
            }
            Ok(())
        }));
    }
    let report = Report::new(documents);
    if report.errors > 0 {
        Err(report)
    } else {
        Ok((pools, blocks))
    }
}

/// The IPPools of one source (for `--old`); anything else, or unreadable input, is an error.
pub fn parse_pools(source: Source<'_>) -> Result<Vec<IpPool>, Report> {
    let mut pools = Vec::new();
    let documents = read_objects(&source, |object| {
        match object.node.get("kind").and_then(Node::as_str) {
            Some(IPPOOL) => {
                pools.push(extract::ip_pool(object.node));
                Ok(())
            }
            other => Err(Finding::new(
                "IPP003",
                FieldPath::keys(&["kind"]),
                format!("expected an IPPool, found {}", other.unwrap_or("no kind")),
            )
            .hint("give a file holding IPPools only")),
        }
    });
    let report = Report::new(documents);
    if report.errors > 0 {
        Err(report)
    } else {
        Ok(pools)
    }
}
