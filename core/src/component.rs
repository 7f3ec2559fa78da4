//! Components: sub-groups of an object that hold shapes.

use serde::{Deserialize, Serialize};

use crate::ids::NodeMeta;
use crate::shape::Shape;

/// A component (e.g. "ear" of the object "cat"): an ordered list of shapes, back to front.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Id, name, lock and visibility.
    pub meta: NodeMeta,
    /// Shapes in paint order.
    pub shapes: Vec<Shape>,
}
