//! Autosave of the working document (every 30 s and on exit) and crash detection: a marker file says a
//! session is running; if it is still there at the next start, that session crashed and its autosave is
//! offered for restore.

use std::path::PathBuf;

use vecdream_core::{Document, SvgOptions};

fn dir() -> Option<PathBuf> {
    crate::settings::Settings::path().and_then(|p| p.parent().map(PathBuf::from))
}

/// The autosave file: `autosave.svg` beside the settings.
pub fn path() -> Option<PathBuf> {
    dir().map(|d| d.join("autosave.svg"))
}

fn marker() -> Option<PathBuf> {
    dir().map(|d| d.join("session.running"))
}

/// Writes the document to the autosave file (atomically).
pub fn save(doc: &Document) -> anyhow::Result<()> {
    let Some(path) = path() else {
        return Ok(());
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    vecdream_core::export_svg(doc, &path, &SvgOptions::default())?;
    Ok(())
}

/// Records that a session is running.
pub fn mark_running() {
    if let Some(m) = marker() {
        if let Some(d) = m.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        if let Err(e) = std::fs::write(&m, std::process::id().to_string()) {
            tracing::warn!("cannot write {}: {e}", m.display());
        }
    }
}

/// Records a clean exit.
pub fn mark_clean_exit() {
    if let Some(m) = marker() {
        let _ = std::fs::remove_file(m);
    }
}

/// The autosave of a session that did not exit cleanly, if there is one.
pub fn crashed_session() -> Option<PathBuf> {
    let crashed = marker()?.exists();
    let save = path()?;
    (crashed && save.exists()).then_some(save)
}
