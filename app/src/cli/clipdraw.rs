//! CLIPDraw flags for `vecdream generate`: `--method clipdraw --clip DIR` (CLIP alone, no Stable
//! Diffusion needed) or `--clip DIR --clip-weight W` added to SDS / VPSD / the reference teacher.

use std::path::PathBuf;

use anyhow::bail;
use vecdream_gpu::distill::{
    ClipDrawConfig, ClipDrawGuidance, Guidance, GuidanceSpec, WithClipDraw,
};
use vecdream_gpu::tch::Device;

/// CLIPDraw flags (flattened into `vecdream generate`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClipDrawArgs {
    /// transformers CLIPModel folder for CLIPDraw guidance (negative cosine of augmented views of
    /// each render to --prompt): the whole guidance with --method clipdraw, else added to the
    /// method with --clip-weight.
    #[arg(long, value_name = "CLIP_DIR")]
    pub clip: Option<PathBuf>,
    /// Weight of the CLIPDraw loss added to another method (its gradients are O(1) while SDS's
    /// are sums over latent pixels, so weights of 100–1000 are typical); 1 with --method clipdraw.
    #[arg(long, default_value_t = 300.0)]
    pub clip_weight: f64,
    /// Augmented views (random perspective + resized crop) per particle and step.
    #[arg(long, default_value_t = 4)]
    pub clip_views: usize,
}

impl ClipDrawArgs {
    fn config(&self, prompt: &str, weight: f64) -> anyhow::Result<ClipDrawConfig> {
        let Some(dir) = &self.clip else {
            bail!("--method clipdraw needs --clip CLIP_DIR");
        };
        if self.clip_views == 0 {
            bail!("--clip-views 0: expected ≥ 1");
        }
        if !weight.is_finite() {
            bail!("--clip-weight {weight}: expected a finite number");
        }
        Ok(ClipDrawConfig {
            clip_dir: dir.clone(),
            prompt: prompt.to_string(),
            views: self.clip_views,
            weight,
            ..ClipDrawConfig::default()
        })
    }

    /// The guidance of `--method clipdraw`.
    pub fn alone(&self, prompt: Option<&str>) -> anyhow::Result<GuidanceSpec> {
        let Some(prompt) = prompt else {
            bail!("--method clipdraw needs --prompt");
        };
        let config = self.config(prompt, 1.0)?;
        Ok(GuidanceSpec::Custom(Box::new(move |device| {
            Ok(Box::new(ClipDrawGuidance::load(&config, device)?) as Box<dyn Guidance>)
        })))
    }

    /// `base` plus the weighted CLIPDraw loss when `--clip` is given, else `base`.
    pub fn add_to(
        &self,
        base: Box<dyn Guidance>,
        prompt: Option<&str>,
        device: Device,
    ) -> anyhow::Result<Box<dyn Guidance>> {
        if self.clip.is_none() {
            return Ok(base);
        }
        let Some(prompt) = prompt else {
            bail!("--clip needs --prompt (the text CLIPDraw pulls toward)");
        };
        let clip = ClipDrawGuidance::load(&self.config(prompt, self.clip_weight)?, device)?;
        Ok(Box::new(WithClipDraw::new(base, clip)))
    }

    /// The flags as `(flag, value)` pairs for the checkpoint's run settings.
    pub fn settings(&self) -> Vec<(String, String)> {
        let Some(dir) = &self.clip else {
            return vec![("--clip".into(), "(not given)".into())];
        };
        vec![
            (
                "--clip".into(),
                std::path::absolute(dir)
                    .unwrap_or_else(|_| dir.clone())
                    .display()
                    .to_string(),
            ),
            ("--clip-weight".into(), self.clip_weight.to_string()),
            ("--clip-views".into(), self.clip_views.to_string()),
        ]
    }
}
