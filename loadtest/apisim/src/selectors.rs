//! Label and field selectors, parsed and matched like the real API server.
//!
//! Label selectors follow `k8s.io/apimachinery/pkg/labels` (`=`, `==`, `!=`, `in (..)`, `notin (..)`,
//! `key` exists, `!key`, and the numeric `>`/`<`), including the parser's error messages, which the server
//! returns in a 400 `BadRequest`. Field selectors follow `k8s.io/apimachinery/pkg/fields` (`=`, `==`, `!=`,
//! comma-separated, `\`-escaped values). [`supported_fields`] and [`field_value`] say which fields each
//! resource can be selected on (the real server's field label conversion functions) and what their values are.
//!
//! ```
//! use std::collections::BTreeMap;
//! use apisim::selectors::LabelSelector;
//! let sel = LabelSelector::parse("app in (web,api),!canary").unwrap();
//! let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
//! assert!(sel.matches(&labels));
//! ```

use std::collections::BTreeMap;

use serde_json::Value;
use thiserror::Error;

use crate::validation::{go_quote, label_value_errors, qualified_name_errors};

/// Why a selector string was rejected; `Display` is the real server's message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SelectorError {
    /// The label selector could not be parsed (message as produced by the real parser).
    #[error("{0}")]
    Label(String),
    /// A field selector term has no operator or an unknown one.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector.
        selector: String,
        /// The term that failed.
        term: String,
    },
    /// A field selector value has a bad `\` escape.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// A field selector value has an unescaped `,` or `=` (the real message prints the code point).
    #[error("invalid field selector: unescaped character in value: {0}")]
    UnescapedRune(u32),
}

/// Operator of one label requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelOp {
    /// `key=value` or `key==value` or `key in (..)`.
    In,
    /// `key!=value` or `key notin (..)` (also true when the key is absent).
    NotIn,
    /// `key` (present).
    Exists,
    /// `!key` (absent).
    DoesNotExist,
    /// `key>N` (integer comparison).
    GreaterThan,
    /// `key<N` (integer comparison).
    LessThan,
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub op: LabelOp,
    /// Values (sorted, deduplicated); empty for exists / does-not-exist.
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether the label set satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            LabelOp::In => value.is_some_and(|v| self.values.contains(v)),
            LabelOp::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            LabelOp::Exists => value.is_some(),
            LabelOp::DoesNotExist => value.is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// A parsed label selector: all requirements must hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the string form (`labelSelector` query parameter).
    pub fn parse(input: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(input);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = parser.parse().map_err(SelectorError::Label)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// A selector requiring every `key=value` of the map (like `SelectorFromSet`).
    pub fn from_map(labels: &BTreeMap<String, String>) -> LabelSelector {
        LabelSelector {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    op: LabelOp::In,
                    values: vec![v.clone()],
                })
                .collect(),
        }
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl std::fmt::Display for Requirement {
    /// Canonical text that parses back to the same requirement: `k in (a,b)`, `k notin (a)`, `k`, `!k`,
    /// `k>1`, `k<1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values = self.values.join(",");
        match self.op {
            LabelOp::In => write!(f, "{} in ({values})", self.key),
            LabelOp::NotIn => write!(f, "{} notin ({values})", self.key),
            LabelOp::Exists => write!(f, "{}", self.key),
            LabelOp::DoesNotExist => write!(f, "!{}", self.key),
            LabelOp::GreaterThan => write!(f, "{}>{values}", self.key),
            LabelOp::LessThan => write!(f, "{}<{values}", self.key),
        }
    }
}

impl std::fmt::Display for LabelSelector {
    /// The requirements joined by `,`; parses back to an equal selector.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    Not,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn symbol_token(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::Not,
        b"==" => Tok::DoubleEquals,
        b"=" => Tok::Equals,
        b">" => Tok::GreaterThan,
        b"<" => Tok::LessThan,
        b"!=" => Tok::NotEquals,
        b"(" => Tok::OpenPar,
        _ => return None,
    })
}

/// Splits the selector into tokens; always ends with `End`. Same longest-match rules as the real lexer.
fn lex(input: &str) -> Vec<(Tok, String)> {
    let b = input.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_whitespace(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(b[pos]) {
            let start = pos;
            let mut last: Option<(Tok, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                pos += 1;
                match symbol_token(&b[start..pos]) {
                    Some(tok) => last = Some((tok, pos)),
                    None if last.is_some() => {
                        pos -= 1;
                        break;
                    }
                    None => {}
                }
            }
            match last {
                Some((tok, end)) => {
                    pos = end;
                    out.push((tok, String::from_utf8_lossy(&b[start..end]).into_owned()));
                }
                None => {
                    let found = String::from_utf8_lossy(&b[start..pos]).into_owned();
                    out.push((
                        Tok::Error,
                        format!("error expected: keyword found '{found}'"),
                    ));
                }
            }
        } else {
            let start = pos;
            while pos < b.len() && !is_special(b[pos]) && !is_whitespace(b[pos]) {
                pos += 1;
            }
            let word = String::from_utf8_lossy(&b[start..pos]).into_owned();
            let tok = match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Identifier,
            };
            out.push((tok, word));
        }
    }
}

/// Where a token is read: in a value position `in`/`notin` are plain identifiers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn peek(&self, ctx: Ctx) -> (Tok, String) {
        let (tok, lit) = self
            .tokens
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        (Self::in_ctx(tok, ctx), lit)
    }

    fn next(&mut self, ctx: Ctx) -> (Tok, String) {
        let item = self.peek(ctx);
        self.pos = (self.pos + 1).min(self.tokens.len());
        item
    }

    fn in_ctx(tok: Tok, ctx: Ctx) -> Tok {
        match (ctx, tok) {
            (Ctx::Values, Tok::In | Tok::NotIn) => Tok::Identifier,
            _ => tok,
        }
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        loop {
            let (tok, lit) = self.peek(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::Not => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    out.push(r);
                    let (t, l) = self.next(Ctx::Values);
                    match t {
                        Tok::End => return Ok(out),
                        Tok::Comma => {
                            let (t2, l2) = self.peek(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::Not {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(out),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (mut tok, mut lit) = self.next(Ctx::Values);
        let negated = tok == Tok::Not;
        if negated {
            (tok, lit) = self.next(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let key = lit;
        let key_errs = qualified_name_errors(&key);
        if !key_errs.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(&key),
                key_errs.join("; ")
            ));
        }
        if negated {
            // `!key` is complete by itself; whatever follows must be `,` or the end (checked by the caller).
            return Ok(Requirement {
                key,
                op: LabelOp::DoesNotExist,
                values: Vec::new(),
            });
        }
        let (after, _) = self.peek(Ctx::Values);
        if after == Tok::End || after == Tok::Comma {
            return Ok(Requirement {
                key,
                op: LabelOp::Exists,
                values: Vec::new(),
            });
        }
        let (op_tok, op_lit) = self.next(Ctx::KeyAndOperator);
        let op = match op_tok {
            Tok::In => LabelOp::In,
            Tok::Equals | Tok::DoubleEquals => LabelOp::In,
            Tok::GreaterThan => LabelOp::GreaterThan,
            Tok::LessThan => LabelOp::LessThan,
            Tok::NotIn | Tok::NotEquals => LabelOp::NotIn,
            _ => {
                return Err(format!(
                    "found '{op_lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        };
        let values = if matches!(op_tok, Tok::In | Tok::NotIn) {
            self.value_set()?
        } else {
            vec![self.exact_value()?]
        };
        if matches!(op, LabelOp::GreaterThan | LabelOp::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    return Err(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        go_quote(v)
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let errs = label_value_errors(v);
            if !errs.is_empty() {
                return Err(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    errs.join("; ")
                ));
            }
        }
        Ok(Requirement { key, op, values })
    }

    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.next(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.peek(Ctx::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let set = self.identifier_list()?;
                let (close, _) = self.next(Ctx::Values);
                if close != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Tok::ClosedPar => {
                self.next(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        let insert = |set: &mut Vec<String>, v: String| {
            if let Err(i) = set.binary_search(&v) {
                set.insert(i, v);
            }
        };
        // Bounded by the number of tokens: every iteration consumes one.
        for _ in 0..=self.tokens.len() {
            let (tok, lit) = self.next(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    insert(&mut set, lit);
                    let (t2, l2) = self.peek(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        insert(&mut set, String::new());
                    }
                    let (t2, _) = self.peek(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        insert(&mut set, String::new());
                        return Ok(set);
                    }
                    if t2 == Tok::Comma {
                        insert(&mut set, String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
        Err("found '', expected: ',' or ')'".to_string())
    }

    fn exact_value(&mut self) -> Result<String, String> {
        let (tok, _) = self.peek(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(String::new());
        }
        let (tok, lit) = self.next(Ctx::Values);
        if tok == Tok::Identifier {
            Ok(lit)
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

/// Operator of one field selector term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOp {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One `field op value` term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    /// Field path, e.g. `spec.nodeName`.
    pub field: String,
    /// Operator.
    pub op: FieldOp,
    /// Unescaped value.
    pub value: String,
}

/// A parsed field selector: all terms must hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses the string form (`fieldSelector` query parameter).
    pub fn parse(input: &str) -> Result<FieldSelector, SelectorError> {
        let mut parts = split_unescaped_commas(input);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, raw)) = split_term(&part) else {
                return Err(SelectorError::FieldTerm {
                    selector: input.to_string(),
                    term: part,
                });
            };
            terms.push(FieldTerm {
                field: field.to_string(),
                op,
                value: unescape_value(raw)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms (sorted by their text).
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// The distinct fields the selector uses (to check them against [`supported_fields`]).
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.terms.iter().map(|t| t.field.as_str()).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The value a `field=value` term requires, if any (lets a store narrow a scan, e.g. `metadata.name`).
    pub fn requires_exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.op == FieldOp::Equals)
            .map(|t| t.value.as_str())
    }

    /// Whether every term holds; `lookup` gives a field's value (`None` = field absent, which matches
    /// only `!=`, like the real `fields.Set`).
    pub fn matches(&self, mut lookup: impl FnMut(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let have = lookup(&t.field);
            match t.op {
                FieldOp::Equals => have.as_deref() == Some(t.value.as_str()),
                FieldOp::NotEquals => have.as_deref() != Some(t.value.as_str()),
            }
        })
    }
}

fn split_unescaped_commas(input: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (text, op) in [
            ("!=", FieldOp::NotEquals),
            ("==", FieldOp::Equals),
            ("=", FieldOp::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(text) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

fn unescape_value(raw: &str) -> Result<String, SelectorError> {
    if !raw.contains(['\\', ',', '=']) {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut in_slash = false;
    for c in raw.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => return Err(SelectorError::InvalidEscape(format!("\\{other}"))),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(SelectorError::UnescapedRune(c as u32)),
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(SelectorError::InvalidEscape("\\".to_string()));
    }
    Ok(out)
}

const META_NAMESPACED: &[&str] = &["metadata.name", "metadata.namespace"];
const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
const EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
const SECRET_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "type"];
const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];
const NAMESPACE_FIELDS: &[&str] = &["metadata.name", "status.phase"];
const SERVICE_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.clusterIP",
    "spec.type",
];
const REPLICAS_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.replicas"];
const JOB_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];

/// Fields the real server accepts in a field selector for resource `plural` (anything else is a 400
/// `field label not supported: <field>`). Resources without their own list (including custom resources)
/// accept `metadata.name` and `metadata.namespace`.
pub fn supported_fields(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" => POD_FIELDS,
        "events" => EVENT_FIELDS,
        "secrets" => SECRET_FIELDS,
        "nodes" => NODE_FIELDS,
        "namespaces" => NAMESPACE_FIELDS,
        "services" => SERVICE_FIELDS,
        "replicationcontrollers" | "replicasets" => REPLICAS_FIELDS,
        "jobs" => JOB_FIELDS,
        _ => META_NAMESPACED,
    }
}

/// The `fields.Set` value of `field` for an object of resource `plural`: `None` if the field is not
/// selectable for that resource; otherwise the value as the real server renders it (unset strings are
/// `""`, booleans `true`/`false`, numbers in decimal).
pub fn field_value(plural: &str, obj: &Value, field: &str) -> Option<String> {
    if !supported_fields(plural).contains(&field) {
        return None;
    }
    let text = |path: &[&str]| -> String {
        let mut cur = obj;
        for p in path {
            match cur.get(p) {
                Some(next) => cur = next,
                None => return String::new(),
            }
        }
        match cur {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    let value = match (plural, field) {
        (_, "metadata.name") => text(&["metadata", "name"]),
        (_, "metadata.namespace") => text(&["metadata", "namespace"]),
        ("pods", "spec.hostNetwork") => bool_text(obj.pointer("/spec/hostNetwork")),
        ("pods", "status.podIP") => {
            let ip = text(&["status", "podIP"]);
            if ip.is_empty() {
                obj.pointer("/status/podIPs/0/ip")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            } else {
                ip
            }
        }
        // Accepted by the real field label conversion but absent from the pod's field set: `=` never
        // matches and `!=` always does.
        ("pods", "status.podIPs") => return None,
        ("events", f) if f.starts_with("involvedObject.") => {
            let sub = &f["involvedObject.".len()..];
            let from_regarding = text(&["regarding", sub]);
            let direct = text(&["involvedObject", sub]);
            if direct.is_empty() {
                from_regarding
            } else {
                direct
            }
        }
        ("events", "source") => {
            // `source.component`, else the reporting controller (core JSON name `reportingComponent`).
            first_non_empty([
                text(&["source", "component"]),
                text(&["reportingComponent"]),
                text(&["reportingController"]),
                text(&["deprecatedSource", "component"]),
            ])
        }
        ("events", "reportingComponent") => {
            let component = text(&["reportingComponent"]);
            if component.is_empty() {
                text(&["reportingController"])
            } else {
                component
            }
        }
        ("nodes", "spec.unschedulable") => bool_text(obj.pointer("/spec/unschedulable")),
        ("replicationcontrollers" | "replicasets", "status.replicas")
        | ("jobs", "status.successful") => {
            let key = field.trim_start_matches("status.");
            obj.pointer(&format!("/status/{key}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string()
        }
        (_, f) => {
            let path: Vec<&str> = f.split('.').collect();
            text(&path)
        }
    };
    if value.is_empty()
        && let Some(default) = defaulted_value(plural, field)
    {
        return Some(default.to_string());
    }
    Some(value)
}

/// Values the real server fills in by defaulting (or admission) when a client leaves the field unset, so
/// selecting on them behaves the same whether or not the stored object was defaulted.
fn defaulted_value(plural: &str, field: &str) -> Option<&'static str> {
    Some(match (plural, field) {
        ("pods", "spec.restartPolicy") => "Always",
        ("pods", "spec.schedulerName") => "default-scheduler",
        ("pods", "spec.serviceAccountName") => "default",
        ("pods", "status.phase") => "Pending",
        ("secrets", "type") => "Opaque",
        ("services", "spec.type") => "ClusterIP",
        ("namespaces", "status.phase") => "Active",
        _ => return None,
    })
}

fn first_non_empty<const N: usize>(candidates: [String; N]) -> String {
    candidates
        .into_iter()
        .find(|c| !c.is_empty())
        .unwrap_or_default()
}

fn bool_text(v: Option<&Value>) -> String {
    v.and_then(Value::as_bool).unwrap_or(false).to_string()
}

/// Labels of an object (`metadata.labels`) as a map; non-string values are skipped.
pub fn object_labels(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        match LabelSelector::parse(s) {
            Ok(sel) => sel,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} should not parse, got {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn equality_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(!sel("app=api").matches(&l));
        assert!(sel("app!=api").matches(&l));
        assert!(!sel("app!=web").matches(&l));
        assert!(sel("missing!=x").matches(&l), "!= matches an absent key");
        assert!(sel("app = web , tier=front").matches(&l));
        assert!(!sel("app=web,tier=back").matches(&l));
    }

    #[test]
    fn set_operators() {
        let l = labels(&[("env", "prod")]);
        assert!(sel("env in (prod, staging)").matches(&l));
        assert!(!sel("env in (dev)").matches(&l));
        assert!(sel("env notin (dev)").matches(&l));
        assert!(!sel("env notin (prod)").matches(&l));
        assert!(sel("other notin (x)").matches(&l));
        assert!(!sel("other in (x)").matches(&l));
        // `in` and `notin` are plain values inside a value set.
        assert!(sel("env in (in,notin,prod)").matches(&l));
        assert_eq!(sel("x in (b,a,a)").requirements()[0].values, vec!["a", "b"]);
        assert_eq!(sel("x in ()").requirements()[0].values, vec![""]);
        assert_eq!(
            sel("x in (a,,b)").requirements()[0].values,
            vec!["", "a", "b"]
        );
    }

    #[test]
    fn existence_operators() {
        let l = labels(&[("app", "web")]);
        assert!(sel("app").matches(&l));
        assert!(!sel("nope").matches(&l));
        assert!(sel("!nope").matches(&l));
        assert!(!sel("!app").matches(&l));
        assert!(sel("app,!canary").matches(&l));
        assert!(sel("").matches(&l));
        assert!(sel("").is_empty());
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(&[("n", "5")]);
        assert!(sel("n>3").matches(&l));
        assert!(!sel("n<3").matches(&l));
        assert!(!sel("m>3").matches(&l));
        assert!(err("n>x").contains("for 'Gt', 'Lt' operators, the value must be an integer"));
        // The value is also a label value, so negative numbers are rejected (as by the real parser).
        assert!(err("n>-1").contains("a valid label must be an empty string"));
    }

    #[test]
    fn empty_value_is_allowed() {
        let l = labels(&[("a", "")]);
        assert!(sel("a=").matches(&l));
        assert!(sel("a=,b!=").matches(&l));
    }

    #[test]
    fn parse_errors_have_the_real_messages() {
        assert_eq!(err("app=web,"), "found '', expected: identifier after ','");
        assert_eq!(
            err("app=web x"),
            "found 'x', expected: ',' or 'end of string'"
        );
        assert_eq!(
            err("app web"),
            "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("=web"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("x in (a"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("x in a"),
            "unable to parse requirement: found 'a' expected: '('"
        );
        assert_eq!(err("!x=y"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            err("x ("),
            "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"
        );
        let bad_key = err("bad_key_=x");
        assert!(
            bad_key.starts_with("unable to parse requirement: <nil>: Invalid value: \"bad_key_\": name part must consist of"),
            "{bad_key}"
        );
        let bad_value = err("k=-x");
        assert!(
            bad_value.starts_with("unable to parse requirement: values[0][k]: Invalid value: \"-x\": a valid label must be"),
            "{bad_value}"
        );
    }

    #[test]
    fn lexer_reports_unknown_symbols() {
        // `=!` is not an operator: the lexer takes `=` then `!` starts the value, which is not an identifier.
        assert_eq!(
            err("a=!b"),
            "unable to parse requirement: found '!', expected: identifier"
        );
    }

    #[test]
    fn field_selector_terms() {
        let fs = match FieldSelector::parse("spec.nodeName=node-1,status.phase!=Failed") {
            Ok(fs) => fs,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(fs.fields(), vec!["spec.nodeName", "status.phase"]);
        assert_eq!(fs.requires_exact("spec.nodeName"), Some("node-1"));
        let running = |f: &str| match f {
            "spec.nodeName" => Some("node-1".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        assert!(fs.matches(running));
        let failed = |f: &str| match f {
            "spec.nodeName" => Some("node-1".to_string()),
            "status.phase" => Some("Failed".to_string()),
            _ => None,
        };
        assert!(!fs.matches(failed));
        assert!(FieldSelector::parse("a==b").is_ok_and(|fs| fs.matches(|_| Some("b".to_string()))));
        assert!(FieldSelector::parse("").is_ok_and(|fs| fs.is_empty()));
    }

    #[test]
    fn field_selector_escapes_and_errors() {
        let fs = FieldSelector::parse(r"metadata.name=a\,b\=c\\d");
        assert!(fs.is_ok_and(|fs| fs.terms()[0].value == r"a,b=c\d"));
        assert_eq!(
            FieldSelector::parse("foo").unwrap_err().to_string(),
            "invalid selector: 'foo'; can't understand 'foo'"
        );
        assert_eq!(
            FieldSelector::parse(r"a=\x").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            SelectorError::UnescapedRune('=' as u32)
        );
    }

    #[test]
    fn supported_fields_per_resource() {
        assert!(supported_fields("pods").contains(&"spec.nodeName"));
        assert!(supported_fields("pods").contains(&"status.nominatedNodeName"));
        assert!(!supported_fields("configmaps").contains(&"spec.nodeName"));
        assert!(supported_fields("configmaps").contains(&"metadata.namespace"));
        assert!(supported_fields("secrets").contains(&"type"));
        assert!(supported_fields("nodes").contains(&"spec.unschedulable"));
        assert!(!supported_fields("nodes").contains(&"metadata.namespace"));
        assert!(supported_fields("namespaces").contains(&"status.phase"));
        assert!(supported_fields("events").contains(&"involvedObject.uid"));
        assert!(supported_fields("widgets").contains(&"metadata.name"));
    }

    #[test]
    fn field_values_render_like_the_real_server() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": []},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
        });
        assert_eq!(
            field_value("pods", &pod, "metadata.name").as_deref(),
            Some("p")
        );
        assert_eq!(
            field_value("pods", &pod, "spec.nodeName").as_deref(),
            Some("")
        );
        assert_eq!(
            field_value("pods", &pod, "spec.hostNetwork").as_deref(),
            Some("false")
        );
        assert_eq!(
            field_value("pods", &pod, "status.podIP").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(field_value("pods", &pod, "status.podIPs"), None);
        let by_ips = FieldSelector::parse("status.podIPs=10.0.0.5").unwrap_or_default();
        assert!(
            !by_ips.matches(|f| field_value("pods", &pod, f)),
            "podIPs is not in the field set"
        );
        assert_eq!(
            field_value("pods", &pod, "spec.restartPolicy").as_deref(),
            Some("Always")
        );
        assert_eq!(
            field_value("pods", &pod, "spec.schedulerName").as_deref(),
            Some("default-scheduler")
        );
        assert_eq!(
            field_value("secrets", &json!({}), "type").as_deref(),
            Some("Opaque")
        );
        assert_eq!(
            field_value("services", &json!({}), "spec.type").as_deref(),
            Some("ClusterIP")
        );
        let reported = json!({"reportingComponent": "ctrl"});
        assert_eq!(
            field_value("events", &reported, "source").as_deref(),
            Some("ctrl")
        );
        assert_eq!(
            field_value("pods", &pod, "status.phase").as_deref(),
            Some("Running")
        );
        assert_eq!(field_value("configmaps", &pod, "status.phase"), None);
        let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert_eq!(
            field_value("nodes", &node, "spec.unschedulable").as_deref(),
            Some("true")
        );
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "uid": "u1"},
            "source": {"component": "kubelet"}, "type": "Warning"});
        assert_eq!(
            field_value("events", &ev, "involvedObject.kind").as_deref(),
            Some("Pod")
        );
        assert_eq!(
            field_value("events", &ev, "source").as_deref(),
            Some("kubelet")
        );
        assert_eq!(
            field_value("events", &ev, "type").as_deref(),
            Some("Warning")
        );
        let rs = json!({"metadata": {"name": "r"}, "status": {"replicas": 3}});
        assert_eq!(
            field_value("replicasets", &rs, "status.replicas").as_deref(),
            Some("3")
        );
        let fs = FieldSelector::parse("spec.nodeName=").unwrap_or_default();
        assert!(
            fs.matches(|f| field_value("pods", &pod, f)),
            "unscheduled pods match spec.nodeName="
        );
    }

    #[test]
    fn object_labels_reads_metadata() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": 2}}});
        assert_eq!(object_labels(&obj), labels(&[("a", "1")]));
        assert!(object_labels(&json!({})).is_empty());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9]{0,6}",
            "[a-z]{1,5}\\.example\\.com/[A-Za-z][A-Za-z0-9_.-]{0,5}[A-Za-z0-9]",
        ]
        .prop_filter("not a keyword", |k| k != "in" && k != "notin")
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[A-Za-z0-9]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?"
        ]
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        (
            key(),
            0..6usize,
            proptest::collection::btree_set(value(), 1..4),
            0i64..50,
        )
            .prop_map(|(key, op, values, n)| {
                let values: Vec<String> = values.into_iter().collect();
                match op {
                    0 => Requirement {
                        key,
                        op: LabelOp::In,
                        values,
                    },
                    1 => Requirement {
                        key,
                        op: LabelOp::NotIn,
                        values,
                    },
                    2 => Requirement {
                        key,
                        op: LabelOp::Exists,
                        values: vec![],
                    },
                    3 => Requirement {
                        key,
                        op: LabelOp::DoesNotExist,
                        values: vec![],
                    },
                    4 => Requirement {
                        key,
                        op: LabelOp::GreaterThan,
                        values: vec![n.to_string()],
                    },
                    _ => Requirement {
                        key,
                        op: LabelOp::LessThan,
                        values: vec![n.to_string()],
                    },
                }
            })
    }

    proptest! {
        #[test]
        fn label_parser_never_panics(input in "\\PC{0,40}") {
            let _ = LabelSelector::parse(&input);
        }

        #[test]
        fn label_parser_never_panics_on_selector_alphabet(input in "[a-z!=(),<> in]{0,30}") {
            let _ = LabelSelector::parse(&input);
        }

        #[test]
        fn field_parser_never_panics(input in "\\PC{0,40}") {
            let _ = FieldSelector::parse(&input);
        }

        #[test]
        fn display_round_trips(reqs in proptest::collection::vec(requirement(), 0..5)) {
            let mut reqs = reqs;
            reqs.sort_by(|a, b| a.key.cmp(&b.key));
            let sel = LabelSelector { requirements: reqs };
            let text = sel.to_string();
            let parsed = LabelSelector::parse(&text);
            prop_assert_eq!(parsed.as_ref().ok(), Some(&sel), "{}", text);
        }

        #[test]
        fn a_map_selector_matches_its_own_labels(
            labels in proptest::collection::btree_map(key(), value(), 0..5),
        ) {
            prop_assert!(LabelSelector::from_map(&labels).matches(&labels));
            let text = LabelSelector::from_map(&labels).to_string();
            let parsed = LabelSelector::parse(&text);
            prop_assert!(parsed.is_ok_and(|s| s.matches(&labels)), "{}", text);
        }

        #[test]
        fn in_and_notin_are_complements(req in requirement(), labels in proptest::collection::btree_map(key(), value(), 0..5)) {
            let flipped = match req.op {
                LabelOp::In => LabelOp::NotIn,
                LabelOp::NotIn => LabelOp::In,
                LabelOp::Exists => LabelOp::DoesNotExist,
                LabelOp::DoesNotExist => LabelOp::Exists,
                _ => return Ok(()),
            };
            let other = Requirement { op: flipped, ..req.clone() };
            prop_assert_ne!(req.matches(&labels), other.matches(&labels));
        }
    }
}
