//! A YAML document as a tree of nodes that know their line, built from saphyr-parser's
//! events, with anchors and aliases, merge keys (`<<: *defaults`) and GitLab's
//! `!reference [.job, key]` tags resolved.
//!
//! The tree is built from the event stream with an explicit stack (saphyr's own loader
//! recurses on nesting), so a hostile file meets [`MAX_DEPTH`] before it meets the end
//! of the thread's stack, and [`MAX_NODES`] bounds what aliases may expand to (a
//! "billion laughs" file) before memory does.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

use super::error::{Failure, Located, Problem};

/// Nesting limit of collections (GitLab's default `max_yaml_depth` is 100).
pub const MAX_DEPTH: usize = 100;
/// Limit on the nodes of a document, counting every copy an anchor, an alias or a
/// `!reference` makes. A 4 MiB file of short plain scalars holds about two million; real CI files hold
/// a few thousand.
pub const MAX_NODES: usize = 1_000_000;
/// How deep `!reference` tags may nest in what they refer to (GitLab's limit).
pub const MAX_REFERENCE_DEPTH: usize = 10;

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub line: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// `~`, `null` or nothing, unquoted.
    Null,
    /// Any other scalar, as text; `plain` if unquoted. Scalars are typed where they are
    /// read (a boolean keyword accepts `true`, a script line takes `true` as a command).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
    /// `!reference [.job, key, ...]`, until [`load`] replaces it with what it names.
    Reference(Vec<String>),
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub key: String,
    pub line: usize,
    pub value: Node,
}

impl Node {
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The scalar's text (not for null).
    pub fn as_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Booleans as YAML 1.1 spells them too, since GitLab reads its files with Ruby's
    /// Psych (YAML 1.1): `true`, `yes`, `on` and their opposites.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            Kind::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
                "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
                    Some(false)
                }
                _ => None,
            },
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    fn size(&self) -> usize {
        1 + match &self.kind {
            Kind::Null | Kind::Scalar { .. } | Kind::Reference(_) => 0,
            Kind::Seq(items) => items.iter().map(Node::size).sum(),
            Kind::Map(entries) => entries.iter().map(|e| e.value.size()).sum(),
        }
    }
}

/// Parses `text` into its documents.
pub(super) fn load(text: &str) -> Result<Vec<Node>, Failure> {
    let mut b = Builder::default();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| Failure::Yaml {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_owned(),
        })?;
        b.event(event, span.start.line())?;
    }
    let mut docs = b.docs;
    for doc in &mut docs {
        let root = doc.clone();
        let mut nodes = count(doc)?;
        resolve_references(doc, &root, 0, &mut nodes)?;
    }
    Ok(docs)
}

fn count(doc: &Node) -> Result<usize, Located> {
    let n = doc.size();
    if n > MAX_NODES {
        return Err(Located::at(
            doc.line,
            Problem::TooManyNodes { limit: MAX_NODES },
        ));
    }
    Ok(n)
}

enum Open {
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        anchor: usize,
        /// Keys and values alternate as they arrive.
        parts: Vec<Node>,
    },
    /// A `!reference` tag waiting for its path (the sequence that follows).
    Reference { line: usize, path: Option<Node> },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    /// Nodes made so far, the copies kept for anchors and made by aliases included.
    nodes: usize,
    docs: Vec<Node>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, line: usize) -> Result<(), Located> {
        match event {
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Ok(()),
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == ScalarStyle::Plain && !is_str_tag(tag.as_deref());
                self.check_tag(tag.as_deref(), line)?;
                let kind = if plain && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
                    Kind::Null
                } else {
                    Kind::Scalar {
                        text: text.into_owned(),
                        plain,
                    }
                };
                self.done(Node { line, kind }, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(line, tag.as_deref())?;
                self.stack.push(Open::Seq {
                    line,
                    anchor,
                    items: Vec::new(),
                });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                self.open(line, tag.as_deref())?;
                self.stack.push(Open::Map {
                    line,
                    anchor,
                    parts: Vec::new(),
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Seq {
                    line,
                    anchor,
                    items,
                }) => self.done(
                    Node {
                        line,
                        kind: Kind::Seq(items),
                    },
                    anchor,
                ),
                Some(Open::Map {
                    line,
                    anchor,
                    parts,
                }) => {
                    let entries = mapping(parts)?;
                    self.done(
                        Node {
                            line,
                            kind: Kind::Map(entries),
                        },
                        anchor,
                    )
                }
                // The parser pairs every end with its start, and a `!reference` is
                // closed as soon as its sequence is.
                Some(Open::Reference { .. }) | None => Ok(()),
            },
            Event::Alias(id) => {
                // An anchor is stored once its node is complete: an alias inside its own
                // anchor's node finds nothing.
                let Some(node) = self.anchors.get(&id) else {
                    return Err(Located::at(line, Problem::RecursiveAlias));
                };
                let size = node.size();
                self.nodes = self.nodes.saturating_add(size);
                if self.nodes > MAX_NODES {
                    return Err(Located::at(
                        line,
                        Problem::TooManyNodes { limit: MAX_NODES },
                    ));
                }
                let mut copy = node.clone();
                copy.line = line;
                self.place(copy)
            }
        }
    }

    /// A collection or `!reference` starts: checks the depth and the tag.
    fn open(&mut self, line: usize, tag: Option<&Tag>) -> Result<(), Located> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Located::at(line, Problem::TooDeep { limit: MAX_DEPTH }));
        }
        if is_reference(tag) {
            // Resolved once the document is complete: it may name jobs further down.
            self.stack.push(Open::Reference { line, path: None });
            return Ok(());
        }
        self.check_tag(tag, line)
    }

    fn check_tag(&self, tag: Option<&Tag>, line: usize) -> Result<(), Located> {
        match tag {
            None => Ok(()),
            Some(t) if t.is_yaml_core_schema() => Ok(()),
            Some(t) if is_reference(Some(t)) => Err(Located::at(line, Problem::ReferenceNotList)),
            Some(t) => Err(Located::at(
                line,
                Problem::UnknownTag {
                    tag: format!("{}{}", t.handle, t.suffix),
                },
            )),
        }
    }

    fn done(&mut self, node: Node, anchor: usize) -> Result<(), Located> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Located::at(
                node.line,
                Problem::TooManyNodes { limit: MAX_NODES },
            ));
        }
        if anchor > 0 {
            // The kept copy counts too: anchors nested in anchors would otherwise each
            // keep a copy of everything below them.
            self.nodes = self.nodes.saturating_add(node.size());
            if self.nodes > MAX_NODES {
                return Err(Located::at(
                    node.line,
                    Problem::TooManyNodes { limit: MAX_NODES },
                ));
            }
            self.anchors.insert(anchor, node.clone());
        }
        self.place(node)?;
        // The sequence after a `!reference` tag completes it.
        if let Some(Open::Reference { path: Some(_), .. }) = self.stack.last() {
            if let Some(Open::Reference {
                line,
                path: Some(path),
            }) = self.stack.pop()
            {
                let steps = match path.kind {
                    Kind::Seq(items) => items
                        .into_iter()
                        .map(|n| match n.kind {
                            Kind::Scalar { text, .. } => Some(text),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()
                        .filter(|p| !p.is_empty()),
                    _ => None,
                };
                let Some(steps) = steps else {
                    return Err(Located::at(line, Problem::ReferenceNotList));
                };
                return self.place(Node {
                    line,
                    kind: Kind::Reference(steps),
                });
            }
        }
        Ok(())
    }

    fn place(&mut self, node: Node) -> Result<(), Located> {
        match self.stack.last_mut() {
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { parts, .. }) => parts.push(node),
            Some(Open::Reference { path, .. }) => *path = Some(node),
            None => self.docs.push(node),
        }
        Ok(())
    }
}

fn is_reference(tag: Option<&Tag>) -> bool {
    tag.is_some_and(|t| t.handle == "!" && t.suffix == "reference")
}

fn is_str_tag(tag: Option<&Tag>) -> bool {
    tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str")
}

/// Turns a mapping's alternating keys and values into entries: keys must be scalars and
/// unique; `<<` merges the entries of the mappings it names that the mapping does not
/// set itself (YAML's merge key, which GitLab's YAML 1.1 reader understands), at the
/// place of the `<<`.
fn mapping(parts: Vec<Node>) -> Result<Vec<Entry>, Located> {
    let mut explicit: Vec<Entry> = Vec::with_capacity(parts.len() / 2);
    let mut parts = parts.into_iter();
    // (position in `explicit`, merged mappings) for each `<<`.
    let mut merges: Vec<(usize, Node)> = Vec::new();
    while let (Some(k), Some(value)) = (parts.next(), parts.next()) {
        let key = match k.kind {
            Kind::Scalar { text, plain } => {
                if plain && text == "<<" {
                    merges.push((explicit.len(), value));
                    continue;
                }
                text
            }
            Kind::Null => String::new(),
            Kind::Seq(_) | Kind::Map(_) | Kind::Reference(_) => {
                return Err(Located::at(k.line, Problem::ComplexKey));
            }
        };
        explicit.push(Entry {
            key,
            line: k.line,
            value,
        });
    }
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(explicit.len());
    for e in &explicit {
        if let Some(&line) = first.get(e.key.as_str()) {
            return Err(Located::at(
                e.line,
                Problem::DuplicateKey {
                    key: e.key.clone(),
                    first_line: line,
                },
            ));
        }
        first.insert(&e.key, e.line);
    }
    if merges.is_empty() {
        return Ok(explicit);
    }
    let mut present: std::collections::HashSet<String> =
        explicit.iter().map(|e| e.key.clone()).collect();
    let mut out = Vec::with_capacity(explicit.len());
    let mut explicit = explicit.into_iter().enumerate().peekable();
    for (at, merged) in merges {
        while let Some((_, e)) = explicit.next_if(|(i, _)| *i < at) {
            out.push(e);
        }
        let line = merged.line;
        let sources = match merged.kind {
            Kind::Map(entries) => vec![entries],
            Kind::Seq(items) => items
                .into_iter()
                .map(|n| match n.kind {
                    Kind::Map(entries) => Ok(entries),
                    _ => Err(Located::at(n.line, Problem::BadMerge)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(Located::at(line, Problem::BadMerge)),
        };
        for entries in sources {
            for e in entries {
                if present.insert(e.key.clone()) {
                    out.push(e);
                }
            }
        }
    }
    out.extend(explicit.map(|(_, e)| e));
    Ok(out)
}

/// Replaces every `!reference [.job, key, ...]` with a copy of what it names, looked up
/// from the document's top level; references inside the copy are resolved in turn, up to
/// [`MAX_REFERENCE_DEPTH`].
fn resolve_references(
    node: &mut Node,
    root: &Node,
    depth: usize,
    nodes: &mut usize,
) -> Result<(), Located> {
    match &mut node.kind {
        Kind::Reference(path) => {
            if depth >= MAX_REFERENCE_DEPTH {
                return Err(Located::at(
                    node.line,
                    Problem::ReferenceTooDeep {
                        limit: MAX_REFERENCE_DEPTH,
                    },
                ));
            }
            let mut target = root;
            for (i, step) in path.iter().enumerate() {
                let found = target
                    .as_map()
                    .and_then(|m| m.iter().find(|e| e.key == *step));
                let Some(e) = found else {
                    return Err(Located::at(
                        node.line,
                        Problem::BadReference {
                            path: path.join(", "),
                            missing: path[..=i].join(":"),
                        },
                    ));
                };
                target = &e.value;
            }
            let mut copy = target.clone();
            *nodes = nodes.saturating_add(copy.size());
            if *nodes > MAX_NODES {
                return Err(Located::at(
                    node.line,
                    Problem::TooManyNodes { limit: MAX_NODES },
                ));
            }
            resolve_references(&mut copy, root, depth + 1, nodes)?;
            copy.line = node.line;
            *node = copy;
        }
        Kind::Seq(items) => {
            for item in items {
                resolve_references(item, root, depth, nodes)?;
            }
        }
        Kind::Map(entries) => {
            for e in entries {
                resolve_references(&mut e.value, root, depth, nodes)?;
            }
        }
        Kind::Null | Kind::Scalar { .. } => {}
    }
    Ok(())
}
