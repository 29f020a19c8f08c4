//! The GPU side: adapter and device, embedded kernels, buffers and dispatch recording.

pub mod cache;
pub mod choice;
pub mod device;
pub mod dispatch;
pub mod kernels;
pub mod memory;
pub mod profiler;

use anyhow::{anyhow, bail, Context, Result};

pub use choice::{KernelChoice, KernelStyle, ShapeChoice};
pub use device::AdapterChoice;
pub use dispatch::{groups_1d, Cost, Dispatch, Program, MAX_GROUPS_PER_DIM};

/// An open device with its queue and the pipeline cache.
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub kernels: kernels::Kernels,
    /// The kernel style in force, decided on first use (see `choice`).
    choice: std::sync::Mutex<Option<KernelChoice>>,
    /// Per convolution shape, the style chosen for it (see `choice::choose_per_shape`), so
    /// that every program built on this device agrees and nothing is timed twice.
    shape_choices: std::sync::Mutex<std::collections::HashMap<String, ShapeChoice>>,
    /// Errors wgpu reported outside any call that returns one (validation, out of memory,
    /// device lost), one line each; `check` turns the first into an error.
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A wgpu error report on one line: its lines, trimmed, joined by ": ".
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    pub fn new(choice: &AdapterChoice) -> Result<Self> {
        // A bad ADARESNET_KERNELS is an error before any work, whatever runs next.
        choice::forced_style()?;
        let adapter = device::choose_adapter(choice)?;
        let (device, queue) = device::request_device(&adapter)?;
        // Without a handler wgpu panics on an error no call returns; record it instead, for
        // `check` to report in one line.
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(one_line(&e.to_string()));
            }
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut v) = sink.lock() {
                v.push(format!(
                    "the GPU device was lost ({reason:?}): {}",
                    one_line(&message)
                ));
            }
        });
        let kernels = kernels::Kernels::new(&device)?;
        let info = adapter.get_info();
        let gpu = Self {
            adapter,
            device,
            queue,
            info,
            kernels,
            choice: std::sync::Mutex::new(None),
            shape_choices: Default::default(),
            errors,
        };
        gpu.check()?;
        Ok(gpu)
    }

    /// The first error wgpu reported since the device opened, as one line with the likely fix:
    /// out of memory (lower --batch or pick a larger adapter), a lost device, or an internal
    /// error of the engine or the driver.
    pub fn check(&self) -> Result<()> {
        let errors = self
            .errors
            .lock()
            .map_err(|_| anyhow!("GPU error log poisoned"))?;
        let Some(first) = errors.first() else {
            return Ok(());
        };
        let lower = first.to_lowercase();
        let fix = if lower.contains("out of memory") || lower.contains("outofmemory") {
            "the adapter ran out of memory: lower --batch or pick an adapter with more (adaresnet devices)"
        } else if lower.contains("device was lost") {
            "the driver lost the device (a reset or a crash): rerun; if it repeats, update the driver or pick another adapter"
        } else {
            "a kernel or buffer the engine made was refused: please report it with `adaresnet devices` output"
        };
        bail!("{} ({} GPU error(s)): {fix}", first, errors.len())
    }

    /// The kernel style in force on this device: decided once (forced, cached or measured with
    /// `measure`, see `choice::resolve`) and reused for every program built on it.
    pub fn kernel_choice(
        &self,
        measure: impl Fn(&Gpu, KernelStyle) -> Result<Option<f64>>,
    ) -> Result<KernelChoice> {
        let mut slot = self.choice.lock().expect("kernel choice lock poisoned");
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = choice::resolve(self, measure)?;
        log::info!("{}: {}", self.info.name, c.describe());
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The style of each convolution shape (described by `shapes`), chosen once per shape on
    /// this device: see `choice::choose_per_shape`; `time(i, style)` times `shapes[i]`.
    pub fn shape_choices(
        &self,
        base: &KernelChoice,
        shapes: &[String],
        time: impl Fn(usize, KernelStyle) -> Result<[f64; 3]>,
    ) -> Result<Vec<ShapeChoice>> {
        let mut known = self
            .shape_choices
            .lock()
            .expect("shape choice lock poisoned");
        let missing: Vec<usize> = (0..shapes.len())
            .filter(|&i| !known.contains_key(&shapes[i]))
            .collect();
        let names: Vec<String> = missing.iter().map(|&i| shapes[i].clone()).collect();
        let fresh = choice::choose_per_shape(self, base, &names, |j, s| time(missing[j], s))?;
        for c in fresh {
            if !c.times.is_empty() {
                log::info!("{}: {}", self.info.name, c.describe());
            }
            known.insert(c.shape.clone(), c);
        }
        Ok(shapes.iter().map(|s| known[s].clone()).collect())
    }

    /// The adapter from `ADARESNET_BACKEND` / `ADARESNET_ADAPTER`, else the best one found.
    pub fn from_env() -> Result<Self> {
        Self::new(&AdapterChoice::from_env())
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {} {})",
            self.info.name, self.info.backend, self.info.driver, self.info.driver_info
        )
    }

    /// Largest storage buffer one binding may hold, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        let l = self.device.limits();
        l.max_storage_buffer_binding_size.min(l.max_buffer_size)
    }

    /// A zeroed storage buffer of `len` 4-byte elements, rounded up to whole quads (16 bytes)
    /// so that vec4 kernels may read and write the last partial quad (the padding stays zero
    /// wherever the tensor's own values are zero-padded, see optim.wgsl).
    pub fn zeros(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1).next_multiple_of(4) * 4) as u64,
            usage: STORAGE,
            mapped_at_creation: false,
        })
    }

    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        let buf = self.zeros(label, (std::mem::size_of_val(data)).div_ceil(4));
        self.queue.write_buffer(&buf, 0, bytemuck::cast_slice(data));
        buf
    }

    /// Copies `len` elements from the start of `buf` back to the host, waiting for the GPU.
    pub fn download<T: bytemuck::Pod>(&self, buf: &wgpu::Buffer, len: usize) -> Result<Vec<T>> {
        let bytes = (len * std::mem::size_of::<T>()) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, 0, &staging, 0, bytes);
        self.queue.submit([enc.finish()]);
        self.read_mapped(&staging, bytes)
    }

    /// Maps a MAP_READ buffer whose copy was already submitted and returns its first `bytes`.
    pub fn read_mapped<T: bytemuck::Pod>(
        &self,
        staging: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<T>> {
        let slice = staging.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .context("GPU poll failed")?;
        rx.recv()
            .map_err(|_| anyhow!("buffer map callback never ran"))?
            .context("mapping a GPU buffer for reading failed")?;
        let out = {
            let view = slice
                .get_mapped_range()
                .context("reading a mapped GPU buffer")?;
            bytemuck::cast_slice(&view).to_vec()
        };
        staging.unmap();
        self.check()?;
        Ok(out)
    }

    /// Records `program` in one compute pass, submits it and waits for completion.
    pub fn run(&self, program: &Program) -> Result<()> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            program.record(&mut pass);
        }
        self.queue.submit([enc.finish()]);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .context("GPU poll failed")?;
        self.check()
    }

    /// Prepares and runs dispatches once: the path single-op tests and `check-grads` take.
    pub fn run_dispatches(&self, dispatches: Vec<Dispatch>) -> Result<()> {
        self.run(&Program::new(self, dispatches))
    }
}
