//! The properties panel under the object tree: fill and stroke colour pickers (one per stop of a
//! gradient fill), stroke width, delete, and group / ungroup of the selection. It returns edit commands; drags of a slider are one gesture.

use egui::Rgba as EguiRgba;
use vecdream_core::{Command, Document, NodeKind, Paint, Rgba};

use crate::Selection;

/// What the panel asks of the app.
#[derive(Debug, Default, PartialEq)]
pub struct PropertiesOutput {
    /// Edits.
    pub commands: Vec<Command>,
    /// A colour or width drag began / ended: one undo step for the whole gesture.
    pub begin_gesture: bool,
    /// See `begin_gesture`.
    pub end_gesture: bool,
}

/// The properties panel (stateless).
#[derive(Debug, Default)]
pub struct PropertiesPanel;

impl PropertiesPanel {
    /// Draws the properties of the selection.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        doc: &Document,
        selection: &Selection,
    ) -> PropertiesOutput {
        let mut out = PropertiesOutput::default();
        let ids = selection.ids();
        if ids.is_empty() {
            ui.weak("Select a shape (click it in the viewport or the tree) to edit it.");
            return out;
        }
        ui.horizontal(|ui| {
            if ui.button("Delete").clicked() {
                out.commands.push(Command::Delete { ids: ids.clone() });
            }
            if ids.len() > 1 && ui.button("Group").clicked() {
                out.commands.push(Command::Group {
                    ids: ids.clone(),
                    name: "group".into(),
                });
            }
            if let [id] = ids.as_slice()
                && matches!(
                    doc.kind_of(*id),
                    Some(NodeKind::Component | NodeKind::Object)
                )
                && ui.button("Ungroup").clicked()
            {
                out.commands.push(Command::Ungroup { id: *id });
            }
        });
        let [id] = ids.as_slice() else {
            ui.weak(format!("{} selected", ids.len()));
            return out;
        };
        let Some(shape) = doc.shape(*id) else {
            return out;
        };
        let id = *id;
        egui::Grid::new("shape_properties")
            .num_columns(2)
            .show(ui, |ui| {
                let label = ui.label("Fill");
                match &shape.fill {
                    Some(Paint::Solid(c)) => {
                        if let Some(c) = colour_button(ui, *c, label.id, &mut out) {
                            out.commands.push(Command::SetFill {
                                shape: id,
                                paint: Some(Paint::Solid(c)),
                            });
                        }
                    }
                    Some(gradient) => {
                        if let Some(paint) = gradient_editor(ui, gradient, &mut out) {
                            out.commands.push(Command::SetFill {
                                shape: id,
                                paint: Some(paint),
                            });
                        }
                    }
                    None => {
                        if ui.button("Add fill").labelled_by(label.id).clicked() {
                            out.commands.push(Command::SetFill {
                                shape: id,
                                paint: Some(Paint::Solid(Rgba::new(0.5, 0.5, 0.5, 1.0))),
                            });
                        }
                    }
                }
                ui.end_row();
                if let Some(stroke) = &shape.stroke {
                    let label = ui.label("Stroke");
                    match &stroke.paint {
                        Paint::Solid(c) => {
                            if let Some(c) = colour_button(ui, *c, label.id, &mut out) {
                                out.commands.push(Command::SetStrokePaint {
                                    shape: id,
                                    paint: Paint::Solid(c),
                                });
                            }
                        }
                        _ => {
                            ui.weak("gradient (kept as is)");
                        }
                    }
                    ui.end_row();
                    let label = ui.label("Width");
                    let mut width = stroke.width;
                    let r = ui
                        .add(
                            egui::DragValue::new(&mut width)
                                .range(0.0..=1000.0)
                                .speed(0.05),
                        )
                        .labelled_by(label.id);
                    if r.changed() {
                        out.commands
                            .push(Command::SetStrokeWidth { shape: id, width });
                    }
                    gesture(&r, &mut out);
                    ui.end_row();
                }
            });
        out
    }
}

/// A colour button labelled by `label`; the new colour when the user changed it.
fn colour_button(
    ui: &mut egui::Ui,
    colour: Rgba,
    label: egui::Id,
    out: &mut PropertiesOutput,
) -> Option<Rgba> {
    let mut rgba = to_egui(colour);
    let r = egui::color_picker::color_edit_button_rgba(
        ui,
        &mut rgba,
        egui::color_picker::Alpha::OnlyBlend,
    )
    .labelled_by(label);
    gesture(&r, out);
    r.changed().then(|| from_egui(rgba))
}

/// One colour button per gradient stop, and "Solid" to replace the gradient by its mean
/// colour. Returns the edited paint.
fn gradient_editor(ui: &mut egui::Ui, paint: &Paint, out: &mut PropertiesOutput) -> Option<Paint> {
    let stops = paint.stops()?;
    let mut edited = None;
    ui.horizontal(|ui| {
        for (i, stop) in stops.iter().enumerate() {
            // Each stop's button is labelled with its position along the gradient.
            let at = ui.small(format!("{:.0}%", stop.offset * 100.0));
            let mut rgba = to_egui(stop.color);
            let r = egui::color_picker::color_edit_button_rgba(
                ui,
                &mut rgba,
                egui::color_picker::Alpha::OnlyBlend,
            )
            .labelled_by(at.id)
            .on_hover_text(format!("Gradient stop {}", i + 1));
            gesture(&r, out);
            if r.changed() {
                edited = Some(with_stop_color(paint.clone(), i, from_egui(rgba)));
            }
        }
        if ui
            .button("Solid")
            .on_hover_text("Replace the gradient by its mean colour")
            .clicked()
        {
            edited = Some(Paint::Solid(paint.mean_color()));
        }
    });
    edited
}

/// `paint` with stop `i` recoloured.
fn with_stop_color(mut paint: Paint, i: usize, color: Rgba) -> Paint {
    let stops = match &mut paint {
        Paint::Solid(_) => return paint,
        Paint::Linear(g) => &mut g.stops,
        Paint::Radial(g) => &mut g.stops,
    };
    if let Some(s) = stops.get_mut(i) {
        s.color = color;
    }
    paint
}

fn gesture(r: &egui::Response, out: &mut PropertiesOutput) {
    out.begin_gesture |= r.drag_started();
    out.end_gesture |= r.drag_stopped();
}

fn to_egui(c: Rgba) -> EguiRgba {
    EguiRgba::from_rgba_unmultiplied(c.r, c.g, c.b, c.a)
}

fn from_egui(c: EguiRgba) -> Rgba {
    let [r, g, b, a] = c.to_rgba_unmultiplied();
    Rgba::new(r, g, b, a)
}
