//! The loss plot (egui_plot) and a small metrics table.

/// Loss history of the current run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossPlot {
    /// `(step, loss)` pairs.
    pub points: Vec<[f64; 2]>,
    /// `(step, shapes per particle)` pairs.
    pub shapes: Vec<[f64; 2]>,
}

impl LossPlot {
    /// Appends a loss; non-finite values are skipped (they are reported elsewhere).
    pub fn push(&mut self, step: usize, loss: f64) {
        if loss.is_finite() {
            self.points.push([step as f64, loss]);
        }
    }

    /// Appends the shape count per particle at `step` (adaptive control changes it).
    pub fn push_shapes(&mut self, step: usize, shapes: f64) {
        if shapes.is_finite() {
            self.shapes.push([step as f64, shapes]);
        }
    }

    /// Forgets the history (a new run).
    pub fn clear(&mut self) {
        self.points.clear();
        self.shapes.clear();
    }

    /// Draws the plot and the latest value.
    pub fn ui(&self, ui: &mut egui::Ui) {
        ui.label(match self.points.last() {
            Some([step, loss]) => format!("loss {loss:.5} at step {step}"),
            None => "loss: no run yet".into(),
        });
        egui_plot::Plot::new("loss_plot")
            .height(120.0)
            .allow_scroll(false)
            .show_x(false)
            .show(ui, |plot| {
                plot.line(egui_plot::Line::new("loss", self.points.clone()));
            });
        if let Some([_, n]) = self.shapes.last() {
            ui.label(format!("shapes per particle: {n:.0}"));
            egui_plot::Plot::new("shape_plot")
                .height(60.0)
                .allow_scroll(false)
                .show_x(false)
                .show(ui, |plot| {
                    plot.line(egui_plot::Line::new("shapes", self.shapes.clone()));
                });
        }
    }
}
