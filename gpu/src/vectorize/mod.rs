//! Seed image → layered, editable vector document (HIVE / LIVE step).
//!
//! Pipeline, all on the CPU with no downloaded weights:
//! 1. [`segment`]: colour k-means in Lab, 4-connected regions, hole-filled silhouettes and
//!    their containment tree.
//! 2. [`layers`]: a segment budget is spent greedily ([`fit::allocate`]) on whichever buys
//!    the most error reduction per segment — a new region shape or one more anchor on a
//!    chosen one. Top-level silhouettes become objects, their child subtrees components;
//!    big surrounding regions and a canvas rectangle form the background object. Sibling
//!    silhouettes are disjoint, so grouping never changes what is painted.
//!    With gradients on (iconography, and an image that is not flat-coloured like an icon:
//!    [`shading::is_flat_coloured`]), every shape of 64 px² or more starts with the
//!    least-squares linear gradient of its pixels ([`shading`]), so shaded regions (a lit
//!    wall, cloth) are not forced into flat steps.
//! 3. [`optimize`]: masked Adam through the differentiable rasteriser on points, fills and
//!    gradient axes and colours, with a self-intersection penalty; gradients whose colour
//!    change stays under [`MIN_GRADIENT_CHANGE`] end up solid. Adaptive primitive control (SVGDreamer++ / LIVE):
//!    rounds prune shapes that turned transparent (alpha < 0.05) or tiny (area < 4 px²)
//!    and spend the freed and reserved budget on new shapes where the residual is largest,
//!    coloured from the image there.
//!
//! [`refine`] optimises an existing document against an image and leaves locked (and
//! hidden) shapes untouched.

pub mod bench;
pub mod fit;
pub mod image;
pub mod layers;
pub mod optimize;
pub mod segment;
pub mod shading;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use tch::{Device, Kind};
use vecdream_core::{Document, PrimitiveKind};

use self::fit::{ContourFit, SpanKind, offset_outward, smooth_closed};
pub use self::image::{
    LoadedImage, TargetImage, decode_image, decode_limited, load_image, read_image,
};
use self::layers::{FitShape, Layered, colours_for_budget, initial_layers, pixel_layers};
use self::optimize::{Flat, TargetTensors, psnr_of_mse, render_mse};
use self::segment::{NO_LABEL, silhouette, trace_boundary};
use crate::raster::{RasterError, RasterOptions, Rendered};

/// Why vectorisation failed.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VectorizeError {
    /// The image file could not be read.
    #[error("{path}: cannot read: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is not a decodable PNG or JPEG image.
    #[error("{path}: not a readable PNG or JPEG image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// In-memory image data is inconsistent.
    #[error("bad image data: {0}")]
    BadImage(String),
    /// A setting is out of range.
    #[error("invalid vectoriser settings: {0}")]
    BadConfig(String),
    /// The rasteriser refused the scene.
    #[error("rasteriser: {0}")]
    Raster(#[from] RasterError),
    /// A libtorch call failed.
    #[error("libtorch: {0}")]
    Torch(String),
    /// Writing the result into the document failed.
    #[error("document: {0}")]
    Document(String),
}

impl From<tch::TchError> for VectorizeError {
    fn from(e: tch::TchError) -> Self {
        Self::Torch(e.to_string())
    }
}

/// Drawing style (primitive family), after SVGDreamer's styles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Style {
    /// Filled closed cubic paths.
    #[default]
    Iconography,
    /// Filled straight-edged polygons.
    LowPoly,
    /// Grid of filled squares; only colours are optimised.
    PixelArt,
}

/// How many primitives the result may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// At most this many segments (cubic segments, or polygon edges), shapes unlimited.
    Segments(usize),
    /// At most this many shapes (paths), each with at most 16 segments.
    Paths(usize),
}

impl Budget {
    /// `(max segments, max shapes)`.
    pub fn limits(self) -> (usize, usize) {
        match self {
            Budget::Segments(n) => (n, n / 3 + 1),
            Budget::Paths(n) => (n.saturating_mul(16), n),
        }
    }
}

/// Settings of [`vectorize`] and [`refine`].
#[derive(Clone, Debug, PartialEq)]
pub struct VectorizeConfig {
    /// Primitive budget.
    pub budget: Budget,
    /// Primitive family.
    pub style: Style,
    /// Iconography only: shapes over smoothly shaded pixels get linear-gradient fills
    /// (started from the least-squares gradient, then optimised); flat regions stay solid.
    pub gradients: bool,
    /// Seed of k-means seeding (the only randomness).
    pub seed: u64,
    /// Adam steps after the initial fit (0: the initial fit only).
    pub steps: usize,
    /// Adaptive-control rounds (prune + add) spread evenly over the steps.
    pub rounds: usize,
    /// Share of the segment budget spent by the initial fit; the rest is added where the
    /// residual is largest.
    pub init_fraction: f32,
    /// Peak learning rate of the points (document units per step), for shapes of ~14 px;
    /// on shaded images larger typical shapes (small budgets) get up to twice as much.
    /// Cosine-decays to 10 %.
    pub lr_points: f64,
    /// Learning rate of the fill colours.
    pub lr_fill: f64,
    /// Weight of the self-intersection penalty.
    pub xing_weight: f64,
    /// Send a [`Progress::Preview`] document every this many steps (0: never).
    pub preview_every: usize,
    /// Device of the optimisation.
    pub device: Device,
    /// Rasteriser settings.
    pub raster: RasterOptions,
}

impl Default for VectorizeConfig {
    fn default() -> Self {
        Self {
            budget: Budget::Segments(2000),
            style: Style::Iconography,
            gradients: true,
            seed: 0,
            steps: 60,
            rounds: 3,
            init_fraction: 0.85,
            lr_points: 0.5,
            lr_fill: 0.01,
            xing_weight: 1e-3,
            preview_every: 0,
            device: Device::Cpu,
            raster: RasterOptions {
                flatten_tolerance_px: 0.2,
                ..RasterOptions::default()
            },
        }
    }
}

/// What [`vectorize`] reports while it runs.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A human-readable note (e.g. "downscaled 4000x3000 to 256x192").
    Note(String),
    /// The initial layered fit is ready.
    Initialised {
        /// Shapes.
        shapes: usize,
        /// Segments.
        segments: usize,
        /// PSNR of the initial fit (dB, differentiable rasteriser).
        psnr_db: f64,
    },
    /// One optimisation step finished.
    Step {
        /// Steps done.
        step: usize,
        /// Steps planned.
        total: usize,
        /// PSNR before this step (dB).
        psnr_db: f64,
        /// Shapes.
        shapes: usize,
        /// Segments.
        segments: usize,
    },
    /// An adaptive-control round: shapes pruned and added.
    Adapted {
        /// Shapes removed (transparent or tiny).
        pruned: usize,
        /// Shapes added at the largest residual.
        added: usize,
    },
    /// An intermediate document (every `preview_every` steps and once at the start).
    Preview(Box<Document>),
}

/// The result of [`vectorize`].
#[derive(Clone, Debug)]
pub struct Vectorized {
    /// The layered document (canvas = image size in pixels).
    pub document: Document,
    /// Number of shapes.
    pub shapes: usize,
    /// Number of segments.
    pub segments: usize,
    /// PSNR of the initial fit (dB, differentiable rasteriser, over white).
    pub init_psnr_db: f64,
    /// PSNR of the result (same measure).
    pub psnr_db: f64,
    /// Steps done (fewer than planned if cancelled).
    pub steps: usize,
    /// The callback asked to stop.
    pub cancelled: bool,
}

/// Smallest area (px²) a shape may keep before it is pruned.
pub const MIN_SHAPE_AREA: f32 = 4.0;
/// Gradient fills whose colour changes less than this (any channel, opacity-weighted) end
/// up solid: the difference is under a few 8-bit levels and a solid fill is simpler to edit.
pub const MIN_GRADIENT_CHANGE: f32 = 6.0 / 255.0;
/// Shapes more transparent than this are pruned.
pub const MIN_SHAPE_ALPHA: f32 = 0.05;

fn check_config(cfg: &VectorizeConfig) -> Result<(), VectorizeError> {
    let (segs, shapes) = cfg.budget.limits();
    if segs < 4 || shapes < 1 {
        return Err(VectorizeError::BadConfig(format!(
            "budget {:?} is too small (at least 4 segments and 1 path)",
            cfg.budget
        )));
    }
    if !(0.05..=1.0).contains(&cfg.init_fraction) {
        return Err(VectorizeError::BadConfig(format!(
            "init_fraction {} must be in [0.05, 1]",
            cfg.init_fraction
        )));
    }
    Ok(())
}

/// Loads `path` at working size `size` (longer side) and vectorises it; a resize is
/// reported as a [`Progress::Note`].
pub fn vectorize_file(
    path: &Path,
    size: usize,
    cfg: &VectorizeConfig,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Vectorized, VectorizeError> {
    let loaded = load_image(path, size)?;
    if let Some(note) = loaded.resize_note() {
        let _ = on_progress(Progress::Note(format!("{}: {note}", path.display())));
    }
    vectorize(&loaded.image, cfg, on_progress)
}

fn rendered_mse(out: &Rendered, target: &TargetTensors) -> f64 {
    render_mse(out, target).0.double_value(&[])
}

/// Vectorises `img` into a layered document. `on_progress` receives [`Progress`] events;
/// returning `ControlFlow::Break` stops early with the current result.
pub fn vectorize(
    img: &TargetImage,
    cfg: &VectorizeConfig,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Vectorized, VectorizeError> {
    check_config(cfg)?;
    let (max_segments, max_shapes) = cfg.budget.limits();
    let kind = match cfg.style {
        Style::LowPoly | Style::PixelArt => PrimitiveKind::Polygon,
        Style::Iconography => PrimitiveKind::ClosedPath,
    };
    let adaptive = cfg.style != Style::PixelArt && cfg.steps > 0 && cfg.rounds > 0;
    // Flat-coloured images (icons) keep solid fills, as drawn.
    let shaded =
        cfg.gradients && cfg.style == Style::Iconography && !shading::is_flat_coloured(img);
    let target = TargetTensors::new(img, cfg.device);
    let mut layered = if cfg.style == Style::PixelArt {
        pixel_layers(img, max_shapes.min(max_segments / 4), cfg.seed)
    } else {
        let init_segments = if adaptive {
            (max_segments as f32 * cfg.init_fraction).round() as usize
        } else {
            max_segments
        };
        let init_shapes = if adaptive {
            ((max_shapes as f32 * cfg.init_fraction).round() as usize).max(1)
        } else {
            max_shapes
        };
        // Two palette sizes, the budget's and a coarser one: which fits better depends on the
        // image (flat icons and smooth photos prefer fewer, larger regions at small budgets).
        // The initial fit is cheap next to the optimisation, so keep the better of both.
        let k0 = colours_for_budget(max_segments);
        let k1 = ((k0 as f32 * 0.6).round() as usize).max(4);
        let mut best: Option<(f64, Layered)> = None;
        let palettes = if k1 == k0 { vec![k0] } else { vec![k0, k1] };
        for k in palettes {
            let l = initial_layers(
                img,
                kind,
                k,
                init_segments.max(4),
                init_shapes,
                cfg.seed,
                shaded,
            );
            let psnr = psnr_of_mse(rendered_mse(
                &Flat::from_layers(&l, cfg.device)?.render(&target, &cfg.raster)?,
                &target,
            ));
            if best.as_ref().is_none_or(|(p, _)| psnr > *p) {
                best = Some((psnr, l));
            }
        }
        best.map(|(_, l)| l)
            .ok_or_else(|| VectorizeError::BadConfig("no palette size to try".into()))?
    };
    let mut flat = Flat::from_layers(&layered, cfg.device)?;
    let init_psnr_db = psnr_of_mse(rendered_mse(&flat.render(&target, &cfg.raster)?, &target));
    let mut cancelled = on_progress(Progress::Initialised {
        shapes: layered.shape_count(),
        segments: layered.segments(),
        psnr_db: init_psnr_db,
    })
    .is_break();
    if !cancelled && cfg.preview_every > 0 {
        cancelled = on_progress(Progress::Preview(Box::new(layered.to_document()))).is_break();
    }
    let rounds_at: Vec<usize> = if adaptive {
        (1..=cfg.rounds)
            .map(|r| cfg.steps * r / (cfg.rounds + 1))
            .collect()
    } else {
        Vec::new()
    };
    let mut steps_done = 0;
    // On shaded images, few large shapes (small budgets) move further per step: the point
    // learning rate grows with the typical shape size, sqrt(canvas / shapes), from 14 px up
    // to 2× (measured: +0.3 dB on astronaut at 256 segments). Flat-coloured icons keep the
    // base rate: their crisp edges want small moves (2× costs them 0.5 dB on twemoji).
    let shape_scale = if shaded {
        (((img.width * img.height) as f64 / max_shapes as f64).sqrt() / 14.0).clamp(1.0, 2.0)
    } else {
        1.0
    };
    let lr_fill = if cfg.style == Style::PixelArt {
        cfg.lr_fill * 2.0
    } else {
        cfg.lr_fill
    };
    while steps_done < cfg.steps && !cancelled {
        let progress = steps_done as f64 / cfg.steps.max(1) as f64;
        let lr = cfg.lr_points
            * shape_scale
            * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        let (out, mse) = flat.step(&target, &cfg.raster, lr, lr_fill, cfg.xing_weight)?;
        steps_done += 1;
        cancelled = on_progress(Progress::Step {
            step: steps_done,
            total: cfg.steps,
            psnr_db: psnr_of_mse(mse),
            shapes: layered.shape_count(),
            segments: layered.segments(),
        })
        .is_break();
        if rounds_at.contains(&steps_done) {
            flat.write_layers(&mut layered)?;
            let pruned = layered.retain(|s| {
                s.fixed_points
                    || (s.color[3] >= MIN_SHAPE_ALPHA && s.control_area().abs() >= MIN_SHAPE_AREA)
            });
            let rounds_left = rounds_at
                .iter()
                .filter(|&&r| r >= steps_done)
                .count()
                .max(1);
            let added = add_at_residual(
                &mut layered,
                img,
                &out,
                &target,
                kind,
                shaded,
                max_segments,
                max_shapes,
                rounds_left,
            )?;
            flat = Flat::from_layers(&layered, cfg.device)?;
            if !cancelled {
                cancelled = on_progress(Progress::Adapted { pruned, added }).is_break();
            }
        }
        if !cancelled && cfg.preview_every > 0 && steps_done.is_multiple_of(cfg.preview_every) {
            flat.write_layers(&mut layered)?;
            cancelled = on_progress(Progress::Preview(Box::new(layered.to_document()))).is_break();
        }
    }
    flat.write_layers(&mut layered)?;
    if layered.flatten_faint_gradients(MIN_GRADIENT_CHANGE) > 0 {
        flat = Flat::from_layers(&layered, cfg.device)?;
    }
    let psnr_db = psnr_of_mse(rendered_mse(&flat.render(&target, &cfg.raster)?, &target));
    Ok(Vectorized {
        document: layered.to_document(),
        shapes: layered.shape_count(),
        segments: layered.segments(),
        init_psnr_db,
        psnr_db,
        steps: steps_done,
        cancelled,
    })
}

/// Adds shapes where the residual of `out` is largest: connected pixels of one colour label
/// whose error is above twice the mean, biggest error first, each fitted to its silhouette
/// and coloured with the image's mean there. Returns the number added.
#[allow(clippy::too_many_arguments)]
fn add_at_residual(
    layered: &mut Layered,
    img: &TargetImage,
    out: &Rendered,
    target: &TargetTensors,
    kind: PrimitiveKind,
    shaded: bool,
    max_segments: usize,
    max_shapes: usize,
    rounds_left: usize,
) -> Result<usize, VectorizeError> {
    let (w, h) = (img.width, img.height);
    let err_map = (out.over([1.0, 1.0, 1.0]) - &target.over_white)
        .square()
        .sum_dim_intlist(1, false, Kind::Float)
        + (&out.alpha - &target.alpha).square().squeeze_dim(1);
    let err: Vec<f32> = Vec::<f32>::try_from(
        err_map
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .flatten(0, -1),
    )?;
    let mean = err.iter().sum::<f32>() / err.len().max(1) as f32;
    // A pixel off by ~0.03 per channel is not worth a shape.
    let thr = (2.0 * mean).max(3e-3);
    let labels = &layered.labels;
    let mut comp = vec![NO_LABEL; w * h];
    struct Blob {
        err: f32,
        area: usize,
        color: [f64; 4],
        bbox: [usize; 4],
        first: usize,
    }
    let mut blobs: Vec<Blob> = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if comp[start] != NO_LABEL || err[start] <= thr || labels[start] == NO_LABEL {
            continue;
        }
        let id = blobs.len() as u32;
        let label = labels[start];
        let mut b = Blob {
            err: 0.0,
            area: 0,
            color: [0.0; 4],
            bbox: [w, h, 0, 0],
            first: start,
        };
        comp[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            b.err += err[i];
            b.area += 1;
            for c in 0..4 {
                b.color[c] += f64::from(img.pixels[i][c]);
            }
            b.bbox = [
                b.bbox[0].min(x),
                b.bbox[1].min(y),
                b.bbox[2].max(x),
                b.bbox[3].max(y),
            ];
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < w).then_some(i + 1),
                (y > 0).then(|| i - w),
                (y + 1 < h).then_some(i + w),
            ];
            for j in neighbours.into_iter().flatten() {
                if comp[j] == NO_LABEL && err[j] > thr && labels[j] == label {
                    comp[j] = id;
                    stack.push(j);
                }
            }
        }
        blobs.push(b);
    }
    let mut order: Vec<usize> = (0..blobs.len()).filter(|&i| blobs[i].area >= 6).collect();
    order.sort_by(|&a, &b| blobs[b].err.total_cmp(&blobs[a].err).then(a.cmp(&b)));
    let mut segments = layered.segments();
    let mut shapes = layered.shape_count();
    let seg_quota = max_segments.saturating_sub(segments).div_ceil(rounds_left);
    let seg_limit = (segments + seg_quota).min(max_segments);
    let span = if kind == PrimitiveKind::Polygon {
        SpanKind::Line
    } else {
        SpanKind::Cubic
    };
    let mut added = 0;
    for bi in order {
        if shapes >= max_shapes || segments + 3 > seg_limit {
            break;
        }
        let b = &blobs[bi];
        let mask = silhouette(w, b.bbox, |p| comp[p] == bi as u32);
        let contour = offset_outward(
            &smooth_closed(&trace_boundary(&mask)),
            layers::OUTLINE_OFFSET_PX,
        );
        let perimeter = contour.len();
        let Some(mut fit) = ContourFit::new(contour, span) else {
            continue;
        };
        let cap = (perimeter / 10).clamp(3, 12).min(seg_limit - segments);
        fit.grow(cap);
        let mut color = b.color.map(|v| (v / b.area as f64) as f32);
        if color[3] > 0.9 {
            color[3] = 1.0;
        }
        let mut shape = FitShape {
            points: fit.points(),
            color,
            kind,
            fixed_points: false,
            hole_starts: Vec::new(),
            gradient: None,
        };
        if shaded {
            let [x0, y0, x1, y1] = b.bbox;
            let own: Vec<usize> = (y0..=y1)
                .flat_map(|y| (x0..=x1).map(move |x| y * w + x))
                .filter(|&p| comp[p] == bi as u32)
                .collect();
            shape.shade(img, &own);
        }
        segments += shape.segments();
        shapes += 1;
        added += 1;
        let object = layered.object_map[b.first] as usize;
        layered.add_detail(object, shape);
    }
    Ok(added)
}

/// The result of [`refine`].
#[derive(Clone, Debug)]
pub struct Refined {
    /// The refined document (locked and hidden shapes unchanged).
    pub document: Document,
    /// PSNR before refinement (dB, differentiable rasteriser, over white).
    pub psnr_before_db: f64,
    /// PSNR after.
    pub psnr_db: f64,
}

/// Optimises the unlocked, visible shapes of `doc` (points and fill colours) against `img`
/// for `cfg.steps` Adam steps. Locked and hidden shapes stay bit-identical; no shape is
/// added or removed. The document canvas is stretched over the image.
pub fn refine(
    doc: &Document,
    img: &TargetImage,
    cfg: &VectorizeConfig,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Refined, VectorizeError> {
    let mut view = doc.param_view();
    let target = TargetTensors::new(img, cfg.device);
    let mut flat = Flat::from_view(&view, cfg.device)?;
    let psnr_before_db = psnr_of_mse(rendered_mse(&flat.render(&target, &cfg.raster)?, &target));
    // Learning rates are in document units: scale the pixel rate to the canvas.
    let px = f64::from(view.canvas[0]) / img.width as f64;
    for step in 0..cfg.steps {
        let progress = step as f64 / cfg.steps.max(1) as f64;
        let lr =
            cfg.lr_points * px * (0.1 + 0.45 * (1.0 + (std::f64::consts::PI * progress).cos()));
        let (_, mse) = flat.step(&target, &cfg.raster, lr, cfg.lr_fill, cfg.xing_weight)?;
        let flow = on_progress(Progress::Step {
            step: step + 1,
            total: cfg.steps,
            psnr_db: psnr_of_mse(mse),
            shapes: view.slots.len(),
            segments: 0,
        });
        if flow.is_break() {
            break;
        }
    }
    let psnr_db = psnr_of_mse(rendered_mse(&flat.render(&target, &cfg.raster)?, &target));
    flat.write_view(&mut view)?;
    let mut document = doc.clone();
    document
        .apply_param_view(&view)
        .map_err(|e| VectorizeError::Document(e.to_string()))?;
    Ok(Refined {
        document,
        psnr_before_db,
        psnr_db,
    })
}

/// Counts the segments of every path in an SVG string by its path data: each `C`/`c`,
/// `S`/`s`, `Q`/`q`, `T`/`t`, `L`/`l`, `H`/`h`, `V`/`v` segment and each `Z` that closes
/// a gap counts once (implicit repeated coordinates included). Returns `(paths, segments)`.
pub fn count_svg_segments(svg: &str) -> (usize, usize) {
    // Options without a folder: no external file is read.
    let options = vecdream_core::svg_import::usvg_options(Path::new(""));
    let Ok(tree) = usvg::Tree::from_str(svg, &options) else {
        return (0, 0);
    };
    fn walk(g: &usvg::Group, acc: &mut (usize, usize)) {
        for node in g.children() {
            match node {
                usvg::Node::Group(g) => walk(g, acc),
                usvg::Node::Path(p) => {
                    acc.0 += 1;
                    for seg in p.data().segments() {
                        use usvg::tiny_skia_path::PathSegment as S;
                        if matches!(seg, S::LineTo(_) | S::QuadTo(..) | S::CubicTo(..)) {
                            acc.1 += 1;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut acc = (0, 0);
    walk(tree.root(), &mut acc);
    acc
}
