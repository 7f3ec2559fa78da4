//! Forward pass of one tile: per layer (in paint order) the winding from its scanline
//! crossings, the nearest piece within reach, the coverage, then exact "over" compositing.

use super::prep::{Prepared, TILE, TileBin};

/// No piece within reach.
pub(crate) const NO_EDGE: u32 = u32::MAX;
/// Alpha is scaled by `1 - ALPHA_EPS` inside `log(1 - a)` (as the tensor path).
pub(crate) const ALPHA_EPS: f64 = 1.0e-9;
/// Distances are packed as fixed point with 16 fractional bits (as the tensor path).
const DIST_SCALE: f32 = 65536.0;
/// Largest packed distance.
const DIST_MAX: f32 = 30000.0;
const NO_KEY: u64 = u64::MAX;
const PIX: usize = TILE * TILE;

/// One fragment: a layer's coverage of one pixel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frag {
    /// Pixel within the tile (`row · TILE + column`).
    pub pix: u16,
    /// Inside the fill by the winding rule.
    pub inside: bool,
    /// Index into the tile's [`TileBin::insts`](super::prep::TileBin).
    pub li: u32,
    /// Nearest piece within reach, or [`NO_EDGE`].
    pub edge: u32,
    /// Distance to that piece.
    pub d: f32,
    /// Coverage in `[0, 1]`.
    pub cov: f32,
    /// Position along the gradient axis (0 for solid layers).
    pub t: f32,
}

/// A tile's fragments grouped by pixel, paint order within each pixel.
#[derive(Clone, Debug, Default)]
pub(crate) struct TileFrags {
    pub frags: Vec<Frag>,
    /// `PIX + 1` offsets into `frags`.
    pub start: Vec<u32>,
}

/// Distance from a pixel centre to a piece, in the tensor path's float32 order (the kernel
/// uses [`seg_dist_within`], the same numbers; this is its reference in the tests).
#[cfg(test)]
pub(crate) fn seg_dist(px: f32, py: f32, p: [f32; 4]) -> f32 {
    let [x0, y0, x1, y1] = p;
    let dx = x1 - x0;
    let dy = y1 - y0;
    let qx = px - x0;
    let qy = py - y0;
    let len2 = (dx * dx + dy * dy).max(1e-12);
    let t = ((qx * dx + qy * dy) / len2).clamp(0.0, 1.0);
    let rx = qx - t * dx;
    let ry = qy - t * dy;
    (rx * rx + ry * ry + 1e-12).sqrt()
}

/// [`seg_dist`] when it is below `reach`, skipping the square root for pixels whose squared
/// distance already exceeds `reach²` (exact: a correctly rounded square root of `s > r²`
/// cannot round below `r`).
#[inline]
fn seg_dist_within(px: f32, py: f32, p: [f32; 4], reach: f32) -> Option<f32> {
    let [x0, y0, x1, y1] = p;
    let dx = x1 - x0;
    let dy = y1 - y0;
    let qx = px - x0;
    let qy = py - y0;
    let len2 = (dx * dx + dy * dy).max(1e-12);
    let t = ((qx * dx + qy * dy) / len2).clamp(0.0, 1.0);
    let rx = qx - t * dx;
    let ry = qy - t * dy;
    let s = rx * rx + ry * ry + 1e-12;
    if f64::from(s) > f64::from(reach) * f64::from(reach) {
        return None;
    }
    let d = s.sqrt();
    (d < reach).then_some(d)
}

/// Stroke coverage: overlap of the pixel's 1-px box `[d − ½, d + ½]` with `[−hw, hw]`.
#[inline]
pub(crate) fn stroke_cov(d: f32, hw: f32) -> f32 {
    (hw.min(d + 0.5) - (-hw).max(d - 0.5)).clamp(0.0, 1.0)
}

/// Tile `(tx, ty)`'s pixel rectangle `[x0, x1, y0, y1]` (inclusive).
pub(crate) fn tile_rect(prep: &Prepared, tile: usize) -> [i32; 4] {
    let t = TILE as i32;
    let (tx, ty) = ((tile % prep.tiles_x) as i32, (tile / prep.tiles_x) as i32);
    [
        tx * t,
        ((tx + 1) * t).min(prep.w) - 1,
        ty * t,
        ((ty + 1) * t).min(prep.h) - 1,
    ]
}

/// RGBA of a fragment of layer `inst` at gradient position `t`.
#[inline]
pub(crate) fn frag_colour(prep: &Prepared, inst: usize, t: f32) -> [f32; 4] {
    match &prep.shade {
        Some(sh) => {
            let s = &sh[inst];
            std::array::from_fn(|c| s.start[c] + s.span[c] * t)
        }
        None => prep.colour[inst],
    }
}

/// The fragments of tile `tile`, sorted by pixel (paint order kept).
pub(crate) fn tile_fragments(prep: &Prepared, tile: usize) -> TileFrags {
    let bin = &prep.bins[tile];
    let [tx0, tx1, ty0, ty1] = tile_rect(prep, tile);
    let mut frags: Vec<Frag> = Vec::new();
    let mut keys = [NO_KEY; PIX];
    let mut dist = [0f32; PIX];
    let mut edge = [NO_EDGE; PIX];
    let mut wind = [0i32; PIX];
    let mut up = 0usize;
    for (li, &i) in bin.insts.iter().enumerate() {
        let inst = &prep.insts[i as usize];
        let Some([wx0, wx1, wy0, wy1]) = inst.win else {
            continue;
        };
        let (mut rx0, mut rx1, mut ry0, mut ry1) =
            (wx0.max(tx0), wx1.min(tx1), wy0.max(ty0), wy1.min(ty1));
        if rx0 > rx1 || ry0 > ry1 {
            continue;
        }
        // This layer's usages in the tile.
        while up < bin.usages.len() && (bin.usages[up] as usize) < inst.usages.start {
            up += 1;
        }
        let u0 = up;
        while up < bin.usages.len() && (bin.usages[up] as usize) < inst.usages.end {
            up += 1;
        }
        let mine = &bin.usages[u0..up];
        if inst.stroke {
            // A stroke has no inside: only pixels in its usages' boxes can be fragments.
            let mut r = [i32::MAX, i32::MIN, i32::MAX, i32::MIN];
            for &ui in mine {
                let [lx, hx, ly, hy] = prep.usages[ui as usize].bx;
                r = [r[0].min(lx), r[1].max(hx), r[2].min(ly), r[3].max(hy)];
            }
            (rx0, rx1, ry0, ry1) = (rx0.max(r[0]), rx1.min(r[1]), ry0.max(r[2]), ry1.min(r[3]));
            if rx0 > rx1 || ry0 > ry1 {
                continue;
            }
        }
        let local = |x: i32, y: i32| ((y - ty0) as usize) * TILE + (x - tx0) as usize;
        for y in ry0..=ry1 {
            for x in rx0..=rx1 {
                let p = local(x, y);
                keys[p] = NO_KEY;
                wind[p] = 0;
            }
        }
        // Nearest piece within reach: smallest (packed distance, usage order).
        for &ui in mine {
            let ui = ui as usize;
            let u = prep.usages[ui];
            let order = (ui - inst.usages.start) as u64;
            let p = prep.edges[u.edge as usize].p;
            let [lx, hx, ly, hy] = u.bx;
            for y in ly.max(ry0)..=hy.min(ry1) {
                let py = y as f32 + 0.5;
                for x in lx.max(rx0)..=hx.min(rx1) {
                    if let Some(d) = seg_dist_within(x as f32 + 0.5, py, p, inst.reach) {
                        let key = (((d.min(DIST_MAX) * DIST_SCALE) as i64 as u64) << 32) | order;
                        let q = local(x, y);
                        if key < keys[q] {
                            keys[q] = key;
                            dist[q] = d;
                            edge[q] = u.edge;
                        }
                    }
                }
            }
        }
        // Winding from the crossings of each row.
        if !inst.stroke {
            for y in ry0..=ry1 {
                let r = (y - wy0) as usize;
                let (c0, c1) = (inst.cross_rows[r] as usize, inst.cross_rows[r + 1] as usize);
                if c0 == c1 {
                    continue;
                }
                let mut diff = [0i32; TILE + 1];
                for &(col, dir) in &inst.cross[c0..c1] {
                    if col <= rx0 {
                        diff[0] += dir;
                    } else if col <= rx1 {
                        diff[(col - rx0) as usize] += dir;
                    }
                }
                let mut acc = 0;
                for x in rx0..=rx1 {
                    acc += diff[(x - rx0) as usize];
                    wind[local(x, y)] = acc;
                }
            }
        }
        // Fragments.
        let hw = prep.half_width[inst.shape as usize];
        let shade_u = prep
            .shade
            .as_ref()
            .filter(|_| !inst.stroke)
            .map(|sh| sh[i as usize].u);
        for y in ry0..=ry1 {
            for x in rx0..=rx1 {
                let q = local(x, y);
                let wn = wind[q];
                let inside = if inst.evenodd { wn & 1 != 0 } else { wn != 0 };
                let has = keys[q] != NO_KEY;
                if !(inside || has) {
                    continue;
                }
                let d = dist[q];
                let cov = if !has {
                    1.0
                } else if inst.stroke {
                    stroke_cov(d, hw)
                } else {
                    ((if inside { d } else { -d }) + 0.5).clamp(0.0, 1.0)
                };
                let t = shade_u.map_or(0.0, |u| {
                    (u[0] * (x as f32 + 0.5) + u[1] * (y as f32 + 0.5) + u[2]).clamp(0.0, 1.0)
                });
                frags.push(Frag {
                    pix: q as u16,
                    inside,
                    li: li as u32,
                    edge: if has { edge[q] } else { NO_EDGE },
                    d,
                    cov,
                    t,
                });
            }
        }
    }
    // Counting sort by pixel (stable: paint order stays).
    let mut start = vec![0u32; PIX + 1];
    for f in &frags {
        start[f.pix as usize + 1] += 1;
    }
    for p in 0..PIX {
        start[p + 1] += start[p];
    }
    let mut sorted = frags.clone();
    let mut next = start.clone();
    for f in frags {
        let slot = &mut next[f.pix as usize];
        sorted[*slot as usize] = f;
        *slot += 1;
    }
    TileFrags {
        frags: sorted,
        start,
    }
}

/// Composites a tile: per pixel `[r, g, b, alpha]` (premultiplied) and the transmittance.
pub(crate) fn composite(prep: &Prepared, tile: usize, tf: &TileFrags) -> Vec<([f32; 4], f32)> {
    let bin = &prep.bins[tile];
    let [tx0, tx1, ty0, ty1] = tile_rect(prep, tile);
    let bg = prep.bg;
    let bg_rgb: [f32; 3] = std::array::from_fn(|c| bg[c] * bg[3]);
    let mut out = Vec::with_capacity(((tx1 - tx0 + 1) * (ty1 - ty0 + 1)) as usize);
    let mut stack = LayerStack::default();
    for y in ty0..=ty1 {
        for x in tx0..=tx1 {
            let q = ((y - ty0) as usize) * TILE + (x - tx0) as usize;
            let fr = &tf.frags[tf.start[q] as usize..tf.start[q + 1] as usize];
            let total = stack.gather(prep, bin, fr);
            let mut colour = [0f32; 3];
            for (j, ch) in stack.cols.iter().enumerate() {
                let weight = (stack.alphas[j] * stack.aboves[j]) as f32;
                for c in 0..3 {
                    colour[c] += ch[c] * weight;
                }
            }
            let trans = total as f32;
            out.push((
                [
                    trans * bg_rgb[0] + colour[0],
                    trans * bg_rgb[1] + colour[1],
                    trans * bg_rgb[2] + colour[2],
                    1.0 - trans * (1.0 - bg[3]),
                ],
                trans,
            ));
        }
    }
    out
}

/// One pixel's fragments, bottom to top, as compositing and its replay need them.
#[derive(Default)]
pub(crate) struct LayerStack {
    /// Each fragment's paint colour (straight alpha) at its piece parameter.
    pub cols: Vec<[f32; 4]>,
    /// Each fragment's opacity: coverage × the colour's alpha.
    pub alphas: Vec<f64>,
    /// Each fragment's transmittance factor `1 − (1 − ε) a`.
    pub factors: Vec<f64>,
    /// The transmittance above each fragment (see [`above_products`]).
    pub aboves: Vec<f64>,
}

impl LayerStack {
    /// Fills the stack from the pixel's fragments `fr`; returns the pixel's transmittance.
    #[inline]
    pub fn gather(&mut self, prep: &Prepared, bin: &TileBin, fr: &[Frag]) -> f64 {
        let k = -(1.0 - ALPHA_EPS);
        self.factors.clear();
        self.alphas.clear();
        self.cols.clear();
        for f in fr {
            let inst = bin.insts[f.li as usize] as usize;
            let ch = frag_colour(prep, inst, f.t);
            let a = f64::from(f.cov * ch[3]);
            self.cols.push(ch);
            self.alphas.push(a);
            self.factors.push(a * k + 1.0);
        }
        above_products(&self.factors, &mut self.aboves)
    }
}

/// `aboves[j]`: the transmittance of the fragments above fragment `j`, the product of
/// their factors `1 − (1 − ε) a` (the tensor path's `exp` of a suffix sum of `log1p`, which
/// is the same number up to rounding); returns the product of all factors.
#[inline]
pub(crate) fn above_products(factors: &[f64], aboves: &mut Vec<f64>) -> f64 {
    aboves.clear();
    aboves.resize(factors.len(), 0.0);
    let mut acc = 1.0;
    for j in (0..factors.len()).rev() {
        aboves[j] = acc;
        acc *= factors[j];
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_seg_dist_and_stroke_coverage() {
        let p = [0.0, 0.0, 10.0, 0.0];
        assert!((seg_dist(5.0, 3.0, p) - 3.0).abs() < 1e-6);
        assert!(
            (seg_dist(13.0, 4.0, p) - 5.0).abs() < 1e-6,
            "beyond the end"
        );
        // A zero-length piece is a point.
        assert!((seg_dist(3.0, 4.0, [0.0; 4]) - 5.0).abs() < 1e-6);
        assert_eq!(stroke_cov(0.0, 2.0), 1.0);
        assert!(
            (stroke_cov(0.0, 0.25) - 0.5).abs() < 1e-6,
            "thin: its width"
        );
        assert!(
            (stroke_cov(2.0, 2.0) - 0.5).abs() < 1e-6,
            "on the border: half"
        );
        assert_eq!(stroke_cov(3.0, 2.0), 0.0);
    }

    #[test]
    fn native_within_reach_is_seg_dist_below_reach() {
        let p = [1.0, 2.0, 7.5, 3.25];
        for k in 0..400 {
            let (px, py) = ((k % 20) as f32 * 0.5, (k / 20) as f32 * 0.5);
            for reach in [0.5f32, 1.5, 2.0] {
                let d = seg_dist(px, py, p);
                assert_eq!(seg_dist_within(px, py, p, reach), (d < reach).then_some(d));
            }
        }
    }

    #[test]
    fn native_above_products_are_suffix_products() {
        let mut out = Vec::new();
        assert_eq!(
            above_products(&[0.5, 0.25, 0.125], &mut out),
            0.5 * 0.25 * 0.125
        );
        assert_eq!(out, vec![0.25 * 0.125, 0.125, 1.0]);
        assert_eq!(above_products(&[], &mut out), 1.0);
        assert!(out.is_empty());
    }
}
