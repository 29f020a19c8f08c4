//! `adaresnet compare`: every residual mode x seed trained alike into one directory, finished
//! runs reused, then the report. Runs of one seed differ only in `residual`: data order is a
//! function of (seed, epoch) and every shared tensor starts from a stream keyed by (seed, name),
//! so each mode sees the same batches from the same starting weights.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use super::logs::{self, read_metrics, EpochMetrics};
use super::{checkpoint_path, report, train, TrainConfig};
use crate::gpu::Gpu;
use crate::model::ResidualMode;

/// One comparison: `base` holds everything but `residual` and `seed`, which each run sets.
#[derive(Clone, Debug)]
pub struct ComparePlan {
    pub base: TrainConfig,
    pub modes: Vec<ResidualMode>,
    pub seeds: Vec<u64>,
    /// `runs/NAME`: runs go to `<out>/<dataset>/<mode>-seed<S>/`, the report to `<out>`.
    pub out: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Started from scratch.
    Trained,
    /// Continued from the checkpoint written at the end of `from_epoch`.
    Resumed { from_epoch: usize },
    /// Already had every epoch: not touched.
    Reused,
}

#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub mode: ResidualMode,
    pub seed: u64,
    pub dir: PathBuf,
    pub status: RunStatus,
}

#[derive(Clone, Debug)]
pub struct CompareOutcome {
    pub runs: Vec<RunOutcome>,
    pub report: PathBuf,
}

/// A mode's label with only characters any filesystem accepts: `fixed:2` -> `fixed_2`,
/// `ada(normal:0.05)` -> `ada_normal_0.05`.
pub fn mode_dir_name(mode: &ResidualMode) -> String {
    let s: String = mode
        .label()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_end_matches('_').to_string()
}

pub fn run_dir(out: &Path, dataset: &str, mode: &ResidualMode, seed: u64) -> PathBuf {
    out.join(dataset)
        .join(format!("{}-seed{seed}", mode_dir_name(mode)))
}

impl ComparePlan {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.modes.is_empty(),
            "--modes is empty: name at least one residual mode, e.g. ada2,standard,fixed:2"
        );
        ensure!(
            !self.seeds.is_empty(),
            "--seeds is empty: name at least one seed, e.g. 0,1,2"
        );
        for (i, m) in self.modes.iter().enumerate() {
            if self.modes[..i]
                .iter()
                .any(|o| mode_dir_name(o) == mode_dir_name(m))
            {
                bail!("--modes names '{}' twice: list each mode once", m.label());
            }
        }
        for (i, s) in self.seeds.iter().enumerate() {
            if self.seeds[..i].contains(s) {
                bail!("--seeds names {s} twice: list each seed once");
            }
        }
        ensure!(self.base.epochs > 0, "--epochs 0: train at least one epoch");
        self.base.optimizer()?;
        Ok(())
    }

    /// The configuration of one run: the base with this mode and seed.
    pub fn config(&self, mode: ResidualMode, seed: u64) -> TrainConfig {
        TrainConfig {
            residual: mode,
            seed,
            ..self.base.clone()
        }
    }

    /// Seed-major, so an interrupted comparison already holds every mode of its first seeds.
    pub fn runs(&self) -> Vec<(ResidualMode, u64, PathBuf)> {
        self.seeds
            .iter()
            .flat_map(|&s| {
                self.modes
                    .iter()
                    .map(move |&m| (m, s, run_dir(&self.out, &self.base.dataset, &m, s)))
            })
            .collect()
    }
}

/// What is already in a run directory.
enum Existing {
    Missing,
    Partial(usize),
    Done,
}

fn existing(cfg: &TrainConfig, dir: &Path) -> Result<Existing> {
    let config = dir.join("config.json");
    if !config.exists() {
        return Ok(Existing::Missing);
    }
    let saved = read_train_config(&config)?;
    let differs = config_differences(&saved, cfg)?;
    if !differs.is_empty() {
        bail!(
            "{} was trained with another configuration ({}): use another --out, or delete that run to retrain it",
            dir.display(),
            differs.join(", ")
        );
    }
    let done = logs::read_metrics(&dir.join("metrics.csv")).map_or(0, |m| m.len());
    let ckpt = checkpoint_path(dir);
    Ok(if done >= cfg.epochs {
        Existing::Done
    } else if ckpt.exists() {
        let ck = super::checkpoint::Checkpoint::load(&ckpt)?;
        Existing::Partial(ck.meta("epoch")?.parse()?)
    } else {
        Existing::Missing
    })
}

/// `--flag saved -> wanted` for every setting but `epochs` (more epochs extend a run): what
/// `compare` and `train --resume` refuse to continue a run with.
pub fn config_differences(saved: &TrainConfig, wanted: &TrainConfig) -> Result<Vec<String>> {
    let (a, b) = (serde_json::to_value(saved)?, serde_json::to_value(wanted)?);
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        bail!("a training configuration is not a JSON object");
    };
    Ok(b.iter()
        .filter(|(k, v)| k.as_str() != "epochs" && a.get(*k) != Some(v))
        .map(|(k, v)| {
            let old = a.get(k).map_or("none".into(), |o| o.to_string());
            let flag = match k.as_str() {
                "preset" => "model".to_string(),
                "fuse_residual_relu" => "unfused (its opposite)".to_string(),
                other => other.replace('_', "-"),
            };
            format!("--{flag} {old} -> {v}")
        })
        .collect())
}

/// Trains what is missing, resumes what is partial, then writes `<out>/report.md` and plots.
pub fn compare(gpu: &Gpu, plan: &ComparePlan, show_progress: bool) -> Result<CompareOutcome> {
    plan.validate()?;
    let runs = plan.runs();
    let mut outcomes = Vec::with_capacity(runs.len());
    for (i, (mode, seed, dir)) in runs.into_iter().enumerate() {
        let cfg = plan.config(mode, seed);
        let what = format!("{} seed {seed}", mode.label());
        let status = match existing(&cfg, &dir)? {
            Existing::Done => RunStatus::Reused,
            Existing::Partial(e) => RunStatus::Resumed { from_epoch: e },
            Existing::Missing => RunStatus::Trained,
        };
        if show_progress {
            let doing = match status {
                RunStatus::Reused => "finished, reused".to_string(),
                RunStatus::Resumed { from_epoch } => format!("resuming after epoch {from_epoch}"),
                RunStatus::Trained => "training".to_string(),
            };
            eprintln!(
                "[{}/{}] {what}: {doing} ({})",
                i + 1,
                plan.modes.len() * plan.seeds.len(),
                dir.display()
            );
        }
        if status != RunStatus::Reused {
            let resume = matches!(status, RunStatus::Resumed { .. });
            train(gpu, &cfg, &dir, resume, show_progress)
                .with_context(|| format!("{what} ({})", dir.display()))?;
        }
        outcomes.push(RunOutcome {
            mode,
            seed,
            dir,
            status,
        });
    }
    let report = report::write(&plan.out, &plan.modes)?;
    Ok(CompareOutcome {
        runs: outcomes,
        report,
    })
}

// Reading a comparison directory back, for the report.

/// Whether the mode trains its `w` (else `w` never moves).
pub fn learnable(m: ResidualMode) -> bool {
    m.weight(false).1 || m.weight(true).1
}

/// One finished (or partly finished) run found under `<out>/<dataset>/`.
#[derive(Clone, Debug)]
pub struct Run {
    pub dataset: String,
    pub dir: PathBuf,
    pub config: TrainConfig,
    pub model: serde_json::Value,
    pub adapter: String,
    pub command: String,
    pub metrics: Vec<EpochMetrics>,
    /// Read only for learnable modes (the others' `w` never moves).
    pub weights: Option<Weights>,
}

impl Run {
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into())
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not valid JSON; delete the run to retrain it",
            path.display()
        )
    })
}

/// The `train` section of a run's config.json.
pub fn read_train_config(path: &Path) -> Result<TrainConfig> {
    let v = read_json(path)?;
    serde_json::from_value(v["train"].clone()).with_context(|| {
        format!(
            "{}: no readable training configuration; delete the run to retrain it",
            path.display()
        )
    })
}

/// Every run with a config.json and at least one epoch of metrics, by dataset then folder.
pub fn scan(out: &Path) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for ds in sorted_dirs(out)? {
        for dir in sorted_dirs(&ds)? {
            let (config, metrics) = (dir.join("config.json"), dir.join("metrics.csv"));
            if !config.exists() || !metrics.exists() {
                continue;
            }
            let v = read_json(&config)?;
            let metrics = read_metrics(&metrics)?;
            if metrics.is_empty() {
                continue;
            }
            let train = read_train_config(&config)?;
            let weights = learnable(train.residual)
                .then(|| read_weights(&dir.join("weights.csv")))
                .transpose()?;
            runs.push(Run {
                weights,
                dataset: ds.file_name().unwrap_or_default().to_string_lossy().into(),
                config: train,
                model: v["model"].clone(),
                adapter: v["adapter"].as_str().unwrap_or("unknown").into(),
                command: v["command"].as_str().unwrap_or("unknown").into(),
                metrics,
                dir,
            });
        }
    }
    Ok(runs)
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

/// Every block's `w` at every logged step; per-channel columns (`name[c]`) averaged per block.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    pub blocks: Vec<String>,
    pub steps: Vec<f64>,
    /// `w[block][row]`.
    pub w: Vec<Vec<f64>>,
}

pub fn read_weights(path: &Path) -> Result<Weights> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header = lines.next().transpose()?.unwrap_or_default();
    // column -> block index, for the columns after `step,epoch`.
    let mut blocks: Vec<String> = Vec::new();
    let mut column_block = Vec::new();
    for name in header.split(',').skip(2) {
        let base = name.split('[').next().unwrap_or(name).to_string();
        if blocks.last() != Some(&base) {
            blocks.push(base);
        }
        column_block.push(blocks.len() - 1);
    }
    let mut out = Weights {
        w: vec![Vec::new(); blocks.len()],
        blocks,
        steps: Vec::new(),
    };
    let mut counts = vec![0usize; out.blocks.len()];
    for c in &column_block {
        counts[*c] += 1;
    }
    for line in lines {
        let line = line?;
        let f: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: bad row '{line}'", path.display()))?;
        if f.len() != 2 + column_block.len() {
            bail!("{}: row '{line}' does not match the header", path.display());
        }
        out.steps.push(f[0]);
        let mut sums = vec![0.0; out.blocks.len()];
        for (v, &b) in f[2..].iter().zip(&column_block) {
            sums[b] += v;
        }
        for (b, s) in sums.into_iter().enumerate() {
            out.w[b].push(s / counts[b] as f64);
        }
    }
    Ok(out)
}
