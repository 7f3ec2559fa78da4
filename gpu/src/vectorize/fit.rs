//! Boundary → primitive fitting: least-squares cubic spans between adaptive anchors, and
//! the greedy allocation of a segment budget over all candidate shapes.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

/// Smooths a closed pixel-corner polygon with two passes of the `[1, 2, 1] / 4` kernel, so
/// staircases become straight diagonals before fitting.
pub fn smooth_closed(poly: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let n = poly.len();
    if n < 3 {
        return poly.to_vec();
    }
    let mut cur = poly.to_vec();
    for _ in 0..2 {
        cur = (0..n)
            .map(|i| {
                let (a, b, c) = (cur[(i + n - 1) % n], cur[i], cur[(i + 1) % n]);
                [
                    0.25 * a[0] + 0.5 * b[0] + 0.25 * c[0],
                    0.25 * a[1] + 0.5 * b[1] + 0.25 * c[1],
                ]
            })
            .collect();
    }
    cur
}

/// Moves every point of a closed contour (inside on the right, as traced) by `dist` along
/// its outward normal. Neighbouring regions are traced along shared pixel edges; pushing
/// each outline out by half a pixel makes them overlap slightly instead of leaving
/// hairline gaps where the fits deviate inwards.
pub fn offset_outward(pts: &[[f32; 2]], dist: f32) -> Vec<[f32; 2]> {
    let n = pts.len();
    if n < 3 {
        return pts.to_vec();
    }
    (0..n)
        .map(|i| {
            let (a, b) = (pts[(i + n - 1) % n], pts[(i + 1) % n]);
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let len = (dx * dx + dy * dy).sqrt();
            if len < 1e-6 {
                return pts[i];
            }
            // Left of the direction of travel (y down) is (dy, −dx).
            [pts[i][0] + dist * dy / len, pts[i][1] - dist * dx / len]
        })
        .collect()
}

/// How a span between two anchors is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// A cubic Bézier fitted by least squares.
    Cubic,
    /// A straight edge (polygons).
    Line,
}

/// One fitted span from anchor `a` to anchor `b` (unwrapped contour indices, `b > a`).
#[derive(Clone, Copy, Debug)]
struct Span {
    b: usize,
    ctrl: [[f32; 2]; 2],
    /// Sum over the span's samples of the distance to the fit (≈ misfit area in px²).
    err: f32,
    /// Sample index (unwrapped) with the largest distance; `None` if too short to split.
    split: Option<usize>,
}

fn fit_span(pts: &[[f32; 2]], a: usize, b: usize, kind: SpanKind) -> Span {
    let n = pts.len();
    let q = |j: usize| pts[j % n];
    let (p0, p3) = (q(a), q(b));
    let len = b - a;
    // Chord-length parameters.
    let mut t = Vec::with_capacity(len + 1);
    let mut acc = 0f32;
    t.push(0.0);
    for j in 1..=len {
        let (u, v) = (q(a + j - 1), q(a + j));
        acc += ((v[0] - u[0]).powi(2) + (v[1] - u[1]).powi(2)).sqrt();
        t.push(acc);
    }
    if acc > 0.0 {
        for x in &mut t {
            *x /= acc;
        }
    }
    let thirds = [
        [p0[0] + (p3[0] - p0[0]) / 3.0, p0[1] + (p3[1] - p0[1]) / 3.0],
        [
            p0[0] + 2.0 * (p3[0] - p0[0]) / 3.0,
            p0[1] + 2.0 * (p3[1] - p0[1]) / 3.0,
        ],
    ];
    let mut ctrl = thirds;
    if kind == SpanKind::Cubic && len >= 3 {
        let (mut a11, mut a12, mut a22) = (0f64, 0f64, 0f64);
        let (mut r1, mut r2) = ([0f64; 2], [0f64; 2]);
        for (j, &tj) in t.iter().enumerate() {
            let s = f64::from(tj);
            let u = 1.0 - s;
            let (b0, b1, b2, b3) = (u * u * u, 3.0 * u * u * s, 3.0 * u * s * s, s * s * s);
            a11 += b1 * b1;
            a12 += b1 * b2;
            a22 += b2 * b2;
            let qj = q(a + j);
            for c in 0..2 {
                let r = f64::from(qj[c]) - b0 * f64::from(p0[c]) - b3 * f64::from(p3[c]);
                r1[c] += b1 * r;
                r2[c] += b2 * r;
            }
        }
        let det = a11 * a22 - a12 * a12;
        if det.abs() > 1e-9 {
            let c1: [f32; 2] = std::array::from_fn(|c| ((a22 * r1[c] - a12 * r2[c]) / det) as f32);
            let c2: [f32; 2] = std::array::from_fn(|c| ((a11 * r2[c] - a12 * r1[c]) / det) as f32);
            // Reject wild handles (far beyond the span's own extent).
            let chord = acc.max(1.0);
            let far = |c: [f32; 2], p: [f32; 2]| {
                ((c[0] - p[0]).powi(2) + (c[1] - p[1]).powi(2)).sqrt() > 1.5 * chord
            };
            if !(far(c1, p0) || far(c2, p3)) && c1.iter().chain(&c2).all(|v| v.is_finite()) {
                ctrl = [c1, c2];
            }
        }
    }
    let mut err = 0f32;
    let mut worst = (0f32, None);
    for (j, &tj) in t.iter().enumerate() {
        let u = 1.0 - tj;
        let (b0, b1, b2, b3) = (u * u * u, 3.0 * u * u * tj, 3.0 * u * tj * tj, tj * tj * tj);
        let p: [f32; 2] =
            std::array::from_fn(|c| b0 * p0[c] + b1 * ctrl[0][c] + b2 * ctrl[1][c] + b3 * p3[c]);
        let qj = q(a + j);
        let d = ((p[0] - qj[0]).powi(2) + (p[1] - qj[1]).powi(2)).sqrt();
        err += d;
        if j >= 2 && j + 2 <= len && d > worst.0 {
            worst = (d, Some(a + j));
        }
    }
    Span {
        b,
        ctrl,
        err,
        split: worst.1,
    }
}

/// A closed contour being fitted with a growing set of anchors.
#[derive(Clone, Debug)]
pub struct ContourFit {
    pts: Vec<[f32; 2]>,
    kind: SpanKind,
    spans: BTreeMap<usize, Span>,
}

impl ContourFit {
    /// Starts a fit with 3 anchors (the first point, the farthest from it, and the point
    /// farthest from the longer side). `None` for contours of fewer than 6 points.
    pub fn new(pts: Vec<[f32; 2]>, kind: SpanKind) -> Option<Self> {
        let n = pts.len();
        if n < 6 {
            return None;
        }
        let d2 = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
        let far = (1..n)
            .max_by(|&i, &j| d2(pts[i], pts[0]).total_cmp(&d2(pts[j], pts[0])))
            .unwrap_or(n / 2)
            .clamp(2, n - 2);
        let (lo, hi) = if far >= n - far { (0, far) } else { (far, n) };
        let mid = (lo + 1..hi)
            .max_by(|&i, &j| {
                let di = d2(pts[i], pts[lo % n]).min(d2(pts[i], pts[hi % n]));
                let dj = d2(pts[j], pts[lo % n]).min(d2(pts[j], pts[hi % n]));
                di.total_cmp(&dj)
            })
            .unwrap_or((lo + hi) / 2);
        let mut anchors = vec![0, far, mid];
        anchors.sort_unstable();
        anchors.dedup();
        if anchors.len() < 3 {
            anchors = vec![0, n / 3, 2 * n / 3];
        }
        let mut fit = Self {
            pts,
            kind,
            spans: BTreeMap::new(),
        };
        for (i, &a) in anchors.iter().enumerate() {
            let b = anchors.get(i + 1).copied().unwrap_or(anchors[0] + n);
            let span = fit_span(&fit.pts, a, b, kind);
            fit.spans.insert(a, span);
        }
        Some(fit)
    }

    /// Number of contour samples.
    pub fn contour_len(&self) -> usize {
        self.pts.len()
    }

    /// Number of segments (spans).
    pub fn segments(&self) -> usize {
        self.spans.len()
    }

    /// Total misfit (sum of sample distances).
    pub fn error(&self) -> f32 {
        self.spans.values().map(|s| s.err).sum()
    }

    /// The best split: `(anchor, error reduction)`, if any span can be split.
    fn best_split(&self) -> Option<(usize, f32)> {
        self.spans
            .iter()
            .filter_map(|(&a, s)| {
                let m = s.split?;
                let l = fit_span(&self.pts, a, m, self.kind);
                let r = fit_span(&self.pts, m, s.b, self.kind);
                Some((a, s.err - l.err - r.err))
            })
            .max_by(|x, y| x.1.total_cmp(&y.1))
    }

    /// Splits the span starting at `a` at its worst sample.
    fn split(&mut self, a: usize) {
        let n = self.pts.len();
        let Some(s) = self.spans.get(&a).copied() else {
            return;
        };
        let Some(m) = s.split else { return };
        let left = fit_span(&self.pts, a, m, self.kind);
        let (m_key, b) = if m >= n { (m - n, s.b - n) } else { (m, s.b) };
        let right = fit_span(&self.pts, m_key, b, self.kind);
        self.spans.insert(a, left);
        self.spans.insert(m_key, right);
    }

    /// Adds anchors at the worst samples while that lowers the misfit, up to `max_segments`.
    pub fn grow(&mut self, max_segments: usize) {
        while self.segments() < max_segments {
            match self.best_split() {
                Some((a, gain)) if gain > 0.0 => self.split(a),
                _ => break,
            }
        }
    }

    /// Control points in the parameter-view layout: closed cubic `[p0, c1, c2, p1, …]`
    /// (3 per segment) or polygon vertices (1 per segment).
    pub fn points(&self) -> Vec<[f32; 2]> {
        let n = self.pts.len();
        let mut out = Vec::new();
        for (&a, s) in &self.spans {
            out.push(self.pts[a % n]);
            if self.kind == SpanKind::Cubic {
                out.extend(s.ctrl);
            }
        }
        out
    }
}

/// A shape the budget may pay for.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Smoothed closed boundary.
    pub contour: Vec<[f32; 2]>,
    /// Squared-colour error (summed over pixels) removed by drawing the shape.
    pub gain: f32,
    /// Squared colour difference to what lies beneath (weights boundary misfit).
    pub contrast2: f32,
}

#[derive(Debug, PartialEq)]
struct Entry {
    ratio: f32,
    /// `None`: add candidate `cand`; `Some(a)`: split the span at anchor `a` of `cand`.
    split: Option<usize>,
    cand: usize,
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ratio
            .total_cmp(&other.ratio)
            .then(other.cand.cmp(&self.cand))
    }
}

/// Greedy allocation: repeatedly buys whichever is worth most per segment — a new shape (3
/// segments, worth its `gain`) or one more anchor on a chosen shape (1 segment, worth its
/// misfit reduction × contrast²) — until `max_segments` or `max_shapes` is reached.
/// Returns `(candidate index, fit)` for the chosen shapes, in candidate order.
pub fn allocate(
    cands: &[Candidate],
    kind: SpanKind,
    max_segments: usize,
    max_shapes: usize,
    max_segments_per_shape: usize,
) -> Vec<(usize, ContourFit)> {
    let mut heap: BinaryHeap<Entry> = cands
        .iter()
        .enumerate()
        .filter(|(_, c)| c.contour.len() >= 6 && c.gain > 0.0)
        .map(|(i, c)| Entry {
            ratio: c.gain / 3.0,
            split: None,
            cand: i,
        })
        .collect();
    let mut fits: BTreeMap<usize, ContourFit> = BTreeMap::new();
    let mut used = 0usize;
    let push_split = |heap: &mut BinaryHeap<Entry>, i: usize, fit: &ContourFit| {
        if fit.segments() >= max_segments_per_shape {
            return;
        }
        if let Some((a, gain)) = fit.best_split()
            && gain > 0.0
        {
            heap.push(Entry {
                ratio: gain * cands[i].contrast2,
                split: Some(a),
                cand: i,
            });
        }
    };
    while let Some(e) = heap.pop() {
        match e.split {
            None => {
                if fits.len() >= max_shapes {
                    continue;
                }
                let Some(fit) = ContourFit::new(cands[e.cand].contour.clone(), kind) else {
                    continue;
                };
                if used + fit.segments() > max_segments {
                    continue;
                }
                used += fit.segments();
                push_split(&mut heap, e.cand, &fit);
                fits.insert(e.cand, fit);
            }
            Some(a) => {
                if used + 1 > max_segments {
                    continue;
                }
                let Some(fit) = fits.get_mut(&e.cand) else {
                    continue;
                };
                let before = fit.segments();
                fit.split(a);
                used += fit.segments() - before;
                push_split(&mut heap, e.cand, fit);
            }
        }
        if used >= max_segments {
            break;
        }
    }
    fits.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circle(n: usize, r: f32) -> Vec<[f32; 2]> {
        (0..n)
            .map(|i| {
                let a = i as f32 / n as f32 * std::f32::consts::TAU;
                [50.0 + r * a.cos(), 50.0 + r * a.sin()]
            })
            .collect()
    }

    #[test]
    fn fit_more_anchors_reduce_error_on_a_circle() {
        let mut fit = ContourFit::new(circle(200, 30.0), SpanKind::Cubic).unwrap();
        assert_eq!(fit.segments(), 3);
        let e3 = fit.error();
        let (a, _) = fit.best_split().unwrap();
        fit.split(a);
        assert_eq!(fit.segments(), 4);
        let e4 = fit.error();
        assert!(e4 < e3, "{e4} !< {e3}");
        assert_eq!(fit.points().len(), 12);
        // With 8 anchors each span covers ≤ about 60° of arc; a cubic then follows a circle
        // to well under 0.01 px, so the measured misfit is the chord-length parametrisation
        // (distance at the sample's parameter, not the closest point): under 0.1 px.
        fit.grow(8);
        assert_eq!(fit.segments(), 8);
        let e8 = fit.error() / 200.0;
        assert!(e8 < 0.1, "mean misfit {e8} px");
    }

    #[test]
    fn allocate_respects_budgets() {
        let cands: Vec<Candidate> = (0..10)
            .map(|i| Candidate {
                contour: circle(100, 10.0 + i as f32),
                gain: 100.0 * (i + 1) as f32,
                contrast2: 1.0,
            })
            .collect();
        let out = allocate(&cands, SpanKind::Cubic, 20, 100, 8);
        let segs: usize = out.iter().map(|(_, f)| f.segments()).sum();
        assert!(segs <= 20);
        // The biggest gains are bought first.
        assert!(out.iter().any(|(i, _)| *i == 9));
        let out = allocate(&cands, SpanKind::Line, 1000, 2, 8);
        assert_eq!(out.len(), 2);
    }
}
