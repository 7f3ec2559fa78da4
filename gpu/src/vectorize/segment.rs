//! CPU segmentation: colour k-means in Lab, connected components, hole-filled silhouettes,
//! their containment tree and crack-following boundary tracing.

use super::image::TargetImage;

/// Pixels with alpha below this are "transparent" and belong to no region.
pub const TRANSPARENT_ALPHA: f32 = 0.5;

/// Label of transparent pixels.
pub const NO_LABEL: u32 = u32::MAX;

/// A small deterministic generator (SplitMix64) for seeds and sampling.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// Generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// sRGB (straight, `[0, 1]`) to CIE Lab (D65).
pub fn srgb_to_lab(c: [f32; 3]) -> [f32; 3] {
    let lin = |v: f32| {
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(c[0]), lin(c[1]), lin(c[2]));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    // CIE constants: (6/29)^3 and 1 / (3 (6/29)^2).
    let f = |t: f32| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// Per-pixel colour labels from k-means in Lab (k-means++ seeding on a subsample, fixed
/// seed), followed by one 3×3 majority filter that removes single-pixel speckle.
/// Transparent pixels get [`NO_LABEL`]. Returns the labels and the Lab centres.
pub fn kmeans_labels(img: &TargetImage, k: usize, seed: u64) -> (Vec<u32>, Vec<[f32; 3]>) {
    let lab: Vec<[f32; 3]> = img
        .pixels
        .iter()
        .map(|p| srgb_to_lab([p[0], p[1], p[2]]))
        .collect();
    let opaque: Vec<usize> = (0..lab.len())
        .filter(|&i| img.pixels[i][3] >= TRANSPARENT_ALPHA)
        .collect();
    let mut labels = vec![NO_LABEL; lab.len()];
    if opaque.is_empty() {
        return (labels, Vec::new());
    }
    let mut rng = SplitMix::new(seed);
    let d2 = |a: &[f32; 3], b: &[f32; 3]| {
        (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
    };
    // k-means++ seeding on at most 4096 samples.
    let stride = opaque.len().div_ceil(4096).max(1);
    let sample: Vec<[f32; 3]> = opaque.iter().step_by(stride).map(|&i| lab[i]).collect();
    let k = k.clamp(1, sample.len());
    let mut centres = vec![sample[(rng.next_u64() % sample.len() as u64) as usize]];
    let mut best: Vec<f32> = sample.iter().map(|s| d2(s, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = best.iter().map(|&d| f64::from(d)).sum();
        if total <= 0.0 {
            break;
        }
        let mut r = rng.next_f64() * total;
        let mut pick = sample.len() - 1;
        for (i, &d) in best.iter().enumerate() {
            r -= f64::from(d);
            if r <= 0.0 {
                pick = i;
                break;
            }
        }
        let c = sample[pick];
        centres.push(c);
        for (b, s) in best.iter_mut().zip(&sample) {
            *b = b.min(d2(s, &c));
        }
    }
    // Lloyd iterations over all opaque pixels.
    for _ in 0..10 {
        let mut sums = vec![[0f64; 4]; centres.len()];
        for &i in &opaque {
            let (mut bi, mut bd) = (0, f32::INFINITY);
            for (ci, c) in centres.iter().enumerate() {
                let d = d2(&lab[i], c);
                if d < bd {
                    bd = d;
                    bi = ci;
                }
            }
            labels[i] = bi as u32;
            let s = &mut sums[bi];
            for c in 0..3 {
                s[c] += f64::from(lab[i][c]);
            }
            s[3] += 1.0;
        }
        for (c, s) in centres.iter_mut().zip(&sums) {
            if s[3] > 0.0 {
                *c = std::array::from_fn(|j| (s[j] / s[3]) as f32);
            }
        }
    }
    (majority_filter(&labels, img.width, img.height), centres)
}

/// Replaces each label by the 3×3 neighbourhood's majority when that majority has ≥ 5 votes.
fn majority_filter(labels: &[u32], w: usize, h: usize) -> Vec<u32> {
    let mut out = labels.to_vec();
    for y in 0..h {
        for x in 0..w {
            let mut votes: [(u32, u8); 9] = [(NO_LABEL, 0); 9];
            let mut n = 0;
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    let l = labels[yy * w + xx];
                    if let Some(v) = votes[..n].iter_mut().find(|v| v.0 == l) {
                        v.1 += 1;
                    } else {
                        votes[n] = (l, 1);
                        n += 1;
                    }
                }
            }
            if let Some(&(l, c)) = votes[..n].iter().max_by_key(|v| v.1)
                && c >= 5
                && labels[y * w + x] != NO_LABEL
                && l != NO_LABEL
            {
                out[y * w + x] = l;
            }
        }
    }
    out
}

/// A 4-connected region of equal label.
#[derive(Clone, Debug)]
pub struct Region {
    /// Colour label.
    pub label: u32,
    /// Number of pixels.
    pub area: usize,
    /// Mean straight RGBA of the target over the region.
    pub color: [f32; 4],
    /// Inclusive bounding box `[x0, y0, x1, y1]`.
    pub bbox: [usize; 4],
    /// First pixel in raster order.
    pub first: usize,
}

/// Connected components (4-connectivity) of equal labels; transparent pixels get
/// [`NO_LABEL`]. Returns per-pixel region ids and the regions.
pub fn connected_regions(img: &TargetImage, labels: &[u32]) -> (Vec<u32>, Vec<Region>) {
    let (w, h) = (img.width, img.height);
    let mut comp = vec![NO_LABEL; labels.len()];
    let mut regions = Vec::new();
    let mut stack = Vec::new();
    for start in 0..labels.len() {
        if comp[start] != NO_LABEL || labels[start] == NO_LABEL {
            continue;
        }
        let id = regions.len() as u32;
        let label = labels[start];
        let mut sum = [0f64; 4];
        let mut area = 0usize;
        let mut bbox = [w, h, 0, 0];
        comp[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            area += 1;
            for (s, v) in sum.iter_mut().zip(img.pixels[i]) {
                *s += f64::from(v);
            }
            bbox = [
                bbox[0].min(x),
                bbox[1].min(y),
                bbox[2].max(x),
                bbox[3].max(y),
            ];
            let mut visit = |j: usize| {
                if comp[j] == NO_LABEL && labels[j] == label {
                    comp[j] = id;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        regions.push(Region {
            label,
            area,
            color: sum.map(|s| (s / area as f64) as f32),
            bbox,
            first: start,
        });
    }
    (comp, regions)
}

/// A binary mask over a window of the image (`x0, y0` is its top-left pixel).
#[derive(Clone, Debug)]
pub struct Mask {
    /// Left pixel column of the window.
    pub x0: usize,
    /// Top pixel row of the window.
    pub y0: usize,
    /// Window width.
    pub w: usize,
    /// Window height.
    pub h: usize,
    /// `w * h` flags.
    pub bits: Vec<bool>,
}

impl Mask {
    /// Whether window pixel `(x, y)` (window coordinates, may be out of range) is set.
    pub fn get(&self, x: i64, y: i64) -> bool {
        x >= 0
            && y >= 0
            && (x as usize) < self.w
            && (y as usize) < self.h
            && self.bits[y as usize * self.w + x as usize]
    }

    /// Number of set pixels.
    pub fn area(&self) -> usize {
        self.bits.iter().filter(|&&b| b).count()
    }
}

/// The hole-filled silhouette of the pixels `inside(i)` within `bbox`: every pixel of the
/// box not reachable from the box's outside through 8-connected non-member pixels.
/// (Members are 4-connected, the outside 8-connected, so silhouettes of different
/// regions are nested or disjoint.)
pub fn silhouette(width: usize, bbox: [usize; 4], inside: impl Fn(usize) -> bool) -> Mask {
    // One pixel of margin so the outside is connected around the region.
    let (w, h) = (bbox[2] - bbox[0] + 3, bbox[3] - bbox[1] + 3);
    let member = |x: usize, y: usize| {
        x >= 1
            && y >= 1
            && x <= w - 2
            && y <= h - 2
            && inside((bbox[1] + y - 1) * width + bbox[0] + x - 1)
    };
    let mut outside = vec![false; w * h];
    let mut stack = vec![0usize];
    outside[0] = true;
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if !outside[j] && !member(nx as usize, ny as usize) {
                    outside[j] = true;
                    stack.push(j);
                }
            }
        }
    }
    let (mw, mh) = (w - 2, h - 2);
    let mut bits = vec![false; mw * mh];
    for y in 0..mh {
        for x in 0..mw {
            bits[y * mw + x] = !outside[(y + 1) * w + x + 1];
        }
    }
    Mask {
        x0: bbox[0],
        y0: bbox[1],
        w: mw,
        h: mh,
        bits,
    }
}

/// The outer boundary of a mask as a closed polygon of pixel corners in image coordinates,
/// clockwise on screen (y down), inside on the right. Traced from the first set pixel in
/// raster order; diagonal-only contacts are not crossed. Empty if the mask is empty.
pub fn trace_boundary(mask: &Mask) -> Vec<[f32; 2]> {
    let Some(first) = mask.bits.iter().position(|&b| b) else {
        return Vec::new();
    };
    let (sx, sy) = ((first % mask.w) as i64, (first / mask.w) as i64);
    let start = (sx, sy);
    let mut v = start;
    let mut d: (i64, i64) = (1, 0);
    let mut out = Vec::new();
    // Pixel in the quadrant (qx, qy) ∈ {±1}² of vertex v.
    let pixel = |v: (i64, i64), q: (i64, i64)| {
        let px = if q.0 < 0 { v.0 - 1 } else { v.0 };
        let py = if q.1 < 0 { v.1 - 1 } else { v.1 };
        mask.get(px, py)
    };
    let limit = 4 * (mask.w + 2) * (mask.h + 2) + 8;
    loop {
        out.push([(v.0 + mask.x0 as i64) as f32, (v.1 + mask.y0 as i64) as f32]);
        v = (v.0 + d.0, v.1 + d.1);
        if out.len() > limit {
            break;
        }
        let r = (-d.1, d.0);
        let l = (d.1, -d.0);
        let ahead_right = pixel(v, (d.0 + r.0, d.1 + r.1));
        let ahead_left = pixel(v, (d.0 + l.0, d.1 + l.1));
        d = if !ahead_right {
            r
        } else if ahead_left {
            l
        } else {
            d
        };
        if v == start && d == (1, 0) {
            break;
        }
    }
    out
}

/// Drops the collinear middle points of a corner polygon (keeps only direction changes).
pub fn corners_only(poly: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let n = poly.len();
    if n < 4 {
        return poly.to_vec();
    }
    let mut out = Vec::new();
    for i in 0..n {
        let a = poly[(i + n - 1) % n];
        let b = poly[i];
        let c = poly[(i + 1) % n];
        let cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]);
        if cross != 0.0 {
            out.push(b);
        }
    }
    out
}

/// Signed area of a closed polygon (shoelace formula; positive when clockwise on screen, y down).
pub fn shoelace(p: &[[f32; 2]]) -> f32 {
    let n = p.len();
    (0..n)
        .map(|i| {
            let (a, b) = (p[i], p[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum::<f32>()
        / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_from(rows: &[&str]) -> Mask {
        let h = rows.len();
        let w = rows[0].len();
        Mask {
            x0: 0,
            y0: 0,
            w,
            h,
            bits: rows
                .iter()
                .flat_map(|r| r.bytes().map(|b| b == b'#'))
                .collect(),
        }
    }

    #[test]
    fn trace_boundary_encloses_the_mask_area() {
        let m = mask_from(&[".##.", "####", "#..#", "####"]);
        let poly = trace_boundary(&m);
        // Outer boundary only: the 2-pixel hole is enclosed, so the area is 16 - 2 corners.
        assert_eq!(shoelace(&poly), 14.0, "{poly:?}");
    }

    #[test]
    fn silhouette_fills_holes_but_not_notches() {
        let rows = ["#####", "#...#", "#####", "#.#..", "#.#.."];
        let w = 5;
        let bits: Vec<bool> = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| b == b'#'))
            .collect();
        let s = silhouette(w, [0, 0, 4, 4], |i| bits[i]);
        // The 3-pixel hole is filled; the notch at (1, 3..5) opens to the outside.
        assert_eq!(s.area(), bits.iter().filter(|&&b| b).count() + 3);
        assert!(!s.get(1, 3));
    }

    #[test]
    fn kmeans_separates_two_colours() {
        let mut data = Vec::new();
        for i in 0..64 {
            data.extend(if i % 8 < 4 {
                [250, 10, 10, 255]
            } else {
                [10, 10, 250, 255]
            });
        }
        let img = TargetImage::from_rgba8(8, 8, &data).unwrap();
        let (labels, centres) = kmeans_labels(&img, 2, 1);
        assert_eq!(centres.len(), 2);
        let (_, regions) = connected_regions(&img, &labels);
        assert_eq!(regions.len(), 2);
        assert!(regions.iter().all(|r| r.area == 32));
    }
}
