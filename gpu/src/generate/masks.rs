//! Object masks from cross-attention (SVGDreamer's semantic initialisation): each word's map is
//! upsampled to the image, normalised to `[0, 1]`, thresholded, opened (erode, then dilate) to
//! drop specks; a pixel claimed by several words goes to the one that attends to it most.
//! What no word claims is the background.

use tch::{Kind, Tensor};

/// Threshold on the normalised map (SVGDreamer: 0.3).
pub const ATTENTION_THRESHOLD: f32 = 0.3;

/// A map resized to `size × size` and normalised to `[0, 1]` (row-major).
pub fn normalised_map(map: &Tensor, size: usize) -> Vec<f32> {
    let m = map
        .to_kind(Kind::Float)
        .view([1, 1, map.size()[0], map.size()[1]])
        .upsample_bilinear2d([size as i64, size as i64], false, None, None)
        .flatten(0, -1);
    let v: Vec<f32> = Vec::try_from(m).unwrap_or_else(|_| vec![0.0; size * size]);
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let span = hi - lo;
    if !(span.is_finite() && span > 1e-12) {
        return vec![0.0; size * size];
    }
    v.iter().map(|&x| (x - lo) / span).collect()
}

/// Erosion (`grow = false`) or dilation with a square of radius `r`.
fn morph(mask: &[bool], size: usize, r: usize, grow: bool) -> Vec<bool> {
    if r == 0 {
        return mask.to_vec();
    }
    let r = r as isize;
    let n = size as isize;
    // Separable: rows, then columns.
    let pass = |m: &[bool], horizontal: bool| -> Vec<bool> {
        (0..size * size)
            .map(|i| {
                let (x, y) = ((i % size) as isize, (i / size) as isize);
                let mut hit = !grow;
                for d in -r..=r {
                    let (xx, yy) = if horizontal { (x + d, y) } else { (x, y + d) };
                    let v = if (0..n).contains(&xx) && (0..n).contains(&yy) {
                        m[(yy * n + xx) as usize]
                    } else {
                        false
                    };
                    if grow && v {
                        hit = true;
                        break;
                    }
                    if !grow && !v {
                        hit = false;
                        break;
                    }
                }
                hit
            })
            .collect()
    };
    pass(&pass(mask, true), false)
}

/// One mask per word (`size × size`), disjoint: a pixel belongs to the word whose normalised map
/// is highest there if that value is above [`ATTENTION_THRESHOLD`]; each mask is then opened
/// with a radius of `size / 48` px. Words whose mask ends empty keep their highest-attention
/// pixels (the top 2 %), so every word yields an object.
pub fn object_masks(maps: &[Tensor], size: usize) -> Vec<Vec<bool>> {
    let norm: Vec<Vec<f32>> = maps.iter().map(|m| normalised_map(m, size)).collect();
    let n = size * size;
    let r = (size / 48).max(1);
    let mut out = Vec::with_capacity(maps.len());
    for (k, mk) in norm.iter().enumerate() {
        let raw: Vec<bool> = (0..n)
            .map(|i| {
                mk[i] > ATTENTION_THRESHOLD
                    && norm
                        .iter()
                        .enumerate()
                        .all(|(j, mj)| j == k || mj[i] < mk[i] || (mj[i] == mk[i] && k < j))
            })
            .collect();
        let mut m = morph(&morph(&raw, size, r, false), size, r, true);
        if !m.iter().any(|&b| b) {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| mk[b].total_cmp(&mk[a]));
            m = vec![false; n];
            for &i in order.iter().take((n / 50).max(1)) {
                m[i] = true;
            }
        }
        out.push(m);
    }
    // Opening can re-grow into a neighbour: earlier words keep contested pixels.
    for k in 1..out.len() {
        for i in 0..n {
            if out[k][i] && out[..k].iter().any(|m| m[i]) {
                out[k][i] = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(size: i64, cx: f64, cy: f64) -> Tensor {
        let v: Vec<f32> = (0..size * size)
            .map(|i| {
                let (x, y) = ((i % size) as f64, (i / size) as f64);
                (-((x - cx).powi(2) + (y - cy).powi(2)) / 8.0).exp() as f32
            })
            .collect();
        Tensor::from_slice(&v).view([size, size])
    }

    #[test]
    fn two_attention_blobs_give_two_disjoint_masks_around_them() {
        let maps = [blob(16, 4.0, 4.0), blob(16, 11.0, 11.0)];
        let masks = object_masks(&maps, 64);
        assert_eq!(masks.len(), 2);
        let at = |m: &Vec<bool>, x: usize, y: usize| m[y * 64 + x];
        assert!(at(&masks[0], 17, 17) && !at(&masks[0], 46, 46));
        assert!(at(&masks[1], 46, 46) && !at(&masks[1], 17, 17));
        assert!((0..64 * 64).all(|i| !(masks[0][i] && masks[1][i])));
        assert!(
            !at(&masks[0], 63, 0) && !at(&masks[1], 63, 0),
            "a far corner is background"
        );
    }
}
