//! DDIM / DDPM scheduler against closed forms: a perfect ε (or v) prediction makes a DDIM step land
//! exactly on the noised sample of the previous timestep, and the timesteps follow diffusers' spacing.

use vecdream_gpu::sd::SchedulerConfig;
use vecdream_gpu::sd::scheduler::DdimScheduler;
use vecdream_gpu::tch::{Device, Kind, Tensor};

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn leading_spacing_matches_diffusers() {
    let mut s = DdimScheduler::new(&SchedulerConfig::default());
    s.set_timesteps(50).expect("steps");
    // diffusers: (arange(50) * 20)[::-1] + steps_offset(1)
    assert_eq!(s.timesteps.first(), Some(&981));
    assert_eq!(s.timesteps.last(), Some(&1));
    assert_eq!(s.timesteps.len(), 50);
    assert!(s.set_timesteps(0).is_err());
}

#[test]
fn ddim_step_with_exact_prediction_follows_the_forward_process() {
    for prediction_type in ["epsilon", "v_prediction"] {
        let config = SchedulerConfig {
            prediction_type: prediction_type.into(),
            ..SchedulerConfig::default()
        };
        let mut s = DdimScheduler::new(&config);
        s.set_timesteps(20).expect("steps");
        let mut rng = vecdream_gpu::rng::Rng::new(1);
        let x0 = rng.normal_tensor(&[1, 4, 8, 8], Device::Cpu);
        let eps = rng.normal_tensor(&[1, 4, 8, 8], Device::Cpu);
        for w in s.timesteps.windows(2) {
            let (t, prev) = (w[0], w[1]);
            let tt = Tensor::from_slice(&[t]);
            let x_t = s.add_noise(&x0, &eps, &tt).expect("noise");
            let out = if prediction_type == "epsilon" {
                eps.shallow_clone()
            } else {
                s.get_velocity(&x0, &eps, &tt).expect("v")
            };
            let stepped = s.step(&out, t, &x_t);
            let expected = s
                .add_noise(&x0, &eps, &Tensor::from_slice(&[prev]))
                .expect("noise");
            let err = max_abs(&stepped, &expected);
            assert!(err < 1e-4, "{prediction_type} t={t}: off by {err}");
            let eps_back = s.to_epsilon(&out, &x_t, t);
            assert!(
                max_abs(&eps_back, &eps) < 1e-4,
                "{prediction_type} t={t}: to_epsilon"
            );
        }
    }
}

#[test]
fn out_of_range_timesteps_are_errors() {
    let s = DdimScheduler::new(&SchedulerConfig::default());
    let x = Tensor::zeros([1, 4, 2, 2], (Kind::Float, Device::Cpu));
    assert!(
        s.add_noise(&x, &x, &Tensor::from_slice(&[1000i64]))
            .is_err()
    );
    assert!(s.add_noise(&x, &x, &Tensor::from_slice(&[-1i64])).is_err());
}
