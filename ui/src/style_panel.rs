//! The style controls of the prompt panel: drawing style, detail (path budget), palette, object
//! words, content type, adaptive control and where particles start.

use serde::{Deserialize, Serialize};
use vecdream_core::{ContentType, GenerationOptions, Palette, Style};

/// Where a run's particles start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartFrom {
    /// Each particle from its own sample, vectorised in the style.
    #[default]
    Samples,
    /// Every particle from the document in the editor.
    Document,
}

/// What the artist set (persisted with the prompt settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StyleSettings {
    /// Drawing style.
    pub style: Style,
    /// Path budget (detail); `None`: the style's default.
    pub paths: Option<usize>,
    /// Palette as typed (`#rrggbb,…`; empty: free colours).
    pub palette: String,
    /// Object words as typed (`cat, hat`).
    pub objects: String,
    /// Icon, subject or scene.
    pub content: ContentType,
    /// Adaptive primitive control.
    pub adaptive: bool,
    /// Where particles start.
    pub start: StartFrom,
}

impl Default for StyleSettings {
    fn default() -> Self {
        Self {
            style: Style::Iconography,
            paths: None,
            palette: String::new(),
            objects: String::new(),
            content: ContentType::Scene,
            adaptive: false,
            start: StartFrom::Samples,
        }
    }
}

impl StyleSettings {
    /// The generation options, or why the palette cannot be read.
    pub fn options(&self) -> Result<GenerationOptions, String> {
        let palette = if self.palette.trim().is_empty() {
            None
        } else {
            Some(Palette::parse(&self.palette)?)
        };
        Ok(GenerationOptions {
            style: self.style,
            paths: self.paths,
            palette,
            objects: GenerationOptions::parse_objects(&self.objects),
            content: self.content,
            adaptive: self.adaptive,
        })
    }
}

fn content_label(c: ContentType) -> &'static str {
    match c {
        ContentType::Icon => "Icon (few flat paths)",
        ContentType::Subject => "Subject (no background)",
        ContentType::Scene => "Scene",
    }
}

/// Draws the controls into a two-column grid.
pub fn style_ui(ui: &mut egui::Ui, s: &mut StyleSettings) {
    egui::Grid::new("style_settings")
        .num_columns(2)
        .show(ui, |ui| {
            let label = ui.label("Style");
            egui::ComboBox::from_id_salt("style")
                .selected_text(s.style.label())
                .show_ui(ui, |ui| {
                    for st in Style::ALL {
                        ui.selectable_value(&mut s.style, st, st.label());
                    }
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Detail (paths)");
            let default = s.style.preset().paths;
            let mut n = s.paths.unwrap_or(default);
            let max = (default * 4).max(64);
            let r = ui
                .add(egui::Slider::new(&mut n, 4..=max).logarithmic(true))
                .labelled_by(label.id);
            if r.changed() {
                s.paths = Some(n);
            }
            ui.end_row();
            let label = ui.label("Palette");
            ui.add(
                egui::TextEdit::singleline(&mut s.palette)
                    .hint_text("#1d3557,#e63946,#f1faee")
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            if !s.palette.trim().is_empty() {
                ui.label("");
                match Palette::parse(&s.palette) {
                    Ok(p) => {
                        ui.horizontal(|ui| {
                            for c in &p.colors {
                                let (rect, _) = ui.allocate_exact_size(
                                    egui::vec2(14.0, 14.0),
                                    egui::Sense::hover(),
                                );
                                ui.painter().rect_filled(
                                    rect,
                                    2.0,
                                    egui::Color32::from_rgb(c[0], c[1], c[2]),
                                );
                            }
                        });
                    }
                    Err(e) => {
                        ui.colored_label(egui::Color32::from_rgb(200, 60, 60), e);
                    }
                }
                ui.end_row();
            }
            let label = ui.label("Object words");
            ui.add(
                egui::TextEdit::singleline(&mut s.objects)
                    .hint_text("cat, hat")
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Content");
            egui::ComboBox::from_id_salt("content")
                .selected_text(content_label(s.content))
                .show_ui(ui, |ui| {
                    for c in [ContentType::Icon, ContentType::Subject, ContentType::Scene] {
                        ui.selectable_value(&mut s.content, c, content_label(c));
                    }
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Start from");
            egui::ComboBox::from_id_salt("start_from")
                .selected_text(match s.start {
                    StartFrom::Samples => "Vectorised samples",
                    StartFrom::Document => "Current document",
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut s.start, StartFrom::Samples, "Vectorised samples");
                    ui.selectable_value(&mut s.start, StartFrom::Document, "Current document");
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
        });
    ui.checkbox(&mut s.adaptive, "Adaptive shapes (prune and add)");
}
