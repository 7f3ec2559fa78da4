//! A views folder: images with known cameras, for multi-view fitting.
//!
//! `DIR/views.json` is either a list of views or an object with `views` and an optional
//! `background` (the colour behind the object in images without alpha; default white):
//!
//! ```json
//! {
//!   "background": [1.0, 1.0, 1.0],
//!   "views": [
//!     {"file": "view_000.png", "azimuth": 0, "elevation": 15, "distance": 1.8, "fov": 50},
//!     {"file": "view_001.png", "azimuth": 90, "elevation": 15, "distance": 1.8, "fov": 50}
//!   ]
//! }
//! ```
//!
//! Angles in degrees (azimuth 0 = front, on +z; 90 = on +x; elevation up), the distance from
//! the object's centre in units where the object fits the box `[−½, ½]³`, `fov` the vertical
//! field of view. Images are PNG or JPEG, all square and of one size; an alpha channel, when
//! present, is the object's mask. Every error names the file, the view and the field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use vecdream_core::RgbaImage;

use super::FieldError;
use super::camera::Camera;

/// One entry of `views.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewEntry {
    /// Image file, relative to the folder.
    pub file: String,
    /// Azimuth in degrees.
    pub azimuth: f64,
    /// Elevation in degrees.
    pub elevation: f64,
    /// Camera distance.
    pub distance: f64,
    /// Vertical field of view in degrees.
    pub fov: f64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    background: Option<[f64; 3]>,
    views: Vec<ViewEntry>,
}

/// One loaded view.
#[derive(Clone, Debug)]
pub struct View {
    /// The image file.
    pub path: PathBuf,
    /// Its camera.
    pub camera: Camera,
    /// Its pixels (straight RGBA; opaque when the file has no alpha).
    pub image: RgbaImage,
    /// Whether the file had an alpha channel.
    pub has_alpha: bool,
}

/// A loaded views folder.
#[derive(Clone, Debug)]
pub struct Views {
    /// The folder.
    pub dir: PathBuf,
    /// The views, in file order.
    pub views: Vec<View>,
    /// Background colour (straight RGB in `[0, 1]`).
    pub background: [f64; 3],
    /// Side of every (square) image.
    pub size: u32,
}

fn err(path: &Path, message: impl Into<String>) -> FieldError {
    FieldError::Views {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// 1-based line of the first occurrence of `needle` in `text` (for error messages).
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.find(needle)
        .map(|i| text[..i].bytes().filter(|&b| b == b'\n').count() + 1)
}

/// Reads `dir/views.json` and its images.
pub fn load_views(dir: &Path) -> Result<Views, FieldError> {
    let json = dir.join("views.json");
    if !dir.is_dir() {
        return Err(err(
            dir,
            "not a folder (expected a folder with views.json and images)",
        ));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| err(&json, e.to_string()))?;
    let parsed: ViewsFile = if text.trim_start().starts_with('[') {
        ViewsFile {
            background: None,
            views: serde_json::from_str(&text).map_err(|e| err(&json, e.to_string()))?,
        }
    } else {
        serde_json::from_str(&text).map_err(|e| err(&json, e.to_string()))?
    };
    if parsed.views.is_empty() {
        return Err(err(&json, "no views: expected at least one entry"));
    }
    let background = parsed.background.unwrap_or([1.0; 3]);
    if background.iter().any(|c| !(0.0..=1.0).contains(c)) {
        return Err(err(
            &json,
            format!("field `background` = {background:?}: expected three numbers in [0, 1]"),
        ));
    }
    let mut views = Vec::with_capacity(parsed.views.len());
    let mut size: Option<(u32, PathBuf)> = None;
    for (i, v) in parsed.views.iter().enumerate() {
        let at = match line_of(&text, &format!("\"{}\"", v.file)) {
            Some(l) => format!("line {l}: view {i} (`{}`)", v.file),
            None => format!("view {i} (`{}`)", v.file),
        };
        let bad = |field: &str, value: f64, expected: &str| {
            err(
                &json,
                format!("{at}: field `{field}` = {value}: expected {expected}"),
            )
        };
        if !v.azimuth.is_finite() {
            return Err(bad("azimuth", v.azimuth, "a finite angle in degrees"));
        }
        if !(-90.0..=90.0).contains(&v.elevation) {
            return Err(bad("elevation", v.elevation, "degrees in [-90, 90]"));
        }
        if !(v.distance > 0.0 && v.distance < 100.0) {
            return Err(bad("distance", v.distance, "a distance in (0, 100)"));
        }
        if !(v.fov > 1.0 && v.fov < 170.0) {
            return Err(bad("fov", v.fov, "degrees in (1, 170)"));
        }
        let path = dir.join(&v.file);
        let img = image::open(&path).map_err(|e| err(&path, format!("{at}: {e}")))?;
        let has_alpha = img.color().has_alpha();
        let rgba = img.to_rgba8();
        let (w, h) = rgba.dimensions();
        if w != h {
            return Err(err(
                &path,
                format!("{at}: {w}×{h} pixels: expected a square image"),
            ));
        }
        match &size {
            Some((s, first)) if *s != w => {
                return Err(err(
                    &path,
                    format!(
                        "{at}: {w}×{h} pixels, but {} is {s}×{s}: expected one size for all views",
                        first.display()
                    ),
                ));
            }
            None => size = Some((w, path.clone())),
            _ => {}
        }
        views.push(View {
            path,
            camera: Camera {
                azimuth_deg: v.azimuth,
                elevation_deg: v.elevation,
                distance: v.distance,
                fov_deg: v.fov,
            },
            image: RgbaImage {
                width: w,
                height: h,
                data: rgba.into_raw(),
            },
            has_alpha,
        });
    }
    Ok(Views {
        dir: dir.to_path_buf(),
        views,
        background,
        size: size.map_or(0, |(s, _)| s),
    })
}

/// Writes `view_NNN.png` for every image and `views.json` (atomically, each file).
pub fn write_views(
    dir: &Path,
    views: &[(Camera, RgbaImage)],
    background: [f64; 3],
) -> Result<(), FieldError> {
    std::fs::create_dir_all(dir).map_err(|source| FieldError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut entries = Vec::with_capacity(views.len());
    for (i, (cam, img)) in views.iter().enumerate() {
        let file = format!("view_{i:03}.png");
        img.save_png(&dir.join(&file))?;
        entries.push(ViewEntry {
            file,
            azimuth: cam.azimuth_deg,
            elevation: cam.elevation_deg,
            distance: cam.distance,
            fov: cam.fov_deg,
        });
    }
    let body = ViewsFile {
        background: Some(background),
        views: entries,
    };
    let text = serde_json::to_string_pretty(&body).map_err(|e| err(dir, e.to_string()))?;
    let json = dir.join("views.json");
    vecdream_core::atomic::write_atomic(&json, format!("{text}\n").as_bytes())?;
    Ok(())
}

impl Views {
    /// The cameras, in order.
    pub fn cameras(&self) -> Vec<Camera> {
        self.views.iter().map(|v| v.camera).collect()
    }

    /// `(rgb [V, 3, S, S], alpha [V, 1, S, S])` in `[0, 1]`; the colour is composited over the
    /// background, so it is what a render against that background should show.
    pub fn tensors(&self, device: Device) -> (Tensor, Tensor) {
        let s = i64::from(self.size);
        let mut rgb = Vec::with_capacity(self.views.len());
        let mut alpha = Vec::with_capacity(self.views.len());
        let bg = Tensor::from_slice(&self.background.map(|c| c as f32)).view([3, 1, 1]);
        for v in &self.views {
            let t = Tensor::from_slice(&v.image.data)
                .view([s, s, 4])
                .permute([2, 0, 1])
                .to_kind(Kind::Float)
                / 255.0;
            let a = t.narrow(0, 3, 1);
            let c = t.narrow(0, 0, 3) * &a + &bg * (-&a + 1.0);
            rgb.push(c);
            alpha.push(a);
        }
        (
            Tensor::stack(&rgb, 0).to_device(device),
            Tensor::stack(&alpha, 0).to_device(device),
        )
    }
}
