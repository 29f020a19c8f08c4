//! `adaresnet predict IMAGE...`: the top classes of each image with their probabilities.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GpuArgs;
use crate::gpu::Gpu;
use crate::train::infer::predict;
use crate::train::RunInfo;

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Run directory written by `adaresnet train`
    #[arg(long, default_value = "runs/default")]
    pub run: PathBuf,
    /// How many classes to show per image
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// PNG or JPEG files; resized to the model's input
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// (class index, probability) pairs, most probable first.
pub fn top_classes(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}

pub fn run(args: PredictArgs) -> Result<()> {
    let info = RunInfo::load(&args.run)?;
    let gpu = Gpu::new(&args.gpu.choice())?;
    let probs = predict(&gpu, &args.run, &info, &args.images)?;
    for (path, p) in args.images.iter().zip(&probs) {
        let shown: Vec<String> = top_classes(p, args.top)
            .into_iter()
            .map(|(c, pr)| {
                format!(
                    "{} {:.3}",
                    info.class_names
                        .get(c)
                        .cloned()
                        .unwrap_or_else(|| c.to_string()),
                    pr
                )
            })
            .collect();
        println!("{}: {}", path.display(), shown.join(", "));
    }
    Ok(())
}
