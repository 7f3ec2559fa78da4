//! The app's 3D tab: the [`Viewport3d`] with the mesh in the middle, actions and extrusion settings on
//! the left (with the slot for the 3D run panel), the mesh's parts (name, vertices, triangles, a
//! visibility toggle) on the right. Meshes come from *Extrude current document* (the editor's document
//! through [`extrude_document`]), *Open GLB…*, a dropped `.glb`, `vecdream --open-3d FILE`, or
//! [`Tab3d::set_mesh`] (the 3D run). *Export GLB…* writes the visible parts with [`write_glb`].
//! Errors go to the app's status line like every other error.

use std::path::{Path, PathBuf};

use vecdream_core::Document;
use vecdream_core::extrude::{ExtrudeOptions, extrude_document};
use vecdream_core::glb::{read_glb, write_glb};
use vecdream_core::mesh::{Mesh, MeshError};
use vecdream_ui::Viewport3d;

use crate::dialogs::{DialogKind, FileDialogs};

/// Extrusion depth the tab starts with (the document's longer side is 1): deeper than the CLI's
/// default so the layers read as a relief in the view.
pub const TAB_DEPTH: f32 = 0.04;
/// Gap between stacked layers the tab starts with.
pub const TAB_LAYER_GAP: f32 = 0.004;

const NOTHING_TO_EXPORT: &str =
    "Nothing to export: extrude the document or open a GLB first (or show a hidden part)";

/// Something asked of the 3D tab from the menu or its buttons; applied at the start of its next frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Tab3dAction {
    /// Extrude the editor's current document.
    Extrude,
    /// Open a GLB through the file dialog.
    OpenGlb,
    /// Export the visible parts as GLB through the file dialog.
    ExportGlb,
}

/// What the tab borrows from the app for one frame.
pub struct Tab3dContext<'a> {
    /// The app's file dialogs.
    pub dialogs: &'a mut dyn FileDialogs,
    /// The editor's current document, if any.
    pub document: Option<&'a Document>,
    /// Where that document was opened from (for the mesh's source label).
    pub document_path: Option<&'a Path>,
    /// The app's status message.
    pub status: &'a mut Option<String>,
}

/// The 3D tab's state.
#[derive(Debug)]
pub struct Tab3d {
    active: bool,
    viewport: Viewport3d,
    source: Option<String>,
    notes: Vec<String>,
    pending: Vec<Tab3dAction>,
    /// Extrusion settings used by *Extrude current document*.
    pub extrude: ExtrudeOptions,
    /// The 3D generation panel (views folder or prompt); its meshes show in the viewport.
    pub run: crate::run3d::Run3dPanel,
    preview: Option<Preview>,
}

/// The 3D run's latest preview render.
struct Preview(egui::TextureHandle);

impl std::fmt::Debug for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Preview({:?})", self.0.size())
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn describe(mesh: &Mesh) -> String {
    let parts = mesh.parts.len();
    format!(
        "{parts} part{}, {} vertices, {} triangles",
        if parts == 1 { "" } else { "s" },
        mesh.vertex_count(),
        mesh.triangle_count()
    )
}

impl Tab3d {
    /// The tab, its viewport installed on the app's wgpu render state (`None`: no wgpu renderer, the
    /// view says so and only the lists work).
    pub fn new(render_state: Option<&egui_wgpu::RenderState>) -> Self {
        let mut viewport = Viewport3d::new();
        if let Some(rs) = render_state {
            viewport.install(rs);
        }
        Self {
            active: false,
            viewport,
            source: None,
            notes: Vec::new(),
            pending: Vec::new(),
            extrude: ExtrudeOptions {
                depth: TAB_DEPTH,
                layer_gap: TAB_LAYER_GAP,
                ..ExtrudeOptions::default()
            },
            run: crate::run3d::Run3dPanel::new(None),
            preview: None,
        }
    }

    /// Whether the 3D tab is shown (instead of the 2D editor).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Switches between the 3D tab (`true`) and the 2D editor.
    pub fn set_active(&mut self, active: bool) {
        self.active = active;
    }

    /// The "2D | 3D" switch for the menu bar.
    pub fn tab_switch(&mut self, ui: &mut egui::Ui) {
        ui.selectable_value(&mut self.active, false, "2D")
            .on_hover_text("The vector editor");
        ui.selectable_value(&mut self.active, true, "3D")
            .on_hover_text("The 3D view: extrusions, GLB files, 3D runs");
    }

    /// The 3D entries of the File menu; each switches to the 3D tab (its own buttons export).
    pub fn file_menu(&mut self, ui: &mut egui::Ui) {
        for (label, action) in [
            ("Extrude to 3D view", Tab3dAction::Extrude),
            ("Open GLB…", Tab3dAction::OpenGlb),
        ] {
            if ui.button(label).clicked() {
                self.request(action);
            }
        }
    }

    /// Queues an action for the next frame and switches to the 3D tab.
    pub fn request(&mut self, action: Tab3dAction) {
        self.pending.push(action);
        self.active = true;
    }

    /// Shows `mesh` (framed, all parts visible); `source_label` says where it came from ("extruded
    /// from cow.svg", "run step 500"). A malformed mesh is refused and the old one kept.
    pub fn set_mesh(
        &mut self,
        mesh: Mesh,
        source_label: impl Into<String>,
    ) -> Result<(), MeshError> {
        self.viewport.set_mesh(mesh)?;
        self.source = Some(source_label.into());
        self.notes.clear();
        Ok(())
    }

    /// The mesh shown (all parts, visible or not).
    pub fn mesh(&self) -> &Mesh {
        self.viewport.mesh()
    }

    /// Where the mesh came from.
    pub fn source_label(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// What the last extrusion approximated or left out.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The viewport (camera, part visibility).
    pub fn viewport(&self) -> &Viewport3d {
        &self.viewport
    }

    /// The viewport, mutably (scripts and tests set the camera).
    pub fn viewport_mut(&mut self) -> &mut Viewport3d {
        &mut self.viewport
    }

    /// The visible parts as one mesh (what *Export GLB…* writes).
    pub fn visible_mesh(&self) -> Mesh {
        Mesh {
            parts: (self.mesh().parts.iter().enumerate())
                .filter(|(i, _)| self.viewport.part_visible(*i))
                .map(|(_, p)| p.clone())
                .collect(),
        }
    }

    /// Opens a GLB file into the view; returns the status line (an error says which file and why).
    pub fn open_glb(&mut self, path: &Path) -> String {
        let mesh = match read_glb(path) {
            Ok(m) => m,
            Err(e) => return format!("Error: {e}"),
        };
        let what = describe(&mesh);
        match self.set_mesh(mesh, format!("opened {}", file_name(path))) {
            Ok(()) => format!("Opened {}: {what}", path.display()),
            Err(e) => format!("Error: {}: {e}", path.display()),
        }
    }

    /// Extrudes `doc` with [`Self::extrude`] into the view; returns the status line. `name` is the
    /// document's label for the source line.
    pub fn extrude_document(&mut self, doc: &Document, name: &str) -> String {
        let extrusion = match extrude_document(doc, &self.extrude) {
            Ok(x) => x,
            Err(e) => return format!("Error: {e}"),
        };
        if extrusion.mesh.parts.is_empty() {
            return format!("Nothing to extrude: {name} has no visible fills or strokes");
        }
        let what = describe(&extrusion.mesh);
        if let Err(e) = self.set_mesh(extrusion.mesh, format!("extruded from {name}")) {
            return format!("Error: extruding {name}: {e}");
        }
        self.notes = extrusion.notes;
        let notes = match self.notes.len() {
            0 => String::new(),
            1 => " (1 note in the 3D panel)".into(),
            n => format!(" ({n} notes in the 3D panel)"),
        };
        format!("Extruded {name}: {what}{notes}")
    }

    /// Writes the visible parts to `path` as GLB (atomically); returns the status line.
    pub fn export_glb(&self, path: &Path) -> String {
        let mesh = self.visible_mesh();
        if mesh.parts.is_empty() {
            return NOTHING_TO_EXPORT.into();
        }
        let hidden = self.mesh().parts.len() - mesh.parts.len();
        match write_glb(path, &mesh) {
            Ok(()) if hidden > 0 => format!(
                "Exported {}: {} ({hidden} hidden part{} left out)",
                path.display(),
                describe(&mesh),
                if hidden == 1 { "" } else { "s" }
            ),
            Ok(()) => format!("Exported {}: {}", path.display(), describe(&mesh)),
            Err(e) => format!("Error: {e}"),
        }
    }

    /// Opens a file on the 3D tab: a `.glb` is read, anything else is taken for an SVG document
    /// already opened in the editor (`doc`) and extruded. Returns the status line.
    pub fn open_file(&mut self, path: &Path, doc: Option<&Document>) -> String {
        self.active = true;
        let is_glb = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("glb"));
        match (is_glb, doc) {
            (true, _) => self.open_glb(path),
            (false, Some(doc)) => self.extrude_document(doc, &file_name(path)),
            (false, None) => format!("Error: {}: no document to extrude", path.display()),
        }
    }

    fn apply(&mut self, action: Tab3dAction, cx: &mut Tab3dContext<'_>) {
        let message = match action {
            Tab3dAction::Extrude => match cx.document {
                Some(doc) => {
                    let name = cx
                        .document_path
                        .map_or_else(|| "the current document".to_string(), file_name);
                    self.extrude_document(doc, &name)
                }
                None => "Nothing to extrude: open or create a document first".into(),
            },
            Tab3dAction::OpenGlb => match cx.dialogs.pick(DialogKind::OpenGlb) {
                Some(path) => self.open_glb(&path),
                None => return,
            },
            Tab3dAction::ExportGlb if self.visible_mesh().parts.is_empty() => {
                NOTHING_TO_EXPORT.into()
            }
            Tab3dAction::ExportGlb => match cx.dialogs.pick(DialogKind::ExportGlb) {
                Some(path) => self.export_glb(&with_glb_extension(path)),
                None => return,
            },
        };
        *cx.status = Some(message);
    }

    /// Draws the tab into the space the menu and status bars leave (the app calls this instead of the
    /// 2D editor's panels while the tab is active).
    pub fn ui(&mut self, ui: &mut egui::Ui, mut cx: Tab3dContext<'_>) {
        for action in std::mem::take(&mut self.pending) {
            self.apply(action, &mut cx);
        }
        egui::Panel::left("tab3d_panel")
            .resizable(true)
            .default_size(270.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.run_panel_slot(ui);
                    self.actions_ui(ui);
                });
            });
        egui::Panel::right("tab3d_parts")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| self.parts_ui(ui));
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| {
                self.viewport.show(ui);
            });
        // The buttons' actions: applied now, shown next frame.
        let actions = std::mem::take(&mut self.pending);
        if !actions.is_empty() {
            ui.ctx().request_repaint();
        }
        for action in actions {
            self.apply(action, &mut cx);
        }
    }

    /// The 3D run panel (prompt / views folder, Start · Pause · Step · Stop, progress): its latest
    /// preview render under the controls, its meshes into the viewport as they come.
    fn run_panel_slot(&mut self, ui: &mut egui::Ui) {
        if let Some(u) = self.run.poll() {
            let texture = ui
                .ctx()
                .load_texture("run3d-preview", u.preview, Default::default());
            self.preview = Some(Preview(texture));
            if let Some(mesh) = u.mesh {
                let label = if u.finished {
                    format!("3D run, finished at step {}", u.step)
                } else {
                    format!("3D run, step {}", u.step)
                };
                if let Err(e) = self.set_mesh(mesh, label) {
                    self.run.error = Some(format!("the run's mesh is malformed: {e}"));
                }
            }
        }
        self.run.ui(ui);
        if let Some(Preview(t)) = &self.preview {
            ui.image(egui::load::SizedTexture::new(
                t.id(),
                egui::vec2(128.0, 128.0),
            ));
        }
        if self.run.is_running() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(50));
        }
        ui.separator();
    }

    fn actions_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Mesh");
        match &self.source {
            Some(s) => ui.label(format!("Showing: {s}")),
            None => ui.weak("No mesh yet: extrude the document or open a GLB."),
        };
        ui.add_space(4.0);
        let full = egui::vec2(ui.available_width(), 0.0);
        if ui
            .add_sized(full, egui::Button::new("Extrude current document"))
            .clicked()
        {
            self.pending.push(Tab3dAction::Extrude);
        }
        ui.horizontal(|ui| {
            if ui.button("Open GLB…").clicked() {
                self.pending.push(Tab3dAction::OpenGlb);
            }
            if ui.button("Export GLB…").clicked() {
                self.pending.push(Tab3dAction::ExportGlb);
            }
            if ui
                .button("Frame")
                .on_hover_text("Fit the mesh in the view (or double-click the view)")
                .clicked()
            {
                self.viewport.frame(false);
            }
        });
        ui.add_space(6.0);
        ui.collapsing("Extrusion", |ui| {
            egui::Grid::new("tab3d_extrude")
                .num_columns(2)
                .show(ui, |ui| {
                    ui.label("Depth");
                    ui.add(
                        egui::DragValue::new(&mut self.extrude.depth)
                            .range(0.001..=1.0)
                            .speed(0.001),
                    )
                    .on_hover_text("Thickness of each layer (1 = the document's longer side)");
                    ui.end_row();
                    ui.label("Layer gap");
                    ui.add(
                        egui::DragValue::new(&mut self.extrude.layer_gap)
                            .range(0.0..=0.5)
                            .speed(0.0005),
                    )
                    .on_hover_text("How far each painted layer sits in front of the one before");
                    ui.end_row();
                });
        });
        if !self.notes.is_empty() {
            ui.add_space(6.0);
            ui.label("Notes");
            for n in &self.notes {
                ui.weak(n);
            }
        }
    }

    fn parts_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Parts");
        let mesh = self.viewport.mesh();
        if mesh.parts.is_empty() {
            ui.weak("No parts");
            return;
        }
        ui.label(describe(mesh));
        ui.separator();
        let rows: Vec<(String, usize, usize)> = mesh
            .parts
            .iter()
            .map(|p| (p.name.clone(), p.vertex_count(), p.triangle_count()))
            .collect();
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("tab3d_parts_grid")
                .num_columns(3)
                .striped(true)
                .show(ui, |ui| {
                    ui.strong("part");
                    ui.strong("vertices");
                    ui.strong("triangles");
                    ui.end_row();
                    for (i, (name, vertices, triangles)) in rows.into_iter().enumerate() {
                        let mut visible = self.viewport.part_visible(i);
                        let label = if name.is_empty() {
                            format!("part {}", i + 1)
                        } else {
                            name
                        };
                        if ui
                            .checkbox(&mut visible, label)
                            .on_hover_text("Show or hide this part (hidden parts are not exported)")
                            .changed()
                        {
                            self.viewport.set_part_visible(i, visible);
                        }
                        ui.label(vertices.to_string());
                        ui.label(triangles.to_string());
                        ui.end_row();
                    }
                });
        });
    }
}

/// Adds `.glb` to an export path without an extension (a dialog may return the bare name typed).
fn with_glb_extension(path: PathBuf) -> PathBuf {
    if path.extension().is_some() {
        path
    } else {
        path.with_extension("glb")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecdream_core::mesh::MeshPart;

    fn quad(name: &str) -> MeshPart {
        MeshPart {
            name: name.into(),
            positions: vec![
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [1.0, 1.0, 0.0],
                [0.0, 1.0, 0.0],
            ],
            normals: vec![[0.0, 0.0, 1.0]; 4],
            colors: vec![[0.2, 0.4, 0.8, 1.0]; 4],
            indices: vec![0, 1, 2, 0, 2, 3],
        }
    }

    #[test]
    fn hidden_parts_are_left_out_of_the_export_mesh() {
        let mut tab = Tab3d::new(None);
        let mesh = Mesh {
            parts: vec![quad("a"), quad("b"), quad("c")],
        };
        tab.set_mesh(mesh, "test").unwrap();
        assert_eq!(tab.source_label(), Some("test"));
        tab.viewport_mut().set_part_visible(1, false);
        let names: Vec<_> = tab
            .visible_mesh()
            .parts
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn export_paths_get_the_glb_extension_only_when_they_have_none() {
        assert_eq!(
            with_glb_extension("out/model".into()),
            PathBuf::from("out/model.glb")
        );
        assert_eq!(
            with_glb_extension("out/model.GLB".into()),
            PathBuf::from("out/model.GLB")
        );
    }

    #[test]
    fn errors_name_the_file() {
        let mut tab = Tab3d::new(None);
        let missing = Path::new("/nonexistent/vecdream/model.glb");
        let msg = tab.open_glb(missing);
        assert!(
            msg.starts_with("Error: ") && msg.contains("model.glb"),
            "{msg}"
        );
        assert!(tab.mesh().parts.is_empty());
        let msg = tab.export_glb(Path::new("/nonexistent/x.glb"));
        assert!(msg.starts_with("Nothing to export"), "{msg}");
    }
}
