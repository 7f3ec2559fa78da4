//! Streaming safetensors loader: copies each tensor straight into a `VarStore`, one at a time.
//!
//! tch's `VarStore::load` reads the whole file into memory and then converts every tensor before
//! copying it, so it peaks at about 3× the weights' size (variables + file bytes + converted
//! tensors). This loader parses the safetensors header itself and reads one tensor's bytes at a time,
//! so the peak is the variables plus the largest single tensor (measured in the module README:
//! `gpu/tests/sd_load_ram.rs`). It also accepts the key-name variants of hub checkpoints through a
//! renaming function, checks shapes and dtypes, and names the file and key in every error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::{Kind, Tensor, nn::VarStore};

use super::{Result, SdError};

#[derive(Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<i64>,
    data_offsets: [u64; 2],
}

/// One tensor entry of a safetensors header.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// The key in the file.
    pub name: String,
    /// The dtype string (`F16`, `F32`, …).
    pub dtype: String,
    /// The shape.
    pub shape: Vec<i64>,
    /// Byte range, relative to the start of the data section.
    pub start: u64,
    /// End of the byte range.
    pub end: u64,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> SdError + '_ {
    move |source| SdError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn malformed(path: &Path, message: impl Into<String>) -> SdError {
    SdError::Safetensors {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads the header of a safetensors file: its tensors and the byte offset of the data section.
pub fn read_header(path: &Path) -> Result<(Vec<TensorInfo>, u64)> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let file_len = f.metadata().map_err(io_err(path))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(io_err(path))?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 || 8 + n > file_len {
        return Err(malformed(
            path,
            format!("header length {n} does not fit the file ({file_len} bytes)"),
        ));
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf).map_err(io_err(path))?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&buf).map_err(|e| SdError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let data_start = 8 + n;
    let mut out = Vec::with_capacity(raw.len());
    for (name, v) in raw {
        if name == "__metadata__" {
            continue;
        }
        let e: HeaderEntry = serde_json::from_value(v).map_err(|e| SdError::Json {
            path: path.to_path_buf(),
            message: format!("entry `{name}`: {e}"),
        })?;
        let [start, end] = e.data_offsets;
        // Checked: a hostile header may give negative or huge dimensions.
        let bytes = e
            .shape
            .iter()
            .try_fold(dtype_size(&e.dtype).unwrap_or(1) as u64, |acc, &d| {
                u64::try_from(d).ok().and_then(|d| acc.checked_mul(d))
            });
        if end < start
            || data_start.checked_add(end).is_none_or(|e| e > file_len)
            || bytes != Some(end - start)
        {
            return Err(malformed(
                path,
                format!("tensor `{name}`: data offsets {start}..{end} are inconsistent"),
            ));
        }
        out.push(TensorInfo {
            name,
            dtype: e.dtype,
            shape: e.shape,
            start,
            end,
        });
    }
    out.sort_by_key(|t| t.start);
    Ok((out, data_start))
}

fn dtype_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "F16" | "BF16" => 2,
        "F32" => 4,
        "F64" => 8,
        "I64" | "U64" => 8,
        "I32" | "U32" => 4,
        "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" => 1,
        _ => return None,
    })
}

fn float_kind(dtype: &str) -> Option<Kind> {
    Some(match dtype {
        "F16" => Kind::Half,
        "BF16" => Kind::BFloat16,
        "F32" => Kind::Float,
        "F64" => Kind::Double,
        _ => return None,
    })
}

/// Reads a whole safetensors file into CPU tensors (for small files: LoRA weights, golden tensors).
pub fn read_all(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let (infos, data_start) = read_header(path)?;
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut out = Vec::with_capacity(infos.len());
    for info in infos {
        let kind = match info.dtype.as_str() {
            "I64" => Kind::Int64,
            "I32" => Kind::Int,
            "U8" => Kind::Uint8,
            "BOOL" => Kind::Bool,
            d => float_kind(d).ok_or_else(|| SdError::DType {
                path: path.to_path_buf(),
                key: info.name.clone(),
                found: info.dtype.clone(),
            })?,
        };
        let t = read_tensor(&mut f, path, &info, data_start, kind)?;
        out.push((info.name, t));
    }
    Ok(out)
}

fn read_tensor(
    f: &mut File,
    path: &Path,
    info: &TensorInfo,
    data_start: u64,
    kind: Kind,
) -> Result<Tensor> {
    let mut bytes = vec![0u8; (info.end - info.start) as usize];
    f.seek(SeekFrom::Start(data_start + info.start))
        .map_err(io_err(path))?;
    f.read_exact(&mut bytes).map_err(io_err(path))?;
    Ok(Tensor::f_from_data_size(&bytes, &info.shape, kind)?)
}

/// Finds the weights of one diffusers sub-model: `stem.safetensors`, `stem.fp16.safetensors`, or a
/// sharded `stem.safetensors.index.json`. Returns every file to read.
pub fn find_weights(dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    for name in [
        format!("{stem}.safetensors"),
        format!("{stem}.fp16.safetensors"),
    ] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(vec![p]);
        }
    }
    for name in [
        format!("{stem}.safetensors.index.json"),
        format!("{stem}.safetensors.index.fp16.json"),
    ] {
        let p = dir.join(&name);
        if p.is_file() {
            #[derive(Deserialize)]
            struct Index {
                weight_map: BTreeMap<String, String>,
            }
            let idx: Index = super::config::read_json(&p)?;
            let files: HashSet<&String> = idx.weight_map.values().collect();
            let mut files: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
            files.sort();
            return Ok(files);
        }
    }
    let pickle = dir.join(format!("{stem}.bin"));
    if pickle.is_file() {
        return Err(SdError::UnsupportedWeights {
            path: pickle,
            message: "pickle weights are not read; save the model with safe_serialization=True"
                .into(),
        });
    }
    Err(SdError::Io {
        path: dir.join(format!("{stem}.safetensors")),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
    })
}

/// Loads `files` into the variables of `vs`, mapping each file key through `rename` first
/// (return `None` to skip a key). Converts dtypes to each variable's kind and device; accepts a
/// `(o, i, 1, 1)` tensor for an `(o, i)` variable (old 1×1-conv attention weights). Fails on the
/// first shape or dtype mismatch, or when a variable is in none of the files.
pub fn load_var_store(
    vs: &VarStore,
    files: &[PathBuf],
    rename: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    load_var_store_checked(vs, files, rename, false)
}

/// [`load_var_store`], and with `strict` also fails when a file holds a tensor that is not a
/// variable of `vs` ([`SdError::UnexpectedTensor`]; `*.position_ids` buffers of older text-encoder
/// saves are allowed). Used for whole models, whose files must match their config exactly.
pub fn load_var_store_checked(
    vs: &VarStore,
    files: &[PathBuf],
    rename: &dyn Fn(&str) -> Option<String>,
    strict: bool,
) -> Result<()> {
    let vars: HashMap<String, Tensor> = vs.variables();
    let mut loaded: HashSet<String> = HashSet::new();
    let _guard = tch::no_grad_guard();
    for path in files {
        let (infos, data_start) = read_header(path)?;
        if strict {
            let unexpected: Vec<&String> = infos
                .iter()
                .map(|i| &i.name)
                .filter(|n| !n.ends_with("position_ids"))
                .filter(|n| rename(n).is_some_and(|k| !vars.contains_key(&k)))
                .collect();
            if let Some(first) = unexpected.iter().min() {
                return Err(SdError::UnexpectedTensor {
                    path: path.clone(),
                    key: (*first).clone(),
                    count: unexpected.len(),
                });
            }
        }
        let mut f = File::open(path).map_err(io_err(path))?;
        for info in &infos {
            let Some(key) = rename(&info.name) else {
                continue;
            };
            let Some(var) = vars.get(&key) else { continue };
            let kind = float_kind(&info.dtype).ok_or_else(|| SdError::DType {
                path: path.clone(),
                key: info.name.clone(),
                found: info.dtype.clone(),
            })?;
            let expected = var.size();
            let numel: i64 = info.shape.iter().product();
            let squeezable = info.shape.len() == expected.len() + 2
                && info.shape[expected.len()..].iter().all(|&d| d == 1)
                && info.shape[..expected.len()] == expected[..];
            if info.shape != expected && !squeezable {
                return Err(SdError::Shape {
                    path: path.clone(),
                    key: info.name.clone(),
                    expected,
                    found: info.shape.clone(),
                });
            }
            let t = read_tensor(&mut f, path, info, data_start, kind)?;
            debug_assert_eq!(t.numel() as i64, numel);
            var.shallow_clone().f_copy_(&t.reshape(&expected))?;
            loaded.insert(key);
        }
    }
    let missing: Vec<&String> = vars.keys().filter(|k| !loaded.contains(*k)).collect();
    if let Some(first) = missing.iter().min() {
        return Err(SdError::MissingTensor {
            path: files.first().cloned().unwrap_or_default(),
            key: (*first).clone(),
            count: missing.len(),
        });
    }
    Ok(())
}

/// Key renaming for the text encoder: strips transformers' `text_model.` prefix.
pub fn rename_text_encoder(key: &str) -> Option<String> {
    Some(key.strip_prefix("text_model.").unwrap_or(key).to_string())
}

/// Key renaming for the VAE: maps the legacy mid-block attention names
/// (`query`, `key`, `value`, `proj_attn`) to `to_q`, `to_k`, `to_v`, `to_out.0`.
pub fn rename_vae(key: &str) -> Option<String> {
    if !key.contains("mid_block.attentions.") {
        return Some(key.to_string());
    }
    let mut parts: Vec<&str> = key.split('.').collect();
    let n = parts.len();
    if n >= 2 {
        let new = match parts[n - 2] {
            "query" => Some("to_q"),
            "key" => Some("to_k"),
            "value" => Some("to_v"),
            "proj_attn" => Some("to_out.0"),
            _ => None,
        };
        if let Some(new) = new {
            parts[n - 2] = new;
        }
    }
    Some(parts.join("."))
}

/// Identity renaming (UNet keys are the same in every diffusers save).
pub fn rename_identity(key: &str) -> Option<String> {
    Some(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_vae_maps_legacy_attention_names() {
        assert_eq!(
            rename_vae("encoder.mid_block.attentions.0.proj_attn.weight").as_deref(),
            Some("encoder.mid_block.attentions.0.to_out.0.weight")
        );
        assert_eq!(
            rename_vae("decoder.mid_block.attentions.0.key.bias").as_deref(),
            Some("decoder.mid_block.attentions.0.to_k.bias")
        );
        assert_eq!(
            rename_vae("decoder.up_blocks.0.resnets.0.conv1.weight").as_deref(),
            Some("decoder.up_blocks.0.resnets.0.conv1.weight")
        );
    }

    #[test]
    fn rename_text_encoder_strips_prefix() {
        assert_eq!(
            rename_text_encoder("text_model.final_layer_norm.weight").as_deref(),
            Some("final_layer_norm.weight")
        );
        assert_eq!(
            rename_text_encoder("final_layer_norm.bias").as_deref(),
            Some("final_layer_norm.bias")
        );
    }
}
