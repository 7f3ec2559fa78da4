//! The layered initial guess: regions → containment tree → objects, components and shapes,
//! each shape a closed path (or polygon) fitted to its region's hole-filled silhouette.

use vecdream_core::{
    Component, Document, FillRule, LinearFill, NodeMeta, Object, ObjectChild, Paint, PrimitiveKind,
    Rgba, Shape, Subpath,
};

use super::fit::{Candidate, ContourFit, SpanKind, allocate, offset_outward, smooth_closed};

/// Shapes smaller than this (px²) keep solid fills: a gradient there costs more SVG bytes
/// than the few pixels it improves are worth.
pub const MIN_GRADIENT_AREA: f32 = 64.0;
/// How far outlines are pushed outwards (px) so neighbours overlap instead of leaving gaps.
pub const OUTLINE_OFFSET_PX: f32 = 0.5;
use super::image::TargetImage;
use super::segment::{
    NO_LABEL, Region, connected_regions, kmeans_labels, silhouette, trace_boundary,
};
use super::shading::fit_shading;

/// One primitive being fitted.
#[derive(Clone, Debug, PartialEq)]
pub struct FitShape {
    /// Control points in the parameter-view layout (closed cubic or polygon vertices).
    pub points: Vec<[f32; 2]>,
    /// Straight RGBA fill.
    pub color: [f32; 4],
    /// Closed cubic path or polygon.
    pub kind: PrimitiveKind,
    /// Points are not optimised (the background rectangle, pixel-art cells).
    pub fixed_points: bool,
    /// Start index in `points` of each subpath after the first (holes, wound the other way).
    pub hole_starts: Vec<usize>,
    /// Linear-gradient fill around the mean colour `color`, or `None` for a solid fill.
    pub gradient: Option<LinearFill>,
}

impl FitShape {
    /// Number of segments (edges for polygons).
    pub fn segments(&self) -> usize {
        match self.kind {
            PrimitiveKind::Polygon => self.points.len(),
            _ => self.points.len() / 3,
        }
    }

    /// Point ranges of the subpaths (outline first, then holes).
    pub fn subpath_ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut bounds = vec![0];
        bounds.extend(self.hole_starts.iter().copied());
        bounds.push(self.points.len());
        bounds.windows(2).map(|w| w[0]..w[1]).collect()
    }

    /// The fill paint: solid, or a two-stop linear gradient when its colours differ by at
    /// least one 8-bit level.
    pub fn paint(&self) -> Paint {
        let color = self.color.map(|v| v.clamp(0.0, 1.0));
        match self.gradient {
            Some(g) if g.delta.iter().any(|d| d.abs() >= 1.0 / 255.0) => {
                Paint::from_linear_fill(color, g)
            }
            _ => Paint::Solid(Rgba::from_array(color)),
        }
    }

    /// Starts the fill as the least-squares linear gradient of `img` over `pixels`
    /// ([`fit_shading`]; faint ones included: the optimiser may strengthen them, and
    /// [`Layered::flatten_faint_gradients`] turns those that stay faint solid).
    /// Regions under [`MIN_GRADIENT_AREA`] stay solid; the opacity stays uniform.
    pub fn shade(&mut self, img: &TargetImage, pixels: &[usize]) {
        if (pixels.len() as f32) < MIN_GRADIENT_AREA {
            return;
        }
        if let Some((mean, mut g)) = fit_shading(img, pixels) {
            let alpha = self.color[3];
            self.color = mean.map(|v| v.clamp(0.0, 1.0));
            self.color[3] = alpha;
            g.delta[3] = 0.0;
            self.gradient = Some(g);
        }
    }

    /// Signed area of the control polygons (px², holes subtract), a cheap proxy of the
    /// path's area.
    pub fn control_area(&self) -> f32 {
        self.subpath_ranges()
            .into_iter()
            .map(|r| super::segment::shoelace(&self.points[r]))
            .sum()
    }
}

/// A named group of shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct FitComponent {
    /// Label shown in the layer tree.
    pub name: String,
    /// Shapes, back to front.
    pub shapes: Vec<FitShape>,
}

/// A named group of components.
#[derive(Clone, Debug, PartialEq)]
pub struct FitObject {
    /// Label shown in the layer tree.
    pub name: String,
    /// Components, back to front.
    pub components: Vec<FitComponent>,
}

/// The whole layered fit plus the segmentation it came from.
#[derive(Clone, Debug)]
pub struct Layered {
    /// Canvas width and height in pixels (= document units).
    pub size: [usize; 2],
    /// Objects, back to front.
    pub objects: Vec<FitObject>,
    /// Per pixel: the colour label (k-means), or `NO_LABEL` where transparent.
    pub labels: Vec<u32>,
    /// Per pixel: the object whose top-level silhouette covers it (new detail goes there).
    pub object_map: Vec<u32>,
}

impl Layered {
    /// All shapes in paint order.
    pub fn shapes(&self) -> impl Iterator<Item = &FitShape> {
        self.objects
            .iter()
            .flat_map(|o| o.components.iter().flat_map(|c| c.shapes.iter()))
    }

    /// Mutable shapes in paint order.
    pub fn shapes_mut(&mut self) -> impl Iterator<Item = &mut FitShape> {
        self.objects
            .iter_mut()
            .flat_map(|o| o.components.iter_mut().flat_map(|c| c.shapes.iter_mut()))
    }

    /// Total number of segments.
    pub fn segments(&self) -> usize {
        self.shapes().map(FitShape::segments).sum()
    }

    /// Number of shapes.
    pub fn shape_count(&self) -> usize {
        self.shapes().count()
    }

    /// Removes the shapes for which `drop` is true, then empty components. Returns how many
    /// shapes were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&FitShape) -> bool) -> usize {
        let before = self.shape_count();
        for o in &mut self.objects {
            for c in &mut o.components {
                c.shapes.retain(&mut keep);
            }
            o.components.retain(|c| !c.shapes.is_empty());
        }
        before - self.shape_count()
    }

    /// Turns gradient fills whose visible colour change stays below `min_change` (on every
    /// channel, weighted by opacity), or whose shape shrank below [`MIN_GRADIENT_AREA`],
    /// into solid fills of their mean colour. Returns how many.
    pub fn flatten_faint_gradients(&mut self, min_change: f32) -> usize {
        let mut n = 0;
        for s in self.shapes_mut() {
            let Some(g) = s.gradient else {
                continue;
            };
            if s.control_area().abs() < MIN_GRADIENT_AREA {
                s.gradient = None;
                n += 1;
                continue;
            }
            let (c0, c1) = g.stops(s.color);
            let change = (0..4)
                .map(|k| (c1[k] * c1[3] - c0[k] * c0[3]).abs())
                .fold(0.0f32, f32::max);
            if change < min_change {
                s.gradient = None;
                n += 1;
            }
        }
        n
    }

    /// Appends `shape` on top of object `object`'s "details" component.
    pub fn add_detail(&mut self, object: usize, shape: FitShape) {
        if object >= self.objects.len() {
            self.objects.push(FitObject {
                name: "details".into(),
                components: Vec::new(),
            });
        }
        let o = object.min(self.objects.len() - 1);
        let o = &mut self.objects[o];
        match o.components.last_mut() {
            Some(c) if c.name == "details" => c.shapes.push(shape),
            _ => o.components.push(FitComponent {
                name: "details".into(),
                shapes: vec![shape],
            }),
        }
    }

    /// The layered fit as a document: one object per group, one component per part.
    pub fn to_document(&self) -> Document {
        let mut doc = Document::new(self.size[0] as f64, self.size[1] as f64);
        for (oi, o) in self.objects.iter().enumerate() {
            if o.components.iter().all(|c| c.shapes.is_empty()) {
                continue;
            }
            let oid = doc.alloc_id();
            let mut children = Vec::new();
            for c in &o.components {
                if c.shapes.is_empty() {
                    continue;
                }
                let cid = doc.alloc_id();
                let shapes = c
                    .shapes
                    .iter()
                    .map(|s| {
                        let id = doc.alloc_id();
                        Shape {
                            meta: NodeMeta::new(id, format!("shape {}", id.0)),
                            kind: s.kind,
                            subpaths: s
                                .subpath_ranges()
                                .into_iter()
                                .map(|r| Subpath {
                                    points: s.points[r]
                                        .iter()
                                        .map(|p| {
                                            kurbo::Point::new(f64::from(p[0]), f64::from(p[1]))
                                        })
                                        .collect(),
                                    closed: true,
                                })
                                .collect(),
                            fill: Some(s.paint()),
                            fill_rule: FillRule::NonZero,
                            stroke: None,
                        }
                    })
                    .collect();
                children.push(ObjectChild::Component(Component {
                    meta: NodeMeta::new(cid, c.name.clone()),
                    shapes,
                }));
            }
            let _ = oi;
            doc.objects.push(Object {
                meta: NodeMeta::new(oid, o.name.clone()),
                children,
            });
        }
        doc
    }
}

fn hex(c: [f32; 4]) -> String {
    Rgba::from_array(c).to_hex()
}

/// Squared colour difference of `c` drawn over `under` (premultiplied RGB and alpha).
fn contrast2(c: [f32; 4], under: [f32; 4]) -> f32 {
    let pm = |x: [f32; 4]| [x[0] * x[3], x[1] * x[3], x[2] * x[3], x[3]];
    let (a, b) = (pm(c), pm(under));
    (0..4).map(|i| (a[i] - b[i]).powi(2)).sum()
}

/// Canvas rectangle as a closed cubic path with straight handles (4 segments).
pub fn rect_path(w: f32, h: f32) -> Vec<[f32; 2]> {
    let corners = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]];
    let mut out = Vec::new();
    for i in 0..4 {
        let (a, b) = (corners[i], corners[(i + 1) % 4]);
        out.push(a);
        out.push([a[0] + (b[0] - a[0]) / 3.0, a[1] + (b[1] - a[1]) / 3.0]);
        out.push([
            a[0] + 2.0 * (b[0] - a[0]) / 3.0,
            a[1] + 2.0 * (b[1] - a[1]) / 3.0,
        ]);
    }
    out
}

/// Number of k-means colours for a segment budget (more colours for bigger budgets).
pub fn colours_for_budget(segments: usize) -> usize {
    (4.0 + (segments as f64).sqrt() / 2.5)
        .round()
        .clamp(4.0, 40.0) as usize
}

/// Builds the layered initial guess using at most `max_segments` segments and `max_shapes`
/// shapes (`kind`: closed cubic paths or polygons). With `shaded`, shapes (and the
/// background) over smoothly shaded pixels start with their least-squares linear gradient.
pub fn initial_layers(
    img: &TargetImage,
    kind: PrimitiveKind,
    colours: usize,
    max_segments: usize,
    max_shapes: usize,
    seed: u64,
    shaded: bool,
) -> Layered {
    let (w, h) = (img.width, img.height);
    let (labels, _) = kmeans_labels(img, colours, seed);
    let (comp, regions) = connected_regions(img, &labels);

    // Background: an image whose border is (almost) all opaque gets a canvas rectangle of the
    // border's mean colour. A border with transparent stretches (an icon that touches the
    // edges, like twemoji's briefcase) keeps a transparent background: a rectangle would
    // paint over what the user sees as empty.
    let border: Vec<usize> = (0..w)
        .flat_map(|x| [x, (h - 1) * w + x])
        .chain((0..h).flat_map(|y| [y * w, y * w + w - 1]))
        .collect();
    let opaque: Vec<usize> = border
        .iter()
        .copied()
        .filter(|&i| img.pixels[i][3] >= 0.5)
        .collect();
    let background = (opaque.len() * 20 >= border.len() * 19).then(|| {
        let mut s = [0f64; 4];
        for &i in &opaque {
            for (acc, v) in s.iter_mut().zip(img.pixels[i]) {
                *acc += f64::from(v);
            }
        }
        let mut c = s.map(|v| (v / opaque.len() as f64) as f32);
        c[3] = 1.0;
        c
    });

    // Silhouettes of every region of ≥ 3 pixels, biggest first, and the containment tree.
    let mut sil: Vec<(usize, super::segment::Mask)> = regions
        .iter()
        .enumerate()
        .filter(|(_, r)| r.area >= 3)
        .map(|(i, r)| (i, silhouette(w, r.bbox, |p| comp[p] == i as u32)))
        .collect();
    sil.sort_by_key(|(i, m)| (std::cmp::Reverse(m.area()), *i));
    let mut cover = vec![NO_LABEL; w * h];
    let mut parent = vec![NO_LABEL; sil.len()];
    for (k, (ri, m)) in sil.iter().enumerate() {
        parent[k] = cover[regions[*ri].first];
        for y in 0..m.h {
            for x in 0..m.w {
                if m.bits[y * m.w + x] {
                    cover[(m.y0 + y) * w + m.x0 + x] = k as u32;
                }
            }
        }
    }
    let color_of = |r: &Region| {
        let mut c = r.color;
        if c[3] > 0.9 {
            c[3] = 1.0;
        }
        c
    };
    let under = |k: usize| match parent[k] {
        NO_LABEL => background.unwrap_or([0.0; 4]),
        p => color_of(&regions[sil[p as usize].0]),
    };
    let span_kind = if kind == PrimitiveKind::Polygon {
        SpanKind::Line
    } else {
        SpanKind::Cubic
    };
    let cands: Vec<Candidate> = sil
        .iter()
        .enumerate()
        .map(|(k, (ri, m))| {
            let r = &regions[*ri];
            let c2 = contrast2(color_of(r), under(k));
            Candidate {
                contour: offset_outward(&smooth_closed(&trace_boundary(m)), OUTLINE_OFFSET_PX),
                gain: r.area as f32 * c2,
                contrast2: c2,
            }
        })
        .collect();
    let bg_segments = if background.is_some() { 4 } else { 0 };
    // Transparent holes inside silhouettes need their own subpaths: keep 10 % for them.
    let transparent = labels.contains(&NO_LABEL);
    let hole_reserve = if transparent { max_segments / 10 } else { 0 };
    let chosen = allocate(
        &cands,
        span_kind,
        max_segments.saturating_sub(bg_segments + hole_reserve),
        max_shapes.saturating_sub(usize::from(background.is_some())),
        // Intricate outlines (a horse's legs) may take a quarter of the budget.
        (max_segments / 4).max(16),
    );
    let mut fit_of: Vec<Option<ContourFit>> = vec![None; sil.len()];
    for (k, f) in chosen {
        fit_of[k] = Some(f);
    }
    // Nearest chosen ancestor of each chosen silhouette.
    let chosen_parent = |mut k: usize| loop {
        match parent[k] {
            NO_LABEL => return None,
            p if fit_of[p as usize].is_some() => return Some(p as usize),
            p => k = p as usize,
        }
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); sil.len()];
    let mut roots = Vec::new();
    for k in (0..sil.len()).filter(|&k| fit_of[k].is_some()) {
        match chosen_parent(k) {
            Some(p) => children[p].push(k),
            None => roots.push(k),
        }
    }
    let mut used: usize = bg_segments
        + fit_of
            .iter()
            .flatten()
            .map(ContourFit::segments)
            .sum::<usize>();
    let shapes_of: Vec<Option<FitShape>> = (0..sil.len())
        .map(|k| {
            let fit = fit_of[k].as_ref()?;
            let ri = sil[k].0;
            let mut shape = FitShape {
                points: fit.points(),
                color: color_of(&regions[ri]),
                kind,
                fixed_points: false,
                hole_starts: Vec::new(),
                gradient: None,
            };
            if shaded {
                let [x0, y0, x1, y1] = regions[ri].bbox;
                let own: Vec<usize> = (y0..=y1)
                    .flat_map(|y| (x0..=x1).map(move |x| y * w + x))
                    .filter(|&p| comp[p] == ri as u32)
                    .collect();
                shape.shade(img, &own);
            }
            if transparent {
                for hole in transparent_holes(&sil[k].1, &labels, w) {
                    let Some(mut hf) = ContourFit::new(hole, span_kind) else {
                        continue;
                    };
                    // Big holes first (shapes come largest first); a hole takes what is left of
                    // the budget if its natural size does not fit, down to a triangle.
                    let room = max_segments.saturating_sub(used);
                    if room < hf.segments() {
                        continue;
                    }
                    hf.grow((hf_len(&hf) / 12).clamp(3, 24).min(room));
                    used += hf.segments();
                    shape.hole_starts.push(shape.points.len());
                    shape.points.extend(hf.points());
                }
            }
            Some(shape)
        })
        .collect();
    let make_shape = |k: usize| {
        shapes_of[k].clone().unwrap_or_else(|| FitShape {
            points: Vec::new(),
            color: [0.0; 4],
            kind,
            fixed_points: false,
            hole_starts: Vec::new(),
            gradient: None,
        })
    };
    let canvas = (w * h) as f32;
    // Very large roots (e.g. a sky that surrounds everything) join the background object.
    let mut bg_shapes: Vec<FitShape> = Vec::new();
    if let Some(c) = background {
        let mut rect = FitShape {
            points: if kind == PrimitiveKind::Polygon {
                vec![
                    [0.0, 0.0],
                    [w as f32, 0.0],
                    [w as f32, h as f32],
                    [0.0, h as f32],
                ]
            } else {
                rect_path(w as f32, h as f32)
            },
            color: c,
            kind,
            fixed_points: true,
            hole_starts: Vec::new(),
            gradient: None,
        };
        if shaded {
            // The background shows wherever no chosen silhouette covers the canvas.
            let mut covered = vec![false; w * h];
            for (k, (_, m)) in sil.iter().enumerate() {
                if fit_of[k].is_none() {
                    continue;
                }
                for y in 0..m.h {
                    for x in 0..m.w {
                        if m.bits[y * m.w + x] {
                            covered[(m.y0 + y) * w + m.x0 + x] = true;
                        }
                    }
                }
            }
            let open: Vec<usize> = (0..w * h)
                .filter(|&p| !covered[p] && img.pixels[p][3] >= 0.5)
                .collect();
            rect.shade(img, &open);
        }
        bg_shapes.push(rect);
    }
    let mut tops = Vec::new();
    let mut queue = roots;
    while let Some(k) = queue.pop() {
        if sil[k].1.area() as f32 > 0.4 * canvas {
            bg_shapes.push(make_shape(k));
            queue.extend(children[k].iter().copied());
        } else {
            tops.push(k);
        }
    }
    tops.sort_by_key(|&k| (std::cmp::Reverse(sil[k].1.area()), k));
    fn subtree(k: usize, children: &[Vec<usize>], out: &mut Vec<usize>) {
        out.push(k);
        for &c in &children[k] {
            subtree(c, children, out);
        }
    }
    let mut objects = vec![FitObject {
        name: "background".into(),
        components: vec![FitComponent {
            name: "background".into(),
            shapes: bg_shapes,
        }],
    }];
    let mut object_map = vec![0u32; w * h];
    const MAX_OBJECTS: usize = 12;
    const MAX_PARTS: usize = 8;
    for (rank, &k) in tops.iter().enumerate() {
        let oi = if rank < MAX_OBJECTS {
            let mut components = vec![FitComponent {
                name: "base".into(),
                shapes: vec![make_shape(k)],
            }];
            let mut parts: Vec<usize> = children[k].clone();
            parts.sort_by_key(|&c| (std::cmp::Reverse(sil[c].1.area()), c));
            for (pi, &c) in parts.iter().enumerate() {
                let mut ids = Vec::new();
                subtree(c, &children, &mut ids);
                let shapes = ids.into_iter().map(make_shape).collect();
                if pi < MAX_PARTS {
                    components.push(FitComponent {
                        name: format!("part {}", pi + 1),
                        shapes,
                    });
                } else if let Some(last) = components.last_mut().filter(|c| c.name == "small parts")
                {
                    last.shapes.extend(shapes);
                } else {
                    components.push(FitComponent {
                        name: "small parts".into(),
                        shapes,
                    });
                }
            }
            let color = color_of(&regions[sil[k].0]);
            objects.push(FitObject {
                name: format!("region {} ({})", rank + 1, hex(color)),
                components,
            });
            objects.len() - 1
        } else {
            if objects.len() == MAX_OBJECTS + 1 {
                objects.push(FitObject {
                    name: "small regions".into(),
                    components: Vec::new(),
                });
            }
            let mut ids = Vec::new();
            subtree(k, &children, &mut ids);
            let last = objects.len() - 1;
            objects[last].components.push(FitComponent {
                name: format!("region {}", rank + 1),
                shapes: ids.into_iter().map(make_shape).collect(),
            });
            last
        };
        let m = &sil[k].1;
        for y in 0..m.h {
            for x in 0..m.w {
                if m.bits[y * m.w + x] {
                    object_map[(m.y0 + y) * w + m.x0 + x] = oi as u32;
                }
            }
        }
    }
    Layered {
        size: [w, h],
        objects,
        labels,
        object_map,
    }
}

fn hf_len(f: &ContourFit) -> usize {
    f.contour_len()
}

/// Boundaries (reversed, smoothed) of the transparent pixel groups of ≥ 4 px inside a
/// silhouette, so they can be cut out as holes.
fn transparent_holes(m: &super::segment::Mask, labels: &[u32], width: usize) -> Vec<Vec<[f32; 2]>> {
    let hole_at = |x: usize, y: usize| {
        m.bits[y * m.w + x] && labels[(m.y0 + y) * width + m.x0 + x] == NO_LABEL
    };
    let mut seen = vec![false; m.w * m.h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..m.w * m.h {
        if seen[start] || !hole_at(start % m.w, start / m.w) {
            continue;
        }
        let mut member = Vec::new();
        seen[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            member.push(i);
            let (x, y) = (i % m.w, i / m.w);
            let n = [
                (x > 0).then(|| i - 1),
                (x + 1 < m.w).then_some(i + 1),
                (y > 0).then(|| i - m.w),
                (y + 1 < m.h).then_some(i + m.w),
            ];
            for j in n.into_iter().flatten() {
                if !seen[j] && hole_at(j % m.w, j / m.w) {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        if member.len() < 4 {
            continue;
        }
        let mut bits = vec![false; m.w * m.h];
        for &i in &member {
            bits[i] = true;
        }
        let hole = super::segment::Mask {
            x0: m.x0,
            y0: m.y0,
            w: m.w,
            h: m.h,
            bits,
        };
        let mut contour = smooth_closed(&trace_boundary(&hole));
        contour.reverse();
        let contour = offset_outward(&contour, OUTLINE_OFFSET_PX);
        out.push(contour);
    }
    out
}

/// Pixel-art layers: one square per grid cell (cell side chosen so the cells fit
/// `max_shapes`), grouped into one object per colour.
pub fn pixel_layers(img: &TargetImage, max_shapes: usize, seed: u64) -> Layered {
    let (w, h) = (img.width, img.height);
    let cell = ((w * h) as f64 / max_shapes.max(1) as f64)
        .sqrt()
        .ceil()
        .max(1.0) as usize;
    let (labels, centres) = kmeans_labels(img, 12, seed);
    let mut objects: Vec<FitObject> = (0..centres.len())
        .map(|i| FitObject {
            name: format!("colour {}", i + 1),
            components: vec![FitComponent {
                name: "pixels".into(),
                shapes: Vec::new(),
            }],
        })
        .collect();
    for cy in (0..h).step_by(cell) {
        for cx in (0..w).step_by(cell) {
            let (x1, y1) = ((cx + cell).min(w), (cy + cell).min(h));
            let mut sum = [0f64; 4];
            let mut votes = vec![0usize; centres.len()];
            for y in cy..y1 {
                for x in cx..x1 {
                    let p = img.at(x, y);
                    for c in 0..4 {
                        sum[c] += f64::from(p[c]);
                    }
                    if let Some(v) = votes.get_mut(labels[y * w + x] as usize) {
                        *v += 1;
                    }
                }
            }
            let n = ((x1 - cx) * (y1 - cy)) as f64;
            let color = sum.map(|v| (v / n) as f32);
            if color[3] < 0.05 {
                continue;
            }
            let label = (0..votes.len()).max_by_key(|&i| votes[i]).unwrap_or(0);
            let (a, b, c, d) = (cx as f32, cy as f32, x1 as f32, y1 as f32);
            if let Some(o) = objects.get_mut(label) {
                o.components[0].shapes.push(FitShape {
                    points: vec![[a, b], [c, b], [c, d], [a, d]],
                    color,
                    kind: PrimitiveKind::Polygon,
                    fixed_points: true,
                    hole_starts: Vec::new(),
                    gradient: None,
                });
            }
        }
    }
    objects.retain(|o| !o.components[0].shapes.is_empty());
    Layered {
        size: [w, h],
        objects,
        labels,
        object_map: vec![0; w * h],
    }
}
