//! Per-particle preparation for the native kernel: sanitising, flattening, usages, windows,
//! scanline crossings and tile bins.
//!
//! Every number that decides *which* pixels a shape touches (piece counts, vertices, boxes,
//! windows, crossings) is computed with the same float32 operations in the same order as the
//! tensor path (`render.rs`, `flatten.rs`), so both paths pick the same pixels, the same
//! nearest pieces and the same inside/outside answers.

use std::ops::Range;

use super::super::RasterOptions;
use super::super::scene::Scene;

/// Coordinates are clamped to ±this many pixels (`FAR_PX` of the tensor path).
pub(crate) const FAR_PX: f32 = 1.0e6;
/// Tile side in pixels.
pub(crate) const TILE: usize = 16;

/// One particle's raw (unsanitised) numbers, float32, row-major as in [`SceneParams`].
///
/// [`SceneParams`]: super::super::SceneParams
#[derive(Clone, Debug)]
pub(crate) struct Raw {
    /// `[P · 2]` document units.
    pub points: Vec<f32>,
    /// `[S · 4]`.
    pub fill: Vec<f32>,
    /// `[S · 4]`.
    pub stroke: Vec<f32>,
    /// `[S]`.
    pub width: Vec<f32>,
    /// `[4]`.
    pub background: [f32; 4],
    /// `[S · 8]` when the scene has gradient fills.
    pub gradient: Option<Vec<f32>>,
}

/// `nan_to_num(0, hi, lo).clamp(lo, hi)` of the tensor path (`lo ≤ 0 ≤ hi`).
pub(crate) fn sanitise(v: f32, lo: f32, hi: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(lo, hi) }
}

/// Whether the gradient passes `sanitise(v, lo, hi)`: `nan_to_num` passes finite values,
/// `clamp` passes values inside its closed range.
pub(crate) fn passes(v: f32, lo: f32, hi: f32) -> bool {
    v.is_finite() && v >= lo && v <= hi
}

/// Whether the gradient passes `clamp(v, lo, hi)` (closed range, as libtorch).
pub(crate) fn in_range(v: f32, lo: f32, hi: f32) -> bool {
    v >= lo && v <= hi
}

/// One flattened line piece.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    /// Start x, start y, end x, end y in pixels.
    pub p: [f32; 4],
    /// Index of the start vertex (the end vertex is `v0 + 1`).
    pub v0: u32,
}

/// A layer of one shape: its fill (`2s`) or its stroke (`2s + 1`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Inst {
    /// Shape slot.
    pub shape: u32,
    /// Stroke layer.
    pub stroke: bool,
    /// Even-odd fill rule.
    pub evenodd: bool,
    /// Pixels within this distance of a piece get a coverage ramp.
    pub reach: f32,
    /// This layer's entries of [`Prepared::usages`], in edge order.
    pub usages: Range<usize>,
    /// Window `[x0, x1, y0, y1]` (inclusive), the union of the usages' boxes, when non-empty.
    pub win: Option<[i32; 4]>,
    /// Per window row, its range of [`Inst::cross`] (CSR offsets, `rows + 1` entries).
    pub cross_rows: Vec<u32>,
    /// Scanline crossings `(first column it counts for, ±1)`, grouped by row.
    pub cross: Vec<(i32, i32)>,
}

/// A piece used by a layer, with the pixel box its ramp can reach (`lo_x, hi_x, lo_y, hi_y`,
/// inclusive, clamped to the image; empty when `lo > hi`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Usage {
    pub edge: u32,
    pub bx: [i32; 4],
}

/// Linear-gradient shading of a layer: colour `start + span · t` with
/// `t = clamp(u₀ x + u₁ y + u₂, 0, 1)` at pixel centres.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Shade {
    pub start: [f32; 4],
    pub span: [f32; 4],
    pub u: [f32; 3],
}

/// What one tile needs: the layers whose windows touch it and the usages whose boxes do,
/// both in paint order.
#[derive(Clone, Debug, Default)]
pub(crate) struct TileBin {
    pub insts: Vec<u32>,
    pub usages: Vec<u32>,
}

/// Everything the tiles of one particle read.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub w: i32,
    pub h: i32,
    /// Canvas-to-pixel scale (as float32, as the tensor path multiplies).
    pub scale: [f32; 2],
    /// Document-width to pixel-half-width factor.
    pub half_scale: f32,
    /// Sanitised pixel coordinates of the control points.
    pub pts: Vec<[f32; 2]>,
    /// Polyline vertices, their segment and their Bernstein weights.
    pub verts: Vec<[f32; 2]>,
    pub vert_seg: Vec<u32>,
    pub vert_w: Vec<[f32; 4]>,
    pub edges: Vec<Edge>,
    /// `2 · S` layers.
    pub insts: Vec<Inst>,
    pub usages: Vec<Usage>,
    /// Per layer: solid colour (sanitised fill or stroke).
    pub colour: Vec<[f32; 4]>,
    /// Per layer, with gradient fills.
    pub shade: Option<Vec<Shade>>,
    /// Per shape: stroke half width in pixels.
    pub half_width: Vec<f32>,
    /// Sanitised background.
    pub bg: [f32; 4],
    pub tiles_x: usize,
    pub tiles_y: usize,
    pub bins: Vec<TileBin>,
}

/// Piece count of a segment from its (sanitised, pixel) control points, as `flatten.rs`.
fn piece_count(c: [[f32; 2]; 4], line: bool, opts: &RasterOptions) -> usize {
    let max_n = opts.max_pieces_per_cubic.max(1) as f32;
    let n = if line {
        let (dx, dy) = (c[1][0] - c[0][0], c[1][1] - c[0][1]);
        let len = (dx * dx + dy * dy).sqrt();
        (len / opts.line_piece_px.max(1.0)).ceil()
    } else {
        let second = |i: usize| {
            let x = (c[i][0] - c[i + 1][0] * 2.0) + c[i + 2][0];
            let y = (c[i][1] - c[i + 1][1] * 2.0) + c[i + 2][1];
            (x * x + y * y).sqrt()
        };
        let dd = second(0).max(second(1));
        let tol = f64::from(opts.flatten_tolerance_px.max(1e-3));
        (dd * (0.75 / tol) as f32).sqrt().ceil()
    };
    let n = if n.is_nan() {
        1.0
    } else if n == f32::INFINITY {
        max_n
    } else if n == f32::NEG_INFINITY {
        1.0
    } else {
        n
    };
    n.clamp(1.0, max_n) as usize
}

/// Bernstein weights of vertex `j` of `n` (a line uses `s, t`), as `flatten.rs`.
pub(crate) fn weights(j: usize, n: usize, line: bool) -> [f32; 4] {
    let t = j as f32 / n as f32;
    let s = 1.0 - t;
    if line {
        [s, t, 0.0, 0.0]
    } else {
        [s * s * s, s * s * t * 3.0, s * t * t * 3.0, t * t * t]
    }
}

/// First pixel whose centre is within `reach` of `v` (`lo` of the tensor path).
fn box_lo(v: f32, reach: f32, n: i32) -> i32 {
    ((v - reach - 0.5).clamp(-1.0, n as f32).ceil() as i32).max(0)
}

/// Last pixel whose centre is within `reach` of `v` (`hi` of the tensor path).
fn hi_exact(v: f32, reach: f32, n: i32) -> i32 {
    ((v + reach - 0.5).clamp(-1.0, n as f32).floor() as i32).min(n - 1)
}

impl Prepared {
    /// Prepares particle `raw` of `scene` at `w × h` pixels.
    pub(crate) fn new(scene: &Scene, raw: &Raw, w: usize, h: usize, opts: &RasterOptions) -> Self {
        let (wi, hi) = (w as i32, h as i32);
        let canvas = scene.canvas();
        let sx = w as f64 / f64::from(canvas[0]);
        let sy = h as f64 / f64::from(canvas[1]);
        let scale = [sx as f32, sy as f32];
        let half_scale = (0.5 * (sx * sy).sqrt()) as f32;
        let n_shapes = scene.num_shapes();

        // 0. Sanitise.
        let pts: Vec<[f32; 2]> = raw
            .points
            .chunks_exact(2)
            .map(|p| {
                std::array::from_fn(|k| {
                    (sanitise(p[k], -FAR_PX, FAR_PX) * scale[k]).clamp(-FAR_PX, FAR_PX)
                })
            })
            .collect();
        let col = |v: &[f32], s: usize| -> [f32; 4] {
            std::array::from_fn(|k| sanitise(v[4 * s + k], 0.0, 1.0))
        };
        let fill: Vec<[f32; 4]> = (0..n_shapes).map(|s| col(&raw.fill, s)).collect();
        let stroke: Vec<[f32; 4]> = (0..n_shapes).map(|s| col(&raw.stroke, s)).collect();
        let half_width: Vec<f32> = raw
            .width
            .iter()
            .map(|&v| (sanitise(v, 0.0, FAR_PX) * half_scale).clamp(0.0, (w + h) as f32))
            .collect();
        let bg: [f32; 4] = std::array::from_fn(|k| sanitise(raw.background[k], 0.0, 1.0));
        let colour: Vec<[f32; 4]> = (0..2 * n_shapes)
            .map(|i| {
                if i % 2 == 0 {
                    fill[i / 2]
                } else {
                    stroke[i / 2]
                }
            })
            .collect();
        let shade = raw.gradient.as_ref().map(|g| {
            (0..2 * n_shapes)
                .map(|i| {
                    let s = i / 2;
                    if i % 2 == 1 {
                        return Shade {
                            start: stroke[s],
                            span: [0.0; 4],
                            u: [0.0; 3],
                        };
                    }
                    shade_of(fill[s], &g[8 * s..8 * s + 8], scale)
                })
                .collect()
        });

        // 1. Flatten.
        let mut verts = Vec::new();
        let mut vert_seg = Vec::new();
        let mut vert_w = Vec::new();
        let mut edges = Vec::new();
        let mut inst_edges: Vec<Vec<u32>> = vec![Vec::new(); 2 * n_shapes];
        for (si, seg) in scene.segments.iter().enumerate() {
            let c: [[f32; 2]; 4] = std::array::from_fn(|k| pts[seg.pts[k] as usize]);
            let n = piece_count(c, seg.line, opts);
            let first = verts.len() as u32;
            for j in 0..=n {
                let wt = weights(j, n, seg.line);
                let v: [f32; 2] = std::array::from_fn(|a| {
                    let mut x = c[0][a] * wt[0];
                    x += c[1][a] * wt[1];
                    x += c[2][a] * wt[2];
                    x += c[3][a] * wt[3];
                    x
                });
                verts.push(v);
                vert_seg.push(si as u32);
                vert_w.push(wt);
            }
            for j in 0..n {
                let (a, b) = (verts[first as usize + j], verts[first as usize + j + 1]);
                let e = edges.len() as u32;
                edges.push(Edge {
                    p: [a[0], a[1], b[0], b[1]],
                    v0: first + j as u32,
                });
                let s = seg.shape as usize;
                if seg.fill {
                    inst_edges[2 * s].push(e);
                }
                if seg.stroke {
                    inst_edges[2 * s + 1].push(e);
                }
            }
        }

        // 2. Usages, boxes, windows, crossings.
        let mut usages = Vec::new();
        let mut insts = Vec::with_capacity(2 * n_shapes);
        for (i, list) in inst_edges.iter().enumerate() {
            let s = i / 2;
            let stroke_layer = i % 2 == 1;
            let reach = if stroke_layer {
                half_width[s] + 0.5
            } else {
                0.5
            };
            let start = usages.len();
            let (mut x0, mut x1, mut y0, mut y1) = (wi, -1, hi, -1);
            for &e in list {
                let [ax, ay, bx, by] = edges[e as usize].p;
                let (xmin, xmax) = (ax.min(bx), ax.max(bx));
                let (ymin, ymax) = (ay.min(by), ay.max(by));
                let bx = [
                    box_lo(xmin, reach, wi),
                    hi_exact(xmax, reach, wi),
                    box_lo(ymin, reach, hi),
                    hi_exact(ymax, reach, hi),
                ];
                x0 = x0.min(bx[0]);
                x1 = x1.max(bx[1]);
                y0 = y0.min(bx[2]);
                y1 = y1.max(bx[3]);
                usages.push(Usage { edge: e, bx });
            }
            let win = (x1 - x0 + 1 > 0 && y1 - y0 + 1 > 0).then_some([x0, x1, y0, y1]);
            let mut inst = Inst {
                shape: s as u32,
                stroke: stroke_layer,
                evenodd: scene.evenodd[s],
                reach,
                usages: start..usages.len(),
                win,
                ..Inst::default()
            };
            if let (Some(win), false) = (win, stroke_layer) {
                crossings(&mut inst, win, &usages[start..], &edges, wi, hi);
            }
            insts.push(inst);
        }

        // 3. Tile bins, in paint order.
        let tiles_x = w.div_ceil(TILE);
        let tiles_y = h.div_ceil(TILE);
        let mut bins = vec![TileBin::default(); tiles_x * tiles_y];
        let t = TILE as i32;
        for (i, inst) in insts.iter().enumerate() {
            let Some([x0, x1, y0, y1]) = inst.win else {
                continue;
            };
            for ty in y0 / t..=y1 / t {
                for tx in x0 / t..=x1 / t {
                    bins[ty as usize * tiles_x + tx as usize]
                        .insts
                        .push(i as u32);
                }
            }
            for ui in inst.usages.clone() {
                let [lx, hx, ly, hy] = usages[ui].bx;
                if lx > hx || ly > hy {
                    continue;
                }
                for ty in ly / t..=hy / t {
                    for tx in lx / t..=hx / t {
                        bins[ty as usize * tiles_x + tx as usize]
                            .usages
                            .push(ui as u32);
                    }
                }
            }
        }
        Self {
            w: wi,
            h: hi,
            scale,
            half_scale,
            pts,
            verts,
            vert_seg,
            vert_w,
            edges,
            insts,
            usages,
            colour,
            shade,
            half_width,
            bg,
            tiles_x,
            tiles_y,
            bins,
        }
    }
}

/// The shading of a fill layer with gradient entry `g` (sanitised here), as `Shading::new`.
fn shade_of(fill: [f32; 4], g: &[f32], scale: [f32; 2]) -> Shade {
    let delta: [f32; 4] = std::array::from_fn(|k| sanitise(g[k], -1.0, 1.0));
    let axis: [f32; 4] = std::array::from_fn(|k| sanitise(g[4 + k], -FAR_PX, FAR_PX));
    let lo: [f32; 4] = std::array::from_fn(|k| (fill[k] - delta[k] * 0.5).clamp(0.0, 1.0));
    let span: [f32; 4] =
        std::array::from_fn(|k| (fill[k] + delta[k] * 0.5).clamp(0.0, 1.0) - lo[k]);
    Shade {
        start: lo,
        span,
        u: axis_u(axis, scale).0,
    }
}

/// Intermediate values of a gradient axis (pixels): `ax, ay, dx, dy, len2`.
pub(crate) type AxisParts = [f32; 5];

/// `t = u₀ x + u₁ y + u₂` of a sanitised axis, and its intermediates (for the backward).
pub(crate) fn axis_u(axis: [f32; 4], scale: [f32; 2]) -> ([f32; 3], AxisParts, bool) {
    let ax = axis[0] * scale[0];
    let ay = axis[1] * scale[1];
    let dx = axis[2] * scale[0] - ax;
    let dy = axis[3] * scale[1] - ay;
    let len2 = dx * dx + dy * dy;
    let proper = len2 > 1e-12;
    let l = len2.max(1e-12);
    let (ux, uy) = if proper { (dx / l, dy / l) } else { (0.0, 0.0) };
    let k = if proper { -(ux * ax) - uy * ay } else { 1.0 };
    ([ux, uy, k], [ax, ay, dx, dy, len2], proper)
}

/// Scanline crossings of a fill layer inside its window (step 4 of the tensor path).
fn crossings(inst: &mut Inst, win: [i32; 4], usages: &[Usage], edges: &[Edge], w: i32, h: i32) {
    let [wx0, wx1, wy0, wy1] = win;
    let win_w = wx1 - wx0 + 1;
    let rows = (wy1 - wy0 + 1) as usize;
    let row_of = |v: f32| (v - 0.5).clamp(-1.0, h as f32).ceil() as i32;
    let mut list: Vec<(i32, i32, i32)> = Vec::new();
    for u in usages {
        let [x0, y0, x1, y1] = edges[u.edge as usize].p;
        let (ymin, ymax) = (y0.min(y1), y0.max(y1));
        let r0 = row_of(ymin).max(wy0);
        let r1 = (row_of(ymax) - 1).min(wy1);
        if r1 < r0 {
            continue;
        }
        let dir = if y1 > y0 { 1 } else { -1 };
        for row in r0..=r1 {
            let t = (row as f32 + 0.5 - y0) / (y1 - y0);
            let x = x0 + t * (x1 - x0);
            let col = ((x - 0.5).clamp(-2.0, (w + 1) as f32).floor() as i32 + 1 - wx0)
                .max(0)
                .min(win_w);
            list.push((row - wy0, wx0 + col, dir));
        }
    }
    list.sort_by_key(|c| c.0);
    let mut offsets = vec![0u32; rows + 1];
    for c in &list {
        offsets[c.0 as usize + 1] += 1;
    }
    for r in 0..rows {
        offsets[r + 1] += offsets[r];
    }
    inst.cross_rows = offsets;
    inst.cross = list.into_iter().map(|(_, c, d)| (c, d)).collect();
}

#[cfg(test)]
mod tests {
    use super::super::super::scene::ShapeTopology;
    use super::*;
    use vecdream_core::params::{FillRule, PrimitiveKind};

    #[test]
    fn native_weights_end_exactly_and_sum_to_one() {
        for n in [1usize, 3, 8, 64] {
            for line in [false, true] {
                assert_eq!(weights(0, n, line)[0], 1.0);
                let last = weights(n, n, line);
                assert_eq!(last[if line { 1 } else { 3 }], 1.0);
                for j in 0..=n {
                    let s: f32 = weights(j, n, line).iter().sum();
                    assert!((s - 1.0).abs() < 1e-6, "n {n} j {j}: {s}");
                }
            }
        }
    }

    #[test]
    fn native_boxes_hold_every_pixel_within_reach() {
        // Pixel c is in the box when its centre c + 0.5 lies within `reach` of [v, v].
        for v in [-3.0f32, 0.2, 4.5, 4.49, 9.99, 15.7] {
            for reach in [0.5f32, 2.25] {
                let (lo, hi) = (box_lo(v, reach, 10), hi_exact(v, reach, 10));
                for c in 0..10 {
                    let inside = ((c as f32 + 0.5) - v).abs() <= reach;
                    assert_eq!(inside, (lo..=hi).contains(&c), "v {v} reach {reach} c {c}");
                }
            }
        }
    }

    #[test]
    fn native_square_crossings_count_once_per_row() {
        let shape = ShapeTopology {
            kind: PrimitiveKind::Polygon,
            subpaths: vec![(0..4, true)],
            fill_rule: FillRule::NonZero,
            has_fill: true,
            has_stroke: false,
            locked: false,
            hidden: false,
        };
        let scene = Scene::new([20.0, 20.0], 4, vec![shape]).unwrap();
        let raw = Raw {
            points: vec![3.0, 4.0, 15.0, 4.0, 15.0, 12.0, 3.0, 12.0],
            fill: vec![1.0; 4],
            stroke: vec![0.0; 4],
            width: vec![0.0],
            background: [0.0; 4],
            gradient: None,
        };
        let p = Prepared::new(&scene, &raw, 20, 20, &RasterOptions::default());
        let inst = &p.insts[0];
        let [_, _, wy0, _] = inst.win.unwrap();
        // Rows 4..=11 have their centres inside: one +1 and one −1 crossing each.
        for r in 0..inst.cross_rows.len() - 1 {
            let row = wy0 + r as i32;
            let c = &inst.cross[inst.cross_rows[r] as usize..inst.cross_rows[r + 1] as usize];
            let want = if (4..12).contains(&row) { 2 } else { 0 };
            assert_eq!(c.len(), want, "row {row}");
            assert_eq!(c.iter().map(|x| x.1).sum::<i32>(), 0);
        }
        assert!(p.insts[1].win.is_none(), "no stroke layer");
    }
}
