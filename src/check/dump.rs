//! `--dump DIR`: every compared tensor as `.npy` plus a `manifest.json` describing them, so a
//! check can be redone with NumPy, PyTorch or JAX.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use super::{npy, OpCheck};

fn write_npy<T: npy::Element>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    npy::write(BufWriter::new(file), shape, data)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn file_stem(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes every check's tensors under `dir` and the manifest naming them.
pub fn dump(dir: &Path, checks: &[OpCheck]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create dump directory {}", dir.display()))?;
    let mut entries = Vec::new();
    for (i, c) in checks.iter().enumerate() {
        let prefix = format!("{i:03}_{}", file_stem(&c.op));
        let mut inputs = Vec::new();
        for t in &c.inputs {
            let file = format!("{prefix}_{}.npy", file_stem(&t.name));
            write_npy(&dir.join(&file), &t.shape, &t.data)?;
            inputs.push(
                json!({ "name": t.name, "shape": t.shape, "dtype": "float32", "file": file }),
            );
        }
        let mut outputs = Vec::new();
        for o in &c.outputs {
            let gpu_file = format!(
                "{prefix}_{}_{}_gpu.npy",
                serde_json::to_value(o.pass)?.as_str().unwrap_or(""),
                file_stem(&o.name)
            );
            let ref_file = gpu_file.replace("_gpu.npy", "_ref.npy");
            write_npy(&dir.join(&gpu_file), &o.shape, &o.gpu)?;
            write_npy(&dir.join(&ref_file), &o.shape, &o.reference)?;
            outputs.push(json!({
                "pass": o.pass, "name": o.name, "shape": o.shape,
                "gpu_file": gpu_file, "gpu_dtype": "float32",
                "ref_file": ref_file, "ref_dtype": "float64",
                "max_abs_err": o.cmp.max_abs, "max_rel_err": o.cmp.max_rel,
                "atol": o.cmp.tol.atol, "rtol": o.cmp.tol.rtol, "ok": o.cmp.ok,
            }));
        }
        entries.push(json!({ "op": c.op, "attrs": c.attrs, "inputs": inputs, "outputs": outputs }));
    }
    let manifest = json!({
        "tolerance_rule": "|gpu - ref| <= atol + rtol * |ref|",
        "layout": "NCHW, row-major (C order)",
        "checks": entries,
    });
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
