//! Building spanned trees from saphyr-parser events, within the limits that keep hostile input
//! (alias bombs, deep nesting) from exhausting memory or the stack.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span as YSpan};

use super::position::{Mark, RawSpan};
use super::scalar::resolve;
use super::{Document, Entry, Limits, Node, ParseProblem, ProblemKind, Value};

fn mark(m: &Marker) -> Mark {
    Mark {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        col: u32::try_from(m.col()).unwrap_or(u32::MAX),
    }
}

fn raw(span: &YSpan) -> RawSpan {
    RawSpan {
        start: mark(&span.start),
        end: mark(&span.end),
    }
}

/// A container under construction.
enum Frame<'a> {
    Seq {
        anchor: usize,
        start: Mark,
        items: Vec<Node<'a>>,
    },
    Map {
        anchor: usize,
        start: Mark,
        entries: Vec<Entry<'a>>,
        key: PendingKey<'a>,
        /// Values of `<<` merge keys, applied when the mapping ends.
        merges: Vec<Node<'a>>,
        /// Keys seen so far, kept only for large mappings (small ones are scanned).
        seen: Option<HashSet<String>>,
    },
}

enum PendingKey<'a> {
    None,
    Key {
        text: Cow<'a, str>,
        span: RawSpan,
        merge: bool,
    },
    /// The key was not a scalar: its value is dropped (a problem was recorded).
    Skip,
}

/// Why building a document stopped early.
struct Abort(ParseProblem);

struct Builder<'a> {
    index: usize,
    limits: Limits,
    stack: Vec<Frame<'a>>,
    anchors: HashMap<usize, (Node<'a>, usize)>,
    alias_budget: usize,
    root: Option<Node<'a>>,
    problems: Vec<ParseProblem>,
}

/// Parses `text`, handing each completed document to `on_document` as soon as it ends (so a
/// caller can process a long stream without holding every tree). Documents completed before a
/// syntax error are delivered.
pub(super) fn build<'a>(
    text: &'a str,
    limits: Limits,
    mut on_document: impl FnMut(Document<'a>),
) -> Vec<ParseProblem> {
    let mut parser = Parser::new_from_str(text);
    let mut problems = Vec::new();
    let mut index = 0usize;
    let mut alias_budget = limits.max_alias_nodes;
    let mut builder: Option<Builder<'_>> = None;
    let mut doc_start = Mark::default();
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(ok) => ok,
            Err(err) => {
                if let Some(b) = builder.as_mut() {
                    problems.append(&mut b.problems);
                }
                // saphyr refuses flow nesting beyond 255 levels; that is our depth limit too.
                let kind = if err.info() == "recursion limit exceeded" {
                    ProblemKind::Limit
                } else {
                    ProblemKind::Syntax
                };
                problems.push(ParseProblem {
                    index,
                    kind,
                    message: err.info().to_owned(),
                    span: RawSpan::at(mark(err.marker())),
                });
                break;
            }
        };
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                doc_start = mark(&span.start);
                builder = Some(Builder {
                    index,
                    limits,
                    stack: Vec::new(),
                    anchors: HashMap::new(),
                    alias_budget,
                    root: None,
                    problems: Vec::new(),
                });
            }
            Event::DocumentEnd => {
                if let Some(b) = builder.take() {
                    alias_budget = b.alias_budget;
                    problems.extend(b.problems);
                    on_document(Document {
                        index,
                        start: doc_start,
                        root: b.root,
                    });
                }
                index += 1;
            }
            other => {
                let Some(b) = builder.as_mut() else {
                    continue;
                };
                if let Err(Abort(problem)) = b.on_event(other, &span) {
                    problems.extend(std::mem::take(&mut b.problems));
                    problems.push(problem);
                    // Limits are per source: the rest of the stream is not read.
                    break;
                }
            }
        }
    }
    problems
}

impl<'a> Builder<'a> {
    fn on_event(&mut self, event: Event<'a>, span: &YSpan) -> Result<(), Abort> {
        let here = raw(span);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(Frame::Map {
                    key: key @ PendingKey::None,
                    ..
                }) = self.stack.last_mut()
                {
                    // Keys keep their text unresolved: Kubernetes field names are strings (YAML
                    // 1.1 would read a key `y` or `on` as a boolean).
                    let merge = style == ScalarStyle::Plain && text == "<<";
                    *key = PendingKey::Key {
                        text,
                        span: here,
                        merge,
                    };
                    if anchor != 0 {
                        // Anchored keys are legal YAML but meaningless for Kubernetes objects.
                        self.problem(
                            ProblemKind::Unsupported,
                            "anchors on mapping keys are not supported",
                            here,
                        );
                    }
                    return Ok(());
                }
                let value = resolve(text, style, tag.as_deref());
                self.complete(Node { value, span: here }, anchor)
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id) else {
                    return Err(self.abort(
                        ProblemKind::Syntax,
                        "alias refers to an unknown anchor",
                        here,
                    ));
                };
                if *size > self.alias_budget {
                    return Err(self.abort(
                        ProblemKind::Limit,
                        &format!(
                            "alias expansion exceeds the limit of {} nodes per source (a \"billion laughs\" document?)",
                            self.limits.max_alias_nodes
                        ),
                        here,
                    ));
                }
                self.alias_budget -= size;
                let mut copy = node.clone();
                copy.span = here;
                self.complete(copy, 0)
            }
            Event::SequenceStart(anchor, _) => {
                self.enter(here)?;
                self.stack.push(Frame::Seq {
                    anchor,
                    start: here.start,
                    items: Vec::with_capacity(4),
                });
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.enter(here)?;
                self.stack.push(Frame::Map {
                    anchor,
                    start: here.start,
                    // Most Kubernetes mappings have a handful of keys: one allocation.
                    entries: Vec::with_capacity(8),
                    key: PendingKey::None,
                    merges: Vec::new(),
                    seen: None,
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Err(self.abort(ProblemKind::Syntax, "unbalanced collection end", here));
                };
                let (value, start, anchor) = match frame {
                    Frame::Seq {
                        anchor,
                        start,
                        items,
                    } => (Value::Seq(items), start, anchor),
                    Frame::Map {
                        anchor,
                        start,
                        entries,
                        merges,
                        ..
                    } => (Value::Map(apply_merges(entries, merges)), start, anchor),
                };
                let node = Node {
                    value,
                    span: RawSpan {
                        start,
                        end: here.end,
                    },
                };
                self.complete(node, anchor)
            }
            _ => Ok(()),
        }
    }

    fn enter(&mut self, here: RawSpan) -> Result<(), Abort> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.abort(
                ProblemKind::Limit,
                &format!("nesting deeper than {} levels", self.limits.max_depth),
                here,
            ));
        }
        if let Some(Frame::Map {
            key: key @ PendingKey::None,
            ..
        }) = self.stack.last_mut()
        {
            *key = PendingKey::Skip;
            self.problem(
                ProblemKind::Unsupported,
                "a mapping key must be a scalar (Kubernetes objects have string keys)",
                here,
            );
        }
        Ok(())
    }

    /// Attaches a finished node to its parent (or makes it the document root).
    fn complete(&mut self, node: Node<'a>, anchor: usize) -> Result<(), Abort> {
        if anchor != 0 {
            let size = node.size();
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                merges,
                seen,
                ..
            }) => match std::mem::replace(key, PendingKey::None) {
                PendingKey::Key { merge: true, .. } => merges.push(node),
                PendingKey::Key { text, span, .. } => {
                    if let Some(first) = find_duplicate(entries, seen, &text) {
                        self.problems.push(ParseProblem {
                            index: self.index,
                            kind: ProblemKind::DuplicateKey,
                            message: format!(
                                "duplicate key '{text}' (first on line {first}); kubectl rejects duplicate keys"
                            ),
                            span,
                        });
                    }
                    entries.push(Entry {
                        key: text,
                        key_span: span,
                        value: node,
                    });
                }
                // A non-scalar key: `enter` already recorded the problem; drop its value.
                PendingKey::Skip | PendingKey::None => {}
            },
        }
        Ok(())
    }

    fn problem(&mut self, kind: ProblemKind, message: &str, span: RawSpan) {
        self.problems.push(ParseProblem {
            index: self.index,
            kind,
            message: message.to_owned(),
            span,
        });
    }

    fn abort(&self, kind: ProblemKind, message: &str, span: RawSpan) -> Abort {
        Abort(ParseProblem {
            index: self.index,
            kind,
            message: message.to_owned(),
            span,
        })
    }
}

/// Mappings with more keys than this track keys in a set instead of scanning.
const SCAN_LIMIT: usize = 16;

/// Returns the line of an earlier entry with key `text`, recording `text` as seen.
fn find_duplicate(
    entries: &[Entry<'_>],
    seen: &mut Option<HashSet<String>>,
    text: &str,
) -> Option<u32> {
    let line_of = |entries: &[Entry<'_>]| {
        entries
            .iter()
            .find(|e| e.key == text)
            .map(|e| e.key_span.start.line)
    };
    if let Some(set) = seen {
        return if set.insert(text.to_owned()) {
            None
        } else {
            line_of(entries)
        };
    }
    let found = line_of(entries);
    if entries.len() >= SCAN_LIMIT {
        let keys = entries.iter().map(|e| e.key.to_string());
        *seen = Some(keys.chain([text.to_owned()]).collect());
    }
    found
}

/// YAML merge keys (`<<: *base`), which kubectl's YAML 1.1 reader honours: entries written in the
/// mapping win over merged ones, earlier merge sources over later ones.
fn apply_merges<'a>(mut own: Vec<Entry<'a>>, merges: Vec<Node<'a>>) -> Vec<Entry<'a>> {
    for merge in merges {
        let sources = match merge.value {
            Value::Map(m) => vec![m],
            Value::Seq(items) => items
                .into_iter()
                .filter_map(|n| match n.value {
                    Value::Map(m) => Some(m),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for source in sources {
            for entry in source {
                if !own.iter().any(|e| e.key == entry.key) {
                    own.push(entry);
                }
            }
        }
    }
    own
}
