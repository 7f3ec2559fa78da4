//! ASD, TSM and CDS (issue #17) on the tiny Stable Diffusion fixture, on the CPU: each method's
//! latent gradient against a golden computed with diffusers by `scripts/golden_methods.py`
//! (`tests/fixtures/methods-golden.safetensors`: inputs, draws, knobs and gradients), then a few
//! steps of 2D distillation and of the 3D field with each.

use std::path::PathBuf;

use vecdream_gpu::distill::{
    DistillConfig, Distiller, SdGuidance, SdGuidanceConfig, SdMethod, TimeRange, grid_document,
};
use vecdream_gpu::field::{FieldConfig, FieldRun, TextConfig};
use vecdream_gpu::sd::StableDiffusion;
use vecdream_gpu::tch::{Device, Kind, Tensor};

/// The largest |Rust − golden| allowed (float32 UNet on different kernels).
const TOLERANCE: f64 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

struct Golden(Vec<(String, Tensor)>);

impl Golden {
    fn load() -> Self {
        let path = fixture("methods-golden.safetensors");
        Self(Tensor::read_safetensors(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    fn get(&self, name: &str) -> Tensor {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, t)| t.shallow_clone())
            .unwrap_or_else(|| panic!("methods-golden.safetensors: tensor `{name}` missing"))
    }

    fn ints(&self, name: &str) -> Vec<i64> {
        Vec::try_from(self.get(name).to_kind(Kind::Int64)).unwrap()
    }

    fn floats(&self, name: &str) -> Vec<f64> {
        Vec::try_from(self.get(name).to_kind(Kind::Double)).unwrap()
    }

    fn int(&self, name: &str) -> i64 {
        self.ints(name)[0]
    }

    fn float(&self, name: &str) -> f64 {
        self.floats(name)[0]
    }
}

/// The guidance the golden was made with: the prompt, an empty negative prompt, the golden's CFG
/// and t_min, at 32 px (16² latents), float32.
fn guidance_with(
    method: SdMethod,
    kind: Kind,
    golden: &Golden,
    edit: impl FnOnce(&mut SdGuidanceConfig),
) -> SdGuidance {
    let dir = fixture("tiny-sd15");
    let sd = StableDiffusion::load(&dir, Device::Cpu, kind).unwrap();
    let mut config = SdGuidanceConfig {
        model_dir: dir,
        prompt: "a photo of a cat".into(),
        negative_prompt: String::new(),
        cfg: golden.float("cfg"),
        time: TimeRange {
            t_min: golden.int("t_min"),
            ..TimeRange::default()
        },
        resolution: 32,
        half: false,
        ..SdGuidanceConfig::for_method(method)
    };
    edit(&mut config);
    SdGuidance::new(sd, config).unwrap()
}

/// Max |a − b| and max |b|.
fn err_and_scale(a: &Tensor, b: &Tensor) -> (f64, f64) {
    (
        (a - b).abs().max().double_value(&[]),
        b.abs().max().double_value(&[]),
    )
}

fn check(name: &str, got: &Tensor, expected: &Tensor) {
    assert_eq!(got.size(), expected.size(), "{name}: shape");
    let (err, scale) = err_and_scale(got, expected);
    println!(
        "{name} grad: max |Rust − golden| = {err:.3e} (max |golden| = {scale:.3e}, relative {:.3e})",
        err / scale
    );
    assert!(scale > 1e-3, "{name}: a vanishing golden proves nothing");
    assert!(err <= TOLERANCE, "{name}: max |Δ| {err} > {TOLERANCE}");
}

#[test]
fn asd_gradient_matches_the_diffusers_golden() {
    let g = Golden::load();
    let asd = guidance_with(SdMethod::Asd, Kind::Float, &g, |c| {
        c.asd_ratio = g.float("asd.ratio");
        c.asd_random = g.int("asd.random") != 0;
    });
    let t = g.ints("asd.t");
    let t2 = asd.second_timesteps(&t, &g.floats("asd.u"));
    assert_eq!(t2, g.ints("asd.t2"), "t⁺ = t + ⌊u·η(t − t_min)⌋");
    assert!(t2.iter().zip(&t).all(|(p, t)| p > t), "{t2:?}");
    let got = asd
        .method_latent_grad_with(&g.get("latents"), &g.get("noise"), &t, &t2, 0)
        .unwrap();
    check("ASD", &got, &g.get("asd.grad"));
}

#[test]
fn tsm_gradient_matches_the_diffusers_golden() {
    let g = Golden::load();
    let tsm = guidance_with(SdMethod::Tsm, Kind::Float, &g, |c| {
        c.tsm_delta = g.int("tsm.delta");
        c.tsm_xs_delta = g.int("tsm.xs_delta");
        c.tsm_xs_steps = g.int("tsm.xs_steps");
        c.tsm_gamma = g.float("tsm.gamma");
    });
    let t = g.ints("tsm.t");
    let (t0, s, mu) = (g.ints("tsm.t0"), g.ints("tsm.s"), g.ints("tsm.mu"));
    for (i, &ti) in t.iter().enumerate() {
        assert_eq!(tsm.tsm_timesteps(ti), (t0[i], s[i], mu[i]), "t = {ti}");
        assert!(
            s[i] < mu[i] && mu[i] < ti,
            "the second path ends between s and t"
        );
    }
    let got = tsm
        .method_latent_grad_with(&g.get("latents"), &g.get("noise"), &t, &t, 0)
        .unwrap();
    check("TSM", &got, &g.get("tsm.grad"));
}

#[test]
fn cds_gradient_matches_the_diffusers_golden() {
    let g = Golden::load();
    let cds = guidance_with(SdMethod::Cds, Kind::Float, &g, |c| {
        c.cds_gap = g.int("cds.gap");
        c.cds_perturb = g.int("cds.perturb");
    });
    let t = g.ints("cds.t");
    let t2 = cds.second_timesteps(&t, &g.floats("cds.u"));
    assert_eq!(t2, g.ints("cds.t2"), "t' = t + g + ⌊u·p⌋");
    let got = cds
        .method_latent_grad_with(&g.get("latents"), &g.get("noise"), &t, &t2, 0)
        .unwrap();
    check("CDS", &got, &g.get("cds.grad"));
}

#[test]
fn asd_without_a_shift_is_classifier_score_distillation() {
    // t⁺ = t: ε_u + s(ε_c − ε_u) − ε_c = (s − 1)(ε_c − ε_u), i.e. CSD at scale s − 1, and the
    // noise cancels; a cross-check between two methods' code paths.
    let g = Golden::load();
    let (latents, noise) = (g.get("latents"), g.get("noise"));
    let t = g.ints("asd.t");
    let asd = guidance_with(SdMethod::Asd, Kind::Float, &g, |c| c.asd_ratio = 0.0);
    assert_eq!(asd.second_timesteps(&t, &[0.9, 0.9]), t);
    let got = asd.method_latent_grad(&latents, &noise, &t, 0).unwrap();
    let s = g.float("cfg");
    let csd = guidance_with(SdMethod::Csd, Kind::Float, &g, |c| c.cfg = s - 1.0)
        .method_latent_grad(&latents, &noise, &t, 0)
        .unwrap();
    let (err, scale) = err_and_scale(&got, &csd);
    println!("ASD(η = 0) vs CSD(s − 1): max |Δ| = {err:.3e} (max |CSD| = {scale:.3e})");
    assert!(scale > 1e-3 && err <= TOLERANCE, "{err} vs {scale}");
}

#[test]
fn methods_parse_and_name_themselves() {
    for m in SdMethod::ALL {
        assert_eq!(SdMethod::parse(m.as_str()).unwrap(), m);
        assert!(!m.description().is_empty());
    }
    assert_eq!(SdMethod::parse("ASD").unwrap(), SdMethod::Asd);
    let e = SdMethod::parse("ism").unwrap_err().to_string();
    assert!(
        e.contains("method") && e.contains("tsm") && e.contains("cds"),
        "{e}"
    );
}

/// A distiller of `particles` copies of a `cells²` grid at 32 px.
fn distiller(cells: usize, particles: usize, steps: usize, g: SdGuidance) -> Distiller {
    let doc = grid_document(cells, 32.0);
    let config = DistillConfig {
        particles,
        steps,
        render_size: 32,
        ..DistillConfig::default()
    };
    Distiller::new(&doc, config, Box::new(g), Device::Cpu).unwrap()
}

fn term(terms: &[(String, f64)], name: &str) -> Option<f64> {
    terms.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

#[test]
fn asd_tsm_cds_distil_a_document_in_2d() {
    let g = Golden::load();
    for method in [SdMethod::Asd, SdMethod::Tsm, SdMethod::Cds] {
        let guidance = guidance_with(method, Kind::Float, &g, |c| c.cfg = 7.5);
        let mut d = distiller(3, 2, 3, guidance);
        let before: Vec<f32> = Vec::try_from(d.params().fill.detach().flatten(0, -1)).unwrap();
        let mut cds_noise: Option<Tensor> = None;
        for _ in 0..3 {
            let r = d.step().unwrap();
            assert!(r.skipped.is_none(), "{method:?}: {r:?}");
            assert!(r.loss.is_finite() && r.loss > 0.0, "{method:?}: {r:?}");
            assert_eq!(r.guided.len(), 2, "{method:?}: every particle is guided");
            let t = term(&r.terms, "mean_t").unwrap();
            match method {
                SdMethod::Asd => assert!(term(&r.terms, "mean_t2").unwrap() >= t, "{r:?}"),
                SdMethod::Cds => {
                    assert!(term(&r.terms, "mean_t2").unwrap() > t, "{r:?}");
                    // One noise for the whole run, kept in the checkpoint state.
                    let state = d.guidance().state();
                    let n = state
                        .iter()
                        .find(|(k, _)| k == "cds_noise")
                        .map(|(_, t)| t.copy())
                        .expect("cds_noise in the state");
                    if let Some(prev) = &cds_noise {
                        assert!(prev.equal(&n), "CDS drew a new noise");
                    }
                    cds_noise = Some(n);
                }
                _ => assert!(term(&r.terms, "mean_t2").is_none()),
            }
        }
        let after: Vec<f32> = Vec::try_from(d.params().fill.detach().flatten(0, -1)).unwrap();
        assert!(
            before != after,
            "{method:?}: the fill colours did not change"
        );
    }
}

/// The half-precision path (what CUDA runs) steps without a dtype error or a skipped step.
#[test]
fn asd_tsm_cds_step_with_a_half_precision_model() {
    let g = Golden::load();
    for method in [SdMethod::Asd, SdMethod::Tsm, SdMethod::Cds] {
        let guidance = guidance_with(method, Kind::Half, &g, |c| c.cfg = 7.5);
        let mut d = distiller(3, 2, 2, guidance);
        for _ in 0..2 {
            let r = d
                .step()
                .unwrap_or_else(|e| panic!("{method:?} in fp16: {e}"));
            assert!(
                r.skipped.is_none() && r.loss.is_finite(),
                "{method:?}: {r:?}"
            );
        }
    }
}

#[test]
fn asd_tsm_cds_step_the_3d_field() {
    for method in [SdMethod::Asd, SdMethod::Tsm, SdMethod::Cds] {
        let text = TextConfig {
            model_dir: fixture("tiny-sd15"),
            prompt: "a hamburger".into(),
            method,
            latent_size: 16,
            // Through the 3D wiring too: TSM with γ = 1 is ISM.
            knobs: (method == SdMethod::Tsm)
                .then(|| ("tsm_gamma".to_string(), 1.0))
                .into_iter()
                .collect(),
            ..TextConfig::default()
        };
        let mut config = FieldConfig::text(text, 16, 2);
        config.samples = 24;
        config.seed = 7;
        let mut run = FieldRun::new(config, Device::Cpu).unwrap();
        let before = run.grid().color.detach().copy();
        while !run.is_finished() {
            let info = run.step().unwrap();
            assert!(
                !info.skipped && info.loss.is_finite() && info.loss > 0.0,
                "{method:?}: {info:?}"
            );
            assert!(
                term(&info.terms, "mean_t").is_some(),
                "{method:?}: {info:?}"
            );
        }
        let moved = (run.grid().color.detach() - &before)
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            moved > 0.0,
            "{method:?}: the field's colours did not change"
        );
    }
}

#[test]
fn knobs_are_set_by_name_and_checked() {
    let mut c = SdGuidanceConfig::for_method(SdMethod::Tsm);
    assert_eq!((c.cfg, c.time.t_max), (7.5, 500));
    c.set_knob("tsm_gamma", 1.0).unwrap();
    c.set_knob("tsm_delta", 50.0).unwrap();
    c.set_knob("asd_random", 0.0).unwrap();
    assert_eq!((c.tsm_gamma, c.tsm_delta, c.asd_random), (1.0, 50, false));
    for (name, value) in [
        ("tsm_gamma", 1.5),
        ("tsm_delta", 2.5),
        ("cds_gap", -1.0),
        ("asd_random", 0.5),
        ("tsm_xs_delta", 0.0),
    ] {
        let e = c.set_knob(name, value).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
    let e = c.set_knob("gamma", 0.5).unwrap_err().to_string();
    assert!(e.contains("unknown knob") && e.contains("tsm_gamma"), "{e}");
    assert_eq!(SdGuidanceConfig::for_method(SdMethod::Cds).cfg, 51.0);
    assert_eq!(
        SdGuidanceConfig::for_method(SdMethod::Vpsd),
        SdGuidanceConfig::default()
    );
    assert_eq!(
        SdGuidanceConfig::for_method(SdMethod::Sds),
        SdGuidanceConfig::sds()
    );
}

#[test]
fn an_unknown_knob_is_refused_by_the_3d_field_with_its_name() {
    let text = TextConfig {
        model_dir: fixture("tiny-sd15"),
        prompt: "a hamburger".into(),
        method: SdMethod::Cds,
        latent_size: 16,
        knobs: vec![("cds_gapp".into(), 10.0)],
        ..TextConfig::default()
    };
    let e = FieldRun::new(FieldConfig::text(text, 16, 2), Device::Cpu)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cds_gapp") && e.contains("unknown knob"), "{e}");
}
