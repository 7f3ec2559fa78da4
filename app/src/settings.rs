//! Settings that outlive a session: the model folder and the last prompt settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vecdream_ui::PromptSettings;

/// The environment variable that overrides the model folder.
pub const MODEL_ENV: &str = "VECDREAM_MODEL";

/// Persisted application settings (eframe storage key [`Settings::KEY`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// A local diffusers folder (Stable Diffusion 1.5 / 2.1), if the user chose one.
    pub model_folder: Option<PathBuf>,
    /// The prompt panel's settings.
    pub prompt: PromptSettings,
}

impl Settings {
    /// Key under which eframe persists the settings.
    pub const KEY: &'static str = "vecdream-settings";

    /// The model folder in effect: `$VECDREAM_MODEL` wins over the saved setting.
    pub fn effective_model_folder(&self) -> Option<PathBuf> {
        std::env::var_os(MODEL_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| self.model_folder.clone())
    }

    /// Where the settings live: `settings.json` in eframe's storage folder for [`APP_ID`]
    /// (`~/.local/share/vecdream` on Linux); `$VECDREAM_CONFIG_DIR` overrides the folder.
    pub fn path() -> Option<PathBuf> {
        let dir = std::env::var_os("VECDREAM_CONFIG_DIR")
            .map(PathBuf::from)
            .or_else(|| eframe::storage_dir(APP_ID))?;
        Some(dir.join("settings.json"))
    }

    /// Reads the saved settings. A missing file gives the defaults; an unreadable one gives the defaults
    /// and a warning naming the file (the app keeps working).
    pub fn load() -> Self {
        let Some(path) = Self::path() else {
            return Self::default();
        };
        match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => {
                tracing::warn!(
                    "cannot read settings {}: {e}; using defaults",
                    path.display()
                );
                Self::default()
            }
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(
                    "settings {} are not valid: {e}; using defaults",
                    path.display()
                );
                Self::default()
            }),
        }
    }

    /// Saves the settings atomically (temp file + rename).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = Self::path() else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &path)
    }
}

/// The application id: names the settings folder and the window class.
pub const APP_ID: &str = "vecdream";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_json_and_fill_missing_fields() {
        let s = Settings {
            model_folder: Some(PathBuf::from("/models/sd21")),
            ..Default::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), s);
        let partial: Settings = serde_json::from_str(r#"{"model_folder":"/m"}"#).unwrap();
        assert_eq!(partial.prompt, PromptSettings::default());
    }
}
