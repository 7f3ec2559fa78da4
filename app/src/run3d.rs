//! The 3D generation panel: choose a views folder or a prompt (with the app's model folder),
//! method, grid and steps; *Start / Pause / Step / Stop*; progress. The [`FieldRun`] runs on its
//! own thread; [`Run3dPanel::poll`] drains its updates without blocking (a preview of every
//! step, a mesh every `mesh_every` steps and at the end) for the 3D tab to show.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;

use vecdream_core::mesh::Mesh;
use vecdream_gpu::distill::SdMethod;
use vecdream_gpu::field::{Camera, FieldConfig, FieldRun, TextConfig};

/// One report of a running 3D generation.
#[derive(Clone, Debug)]
pub struct Run3dUpdate {
    /// Steps completed.
    pub step: usize,
    /// Planned steps.
    pub total: usize,
    /// This step's loss.
    pub loss: f64,
    /// A preview render of the field (the camera turns a little every step).
    pub preview: egui::ColorImage,
    /// The extracted surface, every `mesh_every` steps and at the end.
    pub mesh: Option<Mesh>,
    /// Whether the run has finished (the last update).
    pub finished: bool,
}

enum Control {
    Pause,
    Resume,
    Step,
    Stop,
}

enum Message {
    Update(Box<Run3dUpdate>),
    Error(String),
}

struct Running {
    tx: Sender<Control>,
    rx: Receiver<Message>,
    handle: Option<JoinHandle<()>>,
    paused: bool,
}

/// What the run is fitted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run3dMode {
    /// A views folder (no weights).
    Views,
    /// A prompt and the app's Stable Diffusion folder.
    Prompt,
}

/// The panel's state.
pub struct Run3dPanel {
    /// Views folder or prompt.
    pub mode: Run3dMode,
    /// The views folder.
    pub views_dir: String,
    /// The prompt.
    pub prompt: String,
    /// The app's model folder, if one is set.
    pub model_dir: Option<PathBuf>,
    /// SDS, VSD (`Vpsd`), ESD, ASD, TSM or CDS.
    pub method: SdMethod,
    /// Voxels per side.
    pub grid: i64,
    /// Planned steps.
    pub steps: usize,
    /// Steps between meshes sent to the 3D view.
    pub mesh_every: usize,
    /// Side of the preview in pixels.
    pub preview_size: u32,
    /// The last step and loss seen.
    pub progress: Option<(usize, usize, f64)>,
    /// The last error, shown in the panel.
    pub error: Option<String>,
    running: Option<Running>,
}

impl std::fmt::Debug for Run3dPanel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run3dPanel")
            .field("mode", &self.mode)
            .field("progress", &self.progress)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl Run3dPanel {
    /// A panel with the defaults (views mode, SDS, 64³, 500 steps); `model_dir` is the app's
    /// Stable Diffusion folder, if set.
    pub fn new(model_dir: Option<PathBuf>) -> Self {
        Self {
            mode: Run3dMode::Views,
            views_dir: String::new(),
            prompt: String::new(),
            model_dir,
            method: SdMethod::Sds,
            grid: 64,
            steps: 500,
            mesh_every: 50,
            preview_size: 128,
            progress: None,
            error: None,
            running: None,
        }
    }

    /// The run's configuration from the panel's settings.
    pub fn config(&self) -> Result<FieldConfig, String> {
        let config = match self.mode {
            Run3dMode::Views => {
                if self.views_dir.trim().is_empty() {
                    return Err("choose a views folder (views.json and images)".into());
                }
                FieldConfig::views(PathBuf::from(self.views_dir.trim()), self.grid, self.steps)
            }
            Run3dMode::Prompt => {
                let Some(model) = &self.model_dir else {
                    return Err("set a Stable Diffusion model folder first (or use views)".into());
                };
                if self.prompt.trim().is_empty() {
                    return Err("type a prompt".into());
                }
                let text = TextConfig {
                    model_dir: model.clone(),
                    prompt: self.prompt.trim().to_string(),
                    method: self.method,
                    ..TextConfig::default()
                };
                FieldConfig::text(text, self.grid, self.steps)
            }
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// Starts a run from the panel's settings.
    pub fn start(&mut self) -> Result<(), String> {
        let config = self.config()?;
        self.start_with(config, false);
        Ok(())
    }

    /// Starts a run of `config` (stopping any running one); `paused`: wait for *Step* or
    /// *Resume* before the first step.
    pub fn start_with(&mut self, config: FieldConfig, paused: bool) {
        self.stop();
        self.error = None;
        self.progress = None;
        let (ctl_tx, ctl_rx) = channel();
        let (msg_tx, msg_rx) = channel();
        let mesh_every = self.mesh_every.max(1);
        let size = self.preview_size.max(16);
        let handle = std::thread::spawn(move || {
            worker(config, paused, mesh_every, size, &ctl_rx, &msg_tx);
        });
        self.running = Some(Running {
            tx: ctl_tx,
            rx: msg_rx,
            handle: Some(handle),
            paused,
        });
    }

    fn send(&mut self, c: Control) {
        if let Some(r) = &mut self.running {
            match c {
                Control::Pause => r.paused = true,
                Control::Resume => r.paused = false,
                _ => {}
            }
            let _ = r.tx.send(c);
        }
    }

    /// Pauses after the current step.
    pub fn pause(&mut self) {
        self.send(Control::Pause);
    }

    /// Continues a paused run.
    pub fn resume(&mut self) {
        self.send(Control::Resume);
    }

    /// One step of a paused run.
    pub fn step_once(&mut self) {
        self.send(Control::Step);
    }

    /// Stops the run (waits for its current step to end).
    pub fn stop(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.tx.send(Control::Stop);
            if let Some(h) = r.handle.take() {
                let _ = h.join();
            }
        }
    }

    /// Whether a run is going (running or paused).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Whether the run is paused.
    pub fn is_paused(&self) -> bool {
        self.running.as_ref().is_some_and(|r| r.paused)
    }

    /// Drains the run's messages without blocking: the newest update (carrying the newest mesh
    /// of the drained ones), `None` when nothing new arrived.
    pub fn poll(&mut self) -> Option<Run3dUpdate> {
        let r = self.running.as_mut()?;
        let mut latest: Option<Run3dUpdate> = None;
        let mut mesh: Option<Mesh> = None;
        let mut done = false;
        loop {
            match r.rx.try_recv() {
                Ok(Message::Update(u)) => {
                    let mut u = *u;
                    if u.mesh.is_some() {
                        mesh = u.mesh.take();
                    }
                    done |= u.finished;
                    latest = Some(u);
                }
                Ok(Message::Error(e)) => {
                    self.error = Some(e);
                    done = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    done = true;
                    break;
                }
            }
        }
        if done
            && let Some(mut r) = self.running.take()
            && let Some(h) = r.handle.take()
        {
            let _ = h.join();
        }
        if let Some(u) = &mut latest {
            u.mesh = mesh;
            self.progress = Some((u.step, u.total, u.loss));
        }
        latest
    }

    /// The panel's controls.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("3D generation");
        let idle = !self.is_running();
        ui.add_enabled_ui(idle, |ui| {
            ui.horizontal(|ui| {
                ui.radio_value(&mut self.mode, Run3dMode::Views, "Views folder");
                ui.radio_value(&mut self.mode, Run3dMode::Prompt, "Prompt");
            });
            match self.mode {
                Run3dMode::Views => {
                    ui.horizontal(|ui| {
                        let l = ui.label("Folder");
                        ui.text_edit_singleline(&mut self.views_dir)
                            .labelled_by(l.id);
                    });
                }
                Run3dMode::Prompt => {
                    let l = ui.label("Prompt");
                    ui.text_edit_singleline(&mut self.prompt).labelled_by(l.id);
                    match &self.model_dir {
                        Some(m) => ui.label(format!("Model: {}", m.display())),
                        None => ui.label("No model folder set (Settings)."),
                    };
                    ui.horizontal(|ui| {
                        ui.label("Method");
                        for (m, label) in [
                            (SdMethod::Sds, "SDS"),
                            (SdMethod::Vpsd, "VSD"),
                            (SdMethod::Esd, "ESD"),
                            (SdMethod::Asd, "ASD"),
                            (SdMethod::Tsm, "TSM"),
                            (SdMethod::Cds, "CDS"),
                        ] {
                            ui.radio_value(&mut self.method, m, label)
                                .on_hover_text(m.description());
                        }
                    });
                }
            }
            ui.horizontal(|ui| {
                let l = ui.label("Grid");
                ui.add(
                    egui::DragValue::new(&mut self.grid)
                        .range(16..=256)
                        .suffix("³"),
                )
                .labelled_by(l.id);
                let l = ui.label("Steps");
                ui.add(egui::DragValue::new(&mut self.steps).range(1..=20_000))
                    .labelled_by(l.id);
            });
        });
        ui.horizontal(|ui| {
            if idle {
                if ui.button("Start").clicked()
                    && let Err(e) = self.start()
                {
                    self.error = Some(e);
                }
            } else {
                if self.is_paused() {
                    if ui.button("Resume").clicked() {
                        self.resume();
                    }
                    if ui.button("Step").clicked() {
                        self.step_once();
                    }
                } else if ui.button("Pause").clicked() {
                    self.pause();
                }
                if ui.button("Stop").clicked() {
                    self.stop();
                }
            }
        });
        if let Some((step, total, loss)) = self.progress {
            ui.add(
                egui::ProgressBar::new(step as f32 / total.max(1) as f32)
                    .text(format!("{step}/{total}  loss {loss:.4}")),
            );
        }
        if let Some(e) = &self.error {
            ui.colored_label(egui::Color32::from_rgb(200, 60, 60), e);
        }
    }
}

impl Drop for Run3dPanel {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(
    config: FieldConfig,
    mut paused: bool,
    mesh_every: usize,
    size: u32,
    ctl: &Receiver<Control>,
    tx: &Sender<Message>,
) {
    let device = vecdream_gpu::device::best_device();
    let mut run = match FieldRun::new(config, device) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Message::Error(e.to_string()));
            return;
        }
    };
    loop {
        let mut step_now = !paused;
        // Controls: block while paused, drain otherwise.
        loop {
            let c = if paused && !step_now {
                match ctl.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                }
            } else {
                match ctl.try_recv() {
                    Ok(c) => c,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            };
            match c {
                Control::Stop => return,
                Control::Pause => {
                    paused = true;
                    step_now = false;
                }
                Control::Resume => {
                    paused = false;
                    step_now = true;
                }
                Control::Step => step_now = true,
            }
        }
        if !step_now {
            continue;
        }
        let info = match run.step() {
            Ok(i) => i,
            Err(e) => {
                let _ = tx.send(Message::Error(e.to_string()));
                return;
            }
        };
        let finished = run.is_finished();
        let camera = Camera {
            azimuth_deg: (info.step as f64 * 3.0) % 360.0 - 180.0,
            ..Camera::default()
        };
        let img = run.render_rgb(&camera, size);
        let preview = egui::ColorImage::from_rgba_unmultiplied(
            [img.width as usize, img.height as usize],
            &img.data,
        );
        let mesh = (finished || info.step.is_multiple_of(mesh_every)).then(|| run.surface().0);
        let update = Run3dUpdate {
            step: info.step,
            total: run.config().steps,
            loss: info.loss,
            preview,
            mesh,
            finished,
        };
        if tx.send(Message::Update(Box::new(update))).is_err() || finished {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecdream_gpu::field::{AnalyticShape, write_views};

    fn views_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vd-run3d-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let shape = AnalyticShape::Sphere { radius: 0.3 };
        let views: Vec<_> = (0..6)
            .map(|i| {
                let c = Camera {
                    azimuth_deg: 60.0 * f64::from(i),
                    elevation_deg: if i % 2 == 0 { 15.0 } else { 50.0 },
                    distance: 1.8,
                    fov_deg: 45.0,
                };
                (c, shape.render(&c, 16, 2, [1.0; 3]))
            })
            .collect();
        write_views(&dir, &views, [1.0; 3]).unwrap();
        dir
    }

    /// Polls until `pred` holds for an update (at most ~2 minutes of 20 ms waits).
    fn wait_for(panel: &mut Run3dPanel, pred: impl Fn(&Run3dUpdate) -> bool) -> Run3dUpdate {
        for _ in 0..6000 {
            if let Some(u) = panel.poll()
                && pred(&u)
            {
                return u;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no matching update; error: {:?}", panel.error);
    }

    #[test]
    fn a_paused_run_steps_once_then_resumes_to_a_mesh() {
        let dir = views_dir();
        let mut panel = Run3dPanel::new(None);
        panel.mesh_every = 3;
        panel.preview_size = 24;
        let mut config = FieldConfig::views(&dir, 16, 6);
        config.samples = 16;
        panel.start_with(config, true);
        assert!(panel.is_running() && panel.is_paused());
        panel.step_once();
        let first = wait_for(&mut panel, |_| true);
        assert_eq!(first.step, 1);
        assert!(first.loss.is_finite() && first.mesh.is_none() && !first.finished);
        assert_eq!(first.preview.size, [24, 24]);
        assert!(panel.is_running(), "a paused run keeps its thread");
        panel.resume();
        let last = wait_for(&mut panel, |u| u.finished);
        assert_eq!(last.step, 6);
        let mesh = last.mesh.expect("the last update carries the mesh");
        mesh.validate().unwrap();
        assert!(mesh.triangle_count() > 0 && mesh.signed_volume() > 0.0);
        assert!(!panel.is_running());
        assert_eq!(panel.progress.map(|p| p.0), Some(6));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_settings_are_reported_not_started() {
        let mut panel = Run3dPanel::new(None);
        assert!(panel.start().unwrap_err().contains("views folder"));
        panel.mode = Run3dMode::Prompt;
        assert!(panel.start().unwrap_err().contains("model folder"));
        assert!(!panel.is_running());
        panel.mode = Run3dMode::Views;
        panel.views_dir = "/nonexistent-vecdream-views".into();
        panel.start().unwrap();
        for _ in 0..3000 {
            panel.poll();
            if !panel.is_running() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let e = panel.error.clone().unwrap_or_default();
        assert!(e.contains("/nonexistent-vecdream-views"), "{e}");
    }
}
