//! vecdream-ui: the editor's egui panels and widgets — prompt panel, viewport, object tree, status bar.
//!
//! Widgets here only use `egui` (and `egui-wgpu` for the 3D viewport's paint callback) and
//! `vecdream-core` (never torch): they show state and return commands; the app applies the commands and
//! talks to the worker.

pub mod clip_panel;
pub mod loss_plot;
pub mod prompt_panel;
pub mod properties;
pub mod run_panel;
pub mod selection;
pub mod status_bar;
pub mod style_panel;
pub mod tree_panel;
pub mod viewport;
pub mod viewport3d;

pub use clip_panel::{ClipSettings, RewardChoice};
pub use loss_plot::LossPlot;
pub use prompt_panel::{GuidanceMethod, PromptPanel, PromptSettings};
pub use properties::{PropertiesOutput, PropertiesPanel};
pub use run_panel::{ModelFolderStatus, RunAction, RunPanel, RunStatus};
pub use selection::Selection;
pub use status_bar::StatusInfo;
pub use style_panel::{StartFrom, StyleSettings};
pub use tree_panel::TreePanel;
pub use viewport::{Viewport, ViewportOutput};
pub use viewport3d::{OrbitCamera, Viewport3d};
