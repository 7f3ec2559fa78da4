//! Analytic shapes (a sphere, a torus) with exact signed distances, volumes and an exact
//! sphere-tracing renderer: ground truth for the fitting tests and the demo views folder.
//!
//! Surfaces are coloured by their normal (`0.5 + 0.5·n`), a view-independent texture that gives
//! the photometric loss something to match besides the silhouette.

use tch::Device;
use vecdream_core::RgbaImage;

use super::camera::Camera;

/// A closed analytic solid centred at the origin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AnalyticShape {
    /// A ball of this radius.
    Sphere {
        /// Radius.
        radius: f64,
    },
    /// A ring around the y axis (lying in the xz plane).
    Torus {
        /// Distance from the axis to the tube's centre.
        major: f64,
        /// The tube's radius.
        minor: f64,
    },
}

impl AnalyticShape {
    /// Signed distance to the surface (negative inside).
    pub fn sdf(&self, p: [f64; 3]) -> f64 {
        match *self {
            Self::Sphere { radius } => (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt() - radius,
            Self::Torus { major, minor } => {
                let q = (p[0] * p[0] + p[2] * p[2]).sqrt() - major;
                (q * q + p[1] * p[1]).sqrt() - minor
            }
        }
    }

    /// Whether `p` is inside.
    pub fn contains(&self, p: [f64; 3]) -> bool {
        self.sdf(p) < 0.0
    }

    /// The exact volume.
    pub fn volume(&self) -> f64 {
        use std::f64::consts::PI;
        match *self {
            Self::Sphere { radius } => 4.0 / 3.0 * PI * radius.powi(3),
            Self::Torus { major, minor } => 2.0 * PI * PI * major * minor * minor,
        }
    }

    /// Outward unit normal at (or near) the surface point `p`.
    pub fn normal(&self, p: [f64; 3]) -> [f64; 3] {
        let n = match *self {
            Self::Sphere { .. } => p,
            Self::Torus { major, .. } => {
                let rxz = (p[0] * p[0] + p[2] * p[2]).sqrt().max(1e-12);
                let c = [p[0] / rxz * major, 0.0, p[2] / rxz * major];
                [p[0] - c[0], p[1] - c[1], p[2] - c[2]]
            }
        };
        let l = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-12);
        [n[0] / l, n[1] / l, n[2] / l]
    }

    /// The surface colour at `p`: `0.5 + 0.5·n` (straight RGB).
    pub fn color(&self, p: [f64; 3]) -> [f64; 3] {
        self.normal(p).map(|x| 0.5 + 0.5 * x)
    }

    /// Renders the shape from `camera` at `size²` pixels with `ss²` rays per pixel (exact sphere
    /// tracing): straight RGBA, the colour of the hits over `background`, alpha the fraction
    /// of rays that hit.
    pub fn render(&self, camera: &Camera, size: u32, ss: u32, background: [f64; 3]) -> RgbaImage {
        let n = i64::from(size * ss.max(1));
        let rays = camera.rays(n, n, Device::Cpu);
        let o = camera.position();
        let dirs: Vec<f32> = Vec::try_from(rays.dirs.view([-1])).unwrap_or_default();
        let ss = ss.max(1) as usize;
        let (w, h) = (size as usize, size as usize);
        let mut data = vec![0u8; w * h * 4];
        for py in 0..h {
            for px in 0..w {
                let mut acc = [0.0f64; 3];
                let mut hits = 0usize;
                for sy in 0..ss {
                    for sx in 0..ss {
                        let idx = ((py * ss + sy) * (w * ss) + px * ss + sx) * 3;
                        let Some(d) = dirs.get(idx..idx + 3) else {
                            continue;
                        };
                        let d = [f64::from(d[0]), f64::from(d[1]), f64::from(d[2])];
                        if let Some(p) = self.trace(o, d) {
                            let c = self.color(p);
                            hits += 1;
                            for k in 0..3 {
                                acc[k] += c[k];
                            }
                        }
                    }
                }
                let total = (ss * ss) as f64;
                let a = hits as f64 / total;
                let px_i = (py * w + px) * 4;
                for k in 0..3 {
                    let c = if hits > 0 {
                        acc[k] / hits as f64
                    } else {
                        background[k]
                    };
                    data[px_i + k] = (c.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
                data[px_i + 3] = (a * 255.0).round() as u8;
            }
        }
        RgbaImage {
            width: size,
            height: size,
            data,
        }
    }

    /// The first surface point along `o + t·d` (unit `d`) within distance 10, by sphere tracing.
    fn trace(&self, o: [f64; 3], d: [f64; 3]) -> Option<[f64; 3]> {
        let mut t = 0.0;
        for _ in 0..256 {
            let p = [o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]];
            let s = self.sdf(p);
            if s < 1e-5 {
                return Some(p);
            }
            t += s;
            if t > 10.0 {
                return None;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sphere_render_covers_the_expected_disc() {
        let s = AnalyticShape::Sphere { radius: 0.3 };
        let cam = Camera {
            azimuth_deg: 0.0,
            elevation_deg: 0.0,
            distance: 2.0,
            fov_deg: 40.0,
        };
        let img = s.render(&cam, 32, 2, [1.0; 3]);
        let covered: f64 = img.data.chunks(4).map(|p| f64::from(p[3]) / 255.0).sum();
        // Projected disc: angular radius asin(0.3/2); image half-width tan(20°).
        let ang = (0.3f64 / 2.0).asin().tan();
        let expected = std::f64::consts::PI * (ang / 20f64.to_radians().tan() * 16.0).powi(2);
        assert!(
            (covered - expected).abs() / expected < 0.05,
            "{covered} vs {expected}"
        );
    }
}
