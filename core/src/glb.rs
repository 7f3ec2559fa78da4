//! GLB 2.0 (binary glTF) for [`Mesh`]: a writer that the Khronos glTF-Validator accepts with no
//! errors and three.js `GLTFLoader` loads, and a reader for our files and other plain GLBs.
//!
//! **Written**: one node per part (named after it), each with its own mesh of one indexed
//! triangle primitive: `POSITION` (float `VEC3`, with `min`/`max`), `NORMAL` (float `VEC3`,
//! renormalised; a zero normal becomes +z), `COLOR_0` (float `VEC4`, linear, clamped to
//! `[0, 1]`) and `u32` indices, each in its own 4-byte aligned buffer view of the one binary
//! chunk. A part with no triangles becomes a node without a mesh (glTF forbids empty accessors).
//! The material is plain PBR with metallic 0 (glTF's default material is fully metallic and
//! renders almost black without an environment map); parts with any vertex alpha below 1 get a
//! second material with `alphaMode: BLEND`. `asset.generator` is `"vecdream"` and the default
//! scene holds every node.
//!
//! **Read**: the default scene's node tree (or every root node, or every mesh when there are no
//! nodes), node transforms applied (matrix or TRS; normals by the inverse transpose; mirrored
//! nodes keep outward winding), one part per triangle primitive (modes 4, 5 and 6). Attributes in
//! any component type glTF allows (float, or normalised `u8`/`u16` for `COLOR_0` `VEC3`/`VEC4`),
//! strided views, accessors without a view (zeros). Missing normals are computed (area
//! weighted), missing colours come from the material's `baseColorFactor` (else white). External
//! or data-URI buffers, sparse accessors and required extensions are refused with an error
//! saying so. Hostile bytes never panic: every offset and count is checked against the chunk it
//! points into, and the result is capped at [`MAX_READ_VERTICES`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::mesh::{Mesh, MeshError, MeshPart};

/// Most vertices (summed over all parts, instanced meshes counted each time) that
/// [`read_glb_bytes`] returns; larger files are refused (a guard against decompression-bomb-like
/// files that instance one big mesh many times).
pub const MAX_READ_VERTICES: usize = 1 << 26;

/// Largest GLB file [`read_glb`] opens, in bytes (the format's own limit: the length is a `u32`).
pub const MAX_GLB_BYTES: u64 = u32::MAX as u64;

const MAGIC: &[u8; 4] = b"glTF";
const CHUNK_JSON: u32 = 0x4E4F_534A;
const CHUNK_BIN: u32 = 0x004E_4942;
const ARRAY_BUFFER: u32 = 34962;
const ELEMENT_ARRAY_BUFFER: u32 = 34963;
const FLOAT: u32 = 5126;
const UNSIGNED_INT: u32 = 5125;

/// Why a GLB could not be written or read. Every variant of reading names the file.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GlbError {
    /// The mesh is malformed (array lengths, index range, non-finite values).
    #[error("cannot write GLB: {0}")]
    Mesh(#[from] MeshError),
    /// The mesh does not fit in a GLB (over 4 GiB, or more than 2³²−1 vertices in a part).
    #[error("cannot write GLB: {0}")]
    TooLarge(String),
    /// The file could not be read.
    #[error("{path}: cannot read: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file could not be written (or the mesh could not be encoded for it).
    #[error("{path}: cannot write: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The bytes are not a well-formed GLB 2.0 file (bad magic, truncated chunk, bad JSON,
    /// missing or out-of-range accessor…).
    #[error("{file}: not a valid GLB 2.0 file: {reason}")]
    Invalid {
        /// The file (or the name the caller gave the bytes).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// Valid glTF that this reader does not handle (external buffers, sparse accessors,
    /// compression extensions, points or lines).
    #[error("{file}: unsupported glTF content: {reason}")]
    Unsupported {
        /// The file.
        file: String,
        /// What is not supported.
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Encodes `mesh` as GLB 2.0 bytes (see the module docs for the layout).
pub fn glb_bytes(mesh: &Mesh) -> Result<Vec<u8>, GlbError> {
    mesh.validate()?;
    let mut bin: Vec<u8> = Vec::new();
    let mut views: Vec<Value> = Vec::new();
    let mut accessors: Vec<Value> = Vec::new();
    let mut meshes: Vec<Value> = Vec::new();
    let mut nodes: Vec<Value> = Vec::new();
    let mut materials: Vec<Value> = Vec::new();
    let (mut opaque, mut blend): (Option<usize>, Option<usize>) = (None, None);

    for part in &mesh.parts {
        if part.indices.is_empty() || part.positions.is_empty() {
            nodes.push(json!({ "name": part.name }));
            continue;
        }
        if part.positions.len() >= u32::MAX as usize {
            return Err(GlbError::TooLarge(format!(
                "part `{}` has {} vertices (at most {} fit u32 indices)",
                part.name,
                part.positions.len(),
                u32::MAX - 1
            )));
        }
        let count = part.positions.len();
        let (lo, hi) = part.bounds().unwrap_or(([0.0; 3], [0.0; 3]));
        let position = push_accessor(
            &mut bin,
            &mut views,
            &mut accessors,
            part.positions.iter().flatten().copied(),
            count,
            "VEC3",
            Some((lo, hi)),
        );
        let normal = push_accessor(
            &mut bin,
            &mut views,
            &mut accessors,
            part.normals.iter().flat_map(|&n| unit_or_z(n)),
            count,
            "VEC3",
            None,
        );
        let color = push_accessor(
            &mut bin,
            &mut views,
            &mut accessors,
            part.colors.iter().flatten().map(|c| c.clamp(0.0, 1.0)),
            count,
            "VEC4",
            None,
        );
        let offset = bin.len();
        bin.extend(part.indices.iter().flat_map(|i| i.to_le_bytes()));
        views.push(json!({
            "buffer": 0, "byteOffset": offset, "byteLength": bin.len() - offset,
            "target": ELEMENT_ARRAY_BUFFER,
        }));
        accessors.push(json!({
            "bufferView": views.len() - 1, "componentType": UNSIGNED_INT,
            "count": part.indices.len(), "type": "SCALAR",
        }));
        let indices = accessors.len() - 1;

        let translucent = part.colors.iter().any(|c| c[3] < 1.0);
        let slot = if translucent { &mut blend } else { &mut opaque };
        let material = *slot.get_or_insert_with(|| {
            let name = if translucent {
                "vertex colour (blend)"
            } else {
                "vertex colour"
            };
            let mut m = json!({
                "name": name,
                "pbrMetallicRoughness": { "metallicFactor": 0.0, "roughnessFactor": 0.8 },
            });
            if translucent {
                m["alphaMode"] = json!("BLEND");
            }
            materials.push(m);
            materials.len() - 1
        });
        meshes.push(json!({
            "name": part.name,
            "primitives": [{
                "attributes": { "POSITION": position, "NORMAL": normal, "COLOR_0": color },
                "indices": indices,
                "material": material,
                "mode": 4,
            }],
        }));
        nodes.push(json!({ "name": part.name, "mesh": meshes.len() - 1 }));
    }

    let mut root = Map::new();
    root.insert(
        "asset".into(),
        json!({ "version": "2.0", "generator": "vecdream" }),
    );
    let mut scene = json!({ "name": "vecdream" });
    if !nodes.is_empty() {
        scene["nodes"] = json!((0..nodes.len()).collect::<Vec<_>>());
    }
    root.insert("scene".into(), json!(0));
    root.insert("scenes".into(), json!([scene]));
    for (key, list) in [
        ("nodes", nodes),
        ("meshes", meshes),
        ("materials", materials),
        ("accessors", accessors),
        ("bufferViews", views),
    ] {
        if !list.is_empty() {
            root.insert(key.into(), Value::Array(list));
        }
    }
    if !bin.is_empty() {
        root.insert("buffers".into(), json!([{ "byteLength": bin.len() }]));
    }
    let mut json_bytes = serde_json::to_vec(&Value::Object(root))
        .map_err(|e| GlbError::TooLarge(format!("cannot encode the glTF JSON: {e}")))?;
    while !json_bytes.len().is_multiple_of(4) {
        json_bytes.push(b' ');
    }
    let bin_chunk = if bin.is_empty() { 0 } else { 8 + bin.len() };
    let total = 12 + 8 + json_bytes.len() + bin_chunk;
    let total32 = u32::try_from(total).map_err(|_| {
        GlbError::TooLarge(format!(
            "the GLB would be {total} bytes, over the format's 4 GiB limit"
        ))
    })?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&total32.to_le_bytes());
    out.extend_from_slice(&(json_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&CHUNK_JSON.to_le_bytes());
    out.extend_from_slice(&json_bytes);
    if !bin.is_empty() {
        out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
        out.extend_from_slice(&CHUNK_BIN.to_le_bytes());
        out.extend_from_slice(&bin);
    }
    Ok(out)
}

/// Writes `mesh` to `path` as GLB 2.0, atomically (a temporary file in the same folder, then a
/// rename).
pub fn write_glb(path: &Path, mesh: &Mesh) -> Result<(), GlbError> {
    let bytes = glb_bytes(mesh).map_err(|e| GlbError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    crate::atomic::write_atomic(path, &bytes).map_err(|e| GlbError::Write {
        path: path.to_path_buf(),
        reason: match e {
            crate::Error::Write { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// A unit vector along `n`, or +z when `n` is (nearly) zero.
fn unit_or_z(n: [f32; 3]) -> [f32; 3] {
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    if len > 1e-12 && len.is_finite() {
        n.map(|v| v / len)
    } else {
        [0.0, 0.0, 1.0]
    }
}

/// Appends float data as a new vertex buffer view (4-byte aligned by construction: everything
/// in the buffer is 4-byte values) and an accessor over it; returns the accessor index.
fn push_accessor(
    bin: &mut Vec<u8>,
    views: &mut Vec<Value>,
    accessors: &mut Vec<Value>,
    values: impl Iterator<Item = f32>,
    count: usize,
    ty: &str,
    min_max: Option<([f32; 3], [f32; 3])>,
) -> usize {
    let offset = bin.len();
    bin.extend(values.flat_map(f32::to_le_bytes));
    views.push(json!({
        "buffer": 0, "byteOffset": offset, "byteLength": bin.len() - offset, "target": ARRAY_BUFFER,
    }));
    let mut acc = json!({
        "bufferView": views.len() - 1, "componentType": FLOAT, "count": count, "type": ty,
    });
    if let Some((lo, hi)) = min_max {
        acc["min"] = json!(lo.map(f64::from));
        acc["max"] = json!(hi.map(f64::from));
    }
    accessors.push(acc);
    accessors.len() - 1
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Reads a GLB file (see the module docs for what is supported). Errors name the file.
pub fn read_glb(path: &Path) -> Result<Mesh, GlbError> {
    let read_err = |reason: String| GlbError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_err(e.to_string()))?;
    if meta.len() > MAX_GLB_BYTES {
        return Err(read_err(format!(
            "file is {} bytes, larger than a GLB can be (4 GiB)",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
    read_glb_bytes(&bytes, &path.display().to_string())
}

/// Reads GLB bytes; `source` names them in errors (a file name, usually).
pub fn read_glb_bytes(bytes: &[u8], source: &str) -> Result<Mesh, GlbError> {
    let (json, bin) = split_chunks(bytes).map_err(|reason| GlbError::Invalid {
        file: source.to_string(),
        reason,
    })?;
    let root: Value = serde_json::from_slice(json).map_err(|e| GlbError::Invalid {
        file: source.to_string(),
        reason: format!("the JSON chunk is not valid JSON: {e}"),
    })?;
    let reader = Reader {
        root: &root,
        bin,
        file: source,
    };
    let mesh = reader.mesh()?;
    mesh.validate().map_err(|e| GlbError::Invalid {
        file: source.to_string(),
        reason: e.to_string(),
    })?;
    Ok(mesh)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The JSON chunk and the binary chunk (empty when absent) of a GLB container.
fn split_chunks(bytes: &[u8]) -> Result<(&[u8], &[u8]), String> {
    if bytes.len() < 12 {
        return Err(format!(
            "{} bytes: too short for the 12-byte GLB header",
            bytes.len()
        ));
    }
    if &bytes[0..4] != MAGIC {
        return Err(format!(
            "bad magic {:?} (expected \"glTF\"): not a binary glTF file",
            String::from_utf8_lossy(&bytes[0..4])
        ));
    }
    let version = u32_at(bytes, 4).unwrap_or(0);
    if version != 2 {
        return Err(format!("container version {version} (expected 2)"));
    }
    let length = u32_at(bytes, 8).unwrap_or(0) as usize;
    if length > bytes.len() {
        return Err(format!(
            "truncated: the header says {length} bytes but there are only {}",
            bytes.len()
        ));
    }
    let bytes = &bytes[..length];
    let mut at = 12;
    let mut chunks: Vec<(u32, &[u8])> = Vec::new();
    while at < bytes.len() {
        let (Some(len), Some(kind)) = (u32_at(bytes, at), u32_at(bytes, at + 4)) else {
            return Err(format!("truncated chunk header at byte {at}"));
        };
        let start = at + 8;
        let end = start
            .checked_add(len as usize)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated chunk at byte {at}: it says {len} bytes, {} are left",
                    bytes.len() - start
                )
            })?;
        chunks.push((kind, &bytes[start..end]));
        // Chunks are 4-byte aligned; a writer that forgot the padding still ends here.
        at = end.next_multiple_of(4).min(bytes.len());
    }
    let Some(&(CHUNK_JSON, json)) = chunks.first() else {
        return Err("the first chunk is not the JSON chunk".into());
    };
    let bin = chunks
        .get(1)
        .filter(|(kind, _)| *kind == CHUNK_BIN)
        .map_or(&[][..], |&(_, b)| b);
    Ok((json, bin))
}

/// One accessor's values (`f64` holds every `u32` index exactly), `components` per element.
struct Values {
    data: Vec<f64>,
    components: usize,
}

impl Values {
    fn count(&self) -> usize {
        self.data.len() / self.components.max(1)
    }
}

struct Reader<'a> {
    root: &'a Value,
    bin: &'a [u8],
    file: &'a str,
}

type Mat4 = [[f64; 4]; 4];

const IDENTITY: Mat4 = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

impl<'a> Reader<'a> {
    fn invalid(&self, reason: impl Into<String>) -> GlbError {
        GlbError::Invalid {
            file: self.file.to_string(),
            reason: reason.into(),
        }
    }

    fn unsupported(&self, reason: impl Into<String>) -> GlbError {
        GlbError::Unsupported {
            file: self.file.to_string(),
            reason: reason.into(),
        }
    }

    /// `root[key][index]`, or an error naming what is missing.
    fn item(&self, key: &str, index: &Value, what: &str) -> Result<&'a Value, GlbError> {
        let i = index
            .as_u64()
            .ok_or_else(|| self.invalid(format!("{what}: index {index} is not a whole number")))?;
        self.root
            .get(key)
            .and_then(|list| list.get(usize::try_from(i).ok()?))
            .filter(|v| v.is_object())
            .ok_or_else(|| self.invalid(format!("{what} refers to missing {key}[{i}]")))
    }

    fn mesh(&self) -> Result<Mesh, GlbError> {
        if !self.root.is_object() {
            return Err(self.invalid("the JSON chunk is not an object"));
        }
        let version = self.root.pointer("/asset/version").and_then(Value::as_str);
        match version {
            Some(v) if v.starts_with("2.") => {}
            Some(v) => return Err(self.unsupported(format!("asset.version {v:?} (expected 2.x)"))),
            None => return Err(self.invalid("asset.version is missing")),
        }
        if let Some(req) = self
            .root
            .get("extensionsRequired")
            .and_then(Value::as_array)
            && let Some(first) = req.first()
        {
            return Err(self.unsupported(format!(
                "the file requires the extension {first} (and {} more)",
                req.len() - 1
            )));
        }
        let mut out = Mesh::default();
        let mut total = 0usize;
        let nodes = self.root.get("nodes").and_then(Value::as_array);
        let roots: Vec<Value> = match (self.root.get("scenes"), nodes) {
            (Some(scenes), _) if scenes.as_array().is_some_and(|s| !s.is_empty()) => {
                let scene_index = self.root.get("scene").cloned().unwrap_or(json!(0));
                let scene = self.item("scenes", &scene_index, "the default scene")?;
                scene
                    .get("nodes")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            }
            (_, Some(nodes)) => {
                let children: HashSet<u64> = nodes
                    .iter()
                    .filter_map(|n| n.get("children")?.as_array())
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect();
                (0..nodes.len() as u64)
                    .filter(|i| !children.contains(i))
                    .map(Value::from)
                    .collect()
            }
            _ => {
                // No nodes at all: every mesh, untransformed.
                let count = self
                    .root
                    .get("meshes")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                for m in 0..count {
                    let name = format!("mesh {m}");
                    self.mesh_parts(&json!(m), &name, &IDENTITY, &mut out, &mut total)?;
                }
                return Ok(out);
            }
        };
        let mut visited = HashSet::new();
        // Depth-first over the node tree, iteratively (no recursion on hostile depth).
        let mut stack: Vec<(Value, Mat4)> =
            roots.into_iter().rev().map(|n| (n, IDENTITY)).collect();
        while let Some((index, parent)) = stack.pop() {
            let node = self.item("nodes", &index, "a scene or node")?;
            if !visited.insert(index.as_u64()) {
                continue; // glTF forbids shared nodes and cycles; read each once.
            }
            let world = mul(&parent, &self.local_matrix(node, &index)?);
            if let Some(mesh) = node.get("mesh") {
                let name = node
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| {
                        let m = self.item("meshes", mesh, "a node").ok()?;
                        m.get("name").and_then(Value::as_str).map(str::to_string)
                    })
                    .unwrap_or_else(|| format!("node {index}"));
                self.mesh_parts(mesh, &name, &world, &mut out, &mut total)?;
            }
            if let Some(children) = node.get("children").and_then(Value::as_array) {
                for c in children.iter().rev() {
                    stack.push((c.clone(), world));
                }
            }
        }
        Ok(out)
    }

    fn local_matrix(&self, node: &Value, index: &Value) -> Result<Mat4, GlbError> {
        let nums = |key: &str, n: usize| -> Result<Option<Vec<f64>>, GlbError> {
            let Some(v) = node.get(key) else {
                return Ok(None);
            };
            let list: Option<Vec<f64>> = v
                .as_array()
                .filter(|a| a.len() == n)
                .and_then(|a| a.iter().map(Value::as_f64).collect());
            match list {
                Some(l) if l.iter().all(|x| x.is_finite()) => Ok(Some(l)),
                _ => Err(self.invalid(format!(
                    "nodes[{index}].{key} is not an array of {n} finite numbers"
                ))),
            }
        };
        if let Some(m) = nums("matrix", 16)? {
            // Column-major.
            return Ok(std::array::from_fn(|r| {
                std::array::from_fn(|c| m[c * 4 + r])
            }));
        }
        let t = nums("translation", 3)?.unwrap_or(vec![0.0; 3]);
        let q = nums("rotation", 4)?.unwrap_or(vec![0.0, 0.0, 0.0, 1.0]);
        let s = nums("scale", 3)?.unwrap_or(vec![1.0; 3]);
        let (x, y, z, w) = (q[0], q[1], q[2], q[3]);
        let rot = [
            [
                1.0 - 2.0 * (y * y + z * z),
                2.0 * (x * y - z * w),
                2.0 * (x * z + y * w),
            ],
            [
                2.0 * (x * y + z * w),
                1.0 - 2.0 * (x * x + z * z),
                2.0 * (y * z - x * w),
            ],
            [
                2.0 * (x * z - y * w),
                2.0 * (y * z + x * w),
                1.0 - 2.0 * (x * x + y * y),
            ],
        ];
        let mut m = IDENTITY;
        for r in 0..3 {
            for c in 0..3 {
                m[r][c] = rot[r][c] * s[c];
            }
            m[r][3] = t[r];
        }
        Ok(m)
    }

    fn mesh_parts(
        &self,
        mesh_index: &Value,
        name: &str,
        world: &Mat4,
        out: &mut Mesh,
        total: &mut usize,
    ) -> Result<(), GlbError> {
        let mesh = self.item("meshes", mesh_index, &format!("part `{name}`"))?;
        let prims = mesh
            .get("primitives")
            .and_then(Value::as_array)
            .ok_or_else(|| self.invalid(format!("meshes[{mesh_index}] has no primitives array")))?;
        for (k, prim) in prims.iter().enumerate() {
            let what = format!("meshes[{mesh_index}].primitives[{k}]");
            let mut part = self.primitive(prim, &what)?;
            *total = total.saturating_add(part.positions.len());
            if *total > MAX_READ_VERTICES {
                return Err(self.unsupported(format!(
                    "more than {MAX_READ_VERTICES} vertices in all (instanced meshes count each time)"
                )));
            }
            transform_part(&mut part, world);
            part.name = if prims.len() > 1 {
                format!("{name}.{k}")
            } else {
                name.to_string()
            };
            out.parts.push(part);
        }
        Ok(())
    }

    fn primitive(&self, prim: &Value, what: &str) -> Result<MeshPart, GlbError> {
        let mode = prim.get("mode").map_or(Some(4), Value::as_u64);
        if !matches!(mode, Some(4..=6)) {
            return Err(self.unsupported(format!(
                "{what}: mode {} (points or lines): only triangles are read",
                prim.get("mode").unwrap_or(&Value::Null)
            )));
        }
        let attrs = prim
            .get("attributes")
            .filter(|a| a.is_object())
            .ok_or_else(|| self.invalid(format!("{what} has no attributes")))?;
        let position = attrs
            .get("POSITION")
            .ok_or_else(|| self.invalid(format!("{what} has no POSITION accessor")))?;
        let pos = self.accessor(position, &[3], &format!("{what} POSITION"))?;
        let n = pos.count();
        let positions: Vec<[f32; 3]> = pos.data.chunks_exact(3).map(vec3).collect();
        if !positions.iter().flatten().all(|v| v.is_finite()) {
            return Err(self.invalid(format!("{what}: a POSITION value is not finite")));
        }
        let normals = match attrs.get("NORMAL") {
            Some(a) => {
                let v = self.accessor(a, &[3], &format!("{what} NORMAL"))?;
                self.same_count(&v, n, what, "NORMAL")?;
                Some(v.data.chunks_exact(3).map(vec3).collect::<Vec<_>>())
            }
            None => None,
        };
        let colors: Vec<[f32; 4]> = match attrs.get("COLOR_0") {
            Some(a) => {
                let v = self.accessor(a, &[3, 4], &format!("{what} COLOR_0"))?;
                self.same_count(&v, n, what, "COLOR_0")?;
                let f = |x: f64| x as f32;
                if v.components == 3 {
                    v.data
                        .chunks_exact(3)
                        .map(|c| [f(c[0]), f(c[1]), f(c[2]), 1.0])
                        .collect()
                } else {
                    v.data
                        .chunks_exact(4)
                        .map(|c| [f(c[0]), f(c[1]), f(c[2]), f(c[3])])
                        .collect()
                }
            }
            None => vec![self.base_color(prim); n],
        };
        let raw_indices: Vec<u32> = match prim.get("indices") {
            Some(a) => {
                let acc = self.item("accessors", a, &format!("{what} indices"))?;
                let ct = acc.get("componentType").and_then(Value::as_u64);
                if !matches!(ct, Some(5121 | 5123 | 5125)) {
                    return Err(self.invalid(format!(
                        "{what}: indices must be unsigned byte, short or int (componentType {})",
                        ct.map_or("missing".into(), |c| c.to_string())
                    )));
                }
                let v = self.accessor(a, &[1], &format!("{what} indices"))?;
                v.data.iter().map(|&i| i as u32).collect() // exact: u32 values in f64
            }
            None => (0..n as u32).collect(),
        };
        if let Some(bad) = raw_indices.iter().find(|&&i| i as usize >= n) {
            return Err(self.invalid(format!("{what}: index {bad} out of range ({n} vertices)")));
        }
        let indices = match mode {
            Some(5) => strip_to_list(&raw_indices),
            Some(6) => fan_to_list(&raw_indices),
            _ => raw_indices[..raw_indices.len() - raw_indices.len() % 3].to_vec(),
        };
        let normals = match normals {
            Some(n) => n.into_iter().map(unit_or_z).collect(),
            None => crate::mesh::vertex_normals(&positions, &indices, [0.0, 0.0, 1.0]),
        };
        Ok(MeshPart {
            name: String::new(),
            positions,
            normals,
            colors: colors
                .into_iter()
                .map(|c| c.map(|v| v.clamp(0.0, 1.0)))
                .collect(),
            indices,
        })
    }

    fn same_count(&self, v: &Values, n: usize, what: &str, attr: &str) -> Result<(), GlbError> {
        if v.count() == n {
            Ok(())
        } else {
            Err(self.invalid(format!(
                "{what}: {attr} has {} elements but POSITION has {n}",
                v.count()
            )))
        }
    }

    /// The primitive's material `baseColorFactor` (linear RGBA), else opaque white.
    fn base_color(&self, prim: &Value) -> [f32; 4] {
        prim.get("material")
            .and_then(|m| self.item("materials", m, "").ok())
            .and_then(|m| {
                m.pointer("/pbrMetallicRoughness/baseColorFactor")?
                    .as_array()
            })
            .filter(|a| a.len() == 4)
            .and_then(|a| {
                let v: Option<Vec<f32>> = a.iter().map(|x| x.as_f64().map(|x| x as f32)).collect();
                v.filter(|v| v.iter().all(|x| x.is_finite()))
            })
            .map_or([1.0; 4], |v| [v[0], v[1], v[2], v[3]])
    }

    /// Reads accessor `index` whose element has one of `allowed` component counts.
    fn accessor(&self, index: &Value, allowed: &[usize], what: &str) -> Result<Values, GlbError> {
        let acc = self.item("accessors", index, what)?;
        let bad = |reason: String| self.invalid(format!("{what} (accessors[{index}]): {reason}"));
        if acc.get("sparse").is_some() {
            return Err(self.unsupported(format!(
                "{what} (accessors[{index}]) is sparse: sparse accessors are not read"
            )));
        }
        let components = match acc.get("type").and_then(Value::as_str) {
            Some("SCALAR") => 1,
            Some("VEC2") => 2,
            Some("VEC3") => 3,
            Some("VEC4") => 4,
            Some("MAT2") => 4,
            Some("MAT3") => 9,
            Some("MAT4") => 16,
            other => return Err(bad(format!("bad type {other:?}"))),
        };
        if !allowed.contains(&components) {
            return Err(bad(format!(
                "{components} components per element, expected {}",
                allowed
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        let ct = acc.get("componentType").and_then(Value::as_u64);
        let size = match ct {
            Some(5120 | 5121) => 1,
            Some(5122 | 5123) => 2,
            Some(5125 | 5126) => 4,
            _ => return Err(bad(format!("bad componentType {ct:?}"))),
        };
        let normalized = acc
            .get("normalized")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let count = acc
            .get("count")
            .and_then(Value::as_u64)
            .and_then(|c| usize::try_from(c).ok())
            .ok_or_else(|| bad("count is missing or not a whole number".into()))?;
        let Some(view_index) = acc.get("bufferView") else {
            // No view: all zeros (glTF 2.0 §3.6.2.3); bounded like any other data.
            if count.saturating_mul(components) > MAX_READ_VERTICES.saturating_mul(4) {
                return Err(bad(format!("count {count} is too large")));
            }
            return Ok(Values {
                data: vec![0.0; count * components],
                components,
            });
        };
        let view = self.item("bufferViews", view_index, what)?;
        let get = |key: &str| view.get(key).and_then(Value::as_u64);
        let buffer = view.get("buffer").cloned().unwrap_or(Value::Null);
        let buf = self.item("buffers", &buffer, &format!("bufferViews[{view_index}]"))?;
        if buf.get("uri").is_some() {
            return Err(self.unsupported(format!(
                "buffers[{buffer}] has a uri (an external file or base64 data): only the GLB's \
                 own binary chunk is read"
            )));
        }
        if buffer.as_u64() != Some(0) {
            return Err(bad(format!(
                "buffers[{buffer}] has no uri but is not buffer 0 (the binary chunk)"
            )));
        }
        let to_usize = |v: Option<u64>| v.and_then(|v| usize::try_from(v).ok());
        let view_offset = to_usize(get("byteOffset").or(Some(0)))
            .ok_or_else(|| bad("bufferView byteOffset is not a whole number".into()))?;
        let view_len = to_usize(get("byteLength"))
            .ok_or_else(|| bad("bufferView byteLength is missing".into()))?;
        let view_end = view_offset
            .checked_add(view_len)
            .filter(|&e| e <= self.bin.len())
            .ok_or_else(|| {
                bad(format!(
                    "bufferViews[{view_index}] (bytes {view_offset}+{view_len}) runs past the \
                     binary chunk ({} bytes)",
                    self.bin.len()
                ))
            })?;
        let data = &self.bin[view_offset..view_end];
        let elem = size * components;
        let stride = match get("byteStride") {
            Some(s) => to_usize(Some(s))
                .filter(|&s| s >= elem && s <= 252)
                .ok_or_else(|| {
                    bad(format!(
                        "byteStride {s} is smaller than an element ({elem} bytes) or over 252"
                    ))
                })?,
            None => elem,
        };
        let offset = to_usize(acc.get("byteOffset").and_then(Value::as_u64).or(Some(0)))
            .ok_or_else(|| bad("byteOffset is not a whole number".into()))?;
        if count > 0 {
            let needed = (count - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(offset))
                .and_then(|v| v.checked_add(elem));
            if needed.is_none_or(|n| n > data.len()) {
                return Err(bad(format!(
                    "{count} elements of {elem} bytes (stride {stride}, offset {offset}) do not fit \
                     bufferViews[{view_index}] ({} bytes)",
                    data.len()
                )));
            }
        }
        let mut out = Vec::with_capacity(count * components);
        for i in 0..count {
            let base = offset + i * stride;
            for k in 0..components {
                let at = base + k * size;
                let b = &data[at..at + size];
                out.push(component(ct.unwrap_or(0), b, normalized));
            }
        }
        Ok(Values {
            data: out,
            components,
        })
    }
}

/// One component, normalising integers when `normalized` (glTF 2.0 §3.11).
fn component(ct: u64, b: &[u8], normalized: bool) -> f64 {
    match ct {
        5120 => {
            let v = f64::from(b[0] as i8);
            if normalized { (v / 127.0).max(-1.0) } else { v }
        }
        5121 => {
            let v = f64::from(b[0]);
            if normalized { v / 255.0 } else { v }
        }
        5122 => {
            let v = f64::from(i16::from_le_bytes([b[0], b[1]]));
            if normalized {
                (v / 32767.0).max(-1.0)
            } else {
                v
            }
        }
        5123 => {
            let v = f64::from(u16::from_le_bytes([b[0], b[1]]));
            if normalized { v / 65535.0 } else { v }
        }
        5125 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        _ => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    }
}

fn vec3(c: &[f64]) -> [f32; 3] {
    [c[0] as f32, c[1] as f32, c[2] as f32]
}

fn strip_to_list(s: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    for i in 0..s.len().saturating_sub(2) {
        if i % 2 == 0 {
            out.extend([s[i], s[i + 1], s[i + 2]]);
        } else {
            out.extend([s[i + 1], s[i], s[i + 2]]);
        }
    }
    out
}

fn fan_to_list(s: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    for i in 1..s.len().saturating_sub(1) {
        out.extend([s[0], s[i], s[i + 1]]);
    }
    out
}

fn mul(a: &Mat4, b: &Mat4) -> Mat4 {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..4).map(|k| a[r][k] * b[k][c]).sum()))
}

/// Applies `m` to positions and (by the inverse transpose) normals; a mirroring transform flips
/// the winding so triangles stay counter-clockwise seen from outside.
fn transform_part(part: &mut MeshPart, m: &Mat4) {
    if *m == IDENTITY {
        return;
    }
    for p in &mut part.positions {
        let v = p.map(f64::from);
        *p = std::array::from_fn(|r| {
            (m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2] + m[r][3]) as f32
        });
    }
    // Cofactor matrix = det · inverse transpose: the right direction for normals whatever det is.
    let a = |r: usize, c: usize| m[r][c];
    let cof = [
        [
            a(1, 1) * a(2, 2) - a(1, 2) * a(2, 1),
            a(1, 2) * a(2, 0) - a(1, 0) * a(2, 2),
            a(1, 0) * a(2, 1) - a(1, 1) * a(2, 0),
        ],
        [
            a(0, 2) * a(2, 1) - a(0, 1) * a(2, 2),
            a(0, 0) * a(2, 2) - a(0, 2) * a(2, 0),
            a(0, 1) * a(2, 0) - a(0, 0) * a(2, 1),
        ],
        [
            a(0, 1) * a(1, 2) - a(0, 2) * a(1, 1),
            a(0, 2) * a(1, 0) - a(0, 0) * a(1, 2),
            a(0, 0) * a(1, 1) - a(0, 1) * a(1, 0),
        ],
    ];
    let det = a(0, 0) * cof[0][0] + a(0, 1) * cof[0][1] + a(0, 2) * cof[0][2];
    let sign = if det < 0.0 { -1.0 } else { 1.0 };
    for n in &mut part.normals {
        let v = n.map(f64::from);
        let t: [f32; 3] = std::array::from_fn(|r| {
            (sign * (cof[r][0] * v[0] + cof[r][1] * v[1] + cof[r][2] * v[2])) as f32
        });
        *n = unit_or_z(t);
    }
    if det < 0.0 {
        for t in part.indices.chunks_exact_mut(3) {
            t.swap(1, 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triangle(name: &str, alpha: f32) -> MeshPart {
        MeshPart {
            name: name.into(),
            positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            normals: vec![[0.0, 0.0, 2.0]; 3],
            colors: vec![[1.0, 0.5, 0.0, alpha]; 3],
            indices: vec![0, 1, 2],
        }
    }

    #[test]
    fn layout_is_aligned_and_round_trips() {
        let mesh = Mesh {
            parts: vec![
                triangle("a", 1.0),
                MeshPart {
                    name: "empty".into(),
                    ..Default::default()
                },
                triangle("b", 0.5),
            ],
        };
        let bytes = glb_bytes(&mesh).unwrap();
        assert_eq!(&bytes[0..4], b"glTF");
        assert_eq!(u32_at(&bytes, 8), Some(bytes.len() as u32));
        assert!(bytes.len().is_multiple_of(4));
        let (json, bin) = split_chunks(&bytes).unwrap();
        assert!(json.len().is_multiple_of(4) && bin.len().is_multiple_of(4));
        let root: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(root["asset"]["generator"], "vecdream");
        assert_eq!(root["scenes"][0]["nodes"], json!([0, 1, 2]));
        assert_eq!(root["nodes"][1], json!({ "name": "empty" }));
        assert_eq!(root["materials"].as_array().unwrap().len(), 2);
        assert_eq!(root["accessors"][0]["max"], json!([1.0, 1.0, 0.0]));
        let back = read_glb_bytes(&bytes, "mem.glb").unwrap();
        // The empty part has no mesh and is not read back.
        assert_eq!(back.parts.len(), 2);
        assert_eq!(back.parts[0].positions, mesh.parts[0].positions);
        assert_eq!(
            back.parts[0].normals,
            vec![[0.0, 0.0, 1.0]; 3],
            "normals renormalised"
        );
        assert_eq!(back.parts[1].name, "b");
        assert_eq!(back.parts[1].colors, mesh.parts[2].colors);
    }

    #[test]
    fn empty_mesh_is_a_valid_file() {
        let bytes = glb_bytes(&Mesh::default()).unwrap();
        assert_eq!(read_glb_bytes(&bytes, "e.glb").unwrap(), Mesh::default());
    }

    #[test]
    fn malformed_mesh_is_refused_by_name() {
        let mut t = triangle("broken", 1.0);
        t.indices.push(7);
        let e = glb_bytes(&Mesh { parts: vec![t] }).unwrap_err().to_string();
        assert!(e.contains("broken"), "{e}");
    }

    /// A hand-made GLB in the style other tools write: a node tree with a TRS transform, u16
    /// indices, normalised u8 COLOR_0 VEC3 with a byte stride, no normals.
    #[test]
    fn reads_plain_gltf_with_transforms_u16_indices_and_u8_colours() {
        let mut bin = Vec::new();
        for p in [[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] {
            bin.extend(p.iter().flat_map(|v| v.to_le_bytes()));
        }
        // Colours: 3 bytes + 1 padding byte each (stride 4).
        for c in [[255u8, 0, 0], [0, 255, 0], [0, 0, 255]] {
            bin.extend(c);
            bin.push(0);
        }
        for i in [0u16, 1, 2, 0] {
            bin.extend(i.to_le_bytes()); // last one is padding
        }
        let json = json!({
            "asset": { "version": "2.0" },
            "scene": 0,
            "scenes": [{ "nodes": [0] }],
            "nodes": [
                { "name": "parent", "translation": [0.0, 0.0, 5.0], "children": [1] },
                { "name": "child", "mesh": 0, "scale": [2.0, 2.0, -1.0] }
            ],
            "meshes": [{ "primitives": [{ "attributes": { "POSITION": 0, "COLOR_0": 1 }, "indices": 2 }] }],
            "accessors": [
                { "bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3" },
                { "bufferView": 1, "componentType": 5121, "normalized": true, "count": 3, "type": "VEC3" },
                { "bufferView": 2, "componentType": 5123, "count": 3, "type": "SCALAR" }
            ],
            "bufferViews": [
                { "buffer": 0, "byteOffset": 0, "byteLength": 36 },
                { "buffer": 0, "byteOffset": 36, "byteLength": 12, "byteStride": 4 },
                { "buffer": 0, "byteOffset": 48, "byteLength": 6 }
            ],
            "buffers": [{ "byteLength": bin.len() }]
        });
        let bytes = container(&serde_json::to_vec(&json).unwrap(), &bin);
        let mesh = read_glb_bytes(&bytes, "plain.glb").unwrap();
        let p = &mesh.parts[0];
        assert_eq!(p.name, "child");
        assert_eq!(p.positions[1], [2.0, 0.0, 5.0]);
        assert_eq!(p.colors[1], [0.0, 1.0, 0.0, 1.0]);
        // The mirror (scale z = −1) flips the winding so the triangle stays counter-clockwise
        // seen from the side its normal points to (−z now).
        assert_eq!(p.indices, vec![0, 2, 1]);
        assert_eq!(p.normals[0], [0.0, 0.0, -1.0]);
    }

    fn container(json: &[u8], bin: &[u8]) -> Vec<u8> {
        let mut j = json.to_vec();
        while !j.len().is_multiple_of(4) {
            j.push(b' ');
        }
        let mut b = bin.to_vec();
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(b"glTF");
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&((12 + 8 + j.len() + 8 + b.len()) as u32).to_le_bytes());
        out.extend_from_slice(&(j.len() as u32).to_le_bytes());
        out.extend_from_slice(&CHUNK_JSON.to_le_bytes());
        out.extend_from_slice(&j);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&CHUNK_BIN.to_le_bytes());
        out.extend_from_slice(&b);
        out
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |b: &[u8]| read_glb_bytes(b, "x.glb").unwrap_err().to_string();
        assert!(err(b"glTF").contains("too short"));
        let e = err(b"GIF89a\0\0\0\0\0\0\0\0");
        assert!(e.contains("x.glb") && e.contains("bad magic"), "{e}");
        let good = glb_bytes(&Mesh {
            parts: vec![triangle("t", 1.0)],
        })
        .unwrap();
        let e = err(&good[..good.len() - 4]);
        assert!(e.contains("truncated"), "{e}");
        let json = json!({ "asset": { "version": "2.0" }, "meshes": [{ "primitives": [{ "attributes": {} }] }] });
        let e = err(&container(&serde_json::to_vec(&json).unwrap(), &[]));
        assert!(e.contains("no POSITION accessor"), "{e}");
        let json = json!({ "asset": { "version": "2.0" }, "meshes": [{ "primitives": [{ "attributes": { "POSITION": 3 } }] }] });
        let e = err(&container(&serde_json::to_vec(&json).unwrap(), &[]));
        assert!(e.contains("missing accessors[3]"), "{e}");
        let json = json!({ "asset": { "version": "2.0" }, "extensionsRequired": ["KHR_draco_mesh_compression"] });
        let e = err(&container(&serde_json::to_vec(&json).unwrap(), &[]));
        assert!(
            e.contains("KHR_draco_mesh_compression") && e.contains("unsupported"),
            "{e}"
        );
    }
}
