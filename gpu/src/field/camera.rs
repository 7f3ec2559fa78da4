//! Orbit cameras around the unit box: look-at ray generation, random sampling within ranges and
//! the view-dependent prompt suffix (front / side / back / overhead).
//!
//! World axes follow glTF: x right, y up, z toward the viewer. A camera at azimuth 0°, elevation
//! 0° sits on +z looking at the origin ("front"); azimuth turns it around +y toward +x, elevation
//! lifts it toward +y.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::rng::Rng;

/// A pinhole camera on a sphere around the origin, looking at the origin.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    /// Degrees around +y, 0 = on +z (front), 90 = on +x.
    pub azimuth_deg: f64,
    /// Degrees above the xz plane (clamped to ±89.9 when rays are made).
    pub elevation_deg: f64,
    /// Distance from the origin (the box spans ±0.5).
    pub distance: f64,
    /// Vertical (and horizontal: images are square) field of view in degrees.
    pub fov_deg: f64,
}

impl Default for Camera {
    fn default() -> Self {
        Self {
            azimuth_deg: 0.0,
            elevation_deg: 15.0,
            distance: 1.8,
            fov_deg: 50.0,
        }
    }
}

/// Ranges random training cameras are drawn from (anchors: elevation −10–45°, distance 1.5–2.0,
/// fov 40–70°, azimuth all around).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraRanges {
    /// Azimuth range in degrees.
    pub azimuth_deg: (f64, f64),
    /// Elevation range in degrees.
    pub elevation_deg: (f64, f64),
    /// Distance range.
    pub distance: (f64, f64),
    /// Field-of-view range in degrees.
    pub fov_deg: (f64, f64),
}

impl Default for CameraRanges {
    fn default() -> Self {
        Self {
            azimuth_deg: (-180.0, 180.0),
            elevation_deg: (-10.0, 45.0),
            distance: (1.5, 2.0),
            fov_deg: (40.0, 70.0),
        }
    }
}

impl CameraRanges {
    /// A camera drawn uniformly within the ranges.
    pub fn sample(&self, rng: &mut Rng) -> Camera {
        let mut u = |(lo, hi): (f64, f64)| lo + (hi - lo) * rng.uniform();
        Camera {
            azimuth_deg: u(self.azimuth_deg),
            elevation_deg: u(self.elevation_deg),
            distance: u(self.distance),
            fov_deg: u(self.fov_deg),
        }
    }
}

/// Rays of one image: origins and unit directions, `[H·W, 3]` each (row-major pixels, top row
/// first).
#[derive(Debug)]
pub struct Rays {
    /// Ray origins (the camera centre, repeated).
    pub origins: Tensor,
    /// Unit ray directions.
    pub dirs: Tensor,
    /// Image height.
    pub height: i64,
    /// Image width.
    pub width: i64,
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalize(a: [f64; 3]) -> [f64; 3] {
    let n = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt().max(1e-12);
    [a[0] / n, a[1] / n, a[2] / n]
}

impl Camera {
    /// The camera centre in world coordinates.
    pub fn position(&self) -> [f64; 3] {
        let az = self.azimuth_deg.to_radians();
        let el = self.elevation_deg.clamp(-89.9, 89.9).to_radians();
        [
            self.distance * el.cos() * az.sin(),
            self.distance * el.sin(),
            self.distance * el.cos() * az.cos(),
        ]
    }

    /// The camera frame `(right, up, forward)`, unit vectors (forward points at the origin).
    pub fn basis(&self) -> ([f64; 3], [f64; 3], [f64; 3]) {
        let forward = normalize(sub([0.0; 3], self.position()));
        let right = normalize(cross(forward, [0.0, 1.0, 0.0]));
        let up = cross(right, forward);
        (right, up, forward)
    }

    /// Camera-to-world matrix, row-major 4×4 (columns right, up, −forward, position: the OpenGL
    /// convention), flattened to 16 numbers: the input of VSD's camera embedding.
    pub fn matrix(&self) -> [f64; 16] {
        let (r, u, f) = self.basis();
        let p = self.position();
        [
            r[0], u[0], -f[0], p[0], r[1], u[1], -f[1], p[1], r[2], u[2], -f[2], p[2], 0.0, 0.0,
            0.0, 1.0,
        ]
    }

    /// Rays through the pixel centres of a `height × width` image (square pixels; `fov_deg` is
    /// the vertical field of view).
    pub fn rays(&self, height: i64, width: i64, device: Device) -> Rays {
        let (r, u, f) = self.basis();
        let tan = (self.fov_deg.clamp(1.0, 170.0).to_radians() / 2.0).tan();
        let aspect = width as f64 / height.max(1) as f64;
        let opts = (Kind::Float, device);
        let ys = (Tensor::arange(height, opts) + 0.5) / height as f64;
        let xs = (Tensor::arange(width, opts) + 0.5) / width as f64;
        // Image-plane coordinates: x grows right, y grows up.
        let px = ((xs * 2.0 - 1.0) * (tan * aspect))
            .view([1, width])
            .expand([height, width], false);
        let py = ((ys * -2.0 + 1.0) * tan)
            .view([height, 1])
            .expand([height, width], false);
        let vec3 = |v: [f64; 3]| Tensor::from_slice(&v.map(|x| x as f32)).to_device(device);
        let dirs = px.unsqueeze(-1) * vec3(r) + py.unsqueeze(-1) * vec3(u) + vec3(f);
        let dirs = dirs.reshape([height * width, 3]);
        let norm = dirs.square().sum_dim_intlist(-1, true, Kind::Float).sqrt();
        let dirs = dirs / norm;
        let origins = vec3(self.position())
            .view([1, 3])
            .expand([height * width, 3], false)
            .contiguous();
        Rays {
            origins,
            dirs,
            height,
            width,
        }
    }

    /// The view-dependent prompt suffix (anchors): ", overhead view" above 60° elevation, else
    /// ", front view" for |azimuth| < 45°, ", back view" for |azimuth| > 135°, ", side view".
    pub fn view_suffix(&self) -> &'static str {
        let az = wrap_degrees(self.azimuth_deg).abs();
        if self.elevation_deg > 60.0 {
            ", overhead view"
        } else if az < 45.0 {
            ", front view"
        } else if az > 135.0 {
            ", back view"
        } else {
            ", side view"
        }
    }
}

/// `deg` wrapped into `(-180, 180]`.
pub fn wrap_degrees(deg: f64) -> f64 {
    let d = deg.rem_euclid(360.0);
    if d > 180.0 { d - 360.0 } else { d }
}

/// `n` cameras evenly around the object at one elevation and distance (a turntable).
pub fn turntable(n: usize, elevation_deg: f64, distance: f64, fov_deg: f64) -> Vec<Camera> {
    (0..n)
        .map(|i| Camera {
            azimuth_deg: wrap_degrees(360.0 * i as f64 / n.max(1) as f64),
            elevation_deg,
            distance,
            fov_deg,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_camera_looks_down_minus_z_and_centre_ray_hits_origin() {
        let c = Camera {
            azimuth_deg: 0.0,
            elevation_deg: 0.0,
            distance: 2.0,
            fov_deg: 60.0,
        };
        let p = c.position();
        assert!((p[2] - 2.0).abs() < 1e-9 && p[0].abs() < 1e-9);
        let rays = c.rays(3, 3, Device::Cpu);
        let d: Vec<f32> = Vec::try_from(rays.dirs.get(4)).unwrap();
        assert!((d[2] + 1.0).abs() < 1e-6, "{d:?}");
        // Top-left pixel: up and to the left.
        let tl: Vec<f32> = Vec::try_from(rays.dirs.get(0)).unwrap();
        assert!(tl[0] < 0.0 && tl[1] > 0.0, "{tl:?}");
    }

    #[test]
    fn view_suffixes_follow_the_anchor_rules() {
        let c = |az, el| Camera {
            azimuth_deg: az,
            elevation_deg: el,
            ..Camera::default()
        };
        assert_eq!(c(10.0, 0.0).view_suffix(), ", front view");
        assert_eq!(c(-170.0, 0.0).view_suffix(), ", back view");
        assert_eq!(c(200.0, 0.0).view_suffix(), ", back view");
        assert_eq!(c(90.0, 30.0).view_suffix(), ", side view");
        assert_eq!(c(0.0, 70.0).view_suffix(), ", overhead view");
    }

    #[test]
    fn sampled_cameras_stay_in_range() {
        let r = CameraRanges::default();
        let mut rng = Rng::new(5);
        for _ in 0..100 {
            let c = r.sample(&mut rng);
            assert!((-10.0..=45.0).contains(&c.elevation_deg));
            assert!((1.5..=2.0).contains(&c.distance));
            assert!((40.0..=70.0).contains(&c.fov_deg));
        }
    }
}
