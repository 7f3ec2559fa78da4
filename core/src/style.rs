//! Drawing styles (SVGDreamer's six) as editable presets, colour palettes and content types:
//! the settings an artist picks before a generation, shared by the CLI, the app and batch jobs.
//!
//! A [`StylePreset`] says which primitive a style draws with, how many, how wide, which
//! parameters the optimiser may change, which colours are allowed and when shapes are
//! re-initialised; its invariants hold from the first to the last step (pixel art stays cells on
//! its grid, sketch stays open black strokes within its width range, …). See the styles table of
//! SVGDreamer in `shared/anchors.md`.

use serde::{Deserialize, Serialize};

use crate::color::Rgba;
use crate::document::Document;
use crate::object::ObjectChild;
use crate::paint::Paint;
use crate::shape::{PrimitiveKind, Shape};

/// A drawing style.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Closed filled paths, flat colours (icons, logos).
    #[default]
    Iconography,
    /// Open black strokes of small width (pen sketch).
    Sketch,
    /// Open black strokes of varying width and opacity (ink & wash).
    Ink,
    /// Many coloured open strokes (brush painting).
    Painting,
    /// Axis-aligned square cells on a grid; only their colours change.
    PixelArt,
    /// Filled straight-edged polygons.
    LowPoly,
}

/// Colours a style may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorRule {
    /// Any colour.
    Free,
    /// Black strokes (opacity may change when the preset trains it).
    Black,
}

/// Which parameter groups the optimiser changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trained {
    /// Control points.
    pub points: bool,
    /// Fill colours.
    pub fill: bool,
    /// Stroke colours (only their opacity when `stroke_alpha_only`).
    pub stroke: bool,
    /// Only the stroke opacity, never its colour (ink & wash).
    pub stroke_alpha_only: bool,
    /// Stroke widths.
    pub width: bool,
}

/// When shapes that faded or shrank are redrawn.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reinit {
    /// Check every this many steps (0: never).
    pub every: usize,
    /// Stop re-initialising after this fraction of the run.
    pub until_fraction: f32,
    /// A shape more transparent than this is redrawn.
    pub min_alpha: f32,
    /// A filled shape smaller than this many square pixels (of a 256-px canvas) is redrawn.
    pub min_area_px: Option<f32>,
}

/// An editable style preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StylePreset {
    /// The style.
    pub style: Style,
    /// The primitive every shape is.
    pub primitive: PrimitiveKind,
    /// Default path budget (the detail level).
    pub paths: usize,
    /// Cubic segments per stroke (stroke styles).
    pub segments_per_stroke: usize,
    /// Initial stroke width in pixels of a 256-px canvas (0: no stroke).
    pub stroke_width: f32,
    /// Allowed stroke widths, pixels of a 256-px canvas.
    pub width_range: [f32; 2],
    /// What is trained.
    pub trained: Trained,
    /// Colour constraint.
    pub color: ColorRule,
    /// Re-initialisation rule.
    pub reinit: Reinit,
    /// SVGDreamer's `max_0.5_N` timestep schedule: after this fraction of the run, t ≤ 500
    /// (`None`: t stays random over the whole range, as painting does).
    pub t_half_after: Option<f32>,
    /// Default number of optimisation steps.
    pub steps: usize,
    /// Weight of the self-intersection penalty of closed shapes (0: off).
    pub xing_weight: f64,
}

impl Style {
    /// Every style, in menu order.
    pub const ALL: [Style; 6] = [
        Style::Iconography,
        Style::Sketch,
        Style::Ink,
        Style::Painting,
        Style::PixelArt,
        Style::LowPoly,
    ];

    /// The command-line name (`iconography`, `sketch`, `ink`, `painting`, `pixel-art`, `low-poly`).
    pub fn name(self) -> &'static str {
        match self {
            Style::Iconography => "iconography",
            Style::Sketch => "sketch",
            Style::Ink => "ink",
            Style::Painting => "painting",
            Style::PixelArt => "pixel-art",
            Style::LowPoly => "low-poly",
        }
    }

    /// The name shown to artists.
    pub fn label(self) -> &'static str {
        match self {
            Style::Iconography => "Iconography",
            Style::Sketch => "Sketch",
            Style::Ink => "Ink & wash",
            Style::Painting => "Painting",
            Style::PixelArt => "Pixel art",
            Style::LowPoly => "Low-poly",
        }
    }

    /// Parses a command-line name (case-insensitive; `ink-wash`, `pixel`, `lowpoly` accepted).
    pub fn parse(s: &str) -> Result<Style, String> {
        let n = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        Ok(match n.as_str() {
            "iconography" | "icon" => Style::Iconography,
            "sketch" => Style::Sketch,
            "ink" | "ink-wash" | "ink-and-wash" => Style::Ink,
            "painting" | "paint" => Style::Painting,
            "pixel-art" | "pixel" | "pixelart" => Style::PixelArt,
            "low-poly" | "lowpoly" => Style::LowPoly,
            _ => {
                return Err(format!(
                    "unknown style `{s}`: expected one of iconography, sketch, ink, painting, pixel-art, low-poly"
                ));
            }
        })
    }

    /// Whether the style draws open strokes (sketch, ink, painting).
    pub fn is_stroked(self) -> bool {
        matches!(self, Style::Sketch | Style::Ink | Style::Painting)
    }

    /// The default preset.
    pub fn preset(self) -> StylePreset {
        let no_reinit = Reinit {
            every: 0,
            until_fraction: 0.0,
            min_alpha: 0.0,
            min_area_px: None,
        };
        let by_alpha = Reinit {
            every: 100,
            until_fraction: 0.5,
            min_alpha: 0.05,
            min_area_px: None,
        };
        let fills = Trained {
            points: true,
            fill: true,
            stroke: false,
            stroke_alpha_only: false,
            width: false,
        };
        match self {
            Style::Iconography => StylePreset {
                style: self,
                primitive: PrimitiveKind::ClosedPath,
                paths: 128,
                segments_per_stroke: 4,
                stroke_width: 0.0,
                width_range: [0.0, 0.0],
                trained: fills,
                color: ColorRule::Free,
                reinit: Reinit {
                    min_area_px: Some(16.0),
                    ..by_alpha
                },
                t_half_after: Some(0.75),
                steps: 300,
                xing_weight: 0.01,
            },
            Style::Sketch => StylePreset {
                style: self,
                primitive: PrimitiveKind::OpenPath,
                paths: 64,
                segments_per_stroke: 4,
                stroke_width: 2.0,
                width_range: [1.0, 3.0],
                trained: Trained {
                    points: true,
                    fill: false,
                    stroke: false,
                    stroke_alpha_only: false,
                    width: false,
                },
                color: ColorRule::Black,
                reinit: no_reinit,
                t_half_after: Some(0.65),
                steps: 300,
                xing_weight: 0.0,
            },
            Style::Ink => StylePreset {
                style: self,
                primitive: PrimitiveKind::OpenPath,
                paths: 84,
                segments_per_stroke: 4,
                stroke_width: 4.0,
                width_range: [1.0, 8.0],
                trained: Trained {
                    points: true,
                    fill: false,
                    stroke: true,
                    stroke_alpha_only: true,
                    width: true,
                },
                color: ColorRule::Black,
                reinit: by_alpha,
                t_half_after: Some(0.5),
                steps: 300,
                xing_weight: 0.0,
            },
            Style::Painting => StylePreset {
                style: self,
                primitive: PrimitiveKind::OpenPath,
                paths: 384,
                segments_per_stroke: 2,
                stroke_width: 2.5,
                width_range: [1.0, 4.0],
                // A painter's strokes keep the colour they were loaded with (picked from the
                // sample, each a little lighter or darker): the brush texture stays visible.
                trained: Trained {
                    points: true,
                    fill: false,
                    stroke: true,
                    stroke_alpha_only: true,
                    width: true,
                },
                color: ColorRule::Free,
                reinit: by_alpha,
                t_half_after: None,
                steps: 300,
                xing_weight: 0.0,
            },
            Style::PixelArt => StylePreset {
                style: self,
                primitive: PrimitiveKind::Polygon,
                paths: 1024,
                segments_per_stroke: 4,
                stroke_width: 0.0,
                width_range: [0.0, 0.0],
                trained: Trained {
                    points: false,
                    fill: true,
                    stroke: false,
                    stroke_alpha_only: false,
                    width: false,
                },
                color: ColorRule::Free,
                reinit: no_reinit,
                t_half_after: None,
                steps: 150,
                xing_weight: 0.0,
            },
            Style::LowPoly => StylePreset {
                style: self,
                primitive: PrimitiveKind::Polygon,
                paths: 128,
                segments_per_stroke: 4,
                stroke_width: 0.0,
                width_range: [0.0, 0.0],
                trained: fills,
                color: ColorRule::Free,
                reinit: Reinit {
                    min_area_px: Some(16.0),
                    ..by_alpha
                },
                t_half_after: Some(0.5),
                steps: 300,
                xing_weight: 0.0,
            },
        }
    }
}

impl std::fmt::Display for Style {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl StylePreset {
    /// Stroke widths `[initial, min, max]` in document units on a canvas whose longer side is
    /// `canvas` units (the preset's widths are pixels of a 256-px canvas).
    pub fn widths_for(&self, canvas: f64) -> [f64; 3] {
        let k = canvas / 256.0;
        [
            f64::from(self.stroke_width) * k,
            f64::from(self.width_range[0]) * k,
            f64::from(self.width_range[1]) * k,
        ]
    }

    /// Checks that `doc` keeps this style's invariants; the error names the first shape that
    /// does not (its kind, its colour or its width).
    pub fn check_document(&self, doc: &Document) -> Result<(), String> {
        let canvas = doc.width.max(doc.height);
        let [_, lo, hi] = self.widths_for(canvas);
        for o in &doc.objects {
            for s in o.shapes() {
                let who = || format!("shape \"{}\" in object \"{}\"", s.meta.name, o.meta.name);
                if s.kind != self.primitive {
                    return Err(format!(
                        "{}: a {:?}, the {} style draws {:?}",
                        who(),
                        s.kind,
                        self.style,
                        self.primitive
                    ));
                }
                let open = s.subpaths.iter().all(|p| !p.closed);
                if self.style.is_stroked() {
                    let Some(stroke) = &s.stroke else {
                        return Err(format!("{}: has no stroke", who()));
                    };
                    if !open || s.fill.is_some() {
                        return Err(format!("{}: strokes must be open and unfilled", who()));
                    }
                    let tol = 1e-3 * canvas;
                    if stroke.width < lo - tol || stroke.width > hi + tol {
                        return Err(format!(
                            "{}: width {:.3} outside {:.3}..{:.3}",
                            who(),
                            stroke.width,
                            lo,
                            hi
                        ));
                    }
                    if self.color == ColorRule::Black {
                        let c = stroke.paint.mean_color();
                        if c.to_rgb8() != [0, 0, 0] {
                            return Err(format!("{}: colour {} is not black", who(), c.to_hex()));
                        }
                    }
                } else {
                    if s.stroke.is_some() || s.fill.is_none() {
                        return Err(format!("{}: must be filled and unstroked", who()));
                    }
                    if s.subpaths.iter().any(|p| !p.closed) {
                        return Err(format!("{}: has an open subpath", who()));
                    }
                }
            }
        }
        if self.style == Style::PixelArt {
            check_pixel_grid(doc)?;
        }
        Ok(())
    }
}

/// Pixel art: every shape is one axis-aligned square of the same cell size whose corners lie on
/// the grid.
fn check_pixel_grid(doc: &Document) -> Result<(), String> {
    let mut cell: Option<f64> = None;
    for o in &doc.objects {
        for s in o.shapes() {
            let bad = |why: String| Err(format!("pixel \"{}\": {why}", s.meta.name));
            if s.fill.as_ref().is_none_or(|f| f.mean_color().a < 0.999) {
                return bad("not an opaque cell".into());
            }
            let [sp] = s.subpaths.as_slice() else {
                return bad(format!("{} subpaths, expected 1", s.subpaths.len()));
            };
            let p = &sp.points;
            if p.len() != 4 {
                return bad(format!("{} corners, expected 4", p.len()));
            }
            let (xs, ys): (Vec<f64>, Vec<f64>) = p.iter().map(|q| (q.x, q.y)).unzip();
            let (x0, x1) = (
                xs.iter().copied().fold(f64::MAX, f64::min),
                xs.iter().copied().fold(f64::MIN, f64::max),
            );
            let (y0, y1) = (
                ys.iter().copied().fold(f64::MAX, f64::min),
                ys.iter().copied().fold(f64::MIN, f64::max),
            );
            let eps = 1e-6 * doc.width.max(doc.height);
            if !p.iter().all(|q| {
                ((q.x - x0).abs() < eps || (q.x - x1).abs() < eps)
                    && ((q.y - y0).abs() < eps || (q.y - y1).abs() < eps)
            }) {
                return bad("not an axis-aligned rectangle".into());
            }
            let c = *cell.get_or_insert(x1 - x0);
            let on_grid = |v: f64| ((v / c) - (v / c).round()).abs() < 1e-4;
            // Cells at the right/bottom border may be clipped by the canvas.
            let full_w = (x1 - x0 - c).abs() < eps || (x1 - doc.width).abs() < eps;
            let full_h = (y1 - y0 - c).abs() < eps || (y1 - doc.height).abs() < eps;
            if !(on_grid(x0) && on_grid(y0) && full_w && full_h) {
                return bad(format!(
                    "cell {x0:.3},{y0:.3}–{x1:.3},{y1:.3} is off the {c:.3}-unit grid"
                ));
            }
        }
    }
    Ok(())
}

/// What kind of picture is generated (Illustrator's content types).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentType {
    /// Few paths, flat colours, no background (icon sets, logos).
    Icon,
    /// The subject alone: no background object.
    #[default]
    Subject,
    /// The whole scene, background kept.
    Scene,
}

impl ContentType {
    /// Parses `icon`, `subject` or `scene`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "icon" => Ok(Self::Icon),
            "subject" => Ok(Self::Subject),
            "scene" => Ok(Self::Scene),
            _ => Err(format!(
                "unknown content type `{s}`: expected icon, subject or scene"
            )),
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Icon => "icon",
            Self::Subject => "subject",
            Self::Scene => "scene",
        }
    }
}

/// A fixed set of colours (at most [`Palette::MAX`]) that fills and strokes are limited to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Palette {
    /// The colours, opaque.
    pub colors: Vec<[u8; 3]>,
}

impl Palette {
    /// Most colours a palette may hold.
    pub const MAX: usize = 16;

    /// Parses `"#rrggbb,#rgb,…"` (spaces allowed, `#` optional); the error names the entry.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut colors = Vec::new();
        for (i, raw) in s.split(',').enumerate() {
            let e = raw.trim();
            if e.is_empty() {
                continue;
            }
            let hex = e.strip_prefix('#').unwrap_or(e);
            let digits: Vec<u8> = hex
                .chars()
                .map(|c| c.to_digit(16).map(|d| d as u8))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("palette entry {} `{e}`: not a hex colour", i + 1))?;
            let rgb = match digits.as_slice() {
                [r, g, b] => [r * 17, g * 17, b * 17],
                [r1, r0, g1, g0, b1, b0] => [r1 * 16 + r0, g1 * 16 + g0, b1 * 16 + b0],
                _ => {
                    return Err(format!(
                        "palette entry {} `{e}`: expected #rrggbb or #rgb",
                        i + 1
                    ));
                }
            };
            if !colors.contains(&rgb) {
                colors.push(rgb);
            }
        }
        if colors.is_empty() {
            return Err("palette: no colours given (expected \"#rrggbb,#rrggbb,…\")".into());
        }
        if colors.len() > Self::MAX {
            return Err(format!(
                "palette: {} colours, at most {} allowed",
                colors.len(),
                Self::MAX
            ));
        }
        Ok(Self { colors })
    }

    /// The colours as `[r, g, b]` in `[0, 1]`.
    pub fn unit_colors(&self) -> Vec<[f32; 3]> {
        self.colors
            .iter()
            .map(|c| c.map(|v| f32::from(v) / 255.0))
            .collect()
    }

    /// The palette colour nearest to `rgb` (in `[0, 1]`, squared RGB distance).
    pub fn nearest(&self, rgb: [f32; 3]) -> [u8; 3] {
        let d = |c: &[u8; 3]| {
            (0..3)
                .map(|k| (f32::from(c[k]) / 255.0 - rgb[k]).powi(2))
                .sum::<f32>()
        };
        self.colors
            .iter()
            .copied()
            .min_by(|a, b| d(a).total_cmp(&d(b)))
            .unwrap_or([0, 0, 0])
    }

    /// `rgb` snapped to the palette, its alpha kept.
    pub fn snap(&self, c: Rgba) -> Rgba {
        let [r, g, b] = self.nearest([c.r, c.g, c.b]);
        Rgba::from_rgb8(r, g, b, c.a)
    }

    /// `"#rrggbb,…"`.
    pub fn to_string_list(&self) -> String {
        self.colors
            .iter()
            .map(|c| Rgba::from_rgb8(c[0], c[1], c[2], 1.0).to_hex())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Replaces every fill and stroke colour of `doc` by its nearest palette colour (gradients
    /// become solid in their snapped mean colour); the background too unless transparent.
    pub fn apply(&self, doc: &mut Document) {
        let snap_paint = |p: &mut Paint| *p = Paint::Solid(self.snap(p.mean_color()));
        for o in &mut doc.objects {
            for c in &mut o.children {
                let shapes: Vec<&mut Shape> = match c {
                    ObjectChild::Component(comp) => comp.shapes.iter_mut().collect(),
                    ObjectChild::Shape(s) => vec![s],
                };
                for s in shapes {
                    if let Some(f) = &mut s.fill {
                        snap_paint(f);
                    }
                    if let Some(st) = &mut s.stroke {
                        snap_paint(&mut st.paint);
                    }
                }
            }
        }
        if doc.background.a > 0.0 {
            doc.background = self.snap(doc.background);
        }
    }
}

/// Everything an artist sets for a generation besides the prompt or references.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationOptions {
    /// Drawing style.
    pub style: Style,
    /// Path budget per particle (`None`: the style's default). The detail level.
    pub paths: Option<usize>,
    /// Colour palette (`None`: free colours).
    pub palette: Option<Palette>,
    /// Prompt words that become semantic objects (Stable Diffusion: their cross-attention masks).
    pub objects: Vec<String>,
    /// Icon, subject or scene.
    pub content: ContentType,
    /// Prune and add shapes during distillation.
    pub adaptive: bool,
}

impl GenerationOptions {
    /// The style's preset with this detail level.
    pub fn preset(&self) -> StylePreset {
        let mut p = self.style.preset();
        if let Some(n) = self.paths {
            p.paths = n.max(1);
        } else if self.content == ContentType::Icon && !matches!(self.style, Style::PixelArt) {
            p.paths = (p.paths / 2).max(8);
        }
        p
    }

    /// Parses a comma-separated list of object words (`"cat, hat"`), dropping empty entries.
    pub fn parse_objects(s: &str) -> Vec<String> {
        s.split(',')
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_parse_by_name_and_alias() {
        for s in Style::ALL {
            assert_eq!(Style::parse(s.name()), Ok(s));
        }
        assert_eq!(Style::parse("Pixel Art"), Ok(Style::PixelArt));
        assert_eq!(Style::parse("ink_wash"), Ok(Style::Ink));
        let e = Style::parse("cubism").unwrap_err();
        assert!(e.contains("cubism") && e.contains("low-poly"), "{e}");
    }

    #[test]
    fn palette_parses_snaps_and_names_bad_entries() {
        let p = Palette::parse("#ff0000, 00f,#00ff00").unwrap();
        assert_eq!(p.colors, vec![[255, 0, 0], [0, 0, 255], [0, 255, 0]]);
        assert_eq!(p.nearest([0.9, 0.2, 0.1]), [255, 0, 0]);
        assert_eq!(p.snap(Rgba::new(0.1, 0.2, 0.8, 0.5)).to_hex(), "#0000ff");
        let e = Palette::parse("#ff0000,#12345").unwrap_err();
        assert!(e.contains("entry 2") && e.contains("#12345"), "{e}");
        assert!(Palette::parse("red").unwrap_err().contains("not a hex"));
        assert!(Palette::parse(" , ").is_err());
        let many = (0..17)
            .map(|i| format!("#{i:02x}0000"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(Palette::parse(&many).unwrap_err().contains("at most 16"));
    }

    #[test]
    fn content_types_and_objects_parse() {
        assert_eq!(ContentType::parse("Scene"), Ok(ContentType::Scene));
        assert!(ContentType::parse("poster").is_err());
        assert_eq!(
            GenerationOptions::parse_objects(" cat, ,hat "),
            vec!["cat".to_string(), "hat".to_string()]
        );
    }
}
