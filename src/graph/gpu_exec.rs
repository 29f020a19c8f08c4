//! The GPU executor: buffers from the memory plan, one program for a training step (forward,
//! backward, optimizer: one encoder, one submit) and one for evaluation, built once.

use std::collections::VecDeque;

use anyhow::{bail, Context, Result};

use super::lower::lower_node;
use super::plan::{plan, Plan};
use super::{Graph, Role, TensorId};
use crate::gpu::{Dispatch, Gpu, Program};
use crate::ops::conv2d::ConvStyles;
use crate::ops::optim::Optimizer;

/// What one training step reports, read back a step or two later without stalling.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    pub step: u64,
    pub loss: f32,
    pub correct: u32,
    /// Every block's `w` after the step, in `graph.residual_weights` order (flattened when
    /// per channel).
    pub w: Vec<f32>,
}

/// A named host copy of a GPU tensor (what checkpoints store).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

struct Pending {
    step: u64,
    staging: wgpu::Buffer,
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

pub struct GpuExecutor<'g> {
    pub gpu: &'g Gpu,
    pub graph: Graph,
    pub plan: Plan,
    /// The kernel style of each convolution every program here was lowered with.
    pub styles: ConvStyles,
    buffers: Vec<wgpu::Buffer>,
    /// Optimizer state buffers per trainable parameter, in `graph.grads` order.
    pub optim_state: Vec<Vec<wgpu::Buffer>>,
    optimizer: Option<Optimizer>,
    train: Option<Program>,
    /// Index in `train` of each parameter's optimizer dispatch.
    optim_dispatch: Vec<usize>,
    /// Each conv weight's tap window, which its update may keep to (`optim::TapWindow`).
    optim_window: Vec<Option<crate::ops::optim::TapWindow>>,
    eval: Program,
    pub step: u64,
    pending: VecDeque<Pending>,
    spare_staging: Vec<wgpu::Buffer>,
    readback_bytes: u64,
}

/// Readbacks in flight before a step waits for the oldest: enough to keep the GPU busy.
const IN_FLIGHT: usize = 2;

impl<'g> GpuExecutor<'g> {
    /// With a differentiated graph, builds the training program (forward, backward, and the
    /// optimizer's updates when `optimizer` is given); always builds the evaluation program.
    pub fn new(gpu: &'g Gpu, graph: Graph, optimizer: Option<Optimizer>) -> Result<Self> {
        if optimizer.is_some() && !graph.differentiated {
            bail!("a training executor needs a graph with backward nodes (model::build_training)");
        }
        let plan = plan(&graph, gpu.max_binding_bytes())?;
        // Refuse before allocating what the adapter cannot hold (gpu::memory says how much
        // is known); the optimizer's state buffers are rounded to quads like every buffer.
        let optim_window = tap_windows(&graph);
        let state_bytes: u64 = optimizer.as_ref().map_or(0, |o| {
            let quads: usize = graph
                .grads
                .iter()
                .zip(&optim_window)
                .map(|((p, _), w)| {
                    o.state_len(graph.tensor(*p).len(), *w)
                        .max(1)
                        .next_multiple_of(4)
                })
                .sum();
            (o.state_tensors() * quads * 4) as u64
        });
        crate::gpu::memory::check_fits(&gpu.info, plan.planned_bytes() + state_bytes)?;
        let slots: Vec<wgpu::Buffer> = plan
            .slot_bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| gpu.zeros(&format!("slot{i}"), (b / 4) as usize))
            .collect();
        let buffers: Vec<wgpu::Buffer> = graph
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| match plan.slot_of[i] {
                Some(s) => slots[s].clone(),
                None => gpu.zeros(&t.name, t.len()),
            })
            .collect();
        Self::assemble(gpu, graph, plan, buffers, optimizer, None)
    }

    /// An executor of the same model at a smaller batch (`graph`, built like this one's) that
    /// trains this executor's parameters in this executor's memory: an epoch's last partial
    /// batch. Every tensor lives in the buffer of its twin here, which the same node order
    /// makes safe (the twins' lifetimes are the same) and which holds it (batch-sized tensors
    /// only shrink); parameters, their gradients, BN statistics and the optimizer state are
    /// shared outright. `None` when the graph's structure differs from this one's.
    pub fn at_smaller_batch(&self, graph: Graph) -> Result<Option<Self>> {
        let a = &self.graph;
        let same = a.differentiated == graph.differentiated
            && a.tensors.len() == graph.tensors.len()
            && a.nodes.len() == graph.nodes.len()
            && a.tensors.iter().zip(&graph.tensors).all(|(x, y)| {
                x.name == y.name
                    && x.role == y.role
                    && (!matches!(x.role, Role::Param | Role::State | Role::ParamGrad)
                        || x.shape == y.shape)
            })
            && a.nodes.iter().zip(&graph.nodes).all(|(x, y)| {
                x.inputs == y.inputs
                    && x.outputs == y.outputs
                    && std::mem::discriminant(&x.op) == std::mem::discriminant(&y.op)
            })
            && a.grads == graph.grads
            && a.residual_weights == graph.residual_weights;
        if !same {
            return Ok(None);
        }
        let buffers = graph
            .tensors
            .iter()
            .zip(&self.buffers)
            .map(|(t, b)| {
                if t.bytes() <= b.size() {
                    b.clone()
                } else {
                    // A scratch that grows as the batch shrinks (more partial sums) gets its
                    // own buffer: always safe, nothing else uses it.
                    self.gpu.zeros(&t.name, t.len())
                }
            })
            .collect();
        let mut exec = Self::assemble(
            self.gpu,
            graph,
            self.plan.clone(),
            buffers,
            self.optimizer,
            Some(&self.optim_state),
        )?;
        exec.step = self.step;
        Ok(Some(exec))
    }

    /// The programs over `buffers` (one per tensor); the optimizer state is `shared_state`'s
    /// buffers or new zeroed ones.
    fn assemble(
        gpu: &'g Gpu,
        graph: Graph,
        plan: Plan,
        buffers: Vec<wgpu::Buffer>,
        optimizer: Option<Optimizer>,
        shared_state: Option<&[Vec<wgpu::Buffer>]>,
    ) -> Result<Self> {
        let styles = conv_styles(gpu, &graph)?;
        let buf = |t: TensorId| buffers[t.0].clone();

        let forward: Vec<Dispatch> = graph
            .forward_nodes()
            .iter()
            .flat_map(|n| lower_node(&graph, n, &buf, true, &styles))
            .collect();
        let eval = Program::new(gpu, forward);

        let mut optim_state = Vec::new();
        let mut optim_dispatch = Vec::new();
        let optim_window = tap_windows(&graph);
        let train = match (&optimizer, graph.differentiated) {
            (_, false) => None,
            (None, true) => Some(Program::new(
                gpu,
                graph
                    .nodes
                    .iter()
                    .flat_map(|n| lower_node(&graph, n, &buf, false, &styles))
                    .collect(),
            )),
            (Some(opt), true) => {
                let mut ds: Vec<Dispatch> = graph
                    .nodes
                    .iter()
                    .flat_map(|n| lower_node(&graph, n, &buf, false, &styles))
                    .collect();
                for (p, d) in &graph.grads {
                    let t = graph.tensor(*p);
                    let window = optim_window[optim_dispatch.len()];
                    let state: Vec<wgpu::Buffer> = match shared_state {
                        Some(s) => s[optim_dispatch.len()].clone(),
                        None => (0..opt.state_tensors())
                            .map(|k| {
                                let len = opt.state_len(t.len(), window);
                                gpu.zeros(&format!("{}.opt{k}", t.name), len)
                            })
                            .collect(),
                    };
                    let refs: Vec<&wgpu::Buffer> = state.iter().collect();
                    optim_dispatch.push(ds.len());
                    ds.push(
                        opt.step(&buf(*p), &buf(*d), &refs, t.len(), 1, window)
                            .label(format!("{}.optimizer", t.name)),
                    );
                    optim_state.push(state);
                }
                Some(Program::new(gpu, ds))
            }
        };
        let readback_bytes = 4
            * (2 + graph
                .residual_weights
                .iter()
                .map(|(_, w)| graph.tensor(*w).len())
                .sum::<usize>()) as u64;
        // Buffer and pipeline creation report out-of-memory and validation errors here.
        gpu.check()?;
        Ok(Self {
            gpu,
            graph,
            plan,
            styles,
            buffers,
            optim_state,
            optimizer,
            train,
            optim_dispatch,
            optim_window,
            eval,
            step: 0,
            pending: VecDeque::new(),
            spare_staging: Vec::new(),
            readback_bytes,
        })
    }

    pub fn buffer(&self, t: TensorId) -> &wgpu::Buffer {
        &self.buffers[t.0]
    }

    pub fn train_program(&self) -> Option<&Program> {
        self.train.as_ref()
    }

    pub fn eval_program(&self) -> &Program {
        &self.eval
    }

    /// The pass of each training-program dispatch, in program order: its node's `Op::pass()`,
    /// or `"optimizer"` for the updates appended after all nodes (for profiles; dispatch
    /// labels name the layer, which forward and backward nodes share).
    pub fn train_dispatch_passes(&self) -> Vec<&'static str> {
        let buf = |t: TensorId| self.buffers[t.0].clone();
        let mut passes: Vec<&'static str> = Vec::new();
        for n in &self.graph.nodes {
            let count = lower_node(&self.graph, n, &buf, false, &self.styles).len();
            passes.extend(std::iter::repeat_n(n.op.pass(), count));
        }
        let len = self.train.as_ref().map_or(0, Program::len);
        passes.resize(len.max(passes.len()), "optimizer");
        passes
    }

    pub fn write(&self, t: TensorId, values: &[f32]) -> Result<()> {
        let want = self.graph.tensor(t).len();
        if values.len() != want {
            bail!(
                "tensor {} holds {want} values, got {}",
                self.graph.tensor(t).name,
                values.len()
            );
        }
        self.gpu
            .queue
            .write_buffer(&self.buffers[t.0], 0, bytemuck::cast_slice(values));
        Ok(())
    }

    pub fn read(&self, t: TensorId) -> Result<Vec<f32>> {
        self.gpu
            .download(&self.buffers[t.0], self.graph.tensor(t).len())
    }

    /// Uploads a batch of images (NCHW, the graph's batch size) and labels.
    pub fn set_batch(&self, images: &[f32], labels: &[u32]) -> Result<()> {
        let (x, y) = (
            self.graph.input.expect("graph has an input"),
            self.graph.labels.expect("graph has labels"),
        );
        self.write(x, images)?;
        if labels.len() != self.graph.tensor(y).len() {
            bail!(
                "batch has {} labels, the graph expects {}",
                labels.len(),
                self.graph.tensor(y).len()
            );
        }
        self.gpu
            .queue
            .write_buffer(&self.buffers[y.0], 0, bytemuck::cast_slice(labels));
        Ok(())
    }

    /// The learning rate of the steps from the next one on (no effect without an optimizer):
    /// the uniforms are written per step, so a schedule costs nothing on the GPU.
    pub fn set_lr(&mut self, lr: f64) {
        self.optimizer = self.optimizer.map(|o| o.with_lr(lr));
    }

    /// Records forward, backward and every optimizer update in one encoder and submits it;
    /// returns the reports of earlier steps whose readback has completed.
    pub fn train_step(&mut self) -> Result<Vec<StepReport>> {
        self.train_step_with(|train, enc| {
            let mut pass = enc.begin_compute_pass(&Default::default());
            train.record(&mut pass);
        })
    }

    /// `train_step` with the training program recorded by `record` into the step's encoder:
    /// the profiler's way in (timestamps around dispatches, query resolves after them).
    pub fn train_step_with(
        &mut self,
        record: impl FnOnce(&Program, &mut wgpu::CommandEncoder),
    ) -> Result<Vec<StepReport>> {
        let Some(train) = &self.train else {
            bail!("this executor was built for evaluation only");
        };
        self.step += 1;
        if let Some(opt) = &self.optimizer {
            for (k, (p, _)) in self.graph.grads.iter().enumerate() {
                train.set_params(
                    self.gpu,
                    self.optim_dispatch[k],
                    &opt.params_bytes(self.graph.tensor(*p).len(), self.step, self.optim_window[k]),
                );
            }
        }
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        record(train, &mut enc);
        let staging = self.copy_metrics(&mut enc);
        self.gpu.queue.submit([enc.finish()]);
        self.gpu.check()?;
        self.begin_readback(staging);
        self.collect(IN_FLIGHT)
    }

    /// Runs the forward pass in inference mode on the current batch and returns
    /// (mean loss, correct count) at once.
    pub fn eval_batch(&mut self) -> Result<(f32, u32)> {
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.eval.record(&mut pass);
        }
        let staging = self.copy_metrics(&mut enc);
        self.gpu.queue.submit([enc.finish()]);
        let m: Vec<f32> = self.gpu.read_mapped(&staging, 8)?;
        self.spare_staging.push(staging);
        Ok((m[0], m[1] as u32))
    }

    /// Waits for every outstanding step report.
    pub fn finish(&mut self) -> Result<Vec<StepReport>> {
        self.collect(0)
    }

    /// Copies metrics and every block's `w` into a staging buffer: a spare one when a finished
    /// readback returned it, so steady-state steps allocate nothing.
    fn copy_metrics(&mut self, enc: &mut wgpu::CommandEncoder) -> wgpu::Buffer {
        let staging = self.spare_staging.pop().unwrap_or_else(|| {
            self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step readback"),
                size: self.readback_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let metrics = self.graph.metrics.expect("graph has metrics");
        enc.copy_buffer_to_buffer(&self.buffers[metrics.0], 0, &staging, 0, 8);
        let mut offset = 8;
        for (_, w) in &self.graph.residual_weights {
            let bytes = 4 * self.graph.tensor(*w).len() as u64;
            enc.copy_buffer_to_buffer(&self.buffers[w.0], 0, &staging, offset, bytes);
            offset += bytes;
        }
        staging
    }

    fn begin_readback(&mut self, staging: wgpu::Buffer) {
        let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ready.clone();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            if r.is_ok() {
                flag.store(true, std::sync::atomic::Ordering::Release);
            }
        });
        self.pending.push_back(Pending {
            step: self.step,
            staging,
            ready,
        });
    }

    /// Returns completed reports, waiting until at most `keep` remain in flight.
    fn collect(&mut self, keep: usize) -> Result<Vec<StepReport>> {
        let mut out = Vec::new();
        loop {
            let must_wait = self.pending.len() > keep;
            self.gpu
                .device
                .poll(if must_wait {
                    wgpu::PollType::wait_indefinitely()
                } else {
                    wgpu::PollType::Poll
                })
                .context("GPU poll failed")?;
            let Some(front) = self.pending.front() else {
                break;
            };
            if !front.ready.load(std::sync::atomic::Ordering::Acquire) {
                if must_wait {
                    bail!(
                        "the GPU finished but step {} could not be read back",
                        front.step
                    );
                }
                break;
            }
            let p = self.pending.pop_front().expect("front exists");
            let values: Vec<f32> = {
                let view = p
                    .staging
                    .slice(..)
                    .get_mapped_range()
                    .context("reading step metrics")?;
                bytemuck::cast_slice(&view).to_vec()
            };
            p.staging.unmap();
            self.spare_staging.push(p.staging);
            out.push(StepReport {
                step: p.step,
                loss: values[0],
                correct: values[1] as u32,
                w: values[2..].to_vec(),
            });
        }
        Ok(out)
    }

    /// Parameters, BN running statistics and optimizer state by name (for checkpoints).
    pub fn export_state(&self) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for (i, t) in self.graph.tensors.iter().enumerate() {
            if matches!(t.role, Role::Param | Role::State) {
                out.push(NamedTensor {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    values: self.read(TensorId(i))?,
                });
            }
        }
        // Window-only state is written full-size (zero outside the window, as a full update
        // would have kept it), so checkpoints do not depend on how the state is held.
        for (k, ((p, _), state)) in self.graph.grads.iter().zip(&self.optim_state).enumerate() {
            let t = self.graph.tensor(*p);
            let window = self.state_window(k);
            for (s, b) in state.iter().enumerate() {
                let held = self.gpu.download(b, self.state_len(k))?;
                out.push(NamedTensor {
                    name: format!("{}.opt{s}", t.name),
                    shape: t.shape.clone(),
                    values: match window {
                        Some(w) => w.expand(&held, t.len()),
                        None => held,
                    },
                });
            }
        }
        Ok(out)
    }

    /// Restores what `export_state` wrote; `lookup(name)` returns the stored values.
    pub fn import_state(&self, lookup: &dyn Fn(&str) -> Result<Vec<f32>>) -> Result<()> {
        for (i, t) in self.graph.tensors.iter().enumerate() {
            if matches!(t.role, Role::Param | Role::State) {
                self.write(TensorId(i), &lookup(&t.name)?)?;
            }
        }
        for (k, ((p, _), state)) in self.graph.grads.iter().zip(&self.optim_state).enumerate() {
            let t = self.graph.tensor(*p);
            for (s, b) in state.iter().enumerate() {
                let v = lookup(&format!("{}.opt{s}", t.name))?;
                if v.len() != t.len() {
                    bail!(
                        "optimizer state of {} has {} values, expected {}",
                        t.name,
                        v.len(),
                        t.len()
                    );
                }
                let held = match self.state_window(k) {
                    Some(w) => w.compact(&v),
                    None => v,
                };
                self.gpu
                    .queue
                    .write_buffer(b, 0, bytemuck::cast_slice(&held));
            }
        }
        Ok(())
    }
}

impl GpuExecutor<'_> {
    /// Values the optimizer keeps over all parameters (before rounding buffers to quads).
    pub fn optimizer_state_values(&self) -> usize {
        let per = self.optimizer.as_ref().map_or(0, |o| o.state_tensors());
        (0..self.optim_state.len())
            .map(|k| per * self.state_len(k))
            .sum()
    }
    /// The window parameter `k`'s optimizer state keeps to, if any (`Optimizer::taps`).
    fn state_window(&self, k: usize) -> Option<crate::ops::optim::TapWindow> {
        self.optimizer.as_ref()?.taps(self.optim_window[k])
    }
    /// Values in each state tensor of parameter `k`.
    fn state_len(&self, k: usize) -> usize {
        let n = self.graph.tensor(self.graph.grads[k].0).len();
        self.optimizer
            .as_ref()
            .map_or(n, |o| o.state_len(n, self.optim_window[k]))
    }
}

/// Each parameter's tap window (`conv_tap_window`), in `g.grads` order.
fn tap_windows(g: &Graph) -> Vec<Option<crate::ops::optim::TapWindow>> {
    g.grads
        .iter()
        .map(|(_, d)| conv_tap_window(g, *d))
        .collect()
}

/// The tap window of a conv weight whose gradient is `grad` (the optimizer may keep its
/// update to it, see `optim::TapWindow`); `None` for every other parameter.
fn conv_tap_window(g: &Graph, grad: TensorId) -> Option<crate::ops::optim::TapWindow> {
    let node = g.nodes.iter().find(|n| n.outputs.first() == Some(&grad))?;
    let super::Op::Conv2dBackwardWeight(a) = node.op else {
        return None;
    };
    let s = super::shapes::conv(g, a, node.inputs[1], grad);
    let [(first_h, taps_h), (first_w, taps_w)] = s.geometry().window;
    Some(crate::ops::optim::TapWindow {
        kh: s.kh,
        kw: s.kw,
        first_h,
        taps_h,
        first_w,
        taps_w,
    })
}

/// The style of each of the graph's convolutions on `gpu` (`ConvStyles::choose`).
fn conv_styles(gpu: &Gpu, graph: &Graph) -> Result<ConvStyles> {
    ConvStyles::choose(gpu, &super::shapes::convs(graph))
}
