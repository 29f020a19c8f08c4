//! Using a finished run: its saved configuration and checkpoint loaded into an
//! inference-mode executor, for `eval` and `predict`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::checkpoint::Checkpoint;
use super::{batch_config, checkpoint_path, evaluate, load_split, TrainConfig};
use crate::data::{folder, Batcher, ChannelStats, ColorMode, Dataset, FolderOptions, Split};
use crate::gpu::Gpu;
use crate::graph::gpu_exec::GpuExecutor;
use crate::model::{build_forward, ModelConfig};
use crate::ops::loss;

/// What `config.json` records about a run beyond the adapter and command line.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub train: TrainConfig,
    pub model: ModelConfig,
    pub class_names: Vec<String>,
    /// Per-channel mean/std when the run normalised its inputs.
    pub normalize: Option<Stats>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl From<ChannelStats> for Stats {
    fn from(s: ChannelStats) -> Self {
        Self {
            mean: s.mean,
            std: s.std,
        }
    }
}

impl From<Stats> for ChannelStats {
    fn from(s: Stats) -> Self {
        Self {
            mean: s.mean,
            std: s.std,
        }
    }
}

impl RunInfo {
    pub fn load(run: &Path) -> Result<Self> {
        let path = run.join("config.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: cannot read the run's configuration (is {} a run directory?)",
                path.display(),
                run.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a configuration written by `adaresnet train`",
                path.display()
            )
        })
    }

    /// An inference-mode executor at `batch`, holding the run's checkpointed parameters and
    /// BatchNorm statistics.
    pub fn executor<'g>(&self, gpu: &'g Gpu, run: &Path, batch: usize) -> Result<GpuExecutor<'g>> {
        let ck = Checkpoint::load(&checkpoint_path(run))?;
        let model = ModelConfig {
            batch,
            ..self.model.clone()
        };
        let exec = GpuExecutor::new(gpu, build_forward(&model)?, None)?;
        exec.import_state(&|name| Ok(ck.get(name)?.to_vec()))?;
        Ok(exec)
    }
}

/// Mean loss and accuracy of a run's checkpoint on `split` of `cfg`'s dataset (the run's own
/// unless the caller changed `data`/`dataset`).
pub fn eval_run(
    gpu: &Gpu,
    run: &Path,
    info: &RunInfo,
    cfg: &TrainConfig,
    split: Split,
) -> Result<(f64, f64, usize)> {
    let limit = if split == Split::Test {
        cfg.test_limit
    } else {
        cfg.train_limit
    };
    let ds = std::sync::Arc::new(load_split(cfg, split, limit)?);
    if [ds.channels, ds.height, ds.width] != info.model.input {
        bail!(
            "{:?} images are {}x{}x{} but the run's model takes {:?}",
            split,
            ds.channels,
            ds.height,
            ds.width,
            info.model.input
        );
    }
    let mut exec = info.executor(gpu, run, info.train.batch)?;
    let batches = Batcher::new(
        ds.clone(),
        batch_config(cfg, info.normalize.clone().map(Into::into), false),
    )?;
    let (loss, acc) = evaluate(&mut exec, &batches)?;
    Ok((loss, acc, ds.n))
}

/// Class probabilities of each image file, in input order: decoded, resized to the model's
/// input, scaled (and normalised) as in training, run in inference mode, softmax on the GPU.
pub fn predict(
    gpu: &Gpu,
    run: &Path,
    info: &RunInfo,
    images: &[std::path::PathBuf],
) -> Result<Vec<Vec<f32>>> {
    if images.is_empty() {
        bail!("no images given: name one or more PNG or JPEG files");
    }
    let [c, h, w] = info.model.input;
    let opts = FolderOptions {
        color: if c == 1 {
            ColorMode::Gray
        } else {
            ColorMode::Rgb
        },
        height: h,
        width: w,
        ..Default::default()
    };
    let mut pixels = Vec::new();
    for path in images {
        pixels.extend(folder::decode(path, &opts)?);
    }
    let n = images.len();
    let ds = Dataset {
        images: pixels,
        labels: vec![0; n],
        n,
        channels: c,
        height: h,
        width: w,
        classes: info.model.classes,
        class_names: info.class_names.clone(),
    };
    let cfg = crate::data::BatchConfig {
        normalize: info.normalize.clone().map(Into::into),
        ..crate::data::BatchConfig::new(n, 0)
    };
    let batch = Batcher::new(
        std::sync::Arc::new(ds),
        crate::data::BatchConfig {
            shuffle: false,
            ..cfg
        },
    )?
    .epoch(0)
    .next()
    .expect("one batch holds every image");
    let mut exec = info.executor(gpu, run, n)?;
    exec.set_batch(&batch.images, &vec![u32::MAX; n])?;
    exec.eval_batch()?;
    let logits = exec.graph.logits.expect("model has logits");
    let shape = loss::LossShape {
        batch: n,
        classes: info.model.classes,
    };
    let probs = gpu.zeros("probabilities", n * shape.classes);
    gpu.run_dispatches(vec![loss::softmax_forward(
        exec.buffer(logits),
        &probs,
        shape,
    )])?;
    let flat: Vec<f32> = gpu.download(&probs, n * shape.classes)?;
    Ok(flat.chunks(shape.classes).map(<[f32]>::to_vec).collect())
}
