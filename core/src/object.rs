//! Objects: the semantic top level of the tree (e.g. "cat", "background").

use serde::{Deserialize, Serialize};

use crate::component::Component;
use crate::ids::NodeMeta;
use crate::shape::Shape;

/// A child of an object: a component or a shape directly under the object.
// Shapes are stored inline (not boxed) so the UI and edits can match on them directly;
// an object holds few children, so the padding of small variants costs little.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ObjectChild {
    /// A sub-group of shapes.
    Component(Component),
    /// A shape that belongs to no component.
    Shape(Shape),
}

impl ObjectChild {
    /// The child's id, name, lock and visibility.
    pub fn meta(&self) -> &crate::NodeMeta {
        match self {
            ObjectChild::Component(c) => &c.meta,
            ObjectChild::Shape(s) => &s.meta,
        }
    }
}

/// A semantic object: an ordered list of components and shapes, back to front.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Id, name, lock and visibility.
    pub meta: NodeMeta,
    /// Children in paint order.
    pub children: Vec<ObjectChild>,
}

impl Object {
    /// All shapes of the object in paint order.
    pub fn shapes(&self) -> impl Iterator<Item = &Shape> {
        self.children.iter().flat_map(|c| match c {
            ObjectChild::Component(c) => c.shapes.iter().collect::<Vec<_>>(),
            ObjectChild::Shape(s) => vec![s],
        })
    }
}
