//! The run directory's CSV logs: per-epoch metrics and every block's `w` at every iteration.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// One epoch's figures, as written to `metrics.csv`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    pub images_per_sec: f64,
    pub seconds: f64,
}

pub const METRICS_HEADER: &str =
    "epoch,train_loss,train_acc,test_loss,test_acc,images_per_sec,seconds";

impl EpochMetrics {
    pub fn csv_row(&self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.1},{:.2}",
            self.epoch,
            self.train_loss,
            self.train_acc,
            self.test_loss,
            self.test_acc,
            self.images_per_sec,
            self.seconds
        )
    }

    pub fn parse_row(line: &str) -> Result<Self> {
        let f: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("bad metrics row '{line}'"))?;
        anyhow::ensure!(
            f.len() == 7,
            "metrics row '{line}' has {} fields, expected 7",
            f.len()
        );
        Ok(Self {
            epoch: f[0] as usize,
            train_loss: f[1],
            train_acc: f[2],
            test_loss: f[3],
            test_acc: f[4],
            images_per_sec: f[5],
            seconds: f[6],
        })
    }
}

/// Reads a run's `metrics.csv`.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(EpochMetrics::parse_row)
        .collect()
}

/// An append-only CSV file with a header, truncated to `keep_rows` data rows when a run resumes
/// (so rows written after the checkpoint being resumed from are dropped, not duplicated).
pub struct CsvLog {
    out: BufWriter<File>,
}

impl CsvLog {
    pub fn open(path: &Path, header: &str, keep_rows: Option<usize>) -> Result<Self> {
        let existing = match keep_rows {
            Some(k) if path.exists() => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                text.lines()
                    .skip(1)
                    .take(k)
                    .map(|l| format!("{l}\n"))
                    .collect::<String>()
            }
            _ => String::new(),
        };
        // Header and kept rows go to a temporary file renamed over the old one: a run killed
        // here keeps the old rows rather than losing them.
        let tmp = path.with_extension("csv.tmp");
        std::fs::write(&tmp, format!("{header}\n{existing}"))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move {} into place", tmp.display()))?;
        let out = BufWriter::new(
            OpenOptions::new()
                .append(true)
                .open(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        );
        Ok(Self { out })
    }

    pub fn row(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}")?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
