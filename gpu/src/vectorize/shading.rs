//! Linear shading: the least-squares two-stop linear gradient of a set of pixels. Shapes
//! start with it as their fill, so a lit wall, a sky or cloth is shaded from the first
//! step; over flat regions (icons) it is faint and ends up solid.

use vecdream_core::LinearFill;

use super::image::TargetImage;

/// Directions tried for the gradient axis (over a half turn).
const ANGLES: usize = 90;

/// Share of the opaque pixels that the most frequent colours must cover for an image to
/// count as flat-coloured (an icon: flat fills, anti-aliased edges).
pub const FLAT_COVERAGE: f64 = 0.8;
/// How many of the most frequent colours count.
const FLAT_COLOURS: usize = 64;

/// True if `img` is drawn in flat colours: its [`FLAT_COLOURS`] most frequent exact RGBA8
/// colours cover at least [`FLAT_COVERAGE`] of the opaque pixels. Such images (icons) are
/// vectorised with solid fills only, as drawn; photos and shaded art are not flat.
pub fn is_flat_coloured(img: &TargetImage) -> bool {
    let mut counts: std::collections::HashMap<[u8; 4], usize> = std::collections::HashMap::new();
    let mut opaque = 0usize;
    for p in &img.pixels {
        if p[3] < 0.5 {
            continue;
        }
        opaque += 1;
        *counts
            .entry(p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
            .or_default() += 1;
    }
    if opaque == 0 {
        return true;
    }
    let mut by_count: Vec<usize> = counts.into_values().collect();
    by_count.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = by_count.iter().take(FLAT_COLOURS).sum();
    top as f64 >= FLAT_COVERAGE * opaque as f64
}

/// The least-squares two-stop linear gradient of `img` over `pixels` (indices into the
/// image) as `(mean colour, gradient)`; `None` for fewer than two pixels or a set with no
/// extent. The axis spans the pixels' extent along the gradient's direction, so the fill is
/// padded only outside them. Over flat colour the change `Δ` is (near) zero.
pub fn fit_shading(img: &TargetImage, pixels: &[usize]) -> Option<([f32; 4], LinearFill)> {
    let n = pixels.len();
    if n < 2 {
        return None;
    }
    let w = img.width;
    let pos = |i: usize| ((i % w) as f64 + 0.5, (i / w) as f64 + 0.5);
    let nf = n as f64;
    let (mut mx, mut my) = (0.0, 0.0);
    let mut mc = [0.0f64; 4];
    for &i in pixels {
        let (x, y) = pos(i);
        mx += x;
        my += y;
        for (m, v) in mc.iter_mut().zip(img.pixels[i]) {
            *m += f64::from(v);
        }
    }
    mx /= nf;
    my /= nf;
    let mc = mc.map(|v| v / nf);
    // Centred second moments: position covariance S, colour–position covariances v_c and
    // the colour variances (the flat fit's error).
    let (mut sxx, mut sxy, mut syy) = (0.0f64, 0.0f64, 0.0f64);
    let mut v = [[0.0f64; 2]; 4];
    for &i in pixels {
        let (x, y) = pos(i);
        let (dx, dy) = (x - mx, y - my);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
        for (c, vc) in v.iter_mut().enumerate() {
            let dc = f64::from(img.pixels[i][c]) - mc[c];
            vc[0] += dc * dx;
            vc[1] += dc * dy;
        }
    }
    // Error removed by colour = mean + g·(d·(p − centroid)) along unit direction d:
    // Σ_c (v_c·d)² / (dᵀ S d). Take the best of evenly spaced directions.
    let gain_along = |d: (f64, f64)| {
        let sdd = d.0 * d.0 * sxx + 2.0 * d.0 * d.1 * sxy + d.1 * d.1 * syy;
        if sdd <= 1e-9 {
            return (0.0, sdd);
        }
        let g: f64 = v.iter().map(|vc| (vc[0] * d.0 + vc[1] * d.1).powi(2)).sum();
        (g / sdd, sdd)
    };
    let (_, d, sdd) = (0..ANGLES)
        .map(|k| {
            let a = std::f64::consts::PI * k as f64 / ANGLES as f64;
            let d = (a.cos(), a.sin());
            let (g, sdd) = gain_along(d);
            (g, d, sdd)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    if sdd <= 1e-9 {
        return None;
    }
    let slope: [f64; 4] = std::array::from_fn(|c| (v[c][0] * d.0 + v[c][1] * d.1) / sdd);
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for &i in pixels {
        let (x, y) = pos(i);
        let s = (x - mx) * d.0 + (y - my) * d.1;
        lo = lo.min(s);
        hi = hi.max(s);
    }
    if hi - lo < 1.0 {
        return None;
    }
    let mid = 0.5 * (lo + hi);
    let mean = std::array::from_fn(|c| (mc[c] + slope[c] * mid) as f32);
    let fill = LinearFill {
        delta: std::array::from_fn(|c| (slope[c] * (hi - lo)) as f32),
        axis: [
            (mx + d.0 * lo) as f32,
            (my + d.1 * lo) as f32,
            (mx + d.0 * hi) as f32,
            (my + d.1 * hi) as f32,
        ],
    };
    Some((mean, fill))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: usize, h: usize, f: impl Fn(usize, usize) -> [f32; 4]) -> TargetImage {
        TargetImage {
            width: w,
            height: h,
            pixels: (0..w * h).map(|i| f(i % w, i / w)).collect(),
        }
    }

    #[test]
    fn a_diagonal_ramp_is_recovered() {
        // Colour rises along (1, 1): red from 0.2 to 0.8 over the square's diagonal.
        let img = image(32, 32, |x, y| {
            let t = (x + y) as f32 / 62.0;
            [0.2 + 0.6 * t, 0.5, 0.5, 1.0]
        });
        let all: Vec<usize> = (0..32 * 32).collect();
        let (mean, g) = fit_shading(&img, &all).expect("a ramp is shaded");
        let (c0, c1) = g.stops(mean);
        // The axis runs along the diagonal, start at the top left.
        let [x0, y0, x1, y1] = g.axis;
        assert!((x1 - x0 - (y1 - y0)).abs() < 2.0, "axis {:?}", g.axis);
        assert!(x0 < x1, "axis {:?}", g.axis);
        // Stops at the pixel centres' extremes: 0.2 + 0.6·(1/62) … 0.8 − 0.6·(1/62).
        assert!(
            (c0[0] - 0.21).abs() < 0.02 && (c1[0] - 0.79).abs() < 0.02,
            "{c0:?} {c1:?}"
        );
        assert!(g.delta[1].abs() < 1e-6 && g.delta[3].abs() < 1e-6);
    }

    #[test]
    fn flat_colour_images_are_told_from_shaded_ones() {
        // Eight flat bands with a one-pixel anti-aliased edge between them: flat.
        let bands = image(64, 64, |x, _| {
            let v = (x / 8) as f32 / 8.0;
            if x % 8 == 0 {
                [v - 0.03, 0.5, 0.5, 1.0]
            } else {
                [v, 0.2, 0.9, 1.0]
            }
        });
        assert!(is_flat_coloured(&bands));
        // A smooth two-axis ramp: 4096 colours.
        let ramp = image(64, 64, |x, y| [x as f32 / 63.0, y as f32 / 63.0, 0.5, 1.0]);
        assert!(!is_flat_coloured(&ramp));
    }

    #[test]
    fn flat_regions_get_no_colour_change() {
        let flat = image(16, 16, |_, _| [0.3, 0.6, 0.9, 1.0]);
        let all: Vec<usize> = (0..256).collect();
        let (mean, g) = fit_shading(&flat, &all).expect("a square has extent");
        assert_eq!(mean, [0.3, 0.6, 0.9, 1.0]);
        assert!(g.delta.iter().all(|d| d.abs() < 1e-6), "{g:?}");
        assert!(fit_shading(&flat, &all[..1]).is_none());
    }
}
