//! `report.md` of a comparison directory, built only from what its runs wrote (config.json,
//! metrics.csv, weights.csv): it can be regenerated at any time, and every number traced back.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::compare::{learnable, mode_dir_name, scan, Run, Weights};
use super::logs::EpochMetrics;
use super::{plots, TrainConfig};
use crate::model::ResidualMode;

/// Mean and sample standard deviation (n - 1; `None` for a single value).
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub mean: f64,
    pub std: Option<f64>,
}

pub fn stat(xs: &[f64]) -> Stat {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let std = (xs.len() > 1)
        .then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Stat { mean, std }
}

impl Stat {
    /// `mean ± std` of the values times `scale`, with `decimals` places.
    fn show(self, scale: f64, decimals: usize) -> String {
        match self.std {
            Some(s) => format!(
                "{:.*} ± {:.*}",
                decimals,
                self.mean * scale,
                decimals,
                s * scale
            ),
            None => format!("{:.*}", decimals, self.mean * scale),
        }
    }
}

/// A run's training time (the epochs' training loops, evaluation excluded) and images/s.
fn time_and_rate(m: &[EpochMetrics]) -> (f64, f64) {
    let secs: f64 = m.iter().map(|e| e.seconds).sum();
    let images: f64 = m.iter().map(|e| e.images_per_sec * e.seconds).sum();
    (secs, images / secs.max(1e-9))
}

fn best(m: &[EpochMetrics]) -> &EpochMetrics {
    m.iter()
        .fold(&m[0], |b, e| if e.test_acc > b.test_acc { e } else { b })
}

fn w_kind(m: ResidualMode) -> String {
    match m {
        ResidualMode::Ada(i) => format!("learned per block, from {i}"),
        ResidualMode::Ada2 => "learned per block, from 0 (N(0, 0.05) where downsampling)".into(),
        ResidualMode::Standard => "fixed 1 (ResNet)".into(),
        ResidualMode::Fixed(k) => format!("fixed {k}"),
        ResidualMode::AdaChannel(i) => format!("learned per channel, from {i}"),
    }
}

/// Runs grouped by mode: `order` first, any other mode found on disk after it, by label.
fn by_mode<'a>(runs: &[&'a Run], order: &[ResidualMode]) -> Vec<(ResidualMode, Vec<&'a Run>)> {
    let mut modes: Vec<ResidualMode> = Vec::new();
    let mut rest: Vec<ResidualMode> = runs
        .iter()
        .map(|r| r.config.residual)
        .filter(|m| !order.contains(m))
        .collect();
    rest.sort_by_key(|m| m.label());
    rest.dedup();
    for m in order.iter().copied().chain(rest) {
        if !modes.contains(&m) && runs.iter().any(|r| r.config.residual == m) {
            modes.push(m);
        }
    }
    modes
        .into_iter()
        .map(|m| {
            let mut rs: Vec<&Run> = runs
                .iter()
                .copied()
                .filter(|r| r.config.residual == m)
                .collect();
            rs.sort_by_key(|r| r.config.seed);
            (m, rs)
        })
        .collect()
}

fn figure(md: &mut String, file: &str, size: (u32, u32), caption: &str) {
    let _ = writeln!(
        md,
        "![{caption}]({file})\n\n*{caption} (`{file}`, {}×{} px).*\n",
        size.0, size.1
    );
}

fn join<T: ToString>(v: impl IntoIterator<Item = T>) -> String {
    v.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(cfg: &TrainConfig) -> String {
    let limit = |n: usize| {
        if n == 0 {
            "all".to_string()
        } else {
            format!("first {n}")
        }
    };
    format!(
        "model `{}`, data `{}` ({} training / {} test images), batch {}, {} lr {}, BN momentum {}, augment {}, normalize {}",
        cfg.preset,
        cfg.data.display(),
        limit(cfg.train_limit),
        limit(cfg.test_limit),
        cfg.batch,
        cfg.optimizer,
        cfg.lr,
        cfg.bn_momentum.map_or("the preset's".into(), |m| m.to_string()),
        if cfg.augment { "on" } else { "off" },
        if cfg.normalize { "on" } else { "off" }
    )
}

/// Writes `<out>/report.md` and its PNGs from every run under `out`, `order`'s modes first.
pub fn write(out: &Path, order: &[ResidualMode]) -> Result<PathBuf> {
    let runs = scan(out)?;
    if runs.is_empty() {
        bail!(
            "{} holds no runs with metrics yet: run `adaresnet compare` first",
            out.display()
        );
    }
    let mut datasets: Vec<String> = runs.iter().map(|r| r.dataset.clone()).collect();
    datasets.dedup();

    let mut md = format!(
        "# AdaResNet comparison: `{}`\n\nWritten by `adaresnet compare` (adaresnet {}) from the runs in this directory. \
         Every number below is read back from a run's `metrics.csv` or `weights.csv`; repeating the \
         command reuses finished runs and rewrites this file.\n\n",
        out.display(),
        env!("CARGO_PKG_VERSION")
    );
    for ds in &datasets {
        let rs: Vec<&Run> = runs.iter().filter(|r| &r.dataset == ds).collect();
        dataset_section(&mut md, out, ds, &rs, order)?;
    }
    final_w_section(&mut md, out, &runs, &datasets, order)?;
    provenance(&mut md, &runs, &datasets)?;
    let path = out.join("report.md");
    std::fs::write(&path, md).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn dataset_section(
    md: &mut String,
    out: &Path,
    ds: &str,
    runs: &[&Run],
    order: &[ResidualMode],
) -> Result<()> {
    let groups = by_mode(runs, order);
    let seeds: BTreeSet<u64> = runs.iter().map(|r| r.config.seed).collect();
    let _ = writeln!(
        md,
        "## {ds}\n\n{} modes × {} seeds ({}); {}.\n\n\
         | mode | w | seeds | epochs | final test acc (%) | best test acc (%) | final train acc (%) | training time (s) | images/s |\n\
         |---|---|---|---|---|---|---|---|---|",
        groups.len(),
        seeds.len(),
        join(&seeds),
        describe(&runs[0].config)
    );
    for (m, rs) in &groups {
        let col = |f: &dyn Fn(&Run) -> f64| stat(&rs.iter().map(|r| f(r)).collect::<Vec<_>>());
        let last = |r: &Run| r.metrics[r.metrics.len() - 1].clone();
        let epochs: BTreeSet<usize> = rs.iter().map(|r| r.metrics.len()).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.label(),
            w_kind(*m),
            join(rs.iter().map(|r| r.config.seed)),
            join(&epochs),
            col(&|r| last(r).test_acc).show(100.0, 2),
            col(&|r| best(&r.metrics).test_acc).show(100.0, 2),
            col(&|r| last(r).train_acc).show(100.0, 2),
            col(&|r| time_and_rate(&r.metrics).0).show(1.0, 1),
            col(&|r| time_and_rate(&r.metrics).1).show(1.0, 1),
        );
    }
    let _ = writeln!(
        md,
        "\nEach cell is the mean ± sample standard deviation (n − 1) over the seeds listed (a single \
         seed shows the value alone). *Final test acc*: accuracy on the test images after the last \
         epoch. *Best test acc*: the highest end-of-epoch test accuracy of each run (picked on the \
         test set, so optimistic). *Final train acc*: the running accuracy over the last epoch's \
         training batches, in training mode. *Training time*: seconds in the training loops of all \
         epochs of a run (evaluation excluded). *images/s*: training images per second of that time.\n"
    );
    per_run_table(md, &groups);
    dataset_figures(md, out, ds, &groups)
}

/// One row per run, the values the summary's means and deviations are taken over.
fn per_run_table(md: &mut String, groups: &[(ResidualMode, Vec<&Run>)]) {
    let _ = writeln!(
        md,
        "Per run:\n\n| run | seed | epochs | final test acc (%) | best test acc (%) @ epoch | final train acc (%) | final test loss | training time (s) | images/s |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (_, rs) in groups {
        for r in rs {
            let (last, b, (secs, rate)) = (
                &r.metrics[r.metrics.len() - 1],
                best(&r.metrics),
                time_and_rate(&r.metrics),
            );
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} | {:.2} @ {} | {:.2} | {:.4} | {secs:.1} | {rate:.1} |",
                r.name(),
                r.config.seed,
                r.metrics.len(),
                100.0 * last.test_acc,
                100.0 * b.test_acc,
                b.epoch,
                100.0 * last.train_acc,
                last.test_loss
            );
        }
    }
    md.push('\n');
}

/// The accuracy plot of a dataset and the `w` plot of each of its learnable modes.
fn dataset_figures(
    md: &mut String,
    out: &Path,
    ds: &str,
    groups: &[(ResidualMode, Vec<&Run>)],
) -> Result<()> {
    let band = |f: fn(&EpochMetrics) -> f64| -> Vec<plots::Band> {
        groups
            .iter()
            .map(|(m, rs)| accuracy_band(m.label(), rs, f))
            .collect()
    };
    let file = format!("{ds}-accuracy.png");
    plots::accuracy(
        &out.join(&file),
        &format!("Accuracy per epoch on {ds}"),
        &band(|e| e.train_acc),
        &band(|e| e.test_acc),
    )?;
    figure(
        md,
        &file,
        plots::ACCURACY_SIZE,
        &format!("Train and test accuracy per epoch on {ds}, every mode"),
    );
    for (m, rs) in groups.iter().filter(|(m, _)| learnable(*m)) {
        let ws: Vec<&Weights> = rs.iter().filter_map(|r| r.weights.as_ref()).collect();
        let Some(series) = mean_w_lines(&ws) else {
            continue;
        };
        let file = format!("{ds}-w-{}.png", mode_dir_name(m));
        let what = if m.weight(false).0 {
            "w (mean over each block's channels)"
        } else {
            "w"
        };
        let title = format!(
            "{} on {ds}: every block's {what}, mean over {} seeds",
            m.label(),
            ws.len()
        );
        plots::lines(
            &out.join(&file),
            &title,
            "training step",
            "w",
            "block",
            &series,
        )?;
        figure(
            md,
            &file,
            plots::W_SIZE,
            &format!(
                "{} on {ds}: every block's {what} over training, mean over seeds",
                m.label()
            ),
        );
    }
    Ok(())
}

/// Per epoch: the mean of the runs that reached it, and their min and max, in percent.
fn accuracy_band(label: String, rs: &[&Run], f: fn(&EpochMetrics) -> f64) -> plots::Band {
    let epochs = rs.iter().map(|r| r.metrics.len()).max().unwrap_or(0);
    let mut b = plots::Band {
        label,
        x: vec![],
        mean: vec![],
        lo: vec![],
        hi: vec![],
    };
    for e in 0..epochs {
        let v: Vec<f64> = rs
            .iter()
            .filter_map(|r| r.metrics.get(e))
            .map(|m| 100.0 * f(m))
            .collect();
        b.x.push((e + 1) as f64);
        b.mean.push(v.iter().sum::<f64>() / v.len() as f64);
        b.lo.push(v.iter().copied().fold(f64::MAX, f64::min));
        b.hi.push(v.iter().copied().fold(f64::MIN, f64::max));
    }
    b
}

/// One line per block: `w` averaged over the seeds' runs, at most ~2000 points per line.
fn mean_w_lines(ws: &[&Weights]) -> Option<Vec<plots::Line>> {
    let first = ws.first()?;
    let rows = ws.iter().map(|w| w.steps.len()).min()?;
    let stride = rows.div_ceil(2000).max(1);
    let lines = first
        .blocks
        .iter()
        .enumerate()
        .map(|(b, name)| plots::Line {
            label: name.clone(),
            points: (0..rows)
                .step_by(stride)
                .chain((rows > 0 && (rows - 1) % stride != 0).then_some(rows - 1))
                .map(|i| {
                    (
                        first.steps[i],
                        ws.iter()
                            .map(|w| w.w.get(b).map_or(0.0, |c| c[i]))
                            .sum::<f64>()
                            / ws.len() as f64,
                    )
                })
                .collect(),
        })
        .collect();
    Some(lines)
}

fn final_w_section(
    md: &mut String,
    out: &Path,
    runs: &[Run],
    datasets: &[String],
    order: &[ResidualMode],
) -> Result<()> {
    let all: Vec<&Run> = runs.iter().collect();
    let groups: Vec<_> = by_mode(&all, order)
        .into_iter()
        .filter(|(m, _)| learnable(*m))
        .collect();
    if groups.is_empty() {
        return Ok(());
    }
    let _ = writeln!(
        md,
        "## Learned w per block at the end of training\n\n\
         Each cell: the block's `w` after the last training step (for per-channel modes, the mean \
         over its channels), mean ± sample std over seeds. *Mean over blocks* and *variance across \
         blocks* (population variance, ÷ number of blocks) are of those per-block means: the \
         spread the paper compares between datasets.\n"
    );
    for (m, rs) in &groups {
        // dataset -> (block -> stat over seeds)
        let mut cols: Vec<(String, Vec<(String, Stat)>)> = Vec::new();
        for ds in datasets {
            let ws: Vec<&Weights> = rs
                .iter()
                .filter(|r| &r.dataset == ds)
                .filter_map(|r| r.weights.as_ref())
                .filter(|w| !w.steps.is_empty())
                .collect();
            let Some(first) = ws.first() else { continue };
            let per_block = first
                .blocks
                .iter()
                .enumerate()
                .map(|(b, name)| {
                    (
                        name.clone(),
                        stat(
                            &ws.iter()
                                .filter_map(|w| w.w.get(b).and_then(|c| c.last().copied()))
                                .collect::<Vec<_>>(),
                        ),
                    )
                })
                .collect();
            cols.push((ds.clone(), per_block));
        }
        let mut blocks: Vec<String> = Vec::new();
        for (_, c) in &cols {
            for (b, _) in c {
                if !blocks.contains(b) {
                    blocks.push(b.clone());
                }
            }
        }
        let cell = |c: &[(String, Stat)], b: &str| c.iter().find(|(n, _)| n == b).map(|(_, s)| *s);
        let _ = writeln!(
            md,
            "### {}\n\n| block | {} |\n|---|{}",
            m.label(),
            cols.iter()
                .map(|(d, _)| d.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(cols.len())
        );
        for b in &blocks {
            let cells: Vec<String> = cols
                .iter()
                .map(|(_, c)| cell(c, b).map_or("—".into(), |s| s.show(1.0, 4)))
                .collect();
            let _ = writeln!(md, "| {b} | {} |", cells.join(" | "));
        }
        let means: Vec<Vec<f64>> = cols
            .iter()
            .map(|(_, c)| c.iter().map(|(_, s)| s.mean).collect())
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let var = |v: &[f64]| {
            v.iter().map(|x| (x - mean(v)).powi(2)).sum::<f64>() / v.len().max(1) as f64
        };
        let _ = writeln!(
            md,
            "| **mean over blocks** | {} |",
            join(means.iter().map(|v| format!("{:.4}", mean(v)))).replace(", ", " | ")
        );
        let _ = writeln!(
            md,
            "| **variance across blocks** | {} |\n",
            join(means.iter().map(|v| format!("{:.6}", var(v)))).replace(", ", " | ")
        );
        if cols.len() >= 2 {
            let series: Vec<(String, Vec<Option<f64>>)> = cols
                .iter()
                .map(|(d, c)| {
                    (
                        d.clone(),
                        blocks.iter().map(|b| cell(c, b).map(|s| s.mean)).collect(),
                    )
                })
                .collect();
            let file = format!("datasets-w-{}.png", mode_dir_name(m));
            let title = format!("{}: final w per block on each dataset", m.label());
            plots::final_w(&out.join(&file), &title, &blocks, &series)?;
            figure(
                md,
                &file,
                plots::FINAL_W_SIZE,
                &format!(
                    "{}: final w per block, one line per dataset (mean over seeds)",
                    m.label()
                ),
            );
        }
    }
    Ok(())
}

fn provenance(md: &mut String, runs: &[Run], datasets: &[String]) -> Result<()> {
    let adapters: BTreeSet<&str> = runs.iter().map(|r| r.adapter.as_str()).collect();
    let commands: BTreeSet<&str> = runs.iter().map(|r| r.command.as_str()).collect();
    let _ = writeln!(md, "## How these numbers were produced\n");
    for a in &adapters {
        let _ = writeln!(md, "- Adapter: `{a}`");
    }
    let _ = writeln!(
        md,
        "\nCommands, as the runs' `config.json` recorded them (a run resumed later records the command that resumed it):\n\n```sh\n{}\n```\n",
        commands.into_iter().collect::<Vec<_>>().join("\n")
    );
    for ds in datasets {
        // Group runs whose configuration agrees once the per-run fields are set aside.
        let mut groups: Vec<(serde_json::Value, Vec<String>)> = Vec::new();
        for r in runs.iter().filter(|r| &r.dataset == ds) {
            let mut train = serde_json::to_value(&r.config)?;
            let mut model = r.model.clone();
            for v in [&mut train, &mut model] {
                if let Some(o) = v.as_object_mut() {
                    o.remove("residual");
                    o.remove("seed");
                }
            }
            let v = serde_json::json!({ "train": train, "model": model });
            match groups.iter_mut().find(|(g, _)| *g == v) {
                Some((_, names)) => names.push(r.name()),
                None => groups.push((v, vec![r.name()])),
            }
        }
        let _ = writeln!(md, "### Configuration on {ds}\n");
        for (v, names) in groups {
            let _ = writeln!(
                md,
                "Runs {} (`residual` and `seed` set per run, everything else as in their `config.json`):\n\n```json\n{}\n```\n",
                join(names.iter().map(|n| format!("`{n}`"))),
                serde_json::to_string_pretty(&v)?
            );
        }
    }
    Ok(())
}
