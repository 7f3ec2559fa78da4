//! The bottom status bar: compute device, libtorch version and a message line.

/// What the status bar shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusInfo {
    /// Compute device, e.g. "NVIDIA H100 80GB HBM3" or "CPU, 2 threads".
    pub device: String,
    /// libtorch version, e.g. "2.11.0".
    pub torch_version: String,
    /// The latest message for the user (errors stay until replaced).
    pub message: Option<String>,
}

impl StatusInfo {
    /// Draws the status bar's contents in one row.
    pub fn ui(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(format!("Device: {}", self.device));
            ui.separator();
            ui.label(format!("libtorch {}", self.torch_version));
            if let Some(message) = &self.message {
                ui.separator();
                ui.label(message);
            }
        });
    }
}
