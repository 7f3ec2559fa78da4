//! From the prompt panel's settings to a worker request: what guides the run (Stable Diffusion
//! when a valid model folder is set and chosen, else the reference-image teacher over the
//! user's references or the bundled demo) and where the particles start (each from its own
//! vectorised sample in the chosen style, or all from the document in the editor).

use vecdream_core::Document;
use vecdream_gpu::distill::{
    GuidanceSpec, ReferenceConfig, ReferenceMode, SdGuidanceConfig, SdMethod, StartRequest,
};
use vecdream_gpu::generate::{GenerateSetup, StartsFrom, distill_config, t_annealing};
use vecdream_ui::{GuidanceMethod, PromptSettings, StartFrom};

/// Canvas and render size of reference-teacher runs in the app.
pub const REFERENCE_SIZE: usize = 128;

/// What the prompt panel says guides a run with these settings.
pub fn guided_by(s: &PromptSettings, references: usize, model_ok: bool) -> String {
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

/// The engine's method for the picker's choice (the reference teacher has none: VPSD's).
fn sd_method(m: GuidanceMethod) -> SdMethod {
    match m {
        GuidanceMethod::Sds => SdMethod::Sds,
        GuidanceMethod::Esd => SdMethod::Esd,
        GuidanceMethod::Csd => SdMethod::Csd,
        GuidanceMethod::Asd => SdMethod::Asd,
        GuidanceMethod::Tsm => SdMethod::Tsm,
        GuidanceMethod::Cds => SdMethod::Cds,
        GuidanceMethod::Vpsd | GuidanceMethod::Reference => SdMethod::Vpsd,
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
