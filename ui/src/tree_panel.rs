//! The right panel: the document's object tree (objects → components → shapes).

use vecdream_core::Document;

/// The object-tree panel.
#[derive(Debug, Default)]
pub struct TreePanel;

impl TreePanel {
    /// Draws the tree of `document`, or a hint when there is none.
    pub fn ui(&mut self, ui: &mut egui::Ui, document: Option<&Document>) {
        ui.heading("Objects");
        match document {
            None => {
                ui.weak("No document: open an SVG or an image, or start a run.");
            }
            Some(doc) => {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    ui.monospace(doc.summary());
                });
            }
        }
    }
}
