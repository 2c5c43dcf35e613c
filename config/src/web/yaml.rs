//! A small YAML tree with positions, built from granit-parser's events: just what the web
//! configuration needs (mappings, sequences, scalars), so the loader can walk it by hand and
//! name the line and column of every problem, like the TOML loader does.
//!
//! Invariants:
//! - One document at most; aliases (`*name`) are refused rather than expanded, so no input
//!   can make the tree larger than the text.
//! - A scalar keeps its text and whether it was written plain (unquoted): only a plain
//!   scalar can be `null`, `true` or `false`.

use granit_parser::{Event, Parser, ScalarStyle};

use crate::load::Location;

/// A node and where it starts.
#[derive(Debug)]
pub(crate) struct Node {
    pub value: Value,
    pub at: Location,
}

#[derive(Debug)]
pub(crate) enum Value {
    Scalar {
        text: String,
        plain: bool,
    },
    /// Items in file order (`cipher_suites`, `curve_preferences`, `client_allowed_sans`).
    Seq(Vec<Node>),
    /// Pairs in file order (duplicates are the loader's to report).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A plain `~`, `null` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What the node is, for "expected …, found …" messages.
    pub fn describe(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "nothing (null)",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A syntax problem: where (when the parser knows) and what.
pub(crate) type SyntaxError = (Option<Location>, String);

/// Parses `src`; `None` for a file without a document (empty or comments only).
pub(crate) fn parse(src: &str) -> Result<Option<Node>, SyntaxError> {
    let mut b = Builder::default();
    for next in Parser::new_from_str(src) {
        let (event, span) = next.map_err(|e| {
            let m = e.marker();
            (Some(location(m.line(), m.col())), e.info())
        })?;
        b.event(event, location(span.start.line(), span.start.col()))?;
    }
    Ok(b.root)
}

fn location(line: usize, col: usize) -> Location {
    Location {
        line: line.max(1),
        column: col + 1,
    }
}

enum Frame {
    Seq(Location, Vec<Node>),
    Map(Location, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, at: Location) -> Result<(), SyntaxError> {
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err((
                        Some(at),
                        "expected one YAML document, found a second".into(),
                    ));
                }
            }
            Event::Alias(_) | Event::UnresolvedAlias(_) => {
                return Err((
                    Some(at),
                    "aliases (*name) are not supported here; write the value out".into(),
                ));
            }
            Event::Scalar(text, style, ..) => {
                let plain = style == ScalarStyle::Plain;
                let value = Value::Scalar {
                    text: text.into_owned(),
                    plain,
                };
                self.push(Node { value, at });
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(at, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Frame::Map(at, Vec::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(at, items)) => Node {
                        value: Value::Seq(items),
                        at,
                    },
                    Some(Frame::Map(at, pairs, _)) => Node {
                        value: Value::Map(pairs),
                        at,
                    },
                    None => return Err((Some(at), "unbalanced YAML structure".into())),
                };
                self.push(node);
            }
            _ => {}
        }
        Ok(())
    }

    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, pairs, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => pairs.push((key, node)),
            },
        }
    }
}
