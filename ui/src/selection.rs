//! The set of selected nodes (objects, components or shapes), shared by the tree and the viewport.

use std::collections::BTreeSet;

use vecdream_core::NodeId;

/// Selected node ids, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    ids: BTreeSet<NodeId>,
}

impl Selection {
    /// Selects only `id`.
    pub fn select_only(&mut self, id: NodeId) {
        self.ids.clear();
        self.ids.insert(id);
    }

    /// Adds `id` if absent, removes it if present (Ctrl/Shift-click).
    pub fn toggle(&mut self, id: NodeId) {
        if !self.ids.remove(&id) {
            self.ids.insert(id);
        }
    }

    /// Deselects everything.
    pub fn clear(&mut self) {
        self.ids.clear();
    }

    /// Whether `id` is selected.
    pub fn contains(&self, id: NodeId) -> bool {
        self.ids.contains(&id)
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The selected ids.
    pub fn ids(&self) -> Vec<NodeId> {
        self.ids.iter().copied().collect()
    }

    /// Drops ids that `keep` rejects (e.g. nodes deleted by an undo).
    pub fn retain(&mut self, keep: impl Fn(NodeId) -> bool) {
        self.ids.retain(|id| keep(*id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_toggle_and_select_only() {
        let mut s = Selection::default();
        s.select_only(NodeId(3));
        s.toggle(NodeId(1));
        assert_eq!(s.ids(), vec![NodeId(1), NodeId(3)]);
        s.toggle(NodeId(3));
        assert_eq!(s.ids(), vec![NodeId(1)]);
        s.select_only(NodeId(7));
        assert_eq!(s.ids(), vec![NodeId(7)]);
        s.retain(|id| id != NodeId(7));
        assert!(s.is_empty());
    }
}
