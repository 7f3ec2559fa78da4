//! vecdream: text-guided vector graphics and 3D assets by score distillation.
//!
//! This facade re-exports the workspace crates and owns the end-to-end tests (`tests/`) and the examples
//! (`examples/`):
//! - [`core`]: the document model, edits with undo, SVG/PNG I/O (no torch),
//! - [`gpu`]: everything on libtorch (rasteriser, diffusion models, guidance),
//! - [`ui`]: egui panels and widgets,
//! - [`app`]: the editor shell and the CLI.

pub use vecdream_app as app;
pub use vecdream_core as core;
pub use vecdream_gpu as gpu;
pub use vecdream_ui as ui;
