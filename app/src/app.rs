//! The eframe application: menu bar, prompt and run panel, live viewport, object tree, loss plot and
//! status bar. Heavy work runs on the distillation worker thread; the UI polls its events every frame.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vecdream_core::{Command, Document, Editor};
use vecdream_gpu::distill::{self, Event, Worker};
use vecdream_ui::{
    GuidanceMethod, LossPlot, ModelFolderStatus, PromptPanel, RunAction, RunPanel, RunStatus,
    Selection, StatusInfo, TreePanel, Viewport,
};

use crate::dialogs::{DialogKind, FileDialogs, NativeDialogs};

mod recovery;
use crate::settings::Settings;

/// Something the user asked for through the menu or a drop; applied after the frame is drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    /// File → Open SVG…
    OpenSvg,
    /// File → Open image…
    OpenImage,
    /// File → Export…
    Export,
    /// File → Export GLB (extruded)…
    ExportGlb,
    /// File → Quit
    Quit,
    /// Use this image as a reference for the reference-image teacher.
    UseAsReference(PathBuf),
    /// Vectorise this image into a new document.
    Vectorize(PathBuf),
    /// Edit → Recolour to palette (the style panel's palette).
    RecolorPalette,
    /// Edit → Recolour from image…
    RecolorImage,
}

/// How the app is built: where its dialogs come from and what the status bar says about the runtime.
pub struct AppOptions {
    /// File dialogs (native by default; tests inject scripted ones).
    pub dialogs: Box<dyn FileDialogs>,
    /// Device label for the status bar, e.g. "CPU, 2 threads".
    pub device_label: String,
    /// libtorch version for the status bar.
    pub torch_version: String,
    /// Whether to load and save settings and autosaves (off in tests).
    pub persist: bool,
    /// Where session folders (autosave, run checkpoints, crash recovery) live when not beside the
    /// settings; set, it turns recovery on even without `persist` (tests).
    pub sessions: Option<PathBuf>,
    /// Start the weight-free demo at launch when no model folder is set.
    pub autostart_demo: bool,
    /// Leave out the numbers that vary from run to run and machine to machine (UI frame time, it/s,
    /// ETA), so snapshot tests of a run are deterministic.
    pub hide_timings: bool,
    /// The compute device runs use; `None` picks [`vecdream_gpu::device::best_device`] (which honours
    /// `VECDREAM_DEVICE`). Tests pin the CPU so a GPU host cannot change their results.
    pub device: Option<vecdream_gpu::tch::Device>,
    /// Whether `VECDREAM_MODEL` may override the model folder of the settings (off in tests, so a
    /// user's environment cannot change them).
    pub model_env: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        let info = vecdream_gpu::device::RuntimeInfo::query();
        Self {
            dialogs: Box::new(NativeDialogs),
            device_label: info.device_label(),
            torch_version: info.torch_version,
            persist: true,
            sessions: None,
            autostart_demo: true,
            hide_timings: false,
            device: None,
            model_env: true,
        }
    }
}

/// The vecdream editor.
pub struct VecdreamApp {
    settings: Settings,
    device: Option<vecdream_gpu::tch::Device>,
    model_env: bool,
    dialogs: Box<dyn FileDialogs>,
    prompt: PromptPanel,
    scores: crate::scores::LatestScores,
    run_panel: RunPanel,
    tree: TreePanel,
    viewport: Viewport,
    loss: LossPlot,
    status: StatusInfo,
    editor: Option<Editor>,
    selection: Selection,
    document_path: Option<PathBuf>,
    pending: Vec<AppCommand>,
    persist: bool,
    worker: Worker,
    run: RunStatus,
    model: ModelFolderStatus,
    references: Vec<(String, RgbaPixels)>,
    particle_docs: Vec<Document>,
    dropped_image: Option<PathBuf>,
    restore_offer: Option<crate::autosave::Crashed>,
    session: Option<crate::autosave::Session>,
    autosave_secs: f64,
    last_checkpoint: Instant,
    resume_from: Option<PathBuf>,
    last_autosave: Instant,
    frame_times: Vec<f32>,
    pending_edit: Option<bool>,
    frames_received: usize,
    events_received: usize,
    vectorizing: Option<std::sync::mpsc::Receiver<crate::io::VectorizeMsg>>,
    recoloring: Option<crate::recolor_job::RecolorJob>,
    preview: crate::preview::PreviewRenderer,
    /// Vectorising gives shaded regions linear-gradient fills (off: flat colours only).
    vectorize_gradients: bool,
    tab3d: crate::tab3d::Tab3d,
}

/// A straight-alpha RGBA8 image: `(width, height, pixels)`.
pub type RgbaPixels = (u32, u32, Vec<u8>);

impl VecdreamApp {
    /// Builds the app and its worker thread.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let settings = if options.persist {
            Settings::load()
        } else {
            Settings::default()
        };
        let ctx = cc.egui_ctx.clone();
        let worker = Worker::spawn_with_waker(Some(Box::new(move || ctx.request_repaint())));
        let mut app = Self {
            prompt: PromptPanel {
                settings: settings.prompt.clone(),
                guided_by: String::new(),
                pick_clip_folder: false,
            },
            settings,
            device: options.device,
            model_env: options.model_env,
            dialogs: options.dialogs,
            run_panel: RunPanel {
                hide_timings: options.hide_timings,
            },
            tree: TreePanel::default(),
            viewport: Viewport::default(),
            loss: LossPlot::default(),
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
            worker,
            run: RunStatus::default(),
            model: ModelFolderStatus::default(),
            references: Vec::new(),
            particle_docs: Vec::new(),
            dropped_image: None,
            restore_offer: None,
            session: None,
            autosave_secs: crate::autosave::interval_secs(),
            last_checkpoint: Instant::now(),
            resume_from: None,
            last_autosave: Instant::now(),
            frame_times: Vec::new(),
            pending_edit: None,
            frames_received: 0,
            events_received: 0,
            scores: Default::default(),
            vectorizing: None,
            recoloring: None,
            preview: crate::preview::PreviewRenderer::new(),
            vectorize_gradients: true,
            tab3d: crate::tab3d::Tab3d::new(cc.wgpu_render_state.as_ref()),
        };
        app.validate_model_folder();
        if app.persist || options.sessions.is_some() {
            app.start_session(options.sessions.clone());
        }
        if options.autostart_demo && app.restore_offer.is_none() && app.model.folder.is_none() {
            app.prompt.settings.method = GuidanceMethod::Reference;
            app.start_run(&cc.egui_ctx);
        }
        app
    }

    /// The open document, if any.
    pub fn document(&self) -> Option<&Document> {
        self.editor.as_ref().map(Editor::document)
    }

    /// The particles' documents of the last snapshot the worker sent.
    pub fn particle_documents(&self) -> &[Document] {
        &self.particle_docs
    }

    /// The central viewport (zoom, pan, where the canvas is on screen).
    pub fn viewport(&self) -> &Viewport {
        &self.viewport
    }

    /// The 3D tab (its mesh, viewport and camera).
    pub fn tab3d(&self) -> &crate::tab3d::Tab3d {
        &self.tab3d
    }

    /// The 3D tab, mutably (scripts and tests).
    pub fn tab3d_mut(&mut self) -> &mut crate::tab3d::Tab3d {
        &mut self.tab3d
    }

    /// Opens a file on the 3D tab: a `.glb` as it is, an SVG opened in the editor and extruded.
    pub fn open_in_3d(&mut self, ctx: &egui::Context, path: &Path) {
        let is_glb = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("glb"));
        if !is_glb {
            self.open_svg(ctx, path);
            if self.document_path.as_deref() != Some(path) {
                return; // the status line says why it did not open
            }
        }
        let doc = self.editor.as_ref().map(Editor::document);
        self.status.message = Some(self.tab3d.open_file(path, doc));
    }

    /// The current selection.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The run's status.
    pub fn run_status(&self) -> &RunStatus {
        &self.run
    }

    /// Texture ids of the particle pictures in the viewport.
    pub fn frame_ids(&self) -> Vec<egui::TextureId> {
        self.viewport.frame_ids()
    }

    /// Number of particle frames received from the worker since launch.
    pub fn frames_received(&self) -> usize {
        self.frames_received
    }

    /// Number of events (frames, losses, progress…) received from the worker since launch.
    pub fn events_received(&self) -> usize {
        self.events_received
    }

    /// The prompt panel's settings.
    pub fn prompt_settings(&self) -> &vecdream_ui::PromptSettings {
        &self.prompt.settings
    }

    /// Mutable prompt settings (scripts and tests).
    pub fn prompt_settings_mut(&mut self) -> &mut vecdream_ui::PromptSettings {
        &mut self.prompt.settings
    }

    /// Number of reference images chosen.
    pub fn reference_count(&self) -> usize {
        self.references.len()
    }

    /// Median UI frame time in ms over the last frames (for the metrics panel and tests).
    pub fn median_frame_ms(&self) -> Option<f32> {
        let mut v = self.frame_times.clone();
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).copied()
    }

    /// CPU time of the latest `ui` call in ms: polling the worker, uploading its frames and building every
    /// panel (not egui's tessellation or the GPU's drawing).
    pub fn last_frame_ms(&self) -> Option<f32> {
        self.frame_times.last().copied()
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

    /// Sends the worker a command (scripts and tests); false when the worker is gone.
    pub fn send_to_worker(&self, command: distill::Command) -> bool {
        self.worker.send(command)
    }

    /// Applies edit commands through the document's undo history, then refreshes the view and tells a
    /// running worker. Errors go to the status bar; a failed command changes nothing.
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
        self.document_changed(ctx);
    }

    /// Undoes the last edit (Ctrl+Z).
    pub fn undo(&mut self, ctx: &egui::Context) {
        if self.editor.as_mut().is_some_and(Editor::undo) {
            self.document_changed(ctx);
        }
    }

    /// Redoes the last undone edit (Ctrl+Shift+Z).
    pub fn redo(&mut self, ctx: &egui::Context) {
        if self.editor.as_mut().is_some_and(Editor::redo) {
            self.document_changed(ctx);
        }
    }

    /// After an edit: refresh the picture and send the document to a running worker, so locks and
    /// edits apply from the next step on.
    fn document_changed(&mut self, ctx: &egui::Context) {
        let Some(editor) = &self.editor else {
            return;
        };
        let doc = editor.document().clone();
        self.selection.retain(|id| doc.meta(id).is_some());
        if self.run.active {
            self.worker
                .send(distill::Command::ReplaceDocument(Box::new(doc.clone())));
        }
        if !self.run.active || self.run.paused {
            self.show_document_frame(ctx, &doc);
        }
    }

    /// The model folder in effect: `VECDREAM_MODEL` (unless the options turned it off), else the settings'.
    fn model_folder(&self) -> Option<PathBuf> {
        if self.model_env {
            self.settings.effective_model_folder()
        } else {
            self.settings.model_folder.clone()
        }
    }

    fn validate_model_folder(&mut self) {
        let folder = self.model_folder();
        self.model = ModelFolderStatus {
            folder: folder.as_ref().map(|f| f.display().to_string()),
            verdict: folder.as_deref().map(crate::model_folder::inspect),
        };
    }

    /// Starts a run with the prompt panel's settings: Stable Diffusion guidance when a valid model
    /// folder is set, else the reference-image teacher (the chosen references or the bundled demo).
    pub fn start_run(&mut self, ctx: &egui::Context) {
        let s = self.prompt.settings.clone();
        let device = self
            .device
            .unwrap_or_else(vecdream_gpu::device::best_device);
        let model_ok = matches!(&self.model.verdict, Some(Ok(_)));
        let built = if s.method == GuidanceMethod::ClipDraw {
            crate::generation::clipdraw_request(&s, self.document(), device)
        } else if s.method == GuidanceMethod::Reference {
            let images: Vec<_> = if self.references.is_empty() {
                crate::demo::demo_images(256)
            } else {
                self.references.iter().map(|(_, img)| img.clone()).collect()
            };
            crate::generation::reference_request(&s, images, self.document(), device)
        } else {
            let (true, Some(model_dir)) = (model_ok, self.model_folder()) else {
                let why = match &self.model.verdict {
                    Some(Err(why)) => why.clone(),
                    _ => "no model folder is set".into(),
                };
                self.status.message = Some(format!(
                    "Cannot start {}: {why}. Remedy: choose a diffusers Stable Diffusion folder \
                     (Model folder → Choose…) or pick \"Reference images\", which needs no weights.",
                    s.method.label()
                ));
                return;
            };
            crate::generation::sd_request(&s, model_dir, self.document(), device)
        };
        let request = match built.and_then(|r| crate::generation::add_clip(&s, r)) {
            Ok(r) => r,
            Err(e) => {
                self.status.message = Some(format!("Cannot start: {e}"));
                return;
            }
        };
        // The particles' documents come back after every step, so the tree, the properties and edits
        // made while paused (a lock keeps the shape where it is now) work on the live state.
        let mut request = request;
        request.snapshot_every = 1;
        request.resume_from = self.resume_from.take();
        self.record_run(&s, request.resume_from.is_some());
        if self.editor.is_none() {
            self.editor = Some(Editor::new(request.document.clone()));
        }
        self.loss.clear();
        self.preview.reset();
        self.viewport.truncate_particles(request.config.particles);
        self.run = RunStatus {
            active: true,
            total: request.config.steps,
            guidance: "starting…".into(),
            ..RunStatus::default()
        };
        if !self.worker.send(distill::Command::Start(Box::new(request))) {
            self.run.active = false;
            self.status.message = Some("Error: the worker thread is gone; restart vecdream".into());
        }
        ctx.request_repaint();
    }

    fn run_action(&mut self, ctx: &egui::Context, action: RunAction) {
        match action {
            RunAction::Start => self.start_run(ctx),
            RunAction::Pause => {
                self.worker.send(distill::Command::Pause);
            }
            RunAction::Resume => {
                self.worker.send(distill::Command::Resume);
            }
            RunAction::Step => {
                self.worker.send(distill::Command::Step(1));
            }
            RunAction::Stop => {
                self.worker.send(distill::Command::Stop);
            }
            RunAction::ChooseModelFolder => {
                if let Some(dir) = self.dialogs.pick(DialogKind::ModelFolder) {
                    self.settings.model_folder = Some(dir);
                    self.validate_model_folder();
                }
            }
        }
    }

    /// Applies the worker's events; returns whether anything arrived.
    fn poll_worker(&mut self, ctx: &egui::Context) -> bool {
        let events = self.worker.drain();
        let any = !events.is_empty();
        self.events_received += events.len();
        for event in events {
            self.on_event(ctx, event);
        }
        any
    }

    fn on_event(&mut self, ctx: &egui::Context, event: Event) {
        match event {
            Event::Preparing { done, total } => {
                self.run.guidance = format!("vectorising samples {done}/{total}…");
            }
            Event::Started {
                guidance,
                particles,
                step,
                total_steps,
                ..
            } => {
                tracing::info!("run started at step {step} of {total_steps}");
                self.run.active = true;
                self.run.paused = false;
                self.run.step = step;
                self.run.total = total_steps;
                self.run.guidance = guidance;
                self.viewport.truncate_particles(particles);
                self.scores.clear();
                self.viewport.particle_labels.clear();
            }
            Event::Frame { frame, .. } => {
                self.frames_received += 1;
                // The active particle is shown crisply (vector previews) once one is there.
                if frame.particle == self.viewport.active_particle
                    && self.preview.shown_step.is_some()
                {
                    return;
                }
                let image = egui::ColorImage::from_rgba_unmultiplied(
                    [frame.width, frame.height],
                    &frame.rgba,
                );
                self.viewport.set_particle_frame(ctx, frame.particle, image);
            }
            Event::Scores(scores) => {
                self.scores.update(&scores);
                self.viewport.particle_labels = self.scores.labels();
            }
            Event::Losses { step, loss, terms } => {
                self.loss.push(step, loss);
                if let Some((_, n)) = terms.iter().find(|(k, _)| k == "shapes") {
                    self.loss.push_shapes(step, *n);
                }
            }
            Event::Progress {
                step,
                total,
                it_per_s,
                eta_secs,
            } => {
                self.run.step = step;
                self.run.total = total;
                self.run.it_per_s = it_per_s;
                self.run.eta_secs = eta_secs;
            }
            Event::StepSkipped { step, reason } => {
                self.status.message = Some(format!("Step {step} skipped: {reason}"));
            }
            Event::Snapshot { step, documents } => {
                self.take_particles(documents);
                if let Some(doc) = self.document() {
                    let doc = doc.clone();
                    self.preview.request(step, &doc, 512);
                }
            }
            Event::Paused { step } => {
                self.run.paused = true;
                self.run.step = step;
                self.checkpoint_run();
                self.show_crisp_document(ctx);
            }
            Event::Resumed { step } => {
                self.run.paused = false;
                self.run.step = step;
            }
            Event::Finished { step, documents } => {
                self.run.paused = true;
                self.run.step = step;
                self.take_particles(documents);
                self.show_crisp_document(ctx);
                self.status.message = Some(format!("Finished after {step} steps"));
            }
            Event::Stopped { step, documents } => {
                self.run.active = false;
                if let Some(session) = &self.session {
                    session.clear_run();
                }
                self.run.step = step;
                self.take_particles(documents);
                self.show_crisp_document(ctx);
                self.status.message = Some(format!("Stopped after {step} steps"));
            }
            Event::CheckpointSaved { path } => {
                tracing::debug!("checkpoint saved: {}", path.display());
            }
            Event::Warning { message } => self.status.message = Some(format!("Warning: {message}")),
            Event::Error { message } => {
                self.run.active = false;
                let remedy = if message.contains("out of memory") && !message.contains("Remedy") {
                    " Remedy: fewer particles or a smaller size."
                } else {
                    ""
                };
                self.status.message = Some(format!("Error: {message}.{remedy}"));
            }
        }
    }

    /// The optimiser's particles: the active one becomes the working document (no undo step), unless
    /// the user is in the middle of a drag.
    fn take_particles(&mut self, documents: Vec<Document>) {
        if documents.is_empty() {
            return;
        }
        let i = self.viewport.active_particle.min(documents.len() - 1);
        let doc = documents[i].clone();
        match &mut self.editor {
            Some(editor) if editor.in_transaction() => {}
            Some(editor) => editor.replace_untracked(doc),
            None => self.editor = Some(Editor::new(doc)),
        }
        self.particle_docs = documents;
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
                if ui.button("Export GLB (extruded)…").clicked() {
                    self.pending.push(AppCommand::ExportGlb);
                }
                ui.separator();
                self.tab3d.file_menu(ui);
                ui.separator();
                if ui.button("Quit").clicked() {
                    self.pending.push(AppCommand::Quit);
                }
            });
            ui.menu_button("Edit", |ui| {
                if ui.button("Undo").clicked() {
                    self.pending_edit = Some(false);
                }
                if ui.button("Redo").clicked() {
                    self.pending_edit = Some(true);
                }
                ui.separator();
                if ui.button("Recolour to palette").clicked() {
                    self.pending.push(AppCommand::RecolorPalette);
                }
                if ui.button("Recolour from image…").clicked() {
                    self.pending.push(AppCommand::RecolorImage);
                }
            });
            ui.separator();
            self.tab3d.tab_switch(ui);
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
                    self.dropped_image = Some(path);
                }
            }
            AppCommand::Export => self.export(),
            AppCommand::ExportGlb => {
                let doc = self.document().cloned();
                if let Some(msg) =
                    crate::io::export_glb_with_dialog(doc.as_ref(), self.dialogs.as_mut())
                {
                    self.status.message = Some(msg);
                }
            }
            AppCommand::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            AppCommand::UseAsReference(path) => self.add_reference(&path),
            AppCommand::Vectorize(path) => self.vectorize(ctx, &path),
            AppCommand::RecolorPalette | AppCommand::RecolorImage => {
                self.start_recolor(command == AppCommand::RecolorImage)
            }
        }
    }

    /// Recolours the document (or the selected shapes) to the style panel's palette, or toward an
    /// image chosen in a dialog; the result is one undoable edit.
    pub fn start_recolor(&mut self, from_image: bool) {
        use crate::recolor_job::{RecolorJob, RecolorSource};
        let Some(doc) = self.document().cloned() else {
            self.status.message =
                Some("Nothing to recolour: open or create a document first".into());
            return;
        };
        let palette = match self.prompt.settings.style.options() {
            Ok(o) => o.palette,
            Err(e) => {
                self.status.message = Some(format!("Palette: {e}"));
                return;
            }
        };
        let source = if from_image {
            let Some(path) = self.dialogs.pick(DialogKind::OpenImage) else {
                return;
            };
            RecolorSource::Image(path, palette)
        } else {
            let Some(p) = palette else {
                self.status.message =
                    Some("Recolour to palette: type a palette in the style panel first".into());
                return;
            };
            RecolorSource::Palette(p)
        };
        let only = (!self.selection.is_empty()).then(|| self.selection.ids());
        self.status.message = Some("Recolouring…".into());
        self.recoloring = Some(RecolorJob::start(doc, source, only));
    }

    /// Whether a recolouring is running.
    pub fn is_recoloring(&self) -> bool {
        self.recoloring.is_some()
    }

    fn poll_recolor(&mut self, ctx: &egui::Context) {
        let Some(result) = self.recoloring.as_ref().and_then(|j| j.poll()) else {
            return;
        };
        self.recoloring = None;
        match result {
            Ok(doc) => {
                let view = doc.param_view();
                self.apply_commands(ctx, vec![Command::ReplaceFromOptimiser { view }]);
                self.status.message = Some("Recoloured (Ctrl+Z undoes it)".into());
            }
            Err(e) => self.status.message = Some(format!("Error: recolouring: {e}")),
        }
    }

    /// Adds an image to the reference set and switches the guidance to the reference teacher.
    pub fn add_reference(&mut self, path: &Path) {
        match crate::io::load_image_rgba(path, 64) {
            Ok(img) => {
                let name = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                self.references.push((name.clone(), img));
                self.prompt.settings.method = GuidanceMethod::Reference;
                self.status.message = Some(format!(
                    "Reference image {name} added ({} in all); press Start",
                    self.references.len()
                ));
            }
            Err(e) => self.status.message = Some(format!("Error: {e:#}")),
        }
    }

    /// Vectorises an image on a background thread; intermediate documents show up live.
    pub fn vectorize(&mut self, ctx: &egui::Context, path: &Path) {
        let ctx2 = ctx.clone();
        self.vectorizing = Some(crate::io::spawn_vectorize(
            path,
            self.vectorize_gradients,
            move || ctx2.request_repaint(),
        ));
        self.status.message = Some(format!("Vectorising {}…", path.display()));
    }

    /// Whether a vectorisation is running.
    pub fn is_vectorizing(&self) -> bool {
        self.vectorizing.is_some()
    }

    fn poll_vectorize(&mut self, ctx: &egui::Context) {
        let Some(rx) = &self.vectorizing else {
            return;
        };
        let messages: Vec<_> = rx.try_iter().collect();
        for m in messages {
            match m {
                crate::io::VectorizeMsg::Status(s) => self.status.message = Some(s),
                crate::io::VectorizeMsg::Preview(doc) => {
                    self.show_document_frame(ctx, &doc);
                    self.editor = Some(Editor::new(*doc));
                    self.selection.clear();
                }
                crate::io::VectorizeMsg::Done(result) => {
                    self.vectorizing = None;
                    match result {
                        Ok(doc) => {
                            self.show_document_frame(ctx, &doc);
                            self.status.message = Some(format!(
                                "Vectorised: {} objects, {} shapes",
                                doc.objects.len(),
                                doc.shape_count()
                            ));
                            self.editor = Some(Editor::new(*doc));
                            self.selection.clear();
                        }
                        Err(e) => self.status.message = Some(format!("Error: {e:#}")),
                    }
                    return;
                }
            }
        }
    }

    /// Opens an SVG document and shows it; errors go to the status bar.
    pub fn open_svg(&mut self, ctx: &egui::Context, path: &Path) {
        match crate::io::load_svg(path) {
            Ok(doc) => {
                if self.run.active {
                    self.worker.send(distill::Command::Stop);
                }
                self.show_document_frame(ctx, &doc);
                self.status.message = Some(format!("Opened {}", path.display()));
                self.editor = Some(Editor::new(doc));
                self.selection.clear();
                self.document_path = Some(path.to_path_buf());
            }
            Err(e) => self.status.message = Some(format!("Error: {e}")),
        }
    }

    /// While a run stands still, the viewport shows the working document drawn as vectors at
    /// the viewport's resolution (a running run streams the worker's renders instead).
    fn show_crisp_document(&mut self, ctx: &egui::Context) {
        if let Some(doc) = self.document().cloned() {
            self.preview.shown_step = Some(self.run.step);
            self.show_document_frame(ctx, &doc);
        }
    }

    fn poll_preview(&mut self, ctx: &egui::Context) {
        match self.preview.poll() {
            Some(Ok((_, w, h, px))) => {
                let image = egui::ColorImage::from_rgba_unmultiplied([w as usize, h as usize], &px);
                self.viewport
                    .set_particle_frame(ctx, self.viewport.active_particle, image);
            }
            Some(Err(e)) => tracing::warn!("preview: {e}"),
            None => {}
        }
    }

    fn show_document_frame(&mut self, ctx: &egui::Context, doc: &Document) {
        let (w, h) = crate::io::preview_size(doc, 512);
        match crate::io::render_rgba(doc, w, h) {
            Ok(rgba) => {
                let image =
                    egui::ColorImage::from_rgba_unmultiplied([w as usize, h as usize], &rgba);
                self.viewport.canvas = egui::vec2(doc.width as f32, doc.height as f32);
                self.viewport
                    .set_particle_frame(ctx, self.viewport.active_particle, image);
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
            Err(e) => format!("Error: {e:#}"),
        });
    }

    /// Files and text dropped on the window: SVG opens, an image asks "vectorise or reference", text
    /// becomes the prompt.
    fn handle_drops(&mut self, ctx: &egui::Context) {
        let (files, text) = ctx.input(|i| {
            let text: Vec<String> = i
                .events
                .iter()
                .filter_map(|e| match e {
                    egui::Event::Paste(t) if !ctx.egui_wants_keyboard_input() => Some(t.clone()),
                    _ => None,
                })
                .collect();
            (i.raw.dropped_files.clone(), text)
        });
        for file in files {
            let path = file.path().to_path_buf();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            match ext.as_deref() {
                Some("svg" | "svgz") => self.open_svg(ctx, &path),
                Some("glb") => self.status.message = Some(self.tab3d.open_file(&path, None)),
                Some("png" | "jpg" | "jpeg") => self.dropped_image = Some(path),
                Some("txt") => match file.bytes() {
                    Ok(bytes) => {
                        self.prompt.settings.prompt =
                            String::from_utf8_lossy(&bytes).trim().to_string();
                    }
                    Err(e) => {
                        self.status.message =
                            Some(format!("Error: {}: cannot read: {e}", path.display()));
                    }
                },
                _ => {
                    self.status.message = Some(format!(
                        "{}: cannot open this kind of file (expected .svg, .png, .jpg, .txt or .glb)",
                        path.display()
                    ))
                }
            }
        }
        if let Some(t) = text.into_iter().last() {
            self.prompt.settings.prompt = t.trim().to_string();
        }
    }

    fn dialogs_ui(&mut self, ctx: &egui::Context) {
        if let Some(path) = self.dropped_image.clone() {
            let mut close = false;
            egui::Window::new("Image")
                .collapsible(false)
                .resizable(false)
                .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
                .show(ctx, |ui| {
                    ui.label(format!("What should vecdream do with {}?", path.display()));
                    ui.checkbox(
                        &mut self.vectorize_gradients,
                        "Vectorise shaded regions with gradient fills",
                    );
                    ui.horizontal(|ui| {
                        if ui.button("Vectorise").clicked() {
                            self.pending.push(AppCommand::Vectorize(path.clone()));
                            close = true;
                        }
                        if ui.button("Use as reference").clicked() {
                            self.pending.push(AppCommand::UseAsReference(path.clone()));
                            close = true;
                        }
                        if ui.button("Cancel").clicked() {
                            close = true;
                        }
                    });
                });
            if close {
                self.dropped_image = None;
            }
        }
        self.restore_dialog(ctx);
    }

    /// The 2D editor's panels: prompt and run panel, object tree and properties, the viewport; applies
    /// their edits and returns the run panel's action.
    fn editor_panels(&mut self, ui: &mut egui::Ui, ctx: &egui::Context) -> Option<RunAction> {
        let run_action = egui::Panel::left("prompt_panel")
            .resizable(true)
            .default_size(290.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .show(ui, |ui| {
                        self.prompt.guided_by = crate::generation::guided_by(
                            &self.prompt.settings,
                            self.references.len(),
                            matches!(&self.model.verdict, Some(Ok(_))),
                        );
                        self.prompt.ui(ui);
                        if std::mem::take(&mut self.prompt.pick_clip_folder)
                            && let Some(dir) = self.dialogs.pick(DialogKind::ModelFolder)
                        {
                            self.prompt.settings.clip.clip_folder = dir.display().to_string();
                        }
                        let action = self.run_panel.ui(ui, &self.run, &self.model);
                        ui.separator();
                        if !self.references.is_empty() {
                            ui.label(format!(
                                "Reference images: {}",
                                self.references
                                    .iter()
                                    .map(|(n, _)| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                        self.loss.ui(ui);
                        if self.run.active
                            && !self.run_panel.hide_timings
                            && let Some(ms) = self.median_frame_ms()
                        {
                            ui.weak(format!("UI frame {ms:.1} ms"));
                        }
                        action
                    })
                    .inner
            })
            .inner;
        let tree = egui::Panel::right("object_tree")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| {
                let doc = self.editor.as_ref().map(Editor::document);
                let props = doc.map(|doc| {
                    egui::Panel::bottom("properties")
                        .resizable(true)
                        .default_size(150.0)
                        .show(ui, |ui| {
                            ui.heading("Properties");
                            vecdream_ui::PropertiesPanel.ui(ui, doc, &self.selection)
                        })
                        .inner
                });
                let edits = self.tree.ui(ui, doc, &mut self.selection);
                (edits, props.unwrap_or_default())
            });
        let (mut edits, props) = tree.inner;
        edits.extend(props.commands);
        if props.begin_gesture
            && let Some(editor) = &mut self.editor
        {
            editor.begin_transaction();
        }
        let view = egui::CentralPanel::default().show(ui, |ui| {
            let doc = self.editor.as_ref().map(Editor::document);
            self.viewport.ui(ui, doc, &mut self.selection)
        });
        let view = view.inner;
        if let Some(i) = view.picked_particle
            && let Some(doc) = self.particle_docs.get(i).cloned()
            && let Some(editor) = &mut self.editor
        {
            editor.replace_untracked(doc);
        }
        if view.begin_gesture
            && let Some(editor) = &mut self.editor
        {
            editor.begin_transaction();
        }
        edits.extend(view.commands);
        self.apply_commands(ctx, edits);
        if (view.end_gesture || props.end_gesture)
            && let Some(editor) = &mut self.editor
        {
            editor.commit_transaction();
        }
        run_action
    }

    fn autosave(&mut self) {
        self.last_autosave = Instant::now();
        if !self.persist {
            return;
        }
        if let (Some(doc), Some(session)) = (self.document(), &self.session)
            && let Err(e) = session.save_document(doc)
        {
            tracing::warn!("autosave failed: {e:#}");
        }
    }
}

impl eframe::App for VecdreamApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let frame_start = Instant::now();
        let ctx = ui.ctx().clone();
        self.poll_worker(&ctx);
        self.poll_vectorize(&ctx);
        self.poll_recolor(&ctx);
        self.poll_preview(&ctx);
        self.handle_drops(&ctx);

        egui::Panel::top("menu_bar").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status.ui(ui));
        let run_action = if self.tab3d.is_active() {
            self.tab3d.run.model_dir = self.model_folder();
            let cx = crate::tab3d::Tab3dContext {
                dialogs: self.dialogs.as_mut(),
                document: self.editor.as_ref().map(Editor::document),
                document_path: self.document_path.as_deref(),
                status: &mut self.status.message,
            };
            self.tab3d.ui(ui, cx);
            None
        } else {
            self.editor_panels(ui, &ctx)
        };
        self.dialogs_ui(&ctx);

        if let Some(action) = run_action {
            self.run_action(&ctx, action);
        }
        let (undo, redo) = ctx.input_mut(|i| {
            let redo = i.consume_key(
                egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
                egui::Key::Z,
            );
            let undo = i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z);
            (undo, redo)
        });
        match self.pending_edit.take() {
            Some(true) => self.redo(&ctx),
            Some(false) => self.undo(&ctx),
            None if redo => self.redo(&ctx),
            None if undo => self.undo(&ctx),
            None => {}
        }
        for command in std::mem::take(&mut self.pending) {
            self.run_command(&ctx, command);
        }
        let every = Duration::from_secs_f64(self.autosave_secs);
        if self.last_autosave.elapsed() >= every {
            self.autosave();
        }
        if self.run.active && !self.run.paused && self.last_checkpoint.elapsed() >= every {
            self.checkpoint_run();
        }
        if self.run.active && !self.run.paused {
            // Keep polling while the worker runs (its waker also requests repaints).
            ctx.request_repaint_after(Duration::from_millis(33));
        }
        self.frame_times
            .push(frame_start.elapsed().as_secs_f32() * 1000.0);
        if self.frame_times.len() > 120 {
            self.frame_times.remove(0);
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
        self.autosave();
    }

    fn on_exit(&mut self) {
        self.worker.send(distill::Command::Shutdown);
        if self.persist {
            self.autosave();
            if let Some(session) = self.session.take() {
                session.close();
            }
        }
    }
}

/// Opens the editor window (blocks until it closes); with `open_3d` (a `.glb`, or an SVG to extrude)
/// it starts on the 3D tab showing that file, without the first-launch demo.
pub fn run_window(open_3d: Option<PathBuf>) -> anyhow::Result<()> {
    vecdream_gpu::tch::set_num_threads(crate::threads::worker_threads());
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
        Box::new(|cc| {
            let options = AppOptions {
                autostart_demo: open_3d.is_none(),
                ..AppOptions::default()
            };
            let mut app = VecdreamApp::new(cc, options);
            if let Some(path) = open_3d {
                app.open_in_3d(&cc.egui_ctx, &path);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
