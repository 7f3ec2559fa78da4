//! Autosave and crash recovery. Each running editor keeps its own session folder,
//! `sessions/<pid>/` beside the settings, so two instances never write each other's files:
//! - `running`: the owner's process id; the folder of a process that no longer exists (killed,
//!   crashed) is offered for recovery at the next start.
//! - `autosave.svg`: the working document (every 30 s, on exit), written atomically.
//! - `checkpoint.safetensors` + `.json`: the running distillation (particles, optimiser, LoRA, step,
//!   config and documents with their locks), every 30 s while a run is active and on pause.
//! - `run.json` + `reference-N.png`: what is needed to rebuild the run's guidance on resume.
//!
//! A clean exit removes the folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vecdream_core::{Document, SvgOptions};

/// Seconds between autosaves and run checkpoints: 30, or `VECDREAM_AUTOSAVE_SECS` (≥ 1).
pub fn interval_secs() -> f64 {
    std::env::var("VECDREAM_AUTOSAVE_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .map_or(30.0, |v| v.max(1.0))
}

/// The folder holding every instance's session folder: `sessions/` beside the settings.
pub fn sessions_root() -> Option<PathBuf> {
    crate::settings::Settings::path().and_then(|p| p.parent().map(|d| d.join("sessions")))
}

/// What a run needs to be rebuilt after a crash (the checkpoint holds the rest).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunManifest {
    /// The prompt panel's settings when the run started.
    pub settings: vecdream_ui::PromptSettings,
    /// Names of the reference images (the files are `reference-N.png` in the session folder).
    pub references: Vec<String>,
}

/// This instance's session folder.
#[derive(Debug)]
pub struct Session {
    dir: PathBuf,
}

impl Session {
    /// Creates `root/<pid>/` and its `running` marker.
    pub fn start(root: &Path) -> std::io::Result<Self> {
        let dir = root.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("running"), std::process::id().to_string())?;
        Ok(Self { dir })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the document is autosaved.
    pub fn autosave_path(&self) -> PathBuf {
        self.dir.join("autosave.svg")
    }

    /// Where the run is checkpointed (the worker writes it and its `.json`).
    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }

    /// Writes the document to the autosave file (atomically).
    pub fn save_document(&self, doc: &Document) -> anyhow::Result<()> {
        vecdream_core::export_svg(doc, &self.autosave_path(), &SvgOptions::default())?;
        Ok(())
    }

    /// Records the run's settings and reference images (atomically), so a crash can resume it.
    pub fn save_run(
        &self,
        settings: &vecdream_ui::PromptSettings,
        references: &[(String, crate::app::RgbaPixels)],
    ) -> anyhow::Result<()> {
        for (i, (_, (w, h, rgba))) in references.iter().enumerate() {
            let path = self.dir.join(format!("reference-{i}.png"));
            let tmp = path.with_extension("png.tmp");
            image::save_buffer(&tmp, rgba, *w, *h, image::ColorType::Rgba8)?;
            std::fs::rename(&tmp, &path)?;
        }
        let manifest = RunManifest {
            settings: settings.clone(),
            references: references.iter().map(|(n, _)| n.clone()).collect(),
        };
        let path = self.dir.join("run.json");
        vecdream_core::atomic::write_atomic(
            &path,
            serde_json::to_string_pretty(&manifest)?.as_bytes(),
        )?;
        Ok(())
    }

    /// Forgets the run (it was stopped or finished): nothing to resume after a crash.
    pub fn clear_run(&self) {
        for f in ["run.json", "checkpoint.safetensors", "checkpoint.json"] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
        for i in 0.. {
            if std::fs::remove_file(self.dir.join(format!("reference-{i}.png"))).is_err() {
                break;
            }
        }
    }

    /// A clean exit: the folder goes.
    pub fn close(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A session whose process is gone, with what it left.
#[derive(Clone, Debug)]
pub struct Crashed {
    /// Its folder.
    pub dir: PathBuf,
    /// The autosaved document, if any.
    pub document: Option<PathBuf>,
    /// The run to resume: its manifest, checkpoint and step.
    pub run: Option<CrashedRun>,
}

/// A run a crashed session can resume.
#[derive(Clone, Debug)]
pub struct CrashedRun {
    /// Settings and reference names.
    pub manifest: RunManifest,
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// The step it holds.
    pub step: usize,
    /// The reference images, decoded.
    pub references: Vec<(String, crate::app::RgbaPixels)>,
}

impl Crashed {
    /// The question the restore dialog asks.
    pub fn question(&self) -> String {
        match &self.run {
            Some(run) => format!(
                "vecdream did not close properly last time. Restore the document and resume the run at step {}?",
                run.step
            ),
            None => {
                "vecdream did not close properly last time. Restore the autosaved document?".into()
            }
        }
    }

    /// Removes the folder (after a restore has copied what it needs, or on discard).
    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether process `pid` exists (Linux `/proc`; elsewhere every process counts as gone).
fn alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

/// The sessions under `root` whose process is gone and that left something to restore, newest first.
/// Empty leftovers are removed.
pub fn crashed_sessions(root: &Path) -> Vec<Crashed> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, Crashed)> = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        let Some(pid) = std::fs::read_to_string(dir.join("running"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        let document = Some(dir.join("autosave.svg")).filter(|p| p.is_file());
        let run = crashed_run(&dir);
        if document.is_none() && run.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        }
        let time = std::fs::metadata(dir.join("running"))
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        found.push((time, Crashed { dir, document, run }));
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, c)| c).collect()
}

/// The run a session folder can resume: a readable manifest, a checkpoint with its step, and every
/// reference image. Anything missing or unreadable means no run (the document may still be restored).
fn crashed_run(dir: &Path) -> Option<CrashedRun> {
    let manifest: RunManifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).ok()?).ok()?;
    let checkpoint = dir.join("checkpoint.safetensors");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).ok()?).ok()?;
    let step = meta.get("step")?.as_u64()? as usize;
    if !checkpoint.is_file() {
        return None;
    }
    let mut references = Vec::new();
    for (i, name) in manifest.references.iter().enumerate() {
        let img = image::open(dir.join(format!("reference-{i}.png")))
            .ok()?
            .to_rgba8();
        references.push((name.clone(), (img.width(), img.height(), img.into_raw())));
    }
    Some(CrashedRun {
        manifest,
        checkpoint,
        step,
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("vecdream-sessions-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn live_sessions_are_not_offered_and_dead_ones_are() {
        let root = root("offer");
        let mine = Session::start(&root).unwrap();
        mine.save_document(&Document::new(10.0, 10.0)).unwrap();
        assert!(crashed_sessions(&root).is_empty(), "our own live session");
        // A session of a process that is gone (pid 0x7fff_fff0 does not exist).
        let dead = root.join("2147483632");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join("running"), "2147483632").unwrap();
        std::fs::copy(mine.autosave_path(), dead.join("autosave.svg")).unwrap();
        let c = crashed_sessions(&root);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].dir, dead);
        assert!(c[0].run.is_none());
        assert!(c[0].question().contains("Restore the autosaved document"));
        // An empty dead folder is cleaned up, not offered.
        let empty = root.join("2147483633");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(empty.join("running"), "2147483633").unwrap();
        assert_eq!(crashed_sessions(&root).len(), 1);
        assert!(!empty.exists());
        mine.close();
        let _ = std::fs::remove_dir_all(&root);
    }
}
