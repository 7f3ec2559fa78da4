//! The right panel: the document's object tree (objects → components → shapes) with hide and lock
//! toggles, selection (Ctrl-click adds) and rename (double-click). It returns edit commands; it never
//! mutates the document itself.

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
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                // Front-most first, as in Inkscape's layer panel.
                for object in doc.objects.iter().rev() {
                    let open = self.row(ui, &object.meta, 0, true, selection, &mut commands);
                    if !open {
                        continue;
                    }
                    for child in object.children.iter().rev() {
                        match child {
                            ObjectChild::Shape(shape) => {
                                self.row(ui, &shape.meta, 1, false, selection, &mut commands);
                            }
                            ObjectChild::Component(component) => {
                                if self.row(ui, &component.meta, 1, true, selection, &mut commands)
                                {
                                    for shape in component.shapes.iter().rev() {
                                        self.row(
                                            ui,
                                            &shape.meta,
                                            2,
                                            false,
                                            selection,
                                            &mut commands,
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            });
        commands
    }

    /// One row: indent, open/close arrow (groups), hide toggle, lock toggle, name. Returns whether the
    /// node's children should be listed.
    fn row(
        &mut self,
        ui: &mut egui::Ui,
        meta: &NodeMeta,
        depth: usize,
        expandable: bool,
        selection: &mut Selection,
        commands: &mut Vec<Command>,
    ) -> bool {
        let id = meta.id;
        let open_id = ui.scope_id().with(("tree_open", id.0));
        let mut open = expandable && ui.data(|d| d.get_temp::<bool>(open_id).unwrap_or(depth == 0));
        ui.horizontal(|ui| {
            ui.add_space(14.0 * depth as f32 + if expandable { 0.0 } else { 18.0 });
            if expandable {
                let arrow = if open { "-" } else { "+" };
                let r = ui.small_button(arrow);
                r.widget_info(|| {
                    WidgetInfo::labeled(Role::Button, true, format!("Expand {}", meta.name))
                });
                if r.clicked() {
                    open = !open;
                    ui.data_mut(|d| d.insert_temp(open_id, open));
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
                    let r = ui.selectable_label(selection.contains(id), text);
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
        open
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
