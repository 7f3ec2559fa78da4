//! Backward pass: replays each tile's kept fragments to get dL/d(piece end points, layer
//! colours, half widths, gradient axes), then reduces pieces to control points through the
//! flattening weights and applies the sanitising and lock masks, as autograd does for the
//! tensor path (clamps pass gradient inside their closed range, `nan_to_num` only for
//! finite inputs, the nearest-piece choice and the winding have none).

use super::prep::{FAR_PX, Prepared, Raw, TILE, axis_u, in_range, passes, sanitise};
use super::tiles::{ALPHA_EPS, LayerStack, NO_EDGE, TileFrags, tile_rect};
use crate::raster::scene::Scene;

/// Gradient of one layer's numbers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InstGrad {
    /// Solid colour, or the shading's start colour.
    pub colour: [f64; 4],
    /// The shading's colour span.
    pub span: [f64; 4],
    /// The shading's `u₀, u₁, u₂`.
    pub u: [f64; 3],
    /// The shape's half width (stroke layers).
    pub hw: f64,
}

/// What one tile contributes.
#[derive(Clone, Debug, Default)]
pub(crate) struct TileGrad {
    /// `(piece, d/d[x0, y0, x1, y1])`, one entry per fragment with a ramp.
    pub edges: Vec<(u32, [f64; 4])>,
    /// `(layer, gradient)` of the tile's layers.
    pub insts: Vec<(u32, InstGrad)>,
}

/// Gradients of one particle's raw numbers (same layout as [`Raw`]).
#[derive(Clone, Debug)]
pub(crate) struct Grads {
    pub points: Vec<f32>,
    pub fill: Vec<f32>,
    pub stroke: Vec<f32>,
    pub width: Vec<f32>,
    pub background: [f32; 4],
    pub gradient: Option<Vec<f32>>,
}

/// Backward of `seg_dist` w.r.t. the piece's end points, given `dL/dd`.
fn seg_dist_backward(px: f32, py: f32, p: [f32; 4], dd: f64) -> [f64; 4] {
    let [x0, y0, x1, y1] = p;
    let dx = x1 - x0;
    let dy = y1 - y0;
    let qx = px - x0;
    let qy = py - y0;
    let l2raw = dx * dx + dy * dy;
    let len2 = l2raw.max(1e-12);
    let u = (qx * dx + qy * dy) / len2;
    let t = u.clamp(0.0, 1.0);
    let rx = qx - t * dx;
    let ry = qy - t * dy;
    let d = (rx * rx + ry * ry + 1e-12).sqrt();
    let (dx, dy, qx, qy) = (f64::from(dx), f64::from(dy), f64::from(qx), f64::from(qy));
    let (t64, len2_64) = (f64::from(t), f64::from(len2));
    let grx = dd * f64::from(rx) / f64::from(d);
    let gry = dd * f64::from(ry) / f64::from(d);
    let mut gqx = grx;
    let mut gqy = gry;
    let mut gdx = -t64 * grx;
    let mut gdy = -t64 * gry;
    if in_range(u, 0.0, 1.0) {
        let gu = -(dx * grx + dy * gry);
        let gnum = gu / len2_64;
        gqx += gnum * dx;
        gqy += gnum * dy;
        gdx += gnum * qx;
        gdy += gnum * qy;
        if l2raw >= 1e-12 {
            let glen2 = -gu * f64::from(u) / len2_64;
            gdx += glen2 * 2.0 * dx;
            gdy += glen2 * 2.0 * dy;
        }
    }
    [-gqx - gdx, -gqy - gdy, gdx, gdy]
}

/// Half of `g` when `a == b`, all of it to the smaller (`minimum`) or larger (`maximum`).
fn split(g: f64, a: f32, b: f32, to_a: bool) -> (f64, f64) {
    if a == b {
        (g / 2.0, g / 2.0)
    } else if to_a {
        (g, 0.0)
    } else {
        (0.0, g)
    }
}

/// Replays tile `tile` given dL/d(rgb planes) and dL/d(alpha), `w · h` each.
pub(crate) fn tile_backward(
    prep: &Prepared,
    tile: usize,
    tf: &TileFrags,
    g_rgb: [&[f32]; 3],
    g_a: &[f32],
) -> TileGrad {
    let bin = &prep.bins[tile];
    let [tx0, tx1, ty0, ty1] = tile_rect(prep, tile);
    let bg = prep.bg;
    let bg_rgb: [f64; 3] = std::array::from_fn(|c| f64::from(bg[c] * bg[3]));
    let k = -(1.0 - ALPHA_EPS);
    let mut insts = vec![InstGrad::default(); bin.insts.len()];
    let mut edges = Vec::new();
    let mut stack = LayerStack::default();
    for y in ty0..=ty1 {
        for x in tx0..=tx1 {
            let q = ((y - ty0) as usize) * TILE + (x - tx0) as usize;
            let fr = &tf.frags[tf.start[q] as usize..tf.start[q + 1] as usize];
            if fr.is_empty() {
                continue;
            }
            let pi = (y * prep.w + x) as usize;
            let g: [f64; 3] = std::array::from_fn(|c| f64::from(g_rgb[c][pi]));
            let ga = f64::from(g_a[pi]);
            let trans = stack.gather(prep, bin, fr);
            let dtrans = g[0] * bg_rgb[0] + g[1] * bg_rgb[1] + g[2] * bg_rgb[2]
                - ga * (1.0 - f64::from(bg[3]));
            let (pxc, pyc) = (x as f32 + 0.5, y as f32 + 0.5);
            let mut below = 0f64;
            for (j, f) in fr.iter().enumerate() {
                let ch = stack.cols[j];
                let a = stack.alphas[j];
                let above = stack.aboves[j];
                let wgt = a * above;
                let gw =
                    g[0] * f64::from(ch[0]) + g[1] * f64::from(ch[1]) + g[2] * f64::from(ch[2]);
                let dlog = k / stack.factors[j];
                let da = gw * above + dlog * (below + dtrans * trans);
                below += gw * wgt;
                let dch = [g[0] * wgt, g[1] * wgt, g[2] * wgt, da * f64::from(f.cov)];
                let dcov = da * f64::from(ch[3]);
                let inst_i = bin.insts[f.li as usize] as usize;
                let inst = &prep.insts[inst_i];
                let ig = &mut insts[f.li as usize];
                match &prep.shade {
                    Some(sh) => {
                        let s = &sh[inst_i];
                        let mut dt = 0f64;
                        for (c, &g) in dch.iter().enumerate() {
                            ig.colour[c] += g;
                            if !inst.stroke {
                                ig.span[c] += g * f64::from(f.t);
                                dt += g * f64::from(s.span[c]);
                            }
                        }
                        if !inst.stroke {
                            let raw = s.u[0] * pxc + s.u[1] * pyc + s.u[2];
                            if in_range(raw, 0.0, 1.0) {
                                ig.u[0] += dt * f64::from(pxc);
                                ig.u[1] += dt * f64::from(pyc);
                                ig.u[2] += dt;
                            }
                        }
                    }
                    None => {
                        for (acc, g) in ig.colour.iter_mut().zip(dch) {
                            *acc += g;
                        }
                    }
                }
                if f.edge == NO_EDGE {
                    continue;
                }
                let d = f.d;
                let dd = if inst.stroke {
                    let hw = prep.half_width[inst.shape as usize];
                    let (a1, b1) = (d + 0.5, d - 0.5);
                    let raw = hw.min(a1) - (-hw).max(b1);
                    if !in_range(raw, 0.0, 1.0) {
                        continue;
                    }
                    let (ghw1, gd1) = split(dcov, hw, a1, hw < a1);
                    let (gnhw, gd2) = split(-dcov, -hw, b1, -hw > b1);
                    ig.hw += ghw1 - gnhw;
                    gd1 + gd2
                } else {
                    let raw = (if f.inside { d } else { -d }) + 0.5;
                    if !in_range(raw, 0.0, 1.0) {
                        continue;
                    }
                    if f.inside { dcov } else { -dcov }
                };
                if dd != 0.0 {
                    let p = prep.edges[f.edge as usize].p;
                    edges.push((f.edge, seg_dist_backward(pxc, pyc, p, dd)));
                }
            }
        }
    }
    TileGrad {
        edges,
        insts: bin.insts.iter().copied().zip(insts).collect(),
    }
}

/// Sums the tiles' contributions (in tile order, so the result is deterministic) and maps
/// them to the particle's raw numbers.
pub(crate) fn reduce(
    scene: &Scene,
    prep: &Prepared,
    raw: &Raw,
    tiles: &[TileGrad],
    trans: &[f32],
    g_rgb: [&[f32]; 3],
    g_a: &[f32],
) -> Grads {
    let n_shapes = scene.num_shapes();
    let mut dedge = vec![[0f64; 4]; prep.edges.len()];
    let mut dinst = vec![InstGrad::default(); 2 * n_shapes];
    for t in tiles {
        for (e, g) in &t.edges {
            let de = &mut dedge[*e as usize];
            for k in 0..4 {
                de[k] += g[k];
            }
        }
        for (i, g) in &t.insts {
            let di = &mut dinst[*i as usize];
            for c in 0..4 {
                di.colour[c] += g.colour[c];
                di.span[c] += g.span[c];
            }
            for c in 0..3 {
                di.u[c] += g.u[c];
            }
            di.hw += g.hw;
        }
    }
    // Pieces → vertices → control points.
    let mut dvert = vec![[0f64; 2]; prep.verts.len()];
    for (e, g) in prep.edges.iter().zip(&dedge) {
        let v = e.v0 as usize;
        dvert[v][0] += g[0];
        dvert[v][1] += g[1];
        dvert[v + 1][0] += g[2];
        dvert[v + 1][1] += g[3];
    }
    let mut dpts = vec![[0f64; 2]; prep.pts.len()];
    for (v, g) in dvert.iter().enumerate() {
        if g[0] == 0.0 && g[1] == 0.0 {
            continue;
        }
        let seg = &scene.segments[prep.vert_seg[v] as usize];
        let wt = prep.vert_w[v];
        for k in 0..4 {
            let p = &mut dpts[seg.pts[k] as usize];
            p[0] += g[0] * f64::from(wt[k]);
            p[1] += g[1] * f64::from(wt[k]);
        }
    }
    let point_ok = scene.point_trainable();
    let shape_ok = scene.shape_trainable();
    let points: Vec<f32> = (0..2 * prep.pts.len())
        .map(|i| {
            let (p, a) = (i / 2, i % 2);
            let r = raw.points[i];
            let scaled = sanitise(r, -FAR_PX, FAR_PX) * prep.scale[a];
            if point_ok[p] && passes(r, -FAR_PX, FAR_PX) && in_range(scaled, -FAR_PX, FAR_PX) {
                (dpts[p][a] * f64::from(prep.scale[a])) as f32
            } else {
                0.0
            }
        })
        .collect();
    let (w, h) = (prep.w, prep.h);
    let width: Vec<f32> = (0..n_shapes)
        .map(|s| {
            let r = raw.width[s];
            let scaled = sanitise(r, 0.0, FAR_PX) * prep.half_scale;
            if shape_ok[s] && passes(r, 0.0, FAR_PX) && in_range(scaled, 0.0, (w + h) as f32) {
                (dinst[2 * s + 1].hw * f64::from(prep.half_scale)) as f32
            } else {
                0.0
            }
        })
        .collect();
    let colour_mask = |v: &[f32], i: usize, s: usize| shape_ok[s] && passes(v[i], 0.0, 1.0);
    let mut fill = vec![0f32; 4 * n_shapes];
    let mut stroke = vec![0f32; 4 * n_shapes];
    let mut gradient = raw.gradient.as_ref().map(|_| vec![0f32; 8 * n_shapes]);
    for s in 0..n_shapes {
        for c in 0..4 {
            let i = 4 * s + c;
            if colour_mask(&raw.stroke, i, s) {
                stroke[i] = dinst[2 * s + 1].colour[c] as f32;
            }
        }
        let fi = &dinst[2 * s];
        match (&raw.gradient, &mut gradient) {
            (Some(g), Some(dg)) => {
                let g = &g[8 * s..8 * s + 8];
                let f: [f32; 4] = std::array::from_fn(|c| sanitise(raw.fill[4 * s + c], 0.0, 1.0));
                for c in 0..4 {
                    let delta = sanitise(g[c], -1.0, 1.0);
                    let ml = in_range(f[c] - delta * 0.5, 0.0, 1.0);
                    let mh = in_range(f[c] + delta * 0.5, 0.0, 1.0);
                    let dlo = if ml { fi.colour[c] - fi.span[c] } else { 0.0 };
                    let dhi = if mh { fi.span[c] } else { 0.0 };
                    if colour_mask(&raw.fill, 4 * s + c, s) {
                        fill[4 * s + c] = (dlo + dhi) as f32;
                    }
                    if shape_ok[s] && passes(g[c], -1.0, 1.0) {
                        dg[8 * s + c] = (0.5 * (dhi - dlo)) as f32;
                    }
                }
                let axis: [f32; 4] = std::array::from_fn(|k| sanitise(g[4 + k], -FAR_PX, FAR_PX));
                let (u, [ax, ay, dx, dy, len2], proper) = axis_u(axis, prep.scale);
                if proper {
                    let [mut gux, mut guy, gk] = fi.u;
                    gux -= gk * f64::from(ax);
                    guy -= gk * f64::from(ay);
                    let mut gax = -gk * f64::from(u[0]);
                    let mut gay = -gk * f64::from(u[1]);
                    let l = f64::from(len2.max(1e-12));
                    let (dx, dy) = (f64::from(dx), f64::from(dy));
                    let mut gdx = gux / l;
                    let mut gdy = guy / l;
                    if len2 >= 1e-12 {
                        let gl = -(gux * dx + guy * dy) / (l * l);
                        gdx += gl * 2.0 * dx;
                        gdy += gl * 2.0 * dy;
                    }
                    gax -= gdx;
                    gay -= gdy;
                    let (sx, sy) = (f64::from(prep.scale[0]), f64::from(prep.scale[1]));
                    let ga = [gax * sx, gay * sy, gdx * sx, gdy * sy];
                    for k in 0..4 {
                        if shape_ok[s] && passes(g[4 + k], -FAR_PX, FAR_PX) {
                            dg[8 * s + 4 + k] = ga[k] as f32;
                        }
                    }
                }
            }
            _ => {
                for c in 0..4 {
                    if colour_mask(&raw.fill, 4 * s + c, s) {
                        fill[4 * s + c] = fi.colour[c] as f32;
                    }
                }
            }
        }
    }
    // Background: every pixel sees it through its transmittance.
    let mut dbg_rgb = [0f64; 3];
    let mut dbg_a = 0f64;
    for (i, &t) in trans.iter().enumerate() {
        let t = f64::from(t);
        for c in 0..3 {
            dbg_rgb[c] += f64::from(g_rgb[c][i]) * t;
        }
        dbg_a += f64::from(g_a[i]) * t;
    }
    let bg = prep.bg;
    let mut background = [0f32; 4];
    for c in 0..3 {
        background[c] = (dbg_rgb[c] * f64::from(bg[3])) as f32;
    }
    background[3] = (dbg_a + (0..3).map(|c| dbg_rgb[c] * f64::from(bg[c])).sum::<f64>()) as f32;
    for (g, &r) in background.iter_mut().zip(&raw.background) {
        if !passes(r, 0.0, 1.0) {
            *g = 0.0;
        }
    }
    Grads {
        points,
        fill,
        stroke,
        width,
        background,
        gradient,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tiles::seg_dist;
    use super::*;

    #[test]
    fn native_seg_dist_backward_matches_differences() {
        // Interior projection, beyond an end, and a nearly degenerate piece.
        for (px, py, p) in [
            (3.3f32, 2.1f32, [0.5f32, -1.0, 7.0, 4.0]),
            (9.5, 6.5, [0.5, -1.0, 7.0, 4.0]),
            (1.25, 0.75, [1.0, 1.0, 1.5, 1.25]),
        ] {
            let g = seg_dist_backward(px, py, p, 1.0);
            for k in 0..4 {
                let eps = 1e-2f32;
                let mut a = p;
                let mut b = p;
                a[k] += eps;
                b[k] -= eps;
                let fd =
                    f64::from(seg_dist(px, py, a) - seg_dist(px, py, b)) / f64::from(2.0 * eps);
                assert!((fd - g[k]).abs() < 2e-3, "k {k}: {} vs {fd}", g[k]);
            }
        }
    }

    #[test]
    fn native_ties_split_the_gradient() {
        assert_eq!(split(1.0, 2.0, 2.0, true), (0.5, 0.5));
        assert_eq!(split(1.0, 1.0, 2.0, true), (1.0, 0.0));
        assert_eq!(split(1.0, 1.0, 2.0, false), (0.0, 1.0));
    }
}
