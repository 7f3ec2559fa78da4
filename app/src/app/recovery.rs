//! The editor's side of crash recovery: its session folder, run checkpoints every 30 s and on
//! pause, and the restore dialog that reopens a crashed session's document and resumes its run at
//! the checkpoint's step (see [`crate::autosave`]).

use std::time::Instant;

use vecdream_gpu::distill;

use super::VecdreamApp;

impl VecdreamApp {
    /// Offers the newest crashed session and opens this instance's own folder.
    pub(super) fn start_session(&mut self, root: Option<std::path::PathBuf>) {
        let Some(root) = root.or_else(crate::autosave::sessions_root) else {
            return;
        };
        self.restore_offer = crate::autosave::crashed_sessions(&root).into_iter().next();
        match crate::autosave::Session::start(&root) {
            Ok(s) => self.session = Some(s),
            Err(e) => tracing::warn!("no autosave this session: {}: {e}", root.display()),
        }
    }

    /// Records what a resumed run needs (settings, reference images) in the session folder; a new
    /// run (not `resuming`) first forgets the previous run's checkpoint.
    pub(super) fn record_run(&mut self, settings: &vecdream_ui::PromptSettings, resuming: bool) {
        if let Some(session) = &self.session {
            if !resuming {
                session.clear_run();
            }
            if let Err(e) = session.save_run(settings, &self.references) {
                tracing::warn!("cannot record the run for recovery: {e:#}");
            }
        }
        self.last_checkpoint = Instant::now();
    }

    /// Asks the worker to checkpoint the run into the session folder (it writes atomically
    /// between steps).
    pub(super) fn checkpoint_run(&mut self) {
        self.last_checkpoint = Instant::now();
        if let Some(session) = &self.session
            && self.run.active
        {
            self.worker
                .send(distill::Command::SaveCheckpoint(session.checkpoint_path()));
        }
    }

    /// The restore dialog of a crashed session, if one is on offer.
    pub(super) fn restore_dialog(&mut self, ctx: &egui::Context) {
        let Some(offer) = self.restore_offer.clone() else {
            return;
        };
        egui::Window::new("Restore")
            .collapsible(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
                ui.label(offer.question());
                ui.horizontal(|ui| {
                    if ui.button("Restore").clicked() {
                        self.restore(ctx, &offer);
                        self.restore_offer = None;
                    }
                    if ui.button("Discard").clicked() {
                        offer.discard();
                        self.restore_offer = None;
                    }
                });
            });
    }

    /// Reopens the crashed session's document and, when it had a run, resumes it from its checkpoint.
    fn restore(&mut self, ctx: &egui::Context, offer: &crate::autosave::Crashed) {
        if let Some(doc) = &offer.document {
            self.open_svg(ctx, doc);
        }
        if let (Some(run), Some(session)) = (&offer.run, &self.session) {
            // The checkpoint moves into this session's folder: the crashed one is removed below.
            let to = session.checkpoint_path();
            let copied = std::fs::copy(&run.checkpoint, &to).and_then(|_| {
                std::fs::copy(
                    run.checkpoint.with_extension("json"),
                    to.with_extension("json"),
                )
            });
            match copied {
                Ok(_) => {
                    self.prompt.settings = run.manifest.settings.clone();
                    self.references = run.references.clone();
                    self.resume_from = Some(to);
                    self.start_run(ctx);
                    self.status.message = Some(format!("Resuming the run at step {}", run.step));
                }
                Err(e) => {
                    self.status.message = Some(format!(
                        "Error: cannot resume the run from {}: {e}",
                        run.checkpoint.display()
                    ))
                }
            }
        }
        offer.discard();
    }
}
