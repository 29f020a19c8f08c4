//! Checkpoints in safetensors: named f32 tensors plus string metadata, written atomically
//! (temporary file, fsync, rename), so a crash mid-write never leaves a broken checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// name -> (shape, values)
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub meta: HashMap<String, String>,
}

impl Checkpoint {
    pub fn insert(&mut self, name: impl Into<String>, shape: &[usize], values: Vec<f32>) {
        self.tensors.insert(name.into(), (shape.to_vec(), values));
    }

    pub fn get(&self, name: &str) -> Result<&[f32]> {
        self.tensors
            .get(name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| {
                anyhow!(
                    "checkpoint has no tensor '{name}': it was written for another model or mode"
                )
            })
    }

    pub fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("checkpoint metadata lacks '{key}'"))
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let bytes: Vec<(&String, &Vec<usize>, &[u8])> = self
            .tensors
            .iter()
            .map(|(k, (s, v))| (k, s, bytemuck::cast_slice::<f32, u8>(v)))
            .collect();
        let views = bytes
            .iter()
            .map(|(k, s, b)| Ok(((*k).clone(), TensorView::new(Dtype::F32, (*s).clone(), b)?)))
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
        Ok(safetensors::serialize(views, Some(self.meta.clone()))?)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| anyhow!("not a valid safetensors file ({e})"))?;
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| anyhow!("unreadable header ({e})"))?;
        let mut ck = Checkpoint {
            meta: header.metadata().clone().unwrap_or_default(),
            ..Default::default()
        };
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                bail!("tensor '{name}' is {:?}, expected F32", view.dtype());
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            ck.tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(ck)
    }

    /// Writes to `path` atomically: the old file stays intact until the new one is complete.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("safetensors.tmp");
        let bytes = self.to_bytes()?;
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(&bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("cannot flush {}", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move {} into place", tmp.display()))?;
        sync_dir(path)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "{}: cannot read checkpoint (does the run directory exist?)",
                path.display()
            )
        })?;
        Self::from_bytes(&bytes).with_context(|| {
            format!(
                "{}: corrupt checkpoint; use an earlier run or retrain",
                path.display()
            )
        })
    }
}

/// Flushes the directory holding `path`, so that a rename into it survives a power cut (on
/// Unix a rename is only durable once its directory is synced; elsewhere a no-op).
pub fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot flush directory {}", dir.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
