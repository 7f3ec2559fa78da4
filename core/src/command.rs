//! Edit commands: every mutation of a document is a serialisable [`Command`].
//!
//! [`Document::apply`] is the raw mutation (validates first, so a failed command changes
//! nothing); [`crate::history::Editor::apply`] is the entry point the UI uses, which also
//! records undo steps.

use kurbo::{Affine, Vec2};
use serde::{Deserialize, Serialize};

use crate::color::Rgba;
use crate::component::Component;
use crate::document::{Document, NodeKind, NodePath};
use crate::ids::NodeId;
use crate::object::{Object, ObjectChild};
use crate::paint::Paint;
use crate::params::{ParamError, ParamView};
use crate::shape::{Shape, Stroke, Subpath};

/// One edit. Plain data: the UI builds these and sends them to the editor.
// Commands are short-lived messages; boxing the large payloads would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command")]
pub enum Command {
    /// Inserts an object at `index` (end if `None`). All ids in it are replaced by fresh ones.
    AddObject {
        /// The object.
        object: Object,
        /// Position among the objects.
        index: Option<usize>,
    },
    /// Inserts a component into the object `object`. Ids are replaced by fresh ones.
    AddComponent {
        /// Parent object.
        object: NodeId,
        /// The component.
        component: Component,
        /// Position among the object's children.
        index: Option<usize>,
    },
    /// Inserts a shape into an object or component. Its id is replaced by a fresh one.
    AddShape {
        /// Parent object or component.
        parent: NodeId,
        /// The shape.
        shape: Shape,
        /// Position among the parent's children.
        index: Option<usize>,
    },
    /// Deletes nodes (with their subtrees).
    Delete {
        /// Nodes to delete.
        ids: Vec<NodeId>,
    },
    /// Moves every shape of the given subtrees by `(dx, dy)` document units.
    Translate {
        /// Nodes to move.
        ids: Vec<NodeId>,
        /// Horizontal offset.
        dx: f64,
        /// Vertical offset.
        dy: f64,
    },
    /// Maps every shape of the given subtrees through an affine transform
    /// (coefficients `[a, b, c, d, e, f]` as in SVG `matrix(…)`).
    Transform {
        /// Nodes to transform.
        ids: Vec<NodeId>,
        /// The matrix.
        matrix: [f64; 6],
    },
    /// Replaces the control points of a shape.
    SetPoints {
        /// The shape.
        shape: NodeId,
        /// New subpaths (must fit the shape's kind).
        subpaths: Vec<Subpath>,
    },
    /// Sets (or removes) the fill of a shape.
    SetFill {
        /// The shape.
        shape: NodeId,
        /// New fill, `None` for no fill.
        paint: Option<Paint>,
    },
    /// Sets the stroke paint of a shape (adds a 1-unit stroke if there was none).
    SetStrokePaint {
        /// The shape.
        shape: NodeId,
        /// New stroke paint.
        paint: Paint,
    },
    /// Sets (or removes) the whole stroke of a shape.
    SetStroke {
        /// The shape.
        shape: NodeId,
        /// New stroke, `None` for no stroke.
        stroke: Option<Stroke>,
    },
    /// Sets the stroke width of a stroked shape.
    SetStrokeWidth {
        /// The shape.
        shape: NodeId,
        /// Width in document units (≥ 0).
        width: f64,
    },
    /// Renames a node.
    Rename {
        /// The node.
        id: NodeId,
        /// New name.
        name: String,
    },
    /// Moves a node to `index` within its parent's list (paint order).
    Reorder {
        /// The node.
        id: NodeId,
        /// New position.
        index: usize,
    },
    /// Moves shapes of one object into a new component (inserted where the first was).
    Group {
        /// Shapes to group (all in the same object).
        ids: Vec<NodeId>,
        /// Name of the new component.
        name: String,
    },
    /// Dissolves a component: its shapes become direct shapes of the object (inheriting
    /// the component's locked/hidden flags).
    Ungroup {
        /// The component.
        id: NodeId,
    },
    /// Locks or unlocks a node.
    SetLocked {
        /// The node.
        id: NodeId,
        /// New state.
        locked: bool,
    },
    /// Hides or shows a node.
    SetHidden {
        /// The node.
        id: NodeId,
        /// New state.
        hidden: bool,
    },
    /// Sets the background colour.
    SetBackground {
        /// New colour.
        color: Rgba,
    },
    /// Writes an optimiser result back (trainable slots only).
    ReplaceFromOptimiser {
        /// The optimised parameters.
        view: ParamView,
    },
}

impl Command {
    /// Number of command kinds (for coverage reports).
    pub const KINDS: usize = 19;

    /// Short name of the command kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Command::AddObject { .. } => "add-object",
            Command::AddComponent { .. } => "add-component",
            Command::AddShape { .. } => "add-shape",
            Command::Delete { .. } => "delete",
            Command::Translate { .. } => "translate",
            Command::Transform { .. } => "transform",
            Command::SetPoints { .. } => "set-points",
            Command::SetFill { .. } => "set-fill",
            Command::SetStrokePaint { .. } => "set-stroke-paint",
            Command::SetStroke { .. } => "set-stroke",
            Command::SetStrokeWidth { .. } => "set-stroke-width",
            Command::Rename { .. } => "rename",
            Command::Reorder { .. } => "reorder",
            Command::Group { .. } => "group",
            Command::Ungroup { .. } => "ungroup",
            Command::SetLocked { .. } => "set-locked",
            Command::SetHidden { .. } => "set-hidden",
            Command::SetBackground { .. } => "set-background",
            Command::ReplaceFromOptimiser { .. } => "replace-from-optimiser",
        }
    }
}

/// What a successful command did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Ids of nodes the command created (adds, group), outermost first.
    pub created: Vec<NodeId>,
}

/// Why a command was refused (the document is unchanged).
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EditError {
    /// No node has this id.
    #[error("no node with id {0}")]
    UnknownNode(NodeId),
    /// The node exists but has the wrong kind for this command.
    #[error("node {id} is a {found:?}, expected {expected}")]
    WrongKind {
        /// The node.
        id: NodeId,
        /// Its kind.
        found: NodeKind,
        /// What the command needs.
        expected: &'static str,
    },
    /// An index is past the end of the list.
    #[error("index {index} is out of range (list has {len} entries)")]
    Index {
        /// The index.
        index: usize,
        /// List length.
        len: usize,
    },
    /// A value is invalid (NaN, negative width, malformed subpath…).
    #[error("invalid value: {0}")]
    Invalid(String),
    /// The shapes to group are not all in one object.
    #[error("shapes to group must all belong to the same object")]
    MixedParents,
    /// A parameter view could not be applied.
    #[error(transparent)]
    Params(#[from] ParamError),
}

fn finite_paint(p: &Paint) -> Result<(), EditError> {
    if p.is_finite() {
        Ok(())
    } else {
        Err(EditError::Invalid("paint has a non-finite number".into()))
    }
}

impl Document {
    fn require(&self, id: NodeId) -> Result<NodePath, EditError> {
        self.locate(id).ok_or(EditError::UnknownNode(id))
    }

    fn require_shape(&mut self, id: NodeId) -> Result<&mut Shape, EditError> {
        let kind = self.kind_of(id).ok_or(EditError::UnknownNode(id))?;
        self.shape_mut(id).ok_or(EditError::WrongKind {
            id,
            found: kind,
            expected: "a shape",
        })
    }

    fn refresh_shape_ids(&mut self, shape: &mut Shape) {
        shape.meta.id = self.alloc_id();
    }

    fn refresh_component_ids(&mut self, comp: &mut Component) {
        comp.meta.id = self.alloc_id();
        for s in &mut comp.shapes {
            self.refresh_shape_ids(s);
        }
    }

    /// Ids of all shapes in the subtrees of `ids` (each shape once).
    fn shapes_under(&self, ids: &[NodeId]) -> Result<Vec<NodeId>, EditError> {
        let mut out = Vec::new();
        for &id in ids {
            let entries = self
                .shape_entries_of(id)
                .ok_or(EditError::UnknownNode(id))?;
            for e in entries {
                if !out.contains(&e.shape.meta.id) {
                    out.push(e.shape.meta.id);
                }
            }
        }
        Ok(out)
    }

    /// Applies one command. On error the document is unchanged.
    pub fn apply(&mut self, command: Command) -> Result<Outcome, EditError> {
        let mut outcome = Outcome::default();
        match command {
            Command::AddObject { mut object, index } => {
                let len = self.objects.len();
                let index = index.unwrap_or(len);
                if index > len {
                    return Err(EditError::Index { index, len });
                }
                check_object(&object)?;
                object.meta.id = self.alloc_id();
                for child in &mut object.children {
                    match child {
                        ObjectChild::Component(c) => self.refresh_component_ids(c),
                        ObjectChild::Shape(s) => self.refresh_shape_ids(s),
                    }
                }
                outcome.created.push(object.meta.id);
                self.objects.insert(index, object);
            }
            Command::AddComponent {
                object,
                mut component,
                index,
            } => {
                let o = self.object_index(object)?;
                let len = self.objects[o].children.len();
                let index = index.unwrap_or(len);
                if index > len {
                    return Err(EditError::Index { index, len });
                }
                for s in &component.shapes {
                    check_shape(s)?;
                }
                self.refresh_component_ids(&mut component);
                outcome.created.push(component.meta.id);
                self.objects[o]
                    .children
                    .insert(index, ObjectChild::Component(component));
            }
            Command::AddShape {
                parent,
                mut shape,
                index,
            } => {
                check_shape(&shape)?;
                let path = self.require(parent)?;
                match (path, self.kind_of(parent)) {
                    (NodePath::Object(o), _) => {
                        let len = self.objects[o].children.len();
                        let index = index.unwrap_or(len);
                        if index > len {
                            return Err(EditError::Index { index, len });
                        }
                        self.refresh_shape_ids(&mut shape);
                        outcome.created.push(shape.meta.id);
                        self.objects[o]
                            .children
                            .insert(index, ObjectChild::Shape(shape));
                    }
                    (NodePath::Child(o, c), Some(NodeKind::Component)) => {
                        let len = match &self.objects[o].children[c] {
                            ObjectChild::Component(comp) => comp.shapes.len(),
                            ObjectChild::Shape(_) => return Err(EditError::UnknownNode(parent)),
                        };
                        let index = index.unwrap_or(len);
                        if index > len {
                            return Err(EditError::Index { index, len });
                        }
                        let new_id = self.alloc_id();
                        let ObjectChild::Component(comp) = &mut self.objects[o].children[c] else {
                            return Err(EditError::UnknownNode(parent));
                        };
                        shape.meta.id = new_id;
                        outcome.created.push(new_id);
                        comp.shapes.insert(index, shape);
                    }
                    (_, kind) => {
                        return Err(EditError::WrongKind {
                            id: parent,
                            found: kind.unwrap_or(NodeKind::Shape),
                            expected: "an object or a component",
                        });
                    }
                }
            }
            Command::Delete { ids } => {
                for &id in &ids {
                    self.require(id)?;
                }
                for id in ids {
                    // An id may already be gone with a deleted ancestor.
                    match self.locate(id) {
                        Some(NodePath::Object(o)) => {
                            self.objects.remove(o);
                        }
                        Some(NodePath::Child(o, c)) => {
                            self.objects[o].children.remove(c);
                        }
                        Some(NodePath::ComponentShape(o, c, s)) => {
                            if let ObjectChild::Component(comp) = &mut self.objects[o].children[c] {
                                comp.shapes.remove(s);
                            }
                        }
                        None => {}
                    }
                }
            }
            Command::Translate { ids, dx, dy } => {
                if !(dx.is_finite() && dy.is_finite()) {
                    return Err(EditError::Invalid("translation is not finite".into()));
                }
                let affine = Affine::translate(Vec2::new(dx, dy));
                for id in self.shapes_under(&ids)? {
                    if let Some(s) = self.shape_mut(id) {
                        s.transform(affine);
                    }
                }
            }
            Command::Transform { ids, matrix } => {
                if !matrix.iter().all(|v| v.is_finite()) {
                    return Err(EditError::Invalid("matrix is not finite".into()));
                }
                let affine = Affine::new(matrix);
                for id in self.shapes_under(&ids)? {
                    if let Some(s) = self.shape_mut(id) {
                        s.transform(affine);
                    }
                }
            }
            Command::SetPoints { shape, subpaths } => {
                let s = self.require_shape(shape)?;
                if let Some(i) = subpaths.iter().position(|sp| !sp.is_well_formed(s.kind)) {
                    return Err(EditError::Invalid(format!(
                        "subpath {i} has a point count that does not fit {:?}",
                        s.kind
                    )));
                }
                if !subpaths
                    .iter()
                    .all(|sp| sp.points.iter().all(|p| p.is_finite()))
                {
                    return Err(EditError::Invalid("a point is not finite".into()));
                }
                s.subpaths = subpaths;
            }
            Command::SetFill { shape, paint } => {
                if let Some(p) = &paint {
                    finite_paint(p)?;
                }
                self.require_shape(shape)?.fill = paint;
            }
            Command::SetStrokePaint { shape, paint } => {
                finite_paint(&paint)?;
                let s = self.require_shape(shape)?;
                match &mut s.stroke {
                    Some(st) => st.paint = paint,
                    None => {
                        let mut st = Stroke::solid(Rgba::BLACK, 1.0);
                        st.paint = paint;
                        s.stroke = Some(st);
                    }
                }
            }
            Command::SetStroke { shape, stroke } => {
                if let Some(st) = &stroke {
                    finite_paint(&st.paint)?;
                    if !(st.width.is_finite() && st.width >= 0.0) {
                        return Err(EditError::Invalid(format!("stroke width {}", st.width)));
                    }
                }
                self.require_shape(shape)?.stroke = stroke;
            }
            Command::SetStrokeWidth { shape, width } => {
                if !(width.is_finite() && width >= 0.0) {
                    return Err(EditError::Invalid(format!("stroke width {width}")));
                }
                let s = self.require_shape(shape)?;
                match &mut s.stroke {
                    Some(st) => st.width = width,
                    None => {
                        return Err(EditError::Invalid(format!(
                            "shape {shape} has no stroke to set the width of"
                        )));
                    }
                }
            }
            Command::Rename { id, name } => {
                self.meta_mut(id).ok_or(EditError::UnknownNode(id))?.name = name;
            }
            Command::SetLocked { id, locked } => {
                self.meta_mut(id).ok_or(EditError::UnknownNode(id))?.locked = locked;
            }
            Command::SetHidden { id, hidden } => {
                self.meta_mut(id).ok_or(EditError::UnknownNode(id))?.hidden = hidden;
            }
            Command::SetBackground { color } => {
                if !color.is_finite() {
                    return Err(EditError::Invalid("background colour is not finite".into()));
                }
                self.background = color;
            }
            Command::Reorder { id, index } => match self.require(id)? {
                NodePath::Object(o) => move_within(&mut self.objects, o, index)?,
                NodePath::Child(o, c) => move_within(&mut self.objects[o].children, c, index)?,
                NodePath::ComponentShape(o, c, s) => {
                    if let ObjectChild::Component(comp) = &mut self.objects[o].children[c] {
                        move_within(&mut comp.shapes, s, index)?;
                    }
                }
            },
            Command::Group { ids, name } => {
                let created = self.group(&ids, name)?;
                outcome.created.push(created);
            }
            Command::Ungroup { id } => {
                let path = self.require(id)?;
                let (NodePath::Child(o, c), Some(NodeKind::Component)) = (path, self.kind_of(id))
                else {
                    return Err(EditError::WrongKind {
                        id,
                        found: self.kind_of(id).unwrap_or(NodeKind::Object),
                        expected: "a component",
                    });
                };
                let ObjectChild::Component(comp) = self.objects[o].children.remove(c) else {
                    return Err(EditError::UnknownNode(id));
                };
                let shapes = comp.shapes.into_iter().map(|mut s| {
                    s.meta.locked |= comp.meta.locked;
                    s.meta.hidden |= comp.meta.hidden;
                    ObjectChild::Shape(s)
                });
                self.objects[o].children.splice(c..c, shapes);
            }
            Command::ReplaceFromOptimiser { view } => {
                self.apply_param_view(&view)?;
            }
        }
        Ok(outcome)
    }

    fn object_index(&self, id: NodeId) -> Result<usize, EditError> {
        match self.require(id)? {
            NodePath::Object(o) => Ok(o),
            _ => Err(EditError::WrongKind {
                id,
                found: self.kind_of(id).unwrap_or(NodeKind::Shape),
                expected: "an object",
            }),
        }
    }

    fn group(&mut self, ids: &[NodeId], name: String) -> Result<NodeId, EditError> {
        let mut positions = Vec::new(); // (child index, shape index in component)
        let mut object = None;
        for &id in ids {
            let (o, pos) = match self.require(id)? {
                NodePath::Child(o, c) if self.kind_of(id) == Some(NodeKind::Shape) => {
                    (o, (c, None))
                }
                NodePath::ComponentShape(o, c, s) => (o, (c, Some(s))),
                _ => {
                    return Err(EditError::WrongKind {
                        id,
                        found: self.kind_of(id).unwrap_or(NodeKind::Object),
                        expected: "a shape",
                    });
                }
            };
            if *object.get_or_insert(o) != o {
                return Err(EditError::MixedParents);
            }
            if !positions.contains(&pos) {
                positions.push(pos);
            }
        }
        let Some(o) = object else {
            return Err(EditError::Invalid("nothing to group".into()));
        };
        positions.sort();
        let first = positions[0];
        // Remove from the back so earlier positions stay valid.
        let mut shapes = Vec::new();
        for &(c, s) in positions.iter().rev() {
            let children = &mut self.objects[o].children;
            match s {
                None => {
                    if let ObjectChild::Shape(shape) = children.remove(c) {
                        shapes.push(shape);
                    }
                }
                Some(s) => {
                    if let ObjectChild::Component(comp) = &mut children[c] {
                        shapes.push(comp.shapes.remove(s));
                    }
                }
            }
        }
        shapes.reverse();
        let removed_before = positions
            .iter()
            .filter(|(c, s)| s.is_none() && *c < first.0)
            .count();
        let insert_at = first.0 - removed_before + usize::from(first.1.is_some());
        let id = self.alloc_id();
        let comp = Component {
            meta: crate::ids::NodeMeta::new(id, name),
            shapes,
        };
        self.objects[o]
            .children
            .insert(insert_at, ObjectChild::Component(comp));
        Ok(id)
    }
}

fn move_within<T>(list: &mut Vec<T>, from: usize, to: usize) -> Result<(), EditError> {
    if to >= list.len() {
        return Err(EditError::Index {
            index: to,
            len: list.len(),
        });
    }
    let item = list.remove(from);
    list.insert(to, item);
    Ok(())
}

fn check_shape(s: &Shape) -> Result<(), EditError> {
    if !s.is_finite() {
        return Err(EditError::Invalid(format!(
            "shape \"{}\" has a non-finite number",
            s.meta.name
        )));
    }
    if let Some(i) = s.subpaths.iter().position(|sp| !sp.is_well_formed(s.kind)) {
        return Err(EditError::Invalid(format!(
            "shape \"{}\": subpath {i} does not fit {:?}",
            s.meta.name, s.kind
        )));
    }
    Ok(())
}

fn check_object(o: &Object) -> Result<(), EditError> {
    for s in o.shapes() {
        check_shape(s)?;
    }
    Ok(())
}
