//! CLIP settings of the Generate panel: the CLIP folder (CLIPDraw guidance and CLIP scores), the
//! reward that re-weights the particles, and the weight of CLIPDraw added to another method.

use serde::{Deserialize, Serialize};

/// Which reward scores the particles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RewardChoice {
    /// No reward.
    #[default]
    None,
    /// Colourfulness + contrast (no weights).
    Colorfulness,
    /// PickScore-style `exp(logit_scale)·cos` with the CLIP folder.
    PickScore,
    /// `100·max(cos, 0)` with the CLIP folder.
    ClipScore,
    /// LAION's aesthetic head (a file) on the CLIP folder.
    Aesthetic,
}

impl RewardChoice {
    /// All choices, in the picker's order.
    pub const ALL: [Self; 5] = [
        Self::None,
        Self::Colorfulness,
        Self::PickScore,
        Self::ClipScore,
        Self::Aesthetic,
    ];

    /// Name shown to the user.
    pub fn label(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Colorfulness => "Colourfulness",
            Self::PickScore => "PickScore",
            Self::ClipScore => "CLIP score",
            Self::Aesthetic => "Aesthetic",
        }
    }
}

/// The CLIP settings (persisted with the prompt settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipSettings {
    /// transformers CLIPModel folder (empty: none).
    pub clip_folder: String,
    /// The reward.
    pub reward: RewardChoice,
    /// The aesthetic head (safetensors) of [`RewardChoice::Aesthetic`].
    pub aesthetic_head: String,
    /// Weight of CLIPDraw added to another method (0: off).
    pub clip_weight: f32,
    /// Score the particles every this many steps.
    pub reward_every: u32,
}

impl Default for ClipSettings {
    fn default() -> Self {
        Self {
            clip_folder: String::new(),
            reward: RewardChoice::None,
            aesthetic_head: String::new(),
            clip_weight: 0.0,
            reward_every: 10,
        }
    }
}

/// Draws the CLIP settings; returns whether the CLIP folder's "Choose…" was clicked.
pub fn clip_ui(ui: &mut egui::Ui, s: &mut ClipSettings) -> bool {
    let mut pick = false;
    egui::Grid::new("clip_settings")
        .num_columns(2)
        .show(ui, |ui| {
            let label = ui.label("CLIP folder");
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut s.clip_folder)
                        .hint_text("a transformers CLIPModel folder")
                        .desired_width(150.0),
                )
                .labelled_by(label.id);
                pick = ui.button("Choose…").clicked();
            });
            ui.end_row();
            let label = ui.label("Reward");
            egui::ComboBox::from_id_salt("reward_choice")
                .selected_text(s.reward.label())
                .show_ui(ui, |ui| {
                    for r in RewardChoice::ALL {
                        ui.selectable_value(&mut s.reward, r, r.label());
                    }
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
            if s.reward == RewardChoice::Aesthetic {
                let label = ui.label("Aesthetic head");
                ui.add(
                    egui::TextEdit::singleline(&mut s.aesthetic_head)
                        .hint_text("head.safetensors")
                        .desired_width(150.0),
                )
                .labelled_by(label.id);
                ui.end_row();
            }
            if s.reward != RewardChoice::None {
                let label = ui.label("Reward every");
                ui.add(egui::DragValue::new(&mut s.reward_every).range(1..=1000))
                    .labelled_by(label.id);
                ui.end_row();
            }
            let label = ui.label("CLIP weight");
            ui.add(
                egui::DragValue::new(&mut s.clip_weight)
                    .range(0.0..=10_000.0)
                    .speed(1.0),
            )
            .on_hover_text("CLIPDraw added to the method with this weight (0: off)")
            .labelled_by(label.id);
            ui.end_row();
        });
    pick
}
