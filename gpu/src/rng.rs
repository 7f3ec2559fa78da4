//! Deterministic, platform-independent random numbers (optimisation loop, sampling noise).
//!
//! libtorch's global generator is shared by every thread of the process (tests run in parallel, the
//! worker runs beside the UI), so the loop draws its noise, timesteps and particle subsets from this
//! small counter-seeded generator instead and uploads the numbers. A step's stream is a pure
//! function of `(seed, stream, step)`: a run resumed from a checkpoint at step k draws exactly what
//! the uninterrupted run drew.

use tch::{Device, Tensor};

/// SplitMix64 (Steele, Lea & Flood 2014): 64 bits of state, passes BigCrush, trivially seedable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The generator of one step of one stream (noise, timesteps, subsets, …) of a run.
    pub fn for_step(seed: u64, stream: u64, step: u64) -> Self {
        let mut r = Self::new(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        let a = r.next_u64();
        Self::new(a ^ step.wrapping_mul(0xE703_7ED1_A0B4_28DB))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `lo..=hi` (`lo` when `hi < lo`).
    pub fn int_in(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A float32 tensor of standard normals with `shape`, on `device`.
    pub fn normal_tensor(&mut self, shape: &[i64], device: Device) -> Tensor {
        let n: i64 = shape.iter().product();
        let mut v = Vec::with_capacity(n.max(0) as usize);
        // Both Box–Muller outputs are used: half the transcendental calls.
        while (v.len() as i64) < n {
            let u1 = 1.0 - self.uniform();
            let u2 = self.uniform();
            let r = (-2.0 * u1.ln()).sqrt();
            let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
            v.push((r * c) as f32);
            if (v.len() as i64) < n {
                v.push((r * s) as f32);
            }
        }
        Tensor::from_slice(&v).view(shape).to_device(device)
    }

    /// A float32 tensor uniform in `[0, 1)` with `shape`, on `device`.
    pub fn uniform_tensor(&mut self, shape: &[i64], device: Device) -> Tensor {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n.max(0)).map(|_| self.uniform() as f32).collect();
        Tensor::from_slice(&v).view(shape).to_device(device)
    }

    /// `k` distinct indices out of `0..n`, in increasing order (all of them when `k ≥ n`).
    pub fn subset(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        let k = k.min(n);
        for i in 0..k {
            let j = i + (self.next_u64() % (n - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(k);
        idx.sort_unstable();
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_step(7, 1, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::for_step(7, 1, 3).next_u64(),
            Rng::for_step(7, 1, 4).next_u64()
        );
        assert_ne!(
            Rng::for_step(7, 1, 3).next_u64(),
            Rng::for_step(7, 2, 3).next_u64()
        );
    }

    #[test]
    fn rng_normals_have_unit_moments() {
        let mut r = Rng::new(1);
        let t = r.normal_tensor(&[20_000], Device::Cpu);
        let mean = t.mean(tch::Kind::Float).double_value(&[]);
        let var = t.var(true).double_value(&[]);
        // Standard error of the mean is 1/sqrt(20000) ≈ 0.007; of the variance ≈ 0.01.
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn rng_subset_is_sorted_and_distinct() {
        let mut r = Rng::new(3);
        for _ in 0..50 {
            let s = r.subset(6, 4);
            assert_eq!(s.len(), 4);
            assert!(s.windows(2).all(|w| w[0] < w[1]) && s[3] < 6);
        }
        assert_eq!(r.subset(3, 5), vec![0, 1, 2]);
    }
}
