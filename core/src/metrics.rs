//! Image similarity metrics on RGBA8 buffers: PSNR and SSIM.

/// Peak signal-to-noise ratio in dB over all bytes of two equally sized 8-bit buffers
/// (`+inf` when identical). `None` if the lengths differ or the buffers are empty.
pub fn psnr(a: &[u8], b: &[u8]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let sse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum();
    let mse = sse / a.len() as f64;
    Some(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    })
}

/// Composites straight RGBA8 pixels over an opaque background colour and returns RGB8.
/// Comparing composites avoids counting the (invisible) colour of transparent pixels.
pub fn composite_rgb(rgba: &[u8], background: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = f64::from(px[3]) / 255.0;
        for c in 0..3 {
            let v = f64::from(px[c]) * a + f64::from(background[c]) * (1.0 - a);
            out.push(v.round().clamp(0.0, 255.0) as u8);
        }
    }
    out
}

/// Mean structural similarity of the luma of two RGB8 images of `width`×`height`, over
/// non-overlapping 8×8 windows (constants of Wang et al. 2004: K1 = 0.01, K2 = 0.03).
/// `None` if the sizes do not match or the image is smaller than one window.
pub fn ssim_rgb(a: &[u8], b: &[u8], width: usize, height: usize) -> Option<f64> {
    const WIN: usize = 8;
    if a.len() != width * height * 3 || b.len() != a.len() || width < WIN || height < WIN {
        return None;
    }
    let luma = |img: &[u8], x: usize, y: usize| {
        let i = (y * width + x) * 3;
        0.299 * f64::from(img[i]) + 0.587 * f64::from(img[i + 1]) + 0.114 * f64::from(img[i + 2])
    };
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let n = (WIN * WIN) as f64;
    let mut total = 0.0;
    let mut count = 0usize;
    for wy in (0..=height - WIN).step_by(WIN) {
        for wx in (0..=width - WIN).step_by(WIN) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in wy..wy + WIN {
                for x in wx..wx + WIN {
                    let (p, q) = (luma(a, x, y), luma(b, x, y));
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let (ma, mb) = (sa / n, sb / n);
            let (va, vb) = (saa / n - ma * ma, sbb / n - mb * mb);
            let cov = sab / n - ma * mb;
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    Some(total / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_uniform_error_matches_closed_form() {
        let a = vec![100u8; 64];
        for d in [1u8, 5, 20] {
            let b = vec![100 + d; 64];
            let want = 20.0 * (255.0 / f64::from(d)).log10();
            let got = psnr(&a, &b).unwrap();
            assert!((got - want).abs() < 1e-9, "d {d}: wanted {want} got {got}");
        }
        assert_eq!(psnr(&a, &a), Some(f64::INFINITY));
        assert_eq!(psnr(&a, &a[1..]), None);
    }

    #[test]
    fn ssim_is_one_for_identical_and_lower_for_noise() {
        let (w, h) = (16, 16);
        let a: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        assert!((ssim_rgb(&a, &a, w, h).unwrap() - 1.0).abs() < 1e-12);
        let b: Vec<u8> = a
            .iter()
            .enumerate()
            .map(|(i, v)| v.wrapping_add((i * 13 % 40) as u8))
            .collect();
        assert!(ssim_rgb(&a, &b, w, h).unwrap() < 0.99);
    }

    #[test]
    fn composite_over_white_of_transparent_is_white() {
        assert_eq!(
            composite_rgb(&[10, 20, 30, 0, 10, 20, 30, 255], [255; 3]),
            vec![255, 255, 255, 10, 20, 30]
        );
    }
}
