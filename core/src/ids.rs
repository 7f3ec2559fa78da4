//! Stable node identifiers.

use serde::{Deserialize, Serialize};

/// Stable identifier of a node (object, component or shape) in a [`crate::Document`].
///
/// Ids are allocated by the document, never reused within it, and survive every edit
/// (undo restores the same ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u64);

/// Id of a shape; shapes share the id space of every other node.
pub type ShapeId = NodeId;

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Properties shared by every node of the tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// Stable id.
    pub id: NodeId,
    /// User-editable name (exported as `inkscape:label`).
    pub name: String,
    /// The element id this node had in the imported SVG (empty if none); export reuses it
    /// when it is a valid, unique XML id.
    #[serde(default)]
    pub svg_id: String,
    /// Locked nodes (and their subtrees) are shown but never edited by the optimiser.
    pub locked: bool,
    /// Hidden nodes (and their subtrees) are neither rendered nor optimised.
    pub hidden: bool,
}

impl NodeMeta {
    /// A visible, unlocked node.
    pub fn new(id: NodeId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            svg_id: String::new(),
            locked: false,
            hidden: false,
        }
    }
}
