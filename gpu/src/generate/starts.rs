//! Start documents: a sample vectorised in the style's primitives, with its semantic objects and
//! their components (SIVE, then HIVE).
//!
//! - Filled styles (iconography, low-poly, pixel art): the vectoriser fits the sample. With
//!   object masks (Stable Diffusion's cross-attention of the object words), each object is
//!   vectorised on its own (the sample with everything else transparent) and the vectoriser's
//!   regions become that object's components; the background (scene content) is vectorised
//!   from the sample with the objects filled in from their surroundings.
//! - Stroked styles (sketch, ink & wash, painting): strokes are placed along the sample's edges
//!   ([`super::strokes`]), each assigned to the object and component under its middle (object
//!   masks, else the vectoriser's segmentation), then fitted to the style's target picture for
//!   a few steps with the style's own constraints.

use std::ops::ControlFlow;

use tch::Device;
use vecdream_core::{
    Component, ContentType, Document, NodeMeta, Object, ObjectChild, Shape, Style,
};

use super::strokes::{StrokePlan, place_strokes};
use super::target::{FitGuidance, over_white, style_target};
use super::{GenerateError, GenerateSetup};
use crate::distill::{DistillConfig, Distiller, LrConfig};
use crate::rng::Rng;
use crate::vectorize::{self, Budget, TargetImage, VectorizeConfig};

/// Random stream of start documents (see [`Rng::for_step`]).
const STREAM_START: u64 = 5;
/// Ids of particle `k`'s start document begin at `k · ID_STRIDE` (disjoint across particles).
pub const ID_STRIDE: u64 = 1_000_000;

/// What one particle starts from.
#[derive(Clone, Debug)]
pub struct StartSample {
    /// The sample, straight RGBA, `size × size` (transparent where there is nothing).
    pub image: TargetImage,
    /// Semantic objects: a name and a mask per object (empty: objects come from the
    /// vectoriser's segmentation).
    pub objects: Vec<(String, Vec<bool>)>,
    /// Where strokes should start (e.g. the object words' attention), per pixel.
    pub attention: Option<Vec<f32>>,
}

fn vstyle(style: Style) -> vectorize::Style {
    match style {
        Style::LowPoly => vectorize::Style::LowPoly,
        Style::PixelArt => vectorize::Style::PixelArt,
        _ => vectorize::Style::Iconography,
    }
}

/// The start document of particle `particle` (ids offset by `particle · ID_STRIDE`).
pub fn start_document(
    sample: &StartSample,
    setup: &GenerateSetup,
    particle: usize,
    device: Device,
) -> Result<Document, GenerateError> {
    let seed = Rng::for_step(setup.seed, STREAM_START, particle as u64).next_u64();
    let mut doc = if setup.options.style.is_stroked() {
        stroked_start(sample, setup, seed, device)?
    } else {
        filled_start(sample, setup, seed, device)?
    };
    if let Some(p) = &setup.options.palette {
        p.apply(&mut doc);
    }
    doc.offset_ids(particle as u64 * ID_STRIDE);
    Ok(doc)
}

fn vectorize_cfg(
    setup: &GenerateSetup,
    paths: usize,
    seed: u64,
    device: Device,
) -> VectorizeConfig {
    let style = vstyle(setup.options.style);
    VectorizeConfig {
        // Low-poly facets: few edges per polygon (1.5 edges per path of the budget in all, so the
        // polygons the image needs are triangles and quadrilaterals).
        budget: if style == vectorize::Style::LowPoly {
            Budget::Segments((paths * 3 / 2).max(8))
        } else {
            Budget::Paths(paths.max(1))
        },
        style,
        // Distillation trains solid colours; icons are flat anyway.
        gradients: false,
        seed,
        steps: if style == vectorize::Style::PixelArt {
            20
        } else {
            40
        },
        rounds: 2,
        init_fraction: if setup.options.adaptive { 0.75 } else { 0.9 },
        device,
        ..VectorizeConfig::default()
    }
}

fn run_vectorizer(img: &TargetImage, cfg: &VectorizeConfig) -> Result<Document, GenerateError> {
    Ok(vectorize::vectorize(img, cfg, &mut |_| ControlFlow::Continue(()))?.document)
}

/// Keeps or drops the background object as the content type says.
fn apply_content(doc: &mut Document, content: ContentType) {
    if content != ContentType::Scene && doc.objects.len() > 1 {
        doc.objects.retain(|o| o.meta.name != "background");
    }
}

fn filled_start(
    sample: &StartSample,
    setup: &GenerateSetup,
    seed: u64,
    device: Device,
) -> Result<Document, GenerateError> {
    let preset = setup.options.preset();
    let img = &sample.image;
    if sample.objects.is_empty() || setup.options.style == Style::PixelArt {
        let mut doc = run_vectorizer(img, &vectorize_cfg(setup, preset.paths, seed, device))?;
        apply_content(&mut doc, setup.options.content);
        if setup.options.style == Style::PixelArt {
            opaque_cells(&mut doc);
        }
        return Ok(doc);
    }
    let n = img.width * img.height;
    let areas: Vec<usize> = sample
        .objects
        .iter()
        .map(|(_, m)| m.iter().filter(|&&b| b).count())
        .collect();
    let scene = setup.options.content == ContentType::Scene;
    let fg: usize = areas.iter().sum();
    let bg_share = if scene { 0.25 } else { 0.0 };
    let mut parts: Vec<(String, Document)> = Vec::new();
    if scene {
        let mut covered = vec![false; n];
        for (_, m) in &sample.objects {
            for (c, &b) in covered.iter_mut().zip(m) {
                *c |= b;
            }
        }
        let filled = fill_in(img, &covered);
        let paths = ((preset.paths as f32 * bg_share) as usize).max(2);
        let doc = run_vectorizer(&filled, &vectorize_cfg(setup, paths, seed, device))?;
        parts.push(("background".into(), doc));
    }
    let mut order: Vec<usize> = (0..sample.objects.len()).collect();
    // Larger objects first, so smaller ones paint on top.
    order.sort_by_key(|&k| std::cmp::Reverse(areas[k]));
    for k in order {
        let (name, mask) = &sample.objects[k];
        if areas[k] == 0 {
            continue;
        }
        let share = areas[k] as f32 / fg.max(1) as f32 * (1.0 - bg_share);
        let paths = ((preset.paths as f32 * share).round() as usize).max(4);
        let masked = TargetImage {
            pixels: img
                .pixels
                .iter()
                .zip(mask)
                .map(|(p, &m)| if m { *p } else { [p[0], p[1], p[2], 0.0] })
                .collect(),
            ..img.clone()
        };
        let doc = run_vectorizer(
            &masked,
            &vectorize_cfg(setup, paths, seed ^ k as u64, device),
        )?;
        parts.push((name.clone(), doc));
    }
    Ok(merge_as_objects(img.width as f64, img.height as f64, parts))
}

/// Pixel art has no half-transparent cells: a cell at least half opaque becomes opaque, the
/// others are removed (the canvas shows through, as an empty pixel).
fn opaque_cells(doc: &mut Document) {
    use vecdream_core::paint::Paint;
    for o in &mut doc.objects {
        for c in &mut o.children {
            if let ObjectChild::Component(comp) = c {
                comp.shapes.retain_mut(|s| match &mut s.fill {
                    Some(Paint::Solid(c)) if c.a >= 0.5 => {
                        c.a = 1.0;
                        true
                    }
                    Some(Paint::Solid(_)) => false,
                    _ => true,
                });
            }
        }
        o.children
            .retain(|c| !matches!(c, ObjectChild::Component(comp) if comp.shapes.is_empty()));
    }
    doc.objects.retain(|o| !o.children.is_empty());
}

/// One object per part, named by the part; each of the part's vectoriser objects becomes a
/// component (its shapes in paint order).
fn merge_as_objects(w: f64, h: f64, parts: Vec<(String, Document)>) -> Document {
    let mut doc = Document::new(w, h);
    for (name, part) in parts {
        let oid = doc.alloc_id();
        let mut children = Vec::new();
        for o in part.objects {
            let cid = doc.alloc_id();
            let shapes: Vec<Shape> = o
                .shapes()
                .cloned()
                .map(|mut s| {
                    let id = doc.alloc_id();
                    s.meta = NodeMeta::new(id, format!("shape {}", id.0));
                    s
                })
                .collect();
            if !shapes.is_empty() {
                children.push(ObjectChild::Component(Component {
                    meta: NodeMeta::new(cid, o.meta.name.clone()),
                    shapes,
                }));
            }
        }
        if !children.is_empty() {
            doc.objects.push(Object {
                meta: NodeMeta::new(oid, name),
                children,
            });
        }
    }
    doc
}

/// `img` with the `holes` pixels filled from their surroundings (push-pull: repeated averaging
/// of known neighbours), opaque: the background behind removed objects.
pub fn fill_in(img: &TargetImage, holes: &[bool]) -> TargetImage {
    let (w, h) = (img.width, img.height);
    let mut px: Vec<[f32; 4]> = img.pixels.clone();
    let mut known: Vec<bool> = holes.iter().map(|&b| !b).collect();
    if !known.iter().any(|&k| k) {
        return img.clone();
    }
    while known.iter().any(|&k| !k) {
        let mut next = known.clone();
        let mut npx = px.clone();
        for i in 0..w * h {
            if known[i] {
                continue;
            }
            let (x, y) = (i % w, i / w);
            let mut sum = [0f32; 4];
            let mut cnt = 0.0;
            for (dx, dy) in [(-1isize, 0isize), (1, 0), (0, -1), (0, 1)] {
                let (xx, yy) = (x as isize + dx, y as isize + dy);
                if xx < 0 || yy < 0 || xx >= w as isize || yy >= h as isize {
                    continue;
                }
                let j = yy as usize * w + xx as usize;
                if known[j] {
                    for c in 0..4 {
                        sum[c] += px[j][c];
                    }
                    cnt += 1.0;
                }
            }
            if cnt > 0.0 {
                npx[i] = sum.map(|v| v / cnt);
                next[i] = true;
            }
        }
        px = npx;
        known = next;
    }
    TargetImage {
        width: w,
        height: h,
        pixels: px,
    }
}

/// Per pixel, the index of the topmost region (object, component) of `seg` covering it.
struct Regions {
    /// `(object name, component name)` per region.
    names: Vec<(String, String)>,
    /// Region per pixel (`usize::MAX`: none).
    at: Vec<usize>,
}

fn segmentation_regions(seg: &Document, size: usize) -> Regions {
    let mut names = Vec::new();
    let mut at = vec![usize::MAX; size * size];
    for o in &seg.objects {
        for c in &o.children {
            let (cname, shapes): (String, Vec<Shape>) = match c {
                ObjectChild::Component(comp) => (comp.meta.name.clone(), comp.shapes.clone()),
                ObjectChild::Shape(s) => (o.meta.name.clone(), vec![s.clone()]),
            };
            let mut one = Document::new(seg.width, seg.height);
            let id = one.alloc_id();
            one.objects.push(Object {
                meta: NodeMeta::new(id, "r"),
                children: shapes.into_iter().map(ObjectChild::Shape).collect(),
            });
            let Ok(img) = vecdream_core::png::render_rgba(&one, size as u32, size as u32) else {
                continue;
            };
            let r = names.len();
            names.push((o.meta.name.clone(), cname));
            for (i, p) in img.data.chunks_exact(4).enumerate() {
                if p[3] >= 128 {
                    at[i] = r;
                }
            }
        }
    }
    Regions { names, at }
}

fn stroked_start(
    sample: &StartSample,
    setup: &GenerateSetup,
    seed: u64,
    device: Device,
) -> Result<Document, GenerateError> {
    let preset = setup.options.preset();
    let img = &sample.image;
    let (w, h) = (img.width, img.height);
    let target = style_target(setup.options.style, img);
    let colors = over_white(img);
    // Components (and objects, without masks) from a coarse segmentation of the sample.
    let seg_cfg = VectorizeConfig {
        budget: Budget::Paths(24),
        style: vectorize::Style::Iconography,
        gradients: false,
        seed,
        steps: 0,
        rounds: 0,
        device,
        ..VectorizeConfig::default()
    };
    let seg = run_vectorizer(img, &seg_cfg)?;
    let regions = segmentation_regions(&seg, w.max(h));
    let mut rng = Rng::new(seed);
    let plan = StrokePlan {
        target: &target,
        colors: &colors,
        weight: sample.attention.as_deref(),
        preset: &preset,
        count: preset.paths,
        unit: 1.0,
    };
    let strokes = place_strokes(&plan, &mut rng);
    // Group: object (mask or segmentation object) → component (segmentation component).
    let mut groups: Vec<((String, String), Vec<Shape>)> = Vec::new();
    for s in strokes {
        let pts = &s.subpaths[0].points;
        let mid = pts[pts.len() / 2];
        let (x, y) = ((mid.x as usize).min(w - 1), (mid.y as usize).min(h - 1));
        let i = y * w + x;
        let region = regions.at.get(i).copied().unwrap_or(usize::MAX);
        let (seg_object, component) = regions
            .names
            .get(region)
            .cloned()
            .unwrap_or_else(|| ("background".into(), "strokes".into()));
        let object = if sample.objects.is_empty() {
            seg_object
        } else {
            sample
                .objects
                .iter()
                .find(|(_, m)| m[i])
                .map_or_else(|| "background".to_string(), |(n, _)| n.clone())
        };
        let key = (object, component);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(s),
            None => groups.push((key, vec![s])),
        }
    }
    let mut doc = Document::new(w as f64, h as f64);
    let mut objects: Vec<Object> = Vec::new();
    for ((object, component), shapes) in groups {
        let oi = match objects.iter().position(|o| o.meta.name == object) {
            Some(i) => i,
            None => {
                let id = doc.alloc_id();
                objects.push(Object {
                    meta: NodeMeta::new(id, object.clone()),
                    children: Vec::new(),
                });
                objects.len() - 1
            }
        };
        let cid = doc.alloc_id();
        let shapes = shapes
            .into_iter()
            .map(|mut s| {
                let id = doc.alloc_id();
                s.meta.id = id;
                s
            })
            .collect();
        objects[oi].children.push(ObjectChild::Component(Component {
            meta: NodeMeta::new(cid, component),
            shapes,
        }));
    }
    // The background first (painted behind).
    objects.sort_by_key(|o| o.meta.name != "background");
    doc.objects = objects;
    fit_to(&doc, &target.to_tensor(device), setup, device)
}

/// A few steps of MSE fitting of `doc` to `target` under the style's constraints.
fn fit_to(
    doc: &Document,
    target: &tch::Tensor,
    setup: &GenerateSetup,
    device: Device,
) -> Result<Document, GenerateError> {
    let mut cfg = super::distill_config(setup, doc.width.max(doc.height));
    cfg.particles = 1;
    cfg.steps = 60;
    cfg.adaptive = None;
    cfg.region_weight = 0.0;
    cfg.lr = LrConfig {
        points: 2.0,
        color: 0.02,
        width: 0.2,
        ..LrConfig::default()
    };
    let cfg = DistillConfig {
        seed: setup.seed,
        ..cfg
    };
    let mut d = Distiller::new(
        doc,
        cfg,
        Box::new(FitGuidance::new(target.shallow_clone())),
        device,
    )?;
    while !d.is_finished() {
        d.step()?;
    }
    Ok(d.particle_document(0)?)
}
