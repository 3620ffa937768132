//! Calico's label selector language, as used by IPPool `nodeSelector` and `namespaceSelector`.
//!
//! Grammar (whitespace is spaces and tabs):
//! ```text
//! selector := "" | or
//! or       := and ("||" and)*
//! and      := unary ("&&" unary)*
//! unary    := "!" unary | "(" or ")" | "all()" | "global()" | "has(" KEY ")"
//!           | KEY ("==" | "!=" | "contains" | "starts with" | "ends with") STRING
//!           | KEY ("in" | "not in") "{" [STRING ("," STRING)* [","]] "}"
//! KEY      := [a-zA-Z0-9_./-]{1,512}      STRING := '…' | "…"   (no escapes)
//! ```
//! `!=` and `not in` also match when the label is absent, as in Calico.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// A selector that failed to parse; `offset` is the byte offset in the selector text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid selector at offset {offset}: {reason}")]
pub struct SelectorError {
    pub offset: usize,
    pub reason: String,
}

/// Nesting deeper than this is refused so that hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Calico's longest label name in a selector.
const MAX_LABEL: usize = 512;

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    root: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    All,
    Global,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Selector {
    /// Parses Calico selector text; the empty (or all-blank) string is `all()`.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let mut parser = Parser {
            text,
            pos: 0,
            depth: 0,
        };
        parser.skip_blank();
        if parser.at_end() {
            return Ok(Selector::all());
        }
        let root = parser.or()?;
        parser.skip_blank();
        if !parser.at_end() {
            return Err(parser.error("unexpected characters after the end of the expression"));
        }
        Ok(Selector { root })
    }

    /// The selector matching everything.
    pub fn all() -> Selector {
        Selector { root: Expr::All }
    }

    /// Whether the selector is exactly `all()` (or empty).
    pub fn is_all(&self) -> bool {
        self.root == Expr::All
    }

    /// Evaluates the selector against a label set.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.root.eval(labels)
    }
}

impl Expr {
    fn eval(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k);
        match self {
            Expr::All | Expr::Global => true,
            Expr::Has(k) => labels.contains_key(k),
            Expr::Eq(k, v) => get(k) == Some(v),
            Expr::Ne(k, v) => get(k) != Some(v),
            Expr::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            Expr::NotIn(k, set) => get(k).is_none_or(|v| !set.contains(v)),
            Expr::Contains(k, s) => get(k).is_some_and(|v| v.contains(s.as_str())),
            Expr::StartsWith(k, s) => get(k).is_some_and(|v| v.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => get(k).is_some_and(|v| v.ends_with(s.as_str())),
            Expr::Not(e) => !e.eval(labels),
            Expr::And(es) => es.iter().all(|e| e.eval(labels)),
            Expr::Or(es) => es.iter().any(|e| e.eval(labels)),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_blank(&mut self) {
        let trimmed = self.rest().trim_start_matches([' ', '\t']);
        self.pos = self.text.len() - trimmed.len();
    }

    fn error(&self, reason: &str) -> SelectorError {
        SelectorError {
            offset: self.pos,
            reason: reason.to_owned(),
        }
    }

    /// Consumes `token` after optional blanks.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_blank();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        let mut terms = vec![self.and()?];
        while self.eat("||") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut terms = vec![self.unary()?];
        while self.eat("&&") {
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        let expr = self.unary_inner();
        self.depth -= 1;
        expr
    }

    fn unary_inner(&mut self) -> Result<Expr, SelectorError> {
        self.skip_blank();
        if self.rest().starts_with("!=") {
            return Err(self.error("'!=' needs a label on its left"));
        }
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected ')'"));
            }
            return Ok(inner);
        }
        if self.eat("all(") {
            return self.close_call(Expr::All, "all(");
        }
        if self.eat("global(") {
            return self.close_call(Expr::Global, "global(");
        }
        if self.eat("has(") {
            self.skip_blank();
            let key = self.key()?;
            if key.is_empty() {
                return Err(self.error("expected a label name in has(…)"));
            }
            return self.close_call(Expr::Has(key), "has(");
        }
        let key = self.key()?;
        if key.is_empty() {
            return Err(self.error("expected a label name, '(' , '!', all(), global() or has(…)"));
        }
        self.comparison(key)
    }

    fn close_call(&mut self, expr: Expr, call: &str) -> Result<Expr, SelectorError> {
        if self.eat(")") {
            Ok(expr)
        } else {
            Err(self.error(&format!("no closing ')' after {call}")))
        }
    }

    fn comparison(&mut self, key: String) -> Result<Expr, SelectorError> {
        self.skip_blank();
        if self.eat("==") {
            return Ok(Expr::Eq(key, self.string()?));
        }
        if self.eat("!=") {
            return Ok(Expr::Ne(key, self.string()?));
        }
        if self.eat("contains") {
            return Ok(Expr::Contains(key, self.string()?));
        }
        if self.eat("starts") {
            if !self.eat("with") {
                return Err(self.error("expected 'with' after 'starts'"));
            }
            return Ok(Expr::StartsWith(key, self.string()?));
        }
        if self.eat("ends") {
            if !self.eat("with") {
                return Err(self.error("expected 'with' after 'ends'"));
            }
            return Ok(Expr::EndsWith(key, self.string()?));
        }
        if self.eat("not") {
            if !self.eat("in") {
                return Err(self.error("expected 'in' after 'not'"));
            }
            return Ok(Expr::NotIn(key, self.set()?));
        }
        if self.eat("in") {
            return Ok(Expr::In(key, self.set()?));
        }
        Err(self.error(&format!(
            "expected an operator (==, !=, in, not in, contains, starts with, ends with) after label '{key}'"
        )))
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        let len = self
            .rest()
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
            .count();
        if len > MAX_LABEL {
            return Err(self.error(&format!("label name longer than {MAX_LABEL} characters")));
        }
        let key = self.rest()[..len].to_owned();
        self.pos += len;
        Ok(key)
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        self.skip_blank();
        let quote = match self.rest().chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(self.error("expected a quoted string")),
        };
        let body = &self.rest()[1..];
        let Some(end) = body.find(quote) else {
            return Err(self.error("unterminated string"));
        };
        let value = body[..end].to_owned();
        self.pos += end + 2;
        Ok(value)
    }

    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        if !self.eat("{") {
            return Err(self.error("expected '{' to start a set of values"));
        }
        let mut values = Vec::new();
        if self.eat("}") {
            return Ok(values);
        }
        loop {
            values.push(self.string()?);
            if self.eat("}") {
                return Ok(values);
            }
            if !self.eat(",") {
                return Err(self.error("expected ',' or '}' in a set of values"));
            }
            // Calico allows a trailing comma: {'a', 'b',}.
            if self.eat("}") {
                return Ok(values);
            }
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

fn write_set(f: &mut fmt::Formatter<'_>, set: &[String]) -> fmt::Result {
    f.write_str("{")?;
    for (i, v) in set.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}", quoted(v))?;
    }
    f.write_str("}")
}

/// Calico strings have no escapes, so pick the quote the value does not contain.
fn quoted(v: &str) -> String {
    if v.contains('"') {
        format!("'{v}'")
    } else {
        format!("\"{v}\"")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Global => f.write_str("global()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", quoted(v)),
            Expr::Ne(k, v) => write!(f, "{k} != {}", quoted(v)),
            Expr::In(k, set) => {
                write!(f, "{k} in ")?;
                write_set(f, set)
            }
            Expr::NotIn(k, set) => {
                write!(f, "{k} not in ")?;
                write_set(f, set)
            }
            Expr::Contains(k, v) => write!(f, "{k} contains {}", quoted(v)),
            Expr::StartsWith(k, v) => write!(f, "{k} starts with {}", quoted(v)),
            Expr::EndsWith(k, v) => write!(f, "{k} ends with {}", quoted(v)),
            Expr::Not(e) => write!(f, "!{e}"),
            Expr::And(es) | Expr::Or(es) => {
                let op = if matches!(self, Expr::And(_)) {
                    " && "
                } else {
                    " || "
                };
                f.write_str("(")?;
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_and_all() {
        assert!(Selector::parse("").unwrap().is_all());
        assert!(Selector::parse("  ").unwrap().is_all());
        assert!(Selector::parse("all()").unwrap().is_all());
        assert!(!Selector::parse("!all()").unwrap().is_all());
        assert!(!Selector::parse("!all()").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn operators() {
        let l = labels(&[("zone", "eu-west-1a"), ("role", "worker")]);
        let t = |s: &str| Selector::parse(s).unwrap().matches(&l);
        assert!(t("zone == 'eu-west-1a'"));
        assert!(t("zone == \"eu-west-1a\""));
        assert!(!t("zone != 'eu-west-1a'"));
        assert!(t("missing != 'x'"));
        assert!(t("role in {'worker', 'edge'}"));
        assert!(!t("role not in {'worker'}"));
        assert!(t("missing not in {'worker'}"));
        assert!(!t("missing in {}"));
        assert!(t("zone contains 'west'"));
        assert!(t("zone starts with 'eu-'"));
        assert!(t("zone ends   with '1a'"));
        assert!(t("has(role) && !has(gpu)"));
        assert!(t("has(gpu) || role == 'worker'"));
        assert!(!t("!(has(gpu) || role == 'worker')"));
        assert!(t("global()"));
    }

    #[test]
    fn errors_name_the_offset() {
        for bad in [
            "zone = 'a'",
            "zone == 'a",
            "has(zone",
            "(has(a)",
            "has(a) &&",
            "zone",
            "zone in {'a' 'b'}",
            "a == 'b' c",
            "all(",
            "zone in {,}",
            "zone in {'a',,}",
        ] {
            let err = Selector::parse(bad).unwrap_err();
            assert!(err.offset <= bad.len(), "{bad}: {err}");
        }
    }

    #[test]
    fn sets_may_end_with_a_comma_and_labels_have_calicos_limit() {
        let l = labels(&[("zone", "b")]);
        assert!(Selector::parse("zone in {'a', 'b',}").unwrap().matches(&l));
        assert!(Selector::parse("zone not in {'a',}").unwrap().matches(&l));
        let longest = "k".repeat(MAX_LABEL);
        assert!(Selector::parse(&format!("has({longest})")).is_ok());
        assert!(Selector::parse(&format!("{longest} == 'v'")).is_ok());
        let err = Selector::parse(&format!("has({longest}k)")).unwrap_err();
        assert_eq!(err.offset, 4, "{err}");
        assert!(Selector::parse(&format!("{longest}k == 'v'")).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}all(){}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Selector::parse(&deep).is_err());
        let bangs = format!("{}all()", "!".repeat(10_000));
        assert!(Selector::parse(&bangs).is_err());
    }

    #[test]
    fn display_is_normalised_and_reparses() {
        let s = Selector::parse("a=='x'&&b in {'1','2'}||!has(c)").unwrap();
        let shown = s.to_string();
        assert_eq!(shown, "((a == \"x\" && b in {\"1\", \"2\"}) || !has(c))");
        assert_eq!(Selector::parse(&shown).unwrap(), s);
    }
}
