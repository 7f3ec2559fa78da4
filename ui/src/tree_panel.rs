//! The right panel: the document's object tree (objects → components → shapes) with hide and lock
//! toggles, selection (Ctrl-click adds), rename (double-click) and drag to reorder (drop a row on a
//! sibling: above it puts it in front, below it behind). It returns edit commands; it never mutates
//! the document itself.

use egui::{RichText, Role, WidgetInfo};
use vecdream_core::{Command, Document, NodeId, NodeMeta, ObjectChild};

use crate::Selection;

/// The object-tree panel; owns only the state of an ongoing rename.
#[derive(Debug, Default)]
pub struct TreePanel {
    renaming: Option<(NodeId, String)>,
}

impl TreePanel {
    /// Draws the tree of `document` and returns the edits the user asked for.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        document: Option<&Document>,
        selection: &mut Selection,
    ) -> Vec<Command> {
        ui.heading("Objects");
        let Some(doc) = document else {
            ui.weak("No document: open an SVG or an image, or start a run.");
            return Vec::new();
        };
        ui.weak(format!(
            "{} objects, {} shapes",
            doc.objects.len(),
            doc.shape_count()
        ));
        let mut commands = Vec::new();
        // Open/closed states live under the panel's id, so rows can be listed before they are drawn.
        let base = ui.scope_id().with("tree_open");
        let is_open = |id: NodeId, depth: usize| {
            ui.data(|d| d.get_temp::<bool>(base.with(id.0)))
                .unwrap_or(depth == 0)
        };
        let rows = visible_rows(doc, is_open);
        // Only the rows on screen are laid out: a run's document has hundreds of shapes, and the
        // panel is rebuilt every frame while the worker streams steps.
        let row_height = ui.spacing().interact_size.y.max(
            ui.text_style_height(&egui::TextStyle::Button) + 2.0 * ui.spacing().button_padding.y,
        );
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show_rows(ui, row_height, rows.len(), |ui, range| {
                for item in &rows[range] {
                    self.row(ui, base, item, row_height, selection, &mut commands);
                }
            });
        commands
    }

    /// One row: indent, open/close arrow (groups), hide toggle, lock toggle, name (click selects,
    /// drag reorders).
    fn row(
        &mut self,
        ui: &mut egui::Ui,
        base: egui::Id,
        item: &RowItem<'_>,
        height: f32,
        selection: &mut Selection,
        commands: &mut Vec<Command>,
    ) {
        let RowItem {
            meta,
            slot,
            expandable,
            open,
        } = *item;
        let id = meta.id;
        let depth = slot.parent.depth();
        let size = egui::vec2(ui.available_width(), height);
        let layout = egui::Layout::left_to_right(egui::Align::Center);
        let row = ui.allocate_ui_with_layout(size, layout, |ui| {
            ui.add_space(14.0 * depth as f32 + if expandable { 0.0 } else { 18.0 });
            if expandable {
                let arrow = if open { "-" } else { "+" };
                let r = ui.small_button(arrow);
                r.widget_info(|| {
                    WidgetInfo::labeled(Role::Button, true, format!("Expand {}", meta.name))
                });
                if r.clicked() {
                    ui.data_mut(|d| d.insert_temp(base.with(id.0), !open));
                }
            }
            if toggle(ui, "👁", !meta.hidden, &format!("Visible {}", meta.name)).clicked() {
                commands.push(Command::SetHidden {
                    id,
                    hidden: !meta.hidden,
                });
            }
            if toggle(ui, "🔒", meta.locked, &format!("Lock {}", meta.name)).clicked() {
                commands.push(Command::SetLocked {
                    id,
                    locked: !meta.locked,
                });
            }
            match &mut self.renaming {
                Some((renaming, text)) if *renaming == id => {
                    let r = ui.add(egui::TextEdit::singleline(text).desired_width(140.0));
                    r.widget_info(|| {
                        WidgetInfo::labeled(Role::TextInput, true, format!("Rename {}", meta.name))
                    });
                    if r.lost_focus() {
                        let name = text.trim().to_string();
                        if !name.is_empty() && name != meta.name {
                            commands.push(Command::Rename { id, name });
                        }
                        self.renaming = None;
                    } else {
                        r.request_focus();
                    }
                }
                _ => {
                    let mut text = RichText::new(&meta.name);
                    if meta.hidden {
                        text = text.weak();
                    }
                    let r = ui.add(
                        egui::Button::selectable(selection.contains(id), text)
                            .sense(egui::Sense::click_and_drag()),
                    );
                    r.dnd_set_drag_payload(DraggedRow { id, slot });
                    if r.dragged() {
                        paint_drag_label(ui, &meta.name);
                    }
                    if r.double_clicked() {
                        self.renaming = Some((id, meta.name.clone()));
                    } else if r.clicked() {
                        if ui.input(|i| i.modifiers.command || i.modifiers.shift) {
                            selection.toggle(id);
                        } else {
                            selection.select_only(id);
                        }
                    }
                }
            }
        });
        drop_target(ui, row.response.rect, id, slot, commands);
    }
}

/// A row of the tree as listed: the node, its place, and whether it has children shown below it.
#[derive(Clone, Copy, Debug)]
struct RowItem<'a> {
    meta: &'a NodeMeta,
    slot: Slot,
    expandable: bool,
    open: bool,
}

/// The rows to list, top to bottom: front-most first (as in Inkscape's layer panel), children of
/// open objects and components under them. `is_open(id, depth)` says whether a group is expanded.
fn visible_rows(doc: &Document, is_open: impl Fn(NodeId, usize) -> bool) -> Vec<RowItem<'_>> {
    let mut rows = Vec::new();
    for (o, object) in doc.objects.iter().enumerate().rev() {
        let open = is_open(object.meta.id, 0);
        rows.push(RowItem {
            meta: &object.meta,
            slot: Slot::new(Parent::Root, o),
            expandable: true,
            open,
        });
        if !open {
            continue;
        }
        let in_object = Parent::Object(object.meta.id);
        for (c, child) in object.children.iter().enumerate().rev() {
            let slot = Slot::new(in_object, c);
            match child {
                ObjectChild::Shape(shape) => rows.push(RowItem {
                    meta: &shape.meta,
                    slot,
                    expandable: false,
                    open: false,
                }),
                ObjectChild::Component(component) => {
                    let open = is_open(component.meta.id, 1);
                    rows.push(RowItem {
                        meta: &component.meta,
                        slot,
                        expandable: true,
                        open,
                    });
                    if !open {
                        continue;
                    }
                    let in_component = Parent::Component(component.meta.id);
                    for (i, shape) in component.shapes.iter().enumerate().rev() {
                        rows.push(RowItem {
                            meta: &shape.meta,
                            slot: Slot::new(in_component, i),
                            expandable: false,
                            open: false,
                        });
                    }
                }
            }
        }
    }
    rows
}

/// The list a node belongs to: the document's objects, an object's children or a component's shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parent {
    Root,
    Object(NodeId),
    Component(NodeId),
}

impl Parent {
    /// Indent level of the rows in this list.
    fn depth(self) -> usize {
        match self {
            Parent::Root => 0,
            Parent::Object(_) => 1,
            Parent::Component(_) => 2,
        }
    }
}

/// A row's place: its parent list and its index there (paint order: 0 is at the back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    parent: Parent,
    index: usize,
}

impl Slot {
    fn new(parent: Parent, index: usize) -> Self {
        Self { parent, index }
    }
}

/// The drag-and-drop payload of a tree row being dragged.
#[derive(Clone, Copy, Debug)]
struct DraggedRow {
    id: NodeId,
    slot: Slot,
}

/// The dragged row's name, following the pointer.
fn paint_drag_label(ui: &egui::Ui, name: &str) {
    let Some(pos) = ui.ctx().pointer_interact_pos() else {
        return;
    };
    let painter = ui.ctx().layer_painter(egui::LayerId::new(
        egui::Order::Tooltip,
        ui.scope_id().with("tree_drag_label"),
    ));
    let galley = painter.layout_no_wrap(
        name.to_owned(),
        egui::TextStyle::Body.resolve(ui.style()),
        ui.visuals().strong_text_color(),
    );
    let at = pos + egui::vec2(14.0, -galley.size().y / 2.0);
    let frame = egui::Rect::from_min_size(at, galley.size()).expand(3.0);
    painter.rect_filled(frame, 3.0, ui.visuals().window_fill);
    painter.galley(at, galley, ui.visuals().strong_text_color());
}

/// Makes the row in `rect` a drop target for dragged siblings: while one hovers over it a line shows
/// where it will land (above the row: in front of this node; below: behind it), and releasing it
/// there emits [`Command::Reorder`]. Rows of another list are not targets.
fn drop_target(
    ui: &egui::Ui,
    rect: egui::Rect,
    id: NodeId,
    slot: Slot,
    commands: &mut Vec<Command>,
) {
    let Some(dragged) = egui::DragAndDrop::payload::<DraggedRow>(ui.ctx()) else {
        return;
    };
    if dragged.id == id || dragged.slot.parent != slot.parent {
        return;
    }
    // The whole width of the panel and half the gap to the neighbouring rows.
    let half_gap = ui.spacing().item_spacing.y / 2.0;
    let target = egui::Rect::from_x_y_ranges(
        ui.max_rect().x_range(),
        (rect.top() - half_gap)..=(rect.bottom() + half_gap),
    );
    if !ui.rect_contains_pointer(target) {
        return;
    }
    let Some(pointer) = ui.input(|i| i.pointer.interact_pos()) else {
        return;
    };
    // Rows list the front-most node first, so the upper half means "in front of this node".
    let in_front = pointer.y < target.center().y;
    let y = if in_front {
        target.top()
    } else {
        target.bottom()
    };
    let stroke = egui::Stroke::new(2.0, ui.visuals().selection.stroke.color);
    ui.painter().hline(target.x_range(), y, stroke);
    if ui.input(|i| i.pointer.any_released()) {
        egui::DragAndDrop::clear_payload(ui.ctx());
        let index = reorder_index(dragged.slot.index, slot.index, in_front);
        if index != dragged.slot.index {
            commands.push(Command::Reorder {
                id: dragged.id,
                index,
            });
        }
    }
}

/// The index for [`Command::Reorder`] (remove at `from`, insert at the result) that puts the node at
/// `from` just in front of (`in_front`, higher index) or just behind the sibling at `target`.
fn reorder_index(from: usize, target: usize, in_front: bool) -> usize {
    match (from < target, in_front) {
        (true, true) => target,
        (true, false) => target - 1,
        (false, true) => target + 1,
        (false, false) => target,
    }
}

/// A small icon button that shows an on/off state; `label` is its accessible name.
fn toggle(ui: &mut egui::Ui, icon: &str, on: bool, label: &str) -> egui::Response {
    let text = if on {
        RichText::new(icon)
    } else {
        RichText::new(icon).weak()
    };
    let r = ui.add(egui::Button::new(text).small().selected(on).frame(false));
    r.widget_info(|| WidgetInfo::selected(Role::CheckBox, true, on, label));
    r.on_hover_text(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `Reorder` semantics (remove, then insert at the index) to a list of names.
    fn moved(
        list: &[&'static str],
        from: usize,
        target: usize,
        in_front: bool,
    ) -> Vec<&'static str> {
        let mut v = list.to_vec();
        let item = v.remove(from);
        v.insert(reorder_index(from, target, in_front), item);
        v
    }

    fn shape(id: u64, name: &str) -> vecdream_core::Shape {
        vecdream_core::Shape {
            meta: NodeMeta::new(NodeId(id), name),
            kind: vecdream_core::PrimitiveKind::Polygon,
            subpaths: Vec::new(),
            fill: None,
            fill_rule: Default::default(),
            stroke: None,
        }
    }

    #[test]
    fn rows_list_the_front_first_and_skip_closed_groups() {
        let mut doc = Document::new(10.0, 10.0);
        doc.objects.push(vecdream_core::Object {
            meta: NodeMeta::new(NodeId(1), "back"),
            children: vec![ObjectChild::Shape(shape(2, "b1"))],
        });
        doc.objects.push(vecdream_core::Object {
            meta: NodeMeta::new(NodeId(3), "front"),
            children: vec![
                ObjectChild::Shape(shape(4, "f1")),
                ObjectChild::Component(vecdream_core::Component {
                    meta: NodeMeta::new(NodeId(5), "group"),
                    shapes: vec![shape(6, "g1"), shape(7, "g2")],
                }),
            ],
        });
        let list = |closed: &[u64]| {
            visible_rows(&doc, |id, _| !closed.contains(&id.0))
                .iter()
                .map(|r| (r.meta.name.clone(), r.slot.parent, r.slot.index))
                .collect::<Vec<_>>()
        };
        let (root, front, group) = (
            Parent::Root,
            Parent::Object(NodeId(3)),
            Parent::Component(NodeId(5)),
        );
        let all = list(&[]);
        let expected = [
            ("front", root, 1),
            ("group", front, 1),
            ("g2", group, 1),
            ("g1", group, 0),
            ("f1", front, 0),
            ("back", root, 0),
            ("b1", Parent::Object(NodeId(1)), 0),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(n, p, i)| (n.to_string(), *p, *i))
            .collect();
        assert_eq!(all, expected);
        let names =
            |rows: Vec<(String, Parent, usize)>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(names(list(&[5])), ["front", "group", "f1", "back", "b1"]);
        assert_eq!(names(list(&[3, 1])), ["front", "back"]);
    }

    #[test]
    fn reorder_index_lands_next_to_the_target() {
        let l = ["a", "b", "c", "d"];
        // "a" (back-most) in front of "c", then behind "c".
        assert_eq!(moved(&l, 0, 2, true), ["b", "c", "a", "d"]);
        assert_eq!(moved(&l, 0, 2, false), ["b", "a", "c", "d"]);
        // "d" (front-most) behind "b", then in front of "b".
        assert_eq!(moved(&l, 3, 1, false), ["a", "d", "b", "c"]);
        assert_eq!(moved(&l, 3, 1, true), ["a", "b", "d", "c"]);
        // To the very front and the very back.
        assert_eq!(moved(&l, 1, 3, true), ["a", "c", "d", "b"]);
        assert_eq!(moved(&l, 2, 0, false), ["c", "a", "b", "d"]);
        // Next to a neighbour on the side it already is: no move.
        assert_eq!(reorder_index(1, 2, false), 1);
        assert_eq!(reorder_index(2, 1, true), 2);
    }
}
