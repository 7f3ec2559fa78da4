//! vecdream-app: the `vecdream` binary's library half — the eframe shell ([`VecdreamApp`]), file
//! dialogs, settings and the CLI subcommands. `main.rs` only parses arguments and dispatches here, so
//! tests drive the same code.

pub mod app;
pub mod autosave;
pub mod batch;
pub mod cli;
pub mod demo;
pub mod dialogs;
pub mod fuzz_entry;
pub mod generation;
pub mod io;
pub mod model_folder;
pub mod preview;
pub mod recolor_job;
pub mod run3d;
pub mod scores;
pub mod settings;
pub mod tab3d;
pub mod threads;

pub use app::VecdreamApp;

/// Version string shown by `vecdream --version` and the About box.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
