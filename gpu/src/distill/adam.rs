//! Adam / AdamW written on plain tensors, with exact masks: a masked entry gets no gradient, no
//! moment update and keeps its value bit for bit.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Adam's hyper-parameters (SVGDreamer's shape optimiser by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂ (0.9 in SVGDreamer, not the usual 0.999).
    pub beta2: f64,
    /// ε added to √v̂.
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 for plain Adam.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
        }
    }
}

/// One parameter tensor's optimiser state.
#[derive(Debug)]
struct Slot {
    m: Tensor,
    v: Tensor,
    /// Broadcastable boolean mask of trainable entries (`None`: all).
    mask: Option<Tensor>,
}

/// Adam over a fixed list of parameter tensors, each with its own mask and learning rate.
#[derive(Debug)]
pub struct MaskedAdam {
    /// Hyper-parameters.
    pub config: AdamConfig,
    /// Number of updates done (for bias correction).
    pub t: i64,
    slots: Vec<Slot>,
}

impl MaskedAdam {
    /// State for `params` (zero moments); `masks[i]` must broadcast to `params[i]`.
    pub fn new(config: AdamConfig, params: &[&Tensor], masks: Vec<Option<Tensor>>) -> Self {
        let slots = params
            .iter()
            .zip(masks.into_iter().chain(std::iter::repeat_with(|| None)))
            .map(|(p, mask)| Slot {
                m: p.detach().zeros_like(),
                v: p.detach().zeros_like(),
                mask,
            })
            .collect();
        Self {
            config,
            t: 0,
            slots,
        }
    }

    /// Replaces the mask of parameter `i`.
    pub fn set_mask(&mut self, i: usize, mask: Option<Tensor>) {
        if let Some(s) = self.slots.get_mut(i) {
            s.mask = mask;
        }
    }

    /// The moments, for checkpoints: `(m, v)` per parameter.
    pub fn moments(&self) -> Vec<(&Tensor, &Tensor)> {
        self.slots.iter().map(|s| (&s.m, &s.v)).collect()
    }

    /// Overwrites the moments (shapes must match).
    pub fn set_moments(&mut self, moments: Vec<(Tensor, Tensor)>) {
        for (s, (m, v)) in self.slots.iter_mut().zip(moments) {
            s.m = m.to_device(s.m.device()).to_kind(s.m.kind());
            s.v = v.to_device(s.v.device()).to_kind(s.v.kind());
        }
    }

    /// Deep copy of the state (to restore after a bad step).
    pub fn snapshot(&self) -> (i64, Vec<(Tensor, Tensor)>) {
        (
            self.t,
            self.slots
                .iter()
                .map(|s| (s.m.copy(), s.v.copy()))
                .collect(),
        )
    }

    /// Restores a [`MaskedAdam::snapshot`].
    pub fn restore(&mut self, snap: (i64, Vec<(Tensor, Tensor)>)) {
        self.t = snap.0;
        self.set_moments(snap.1);
    }

    /// Whether every gradient of `params` is finite (undefined gradients count as finite).
    pub fn grads_finite(params: &[&Tensor]) -> bool {
        params.iter().all(|p| {
            let g = p.grad();
            !g.defined() || g.isfinite().all().int64_value(&[]) != 0
        })
    }

    /// One update of every parameter with its gradient (`p.grad()`), learning rate `lrs[i]`
    /// (0 or a missing gradient: the parameter and its moments stay as they are).
    pub fn step(&mut self, params: &[&Tensor], lrs: &[f64]) {
        let _guard = tch::no_grad_guard();
        self.t += 1;
        let c = self.config.clone();
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for ((p, s), &lr) in params.iter().zip(self.slots.iter_mut()).zip(lrs) {
            let g = p.grad();
            if !g.defined() || lr == 0.0 {
                continue;
            }
            let g = match &s.mask {
                Some(mask) => g.zeros_like().where_self(&mask.logical_not(), &g),
                None => g,
            };
            s.m *= c.beta1;
            s.m += &g * (1.0 - c.beta1);
            s.v *= c.beta2;
            s.v += g.square() * (1.0 - c.beta2);
            let denom = (&s.v / bc2).sqrt() + c.eps;
            let mut new = p.detach() - (&s.m / bc1) / denom * lr;
            if c.weight_decay != 0.0 {
                new -= p.detach() * (lr * c.weight_decay);
            }
            let new = match &s.mask {
                Some(mask) => new.where_self(mask, &p.detach()),
                None => new,
            };
            let mut pd = p.detach();
            pd.copy_(&new);
        }
    }
}

/// Zeroes the gradients of `params`.
pub(crate) fn zero_grads(params: &[&Tensor]) {
    for p in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

/// `true` where `mask` is set, as a bool tensor of `shape` (for broadcasting).
pub(crate) fn bool_mask(mask: &[bool], shape: &[i64], device: tch::Device) -> Tensor {
    let v: Vec<u8> = mask.iter().map(|&b| u8::from(b)).collect();
    Tensor::from_slice(&v)
        .to_kind(Kind::Bool)
        .view(shape)
        .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn masked_adam_first_step_is_lr_times_sign_and_masked_entries_stay() {
        let p = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).set_requires_grad(true);
        let mask = bool_mask(&[true, false, true], &[3], Device::Cpu);
        let mut adam = MaskedAdam::new(AdamConfig::default(), &[&p], vec![Some(mask)]);
        let loss = (&p * Tensor::from_slice(&[2.0f32, 5.0, -4.0])).sum(Kind::Float);
        loss.backward();
        adam.step(&[&p], &[0.1]);
        let v: Vec<f32> = Vec::try_from(p.detach()).unwrap();
        // Step 1 of Adam: m̂/√v̂ = sign(g) (up to ε), so p moves by lr against the gradient.
        assert!((v[0] - 0.9).abs() < 1e-5, "{v:?}");
        assert_eq!(v[1], 2.0);
        assert!((v[2] - 3.1).abs() < 1e-5, "{v:?}");
    }
}
