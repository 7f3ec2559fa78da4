//! From the prompt panel's settings to a worker request: what guides the run (Stable Diffusion
//! when a valid model folder is set and chosen, else the reference-image teacher over the
//! user's references or the bundled demo) and where the particles start (each from its own
//! vectorised sample in the chosen style, or all from the document in the editor).

use vecdream_core::Document;
use vecdream_gpu::distill::{
    DistillError, GuidanceSpec, ReferenceConfig, ReferenceMode, SdGuidanceConfig, SdMethod,
    StartRequest,
};
use vecdream_gpu::generate::{GenerateSetup, StartsFrom, distill_config, t_annealing};
use vecdream_ui::{GuidanceMethod, PromptSettings, StartFrom};

/// Canvas and render size of reference-teacher runs in the app.
pub const REFERENCE_SIZE: usize = 128;

/// What the prompt panel says guides a run with these settings.
pub fn guided_by(s: &PromptSettings, references: usize, model_ok: bool) -> String {
    if s.method == GuidanceMethod::ClipDraw {
        return if s.clip.clip_folder.trim().is_empty() {
            "CLIPDraw: no CLIP folder set".into()
        } else {
            "CLIPDraw (CLIP alone) and the prompt".into()
        };
    }
    if s.method == GuidanceMethod::Reference || !model_ok {
        let what = if references == 0 {
            format!(
                "the {} bundled demo emoji (reference teacher, no weights)",
                crate::demo::DEMO_SVGS.len()
            )
        } else {
            format!("{references} reference image(s) (reference teacher, no weights)")
        };
        if s.method != GuidanceMethod::Reference {
            format!("{what}: no valid model folder for {}", s.method.label())
        } else {
            what
        }
    } else {
        format!("Stable Diffusion ({}) and the prompt", s.method.label())
    }
}

fn setup(s: &PromptSettings, size: usize) -> Result<GenerateSetup, String> {
    let options = s.style.options()?;
    let mut setup = GenerateSetup::new(options, s.particles.max(1) as usize, size, s.seed);
    setup.steps = s.steps.max(1) as usize;
    Ok(setup)
}

fn starts(s: &PromptSettings, setup: &GenerateSetup, document: Option<&Document>) -> StartsFrom {
    match (s.style.start, document) {
        (StartFrom::Document, Some(_)) => StartsFrom::Document,
        _ => StartsFrom::Samples {
            setup: setup.clone(),
            sample_steps: 25,
        },
    }
}

/// A reference-teacher run over `images` (straight RGBA8).
pub fn reference_request(
    s: &PromptSettings,
    images: Vec<(u32, u32, Vec<u8>)>,
    document: Option<&Document>,
    device: vecdream_gpu::tch::Device,
) -> Result<StartRequest, String> {
    let setup = setup(s, REFERENCE_SIZE)?;
    let starts = starts(s, &setup, document);
    let doc = match (&starts, document) {
        (StartsFrom::Document, Some(d)) => d.clone(),
        _ => Document::new(REFERENCE_SIZE as f64, REFERENCE_SIZE as f64),
    };
    let mut config = distill_config(&setup, doc.width.max(doc.height));
    config.particles = setup.particles;
    let mut rc = ReferenceConfig {
        mode: if setup.particles > 1 {
            ReferenceMode::Vpsd
        } else {
            ReferenceMode::Sds
        },
        resolution: REFERENCE_SIZE as i64,
        ..ReferenceConfig::default()
    };
    rc.time.annealing = t_annealing(&setup);
    let mut req = StartRequest::new(
        doc,
        config,
        GuidanceSpec::Reference { images, config: rc },
        device,
    );
    req.starts = starts;
    Ok(req)
}

/// A Stable Diffusion run from `model_dir` with the panel's prompt and method.
pub fn sd_request(
    s: &PromptSettings,
    model_dir: std::path::PathBuf,
    document: Option<&Document>,
    device: vecdream_gpu::tch::Device,
) -> Result<StartRequest, String> {
    let size = 512;
    let setup = setup(s, size)?;
    let method = sd_method(s.method);
    let mut sd = SdGuidanceConfig {
        model_dir,
        prompt: s.prompt.clone(),
        negative_prompt: s.negative_prompt.clone(),
        cfg: f64::from(s.cfg),
        resolution: size as i64,
        ..SdGuidanceConfig::for_method(method)
    };
    // CDS keeps its own annealing of the less noisy end.
    if method != SdMethod::Cds {
        sd.time.annealing = t_annealing(&setup);
    }
    let starts = starts(s, &setup, document);
    let doc = match (&starts, document) {
        (StartsFrom::Document, Some(d)) => d.clone(),
        _ => Document::new(size as f64, size as f64),
    };
    let config = distill_config(&setup, doc.width.max(doc.height));
    let mut req = StartRequest::new(
        doc,
        config,
        GuidanceSpec::StableDiffusion(Box::new(sd)),
        device,
    );
    req.starts = starts;
    Ok(req)
}

/// The CLIP folder of the settings, checked: a folder with a `config.json` (the error names
/// the folder and the file).
fn clip_folder(s: &PromptSettings) -> Result<Option<std::path::PathBuf>, String> {
    let dir = s.clip.clip_folder.trim();
    if dir.is_empty() {
        return Ok(None);
    }
    let dir = std::path::PathBuf::from(dir);
    if !dir.is_dir() {
        return Err(format!("CLIP folder {}: not a folder", dir.display()));
    }
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(format!(
            "CLIP folder {}: no {} (expected a transformers CLIPModel folder)",
            dir.display(),
            config.display()
        ));
    }
    Ok(Some(dir))
}

/// The CLI's CLIPDraw flags for these settings (one construction for both).
fn clipdraw_args(dir: std::path::PathBuf, weight: f64) -> crate::cli::clipdraw::ClipDrawArgs {
    crate::cli::clipdraw::ClipDrawArgs {
        clip: Some(dir),
        clip_weight: weight,
        clip_views: 4,
    }
}

/// The CLI's `--reward` value for the picker's choice (`None`: no reward).
pub fn reward_spec(s: &PromptSettings) -> Result<Option<crate::cli::reward::RewardSpec>, String> {
    use crate::cli::reward::RewardSpec;
    use vecdream_gpu::clip::ClipRewardKind;
    use vecdream_ui::RewardChoice;
    let need_clip = || {
        clip_folder(s)?
            .ok_or_else(|| format!("the {} reward needs a CLIP folder", s.clip.reward.label()))
    };
    Ok(match s.clip.reward {
        RewardChoice::None => None,
        RewardChoice::Colorfulness => Some(RewardSpec::Colorfulness),
        RewardChoice::PickScore => Some(RewardSpec::Clip(ClipRewardKind::PickScore, need_clip()?)),
        RewardChoice::ClipScore => Some(RewardSpec::Clip(ClipRewardKind::ClipScore, need_clip()?)),
        RewardChoice::Aesthetic => {
            let head = std::path::PathBuf::from(s.clip.aesthetic_head.trim());
            if !head.is_file() {
                return Err(format!("aesthetic head {}: no such file", head.display()));
            }
            Some(RewardSpec::Aesthetic {
                head,
                clip: need_clip()?,
            })
        }
    })
}

/// A CLIPDraw run (CLIP alone): from the document in the editor, or a grid of squares.
pub fn clipdraw_request(
    s: &PromptSettings,
    document: Option<&Document>,
    device: vecdream_gpu::tch::Device,
) -> Result<StartRequest, String> {
    let Some(dir) = clip_folder(s)? else {
        return Err("CLIPDraw needs a CLIP folder (CLIP folder → Choose…)".into());
    };
    let size = 224;
    let setup = setup(s, size)?;
    let guidance = clipdraw_args(dir, 1.0)
        .alone(Some(s.prompt.as_str()).filter(|p| !p.trim().is_empty()))
        .map_err(|e| e.to_string())?;
    let doc = match (s.style.start, document) {
        (StartFrom::Document, Some(d)) => d.clone(),
        // Random primitives of the style, as CLIPDraw starts (the CLI does the same).
        _ => vecdream_gpu::distill::scribble_document(
            setup.options.style,
            setup.options.paths.unwrap_or(36).max(1),
            size as f64,
            setup.seed,
        ),
    };
    let config = distill_config(&setup, doc.width.max(doc.height));
    Ok(StartRequest::new(doc, config, guidance, device))
}

/// Adds the settings' reward, CLIP scores (with a CLIP folder and a prompt) and CLIPDraw with the
/// CLIP weight (other methods, weight > 0) to `req`.
pub fn add_clip(s: &PromptSettings, mut req: StartRequest) -> Result<StartRequest, String> {
    let dir = clip_folder(s)?;
    let prompt = Some(s.prompt.trim().to_string()).filter(|p| !p.is_empty());
    if let Some(spec) = reward_spec(s)? {
        if matches!(spec, crate::cli::reward::RewardSpec::Clip(..)) && prompt.is_none() {
            return Err(format!(
                "the {} reward needs a prompt",
                s.clip.reward.label()
            ));
        }
        let every = s.clip.reward_every.max(1) as usize;
        req.config.reward = Some(vecdream_gpu::distill::RewardConfig {
            every,
            mode: vecdream_gpu::distill::RewardMode::Reweight { temperature: 1.0 },
        });
        req.score_every = every;
        let p = prompt.clone();
        req.reward_factory = Some(Box::new(move |device| {
            spec.build(p.as_deref(), device)
                .map_err(|e| DistillError::Config {
                    field: "reward".into(),
                    message: format!("{e:#}"),
                })
        }));
    }
    if let (Some(dir), Some(p)) = (&dir, &prompt) {
        req.clip_score = Some((dir.clone(), p.clone()));
    }
    let weight = f64::from(s.clip.clip_weight);
    if s.method != GuidanceMethod::ClipDraw && weight > 0.0 {
        let Some(dir) = dir else {
            return Err("a CLIP weight above 0 needs a CLIP folder".into());
        };
        let Some(prompt) = prompt else {
            return Err("CLIPDraw (CLIP weight above 0) needs a prompt".into());
        };
        let args = clipdraw_args(dir, weight);
        let base = req.guidance;
        req.guidance = GuidanceSpec::Custom(Box::new(move |device| {
            let base = base.build(device)?;
            args.add_to(base, Some(&prompt), device)
                .map_err(|e| DistillError::Config {
                    field: "clip".into(),
                    message: format!("{e:#}"),
                })
        }));
    }
    Ok(req)
}

/// The engine's method for the picker's choice (the reference teacher has none: VPSD's).
fn sd_method(m: GuidanceMethod) -> SdMethod {
    match m {
        GuidanceMethod::Sds => SdMethod::Sds,
        GuidanceMethod::Esd => SdMethod::Esd,
        GuidanceMethod::Csd => SdMethod::Csd,
        GuidanceMethod::Asd => SdMethod::Asd,
        GuidanceMethod::Tsm => SdMethod::Tsm,
        GuidanceMethod::Cds => SdMethod::Cds,
        GuidanceMethod::Vpsd | GuidanceMethod::Reference | GuidanceMethod::ClipDraw => {
            SdMethod::Vpsd
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pickers_cfg_defaults_are_the_engines() {
        for m in GuidanceMethod::ALL {
            let engine = SdGuidanceConfig::for_method(sd_method(m)).cfg;
            assert_eq!(f64::from(m.default_cfg()), engine, "{m:?}");
        }
    }
}

#[cfg(test)]
mod clip_tests {
    use super::*;
    use vecdream_ui::RewardChoice;

    fn fixture() -> String {
        format!(
            "{}/../tests/fixtures/tiny-clip-gelu",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    fn clip_settings_map_to_the_clis_configs() {
        let mut s = PromptSettings {
            prompt: "a red square".into(),
            method: GuidanceMethod::ClipDraw,
            particles: 2,
            ..PromptSettings::default()
        };
        s.clip.clip_folder = fixture();
        s.clip.reward = RewardChoice::ClipScore;
        s.clip.reward_every = 3;
        let req = clipdraw_request(&s, None, vecdream_gpu::tch::Device::Cpu).unwrap();
        assert!(matches!(req.guidance, GuidanceSpec::Custom(_)));
        let req = add_clip(&s, req).unwrap();
        let r = req.config.reward.clone().unwrap();
        assert_eq!(r.every, 3);
        assert_eq!(req.score_every, 3);
        assert!(req.reward_factory.is_some());
        assert_eq!(
            req.clip_score,
            Some((fixture().into(), "a red square".to_string()))
        );
        assert_eq!(
            reward_spec(&s).unwrap(),
            Some(crate::cli::reward::RewardSpec::Clip(
                vecdream_gpu::clip::ClipRewardKind::ClipScore,
                fixture().into()
            ))
        );
        // No reward, no CLIP folder: nothing added.
        let mut plain = s.clone();
        plain.clip = Default::default();
        plain.method = GuidanceMethod::Reference;
        let req = reference_request(&plain, vec![], None, vecdream_gpu::tch::Device::Cpu).unwrap();
        let req = add_clip(&plain, req).unwrap();
        assert!(req.config.reward.is_none() && req.clip_score.is_none());
    }

    #[test]
    fn a_bad_clip_folder_is_named_with_its_file() {
        let dir = std::env::temp_dir().join("vecdream-no-clip-config");
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = PromptSettings {
            prompt: "x".into(),
            method: GuidanceMethod::ClipDraw,
            ..PromptSettings::default()
        };
        s.clip.clip_folder = dir.display().to_string();
        let e = clipdraw_request(&s, None, vecdream_gpu::tch::Device::Cpu).unwrap_err();
        assert!(
            e.contains("config.json") && e.contains(&dir.display().to_string()),
            "{e}"
        );
        s.clip.clip_folder = "/nonexistent/clip".into();
        let e = clipdraw_request(&s, None, vecdream_gpu::tch::Device::Cpu).unwrap_err();
        assert!(e.contains("/nonexistent/clip"), "{e}");
        s.clip.clip_folder.clear();
        let e = clipdraw_request(&s, None, vecdream_gpu::tch::Device::Cpu).unwrap_err();
        assert!(e.contains("CLIP folder"), "{e}");
        // A CLIP weight without a folder.
        s.method = GuidanceMethod::Reference;
        s.clip.clip_weight = 100.0;
        let req = reference_request(&s, vec![], None, vecdream_gpu::tch::Device::Cpu).unwrap();
        assert!(add_clip(&s, req).unwrap_err().contains("CLIP folder"));
    }
}
