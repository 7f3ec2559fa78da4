//! The left panel: prompt, negative prompt and run settings.

use serde::{Deserialize, Serialize};

/// Which score-distillation guidance a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum GuidanceMethod {
    /// Score distillation sampling (DreamFusion / VectorFusion).
    Sds,
    /// Vectorized particle-based score distillation (SVGDreamer).
    #[default]
    Vpsd,
    /// Entropic score distillation.
    Esd,
    /// Classifier score distillation.
    Csd,
    /// Asynchronous score distillation (ScaleDreamer).
    Asd,
    /// Trajectory score matching (Dreamer XL).
    Tsm,
    /// Consistency distillation sampling (Consistent3D).
    Cds,
    /// The closed-form teacher over reference images: needs no model weights.
    Reference,
    /// CLIPDraw: CLIP alone pulls augmented views toward the prompt (needs only a CLIP folder).
    ClipDraw,
}

impl GuidanceMethod {
    /// All methods, in the order the UI lists them.
    pub const ALL: [Self; 9] = [
        Self::Sds,
        Self::Vpsd,
        Self::Esd,
        Self::Csd,
        Self::Asd,
        Self::Tsm,
        Self::Cds,
        Self::Reference,
        Self::ClipDraw,
    ];

    /// Name shown to the user.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sds => "SDS",
            Self::Vpsd => "VPSD",
            Self::Esd => "ESD",
            Self::Csd => "CSD",
            Self::Asd => "ASD",
            Self::Tsm => "TSM",
            Self::Cds => "CDS",
            Self::Reference => "Reference images",
            Self::ClipDraw => "CLIPDraw",
        }
    }

    /// The classifier-free guidance scale the method is meant for (the CLI's default, checked
    /// against the engine's per-method defaults in the app's tests): SDS 100 (DreamFusion), CDS 51
    /// (Consistent3D), the others 7.5. Picking another method moves an untouched CFG to its value.
    pub fn default_cfg(self) -> f32 {
        match self {
            Self::Sds => 100.0,
            Self::Cds => 51.0,
            _ => 7.5,
        }
    }

    /// One line for the picker's tooltip.
    pub fn description(self) -> &'static str {
        match self {
            Self::Sds => {
                "Score distillation sampling: the CFG noise prediction minus the added noise."
            }
            Self::Vpsd => {
                "SVGDreamer's particle score distillation: a LoRA model of the particles replaces the noise."
            }
            Self::Esd => {
                "Entropic score distillation: VPSD with the LoRA model's own CFG below 1 (more diverse)."
            }
            Self::Csd => {
                "Classifier score distillation: only the conditional minus unconditional prediction."
            }
            Self::Asd => {
                "ScaleDreamer's asynchronous score distillation: the pretrained model at a shifted, noisier timestep replaces the LoRA model."
            }
            Self::Tsm => {
                "Dreamer XL's trajectory score matching: two DDIM-inversion paths from one start, the target read on the second path."
            }
            Self::Cds => {
                "Consistent3D's consistency distillation: fixed noise, the target one ODE step less noisy."
            }
            Self::Reference => {
                "The closed-form teacher over reference images: needs no model weights."
            }
            Self::ClipDraw => {
                "CLIPDraw: the CLIP folder alone pulls augmented views of each particle toward the prompt."
            }
        }
    }
}

/// The settings a user chooses before starting a run (persisted between sessions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptSettings {
    /// What to draw.
    pub prompt: String,
    /// What to avoid.
    pub negative_prompt: String,
    /// Guidance method.
    pub method: GuidanceMethod,
    /// Number of particles (independent SVGs optimised together).
    pub particles: u32,
    /// Optimisation steps.
    pub steps: u32,
    /// Classifier-free guidance scale.
    pub cfg: f32,
    /// Random seed.
    pub seed: u64,
    /// Style, detail, palette, objects, content, start.
    pub style: crate::style_panel::StyleSettings,
    /// CLIP folder, reward, CLIP weight.
    pub clip: crate::clip_panel::ClipSettings,
}

impl Default for PromptSettings {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative_prompt: String::new(),
            method: GuidanceMethod::default(),
            particles: 4,
            steps: 300,
            cfg: 7.5,
            seed: 0,
            style: crate::style_panel::StyleSettings::default(),
            clip: crate::clip_panel::ClipSettings::default(),
        }
    }
}

/// The prompt panel widget: owns its settings.
#[derive(Debug, Default)]
pub struct PromptPanel {
    /// The settings being edited.
    pub settings: PromptSettings,
    /// What guides the run, set by the app (e.g. "4 bundled emoji, reference teacher").
    pub guided_by: String,
    /// The CLIP folder's "Choose…" was clicked (the app opens a folder dialog and clears it).
    pub pick_clip_folder: bool,
}

impl PromptPanel {
    /// Draws the panel's contents.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.settings;
        ui.heading("Generate");
        if !self.guided_by.is_empty() {
            ui.label(egui::RichText::new(format!("Guided by: {}", self.guided_by)).strong());
        }
        let prompt_label = ui.label("Prompt");
        ui.add(
            egui::TextEdit::multiline(&mut s.prompt)
                .hint_text("a cat wearing a hat, flat vector icon")
                .desired_rows(3)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(prompt_label.id);
        let negative_label = ui.label("Negative prompt");
        ui.add(
            egui::TextEdit::multiline(&mut s.negative_prompt)
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(negative_label.id);
        ui.separator();
        egui::Grid::new("run_settings")
            .num_columns(2)
            .show(ui, |ui| {
                let label = ui.label("Guidance");
                let before = s.method;
                egui::ComboBox::from_id_salt("guidance_method")
                    .selected_text(s.method.label())
                    .show_ui(ui, |ui| {
                        for m in GuidanceMethod::ALL {
                            ui.selectable_value(&mut s.method, m, m.label())
                                .on_hover_text(m.description());
                        }
                    })
                    .response
                    .labelled_by(label.id);
                if s.method != before && s.cfg == before.default_cfg() {
                    s.cfg = s.method.default_cfg();
                }
                ui.end_row();
                let label = ui.label("Particles");
                ui.add(egui::DragValue::new(&mut s.particles).range(1..=16))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Steps");
                ui.add(egui::DragValue::new(&mut s.steps).range(1..=100_000))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("CFG");
                ui.add(
                    egui::DragValue::new(&mut s.cfg)
                        .range(0.0..=200.0)
                        .speed(0.1),
                )
                .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Seed");
                ui.add(egui::DragValue::new(&mut s.seed))
                    .labelled_by(label.id);
                ui.end_row();
            });
        ui.separator();
        self.pick_clip_folder |= crate::clip_panel::clip_ui(ui, &mut s.clip);
        ui.separator();
        crate::style_panel::style_ui(ui, &mut s.style);
    }
}
