//! The band rasteriser: windows, winding, nearest-edge bands, coverage and compositing.

use tch::{Device, Kind, Tensor};

use super::flatten;
use super::scene::{Scene, SceneParams};
use super::{RasterError, RasterOptions, Rendered};

/// Coordinates are clamped to ±this many pixels, so integer pixel maths cannot overflow.
const FAR_PX: f64 = 1.0e6;
/// Sentinel key: "no edge within reach of this pixel".
const NO_KEY: i64 = i64::MAX;
/// Distances are packed as fixed point with 16 fractional bits in the upper half of a key.
const DIST_SCALE: f64 = 65536.0;
/// Largest packed distance, in pixels (keeps `distance · 2^16` below 2^31).
const DIST_MAX: f64 = 30000.0;
/// Alpha is scaled by `1 - ALPHA_EPS` before `log(1 - a)`, so opaque fragments keep a finite
/// log (−20.7) and a non-zero gradient; the leak (1e-9 per layer) is far below 8-bit levels.
const ALPHA_EPS: f64 = 1.0e-9;

struct Prof(
    Option<(std::time::Instant, Vec<(&'static str, f64)>)>,
    Vec<(&'static str, i64)>,
);
impl Prof {
    fn new() -> Self {
        Self(
            std::env::var_os("VECDREAM_RASTER_PROFILE")
                .map(|_| (std::time::Instant::now(), Vec::new())),
            Vec::new(),
        )
    }
    fn mark(&mut self, name: &'static str) {
        if let Some((t, v)) = &mut self.0 {
            v.push((name, t.elapsed().as_secs_f64() * 1e3));
            *t = std::time::Instant::now();
        }
    }
}
impl Drop for Prof {
    fn drop(&mut self) {
        if let Some((_, v)) = &self.0 {
            let v: Vec<String> = v.iter().map(|(n, t)| format!("{n} {t:.1}")).collect();
            eprintln!("raster profile ms: {} | {:?}", v.join(", "), self.1);
        }
    }
}

fn i64s(dev: Device) -> (Kind, Device) {
    (Kind::Int64, dev)
}

/// Distance from pixel centres `(px, py)` to segments `[x0, y0, x1, y1]` (1-D each).
fn seg_dist(px: &Tensor, py: &Tensor, e: [Tensor; 4]) -> Tensor {
    let [x0, y0, x1, y1] = e;
    let dx = x1 - &x0;
    let dy = y1 - &y0;
    let qx = px - x0;
    let qy = py - y0;
    let len2 = (&dx * &dx + &dy * &dy).clamp_min(1e-12);
    let t = ((&qx * &dx + &qy * &dy) / len2).clamp(0.0, 1.0);
    let rx = qx - &t * dx;
    let ry = qy - t * dy;
    (&rx * &rx + &ry * &ry + 1e-12).sqrt()
}

/// Pixel coordinates of window-buffer positions `idx` of instances `inst`.
struct Windows {
    x0: Tensor,
    y0: Tensor,
    /// Columns per row, the sentinel column included.
    stride: Tensor,
    off: Tensor,
}

impl Windows {
    fn pixel(&self, idx: &Tensor, inst: &Tensor) -> (Tensor, Tensor) {
        let local = idx - self.off.index_select(0, inst);
        let stride = self.stride.index_select(0, inst);
        let row = local.divide_tensor_mode(&stride, "floor");
        let col = local - &row * stride;
        (
            self.x0.index_select(0, inst) + col,
            self.y0.index_select(0, inst) + row,
        )
    }
}

/// Renders B particles of `scene` at `width × height` pixels (the canvas is scaled to fit).
///
/// Gradients flow to every tensor of `params` that requires them, except the numbers of
/// locked (and hidden) shapes. Hidden shapes are not drawn. Strokes are drawn with round caps
/// and joins whatever the slot says.
pub fn rasterize(
    scene: &Scene,
    params: &SceneParams,
    width: usize,
    height: usize,
    opts: &RasterOptions,
) -> Result<Rendered, RasterError> {
    let mut prof = Prof::new();
    let bsize = params.check(scene)?;
    if width == 0 || height == 0 || width > 32768 || height > 32768 || bsize == 0 {
        return Err(RasterError::Size {
            width,
            height,
            batch: bsize as usize,
        });
    }
    let dev = params.device();
    let (w, h) = (width as i64, height as i64);
    let hw_px = w * h;
    let s_count = scene.num_shapes() as i64;
    let nl = 2 * s_count; // layers: fill of shape s is 2s, its stroke 2s + 1
    let canvas = scene.canvas();
    let sx = width as f64 / f64::from(canvas[0]);
    let sy = height as f64 / f64::from(canvas[1]);
    let width_scale = (sx * sy).sqrt();

    // 0. Sanitise (NaN → 0, ±∞ → far away, colours into [0, 1]) and mask frozen shapes.
    let finite =
        |t: &Tensor, lo: f64, hi: f64| t.to_kind(Kind::Float).nan_to_num(0.0, hi, lo).clamp(lo, hi);
    let mut pts = finite(&params.points, -FAR_PX, FAR_PX);
    let mut fill = finite(&params.fill, 0.0, 1.0);
    let mut stroke = finite(&params.stroke, 0.0, 1.0);
    let mut stroke_width = finite(&params.stroke_width, 0.0, FAR_PX);
    let background = finite(&params.background, 0.0, 1.0);
    let mut gradient = params.fill_gradient.as_ref().map(|g| {
        let g = g.to_kind(Kind::Float);
        Tensor::cat(
            &[
                g.narrow(2, 0, 4)
                    .nan_to_num(0.0, 1.0, -1.0)
                    .clamp(-1.0, 1.0),
                g.narrow(2, 4, 4)
                    .nan_to_num(0.0, FAR_PX, -FAR_PX)
                    .clamp(-FAR_PX, FAR_PX),
            ],
            2,
        )
    });
    if scene.has_frozen() {
        let pm = Tensor::from_slice(&scene.point_trainable())
            .to_device(dev)
            .view([1, -1, 1]);
        let sm = Tensor::from_slice(&scene.shape_trainable()).to_device(dev);
        pts = pts.where_self(&pm, &pts.detach());
        fill = fill.where_self(&sm.view([1, -1, 1]), &fill.detach());
        stroke = stroke.where_self(&sm.view([1, -1, 1]), &stroke.detach());
        stroke_width = stroke_width.where_self(&sm.view([1, -1]), &stroke_width.detach());
        gradient = gradient.map(|g| g.where_self(&sm.view([1, -1, 1]), &g.detach()));
    }
    let scale = Tensor::from_slice(&[sx as f32, sy as f32])
        .to_device(dev)
        .view([1, 1, 2]);
    let pts_px = (pts * scale).clamp(-FAR_PX, FAR_PX);
    // Half widths in pixels; beyond the image diagonal a stroke covers everything it can.
    let half_width = (stroke_width * (0.5 * width_scale)).clamp(0.0, (w + h) as f64);

    prof.mark("sanitise");
    // 1. Flatten on the device; usages are (edge, instance) pairs, fills first.
    let px_flat = pts_px.select(2, 0).reshape([-1]);
    let py_flat = pts_px.select(2, 1).reshape([-1]);
    let bg_rgb = background.narrow(1, 0, 3) * background.narrow(1, 3, 1); // premultiplied
    let bg_a = background.narrow(1, 3, 1); // [B, 1]
    let finish = |color: Option<Tensor>, trans: Tensor| -> Rendered {
        // color: [B·HW, 3] premultiplied sum of fragments; trans: [B·HW] transmittance.
        let trans = trans.to_kind(Kind::Float).view([bsize, hw_px, 1]);
        let mut rgb = &trans * bg_rgb.view([bsize, 1, 3]);
        if let Some(c) = color {
            rgb += c.view([bsize, hw_px, 3]);
        }
        let alpha: Tensor = 1.0 - trans * (1.0 - bg_a.view([bsize, 1, 1]));
        Rendered {
            rgb: rgb
                .view([bsize, h, w, 3])
                .permute([0, 3, 1, 2])
                .contiguous(),
            alpha: alpha.view([bsize, 1, h, w]),
        }
    };
    let clear = || Tensor::ones([bsize * hw_px], (Kind::Float, dev));
    let n_seg = scene.segments.len() as i64;
    if n_seg == 0 {
        return Ok(finish(None, clear()));
    }
    let edges = flatten::flatten(scene, &px_flat, &py_flat, bsize, opts);
    prof.mark("flatten");
    let seg_local = edges.seg.remainder(n_seg);
    let particle = edges.seg.floor_divide_scalar(n_seg);
    let per_seg = |v: Vec<i64>| {
        Tensor::from_slice(&v)
            .to_device(dev)
            .index_select(0, &seg_local)
    };
    let shape_of = per_seg(scene.segments.iter().map(|s| i64::from(s.shape)).collect());
    let fill_of = per_seg(scene.segments.iter().map(|s| i64::from(s.fill)).collect());
    let stroke_of = per_seg(scene.segments.iter().map(|s| i64::from(s.stroke)).collect());
    let fill_edges = fill_of.ne(0).nonzero().squeeze_dim(1);
    let stroke_edges = stroke_of.ne(0).nonzero().squeeze_dim(1);
    let n_fill_use = fill_edges.size()[0];
    let u_edge = Tensor::cat(&[&fill_edges, &stroke_edges], 0);
    let n_use = u_edge.size()[0];
    if n_use == 0 {
        return Ok(finish(None, clear()));
    }
    let u_shape = particle.index_select(0, &u_edge) * s_count + shape_of.index_select(0, &u_edge);
    let is_stroke_use = Tensor::arange(n_use, i64s(dev)).ge(n_fill_use);
    let u_inst = (&u_shape * 2) + is_stroke_use.to_kind(Kind::Int64);
    prof.mark("usages");

    // 2. Reach of each usage: fills need pixels within 0.5 px of the edge, strokes within
    //    half the width + 0.5 px.
    let half_ng = half_width.detach().view([-1]);
    let reach = Tensor::cat(
        &[
            Tensor::full([n_fill_use], 0.5, (Kind::Float, dev)),
            half_ng.index_select(0, &u_shape.narrow(0, n_fill_use, n_use - n_fill_use)) + 0.5,
        ],
        0,
    );
    let ex0 = edges.x0.detach().index_select(0, &u_edge);
    let ey0 = edges.y0.detach().index_select(0, &u_edge);
    let ex1 = edges.x1.detach().index_select(0, &u_edge);
    let ey1 = edges.y1.detach().index_select(0, &u_edge);
    let (xmin, xmax) = (ex0.minimum(&ex1), ex0.maximum(&ex1));
    let (ymin, ymax) = (ey0.minimum(&ey1), ey0.maximum(&ey1));
    // Pixel c is reached when its centre c + 0.5 lies within `reach` of the box.
    let lo = |v: &Tensor, n: i64| {
        (v - &reach - 0.5)
            .clamp(-1.0, n as f64)
            .ceil()
            .to_kind(Kind::Int64)
            .clamp_min(0)
    };
    let hi = |v: &Tensor, n: i64| {
        (v + &reach - 0.5)
            .clamp(-1.0, n as f64)
            .floor()
            .to_kind(Kind::Int64)
            .clamp_max(n - 1)
    };
    let (lo_x, hi_x, lo_y, hi_y) = (lo(&xmin, w), hi(&xmax, w), lo(&ymin, h), hi(&ymax, h));

    // 3. Windows: per instance (particle, layer) the union of its usages' boxes, with one
    //    extra sentinel column per row; all windows packed into one flat buffer.
    let n_inst = bsize * nl;
    let win_min = |v: &Tensor, init: i64| {
        Tensor::full([n_inst], init, i64s(dev)).internal_scatter_reduce(0, &u_inst, v, "amin", true)
    };
    let win_max = |v: &Tensor| {
        Tensor::full([n_inst], -1, i64s(dev)).internal_scatter_reduce(0, &u_inst, v, "amax", true)
    };
    let wx0 = win_min(&lo_x, w);
    let wy0 = win_min(&lo_y, h);
    let win_w = (win_max(&hi_x) - &wx0 + 1).clamp_min(0);
    let win_h = (win_max(&hi_y) - &wy0 + 1).clamp_min(0);
    let stride = &win_w + 1;
    let size = (&stride * &win_h) * win_w.gt(0);
    let off = size.cumsum(0, Kind::Int64) - &size;
    let total = size.sum(Kind::Int64).int64_value(&[]);
    if total == 0 {
        return Ok(finish(None, clear()));
    }
    let win = Windows {
        x0: wx0,
        y0: wy0,
        stride,
        off,
    };
    let inst_pix = Tensor::repeat_interleave(&size, total);
    prof.1.push(("T", total));

    prof.mark("windows");
    // 4. Winding numbers of fill windows (no gradient): every fill edge adds ±1 where it
    //    crosses a row of pixel centres, and the opposite at the row's sentinel, so each row
    //    sums to zero on its own; one cumulative sum then gives the winding at every pixel.
    let mut wind = Tensor::zeros([total], (Kind::Int, dev));
    if n_fill_use > 0 {
        let f_inst = u_inst.narrow(0, 0, n_fill_use);
        let fy_min = ymin.narrow(0, 0, n_fill_use);
        let fy_max = ymax.narrow(0, 0, n_fill_use);
        let row_of = |v: &Tensor| (v - 0.5).clamp(-1.0, h as f64).ceil().to_kind(Kind::Int64);
        let wy1 = &win.y0 + win_h - 1;
        let r0 = row_of(&fy_min).maximum(&win.y0.index_select(0, &f_inst));
        let r1 = (row_of(&fy_max) - 1).minimum(&wy1.index_select(0, &f_inst));
        let cnt = (&r1 - &r0 + 1).clamp_min(0);
        let n_cross = cnt.sum(Kind::Int64).int64_value(&[]);
        if n_cross > 0 {
            let rep = Tensor::repeat_interleave(&cnt, n_cross);
            let start = cnt.cumsum(0, Kind::Int64) - &cnt;
            let row = r0.index_select(0, &rep) + Tensor::arange(n_cross, i64s(dev))
                - start.index_select(0, &rep);
            let (x0, y0) = (ex0.index_select(0, &rep), ey0.index_select(0, &rep));
            let (x1, y1) = (ex1.index_select(0, &rep), ey1.index_select(0, &rep));
            let t = (row.to_kind(Kind::Float) + 0.5 - &y0) / (&y1 - &y0);
            let x = &x0 + t * (x1 - &x0);
            let inst = f_inst.index_select(0, &rep);
            // Pixels whose centre lies right of the crossing: columns ≥ floor(x - 0.5) + 1.
            let col = ((x - 0.5)
                .clamp(-2.0, (w + 1) as f64)
                .floor()
                .to_kind(Kind::Int64)
                + 1
                - win.x0.index_select(0, &inst))
            .clamp_min(0)
            .minimum(&win_w.index_select(0, &inst));
            let row_base = win.off.index_select(0, &inst)
                + (row - win.y0.index_select(0, &inst)) * win.stride.index_select(0, &inst);
            let sentinel = &row_base + win_w.index_select(0, &inst);
            let dir = (y1.gt_tensor(&y0).to_kind(Kind::Int) * 2 - 1).to_kind(Kind::Int);
            wind = wind
                .index_add(0, &(row_base + col), &dir)
                .index_add(0, &sentinel, &(-&dir));
            wind = wind.cumsum(0, Kind::Int);
        }
    }
    let inside = if scene.evenodd.iter().any(|&e| e) {
        let eo: Vec<bool> = (0..n_inst)
            .map(|i| scene.evenodd[((i % nl) / 2) as usize])
            .collect();
        let eo_pix = Tensor::from_slice(&eo)
            .to_device(dev)
            .index_select(0, &inst_pix);
        wind.bitwise_and(1).where_self(&eo_pix, &wind).ne(0)
    } else {
        wind.ne(0)
    };
    drop(wind);

    prof.mark("winding");
    // 5. Edge-pixel pairs inside each usage's grown box; the nearest edge per window pixel
    //    (within reach) by scatter_reduce(amin) of (distance | usage) keys.
    let nx = (&hi_x - &lo_x + 1).clamp_min(0);
    let cnt = &nx * (&hi_y - &lo_y + 1).clamp_min(0);
    let n_pair = cnt.sum(Kind::Int64).int64_value(&[]);
    let mut keys = Tensor::full([total], NO_KEY, i64s(dev));
    prof.1.push(("N", n_pair));
    if n_pair > 0 {
        let rep = Tensor::repeat_interleave(&cnt, n_pair);
        let start = cnt.cumsum(0, Kind::Int64) - &cnt;
        let local = Tensor::arange(n_pair, i64s(dev)) - start.index_select(0, &rep);
        let nxr = nx.index_select(0, &rep);
        let ry = local.divide_tensor_mode(&nxr, "floor");
        let px = lo_x.index_select(0, &rep) + &local - &ry * nxr;
        let py = lo_y.index_select(0, &rep) + ry;
        let d = seg_dist(
            &(px.to_kind(Kind::Float) + 0.5),
            &(py.to_kind(Kind::Float) + 0.5),
            [&ex0, &ey0, &ex1, &ey1].map(|c| c.index_select(0, &rep)),
        );
        let valid = d.lt_tensor(&reach.index_select(0, &rep));
        let key = (d.clamp_max(DIST_MAX) * DIST_SCALE).to_kind(Kind::Int64) * (1i64 << 32) + &rep;
        let key = key.where_scalarother(&valid, NO_KEY);
        let inst = u_inst.index_select(0, &rep);
        let stride = win.stride.index_select(0, &inst);
        let widx =
            win.off.index_select(0, &inst) + (py - win.y0.index_select(0, &inst)) * stride + px
                - win.x0.index_select(0, &inst);
        keys = keys.internal_scatter_reduce(0, &widx, &key, "amin", true);
    }

    prof.mark("pairs");
    // 6. Coverage with autograd only for pixels that have a nearest edge.
    let has = keys.ne(NO_KEY);
    let kidx = has.nonzero().squeeze_dim(1);
    let ku = keys.index_select(0, &kidx).bitwise_and(0xFFFF_FFFFi64);
    drop(keys);
    let kinst = u_inst.index_select(0, &ku);
    let (kx, ky) = win.pixel(&kidx, &kinst);
    let kedge = u_edge.index_select(0, &ku);
    let d = seg_dist(
        &(kx.to_kind(Kind::Float) + 0.5),
        &(ky.to_kind(Kind::Float) + 0.5),
        [&edges.x0, &edges.y0, &edges.x1, &edges.y1].map(|c| c.index_select(0, &kedge)),
    );
    let k_in = inside.index_select(0, &kidx);
    let cov_fill = (d.where_self(&k_in, &(-&d)) + 0.5).clamp(0.0, 1.0);
    // Stroke: overlap of the pixel's 1-px box [d - ½, d + ½] with the stroke [-hw, hw].
    let khw = half_width
        .view([-1])
        .index_select(0, &kinst.floor_divide_scalar(2));
    let cov_stroke = (khw.minimum(&(&d + 0.5)) - (-&khw).maximum(&(&d - 0.5))).clamp(0.0, 1.0);
    let is_stroke = ku.ge(n_fill_use);
    let kcov = cov_stroke.where_self(&is_stroke, &cov_fill);

    prof.mark("coverage");
    // 7. Fragments: window pixels that are inside a fill or within reach of an edge, in
    //    window order (= paint order within each pixel).
    let frag = inside.logical_or(&has);
    let sel = frag.nonzero().squeeze_dim(1);
    let n_frag = sel.size()[0];
    prof.1.push(("K", kidx.size()[0]));
    prof.1.push(("F", n_frag));
    if n_frag == 0 {
        return Ok(finish(None, clear()));
    }
    let cov_full = inside
        .to_kind(Kind::Float)
        .index_put(&[Some(&kidx)], &kcov, false);
    let cov = cov_full.index_select(0, &sel);
    let finst = inst_pix.index_select(0, &sel);
    let (fx, fy) = win.pixel(&sel, &finst);
    let pix = finst.floor_divide_scalar(nl) * hw_px + &fy * w + &fx;
    // Per-instance colour tables, one 1-D tensor per channel (1-D gathers and their 1-D
    // scatter-add backward are the fast paths).
    let colors = Tensor::stack(&[&fill, &stroke], 2).view([n_inst, 4]);
    let channel = |c: i64| colors.select(1, c).contiguous();
    // With gradient fills every fragment has its own colour.
    let shading = gradient
        .as_ref()
        .map(|g| Shading::new(&fill, &stroke, g, [sx, sy], (&finst, &fx, &fy)));
    let alpha = match &shading {
        Some(sh) => cov * sh.channel(3, &finst, &sh.t),
        None => cov * channel(3).index_select(0, &finst),
    };
    prof.mark("fragments");

    // 8. Composite: stable sort by pixel keeps paint order; the transmittance above each
    //    fragment is exp of a float64 suffix sum of log(1 - a) within its pixel.
    let (pix_sorted, order) = if bsize * hw_px < i64::from(i32::MAX) {
        let (v, o) = pix.to_kind(Kind::Int).sort_stable(true, 0, false);
        (v.to_kind(Kind::Int64), o)
    } else {
        pix.sort_stable(true, 0, false)
    };
    let inst_sorted = finst.index_select(0, &order);
    let t_sorted = shading.as_ref().map(|sh| sh.t.index_select(0, &order));
    prof.mark("sort");
    let a = alpha.index_select(0, &order).to_kind(Kind::Double);
    let log_t = (&a * -(1.0 - ALPHA_EPS)).log1p();
    let cum = log_t.cumsum(0, Kind::Double);
    let (uniq, _, counts) = pix_sorted.unique_consecutive(false, true, None);
    let ends = counts.cumsum(0, Kind::Int64) - 1;
    let starts = &ends - &counts + 1;
    let end_of = ends.index_select(0, &Tensor::repeat_interleave(&counts, n_frag));
    let above = cum.index_select(0, &end_of) - &cum;
    let weight = (a * above.exp()).to_kind(Kind::Float);
    let color: Vec<Tensor> = (0..3)
        .map(|c| {
            Tensor::zeros([bsize * hw_px], (Kind::Float, dev)).index_add(
                0,
                &pix_sorted,
                &(match (&shading, &t_sorted) {
                    (Some(sh), Some(t)) => sh.channel(c as usize, &inst_sorted, t),
                    _ => channel(c).index_select(0, &inst_sorted),
                } * &weight),
            )
        })
        .collect();
    let color = Tensor::stack(&color, 1);
    let pix_log_t =
        cum.index_select(0, &ends) - cum.index_select(0, &starts) + log_t.index_select(0, &starts);
    let trans = Tensor::ones([bsize * hw_px], (Kind::Double, dev)).index_put(
        &[Some(&uniq)],
        &pix_log_t.exp(),
        false,
    );
    prof.mark("composite");
    Ok(finish(Some(color), trans))
}

/// Linear-gradient fills, per instance (particle, layer) and per fragment. A fill fragment
/// takes its gradient's colour at the pixel centre: stops `fill ∓ Δ/2` (clamped) at the
/// axis ends, padded, as SVG paints a two-stop `linearGradient`; a zero-length axis paints
/// the end stop, as SVG does. Stroke layers have a zero span: their solid colour.
struct Shading {
    /// Per channel, `[instances]`: the colour at t = 0.
    start: [Tensor; 4],
    /// Per channel, `[instances]`: the colour change from t = 0 to t = 1.
    span: [Tensor; 4],
    /// `[fragments]`: position along the axis, clamped to `[0, 1]`.
    t: Tensor,
}

impl Shading {
    /// `finst` is each fragment's instance, `fx, fy` its pixel. All gathers are 1-D (they
    /// and their scatter-add backward are the fast paths).
    fn new(
        fill: &Tensor,
        stroke: &Tensor,
        gradient: &Tensor,
        scale: [f64; 2],
        (finst, fx, fy): (&Tensor, &Tensor, &Tensor),
    ) -> Self {
        let n_inst = fill.size()[0] * fill.size()[1] * 2;
        let column = |fill_part: &Tensor, stroke_part: &Tensor| {
            Tensor::stack(&[fill_part, stroke_part], 2)
                .view([n_inst])
                .contiguous()
        };
        let delta = gradient.narrow(2, 0, 4);
        let lo = (fill - &delta * 0.5).clamp(0.0, 1.0);
        let span = (fill + &delta * 0.5).clamp(0.0, 1.0) - &lo;
        let zero = stroke.select(2, 0).zeros_like();
        let start =
            std::array::from_fn(|c| column(&lo.select(2, c as i64), &stroke.select(2, c as i64)));
        let span = std::array::from_fn(|c| column(&span.select(2, c as i64), &zero));
        // Per shape, t = u·p + k in pixels: u = (b − a)/|b − a|², k = −u·a.
        let g = |k: i64, s: f64| gradient.select(2, 4 + k) * s;
        let (ax, ay) = (g(0, scale[0]), g(1, scale[1]));
        let (dx, dy) = (g(2, scale[0]) - &ax, g(3, scale[1]) - &ay);
        let len2 = &dx * &dx + &dy * &dy;
        // `where_scalarother(c, v)`: the value where `c` holds, else `v`.
        let proper = len2.gt(1e-12);
        let ux = (dx / len2.clamp_min(1e-12)).where_scalarother(&proper, 0.0);
        let uy = (dy / len2.clamp_min(1e-12)).where_scalarother(&proper, 0.0);
        let k = (-(&ux * ax) - &uy * ay).where_scalarother(&proper, 1.0);
        let at = |v: &Tensor| column(v, &zero).index_select(0, finst);
        let t = (at(&ux) * (fx.to_kind(Kind::Float) + 0.5)
            + at(&uy) * (fy.to_kind(Kind::Float) + 0.5)
            + at(&k))
        .clamp(0.0, 1.0);
        Self { start, span, t }
    }

    /// Channel `c` of fragments of instances `inst` at positions `t`.
    fn channel(&self, c: usize, inst: &Tensor, t: &Tensor) -> Tensor {
        self.start[c].index_select(0, inst) + self.span[c].index_select(0, inst) * t
    }
}
