//! Checkpoints in safetensors: named f32 tensors plus string metadata, written atomically
//! (temporary file, fsync, rename), so a crash mid-write never leaves a broken checkpoint.
//!
//! Every byte is checksummed (CRC-32, which catches any error burst up to 32 bits, so any
//! single changed byte): each tensor's data under `crc32/<name>` in the metadata, and the
//! header itself (length prefix and JSON, this entry's own value counted as `00000000`)
//! under `crc32_header`. A damaged file is refused naming the tensor or the header.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// Metadata key prefix of a tensor's checksum: `crc32/<tensor name>`.
const TENSOR_CRC: &str = "crc32/";
/// Metadata key of the header's checksum.
const HEADER_CRC: &str = "crc32_header";
/// What the header checksum's value counts as while it is computed (same width as a value).
const UNSEALED: &str = "00000000";

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

    /// The file's bytes, checksums included (they are added here, never kept in `meta`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        if let Some(k) = self.meta.keys().find(|k| is_checksum_key(k)) {
            bail!("metadata key '{k}' is reserved for checkpoint checksums");
        }
        let mut meta = self.meta.clone();
        let mut views = Vec::with_capacity(self.tensors.len());
        for (name, (shape, values)) in &self.tensors {
            let data = bytemuck::cast_slice::<f32, u8>(values);
            meta.insert(format!("{TENSOR_CRC}{name}"), crc_hex(data));
            views.push((
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data)?,
            ));
        }
        meta.insert(HEADER_CRC.into(), UNSEALED.into());
        let mut bytes = safetensors::serialize(views, Some(meta))?;
        let end = header_end(&bytes)?;
        let at = header_crc_at(&bytes[..end]).context("the written header lacks its checksum")?;
        let crc = header_crc(&bytes[..end], at);
        bytes[at..at + UNSEALED.len()].copy_from_slice(crc.as_bytes());
        Ok(bytes)
    }

    /// Parses and verifies a checkpoint: the header's checksum before the header is trusted,
    /// then each tensor's. Checkpoints from before checksums (no `crc32_header`, no
    /// `crc32/...`) are still read, unverified, so older runs can be resumed and evaluated
    /// (their next checkpoint has checksums); truncation and structure are checked as before.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let sealed = verify_header(bytes)?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            anyhow!("truncated file or damaged header: not valid safetensors ({e})")
        })?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| anyhow!("damaged header: unreadable ({e})"))?;
        let (sums, meta): (HashMap<_, _>, HashMap<_, _>) = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .partition(|(k, _)| is_checksum_key(k));
        let sums: HashMap<String, String> = sums
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(TENSOR_CRC)?.to_string(), v)))
            .collect();
        if !sealed && !sums.is_empty() {
            // One changed byte in the header entry's name leaves the tensors' sums behind.
            bail!("damaged header: it lost its checksum entry '{HEADER_CRC}'");
        }
        let mut ck = Checkpoint {
            meta,
            ..Default::default()
        };
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                bail!("tensor '{name}' is {:?}, expected F32", view.dtype());
            }
            if sealed {
                verify_tensor(&name, view.data(), sums.get(&name))?;
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

    /// Reads and verifies `path`; a damaged file's error ends with the usual fix (another
    /// run, or retraining). `load_or` lets the caller name its own.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_or(path, "use an earlier run or retrain")
    }

    /// `load`, a damaged file's error ending with `fix`.
    pub fn load_or(path: &Path, fix: &str) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "{}: cannot read checkpoint (does the run directory exist?)",
                path.display()
            )
        })?;
        Self::from_bytes(&bytes)
            .map_err(|e| anyhow!("{}: corrupt checkpoint ({e:#}); {fix}", path.display()))
    }
}

fn is_checksum_key(key: &str) -> bool {
    key == HEADER_CRC || key.starts_with(TENSOR_CRC)
}

fn crc_hex(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// Where the header (8-byte length, then JSON) ends, if the file holds that much.
fn header_end(bytes: &[u8]) -> Result<usize> {
    let Some(len) = bytes.first_chunk::<8>() else {
        bail!(
            "truncated file: {} bytes, not even a header length",
            bytes.len()
        );
    };
    let n = u64::from_le_bytes(*len);
    match usize::try_from(n).ok().and_then(|n| n.checked_add(8)) {
        Some(end) if end <= bytes.len() => Ok(end),
        _ => bail!(
            "truncated file or damaged header: its length, {n} bytes, runs past the file's end ({} bytes)",
            bytes.len()
        ),
    }
}

/// The offset of the header checksum's value in `header` (serde_json writes the metadata
/// compactly, and a quote inside any value is escaped, so the pattern can only be this key).
fn header_crc_at(header: &[u8]) -> Option<usize> {
    let key = format!("\"{HEADER_CRC}\":\"");
    let at = header
        .windows(key.len())
        .position(|w| w == key.as_bytes())?
        + key.len();
    (at + UNSEALED.len() <= header.len()).then_some(at)
}

/// The checksum of `header` with the value at `at` counted as `UNSEALED`.
fn header_crc(header: &[u8], at: usize) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..at]);
    h.update(UNSEALED.as_bytes());
    h.update(&header[at + UNSEALED.len()..]);
    format!("{:08x}", h.finalize())
}

/// Whether the header carries a checksum (false: a checkpoint from before checksums), failing
/// where it does not match. Compared as written text, so even a hex digit's case counts.
fn verify_header(bytes: &[u8]) -> Result<bool> {
    let header = &bytes[..header_end(bytes)?];
    let Some(at) = header_crc_at(header) else {
        return Ok(false);
    };
    let stored = &header[at..at + UNSEALED.len()];
    let computed = header_crc(header, at);
    if stored != computed.as_bytes() {
        bail!(
            "header fails its checksum (stored {}, computed {computed}): the file changed after it was written",
            String::from_utf8_lossy(stored).escape_debug()
        );
    }
    Ok(true)
}

fn verify_tensor(name: &str, data: &[u8], stored: Option<&String>) -> Result<()> {
    let Some(stored) = stored else {
        bail!("tensor '{name}' has no checksum in the header");
    };
    let computed = crc_hex(data);
    if *stored != computed {
        bail!(
            "tensor '{name}' fails its checksum (stored {}, computed {computed}): its bytes changed after it was written",
            stored.escape_debug()
        );
    }
    Ok(())
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
