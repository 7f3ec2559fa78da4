//! Run controls: model folder, Start / Pause / Step / Stop, and progress (step, it/s, ETA).

/// What the user asked the run to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAction {
    /// Start a new run with the current settings.
    Start,
    /// Pause stepping.
    Pause,
    /// Resume stepping.
    Resume,
    /// While paused: one more step.
    Step,
    /// End the run.
    Stop,
    /// Pick a model folder.
    ChooseModelFolder,
}

/// The run's state as the worker reported it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStatus {
    /// A run is loaded (running, paused or finished).
    pub active: bool,
    /// Stepping is paused.
    pub paused: bool,
    /// Steps done.
    pub step: usize,
    /// Planned steps.
    pub total: usize,
    /// Iterations per second.
    pub it_per_s: f64,
    /// Seconds to the end.
    pub eta_secs: f64,
    /// Guidance name of the run.
    pub guidance: String,
}

/// The model folder as validated by the app.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelFolderStatus {
    /// The folder, if one is set.
    pub folder: Option<String>,
    /// "found SD 2.1 base" or why the folder cannot be used.
    pub verdict: Option<Result<String, String>>,
}

/// The run panel (everything it shows is passed in).
#[derive(Debug, Default)]
pub struct RunPanel {
    /// Leave out the numbers that vary from run to run (it/s, ETA), for snapshot tests.
    pub hide_timings: bool,
}

impl RunPanel {
    /// Draws the controls; returns the action of a clicked button.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        status: &RunStatus,
        model: &ModelFolderStatus,
    ) -> Option<RunAction> {
        let mut action = None;
        ui.separator();
        ui.horizontal(|ui| {
            ui.label("Model folder");
            if ui.button("Choose…").clicked() {
                action = Some(RunAction::ChooseModelFolder);
            }
        });
        match &model.folder {
            Some(folder) => {
                ui.monospace(folder);
            }
            None => {
                ui.weak("none: the reference-image teacher needs no weights");
            }
        }
        match &model.verdict {
            Some(Ok(found)) => {
                ui.colored_label(egui::Color32::from_rgb(120, 200, 120), found);
            }
            Some(Err(why)) => {
                ui.colored_label(egui::Color32::from_rgb(230, 120, 100), why);
            }
            None => {}
        }
        ui.separator();
        ui.horizontal_wrapped(|ui| {
            if ui
                .button(if status.active { "Restart" } else { "Start" })
                .clicked()
            {
                action = Some(RunAction::Start);
            }
            if status.active && !status.paused && ui.button("Pause").clicked() {
                action = Some(RunAction::Pause);
            }
            if status.active && status.paused {
                if ui.button("Resume").clicked() {
                    action = Some(RunAction::Resume);
                }
                if ui.button("Step").clicked() {
                    action = Some(RunAction::Step);
                }
            }
            if status.active && ui.button("Stop").clicked() {
                action = Some(RunAction::Stop);
            }
        });
        if status.active || status.step > 0 {
            let fraction = if status.total > 0 {
                status.step as f32 / status.total as f32
            } else {
                0.0
            };
            ui.add(
                egui::ProgressBar::new(fraction.clamp(0.0, 1.0))
                    .text(format!("step {}/{}", status.step, status.total)),
            );
            let paused = if status.paused { " · paused" } else { "" };
            ui.label(if self.hide_timings {
                format!("{}{paused}", status.guidance)
            } else {
                format!(
                    "{} · {:.1} it/s · ETA {}{paused}",
                    status.guidance,
                    status.it_per_s,
                    format_secs(status.eta_secs),
                )
            });
        }
        action
    }
}

/// "1:05" style duration; "–" when unknown.
pub fn format_secs(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "–".into();
    }
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_secs_reads_like_a_clock() {
        assert_eq!(format_secs(65.4), "1:05");
        assert_eq!(format_secs(3725.0), "1:02:05");
        assert_eq!(format_secs(f64::NAN), "–");
    }
}
