//! Flattening on the device: every cubic becomes n line pieces, n from a flatness bound.
//!
//! Every polyline vertex is a weighted sum of its segment's 4 control points (Bernstein
//! weights; a straight segment uses 2), so the whole batch flattens with 1-D gathers and one
//! multiply-add, differentiably. Piece counts come from each particle's own control points,
//! so a batch renders exactly like its particles one by one.

use tch::{Kind, Tensor};

use super::RasterOptions;
use super::scene::Scene;

/// Flattened polylines of all particles: edges as four 1-D coordinate tensors.
pub(crate) struct Edges {
    /// `[E]` start x, start y, end x, end y in pixels (with autograd).
    pub x0: Tensor,
    pub y0: Tensor,
    pub x1: Tensor,
    pub y1: Tensor,
    /// `[E]` global segment id (`particle · segments + segment`).
    pub seg: Tensor,
}

/// Number of pieces for a cubic whose largest second difference is `dd` pixels. The distance
/// between a C² curve and its chord over a parameter step `h` is at most `h² · max|B''| / 8`;
/// with `|B''| ≤ 6 · dd` and `h = 1/n` this gives `n ≥ sqrt(0.75 · dd / tol)`.
pub(crate) fn cubic_pieces(dd: &Tensor, opts: &RasterOptions) -> Tensor {
    let tol = f64::from(opts.flatten_tolerance_px.max(1e-3));
    (dd * (0.75 / tol)).sqrt().ceil()
}

/// Flattens `[B · P]` pixel coordinates `px`, `py` (sanitised, finite).
pub(crate) fn flatten(
    scene: &Scene,
    px: &Tensor,
    py: &Tensor,
    bsize: i64,
    opts: &RasterOptions,
) -> Edges {
    let dev = px.device();
    let n_seg = scene.segments.len() as i64;
    let p = scene.num_points() as i64;
    let idx: Vec<i64> = scene
        .segments
        .iter()
        .flat_map(|s| s.pts.map(i64::from))
        .collect();
    let line: Vec<bool> = scene.segments.iter().map(|s| s.line).collect();
    let offsets = (Tensor::arange(bsize, (Kind::Int64, dev)) * p).view([bsize, 1]);
    // [B·Sg·4] point indices of every segment of every particle.
    let idx = (Tensor::from_slice(&idx).to_device(dev).view([1, n_seg * 4]) + offsets).view([-1]);
    let line = Tensor::from_slice(&line)
        .to_device(dev)
        .view([1, n_seg])
        .expand([bsize, n_seg], false)
        .reshape([-1]);
    let max_n = f64::from(opts.max_pieces_per_cubic.max(1));

    // Piece counts (no gradient).
    let cx = px.detach().index_select(0, &idx).view([-1, 4]);
    let cy = py.detach().index_select(0, &idx).view([-1, 4]);
    let second = |c: &Tensor| c.narrow(1, 0, 2) - c.narrow(1, 1, 2) * 2.0 + c.narrow(1, 2, 2);
    let dd = (second(&cx).square() + second(&cy).square())
        .sqrt()
        .amax([1].as_slice(), false);
    let len = ((cx.select(1, 1) - cx.select(1, 0)).square()
        + (cy.select(1, 1) - cy.select(1, 0)).square())
    .sqrt();
    let n_line = (len / f64::from(opts.line_piece_px.max(1.0))).ceil();
    let n = n_line
        .where_self(&line, &cubic_pieces(&dd, opts))
        .nan_to_num(1.0, max_n, 1.0)
        .clamp(1.0, max_n)
        .to_kind(Kind::Int64);
    let nv = &n + 1;
    let n_vert = nv.sum(Kind::Int64).int64_value(&[]);

    // Vertices: segment id, parameter t, weights.
    let seg_v = Tensor::repeat_interleave(&nv, n_vert);
    let start = nv.cumsum(0, Kind::Int64) - &nv;
    let j = Tensor::arange(n_vert, (Kind::Int64, dev)) - start.index_select(0, &seg_v);
    let n_v = n.index_select(0, &seg_v);
    // t = j / n is exactly 0 and 1 at the ends, so neighbouring segments share end points
    // bit for bit (the weights become exactly (1,0,0,0) and (0,0,0,1) or (0,1,0,0)).
    let t = j.to_kind(Kind::Float) / n_v.to_kind(Kind::Float);
    let s: Tensor = 1.0 - &t;
    let line_v = line.index_select(0, &seg_v);
    let zero = t.zeros_like();
    let w = [
        s.where_self(&line_v, &(&s * &s * &s)),
        t.where_self(&line_v, &(&s * &s * &t * 3.0)),
        zero.where_self(&line_v, &(&s * &t * &t * 3.0)),
        zero.where_self(&line_v, &(&t * &t * &t)),
    ];
    let corner = |c: &Tensor, k: i64| {
        let k_idx = &seg_v * 4 + k;
        c.index_select(0, &idx.index_select(0, &k_idx))
    };
    let mut vx = corner(px, 0) * &w[0];
    let mut vy = corner(py, 0) * &w[0];
    for (k, wk) in w.iter().enumerate().skip(1) {
        vx += corner(px, k as i64) * wk;
        vy += corner(py, k as i64) * wk;
    }
    let ea = j.lt_tensor(&n_v).nonzero().squeeze_dim(1);
    let eb = &ea + 1;
    Edges {
        x0: vx.index_select(0, &ea),
        y0: vy.index_select(0, &ea),
        x1: vx.index_select(0, &eb),
        y1: vy.index_select(0, &eb),
        seg: seg_v.index_select(0, &ea),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raster_cubic_pieces_meet_tolerance() {
        // Quarter circle of radius r as a cubic; check the chord error of n pieces.
        let opts = RasterOptions::default();
        for r in [8.0f32, 40.0, 128.0] {
            let k = 0.552_284_8 * r;
            let q = [(r, 0.0), (r, k), (k, r), (0.0, r)];
            let dd = (0..2)
                .map(|i| {
                    let x = q[i].0 - 2.0 * q[i + 1].0 + q[i + 2].0;
                    let y = q[i].1 - 2.0 * q[i + 1].1 + q[i + 2].1;
                    x.hypot(y)
                })
                .fold(0.0, f32::max);
            let n = cubic_pieces(&Tensor::from_slice(&[dd]), &opts).double_value(&[0]) as f32;
            // Sagitta of one piece of a quarter circle cut in n: r (1 - cos(π/4n)).
            let sagitta = r * (1.0 - (std::f32::consts::FRAC_PI_4 / n).cos());
            assert!(
                sagitta <= opts.flatten_tolerance_px,
                "r {r}: {n} pieces leave {sagitta} px"
            );
        }
    }
}
