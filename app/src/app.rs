//! The eframe application: menu bar, prompt panel, viewport, object tree and status bar.

use std::path::{Path, PathBuf};

use vecdream_core::{Command, Document, Editor};
use vecdream_ui::{PromptPanel, Selection, StatusInfo, TreePanel, Viewport};

use crate::dialogs::{DialogKind, FileDialogs, NativeDialogs};
use crate::settings::Settings;

/// Something the user asked for through the menu; applied after the frame is drawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppCommand {
    /// File → Open SVG…
    OpenSvg,
    /// File → Open image…
    OpenImage,
    /// File → Export…
    Export,
    /// File → Quit
    Quit,
}

/// The vecdream editor.
pub struct VecdreamApp {
    settings: Settings,
    dialogs: Box<dyn FileDialogs>,
    prompt: PromptPanel,
    tree: TreePanel,
    viewport: Viewport,
    status: StatusInfo,
    editor: Option<Editor>,
    selection: Selection,
    document_path: Option<PathBuf>,
    pending: Vec<AppCommand>,
    persist: bool,
}

/// How the app is built: where its dialogs come from and what the status bar says about the runtime.
pub struct AppOptions {
    /// File dialogs (native by default; tests inject scripted ones).
    pub dialogs: Box<dyn FileDialogs>,
    /// Device label for the status bar, e.g. "CPU, 2 threads".
    pub device_label: String,
    /// libtorch version for the status bar.
    pub torch_version: String,
    /// Whether to load and save the user's settings (off in tests).
    pub persist: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        let info = vecdream_gpu::device::RuntimeInfo::query();
        Self {
            dialogs: Box::new(NativeDialogs),
            device_label: info.device_label(),
            torch_version: info.torch_version,
            persist: true,
        }
    }
}

impl VecdreamApp {
    /// Builds the app.
    pub fn new(_cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let settings = if options.persist {
            Settings::load()
        } else {
            Settings::default()
        };
        Self {
            prompt: PromptPanel {
                settings: settings.prompt.clone(),
            },
            settings,
            dialogs: options.dialogs,
            tree: TreePanel::default(),
            viewport: Viewport::default(),
            status: StatusInfo {
                device: options.device_label,
                torch_version: options.torch_version,
                message: None,
            },
            editor: None,
            selection: Selection::default(),
            document_path: None,
            pending: Vec::new(),
            persist: options.persist,
        }
    }

    /// The open document, if any.
    pub fn document(&self) -> Option<&Document> {
        self.editor.as_ref().map(Editor::document)
    }

    /// The selected nodes.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Applies edit commands through the document's undo history, then refreshes the view. Errors go to
    /// the status bar; a failed command changes nothing.
    pub fn apply_commands(&mut self, ctx: &egui::Context, commands: Vec<Command>) {
        let Some(editor) = &mut self.editor else {
            return;
        };
        if commands.is_empty() {
            return;
        }
        for command in commands {
            if let Err(e) = editor.apply(command) {
                self.status.message = Some(format!("Edit refused: {e}"));
            }
        }
        self.refresh(ctx);
    }

    /// Undoes the last edit (Ctrl+Z).
    pub fn undo(&mut self, ctx: &egui::Context) {
        if self.editor.as_mut().is_some_and(Editor::undo) {
            self.refresh(ctx);
        }
    }

    /// Redoes the last undone edit (Ctrl+Shift+Z).
    pub fn redo(&mut self, ctx: &egui::Context) {
        if self.editor.as_mut().is_some_and(Editor::redo) {
            self.refresh(ctx);
        }
    }

    /// Re-renders the preview after the document changed, and drops selected ids that no longer exist.
    fn refresh(&mut self, ctx: &egui::Context) {
        let Some(editor) = &self.editor else {
            return;
        };
        let doc = editor.document().clone();
        self.selection.retain(|id| doc.meta(id).is_some());
        self.show_document_frame(ctx, &doc);
    }

    /// The prompt panel's settings.
    pub fn prompt_settings(&self) -> &vecdream_ui::PromptSettings {
        &self.prompt.settings
    }

    /// Replaces the status message.
    pub fn set_status_message(&mut self, message: impl Into<String>) {
        self.status.message = Some(message.into());
    }

    /// The latest status message.
    pub fn status_message(&self) -> Option<&str> {
        self.status.message.as_deref()
    }

    /// Whether the viewport shows a frame.
    pub fn viewport_has_frame(&self) -> bool {
        self.viewport.has_frame()
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open SVG…").clicked() {
                    self.pending.push(AppCommand::OpenSvg);
                }
                if ui.button("Open image…").clicked() {
                    self.pending.push(AppCommand::OpenImage);
                }
                if ui.button("Export…").clicked() {
                    self.pending.push(AppCommand::Export);
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    self.pending.push(AppCommand::Quit);
                }
            });
        });
    }

    fn run_command(&mut self, ctx: &egui::Context, command: AppCommand) {
        match command {
            AppCommand::OpenSvg => {
                if let Some(path) = self.dialogs.pick(DialogKind::OpenSvg) {
                    self.open_svg(ctx, &path);
                }
            }
            AppCommand::OpenImage => {
                if let Some(path) = self.dialogs.pick(DialogKind::OpenImage) {
                    self.status.message = Some(format!(
                        "{}: image vectorising arrives with the vectoriser",
                        path.display()
                    ));
                }
            }
            AppCommand::Export => self.export(),
            AppCommand::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
        }
    }

    /// Opens an SVG document and shows it; errors go to the status bar.
    pub fn open_svg(&mut self, ctx: &egui::Context, path: &Path) {
        match crate::io::load_svg(path) {
            Ok(doc) => {
                self.show_document_frame(ctx, &doc);
                self.status.message = Some(format!("Opened {}", path.display()));
                self.editor = Some(Editor::new(doc));
                self.selection.clear();
                self.document_path = Some(path.to_path_buf());
            }
            Err(e) => self.status.message = Some(format!("Error: {e}")),
        }
    }

    fn show_document_frame(&mut self, ctx: &egui::Context, doc: &Document) {
        let (w, h) = crate::io::preview_size(doc, 512);
        match crate::io::render_rgba(doc, w, h) {
            Ok(rgba) => {
                let image =
                    egui::ColorImage::from_rgba_unmultiplied([w as usize, h as usize], &rgba);
                self.viewport.canvas = egui::vec2(w as f32, h as f32);
                self.viewport.set_frame(ctx, image);
            }
            Err(e) => self.status.message = Some(format!("Error: {e}")),
        }
    }

    fn export(&mut self) {
        let Some(doc) = self.document() else {
            self.status.message = Some("Nothing to export: open or create a document first".into());
            return;
        };
        let doc = doc.clone();
        let Some(path) = self.dialogs.pick(DialogKind::Export) else {
            return;
        };
        self.status.message = Some(match crate::io::export(&doc, &path) {
            Ok(()) => format!("Exported {}", path.display()),
            Err(e) => format!("Error: {e}"),
        });
    }
}

impl eframe::App for VecdreamApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("menu_bar").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status.ui(ui));
        egui::Panel::left("prompt_panel")
            .resizable(true)
            .default_size(280.0)
            .show(ui, |ui| self.prompt.ui(ui));
        let tree = egui::Panel::right("object_tree")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| {
                let doc = self.editor.as_ref().map(Editor::document);
                self.tree.ui(ui, doc, &mut self.selection)
            });
        let edits = tree.inner;
        egui::CentralPanel::default().show(ui, |ui| {
            self.viewport.ui(ui);
        });
        let ctx = ui.ctx().clone();
        self.apply_commands(&ctx, edits);
        let (undo, redo) = ctx.input_mut(|i| {
            let redo = i.consume_key(
                egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
                egui::Key::Z,
            );
            let undo = i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z);
            (undo, redo)
        });
        if redo {
            self.redo(&ctx);
        } else if undo {
            self.undo(&ctx);
        }
        for command in std::mem::take(&mut self.pending) {
            self.run_command(&ctx, command);
        }
    }

    fn save(&mut self, _storage: &mut dyn eframe::Storage) {
        if !self.persist {
            return;
        }
        self.settings.prompt = self.prompt.settings.clone();
        if let Err(e) = self.settings.save() {
            tracing::warn!("cannot save settings: {e}");
        }
    }
}

/// Opens the editor window (blocks until it closes).
pub fn run_window() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("vecdream")
            .with_app_id(crate::settings::APP_ID)
            .with_inner_size([1280.0, 800.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "vecdream",
        options,
        Box::new(|cc| Ok(Box::new(VecdreamApp::new(cc, AppOptions::default())))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
