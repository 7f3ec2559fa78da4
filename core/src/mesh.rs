//! Plain 3D data: triangle meshes made of named parts (what GLB export writes and the 3D view
//! shows). No torch, no GPU: positions, normals, colours and indices in plain vectors.

use serde::{Deserialize, Serialize};

/// One named piece of a mesh (a glTF node with one primitive): an indexed triangle list.
///
/// Triangles wind counter-clockwise seen from outside (glTF's convention), so for a closed part
/// [`MeshPart::signed_volume`] is positive.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeshPart {
    /// Name (the object's label for extrusions, "surface" for fields).
    pub name: String,
    /// Vertex positions (x right, y up, z toward the viewer; metres in glTF terms).
    pub positions: Vec<[f32; 3]>,
    /// Unit vertex normals, one per position.
    pub normals: Vec<[f32; 3]>,
    /// Linear RGBA vertex colours in `[0, 1]`, one per position.
    pub colors: Vec<[f32; 4]>,
    /// Three indices per triangle into the vertex arrays.
    pub indices: Vec<u32>,
}

/// A mesh: parts in order (paint order for extrusions, back to front).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mesh {
    /// The parts.
    pub parts: Vec<MeshPart>,
}

/// Why a mesh is malformed.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MeshError {
    /// Array lengths disagree, an index is out of range, or the index count is not a multiple of 3.
    #[error("mesh part `{part}`: {reason}")]
    Malformed {
        /// The part's name.
        part: String,
        /// What is wrong.
        reason: String,
    },
}

impl MeshPart {
    /// Number of vertices.
    pub fn vertex_count(&self) -> usize {
        self.positions.len()
    }

    /// Number of triangles.
    pub fn triangle_count(&self) -> usize {
        self.indices.len() / 3
    }

    /// Checks lengths, index range and finiteness.
    pub fn validate(&self) -> Result<(), MeshError> {
        let bad = |reason: String| {
            Err(MeshError::Malformed {
                part: self.name.clone(),
                reason,
            })
        };
        let n = self.positions.len();
        if self.normals.len() != n || self.colors.len() != n {
            return bad(format!(
                "{n} positions but {} normals and {} colours",
                self.normals.len(),
                self.colors.len()
            ));
        }
        if !self.indices.len().is_multiple_of(3) {
            return bad(format!(
                "{} indices: expected a multiple of 3",
                self.indices.len()
            ));
        }
        if let Some(i) = self.indices.iter().find(|&&i| i as usize >= n) {
            return bad(format!("index {i} out of range ({n} vertices)"));
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !self.positions.iter().all(|p| finite(p))
            || !self.normals.iter().all(|p| finite(p))
            || !self.colors.iter().all(|p| finite(p))
        {
            return bad("a position, normal or colour is not finite".into());
        }
        Ok(())
    }

    /// Signed volume enclosed by the triangles (divergence theorem); positive when a closed part
    /// winds counter-clockwise seen from outside.
    pub fn signed_volume(&self) -> f64 {
        self.indices
            .chunks_exact(3)
            .map(|t| {
                let [a, b, c] = [0, 1, 2].map(|k| self.positions[t[k] as usize].map(f64::from));
                let cross = [
                    b[1] * c[2] - b[2] * c[1],
                    b[2] * c[0] - b[0] * c[2],
                    b[0] * c[1] - b[1] * c[0],
                ];
                (a[0] * cross[0] + a[1] * cross[1] + a[2] * cross[2]) / 6.0
            })
            .sum()
    }

    /// Axis-aligned bounds `(min, max)`, `None` when there are no vertices.
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        let first = *self.positions.first()?;
        Some(self.positions.iter().fold((first, first), |(lo, hi), p| {
            (
                [lo[0].min(p[0]), lo[1].min(p[1]), lo[2].min(p[2])],
                [hi[0].max(p[0]), hi[1].max(p[1]), hi[2].max(p[2])],
            )
        }))
    }
}

impl Mesh {
    /// Total vertices over all parts.
    pub fn vertex_count(&self) -> usize {
        self.parts.iter().map(MeshPart::vertex_count).sum()
    }

    /// Total triangles over all parts.
    pub fn triangle_count(&self) -> usize {
        self.parts.iter().map(MeshPart::triangle_count).sum()
    }

    /// Checks every part.
    pub fn validate(&self) -> Result<(), MeshError> {
        self.parts.iter().try_for_each(MeshPart::validate)
    }

    /// Sum of the parts' signed volumes.
    pub fn signed_volume(&self) -> f64 {
        self.parts.iter().map(MeshPart::signed_volume).sum()
    }

    /// Bounds over all parts.
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        self.parts
            .iter()
            .filter_map(MeshPart::bounds)
            .reduce(|(a, b), (c, d)| {
                (
                    [a[0].min(c[0]), a[1].min(c[1]), a[2].min(c[2])],
                    [b[0].max(d[0]), b[1].max(d[1]), b[2].max(d[2])],
                )
            })
    }
}

/// Area-weighted unit vertex normals of a triangle list; `fallback` where no triangle with area
/// touches a vertex.
pub fn vertex_normals(
    positions: &[[f32; 3]],
    indices: &[u32],
    fallback: [f32; 3],
) -> Vec<[f32; 3]> {
    let mut acc = vec![[0.0f64; 3]; positions.len()];
    for t in indices.chunks_exact(3) {
        let idx = [t[0] as usize, t[1] as usize, t[2] as usize];
        if idx.iter().any(|&i| i >= positions.len()) {
            continue;
        }
        let [a, b, c] = idx.map(|i| positions[i].map(f64::from));
        let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
        let n = [
            u[1] * v[2] - u[2] * v[1],
            u[2] * v[0] - u[0] * v[2],
            u[0] * v[1] - u[1] * v[0],
        ];
        for i in idx {
            for d in 0..3 {
                acc[i][d] += n[d];
            }
        }
    }
    acc.into_iter()
        .map(|n| {
            let l = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
            if l > 1e-20 && l.is_finite() {
                n.map(|x| (x / l) as f32)
            } else {
                fallback
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_cube() -> MeshPart {
        let p = |x: f32, y: f32, z: f32| [x, y, z];
        let positions = vec![
            p(0., 0., 0.),
            p(1., 0., 0.),
            p(1., 1., 0.),
            p(0., 1., 0.),
            p(0., 0., 1.),
            p(1., 0., 1.),
            p(1., 1., 1.),
            p(0., 1., 1.),
        ];
        // Counter-clockwise seen from outside.
        let indices = vec![
            0, 2, 1, 0, 3, 2, // z = 0 (normal -z)
            4, 5, 6, 4, 6, 7, // z = 1
            0, 1, 5, 0, 5, 4, // y = 0
            3, 7, 6, 3, 6, 2, // y = 1
            0, 4, 7, 0, 7, 3, // x = 0
            1, 2, 6, 1, 6, 5, // x = 1
        ];
        MeshPart {
            name: "cube".into(),
            normals: vec![[0.0, 0.0, 1.0]; 8],
            colors: vec![[1.0; 4]; 8],
            positions,
            indices,
        }
    }

    #[test]
    fn cube_volume_counts_and_bounds() {
        let c = unit_cube();
        c.validate().unwrap();
        assert!((c.signed_volume() - 1.0).abs() < 1e-9);
        assert_eq!(c.triangle_count(), 12);
        assert_eq!(c.bounds(), Some(([0.0; 3], [1.0; 3])));
        let mut flipped = c.clone();
        for t in flipped.indices.chunks_exact_mut(3) {
            t.swap(1, 2);
        }
        assert!((flipped.signed_volume() + 1.0).abs() < 1e-9);
    }

    #[test]
    fn malformed_parts_are_named() {
        let mut c = unit_cube();
        c.indices.push(99);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cube") && e.contains("multiple of 3"), "{e}");
        c.indices.extend([99, 99]);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
    }
}
