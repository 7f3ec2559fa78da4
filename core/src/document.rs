//! The document: canvas, background and the object → component → shape tree.

use serde::{Deserialize, Serialize};

use crate::color::Rgba;
use crate::component::Component;
use crate::ids::{NodeId, NodeMeta};
use crate::object::{Object, ObjectChild};
use crate::shape::Shape;

/// Where a node sits in the tree (indices into the child lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodePath {
    /// `objects[o]`.
    Object(usize),
    /// `objects[o].children[c]` (a component or a direct shape).
    Child(usize, usize),
    /// `objects[o].children[c]` is a component and this is its `shapes[s]`.
    ComponentShape(usize, usize, usize),
}

/// Kind of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// Top-level semantic object.
    Object,
    /// Sub-group inside an object.
    Component,
    /// Primitive.
    Shape,
}

/// A shape together with its effective (inherited) state.
#[derive(Clone, Copy, Debug)]
pub struct ShapeEntry<'a> {
    /// The shape.
    pub shape: &'a Shape,
    /// Locked itself or through an ancestor.
    pub locked: bool,
    /// Hidden itself or through an ancestor.
    pub hidden: bool,
}

/// A vector document.
///
/// Coordinates are document units: x right, y down, origin at the top-left corner of the
/// canvas (the SVG view box origin is subtracted on import).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Canvas width in document units (= view box width).
    pub width: f64,
    /// Canvas height in document units (= view box height).
    pub height: f64,
    /// Background colour (alpha 0: transparent).
    pub background: Rgba,
    /// Objects in paint order, back to front.
    pub objects: Vec<Object>,
    next_id: u64,
}

impl Document {
    /// An empty document with a transparent background.
    pub fn new(width: f64, height: f64) -> Self {
        Self {
            width,
            height,
            background: Rgba::TRANSPARENT,
            objects: Vec::new(),
            next_id: 1,
        }
    }

    /// Allocates a fresh id (never handed out before by this document).
    pub fn alloc_id(&mut self) -> NodeId {
        let id = NodeId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Makes sure future [`Self::alloc_id`] calls never return `id` or anything below it.
    pub fn reserve_id(&mut self, id: NodeId) {
        self.next_id = self.next_id.max(id.0 + 1);
    }

    /// Adds `offset` to every node id (and to the next id to allocate), so documents made
    /// independently (one per particle) have disjoint ids.
    pub fn offset_ids(&mut self, offset: u64) {
        let shift = |m: &mut NodeMeta| m.id = NodeId(m.id.0 + offset);
        for o in &mut self.objects {
            shift(&mut o.meta);
            for c in &mut o.children {
                match c {
                    ObjectChild::Component(comp) => {
                        shift(&mut comp.meta);
                        comp.shapes.iter_mut().for_each(|s| shift(&mut s.meta));
                    }
                    ObjectChild::Shape(s) => shift(&mut s.meta),
                }
            }
        }
        self.next_id += offset;
    }

    /// Where the node `id` is, if it exists.
    pub fn locate(&self, id: NodeId) -> Option<NodePath> {
        for (o, object) in self.objects.iter().enumerate() {
            if object.meta.id == id {
                return Some(NodePath::Object(o));
            }
            for (c, child) in object.children.iter().enumerate() {
                if child.meta().id == id {
                    return Some(NodePath::Child(o, c));
                }
                if let ObjectChild::Component(comp) = child
                    && let Some(s) = comp.shapes.iter().position(|s| s.meta.id == id)
                {
                    return Some(NodePath::ComponentShape(o, c, s));
                }
            }
        }
        None
    }

    /// Kind of the node `id`.
    pub fn kind_of(&self, id: NodeId) -> Option<NodeKind> {
        Some(match self.locate(id)? {
            NodePath::Object(_) => NodeKind::Object,
            NodePath::Child(o, c) => match &self.objects[o].children[c] {
                ObjectChild::Component(_) => NodeKind::Component,
                ObjectChild::Shape(_) => NodeKind::Shape,
            },
            NodePath::ComponentShape(..) => NodeKind::Shape,
        })
    }

    /// Id, name and flags of the node `id`.
    pub fn meta(&self, id: NodeId) -> Option<&NodeMeta> {
        Some(match self.locate(id)? {
            NodePath::Object(o) => &self.objects[o].meta,
            NodePath::Child(o, c) => self.objects[o].children[c].meta(),
            NodePath::ComponentShape(o, c, s) => match &self.objects[o].children[c] {
                ObjectChild::Component(comp) => &comp.shapes[s].meta,
                ObjectChild::Shape(_) => return None,
            },
        })
    }

    /// Mutable id, name and flags of the node `id`.
    pub fn meta_mut(&mut self, id: NodeId) -> Option<&mut NodeMeta> {
        Some(match self.locate(id)? {
            NodePath::Object(o) => &mut self.objects[o].meta,
            NodePath::Child(o, c) => match &mut self.objects[o].children[c] {
                ObjectChild::Component(comp) => &mut comp.meta,
                ObjectChild::Shape(s) => &mut s.meta,
            },
            NodePath::ComponentShape(o, c, s) => match &mut self.objects[o].children[c] {
                ObjectChild::Component(comp) => &mut comp.shapes[s].meta,
                ObjectChild::Shape(_) => return None,
            },
        })
    }

    /// The shape `id`.
    pub fn shape(&self, id: NodeId) -> Option<&Shape> {
        match self.locate(id)? {
            NodePath::Child(o, c) => match &self.objects[o].children[c] {
                ObjectChild::Shape(s) => Some(s),
                ObjectChild::Component(_) => None,
            },
            NodePath::ComponentShape(o, c, s) => match &self.objects[o].children[c] {
                ObjectChild::Component(comp) => comp.shapes.get(s),
                ObjectChild::Shape(_) => None,
            },
            NodePath::Object(_) => None,
        }
    }

    /// The shape `id`, mutably.
    pub fn shape_mut(&mut self, id: NodeId) -> Option<&mut Shape> {
        match self.locate(id)? {
            NodePath::Child(o, c) => match &mut self.objects[o].children[c] {
                ObjectChild::Shape(s) => Some(s),
                ObjectChild::Component(_) => None,
            },
            NodePath::ComponentShape(o, c, s) => match &mut self.objects[o].children[c] {
                ObjectChild::Component(comp) => comp.shapes.get_mut(s),
                ObjectChild::Shape(_) => None,
            },
            NodePath::Object(_) => None,
        }
    }

    /// The component `id`.
    pub fn component(&self, id: NodeId) -> Option<&Component> {
        match self.locate(id)? {
            NodePath::Child(o, c) => match &self.objects[o].children[c] {
                ObjectChild::Component(comp) => Some(comp),
                ObjectChild::Shape(_) => None,
            },
            _ => None,
        }
    }

    /// The object `id`.
    pub fn object(&self, id: NodeId) -> Option<&Object> {
        match self.locate(id)? {
            NodePath::Object(o) => self.objects.get(o),
            _ => None,
        }
    }

    /// Every shape in paint order with its effective locked/hidden state.
    pub fn shape_entries(&self) -> Vec<ShapeEntry<'_>> {
        let mut out = Vec::new();
        for object in &self.objects {
            collect_object(object, false, false, &mut out);
        }
        out
    }

    /// The shapes of the subtree rooted at `node` (in paint order, effective state), or
    /// `None` if there is no such node.
    pub fn shape_entries_of(&self, node: NodeId) -> Option<Vec<ShapeEntry<'_>>> {
        let mut out = Vec::new();
        match self.locate(node)? {
            NodePath::Object(o) => collect_object(&self.objects[o], false, false, &mut out),
            NodePath::Child(o, c) => {
                let obj = &self.objects[o];
                collect_child(&obj.children[c], obj.meta.locked, obj.meta.hidden, &mut out);
            }
            NodePath::ComponentShape(o, c, s) => {
                let obj = &self.objects[o];
                let ObjectChild::Component(comp) = &obj.children[c] else {
                    return None;
                };
                let shape = &comp.shapes[s];
                out.push(ShapeEntry {
                    shape,
                    locked: obj.meta.locked || comp.meta.locked || shape.meta.locked,
                    hidden: obj.meta.hidden || comp.meta.hidden || shape.meta.hidden,
                });
            }
        }
        Some(out)
    }

    /// Number of shapes in the document.
    pub fn shape_count(&self) -> usize {
        self.objects.iter().map(|o| o.shapes().count()).sum()
    }

    /// All node ids in tree order (objects, then their children, depth first).
    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut ids = Vec::new();
        for o in &self.objects {
            ids.push(o.meta.id);
            for c in &o.children {
                ids.push(c.meta().id);
                if let ObjectChild::Component(comp) = c {
                    ids.extend(comp.shapes.iter().map(|s| s.meta.id));
                }
            }
        }
        ids
    }

    /// A human-readable tree summary: canvas, then one line per object and component with
    /// shape counts and flags.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let flags = |m: &NodeMeta| {
            let mut f = String::new();
            if m.locked {
                f.push_str(" [locked]");
            }
            if m.hidden {
                f.push_str(" [hidden]");
            }
            f
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "canvas {}x{}, {} objects, {} shapes",
            fmt_num(self.width),
            fmt_num(self.height),
            self.objects.len(),
            self.shape_count()
        );
        for o in &self.objects {
            let _ = writeln!(
                s,
                "object \"{}\" ({} shapes){}",
                o.meta.name,
                o.shapes().count(),
                flags(&o.meta)
            );
            let direct = o
                .children
                .iter()
                .filter(|c| matches!(c, ObjectChild::Shape(_)))
                .count();
            if direct > 0 {
                let _ = writeln!(s, "  {direct} direct shapes");
            }
            for c in &o.children {
                if let ObjectChild::Component(comp) = c {
                    let _ = writeln!(
                        s,
                        "  component \"{}\" ({} shapes){}",
                        comp.meta.name,
                        comp.shapes.len(),
                        flags(&comp.meta)
                    );
                }
            }
        }
        s
    }

    /// Checks that every number is finite, every subpath is well formed, the canvas has a
    /// positive finite size and ids are unique; the error names the offending node.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.width.is_finite()
            && self.height.is_finite()
            && self.width > 0.0
            && self.height > 0.0)
        {
            return Err(format!(
                "canvas size {}x{} is not positive and finite",
                self.width, self.height
            ));
        }
        if !self.background.is_finite() {
            return Err("background colour is not finite".into());
        }
        let mut seen = std::collections::HashSet::new();
        for id in self.node_ids() {
            if !seen.insert(id) {
                return Err(format!("node id {id} is used twice"));
            }
            if id.0 >= self.next_id {
                return Err(format!("node id {id} was not allocated by the document"));
            }
        }
        for e in self.shape_entries() {
            let s = e.shape;
            if !s.is_finite() {
                return Err(format!(
                    "shape {} \"{}\" has a non-finite coordinate, width or colour",
                    s.meta.id, s.meta.name
                ));
            }
            if let Some(bad) = s.subpaths.iter().position(|p| !p.is_well_formed(s.kind)) {
                return Err(format!(
                    "shape {} \"{}\": subpath {bad} has a point count that does not fit {:?}",
                    s.meta.id, s.meta.name, s.kind
                ));
            }
        }
        Ok(())
    }
}

fn collect_object<'a>(
    object: &'a Object,
    locked: bool,
    hidden: bool,
    out: &mut Vec<ShapeEntry<'a>>,
) {
    let locked = locked || object.meta.locked;
    let hidden = hidden || object.meta.hidden;
    for child in &object.children {
        collect_child(child, locked, hidden, out);
    }
}

fn collect_child<'a>(
    child: &'a ObjectChild,
    locked: bool,
    hidden: bool,
    out: &mut Vec<ShapeEntry<'a>>,
) {
    match child {
        ObjectChild::Shape(shape) => out.push(ShapeEntry {
            shape,
            locked: locked || shape.meta.locked,
            hidden: hidden || shape.meta.hidden,
        }),
        ObjectChild::Component(comp) => {
            let locked = locked || comp.meta.locked;
            let hidden = hidden || comp.meta.hidden;
            for shape in &comp.shapes {
                out.push(ShapeEntry {
                    shape,
                    locked: locked || shape.meta.locked,
                    hidden: hidden || shape.meta.hidden,
                });
            }
        }
    }
}

/// Formats a number without trailing zeros.
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}
